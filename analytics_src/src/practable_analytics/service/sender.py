"""Per-stream sender: sends the messages of answers in order, paced.

The relay host drops a message that reaches a client while the host's writer toward that client is
still busy with the previous one (SPEC section 4), so consecutive messages go out at least
``spacing_s`` apart. Sending never happens on the reader thread, so a slow send never holds up
reading. Answers wait up to ``ttl_s`` for a connection (the stream may be reconnecting); older
ones are dropped and counted.
"""

import collections
import logging
import threading
import time
from typing import Any, Deque, List, Optional, Tuple

from practable_analytics.service.link import Link
from practable_analytics.service.stats import StreamStats

LOG = logging.getLogger(__name__)


class Sender(threading.Thread):
    """Sends queued answers for one stream with at least spacing_s between messages."""

    def __init__(
        self,
        name: str,
        link: Link,
        stats: StreamStats,
        *,
        spacing_s: float = 0.001,
        ttl_s: float = 10.0,
        max_pending: int = 1000,
    ) -> None:
        super().__init__(name=f"send-{name}", daemon=True)
        self.link = link
        self.stats = stats
        self.spacing_s = max(0.0, spacing_s)
        self.ttl_s = ttl_s
        self.max_pending = max_pending
        self._late = 0
        self._answers: Deque[Tuple[float, float, List[str]]] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._drain_until = 0.0
        self._last_send = 0.0

    def submit(self, messages: List[str], received: Optional[float] = None) -> None:
        """Queue one answer (its messages already encoded) to go out in order; received is the
        request's receive time (epoch s), for the answer latency figures."""
        if not messages:
            return
        with self._cond:
            if len(self._answers) >= self.max_pending:
                # Requests arrive faster than paced answers can go out: the oldest answer is the
                # least useful one. Bounded memory beats an ever-growing backlog.
                self._answers.popleft()
                self.stats.error("answer_overflow")
                self._log_late("answer backlog full")
            self._answers.append(
                (time.monotonic() + self.ttl_s, time.time() if received is None else received, messages)
            )
            depth = len(self._answers)
            self.stats.send_queue_high_water = max(self.stats.send_queue_high_water, depth)
            self._cond.notify()

    def stop(self, drain_s: float = 0.0) -> None:
        """Finish: send what is queued for up to drain_s more seconds, then drop the rest (counted)."""
        with self._cond:
            self._drain_until = time.monotonic() + drain_s
            self._stopping = True
            self._cond.notify_all()
        self.link.wake()

    def pending(self) -> int:
        return len(self._answers)

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._answers and not self._stopping:
                    self._cond.wait()
                if self._stopping and (not self._answers or time.monotonic() > self._drain_until):
                    dropped = len(self._answers)
                    if dropped:
                        self.stats.error("answer_unsent_at_stop", dropped)
                        self._answers.clear()
                    return
                deadline, received, messages = self._answers.popleft()
            if time.monotonic() > deadline:  # waited in the backlog past its ttl: nobody waits for it
                self.stats.error("answer_expired")
                self._log_late("answer expired in the backlog")
                continue
            if self._stopping:
                deadline = min(deadline, self._drain_until)
            self._send_answer(deadline, received, messages)

    def _log_late(self, what: str) -> None:
        self._late += 1
        if self._late == 1 or self._late % 100 == 0:
            LOG.warning("stream %s: %s (%d answers dropped so far)", self.stats.name, what, self._late)

    def _send_answer(self, deadline: float, received: float, messages: List[str]) -> None:
        for i, text in enumerate(messages):
            ws = self._wait_for_link(deadline)
            if ws is None:
                self.stats.error("answer_expired" if not self._stopping else "answer_unsent_at_stop")
                LOG.warning(
                    "stream %s: answer dropped, not connected (%d of %d messages sent)",
                    self.stats.name,
                    i,
                    len(messages),
                )
                return
            wait = self._last_send + self.spacing_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                ws.send(text)
            except Exception as exc:  # noqa: BLE001 (any socket failure: count it, the reader reconnects)
                self.stats.error("send_failed")
                LOG.warning(
                    "stream %s: send failed (%s); answer dropped", self.stats.name, type(exc).__name__
                )
                return
            finally:
                self._last_send = time.monotonic()
            self.stats.messages_sent += 1
        self.stats.answers_sent += 1
        self.stats.answer_latencies.append(time.time() - received)

    def _wait_for_link(self, deadline: float) -> Optional[Any]:
        while True:
            remaining = deadline - time.monotonic()
            ws = self.link.wait(min(remaining, 0.5))
            if ws is not None:
                return ws
            if remaining <= 0 or self._stopping:
                return None
