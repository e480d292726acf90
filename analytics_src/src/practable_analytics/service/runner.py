"""Wires the event loop, inbox, worker and senders together; runs until stopped; stops without loss.

Threads: the main thread (status file, stop flag), one event loop over every stream's socket
(service/loop.py: reading, pings, paced answers, reconnects), a small fixed pool of connect threads
for the handshakes, and the worker (store and answer). Their number does not grow with the streams.

Stop order (SIGTERM/SIGINT): the loop stops reading every socket (no new messages enter), the worker
drains the inbox into the store, the loop gets a short time to deliver answers to what was read, the
sockets close, the status file is written one last time.
"""

import logging
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Union

from practable_analytics.service.backoff import Backoff
from practable_analytics.service.config import ServeConfig
from practable_analytics.service.inbox import Inbox
from practable_analytics.service.loop import Loop, raise_nofile_limit
from practable_analytics.service.metrics import Exporter
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import EventCounts, StreamStats, WorkerStats
from practable_analytics.service.status import build, write_atomic
from practable_analytics.service.threads import tighten_timer_slack
from practable_analytics.service.worker import Processor, Worker

LOG = logging.getLogger(__name__)

SENDER_DRAIN_S = 1.0
POLL_S = 0.05
SWITCH_INTERVAL_S = 0.001  # a busy worker yields the GIL this often: paced sends stay near 1 ms
FILES_PER_STREAM = 2  # a socket, and room for a reconnect overlapping it
FILES_BASE = 64  # the database, its WAL and shm, the status file, the wake pair, logs


class StopFlag:
    """Set from a signal handler. Deliberately lock-free: threading.Event.set() takes the lock that
    Event.wait() holds around its checks, so a handler that interrupts the main thread inside
    Event.wait() can deadlock the process on SIGTERM."""

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None
        self._set = False

    def set(self, signal_name: Optional[str] = None) -> None:
        self.signal_name = signal_name
        self._set = True

    def is_set(self) -> bool:
        return self._set


