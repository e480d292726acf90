"""``practable-analytics status``: what the running service(s) report, and what the store holds."""

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

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
    parser.add_argument(
        "--check",
        action="store_true",
        help="health check: one line per stream, exit 0 healthy, 1 degraded, 2 down (a directory given "
        "to --status-file means every *.json in it)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        metavar="S",
        help=f"with --check: a stream disconnected this long is down, before that degraded "
        f"(default {DEFAULT_GRACE_S:g})",
    )
    parser.add_argument(
        "--stale",
        type=float,
        default=DEFAULT_STALE_S,
        metavar="S",
        help=f"with --check: a status file not rewritten this long means its service is down "
        f"(default {DEFAULT_STALE_S:g})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db_text = args.db or os.environ.get(ENV_PREFIX + "DB") or ""
    files: List[str] = list(args.status_file or [])
    if not files:
        env_files = os.environ.get(ENV_PREFIX + "STATUS_FILE", "")
        files = [f for f in env_files.replace(",", " ").split() if f]
    if getattr(args, "check", False):
        if not files:
            return fail("--check needs --status-file PATH (a file or a directory of them)", 2)
        return check(files, db_text, grace_s=args.grace, stale_s=args.stale)
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


# ---- health check (--check) ------------------------------------------------------------------------

OK, DEGRADED, DOWN = 0, 1, 2
LEVEL_NAMES = {OK: "OK", DEGRADED: "DEGRADED", DOWN: "DOWN"}
DEFAULT_GRACE_S = 60.0  # a disconnection shorter than this is a reconnect in progress
DEFAULT_STALE_S = 10.0  # the service rewrites its status file every second by default
HIGH_WATER_SHARE = 0.8  # inbox high water above this share of its bound: the worker falls behind


def _files(names: Sequence[str]) -> List[Path]:
    out: List[Path] = []
    for name in names:
        path = Path(name)
        out.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return out


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _epoch(doc: Mapping[str, Any], key: str) -> Optional[float]:
    value = doc.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _since_epoch(text: object) -> Optional[float]:
    from datetime import datetime  # noqa: PLC0415

    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def health(
    source: str, doc: Mapping[str, Any], now: float, grace_s: float = DEFAULT_GRACE_S,
    stale_s: float = DEFAULT_STALE_S,
) -> List[Tuple[int, str]]:  # fmt: skip
    """(level, line) for each stream of one status document (one line for the file when the service
    itself is down: stopped, or its status not rewritten within stale_s)."""
    updated = _epoch(doc, "updated_epoch")
    state = doc.get("state")
    if state == "stopped":
        return [(DOWN, f"DOWN {source}: service stopped (pid {doc.get('pid')})")]
    if updated is None or now - updated > stale_s:
        age = "never" if updated is None else _ago(now - updated) + " ago"
        return [(DOWN, f"DOWN {source}: status not updated ({age}): service not running?")]
    service_problems: List[str] = []
    if state != "running":
        service_problems.append(f"service {state}")
    worker_errors = (doc.get("worker") or {}).get("errors") or {}
    store_failed = int(worker_errors.get("store_failed") or 0)
    if store_failed:
        service_problems.append(f"store errors {store_failed}")
    queue = doc.get("queue") or {}
    limit, high_water = queue.get("limit") or 0, queue.get("high_water") or 0
    if limit and high_water > HIGH_WATER_SHARE * limit:
        service_problems.append(f"inbox high water {high_water}/{limit}")
    out: List[Tuple[int, str]] = []
    streams = doc.get("streams") or {}
    if not streams:
        return [(DOWN, f"DOWN {source}: no streams")]
    for name, s in sorted(streams.items()):
        since = _since_epoch(s.get("since"))
        last = _epoch(s, "last_event_epoch")
        last_text = f"last event {_ago(now - last)} ago" if last is not None else "no event yet"
        if s.get("connected"):
            level, what = OK, f"connected, {last_text}, stored {s.get('stored', '?')}"
        else:
            down_for = now - since if since is not None else float("inf")
            level = DOWN if down_for >= grace_s else DEGRADED
            what = f"disconnected for {_ago(down_for) if since is not None else '?'}, {last_text}"
        problems = list(service_problems)
        if problems and level == OK:
            level = DEGRADED
        out.append((level, f"{LEVEL_NAMES[level]} {name}: {what}" + "".join(f"; {p}" for p in problems)))
    return out


def check(files: Sequence[str], db_text: str, grace_s: float = DEFAULT_GRACE_S,
          stale_s: float = DEFAULT_STALE_S, now: Optional[float] = None) -> int:  # fmt: skip
    """Print one line per stream (or per unusable file); the worst level is the exit status."""
    now = time.time() if now is None else now
    results: List[Tuple[int, str]] = []
    paths = _files(files)
    if not paths:
        results.append((DOWN, f"DOWN {' '.join(files)}: no status file"))
    for path in paths:
        try:
            doc = read(path)
        except (OSError, ValueError) as exc:
            results.append((DOWN, f"DOWN {path}: {exc.__class__.__name__}: cannot read the status file"))
            continue
        results.extend(health(str(path), doc, now, grace_s, stale_s))
    if db_text:
        try:
            stream_event_counts(Path(db_text))
        except sqlite3.Error as exc:
            results.append((DOWN, f"DOWN database {db_text}: {exc}"))
    sys.stdout.write("".join(line + "\n" for _, line in results))
    return max(level for level, _ in results)
