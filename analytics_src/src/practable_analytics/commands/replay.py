"""``replay``: feed recorded JSON-lines files through the live Handler, printing every answer.

Each non-blank line of each file is one received text frame, handled with ``Handler.handle_texts`` in
file order (the same validation, storage and answers as ``serve``). Each answer is written to stdout as
one line in the wire form of :func:`practable_analytics.responses.encode`.
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from practable_analytics.commands.common import add_db_graphs, fail, load_registry, open_store
from practable_analytics.handler import Handler
from practable_analytics.responses import encode

LOG = logging.getLogger(__name__)
BATCH_LINES = 1000


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``replay`` subcommand."""
    parser = subparsers.add_parser(
        "replay",
        help="feed JSON-lines files through the handler and print the answers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_graphs(parser)
    parser.add_argument("--stream", default=None, help="stream name recorded with the replayed events")
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines file(s), replayed in order")
    parser.set_defaults(func=run)


def _lines(path: Path) -> List[str]:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def run(args: argparse.Namespace) -> int:
    """Replay the files; exit 1 with one line on stderr for unreadable files, db or graphs."""
    files = [Path(f) for f in args.files]
    for path in files:
        if not path.is_file() or not os.access(path, os.R_OK):
            return fail(f"cannot read {path}: not a readable file")
    registry = load_registry(args)
    stream: Optional[str] = args.stream
    store = open_store(args, must_exist=False)
    answers = 0
    try:
        handler = Handler(store, registry)
        out = sys.stdout
        for path in files:
            try:
                lines = _lines(path)
            except OSError as exc:
                return fail(f"cannot read {path}: {exc}")
            for start in range(0, len(lines), BATCH_LINES):
                for responses in handler.handle_texts(lines[start : start + BATCH_LINES], stream=stream):
                    for response in responses:
                        out.write(encode(response) + "\n")
                        answers += 1
            LOG.info("%s: %d lines replayed", path, len(lines))
        out.flush()
    finally:
        store.close()
    LOG.info("%d answers written", answers)
    return 0
