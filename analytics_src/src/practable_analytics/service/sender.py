"""Per-stream answer queue, sent by the event loop (service/loop.py), paced.

The relay host drops a message that reaches a client while the host's writer toward that client is
still busy with the previous one (SPEC section 4), so consecutive messages of one stream go out at
least ``spacing_s`` apart. The worker thread calls ``submit``; the loop thread takes the answers and
sends them with timers of its own (no thread per stream). Answers wait up to ``ttl_s`` for a
connection (the stream may be reconnecting); older ones are dropped and counted.
"""

import collections
import logging
import threading
import time
from typing import Callable, Deque, List, Optional

from practable_analytics.service.config import ServeConfig
from practable_analytics.service.stats import StreamStats

LOG = logging.getLogger(__name__)


class Answer:
    """The encoded messages of one answer and how far sending them got."""

    __slots__ = ("deadline", "messages", "next", "received")

    def __init__(self, deadline: float, received: float, messages: List[str]) -> None:
        self.deadline = deadline  # time.monotonic() after which nobody waits for it
        self.received = received  # the request's receive time, monotonic clock (s)
        self.messages = messages
        self.next = 0  # index of the next message to send


class Sender:
    """One stream's answers: ``submit`` from any thread, taken in order by the event loop."""

    def __init__(
        self,
        name: str,
        stats: StreamStats,
        *,
        wake: Optional[Callable[[int], None]] = None,
        index: int = 0,
        spacing_s: float = ServeConfig.send_spacing_s,
        ttl_s: float = ServeConfig.answer_ttl_s,
        max_pending: int = 1000,
    ) -> None:
        self.name = name
        self.stats = stats
        self.index = index
        self.spacing_s = max(0.0, spacing_s)
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self._wake = wake
        self._answers: Deque[Answer] = collections.deque()
        self._lock = threading.Lock()
        self._late = 0
        self.current: Optional[Answer] = None  # loop thread only: the answer being sent
        self.stopping = False
        self.drain_until = 0.0

    def attach(self, wake: Callable[[int], None], index: int) -> None:
        """Called by the loop that sends for this stream."""
        self._wake = wake
        self.index = index

    # -- the seam: worker thread (any thread) --------------------------------------------------
    def submit(self, messages: List[str], received: Optional[float] = None) -> None:
        """Queue one answer (its messages already encoded) to go out in order; received is the
        request's receive time on the monotonic clock (``time.monotonic()``, default: now), for the
        answer latency figures. Never blocks."""
        if not messages:
            return
        now = time.monotonic()
        answer = Answer(now + self.ttl_s, now if received is None else received, messages)
        with self._lock:
            if len(self._answers) >= self.max_pending:
                # Requests arrive faster than paced answers can go out: the oldest answer is the
                # least useful one. Bounded memory beats an ever-growing backlog.
                self._answers.popleft()
                self.stats.error("answer_overflow")
                self.log_dropped("answer backlog full")
            self._answers.append(answer)
            depth = len(self._answers)
        self.stats.send_queue_high_water = max(self.stats.send_queue_high_water, depth)
        if self._wake is not None:
            self._wake(self.index)

    def pending(self) -> int:
        """Answers not yet completely sent."""
        return len(self._answers) + (1 if self.current is not None else 0)

    def stop(self, drain_s: float = 0.0) -> None:
        """Finish: send what is queued for up to drain_s more seconds, then drop the rest (counted)."""
        self.drain_until = time.monotonic() + max(0.0, drain_s)
        self.stopping = True
        if self._wake is not None:
            self._wake(self.index)

    # -- loop thread ----------------------------------------------------------------------------
    def take(self) -> Optional[Answer]:
        """The next queued answer (None when there is none)."""
        with self._lock:
            return self._answers.popleft() if self._answers else None

    def first_deadline(self) -> Optional[float]:
        with self._lock:
            return self._answers[0].deadline if self._answers else None

    def drop_all(self) -> int:
        """Drop every queued answer (and the one in progress); returns how many."""
        with self._lock:
            n = len(self._answers)
            self._answers.clear()
        if self.current is not None:
            n += 1
            self.current = None
        return n

    def log_dropped(self, what: str) -> None:
        self._late += 1
        if self._late == 1 or self._late % 100 == 0:
            LOG.warning("stream %s: %s (%d answers dropped so far)", self.name, what, self._late)
