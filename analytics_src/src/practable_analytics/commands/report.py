"""``report``: one student's task graph and numbers as plain text for a terminal.

For each (exp, course) the student has events in (or the one given by ``--exp``/``--course``): the
transition matrix (row = from, column = to, columns numbered as the rows), the indicators with their
scales, the task distances (TaskDistance, and GED) to every comparison graph of the course, closest
first, and the counted feedback. The demo prints the dashboard's answers with the same functions.
"""

import argparse
import sys
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Tuple

from practable_analytics.commands.common import add_db_graphs, fail, load_registry, open_store
from practable_analytics.experiments import Experiment

if TYPE_CHECKING:  # numpy loads when a report runs, not with every command (serve never needs it)
    import numpy as np


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="print a student's matrix, indicators, task distances and feedback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument("--user", required=True, help="student id")
    parser.add_argument("--exp", default=None, help="only this experiment")
    parser.add_argument("--course", default=None, help="only this course")
    parser.set_defaults(func=run)


def number(value: Optional[float]) -> str:
    """How every number is written: an integer as one, otherwise two decimals; None is "undefined"."""
    if value is None:
        return "undefined"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


INDICATOR_SCALES: Dict[str, str] = {
    "exploration": "TaskDistance a=0, b=10 against the -all graph: what goes beyond it (lower = closer)",
    "enjoyment": "count of Engaged/Curious/Delighted reports minus count of the other states",
    "edges": "the student's transitions as a percentage of the -all graph's",
}
DISTANCE_SCALE = (
    "TaskDistance a=10, b=1: 10 per transition the expert made and the student did not, 1 per extra one",
    "GED: sum of |student - expert| over all cells",
)
"""What the task distance columns mean (lower is closer for both)."""


def indicator_lines(indicators: Mapping[str, Optional[float]]) -> List[str]:
    """One line per indicator: its value (edges with %) and its scale."""
    lines = []
    for key, scale in INDICATOR_SCALES.items():
        value = indicators.get(key)
        shown = number(value) + (" %" if key == "edges" and value is not None else "")
        lines.append(f"{key:<11} {shown:>9}  {scale}")
    return lines


def ranked(distances: Mapping[str, Optional[float]]) -> List[Tuple[str, Optional[float]]]:
    """Task distances closest first (ties by name), undefined ones last."""
    return sorted(distances.items(), key=lambda kv: (kv[1] is None, kv[1] or 0.0, kv[0]))


def matrix_table(nodes: Sequence[str], matrix: "np.ndarray") -> List[str]:
    """The matrix as aligned text: numbered columns, rows labelled ``<index> <node>``."""
    labels = [f"{i} {name}" for i, name in enumerate(nodes)]
    cells = [[number(float(v)) for v in row] for row in matrix]
    width = max([len(str(len(nodes) - 1))] + [len(c) for row in cells for c in row])
    label_width = max(len(s) for s in labels)
    header = " " * label_width + " " + " ".join(str(j).rjust(width) for j in range(len(nodes)))
    rows = [
        lab.ljust(label_width) + " " + " ".join(c.rjust(width) for c in row)
        for lab, row in zip(labels, cells)
    ]
    return [header, *rows]


def section(
    exp: Experiment, course: str, matrix: "np.ndarray", counts: Mapping[str, int], user: str
) -> List[str]:
    """The report lines of one (exp, course)."""
    from practable_analytics import taskgraph  # noqa: PLC0415 (numpy)

    lines = [f"user {user}  exp {exp.name}  course {course}", ""]
    total = int(matrix.sum())
    lines.append(f"Transitions ({total}; row = from, column = to):")
    lines += ["  " + s for s in matrix_table(exp.nodes, matrix)]
    c = exp.courses.get(course)
    all_graph = c.graphs[c.all_graph] if c is not None and c.all_graph is not None else None
    ind = taskgraph.indicators(matrix, all_graph, counts)
    lines += ["", "Indicators:", *("  " + x for x in indicator_lines(ind)), ""]
    if c is None:
        lines.append("Task distances: no comparison graphs for this course")
    else:
        lines += ["Task distances, closest first (lower = closer):", *("  " + x for x in DISTANCE_SCALE)]
        name_width = max(len(g) for g in c.graphs)
        lines.append(f"  {'graph'.ljust(name_width)}  {'TaskDistance':>12}  {'GED':>8}")
        distances = {g: taskgraph.task_distance(matrix, expert) for g, expert in c.graphs.items()}
        for gname, td in ranked(distances):
            ged = number(taskgraph.ged(matrix, c.graphs[gname]))
            lines.append(f"  {gname.ljust(name_width)}  {number(td).rjust(12)}  {ged.rjust(8)}")
    reported = ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "none"
    lines += ["", f"Feedback (counted reports): {reported}", ""]
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 with one line on stderr when there is nothing to report."""
    registry = load_registry(args)
    store = open_store(args)
    try:
        keys = [
            (exp, course)
            for _, exp, course in store.keys(args.user)
            if args.exp in (None, exp) and args.course in (None, course)
        ]
        if not keys:
            return fail(f"no events for user {args.user!r} with that exp/course")
        out: List[str] = []
        for exp_name, course in keys:
            exp = registry.experiment(exp_name)
            if exp is None:
                out += [
                    f"user {args.user}  exp {exp_name}  course {course}",
                    "  unknown experiment: events only",
                    "",
                ]
                continue
            matrix = store.matrix(args.user, exp_name, course, len(exp.nodes))
            counts = store.feedback_counts(args.user, exp_name, course)
            out += section(exp, course, matrix, counts, args.user)
        sys.stdout.write("\n".join(out))
    finally:
        store.close()
    return 0
