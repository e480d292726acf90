"""``export``: write events, matrices and feedback as tables pandas reads directly.

Formats: ``parquet`` and ``feather`` (need pyarrow, from the ``tools`` extra) or ``csv``. Files
``events``, ``matrices`` (long form: user, exp, course, from, to, count), ``feedback`` and
``legacy_adjacency`` are written to DIR; progress goes to stderr. Read back with e.g.
``pandas.read_parquet(DIR / "events.parquet")``.
"""

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

from practable_analytics.commands.common import add_db_graphs, fail, load_registry, open_store
from practable_analytics.export import export

LOG = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export events, matrices and feedback to parquet, feather or CSV",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument("--format", required=True, choices=["parquet", "feather", "csv"], help="file format")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    parser.add_argument("--chunk-rows", type=int, default=50000, help="rows read and written at a time")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; exit 1 with one line on stderr on any failure."""
    if args.chunk_rows < 1:
        return fail("--chunk-rows must be at least 1", 2)
    if args.format != "csv" and importlib.util.find_spec("pyarrow") is None:
        return fail(f"{args.format} needs pyarrow: pip install 'practable-analytics[tools]'")
    registry = load_registry(args)
    store = open_store(args)
    try:
        written = export(
            store,
            registry,
            Path(args.out),
            args.format,
            chunk_size=args.chunk_rows,
            progress=lambda msg: LOG.info("%s", msg),
        )
    except OSError as exc:
        return fail(f"cannot write {args.out}: {exc.strerror or exc}")
    finally:
        store.close()
    for name, path in written.items():
        sys.stdout.write(f"{name}: {path}\n")
    return 0
