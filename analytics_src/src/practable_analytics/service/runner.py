"""Wires readers, inbox, worker and senders together; runs until stopped; stops without loss.

Stop order (SIGTERM/SIGINT): readers stop reading (socket read side shut, so no new messages enter),
the worker drains the inbox into the store, the senders get a short time to deliver answers to what
was read, the sockets close, the status file is written one last time.
"""

import logging
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Union

from practable_analytics.service.backoff import Backoff
from practable_analytics.service.config import ServeConfig
from practable_analytics.service.inbox import Inbox
from practable_analytics.service.link import Link
from practable_analytics.service.metrics import Exporter
from practable_analytics.service.reader import Reader
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import EventCounts, StreamStats, WorkerStats
from practable_analytics.service.status import build, write_atomic
from practable_analytics.service.worker import Processor, Worker

LOG = logging.getLogger(__name__)

# Readers and senders need little stack; 48 streams x 2 threads x 8 MiB of address space is wasteful.
SMALL_STACK = 256 * 1024
SENDER_DRAIN_S = 1.0
POLL_S = 0.05
SWITCH_INTERVAL_S = 0.001  # how often the main loop looks at the stop flag


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
        self.links = [Link() for _ in config.streams]
        self.read_stop = threading.Event()
        self.senders: List[Sender] = []
        self.readers: List[Reader] = []
        self._status_failed = False
        # what the processor committed (it counts into this object); None: not counted
        self.event_counts = EventCounts() if event_counts is None else event_counts
        self.metrics = Exporter(self.status, config.metrics_listen, config.metrics_textfile)
        old = threading.stack_size()
        try:
            threading.stack_size(SMALL_STACK)
            for link, stats in zip(self.links, self.stream_stats):
                self.senders.append(
                    Sender(
                        stats.name, link, stats, spacing_s=config.send_spacing_s, ttl_s=config.answer_ttl_s
                    )
                )
            for i, (s, link, stats) in enumerate(zip(config.streams, self.links, self.stream_stats)):
                backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
                self.readers.append(
                    Reader(
                        index=i,
                        url=s.url,
                        inbox=self.inbox,
                        link=link,
                        stats=stats,
                        backoff=backoff,
                        stop=self.read_stop,
                        connect_timeout_s=config.connect_timeout_s,
                    )
                )
        finally:
            threading.stack_size(old)
        self.worker = Worker(
            inbox=self.inbox,
            make_processor=make_processor,
            names=[s.name for s in config.streams],
            senders=self.senders,
            stream_stats=self.stream_stats,
            stats=self.worker_stats,
            batch_size=config.batch_size,
        )

    def start(self) -> None:
        """Open the store (on the worker thread), then start senders and readers."""
        # A busy worker holds the GIL for up to the switch interval (Python's default: 5 ms) while a
        # sender waits to send the next paced message: a 1 ms slice keeps pacing near its 1 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            self.metrics.start()
        except OSError as exc:
            raise MetricsListenError(f"cannot serve metrics on {self.config.metrics_listen}: {exc}") from exc
        self.worker.start()
        self.worker.ready.wait()
        if self.worker.failed is not None:
            self.metrics.stop()
            raise ServiceError(str(self.worker.failed))
        for sender in self.senders:
            sender.start()
        for reader in self.readers:
            reader.start()
        self.state = "running"
        LOG.info("serving %d stream(s) into %s", len(self.readers), self.config.db)

    def run(self, stop: Union[StopFlag, threading.Event]) -> int:
        """Write the status file every interval until stop is set, then stop cleanly; exit status.

        Polls the flag (no waiting on a lock) so that a signal handler setting it can never deadlock.
        """
        interval = self.config.status_interval_s
        self.write_status()
        next_status = time.monotonic() + interval
        rc = 0
        while not stop.is_set():
            time.sleep(POLL_S)
            if time.monotonic() >= next_status:
                next_status = max(next_status + interval, time.monotonic())
                self.write_status()
                if not self.worker.is_alive():
                    LOG.error("worker thread ended unexpectedly; stopping")
                    rc = 1
                    break
        name = getattr(stop, "signal_name", None)
        if name:
            LOG.info("received %s", name)
        self.shutdown()
        return rc

    def shutdown(self, timeout_s: Optional[float] = None) -> None:
        """Stop reading, drain the inbox into the store, flush answers, close, final status."""
        budget = self.config.stop_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        self.state = "stopping"
        LOG.info("stopping: %d messages queued", len(self.inbox))
        for reader in self.readers:
            reader.stop()
        for reader in self.readers:
            if reader.ident is not None:
                reader.join(max(0.0, min(0.5, deadline - time.monotonic())))
        self.inbox.close()
        # The worker gets what it needs, short of the sender's slice of the budget.
        if self.worker.ident is not None:
            self.worker.join(max(0.1, deadline - time.monotonic() - 0.5))
        if self.worker.is_alive():
            LOG.error("stop: worker still busy with %d queued messages at the deadline", len(self.inbox))
        drain = max(0.0, min(SENDER_DRAIN_S, deadline - time.monotonic() - 0.2))
        for sender in self.senders:
            sender.stop(drain_s=drain)
        for sender in self.senders:
            if sender.ident is not None:
                sender.join(max(0.0, deadline - time.monotonic()))
        for reader, stats in zip(self.readers, self.stream_stats):
            reader.close_socket()
            stats.set_connected(False)
        self.state = "stopped"
        self.write_status()
        self.metrics.stop()
        LOG.info(
            "stopped: %d messages stored in %d batches, %d left unprocessed",
            self.worker_stats.messages,
            self.worker_stats.batches,
            len(self.inbox),
        )

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
