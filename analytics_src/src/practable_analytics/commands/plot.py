"""``plot``: draw a student's task graph as a PNG (matplotlib) or an interactive HTML page (pyvis).

The output format follows the file extension of --out (.png or .html). Nodes are placed as on the
dashboard, edge widths follow the counts. --compare GRAPH draws a comparison graph beside it (a full
name such as spinner-engdes1-2, or a task of the course such as 2). --exp/--course may be left out
when the student has events in only one experiment and course.
"""

import argparse
import logging
from pathlib import Path

from practable_analytics.commands.common import add_db_graphs, fail, load_registry, open_store

LOG = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``plot`` subcommand."""
    parser = subparsers.add_parser(
        "plot",
        help="draw a student's task graph to PNG or HTML",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument("--user", required=True, help="student id")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file: FILE.png or FILE.html")
    parser.add_argument("--exp", default=None, help="experiment (needed when the student has several)")
    parser.add_argument("--course", default=None, help="course (needed when the student has several)")
    parser.add_argument("--compare", default=None, metavar="GRAPH", help="comparison graph drawn beside it")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Draw; exit 2 on bad arguments, 1 on runtime failures, with one line on stderr."""
    from practable_analytics.plot import Panel, draw_html, draw_png, short_id  # noqa: PLC0415 (numpy)

    out = Path(args.out)
    kind = out.suffix.lower()
    if kind not in (".png", ".html"):
        return fail("--out must end in .png or .html", 2)
    registry = load_registry(args)
    store = open_store(args)
    try:
        keys = [
            k for k in store.keys(args.user) if (args.exp in (None, k[1])) and (args.course in (None, k[2]))
        ]
        if args.exp is not None and args.course is not None:
            exp_name, course = args.exp, args.course
        elif len(keys) == 1:
            exp_name, course = keys[0][1], keys[0][2]
        elif not keys:
            return fail(
                f"no events of user {args.user!r}"
                + (" for that --exp/--course" if args.exp or args.course else "")
            )
        else:
            found = ", ".join(f"{e}/{c}" for _, e, c in keys)
            return fail(
                f"user {args.user!r} has several experiments/courses ({found}): pass --exp and --course", 2
            )
        exp = registry.experiment(exp_name)
        if exp is None:
            return fail(f"unknown experiment {exp_name!r}", 2)
        matrix = store.matrix(args.user, exp_name, course, len(exp.nodes))
    finally:
        store.close()
    title = f"student {short_id(args.user)} ({exp_name}, {course})"
    panels = [Panel(title, exp.nodes, exp.draw_positions, matrix, mark_unused=True)]
    if args.compare:
        full = exp.resolve_graph(course, args.compare)
        found_graph = registry.graph(full) if full else None
        if found_graph is None:
            return fail(f"unknown comparison graph {args.compare!r} for experiment {exp_name}", 2)
        panels.append(Panel(f"expert ({full})", exp.nodes, exp.draw_positions, found_graph[1]))
    if matrix.sum() == 0:
        LOG.warning(
            "user %s has no transitions in %s/%s: drawing an empty graph", args.user, exp_name, course
        )
    try:
        if kind == ".png":
            draw_png(out, panels)
        else:
            draw_html(out, panels)
    except OSError as exc:
        return fail(f"cannot write {out}: {exc.strerror or exc}")
    except ImportError as exc:
        return fail(f"{exc.name} is needed for {kind} output: pip install 'practable-analytics[tools]'")
    LOG.info("wrote %s", out)
    return 0
