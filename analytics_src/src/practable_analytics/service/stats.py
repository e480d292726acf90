"""Counters the threads update and the status file reports.

Each plain counter has one writing thread (reader, sender or worker), so no lock is needed for it;
error counts are written by several threads and sit behind a lock.
"""

import bisect
import collections
import json
import threading
import time
from datetime import datetime, timezone
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence, Tuple


def iso_time(epoch_s: Optional[float]) -> Optional[str]:
    """ISO 8601 UTC text for an epoch time in seconds (None stays None)."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).isoformat(timespec="milliseconds")


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` spends one when there is one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.tokens = self.burst
        self.stamp: Optional[float] = None

    def _refill(self, now: float) -> None:
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Spend ``amount`` tokens (monotonic time ``now``); False when the budget is used up."""
        self._refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class StreamStats:
    """What one stream did: connection state, traffic and errors by kind."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.connected = False
        self.since: float = time.time()  # when `connected` last changed
        self.connects = 0
        self.received = 0  # data frames read from the relay (reader thread)
        self.received_bytes = 0
        self.last_event: Optional[float] = None  # receive time of the last data frame
        self.stored = 0  # messages of this stream committed to the database (worker thread)
        self.requests = 0  # requests answered (worker thread)
        self.requests_dropped = 0  # requests beyond the (stream, user) budget, not answered (worker)
        self.requests_merged = 0  # identical requests answered once with an earlier one (worker)
        self.budget_episodes = 0  # times a user of this stream went over the request budget (worker)
        self.answers_sent = 0  # answers whose every message went out (sender thread)
        self.messages_sent = 0  # individual response messages sent (sender thread)
        self.send_queue_high_water = 0
        # request received -> last message of its answer sent, seconds (sender thread; recent ones)
        self.answer_latencies: Deque[float] = LatencyRecord(maxlen=1000)
        self._errors: Dict[str, int] = {}
        self._lock = threading.Lock()

    def set_connected(self, connected: bool, when: Optional[float] = None) -> None:
        self.connected = connected
        self.since = time.time() if when is None else when
        if connected:
            self.connects += 1

    def error(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + count

    def errors(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def answer_latency_ms(self) -> Dict[str, Optional[float]]:
        """p50/p95/max of the recent answers' latency inside the service (receive -> last send)."""
        values = sorted(list(self.answer_latencies))
        if not values:
            return {"count": 0, "p50": None, "p95": None, "max": None}
        n = len(values)

        def pick(q: float) -> float:
            return round(values[min(n - 1, int(q * n))] * 1000.0, 3)

        return {"count": n, "p50": pick(0.5), "p95": pick(0.95), "max": round(values[-1] * 1000.0, 3)}


class WorkerStats:
    """What the worker did: messages committed, commits, commit latency and errors by kind."""

    def __init__(self) -> None:
        self.batches = 0  # commits (transactions)
        self.messages = 0  # messages committed: equals the rows the worker added to the database
        self.held = 0  # received and parsed, waiting for a commit that works
        self.ignored = 0  # messages that are not stored by design (``response`` messages)
        self.retries = 0  # failed commits retried
        self.store_failure_episodes = 0  # times storage started failing
        self.max_batch = 0
        self.max_commit_latency_s = 0.0  # receive -> handled, worst seen
        self.last_commit: Optional[float] = None
        self._errors: Dict[str, int] = {}
        self._lock = threading.Lock()

    def error(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + count

    def errors(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._errors)


# ---- metrics (issue 12): cumulative figures the status file and the Prometheus metrics both read ----

# Upper bounds (s) of the answer latency histogram buckets; +Inf is implied.
ANSWER_BUCKETS_S: Tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyRecord(collections.deque):  # type: ignore[type-arg]
    """The recent answer latencies (a bounded deque, for p50/p95) plus a cumulative histogram of all
    of them since the start: ``append`` feeds both, so the two can never disagree."""

    def __init__(self, maxlen: int = 1000, bounds: Sequence[float] = ANSWER_BUCKETS_S) -> None:
        super().__init__(maxlen=maxlen)
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # per bucket, not cumulative; last: above all
        self._sum = 0.0
        self._hist_lock = threading.Lock()

    def append(self, seconds: float) -> None:  # type: ignore[override]
        value = max(0.0, float(seconds))
        with self._hist_lock:
            self._counts[bisect.bisect_left(self.bounds, value)] += 1
            self._sum += value
        super().append(value)

    def histogram(self) -> Dict[str, Any]:
        """{"le": bounds, "counts": cumulative counts per bound, "count": all, "sum": seconds}."""
        with self._hist_lock:
            counts = list(self._counts)
            total = self._sum
        cumulative: List[int] = []
        running = 0
        for c in counts[:-1]:
            running += c
            cumulative.append(running)
        return {"le": list(self.bounds), "counts": cumulative, "count": running + counts[-1],
                "sum": round(total, 6)}  # fmt: skip


class EventCounts:
    """Events committed to the store per stream since the start: all, ``invalid`` ones, and valid
    requests by their content (the worker writes after each commit; status readers take copies)."""

    def __init__(self, contents: Iterable[str] = ()) -> None:
        self.contents = frozenset(contents)  # request contents counted by name; others as "other"
        self._streams: Dict[str, Dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _content(self, raw: str) -> str:
        try:
            payload = json.loads(raw).get("payload")
            content = payload.get("content") if isinstance(payload, dict) else None
        except (ValueError, AttributeError):
            content = None
        return content if content in self.contents else "other"

    def committed(self, events: Iterable[Any]) -> None:
        """Count events (with ``stream``, ``type`` and ``raw``) that have just been committed."""
        with self._lock:
            for e in events:
                entry = self._streams.get(e.stream or "")
                if entry is None:
                    entry = self._streams[e.stream or ""] = {"stored": 0, "invalid": 0, "requests": {}}
                entry["stored"] += 1
                if e.type == "invalid":
                    entry["invalid"] += 1
                elif e.type == "request":
                    content = self._content(e.raw)
                    entry["requests"][content] = entry["requests"].get(content, 0) + 1

    def stream(self, name: str) -> Dict[str, Any]:
        """{"stored": n, "invalid": n, "requests": {content: n}} for one stream (zeros if none)."""
        with self._lock:
            entry = self._streams.get(name)
            if entry is None:
                return {"stored": 0, "invalid": 0, "requests": {}}
            return {
                "stored": entry["stored"],
                "invalid": entry["invalid"],
                "requests": dict(entry["requests"]),
            }
