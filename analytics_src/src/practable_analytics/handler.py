"""Handler: messages in -> events stored, answers out (the one path used by serve and replay).

Message content never makes the handler raise: invalid input becomes an ``invalid`` event (and an
error answer for bad requests/feedback, see :mod:`practable_analytics.messages`). Storage failures
(``StoreError`` from a full disk, a lock held beyond the busy timeout, ...) are not input errors:
they propagate so the caller can retry the same batch or stop cleanly.

Two ways in: ``handle_*`` store and answer in one call (replay, tests: each request sees exactly the
events before it); the service's worker uses the three steps ``parse_texts`` -> ``store_events`` ->
``reply`` so it can commit a whole batch once (group commit), retry a failed commit with the parsed
events, and answer every request waiting on that commit afterwards.
"""

import logging
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

from practable_analytics.events import Event
from practable_analytics.experiments import Registry
from practable_analytics.messages import (
    Parsed,
    Request,
    dump,
    error_object,
    invalid,
    parse_message,
    parse_text,
)
from practable_analytics.responses import NEEDS_FEEDBACK_COUNTS, Responder

if TYPE_CHECKING:  # the store is another part of the package; only its interface is used here
    from practable_analytics.store import Store

log = logging.getLogger(__name__)


class Handler:
    """Validates messages, stores events in batches and answers requests from the store's counts."""

    def __init__(self, store: "Store", registry: Registry) -> None:
        self._store = store
        self._registry = registry
        self._responder = Responder(registry)

    @property
    def registry(self) -> Registry:
        """The experiments and graphs this handler answers with."""
        return self._registry

    def handle(self, message: object, *, stream: Optional[str] = None) -> List[Dict[str, Any]]:
        """Handle one decoded message; returns its answers (empty for plain events)."""
        return self.handle_many([message], stream=stream)[0]

    def handle_many(
        self, messages: Sequence[object], *, stream: Optional[str] = None
    ) -> List[List[Dict[str, Any]]]:
        """Handle decoded messages in order; one list of answers per message."""
        return self._run(self._parse(m, stream, None) for m in messages)

    def handle_text(self, text: str, *, stream: Optional[str] = None) -> List[Dict[str, Any]]:
        """Handle one received text frame (size/depth limits, unparseable text stored as invalid)."""
        return self.handle_texts([text], stream=stream)[0]

    def handle_texts(
        self, texts: Sequence[str], *, stream: Optional[str] = None
    ) -> List[List[Dict[str, Any]]]:
        """Handle received text frames in order, storing consecutive events in one transaction."""
        return self._run(self._parse(t, stream, True) for t in texts)

    # -- the worker's three steps ----------------------------------------------------------------

    def parse_texts(self, texts: Sequence[str], *, stream: Optional[str] = None) -> List[Parsed]:
        """Validate received text frames (nothing stored, nothing answered yet)."""
        return [self._parse(t, stream, True) for t in texts]

    def store_events(self, events: Sequence[Event], received_at: Optional[Sequence[float]] = None) -> None:
        """Commit events in one transaction (all or nothing; raises StoreError)."""
        self._store.add_events(events, received_at)

    def reply(self, parsed: Parsed) -> List[Dict[str, Any]]:
        """The answers to one parsed message, read from the store (after its events are committed)."""
        if parsed.error is not None:
            return [parsed.error]
        if parsed.request is None:
            return []
        return self.answer(parsed.request)

    def answer(self, request: Request) -> List[Dict[str, Any]]:
        """The dashboard's answer to one request from what the store holds now (also the class
        view's numbers: one answer path)."""
        error = self._responder.check(request)
        if error is not None:
            return [error]
        return self._answer(request)

    # -- internals -------------------------------------------------------------------------------

    def _parse(self, item: object, stream: Optional[str], is_text: Optional[bool]) -> Parsed:
        try:
            if is_text:
                return parse_text(item, self._registry, stream)
            return parse_message(item, self._registry, stream)
        except Exception:  # last line of defence: no message may stop the service
            log.exception("unexpected failure while validating a message; stored as invalid")
            return Parsed(event=invalid(item if type(item) is str else dump(item), stream))

    def _run(self, parsed: Iterable[Parsed]) -> List[List[Dict[str, Any]]]:
        out: List[List[Dict[str, Any]]] = []
        pending: List[Event] = []
        for p in parsed:
            answers: List[Dict[str, Any]] = []
            if p.event is not None:
                pending.append(p.event)
            if p.error is not None:
                answers = [p.error]
            elif p.request is not None:
                error = self._responder.check(p.request)
                if error is not None:
                    answers = [error]
                else:
                    if pending:
                        self._store.add_events(pending)
                        pending = []
                    answers = self._answer(p.request)
            out.append(answers)
        if pending:
            self._store.add_events(pending)
        return out

    def _answer(self, request: Request) -> List[Dict[str, Any]]:
        exp = self._registry.experiment(request.exp)
        assert exp is not None  # checked by Responder.check
        matrix = self._store.cells(request.user, request.exp, request.course, len(exp.nodes))
        counts: Dict[str, int] = {}
        if request.content in NEEDS_FEEDBACK_COUNTS:
            counts = self._store.feedback_counts(request.user, request.exp, request.course)
        try:
            return self._responder.answer(request, matrix, counts)
        except Exception:  # a bug in one answer must not stop the service
            log.exception("failed to answer %s", request.content)
            return [error_object(request.user, request.content, "internal error")]
