"""What the commands share: the ``--db``/``--graphs`` options, opening them, and one-line errors.

Storage failures are caught here only (:func:`run_command`): a command lets
:class:`~practable_analytics.store.StoreError` rise and the user sees one line.
"""

import argparse
import os
import sqlite3
import sys
from pathlib import Path

from practable_analytics.experiments import DefinitionError, Registry
from practable_analytics.store import Store, StoreError

PROG = "practable-analytics"


class CommandError(Exception):
    """A reason to stop the command with one line on stderr and a non-zero exit code
    (2: bad usage or input, 1: runtime failure). ``cli.main`` turns it into that line."""

    def __init__(self, reason: str, code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; a storage failure becomes a :class:`CommandError` (exit 1, one line)."""
    try:
        rc: int = args.func(args)
    except StoreError as exc:
        raise CommandError(f"database error: {exc}") from exc
    except sqlite3.Error as exc:  # a Store method that does not wrap its errors in StoreError yet
        raise CommandError(f"database error: {exc}") from exc
    return rc


def add_db_graphs(parser: argparse.ArgumentParser) -> None:
    """The common ``--db`` and ``--graphs`` options with their environment defaults."""
    parser.add_argument(
        "--db",
        default=os.environ.get("PRACTABLE_ANALYTICS_DB"),
        help="SQLite database file (default: $PRACTABLE_ANALYTICS_DB)",
    )
    parser.add_argument(
        "--graphs",
        default=os.environ.get("PRACTABLE_ANALYTICS_GRAPHS") or None,
        help="extra directory of experiment *.json and comparison graph *.csv files"
        " (default: $PRACTABLE_ANALYTICS_GRAPHS)",
    )


def fail(reason: str, code: int = 1) -> int:
    """Write the one-line error of the command line and return its exit code."""
    sys.stderr.write(f"{PROG}: error: {reason}\n")
    return code


def load_registry(args: argparse.Namespace) -> Registry:
    """The packaged experiments plus the operator's ``--graphs`` directory."""
    try:
        return Registry.load(Path(args.graphs) if args.graphs else None)
    except DefinitionError as exc:
        raise CommandError(f"invalid definitions: {exc}") from exc


def open_store(args: argparse.Namespace, *, must_exist: bool = True) -> Store:
    """Open ``--db``; with ``must_exist`` a missing file is an error rather than a new empty store."""
    if not args.db:
        raise CommandError("--db is required (or set PRACTABLE_ANALYTICS_DB)", 2)
    if must_exist and not Path(args.db).is_file():
        raise CommandError(f"{args.db}: no such database file")
    try:
        return Store(args.db)
    except (StoreError, OSError) as exc:
        raise CommandError(str(exc)) from exc
