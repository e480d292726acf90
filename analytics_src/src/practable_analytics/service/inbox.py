"""The bounded queue between the stream readers and the worker: one FIFO per stream, taken fairly.

Readers only append (stream index, opcode, payload bytes, receive time); the worker takes batches.
Each stream has its own FIFO and the worker takes them round-robin, so a stream that floods the
service only ever delays itself: another stream's next message waits for at most one share of one
batch, whatever the flood's backlog.

Bounds: the whole inbox (count and bytes, plus what the worker holds received but not yet committed,
see :meth:`Inbox.set_held`) and each stream's share (``max_items // streams``). At a bound the reader
*stops reading* (``room(i)`` is False, or ``put_many`` waits) instead of dropping: a dropped message
is lost for certain, while a reader that pauses only lets the relay's bytes pile up in the TCP buffers,
which hold many seconds of traffic (SPEC section 4) before the relay host starts losing anything.
Every such episode is logged and counted in the status file (``full_episodes``, ``full_wait_s``).

Wake-ups: a worker waiting in ``get_batch(..., min_items=k)`` (its commit window, see the worker) is
woken when k items are in, at its timeout, at close, or at once by a frame that may be a request
(its bytes contain ``request``: a dashboard's answer must not wait for the window). Waking the worker
for every frame costs more CPU than storing the frame; a request escaped beyond recognition (JSON
``\u0072equest``) only waits for the window, which ends within 10 ms anyway.
"""

import collections
import logging
import threading
import time
from typing import Deque, List, Optional, Sequence, Tuple

from practable_analytics.service.config import ServeConfig

LOG = logging.getLogger(__name__)

# (stream index, websocket opcode, payload, receive time in epoch seconds, receive time on the
# monotonic clock). The epoch time is what the store keeps (received_at); every duration (the commit
# window, commit and answer latencies) is measured on the monotonic clock, which a step of the wall
# clock (NTP, a Raspberry Pi without RTC setting its time) cannot move.
Item = Tuple[int, int, bytes, float, float]
REQUEST_MARK = b"request"


def received_now(stream: int, opcode: int, payload: bytes) -> Item:
    """An item received now (the event loop stamps a whole read's frames itself, inline)."""
    return (stream, opcode, payload, time.time(), time.monotonic())


