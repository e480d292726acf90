"""The worker: the one thread that stores and answers.

It takes whatever the inbox holds (up to ``batch_size`` messages, waiting only for the first), hands
each run of consecutive messages from one stream to the Handler (which commits events before it
answers any request after them), and gives the answers to that stream's sender. Messages are thus
committed as soon as the worker gets to them, in batches that grow with the load; a request is
answered only after everything received before it, on any stream of this process, is committed.

Frames the Handler cannot take as text are stored here as ``invalid`` events, in order: binary frames
(the stream protocol is JSON text frames) and text frames that are not valid UTF-8.
"""

import logging
import threading
import time
from typing import Callable, List, Optional, Sequence

from practable_analytics.service.frames import OP_TEXT
from practable_analytics.service.inbox import Inbox, Item
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import StreamStats, WorkerStats

LOG = logging.getLogger(__name__)


class Processor:
    """Stores and answers one batch; subclasses wrap the real Handler (see processing.py)."""

    def process_run(self, stream: str, texts: Sequence[str]) -> List[List[dict]]:
        """Store/answer received texts of one stream in order: one list of responses per text."""
        raise NotImplementedError

    def store_invalid(self, stream: str, raws: Sequence[str]) -> None:
        """Store undecodable frames as invalid events, in order."""
        raise NotImplementedError

    def encode(self, response: dict) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release the store (called on the worker thread at the end)."""


class Worker(threading.Thread):
    """Drains the inbox through a Processor until the inbox is closed and empty."""

    def __init__(
        self,
        *,
        inbox: Inbox,
        make_processor: Callable[[], Processor],
        names: Sequence[str],
        senders: Sequence[Sender],
        stream_stats: Sequence[StreamStats],
        stats: WorkerStats,
        batch_size: int = 300,
    ) -> None:
        super().__init__(name="worker", daemon=True)
        self.inbox = inbox
        self.make_processor = make_processor
        self.names = list(names)
        self.senders = list(senders)
        self.stream_stats = list(stream_stats)
        self.stats = stats
        self.batch_size = batch_size
        self.ready = threading.Event()
        self.failed: Optional[BaseException] = None

    def run(self) -> None:
        try:
            processor = self.make_processor()
        except Exception as exc:  # noqa: BLE001 (reported to the runner, which exits non-zero)
            self.failed = exc  # the runner reports it (one line, exit status 2)
            self.ready.set()
            return
        self.ready.set()
        try:
            inbox = self.inbox
            while True:
                batch = inbox.get_batch(self.batch_size, 0.5)
                if batch:
                    self.process(processor, batch)
                elif inbox.closed and len(inbox) == 0:
                    break
        finally:
            processor.close()
        LOG.info("worker finished: %d messages in %d batches", self.stats.messages, self.stats.batches)

    def process(self, processor: Processor, batch: List[Item]) -> None:
        """Store and answer one batch, in arrival order, run by run of consecutive same-stream items."""
        texts: List[str] = []
        times: List[float] = []
        current = batch[0][0]
        for stream, opcode, data, received in batch:
            if stream != current:
                self._flush(processor, current, texts, times)
                current = stream
            if opcode == OP_TEXT:
                try:
                    texts.append(data.decode("utf-8"))
                    times.append(received)
                    continue
                except UnicodeDecodeError:
                    raw = data.decode("utf-8", "backslashreplace")
            else:
                raw = "binary frame: " + data.decode("utf-8", "backslashreplace")
            self._flush(processor, stream, texts, times)
            self._store_invalid(processor, stream, raw)
        self._flush(processor, current, texts, times)
        now = time.time()
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch)
        stats.max_batch = max(stats.max_batch, len(batch))
        stats.max_commit_latency_s = max(stats.max_commit_latency_s, now - batch[0][3])
        stats.last_commit = now

    def _flush(self, processor: Processor, stream: int, texts: List[str], times: List[float]) -> None:
        if texts:
            self._handle_stream(processor, stream, texts, times)
            del texts[:]
            del times[:]

    def _store_invalid(self, processor: Processor, stream: int, raw: str) -> None:
        name = self.names[stream]
        self.stream_stats[stream].error("undecodable_frame")
        try:
            processor.store_invalid(name, [raw])
        except Exception as exc:  # noqa: BLE001 (keep serving; counted and logged)
            self.stats.error("store_failed")
            LOG.error("stream %s: storing an undecodable frame failed: %s", name, type(exc).__name__)

    def _handle_stream(self, processor: Processor, stream: int, texts: List[str], times: List[float]) -> None:
        name = self.names[stream]
        try:
            answers = processor.process_run(name, texts)
        except Exception as exc:  # noqa: BLE001 (storage failure: logged, counted, service goes on)
            # The Handler raises only for storage failures (disk full, lock held past the busy
            # timeout). Part of the run may be committed, so it is not retried (that could count
            # transitions twice); the pause keeps a persistent failure from spinning.
            self.stats.error("store_failed")
            time.sleep(0.5)
            LOG.error(
                "stream %s: handler failed on %d messages: %s", name, len(texts), exc.__class__.__name__
            )
            return
        sender = self.senders[stream]
        stats = self.stream_stats[stream]
        for responses, received in zip(answers, times):
            if not responses:
                continue
            stats.requests += 1
            encoded: List[str] = []
            for response in responses:
                try:
                    encoded.append(processor.encode(response))
                except (TypeError, ValueError) as exc:
                    stats.error("encode_failed")
                    LOG.error("stream %s: an answer could not be encoded: %s", name, exc)
            sender.submit(encoded, received)
