"""The Processor the service uses: the engine's Handler over one Store, opened on the worker thread."""

from pathlib import Path
from typing import List, Optional, Sequence

from practable_analytics.events import Event
from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.messages import Parsed, error_object, invalid_frame
from practable_analytics.responses import encode
from practable_analytics.service.stats import EventCounts
from practable_analytics.service.syncer import Syncer
from practable_analytics.service.worker import Processor, StoreUnavailableError
from practable_analytics.store import Store, StoreError, changes_counts

# How long one commit waits for another process's write lock before it counts as failed. The worker
# retries a failed commit with backoff, so a lock held longer costs a retry, not messages; waiting
# the Store's default 30 s would hold every answer of the process up as long.
BUSY_TIMEOUT_S = 5.0
# Every commit is on disk before it is counted or answered (Store.sync_after_commit: the WAL's fsync
# right after COMMIT, outside the write lock, so the processes sharing the file queue ~0.7 ms less
# per commit behind each other than with synchronous=FULL's fsync inside it).


class HandlerProcessor(Processor):
    """Store + Handler owned by the worker thread (SQLite connections stay on their thread); the
    fsync of a commit that requests wait on runs on a Syncer thread while the answers are computed."""

    def __init__(self, db: Path, registry: Registry, counts: Optional[EventCounts] = None) -> None:
        self._store = Store(db, busy_timeout_s=BUSY_TIMEOUT_S, sync_after_commit=True)
        self._handler = Handler(self._store, registry)
        self._counts = counts  # committed events per stream and type (status file and metrics)
        self._syncer = Syncer()
        self._unsynced: Sequence[Event] = ()  # committed by commit_for_answers, counted after the sync

    def parse(self, stream: str, texts: Sequence[str]) -> List[Parsed]:
        return self._handler.parse_texts(texts, stream=stream)

    def invalid_frame(self, stream: str, data: bytes, binary: bool) -> Event:
        return invalid_frame(data, stream, binary=binary)

    def commit(self, events: Sequence[Event], received: Sequence[float]) -> None:
        self._write(events, received)
        if self._counts is not None:
            self._counts.committed(events)

    def commit_for_answers(self, events: Sequence[Event], received: Sequence[float]) -> None:
        with self._store.sync_deferred():
            self._write(events, received)
        self._unsynced = events

    def changes_answers(self, event: Event) -> bool:
        return changes_counts(event)

    def start_sync(self) -> None:
        self._syncer.start(self._store.sync_pending)

    def finish_sync(self) -> None:
        self._syncer.wait()  # at once if no job runs
        self._store.sync_pending()  # nothing left once the job ran; the fsync itself if never started
        events, self._unsynced = self._unsynced, ()
        if self._counts is not None and events:
            self._counts.committed(events)

    def _write(self, events: Sequence[Event], received: Sequence[float]) -> None:
        try:
            self._handler.store_events(events, received)
        except StoreError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def reply(self, parsed: Parsed) -> List[dict]:
        try:
            return self._handler.reply(parsed)
        except StoreError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def error_object(self, user: Optional[str], request: Optional[str], reason: str) -> dict:
        return error_object(user, request, reason)

    def encode(self, response: dict) -> str:
        return encode(response)

    def close(self) -> None:
        self._syncer.close()
        self._store.close()
