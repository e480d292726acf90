"""``check``: validate an operator's experiments/graphs directory before it is used.

Applies the rules ``serve`` and every other command apply when they load ``--graphs DIR`` over the
package data (experiment JSON fields, graph file names ``<exp>-<course>-<task>.csv`` of a known
experiment, node names, square shape, every value finite with |value| <= 1e6 and graph cells >= 0),
but reports every invalid file instead of stopping at the first. Exit 0 when the directory is valid,
1 with one line per problem ``<file>: <reason>`` on stdout, 2 for usage errors. Without ``--graphs``
(and no $PRACTABLE_ANALYTICS_GRAPHS) the package data alone is checked.
"""

import argparse
import os
import sys
from pathlib import Path

from practable_analytics.commands.common import CommandError
from practable_analytics.experiments import check


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="validate an experiments/graphs directory (exit 1 listing every problem)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--graphs",
        default=os.environ.get("PRACTABLE_ANALYTICS_GRAPHS") or None,
        metavar="DIR",
        help="directory of experiment *.json and comparison graph *.csv files"
        " (default: $PRACTABLE_ANALYTICS_GRAPHS)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per problem; 0 when there is none."""
    extra = Path(args.graphs) if args.graphs else None
    if extra is not None and not extra.is_dir():
        raise CommandError(f"{extra}: not a directory", 2)
    problems = check(extra)
    for line in problems:
        sys.stdout.write(line + "\n")
    return 1 if problems else 0