class _SignalWake:
    """A descriptor that signals make readable (signal.set_wakeup_fd), to sleep on in select().

    Off the main thread set_wakeup_fd is not allowed; then wait() sleeps at most POLL_S at a time."""

    def __init__(self) -> None:
        self._r: Optional[socket.socket] = None
        self._w: Optional[socket.socket] = None
        self._old = -1

    def __enter__(self) -> "_SignalWake":
        if threading.current_thread() is threading.main_thread():
            self._r, self._w = socket.socketpair()
            self._r.setblocking(False)
            self._w.setblocking(False)
            try:
                self._old = signal.set_wakeup_fd(self._w.fileno())
            except ValueError:
                self.__exit__()
        return self

    def wait(self, timeout: float) -> None:
        if self._r is None:
            time.sleep(min(timeout, POLL_S))
            return
        readable, _, _ = select.select([self._r], [], [], timeout)
        if readable:
            try:
                while self._r.recv(512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass

    def __exit__(self, *exc: object) -> None:
        if self._r is not None and self._w is not None:
            try:
                signal.set_wakeup_fd(self._old)
            except ValueError:
                pass
            self._r.close()
            self._w.close()
        self._r = self._w = None


class ServiceError(RuntimeError):
    """The service cannot start (for instance the database cannot be opened)."""


class MetricsListenError(ServiceError):
    """The metrics address cannot be bound (in use, not local): exit 1, systemd retries."""


class Service:
    """One process serving the configured streams."""

    def __init__(
        self,
        config: ServeConfig,
        make_processor: Callable[[], Processor],
        event_counts: Optional[EventCounts] = None,
    ) -> None:
        self.config = config
        n = len(config.streams)
        self.started = time.time()
        self.state = "starting"
        self.inbox = Inbox(n, max_items=config.queue_size, max_bytes=config.queue_bytes)
        self.stream_stats = [StreamStats(s.name, s.url) for s in config.streams]
        self.worker_stats = WorkerStats()
        self.senders: List[Sender] = [
            Sender(stats.name, stats, index=i, spacing_s=config.send_spacing_s, ttl_s=config.answer_ttl_s)
            for i, stats in enumerate(self.stream_stats)
        ]
        self._status_failed = False
        # what the processor committed (it counts into this object); None: not counted
        self.event_counts = EventCounts() if event_counts is None else event_counts
        self.metrics = Exporter(self.status, config.metrics_listen, config.metrics_textfile)
        backoffs = [
            Backoff.for_url(s.url, config.backoff_initial_s, config.backoff_max_s, config.backoff_local_max_s)
            for s in config.streams
        ]
        self.loop = Loop(
            urls=[s.url for s in config.streams],
            stats=self.stream_stats,
            senders=self.senders,
            backoffs=backoffs,
            inbox=self.inbox,
            connect_timeout_s=config.connect_timeout_s,
        )
        self.worker = Worker(
            inbox=self.inbox,
            make_processor=make_processor,
            names=[s.name for s in config.streams],
            senders=self.senders,
            stream_stats=self.stream_stats,
            stats=self.worker_stats,
            batch_size=config.batch_size,
            request_rate=config.request_rate,
            request_burst=config.request_burst,
        )

    def start(self) -> None:
        """Open the store (on the worker thread), then start the event loop."""
        # A busy worker holds the GIL for up to the switch interval (Python's default: 5 ms) while a
        # sender waits to send the next paced message: a 1 ms slice keeps pacing near its 1 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        tighten_timer_slack()  # before any thread starts: they inherit it (exact paced waits)
        try:
            self.metrics.start()
        except OSError as exc:
            raise MetricsListenError(f"cannot serve metrics on {self.config.metrics_listen}: {exc}") from exc
        self.worker.start()
        self.worker.ready.wait()
        if self.worker.failed is not None:
            self.metrics.stop()
            raise ServiceError(str(self.worker.failed))
        raise_nofile_limit(FILES_BASE + FILES_PER_STREAM * len(self.senders))
        self.loop.start()
        self.state = "running"
        LOG.info("serving %d stream(s) into %s", len(self.senders), self.config.db)

    def run(self, stop: Union[StopFlag, threading.Event]) -> int:
        """Write the status file every interval until stop is set, then stop cleanly; exit status.

        Never waits on a lock a signal handler could need (that can deadlock): on the main thread it
        sleeps in select() on the signal wake-up descriptor, which a signal makes readable, so it
        wakes once per status interval and at once on SIGTERM, not 20 times a second.
        """
        interval = self.config.status_interval_s
        self.write_status()
        next_status = time.monotonic() + interval
        rc = 0
        with _SignalWake() as wake:
            while not stop.is_set():
                wait = max(0.0, next_status - time.monotonic())
                if isinstance(stop, threading.Event):
                    stop.wait(wait)  # no signal handler sets an Event: no deadlock possible
                else:
                    wake.wait(wait)
                if time.monotonic() < next_status:
                    continue
                next_status = max(next_status + interval, time.monotonic())
                self.write_status()
                if not self.worker.is_alive():
                    LOG.error("worker thread ended unexpectedly; stopping")
                    rc = 1
                    break
                if not self.loop.is_alive():
                    LOG.error("event loop thread ended unexpectedly; stopping")
                    rc = 1
                    break
        name = getattr(stop, "signal_name", None)
        if name:
            LOG.info("received %s", name)
        if self.shutdown() and rc == 0:
            rc = 1
        return rc

    def shutdown(self, timeout_s: Optional[float] = None) -> int:
        """Stop reading, drain the inbox into the store, flush answers, close, final status.

        Returns how many received messages are still unstored (0 unless the deadline passed)."""
        budget = self.config.stop_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        self.state = "stopping"
        LOG.info("stopping: %d messages queued", len(self.inbox))
        if self.loop.ident is not None:
            self.loop.stop_reading(max(0.0, min(0.5, deadline - time.monotonic())))
        self.inbox.close()
        # The worker gets what it needs, short of the senders' slice of the budget.
        if self.worker.ident is not None:
            self.worker.join(max(0.1, deadline - time.monotonic() - 0.5))
        if self.worker.is_alive():
            self.worker.abandon.set()  # past the deadline: the count below is logged at ERROR
        drain = max(0.0, min(SENDER_DRAIN_S, deadline - time.monotonic() - 0.2))
        for sender in self.senders:
            sender.stop(drain_s=drain)
        if self.loop.ident is not None:
            self.loop.drained.wait(max(0.0, deadline - time.monotonic()))
            self.loop.close(max(0.1, min(1.0, deadline - time.monotonic())))
        for stats in self.stream_stats:
            stats.set_connected(False)
        self.state = "stopped"
        self.write_status()
        self.metrics.stop()
        left = self.worker.unstored()
        LOG.info(
            "stopped: %d messages stored in %d commits, %d unstored",
            self.worker_stats.messages,
            self.worker_stats.batches,
            left,
        )
        if left:
            LOG.error("stop: %d received messages are NOT stored at the deadline", left)
        return left

    def status(self) -> dict:
        return build(
            started=self.started,
            db=self.config.db,
            inbox=self.inbox,
            streams=self.stream_stats,
            senders=self.senders,
            worker=self.worker_stats,
            state=self.state,
            events=self.event_counts,
        )

    def write_status(self) -> None:
        path: Optional[Path] = self.config.status_file
        if path is None and self.metrics.textfile is None:
            return
        document = self.status()
        self.metrics.status_written(document)  # the textfile, from the same document
        if path is None:
            return
        try:
            write_atomic(path, document)
        except OSError as exc:
            if not self._status_failed:
                LOG.warning("cannot write status file %s: %s", path, exc)
                self._status_failed = True
            return
        if self._status_failed:
            LOG.info("status file %s written again", path)
            self._status_failed = False
