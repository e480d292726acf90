"""The worker: the one thread that stores and answers.

Each round it takes a batch from the inbox (round-robin over the streams, so one stream's flood
only delays itself), validates every message, commits all of the batch's events in **one**
transaction (group commit: a request never forces a commit of its own), then answers every request
of the batch from the committed store. A request is therefore answered only after every event
received before it that can change its answer is committed and on disk. When nothing held can (no
analytics or feedback event of the same student, user/exp/course, waits for a commit: the usual case
of a dashboard asking a while after the lab's last event), the answers go out at once, and the held
events, the requests' own included, wait for the commit window as any others.

Nothing received is lost while the process lives:

- A failed commit (disk full, I/O error, lock held past the busy timeout) is rolled back whole by
  the Store and the same events are retried, with backoff (0.1 s doubling to 2 s), until they commit.
  Meanwhile the worker keeps taking messages, up to the inbox's bound (what it holds counts against
  it, see ``Inbox.set_held``); at the bound the readers stop reading (logged, counted).
- Requests that cannot be answered because the store is down get the error object
  ``"store unavailable"`` at once instead of silence.
- ``stored`` counters count committed messages only.

Fairness and budgets:

- Identical requests waiting on the same commit (same stream, user, exp, course, content and
  payload) are answered once (counted as ``requests_merged``).
- Each (stream, user) has a request budget (token bucket, ``request_rate``/s, burst
  ``request_burst``); requests beyond it are stored but not answered (``requests_dropped``), with one
  WARNING line per episode (when it starts).
- What is stored of an invalid frame is at most 4 kB plus its length and hash (messages.invalid), and
  invalid events are rate limited per stream by the bytes they store (``INVALID_BYTES_RATE``/s, burst
  ``INVALID_BYTES_BURST``): a garbage flood grows the database by at most the burst plus the rate
  times its duration. The excess is counted (``invalid_dropped``) and not stored.
"""

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from practable_analytics.service.config import ServeConfig
from practable_analytics.service.frames import OP_TEXT
from practable_analytics.service.inbox import Inbox, Item
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import StreamStats, TokenBucket, WorkerStats
from practable_analytics.service.threads import name_os_thread

if TYPE_CHECKING:  # the engine's types; the worker only passes them between the Processor's steps
    from practable_analytics.events import Event
    from practable_analytics.messages import Parsed

LOG = logging.getLogger(__name__)

STORE_UNAVAILABLE = "store unavailable"
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 2.0
COMMIT_CHUNK = 5000  # most events per transaction when a backlog is committed
INVALID_BYTES_RATE = 16 * 1024.0  # bytes of invalid events stored per second and stream, sustained
INVALID_BYTES_BURST = 8 * 1024 * 1024.0
MAX_BUCKETS = 10_000  # (stream, user) request budgets kept; idle full ones are pruned beyond it
# Commit window: a batch with nothing to answer and fewer than COMMIT_MIN events waits up to
# COMMIT_WINDOW_S after its oldest message was received for more, so one transaction (and one fsync,
# one BEGIN IMMEDIATE on a file other processes share) carries more messages. 25 ms leaves most of
# the promised 100 ms to the commit itself (a shared disk's fsync stalled for >100 ms in the 500-stream
# benchmark); a request, an error to send, a stop or COMMIT_MIN events commit at once, so an answer
# never waits for the window.
COMMIT_WINDOW_S = 0.025
COMMIT_MIN = 128


class StoreUnavailableError(Exception):
    """The Processor could not commit or read (it wraps the store's own error)."""


