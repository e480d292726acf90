"""The status file: a small JSON document the service rewrites atomically every interval.

Written to a temporary file in the same directory, flushed, then renamed over the old one, so a
reader (``practable-analytics status``, a monitoring script) never sees half a file.
"""

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from practable_analytics import __version__
from practable_analytics.service.files import replace_file
from practable_analytics.service.inbox import Inbox
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import EventCounts, StreamStats, WorkerStats, iso_time

STATUS_VERSION = 1


def build(
    *,
    started: float,
    db: Path,
    inbox: Inbox,
    streams: Sequence[StreamStats],
    senders: Sequence[Sender],
    worker: WorkerStats,
    state: str,
    events: Optional[EventCounts] = None,
) -> Dict[str, Any]:
    """The status document (plain JSON types only)."""
    now = time.time()
    events = EventCounts() if events is None else events
    per_stream = inbox.stream_snapshot(range(len(streams)))
    full = inbox.stream_full_episodes_snapshot(range(len(streams)))
    queue = inbox.snapshot()
    out_streams: Dict[str, Dict[str, Any]] = {}
    for s, sender, (pending, high_water), full_episodes in zip(streams, senders, per_stream, full):
        out_streams[s.name] = {
            "url": s.url,
            "connected": s.connected,
            "since": iso_time(s.since),
            "connects": s.connects,
            "messages_received": s.received,
            "messages_stored": s.stored,
            "bytes_received": s.received_bytes,
            "requests": s.requests,
            "requests_dropped": s.requests_dropped,
            "requests_merged": s.requests_merged,
            "request_budget_episodes": s.budget_episodes,
            "answers_sent": s.answers_sent,
            "messages_sent": s.messages_sent,
            "answer_latency_ms": s.answer_latency_ms(),
            "answers_pending": sender.pending(),
            "errors": s.errors(),
            "queue_pending": pending,
            "queue_high_water": high_water,
            "queue_full_episodes": full_episodes,
            "send_queue_high_water": s.send_queue_high_water,
            "last_event": iso_time(s.last_event),
            # metrics (issue 12)
            "last_event_epoch": None if s.last_event is None else round(s.last_event, 3),
            **_stored(events.stream(s.name)),
            "answer_seconds": _histogram(s),
        }
    return {
        "version": STATUS_VERSION,
        "pid": os.getpid(),
        "state": state,
        "started": iso_time(started),
        "updated": iso_time(now),
        "updated_epoch": round(now, 3),
        "db": str(db),
        "db_bytes": db_bytes(db),
        "package_version": __version__,
        "queue": queue,
        "worker": {
            "messages": worker.messages,
            "stored": worker.messages,
            "held": worker.held,
            "unstored": worker.held + int(queue["depth"]),
            "ignored": worker.ignored,
            "retries": worker.retries,
            "store_failure_episodes": worker.store_failure_episodes,
            "batches": worker.batches,
            "max_batch": worker.max_batch,
            "max_commit_latency_ms": round(worker.max_commit_latency_s * 1000.0, 3),
            "last_commit": iso_time(worker.last_commit),
            "errors": worker.errors(),
        },
        "streams": out_streams,
    }


def _stored(counts: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        "stored": counts["stored"],
        "invalid": counts["invalid"],
        "requests_by_content": counts["requests"],
    }


def _histogram(s: StreamStats) -> Optional[Dict[str, Any]]:
    histogram = getattr(s.answer_latencies, "histogram", None)
    return histogram() if histogram is not None else None


def db_bytes(db: Path) -> int:
    """Size of the database file plus its write-ahead log (what the store takes on disk)."""
    total = 0
    for path in (str(db), str(db) + "-wal"):
        try:
            total += os.stat(path).st_size
        except OSError:
            pass
    return total