class Inbox:
    """Thread-safe bounded per-stream FIFOs with round-robin batches and high-water marks."""

    def __init__(
        self,
        n_streams: int,
        max_items: int = ServeConfig.queue_size,
        max_bytes: int = ServeConfig.queue_bytes,
    ) -> None:
        if max_items < 1 or max_bytes < 1 or n_streams < 1:
            raise ValueError("inbox bounds must be positive")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.stream_limit = max(1, max_items // n_streams)
        self._queues: List[Deque[Item]] = [collections.deque() for _ in range(n_streams)]
        self._count = 0
        self._next = 0  # the stream the next batch starts with (round-robin)
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._bytes = 0
        self._held = 0
        self._held_bytes = 0
        self._closed = False
        self._worker_waiting = False
        self._wake_at = 1  # items that wake the waiting worker (its min_items)
        self._urgent = False  # a frame that may be a request came in while the worker waited
        self._full = [False] * n_streams  # a stream currently refused room (for episode counting)
        self._full_since = [0.0] * n_streams
        self.pending = [0] * n_streams
        self.stream_high_water = [0] * n_streams
        self.stream_full_episodes = [0] * n_streams
        self.high_water = 0
        self.high_water_bytes = 0
        self.full_episodes = 0
        self.full_wait_s = 0.0
        self._thresholds = sorted(
            {t for t in (1_000, 10_000, max_items // 2, (max_items * 9) // 10) if 0 < t < max_items}
        )
        self._next_threshold = 0

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def closed(self) -> bool:
        return self._closed

    # -- room ------------------------------------------------------------------------------------
    def _has_room(self, stream: int) -> bool:
        # Called with the lock held.
        return (
            self._count + self._held < self.max_items
            and (self._bytes + self._held_bytes < self.max_bytes or self._count == 0)
            and len(self._queues[stream]) < self.stream_limit
        )

    def room(self, stream_index: int) -> bool:
        """False while the inbox or this stream's share is at its bound: stop reading that socket
        until it is True again (the episode is logged once and counted)."""
        # Fast path without the lock (the loop asks before every read): the answer is advisory, a
        # put may go past the bound by one read's worth anyway. Any doubt takes the locked path,
        # which also ends or starts the episode.
        if (
            not self._full[stream_index]
            and not self._closed
            and self._count + self._held < self.max_items
            and self._bytes + self._held_bytes < self.max_bytes
            and len(self._queues[stream_index]) < self.stream_limit
        ):
            return True
        with self._lock:
            ok = self._has_room(stream_index)
            if ok:
                self._end_full(stream_index)
            else:
                self._start_full(stream_index)
            return ok and not self._closed

    def _start_full(self, stream: int) -> None:
        if self._full[stream]:
            return
        self._full[stream] = True
        self._full_since[stream] = time.monotonic()
        self.full_episodes += 1
        self.stream_full_episodes[stream] += 1
        LOG.error(
            "inbox full (stream %d: %d of %d; all: %d messages, %d bytes, %d held by the worker):"
            " reading paused until the worker catches up; the relay buffers meanwhile",
            stream,
            len(self._queues[stream]),
            self.stream_limit,
            self._count,
            self._bytes,
            self._held,
        )

    def _end_full(self, stream: int) -> None:
        if self._full[stream]:
            self._full[stream] = False
            self.full_wait_s += time.monotonic() - self._full_since[stream]

    def set_held(self, items: int, size: int) -> None:
        """What the worker holds received but not yet committed (it counts against the bounds)."""
        with self._lock:
            self._held = max(0, items)
            self._held_bytes = max(0, size)
            if self._has_room(0) or self._count == 0:
                self._not_full.notify_all()

    # -- put -------------------------------------------------------------------------------------
    def put(self, item: Item, stop: Optional[threading.Event] = None) -> bool:
        """Append one item, waiting while there is no room. False if stopped/closed while waiting."""
        return self.put_many([item], stop) == 1

    def put_nowait_many(self, items: Sequence[Item], maybe_request: Optional[bool] = None) -> None:
        """Append items in order without ever waiting (the caller asked ``room`` before reading; one
        read's worth may go past the bound). ``maybe_request``: whether any item's bytes contain
        ``request`` (the event loop already looked, for its read hold); None: the inbox looks."""
        if not items:
            return
        with self._lock:
            if self._closed:
                return
            if len(items) == 1 or len({item[0] for item in items}) == 1:
                self._append_run(items)
            else:
                for item in items:
                    self._append(item, scan=False)
            if self._wake_at > 1 and not self._urgent:
                if maybe_request is None:
                    maybe_request = any(REQUEST_MARK in item[2] for item in items)
                self._urgent = maybe_request
            self._after_put()

    def _append_run(self, items: Sequence[Item]) -> None:
        # Called with the lock held: items of one stream (the usual round), one deque extend.
        stream = items[0][0]
        queue = self._queues[stream]
        queue.extend(items)
        self._count += len(items)
        size = 0
        for item in items:
            size += len(item[2])
        self._bytes += size
        pending = len(queue)
        self.pending[stream] = pending
        self.stream_high_water[stream] = max(self.stream_high_water[stream], pending)

    def put_many(self, items: Sequence[Item], stop: Optional[threading.Event] = None) -> int:
        """Append items in order, waiting for room as needed; returns how many went in (fewer only
        when stopped or closed while waiting)."""
        done = 0
        with self._lock:
            for item in items:
                if self._closed:
                    break
                if not self._has_room(item[0]):
                    if done:
                        self._after_put()
                    if not self._wait_for_room(item[0], stop):
                        break
                self._append(item)
                done += 1
            if done:
                self._after_put()
        return done

    def _append(self, item: Item, scan: bool = True) -> None:
        # Called with the lock held; scan: look for a request in it (put_nowait_many looks itself).
        stream = item[0]
        queue = self._queues[stream]
        queue.append(item)
        self._count += 1
        self._bytes += len(item[2])
        if scan and self._wake_at > 1 and not self._urgent and REQUEST_MARK in item[2]:
            self._urgent = True
        pending = len(queue)
        self.pending[stream] = pending
        self.stream_high_water[stream] = max(self.stream_high_water[stream], pending)

    def _after_put(self) -> None:
        # Called with the lock held.
        depth = self._count
        if depth > self.high_water:
            self.high_water = depth
            if (
                self._next_threshold < len(self._thresholds)
                and depth >= self._thresholds[self._next_threshold]
            ):
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
        if self._worker_waiting and (self._count >= self._wake_at or self._urgent):
            self._not_empty.notify()

    def _wait_for_room(self, stream: int, stop: Optional[threading.Event]) -> bool:
        # Called with the lock held.
        self._start_full(stream)
        try:
            while not self._has_room(stream):
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                self._not_full.wait(0.2)
            return True
        finally:
            self._end_full(stream)

    # -- take ------------------------------------------------------------------------------------
    def get_batch(self, max_items: int, timeout: float, min_items: int = 1) -> List[Item]:
        """Up to max_items items, taken round-robin from the streams that have some (in each
        stream's order), waiting at most timeout for ``min_items`` of them (or a frame that may be a
        request, or close); whatever is in at the timeout ([] if nothing, or when closed)."""
        with self._lock:
            if self._count < min_items and not self._closed and timeout > 0:
                self._worker_waiting = True
                self._wake_at = max(1, min_items)
                self._urgent = False
                deadline = time.monotonic() + timeout
                try:
                    while self._count < self._wake_at and not self._urgent and not self._closed:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._not_empty.wait(left)
                finally:
                    self._worker_waiting = False
                    self._wake_at = 1
                    self._urgent = False
            if self._count == 0:
                return []
            queues = self._queues
            n = len(queues)
            active = sum(1 for q in queues if q)
            share = max(1, max_items // active)
            batch: List[Item] = []
            size = 0
            start = self._next
            while len(batch) < max_items and self._count > len(batch):
                for k in range(n):
                    i = (start + k) % n
                    q = queues[i]
                    if not q:
                        continue
                    take = min(share, len(q), max_items - len(batch))
                    for _ in range(take):
                        item = q.popleft()
                        size += len(item[2])
                        batch.append(item)
                    self.pending[i] = len(q)
                    if len(batch) >= max_items:
                        break
            self._next = (start + 1) % n
            self._count -= len(batch)
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
                "depth": self._count,
                "bytes": self._bytes,
                "held": self._held,
                "high_water": self.high_water,
                "high_water_bytes": self.high_water_bytes,
                "limit": self.max_items,
                "limit_bytes": self.max_bytes,
                "stream_limit": self.stream_limit,
                "full_episodes": self.full_episodes,
                "full_wait_s": round(self.full_wait_s, 3),
            }

    def stream_snapshot(self, indexes: Sequence[int]) -> List[Tuple[int, int]]:
        with self._lock:
            return [(self.pending[i], self.stream_high_water[i]) for i in indexes]

    def stream_full_episodes_snapshot(self, indexes: Sequence[int]) -> List[int]:
        with self._lock:
            return [self.stream_full_episodes[i] for i in indexes]