class Processor:
    """The steps the worker drives; subclasses wrap the real Handler (see processing.py)."""

    def parse(self, stream: str, texts: Sequence[str]) -> List["Parsed"]:
        """Validate received texts of one stream (nothing stored yet)."""
        raise NotImplementedError

    def invalid_frame(self, stream: str, data: bytes, binary: bool) -> "Event":
        """The invalid event for a frame that is not UTF-8 text."""
        raise NotImplementedError

    def commit(self, events: Sequence["Event"], received: Sequence[float]) -> None:
        """Store events in one all-or-nothing transaction; StoreUnavailableError when it failed."""
        raise NotImplementedError

    def commit_for_answers(self, events: Sequence["Event"], received: Sequence[float]) -> None:
        """``commit`` for a batch whose requests are answered next: it may return before the commit
        is on disk, leaving that to ``start_sync``/``finish_sync``, which the worker calls around
        computing the answers (this default commits synced, as ``commit``)."""
        self.commit(events, received)

    def changes_answers(self, event: "Event") -> bool:
        """Whether committing ``event`` can change an answer to its student (default: always, so
        every answer waits for the commit of everything held before it)."""
        return True

    def start_sync(self) -> None:
        """Start what ``commit_for_answers`` left to do to make its commit durable (in the background)."""

    def finish_sync(self) -> None:
        """Wait until that is done; only then are the commit's events counted and its answers sent."""

    def reply(self, parsed: "Parsed") -> List[dict]:
        """Answers to one parsed message from the committed store; StoreUnavailableError if unreadable."""
        raise NotImplementedError

    def error_object(self, user: Optional[str], request: Optional[str], reason: str) -> dict:
        raise NotImplementedError

    def encode(self, response: dict) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release the store (called on the worker thread at the end)."""


# A message waiting for the commit of its batch before it is answered:
# (stream index, receive time on the monotonic clock, parsed message, merge key or None)
Waiting = Tuple[int, float, "Parsed", Optional[Tuple[Any, ...]]]
# An answer ready to go: (stream index, its encoded messages, the request's monotonic receive time)
Ready = Tuple[int, List[str], float]


class Worker(threading.Thread):
    """Drains the inbox through a Processor until the inbox is closed and everything is stored."""

    def __init__(
        self,
        *,
        inbox: Inbox,
        make_processor: Callable[[], Processor],
        names: Sequence[str],
        senders: Sequence[Sender],
        stream_stats: Sequence[StreamStats],
        stats: WorkerStats,
        batch_size: int = ServeConfig.batch_size,
        request_rate: float = ServeConfig.request_rate,
        request_burst: float = ServeConfig.request_burst,
        invalid_bytes_rate: float = INVALID_BYTES_RATE,
        invalid_bytes_burst: float = INVALID_BYTES_BURST,
        commit_window_s: float = COMMIT_WINDOW_S,
        commit_min: int = COMMIT_MIN,
    ) -> None:
        super().__init__(name="worker", daemon=True)
        self.commit_window_s = commit_window_s
        self.commit_min = min(commit_min, batch_size)
        self.inbox = inbox
        self.make_processor = make_processor
        self.names = list(names)
        self.senders = list(senders)
        self.stream_stats = list(stream_stats)
        self.stats = stats
        self.batch_size = batch_size
        self.request_rate = request_rate
        self.request_burst = request_burst
        self.ready = threading.Event()
        self.failed: Optional[BaseException] = None
        self.abandon = threading.Event()  # set by the runner at the stop deadline: give up retrying
        # received, parsed, not yet committed (in arrival order)
        self._events: List[Event] = []
        self._times: List[float] = []  # receive times, epoch s (stored as received_at)
        self._mono: List[float] = []  # the same on the monotonic clock (window and latency)
        self._streams: List[int] = []
        self._bytes: List[int] = []
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST_S
        self._failing = False
        self._buckets: Dict[Tuple[int, str], TokenBucket] = {}
        self._dropping: Dict[Tuple[int, str], int] = {}  # budget episodes in progress: drops so far
        self.invalid_bytes_rate = invalid_bytes_rate
        self.invalid_bytes_burst = invalid_bytes_burst
        self._invalid_buckets = [TokenBucket(invalid_bytes_rate, invalid_bytes_burst) for _ in self.names]

    # -- thread body -----------------------------------------------------------------------------
    def run(self) -> None:
        name_os_thread("serve-worker")
        try:
            processor = self.make_processor()
        except Exception as exc:  # noqa: BLE001 (reported to the runner, which exits non-zero)
            self.failed = exc  # the runner reports it (one line, exit status 2)
            self.ready.set()
            return
        self.ready.set()
        try:
            self._loop(processor)
        finally:
            processor.close()
        unstored = self.unstored()
        LOG.info(
            "worker finished: %d messages stored in %d commits, %d unstored",
            self.stats.messages,
            self.stats.batches,
            unstored,
        )

    def _loop(self, processor: Processor) -> None:
        inbox = self.inbox
        while not self.abandon.is_set():
            now = time.monotonic()
            backlog = len(self._events)
            if backlog and now < self._retry_at:
                # Storage is failing: keep taking (and answering "store unavailable") only while
                # what is held leaves room in the inbox's bound; otherwise just wait for the retry.
                batch: List[Item] = []
                if backlog < inbox.max_items:
                    batch = inbox.get_batch(self.batch_size, min(0.2, self._retry_at - now))
                    if batch:
                        self.take(processor, batch)
                if not batch and (inbox.closed or backlog >= inbox.max_items):  # wait, do not spin
                    self.abandon.wait(min(0.2, self._retry_at - now))
                continue
            if backlog:
                self._commit_backlog(processor, [])
                continue
            batch = inbox.get_batch(self.batch_size, 0.5)
            if batch:
                waiting = self._parse(processor, batch)
                self._gather(processor, waiting)
                while waiting and not self._needs_commit(processor, waiting):
                    # Nothing held can change these answers: they go out now, and the window goes
                    # on for what is held (the requests' own events included).
                    self._submit(self._prepare(processor, waiting))
                    waiting = []
                    self._gather(processor, waiting)
                self._commit_backlog(processor, waiting)
            elif inbox.closed and len(inbox) == 0:
                break

    def unstored(self) -> int:
        """Messages received and not committed: held by the worker plus waiting in the inbox."""
        return len(self._events) + len(self.inbox)

    # -- one batch -------------------------------------------------------------------------------
    def process(self, processor: Processor, batch: List[Item]) -> None:
        """Take one batch, commit it with whatever is held, then answer what waited on the commit."""
        waiting = self._parse(processor, batch)
        self._commit_backlog(processor, waiting)

    def _gather(self, processor: Processor, waiting: List[Waiting]) -> None:
        """Commit window: while nothing waits for an answer and fewer than ``commit_min`` events are
        held, take what arrives until ``commit_window_s`` after the oldest held message was received.
        Per message the commit costs far less in a bigger transaction (one BEGIN, one chain lookup,
        one fsync); a request arriving meanwhile ends it at once (``_loop`` answers it, and goes on
        with the window, when nothing held can change its answer)."""
        inbox = self.inbox
        while (
            self._events
            and not waiting
            and len(self._events) < self.commit_min
            and not inbox.closed
            and not self.abandon.is_set()
        ):
            left = self._mono[0] + self.commit_window_s - time.monotonic()
            if left <= 0:
                return
            held = len(self._events)
            batch = inbox.get_batch(self.batch_size - held, left, min_items=self.commit_min - held)
            if not batch:
                return
            waiting.extend(self._parse(processor, batch))

    def _needs_commit(self, processor: Processor, waiting: List[Waiting]) -> bool:
        """True when a held event could change an answer waiting here: one of the same student's
        (user, exp, course) that changes what answers read (``Processor.changes_answers``). Error
        answers read nothing. Otherwise every waiting answer is already what a commit would give."""
        keys = set()
        for _stream, _received, parsed, _key in waiting:
            request = parsed.request
            if request is not None and parsed.error is None:
                keys.add((request.user, request.exp, request.course))
        if not keys:
            return False
        return any((e.user, e.exp, e.course) in keys and processor.changes_answers(e) for e in self._events)

    def take(self, processor: Processor, batch: List[Item]) -> None:
        """While storage fails: hold the batch's events, answer its requests with the error."""
        waiting = self._parse(processor, batch)
        self._answer_unavailable(processor, waiting)
        self._publish_held()

    def _parse(self, processor: Processor, batch: List[Item]) -> List[Waiting]:
        waiting: List[Waiting] = []
        run_texts: List[str] = []
        run_items: List[Item] = []
        current = batch[0][0]
        for item in batch:
            stream, opcode, data = item[0], item[1], item[2]
            if stream != current:
                self._parse_run(processor, current, run_texts, run_items, waiting)
                current = stream
            if opcode == OP_TEXT:
                try:
                    run_texts.append(data.decode("utf-8"))
                    run_items.append(item)
                    continue
                except UnicodeDecodeError:
                    pass
            self._parse_run(processor, stream, run_texts, run_items, waiting)
            self.stream_stats[stream].error("undecodable_frame")
            event = processor.invalid_frame(self.names[stream], data, opcode != OP_TEXT)
            if self._invalid_buckets[stream].take(time.monotonic(), len(event.raw)):
                self._hold(event, item)
            else:
                self._invalid_dropped(stream)
        self._parse_run(processor, current, run_texts, run_items, waiting)
        stats = self.stats
        stats.max_batch = max(stats.max_batch, len(batch))
        return waiting

    def _parse_run(
        self,
        processor: Processor,
        stream: int,
        texts: List[str],
        items: List[Item],
        waiting: List[Waiting],
    ) -> None:
        if not texts:
            return
        parsed = processor.parse(self.names[stream], texts)
        now = time.monotonic()
        bucket = self._invalid_buckets[stream]
        for p, item in zip(parsed, items):
            event = p.event
            if event is not None:
                if event.type == "invalid" and p.error is None and not bucket.take(now, len(event.raw)):
                    self._invalid_dropped(stream)
                    continue
                self._hold(event, item)
            else:
                self.stats.ignored += 1
            if p.error is None and p.request is None:
                continue
            if not self._admit(stream, p, now):
                continue
            key: Optional[Tuple[Any, ...]] = None
            request = p.request
            if request is not None and p.error is None:
                key = (stream, request.user, request.exp, request.course, request.content,
                       json.dumps(request.payload, sort_keys=True, default=repr))  # fmt: skip
            waiting.append((stream, item[4], p, key))
        del texts[:]
        del items[:]

    def _hold(self, event: "Event", item: Item) -> None:
        self._events.append(event)
        self._times.append(item[3])
        self._mono.append(item[4])
        self._streams.append(item[0])
        self._bytes.append(len(item[2]))

    def _invalid_dropped(self, stream: int) -> None:
        stats = self.stream_stats[stream]
        before = stats.errors().get("invalid_dropped", 0)
        stats.error("invalid_dropped")
        if before == 0 or (before + 1) % 1000 == 0:
            LOG.warning(
                "stream %s: invalid frames beyond %g bytes/s (burst %g) are not stored (%d so far)",
                self.names[stream],
                self.invalid_bytes_rate,
                self.invalid_bytes_burst,
                before + 1,
            )

    # -- request budget --------------------------------------------------------------------------
    def _admit(self, stream: int, parsed: "Parsed", now: float) -> bool:
        user = ""
        if parsed.request is not None:
            user = parsed.request.user
        elif parsed.error is not None and isinstance(parsed.error.get("user"), str):
            user = parsed.error["user"]
        key = (stream, user)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._prune_buckets(now)
            bucket = self._buckets[key] = TokenBucket(self.request_rate, self.request_burst)
        if bucket.take(now):
            dropped = self._dropping.pop(key, 0)
            if dropped:  # one WARNING per episode (at its start); its end only at DEBUG
                LOG.debug(
                    "stream %s user %s: request budget episode over, %d requests were not answered",
                    self.names[stream],
                    user or "(none)",
                    dropped,
                )
            return True
        stats = self.stream_stats[stream]
        stats.requests_dropped += 1
        if key not in self._dropping:
            stats.budget_episodes += 1
            LOG.warning(
                "stream %s user %s: more than %g requests/s (burst %g): the excess is stored, not answered",
                self.names[stream],
                user or "(none)",
                self.request_rate,
                self.request_burst,
            )
        self._dropping[key] = self._dropping.get(key, 0) + 1
        return False

    def _prune_buckets(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now) and k not in self._dropping]:
            del self._buckets[key]

    # -- commit and answer -----------------------------------------------------------------------
    def _commit_backlog(self, processor: Processor, waiting: List[Waiting]) -> None:
        """Commit everything held (in chunks), then answer ``waiting``; on failure keep it all.

        When requests wait on the last chunk, its fsync runs on the processor's sync thread while
        their answers are computed here (``commit_for_answers``): the answers still go out, and the
        chunk is still counted, only once the fsync has returned."""
        while self._events:
            n = min(COMMIT_CHUNK, len(self._events))
            overlap = bool(waiting) and n == len(self._events)
            try:
                if overlap:
                    processor.commit_for_answers(self._events[:n], self._times[:n])
                else:
                    processor.commit(self._events[:n], self._times[:n])
            except StoreUnavailableError as exc:
                self._commit_failed(exc, n)
                self._answer_unavailable(processor, waiting)
                self._publish_held()
                return
            if overlap:
                processor.start_sync()
                try:
                    ready = self._prepare(processor, waiting)
                finally:
                    processor.finish_sync()
                self._committed(n)
                self._publish_held()
                self._submit(ready)
                return
            self._committed(n)
        self._publish_held()
        self._submit(self._prepare(processor, waiting))

    def _committed(self, n: int) -> None:
        now = time.time()
        stats = self.stats
        stream_stats = self.stream_stats
        per_stream: Dict[int, int] = {}
        for s in self._streams[:n]:
            per_stream[s] = per_stream.get(s, 0) + 1
        for s, count in per_stream.items():
            stream_stats[s].stored += count
        stats.messages += n
        stats.batches += 1
        stats.max_commit_latency_s = max(stats.max_commit_latency_s, time.monotonic() - self._mono[0])
        stats.last_commit = now
        del self._events[:n]
        del self._times[:n]
        del self._mono[:n]
        del self._streams[:n]
        del self._bytes[:n]
        if self._failing:
            self._failing = False
            LOG.warning("storage works again: the backlog is being committed (%d left)", len(self._events))
        self._retry_delay = RETRY_FIRST_S
        self._retry_at = 0.0

    def _commit_failed(self, exc: BaseException, n: int) -> None:
        stats = self.stats
        stats.error("store_failed")
        stats.retries += 1
        if not self._failing:
            self._failing = True
            stats.store_failure_episodes += 1
            LOG.error(
                "storing %d messages failed (%s); they are kept and retried until storage works",
                n,
                exc,
            )
        else:
            LOG.debug("retry failed (%d held): %s", len(self._events), exc)
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(RETRY_MAX_S, self._retry_delay * 2)

    def _publish_held(self) -> None:
        self.stats.held = len(self._events)
        self.inbox.set_held(len(self._events), sum(self._bytes))

    def _prepare(self, processor: Processor, waiting: List[Waiting]) -> List[Ready]:
        """The encoded answers to ``waiting``, read from the committed store (nothing sent yet)."""
        # Streams with fewer requests in this batch first (each stream keeps its order): a stream
        # flooding the service with requests does not hold up another stream's answers.
        per_stream: Dict[int, int] = {}
        for w in waiting:
            per_stream[w[0]] = per_stream.get(w[0], 0) + 1
        if len(per_stream) > 1:
            waiting = sorted(waiting, key=lambda w: per_stream[w[0]])
        done: Dict[Tuple[Any, ...], int] = {}
        failed = False
        ready: List[Ready] = []
        for stream, received, parsed, key in waiting:
            stats = self.stream_stats[stream]
            if key is not None and key in done:
                stats.requests_merged += 1
                continue
            if failed:
                responses = [self._unavailable(processor, parsed)]
            else:
                try:
                    responses = processor.reply(parsed)
                except StoreUnavailableError as exc:
                    self.stats.error("store_read_failed")
                    LOG.error(
                        "stream %s: reading the store for an answer failed: %s", self.names[stream], exc
                    )
                    failed = True
                    responses = [self._unavailable(processor, parsed)]
            if key is not None:
                done[key] = 1
            if responses:
                ready.append((stream, self._encode(processor, stream, responses), received))
        return ready

    def _submit(self, ready: List[Ready]) -> None:
        for stream, encoded, received in ready:
            self.stream_stats[stream].requests += 1
            self.senders[stream].submit(encoded, received)

    def _answer_unavailable(self, processor: Processor, waiting: List[Waiting]) -> None:
        for stream, received, parsed, _key in waiting:
            if parsed.error is not None:
                self._send(processor, stream, [parsed.error], received)
            else:
                self.stream_stats[stream].error("store_unavailable_answers")
                self._send(processor, stream, [self._unavailable(processor, parsed)], received)

    @staticmethod
    def _unavailable(processor: Processor, parsed: "Parsed") -> dict:
        if parsed.error is not None:
            return parsed.error
        request = parsed.request
        assert request is not None
        return processor.error_object(request.user, request.content, STORE_UNAVAILABLE)

    def _send(self, processor: Processor, stream: int, responses: List[dict], received: float) -> None:
        if responses:
            self._submit([(stream, self._encode(processor, stream, responses), received)])

    def _encode(self, processor: Processor, stream: int, responses: List[dict]) -> List[str]:
        encoded: List[str] = []
        for response in responses:
            try:
                encoded.append(processor.encode(response))
            except (TypeError, ValueError) as exc:
                self.stream_stats[stream].error("encode_failed")
                LOG.error("stream %s: an answer could not be encoded: %s", self.names[stream], exc)
        return encoded
