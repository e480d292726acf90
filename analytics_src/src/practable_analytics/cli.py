"""Command line entry point: ``practable-analytics <command> ...``."""

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from practable_analytics import __version__
from practable_analytics.commands.common import CommandError, fail, run_command

# Each module in practable_analytics.commands registers one subcommand. Heavy libraries are imported
# inside the commands that need them, never here, so `serve` stays small.
COMMANDS = (
    "serve", "status", "check", "replay", "report", "plot", "export", "import_legacy", "forget", "web",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="practable-analytics",
        description="Learning analytics for practable remote laboratories.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (logs go to stderr; default INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"practable_analytics.commands.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        rc = run_command(args)
    except CommandError as exc:
        return fail(exc.reason, exc.code)
    return rc


if __name__ == "__main__":
    sys.exit(main())
