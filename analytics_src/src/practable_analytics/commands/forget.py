"""``forget``: erase everything stored about one student, in one transaction.

Removes the student's events (and invalid events whose raw text contains the id), transition counts,
feedback counts, legacy import markers and legacy adjacency baselines, then prints the rows removed
per table. Files of a legacy data directory are not touched: delete them too, or a later
``import-legacy`` of that directory brings the student back.
"""

import argparse
import sys

from practable_analytics.commands.common import add_db_graphs, fail, open_store


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``forget`` subcommand."""
    parser = subparsers.add_parser(
        "forget",
        help="erase one student's data everywhere in the database",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument("--user", required=True, help="student id to erase")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Erase the student; exit 1 with one line on stderr when the database cannot be used."""
    if not args.user or not args.user.strip():
        return fail("--user must not be empty", 2)
    store = open_store(args)
    try:
        removed = store.forget(args.user)
    finally:
        store.close()
    out = sys.stdout
    total = sum(removed.values())
    out.write(f"user {args.user}: {total} rows removed\n")
    for table, n in removed.items():
        out.write(f"  {table}: {n}\n")
    if total == 0:
        out.write("nothing stored for this user\n")
    return 0
