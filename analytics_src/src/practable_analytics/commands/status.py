"""``practable-analytics status``: what the running service(s) report, and what the store holds."""

import argparse
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from practable_analytics.commands.common import fail
from practable_analytics.service.status import read, render, stream_event_counts
from practable_analytics.store import StoreError

ENV_PREFIX = "PRACTABLE_ANALYTICS_"


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the state of serve (status file) and the events stored per stream",
        description="Read the status file(s) written by `serve --status-file` and count the stored "
        "events per stream in the database (read-only).",
    )
    parser.add_argument("--db", metavar="PATH", help="SQLite database (env PRACTABLE_ANALYTICS_DB)")
    parser.add_argument(
        "--status-file",
        action="append",
        metavar="PATH",
        help="status file of a serve process (repeat for several; env PRACTABLE_ANALYTICS_STATUS_FILE, "
        "space or comma separated)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db_text = args.db or os.environ.get(ENV_PREFIX + "DB") or ""
    files: List[str] = list(args.status_file or [])
    if not files:
        env_files = os.environ.get(ENV_PREFIX + "STATUS_FILE", "")
        files = [f for f in env_files.replace(",", " ").split() if f]
    if not db_text and not files:
        return fail("give --db PATH and/or --status-file PATH", 2)

    documents: List[Dict[str, Any]] = []
    problems: List[str] = []
    for name in files:
        try:
            documents.append(read(Path(name)))
        except (OSError, ValueError) as exc:
            problems.append(f"status file {name}: {exc}")

    counts: Optional[Dict[str, Dict[str, Any]]] = None
    if db_text:
        db = Path(db_text)
        if not db.is_file():
            problems.append(f"database {db} does not exist")
        else:
            try:
                counts = stream_event_counts(db)
            except (sqlite3.Error, StoreError) as exc:
                problems.append(f"database {db}: {exc}")

    if args.json:
        sys.stdout.write(
            json.dumps(
                {"services": documents, "stored": counts, "problems": problems}, indent=1, sort_keys=True
            )
            + "\n"
        )
    else:
        lines = render(documents, counts)
        lines.extend(f"problem: {p}" for p in problems)
        sys.stdout.write("\n".join(lines) + "\n")
    return 1 if problems else 0
