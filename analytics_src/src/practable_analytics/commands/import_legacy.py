"""``import-legacy``: ingest a data directory written by the original logging scripts.

Reads ``<user>-<hw>-<exp>-<course>.json`` JSON-lines logs, ``<user>-<exp>-<course>-adjacency.csv``
matrices and ``<user>-<exp>-<course>-feedback.csv`` reports directly in DATA_DIR (not recursive) and
prints, per file, what was imported and what was skipped and why. Running it again imports nothing
new (every imported line is recorded). See docs/store.md for the rules.
"""

import argparse
import logging
import sys
from pathlib import Path

from practable_analytics.commands.common import add_db_graphs, fail, load_registry, open_store
from practable_analytics.text import printable

LOG = logging.getLogger(__name__)


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``import-legacy`` subcommand."""
    parser = subparsers.add_parser(
        "import-legacy",
        help="ingest a data directory written by the original scripts (idempotent)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument("data_dir", metavar="DATA_DIR", help="directory of legacy .json logs and .csv files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import the directory and print the report on stdout (progress on stderr)."""
    from practable_analytics.legacy import import_dir  # noqa: PLC0415 (numpy: not for serve's start)

    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        return fail(f"{printable(str(data_dir))}: not a directory", 2)
    registry = load_registry(args)
    store = open_store(args, must_exist=False)
    try:
        report = import_dir(store, registry, data_dir, progress=lambda msg: LOG.info("%s", msg))
    except OSError as exc:
        return fail(f"cannot read {printable(str(data_dir))}: {exc.strerror or exc}")
    finally:
        store.close()
    sys.stdout.write(report.render())
    return 0