def write_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Replace path with the JSON document in one rename (never a partial file)."""
    replace_file(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def read(path: Path) -> Dict[str, Any]:
    """The status document at path; ValueError when it is not one."""
    with open(str(path), encoding="utf-8") as handle:
        document = json.load(handle)
    if not isinstance(document, dict) or not isinstance(document.get("streams"), dict):
        raise ValueError(f"{path}: not a practable-analytics status file")
    return document


def stream_event_counts(db: Path) -> Dict[str, Dict[str, Any]]:
    """Per stream: number of stored events and the last receive time, read-only (never creates the file).

    Events stored without a stream (replay, import-legacy) are counted under "". Raises StoreError.
    """
    from practable_analytics.store import Store  # noqa: PLC0415 (numpy only when a database is read)

    with Store(db, readonly=True, busy_timeout_s=5.0) as store:
        counts = store.stream_event_counts()
    return {name: {"events": n, "last_received": iso_time(last)} for name, (n, last) in counts.items()}


def render(documents: Sequence[Mapping[str, Any]], counts: Optional[Mapping[str, Mapping[str, Any]]],
           now: Optional[float] = None) -> List[str]:  # fmt: skip
    """Human-readable lines for the status command."""
    now = time.time() if now is None else now
    lines: List[str] = []
    for doc in documents:
        age = now - float(doc.get("updated_epoch") or 0.0)
        stale = age > 10.0 and doc.get("state") != "stopped"
        lines.append(
            f"service pid {doc.get('pid')}  state {doc.get('state')}  started {doc.get('started')}  "
            f"updated {age:.1f} s ago{'  (STALE: not running?)' if stale else ''}"
        )
        q = doc.get("queue") or {}
        w = doc.get("worker") or {}
        lines.append(
            f"  queue {q.get('depth')}/{q.get('limit')} (high-water {q.get('high_water')}, "
            f"full {q.get('full_episodes')} times)  stored {w.get('stored', w.get('messages'))} messages in "
            f"{w.get('batches')} commits, unstored {w.get('unstored', 0)}, "
            f"worst commit latency {w.get('max_commit_latency_ms')} ms"
            + (f", errors {_errors(w.get('errors'))}" if w.get("errors") else "")
        )
        for name, s in sorted((doc.get("streams") or {}).items()):
            state = "connected" if s.get("connected") else "DISCONNECTED"
            lines.append(f"  {name}: {state} since {s.get('since')}  {s.get('url')}")
            in_db = None if counts is None else counts.get(name, {}).get("events", 0)
            stored = ""
            if "messages_stored" in s:  # committed by this service (the status file's own count)
                stored = f"  stored {s.get('messages_stored')}"
            elif in_db is not None:
                stored = f"  stored {in_db}"
            dropped = f" ({s.get('requests_dropped')} over budget)" if s.get("requests_dropped") else ""
            lines.append(
                f"    received {s.get('messages_received')}{stored}  requests {s.get('requests')}{dropped}  "
                f"answers sent {s.get('answers_sent')}  queue high-water {s.get('queue_high_water')}  "
                f"last event {s.get('last_event')}"
                + (f"  in database {in_db}" if in_db is not None and "messages_stored" in s else "")
            )
            latency = s.get("answer_latency_ms") or {}
            if latency.get("count"):
                lines.append(
                    f"    answer latency in the service: p50 {latency.get('p50')} ms"
                    f"  p95 {latency.get('p95')} ms  max {latency.get('max')} ms"
                    f" (last {latency.get('count')} answers)"
                )
            if s.get("errors"):
                lines.append(f"    errors {_errors(s.get('errors'))}")
    if counts is not None:
        lines.append("events stored per stream:")
        if not counts:
            lines.append("  (none)")
        for name, c in sorted(counts.items()):
            label = name if name else "(no stream: replay/import)"
            lines.append(f"  {label}: {c.get('events')} events, last received {c.get('last_received')}")
    return lines


def _errors(errors: object) -> str:
    if not isinstance(errors, dict):
        return "?"
    return ", ".join(f"{k}={v}" for k, v in sorted(errors.items()))
