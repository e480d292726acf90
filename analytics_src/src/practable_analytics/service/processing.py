"""The Processor the service uses: the engine's Handler over one Store, opened on the worker thread."""

from pathlib import Path
from typing import Any, List, Optional, Sequence

from practable_analytics.events import Event
from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.messages import invalid
from practable_analytics.responses import encode
from practable_analytics.service.stats import EventCounts
from practable_analytics.service.worker import Processor
from practable_analytics.store import Store


class HandlerProcessor(Processor):
    """Store + Handler owned by the worker thread (SQLite connections stay on their thread)."""

    def __init__(self, db: Path, registry: Registry, counts: Optional[EventCounts] = None) -> None:
        store = Store(db)
        self._store: Any = store if counts is None else CountingStore(store, counts)
        self._handler = Handler(self._store, registry)

    def process_run(self, stream: str, texts: Sequence[str]) -> List[List[dict]]:
        return self._handler.handle_texts(texts, stream=stream)

    def store_invalid(self, stream: str, raws: Sequence[str]) -> None:
        self._store.add_events([invalid(raw, stream) for raw in raws])

    def encode(self, response: dict) -> str:
        return encode(response)

    def close(self) -> None:
        self._store.close()


class CountingStore:
    """The Store, with every committed batch of events counted (status file and metrics)."""

    def __init__(self, store: Store, counts: EventCounts) -> None:
        self._inner = store
        self._counts = counts

    def add_events(self, events: Sequence[Event]) -> List[int]:
        ids = self._inner.add_events(events)  # raises on failure: nothing counted
        self._counts.committed(events)
        return ids

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
