"""The bounded queue between the stream readers and the worker.

Readers only append (stream index, opcode, payload bytes, receive time); the worker takes batches.

When the inbox is full (count or bytes) the reader *waits* for room instead of dropping: a dropped
message is lost for certain, while a reader that pauses only lets the relay's bytes pile up in the
TCP buffers, which hold many seconds of traffic (SPEC section 4: ~12,000 messages over 13 s) before
the relay host starts losing anything. The bounds are large (100,000 messages, 256 MiB by default),
so reaching them means the worker has been stuck for a long time; every such episode is logged
loudly and counted in the status file.
"""

import collections
import logging
import threading
import time
from typing import Deque, List, Optional, Sequence, Tuple

LOG = logging.getLogger(__name__)

# (stream index, websocket opcode, payload, receive time in epoch seconds)
Item = Tuple[int, int, bytes, float]


class Inbox:
    """Thread-safe bounded FIFO with per-stream pending counts and high-water marks."""

    def __init__(self, n_streams: int, max_items: int = 100_000, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("inbox bounds must be positive")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: Deque[Item] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._bytes = 0
        self._closed = False
        self._worker_waiting = False
        self.pending = [0] * n_streams
        self.stream_high_water = [0] * n_streams
        self.high_water = 0
        self.high_water_bytes = 0
        self.full_episodes = 0
        self.full_wait_s = 0.0
        self._thresholds = sorted(
            {t for t in (1_000, 10_000, max_items // 2, (max_items * 9) // 10) if 0 < t < max_items}
        )
        self._next_threshold = 0
        self._full_since: Optional[float] = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Item, stop: Optional[threading.Event] = None) -> bool:
        """Append one item, waiting while the inbox is full. False if stopped/closed while waiting."""
        return self.put_many([item], stop) == 1

    def put_many(self, items: Sequence[Item], stop: Optional[threading.Event] = None) -> int:
        """Append items in order under one lock, waiting for room as needed; returns how many went in
        (fewer only when stopped or closed while waiting)."""
        done = 0
        with self._lock:
            for item in items:
                if self._closed:
                    break
                size = len(item[2])
                if len(self._items) >= self.max_items or (
                    self._bytes + size > self.max_bytes and self._items
                ):
                    if done and self._worker_waiting:
                        self._not_empty.notify()
                    if not self._wait_for_room(size, stop):
                        break
                self._items.append(item)
                self._bytes += size
                stream = item[0]
                pending = self.pending[stream] + 1
                self.pending[stream] = pending
                self.stream_high_water[stream] = max(self.stream_high_water[stream], pending)
                done += 1
            if done:
                self._note_depth()
        return done

    def _note_depth(self) -> None:
        # Called with the lock held, after appending: high-water marks, threshold logs, wake the worker.
        depth = len(self._items)
        if depth > self.high_water:
            self.high_water = depth
            thresholds = self._thresholds
            if self._next_threshold < len(thresholds) and depth >= thresholds[self._next_threshold]:
                while (
                    self._next_threshold < len(self._thresholds)
                    and depth >= self._thresholds[self._next_threshold]
                ):
                    self._next_threshold += 1
                LOG.warning(
                    "inbox high-water mark %d messages (limit %d): the worker is behind",
                    depth,
                    self.max_items,
                )
        self.high_water_bytes = max(self.high_water_bytes, self._bytes)
        if self._worker_waiting:
            self._not_empty.notify()

    # -- for an event loop that must never block (transport) -------------------------------------
    def room(self, stream_index: int) -> bool:
        """False when the inbox is at its bound: the caller stops reading until it is True again.

        Each stretch of False answers counts as one full episode (full_episodes, full_wait_s)."""
        full = self._closed or len(self._items) >= self.max_items or self._bytes >= self.max_bytes
        if full and not self._closed and self._full_since is None:
            with self._lock:
                self.full_episodes += 1
                self._full_since = time.monotonic()
        elif not full and self._full_since is not None:
            with self._lock:
                if self._full_since is not None:
                    self.full_wait_s += time.monotonic() - self._full_since
                    self._full_since = None
        return not full

    def put_nowait_many(self, items: Sequence[Item]) -> None:
        """Append items in order under one lock, never waiting (may exceed the bound by one read)."""
        if not items:
            return
        with self._lock:
            append = self._items.append
            pending = self.pending
            high = self.stream_high_water
            size = 0
            for item in items:
                append(item)
                size += len(item[2])
                stream = item[0]
                n = pending[stream] + 1
                pending[stream] = n
                high[stream] = max(high[stream], n)
            self._bytes += size
            self._note_depth()

    def _wait_for_room(self, size: int, stop: Optional[threading.Event]) -> bool:
        # Called with the lock held.
        self.full_episodes += 1
        LOG.error(
            "inbox full (%d messages, %d bytes): reader paused until the worker catches up; "
            "the relay buffers meanwhile",
            len(self._items),
            self._bytes,
        )
        started = time.monotonic()
        try:
            while len(self._items) >= self.max_items or (self._bytes + size > self.max_bytes and self._items):
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                self._not_full.wait(0.2)
            return True
        finally:
            self.full_wait_s += time.monotonic() - started

    def get_batch(self, max_items: int, timeout: float) -> List[Item]:
        """Up to max_items items, waiting at most timeout for the first; [] on timeout or when closed."""
        with self._lock:
            if not self._items and not self._closed:
                self._worker_waiting = True
                try:
                    self._not_empty.wait(timeout)
                finally:
                    self._worker_waiting = False
            n = min(max_items, len(self._items))
            if n == 0:
                return []
            popleft = self._items.popleft
            batch = [popleft() for _ in range(n)]
            pending = self.pending
            size = 0
            for item in batch:
                pending[item[0]] -= 1
                size += len(item[2])
            self._bytes -= size
            self._not_full.notify_all()
            return batch

    def close(self) -> None:
        """No more puts; wake everyone. Items already in stay for the worker to drain."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "depth": len(self._items),
                "bytes": self._bytes,
                "high_water": self.high_water,
                "high_water_bytes": self.high_water_bytes,
                "limit": self.max_items,
                "limit_bytes": self.max_bytes,
                "full_episodes": self.full_episodes,
                "full_wait_s": round(self.full_wait_s, 3),
            }

    def stream_snapshot(self, indexes: Sequence[int]) -> List[Tuple[int, int]]:
        with self._lock:
            return [(self.pending[i], self.stream_high_water[i]) for i in indexes]
