"""What the class view shows, computed from a read-only store with the dashboard's own answer code.

Every number (distances, indicators, graphs) comes from :meth:`practable_analytics.handler.Handler.answer`
over the read-only store, the very method that answers the dashboard: one code path. This module
adds only what the dashboard has no answer for: the most likely task, times, the latest feedback and
the status rules.

Per-student results are cached by the student's largest event id, so a refresh only recomputes the
students who have new events.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.messages import Request, valid_id
from practable_analytics.store import Store
from practable_analytics.taskgraph import NEGATIVE_STATES

ACTIVE_MS = 2 * 60 * 1000
"""A student with an event in the last 2 minutes is active."""
DEFAULT_STUCK_MINUTES = 10.0
WINDOWS: Mapping[str, Optional[int]] = {"3h": 3 * 3600 * 1000, "all": None}
"""Time windows of the course page: the class session (last 3 h, the default) or all time."""
DEFAULT_WINDOW = "3h"
STATUSES = ("active", "idle", "stuck")
TIMELINE_EVENTS = 500


FULL_REFRESH_S = 300.0
"""How often the per-student counts are re-read whole (they are otherwise kept current from new rows),
so that a student erased with ``forget`` leaves the class view within this time."""


class Aggregate(NamedTuple):
    """A student's events in one (exp, course): count, first and last t, largest id (the cache key)."""

    events: int
    first: Optional[int]
    last: Optional[int]
    max_id: int
    feedback: Optional[Tuple[int, int, str]] = None
    """(t, id, state) of the latest counted feedback report (ordered by t, then id)."""


def _min(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return b if a is None else a if b is None else max(a, b)


class NotFoundError(LookupError):
    """No such course or student (the message is the short reason shown to the client)."""


@dataclass(frozen=True)
class Facts:
    """What a student's status is decided from (times in ms since the epoch)."""

    first_event: Optional[int]
    last_event: Optional[int]
    last_new_transition: Optional[int]
    """When the latest transition type (src, dst) first appeared in the chain; None without any."""
    feedback: Optional[str]
    """State of the latest counted feedback report."""


def status(facts: Facts, now_ms: int, stuck_ms: int) -> Tuple[str, Optional[str]]:
    """(status, reason): active (event in the last 2 min), idle, or stuck.

    Stuck: active, and either the latest feedback is negative or no new transition type for
    ``stuck_ms`` (counted from the first event when the student has made no transition yet).
    """
    last = facts.last_event
    if last is None or now_ms - last > ACTIVE_MS:
        if last is None:
            return "idle", "no timed event"
        return "idle", f"no event for {_minutes(now_ms - last)}"
    if facts.feedback in NEGATIVE_STATES:
        return "stuck", f"latest feedback: {facts.feedback}"
    since = facts.last_new_transition if facts.last_new_transition is not None else facts.first_event
    if since is not None and now_ms - since >= stuck_ms:
        what = "new transition type" if facts.last_new_transition is not None else "transition"
        return "stuck", f"no {what} for {_minutes(now_ms - since)}"
    return "active", None


def _minutes(ms: int) -> str:
    minutes = ms // 60000
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


class ChainState:
    """What the status needs from a student's chain, kept up to date as items are added at its end."""

    def __init__(self) -> None:
        self.length = 0
        self.last: Optional[Tuple[int, int]] = None  # (t, id) of the last item
        self.previous: Optional[int] = None  # its node
        self.seen: Set[Tuple[int, int]] = set()
        self.found: Optional[int] = None  # t of the latest first-seen (from, to) pair

    def extend(self, items: Sequence[Tuple[int, int, int]]) -> None:
        """Add (t, id, node) items that follow every item seen so far."""
        for t, event_id, node in items:
            if self.previous is not None and (self.previous, node) not in self.seen:
                self.seen.add((self.previous, node))
                self.found = t
            self.previous = node
            self.last = (t, event_id)
        self.length += len(items)


def last_new_transition(chain: Sequence[Tuple[int, int, int]]) -> Optional[int]:
    """When the latest new transition type appeared in a (t, id, node) chain ordered by (t, id): the t
    of the event that completed a (previous node, node) pair for the first time last. None without any."""
    state = ChainState()
    state.extend(chain)
    return state.found


class ClassView:
    """The numbers of the class view over one read-only store (one connection per thread)."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        registry: Registry,
        *,
        stuck_minutes: float = DEFAULT_STUCK_MINUTES,
        clock_ms: Callable[[], int],
    ) -> None:
        if stuck_minutes <= 0:
            raise ValueError("stuck_minutes must be positive")
        self._open_store = open_store
        self._registry = registry
        self.stuck_ms = int(stuck_minutes * 60000)
        self._clock_ms = clock_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: Dict[Tuple[str, str, str], Tuple[int, Dict[str, Any], Facts]] = {}
        self._chains: Dict[Tuple[str, str, str], ChainState] = {}
        self._chain_lock = threading.Lock()
        # every student's (events, first t, last t, largest id) by (exp, course), kept current from the
        # rows added since the largest id seen; rebuilt whole every FULL_REFRESH_S (erased students).
        self._agg_lock = threading.Lock()
        self._agg: Dict[Tuple[str, str], Dict[str, Aggregate]] = {}
        self._agg_max_id = 0
        self._agg_full_at: Optional[float] = None
        self._monotonic = time.monotonic

    @property
    def registry(self) -> Registry:
        """The experiments and graphs the numbers are computed with."""
        return self._registry

    def now_ms(self) -> int:
        """The clock the statuses are decided with."""
        return self._clock_ms()

    def store(self) -> Store:
        """This thread's read-only store (opened on first use)."""
        store: Optional[Store] = getattr(self._local, "store", None)
        if store is None:
            store = self._open_store()
            self._local.store = store
        return store

    def handler(self) -> Handler:
        """This thread's Handler over its read-only store: the dashboard's own answer path."""
        handler: Optional[Handler] = getattr(self._local, "handler", None)
        store = self.store()
        if handler is None or getattr(self._local, "handler_store", None) is not store:
            handler = Handler(store, self._registry)
            self._local.handler = handler
            self._local.handler_store = store
        return handler

    def close(self) -> None:
        """Close this thread's store."""
        store: Optional[Store] = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    # -- the dashboard's answers -----------------------------------------------------------------

    def answer(self, user: str, exp: str, course: str, content: str, **payload: Any) -> Dict[str, Any]:
        """The dashboard's answer to one request, as the handler computes it (matrix + counts)."""
        return self.answers(user, exp, course, [(content, payload)])[0]

    def answers(
        self, user: str, exp: str, course: str, requests: Sequence[Tuple[str, Mapping[str, Any]]]
    ) -> List[Dict[str, Any]]:
        """The dashboard's answers to several requests of one student, from one read of the store.

        The handler's answer path: the store's matrix and feedback counts given to the Responder.
        """
        handler = self.handler()
        return [
            handler.answer(Request(user=user, exp=exp, course=course, content=c, payload=dict(p)))[0]
            for c, p in requests
        ]

    # -- every student's counts --------------------------------------------------------------------

    def _aggregates(
        self, exp: Optional[str] = None, course: Optional[str] = None
    ) -> Dict[Tuple[str, str], Dict[str, Aggregate]]:
        """Current per-student counts (all courses, or only (exp, course)); copies, safe to iterate."""
        store = self.store()
        with self._agg_lock:
            now = self._monotonic()
            full = self._agg_full_at is None or now - self._agg_full_at >= FULL_REFRESH_S
            top = store.max_event_id()
            if full:
                self._agg = {}
                self._agg_max_id = 0
                self._agg_full_at = now
            if top > self._agg_max_id:
                for user, e, c, events, first, last, max_id in store.student_aggregates(
                    self._agg_max_id, top
                ):
                    students = self._agg.setdefault((e, c), {})
                    old = students.get(user)
                    if old is None:
                        students[user] = Aggregate(events, first, last, max_id)
                    else:
                        students[user] = Aggregate(
                            old.events + events,
                            _min(old.first, first),
                            _max(old.last, last),
                            max(old.max_id, max_id),
                            old.feedback,
                        )
                for user, e, c, t, event_id, state in store.feedback_since(self._agg_max_id, top):
                    agg = self._agg[(e, c)][user]
                    report = (-1 if t is None else t, event_id, state)
                    if agg.feedback is None or report > agg.feedback:
                        self._agg[(e, c)][user] = agg._replace(feedback=report)
                self._agg_max_id = top
            if exp is None:
                return {k: dict(v) for k, v in self._agg.items()}
            return {(exp, course or ""): dict(self._agg.get((exp, course or ""), {}))}

    # -- pages -----------------------------------------------------------------------------------

    def courses(self) -> List[Dict[str, Any]]:
        """Every (experiment, course) with data."""
        out = []
        for (exp, course), students in sorted(self._aggregates().items()):
            lasts = [a.last for a in students.values() if a.last is not None]
            out.append(
                {
                    "exp": exp,
                    "course": course,
                    "students": len(students),
                    "events": sum(a.events for a in students.values()),
                    "last_event": max(lasts) if lasts else None,
                }
            )
        return out

    def students(self, exp: str, course: str, window: str = "all") -> List[Dict[str, Any]]:
        """One row per student of the course whose last event is inside ``window``."""
        self._check_names(exp, course)
        if window not in WINDOWS:
            raise ValueError("unknown window")
        students = self._aggregates(exp, course)[(exp, course)]
        if not students:
            raise NotFoundError("unknown course")
        now = self.now_ms()
        span = WINDOWS[window]
        out = []
        for user, agg in sorted(students.items()):
            if span is not None and (agg.last is None or now - agg.last > span):
                continue
            out.append(self._row(user, exp, course, agg, now))
        return out

    def student(self, exp: str, course: str, user: str) -> Dict[str, Any]:
        """The student's row plus both graphs, feedback history and event timeline."""
        self._check_names(exp, course)
        if not valid_id(user):
            raise NotFoundError("unknown student")
        store = self.store()
        students = self._aggregates(exp, course)[(exp, course)]
        if user not in students:
            raise NotFoundError("unknown student" if students else "unknown course")
        out = self._row(user, exp, course, students[user], self.now_ms())
        likely = out["likely_task"]
        asked: List[Tuple[str, Mapping[str, Any]]] = [("student_graph", {})]
        if likely is not None:
            asked.append(("comparison_graph", {"graph": likely}))
        graphs = self.answers(user, exp, course, asked)
        out["student_graph"] = graphs[0]
        out["comparison_graph"] = graphs[1] if likely is not None else None
        events = store.student_events(user, exp, course)  # one read for both lists
        out["feedback_history"] = [
            {"t": t, "state": state, "subject": subject}
            for _, t, type_, _, _, state, subject in events
            if type_ == "feedback" and state is not None and subject is not None
        ]
        out["timeline"] = [
            {"id": i, "t": t, "type": type_, "hardware": hw, "log": log, "state": state, "subject": subject}
            for i, t, type_, hw, log, state, subject in events[-TIMELINE_EVENTS:]
        ]
        return out

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _check_names(exp: str, course: str) -> None:
        if not (valid_id(exp) and valid_id(course)):
            raise NotFoundError("unknown course")

    def _row(self, user: str, exp: str, course: str, agg: Aggregate, now: int) -> Dict[str, Any]:
        key = (user, exp, course)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None or cached[0] != agg.max_id:
            numbers, facts = self._numbers(user, exp, course, agg)
            with self._lock:
                self._cache[key] = (agg.max_id, numbers, facts)
        else:
            numbers, facts = cached[1], cached[2]
        state, reason = status(facts, now, self.stuck_ms)
        row: Dict[str, Any] = {
            "user": user,
            "events": agg.events,
            "first_event": agg.first,
            "last_event": agg.last,
        }
        row.update(numbers)
        row["status"] = state
        row["reason"] = reason
        return row

    def last_new_transition_time(self, user: str, exp: str, course: str) -> Optional[int]:
        """The student's latest new transition time, reading only the chain items added since the last
        call (the whole chain again when something arrived out of order or was erased)."""
        key = (user, exp, course)
        store = self.store()
        with self._chain_lock:  # one updater at a time: a state is extended exactly once per item
            state = self._chains.get(key)
            if state is not None:
                length, items = store.chain_after(user, exp, course, state.last)
                if state.length + len(items) != length:  # an item landed before the end, or some left
                    state = None
            if state is None:
                length, items = store.chain_after(user, exp, course, None)
                state = ChainState()
            state.extend(items)
            self._chains[key] = state
            return state.found

    def _numbers(self, user: str, exp: str, course: str, agg: Aggregate) -> Tuple[Dict[str, Any], Facts]:
        tasks_answer, indicators_answer = self.answers(
            user, exp, course, [("task_identification", {}), ("indicators", {})]
        )
        tasks: Dict[str, Optional[float]] = dict(tasks_answer.get("tasks", {}))
        indicators = indicators_answer.get("indicators") or {
            "exploration": None,
            "enjoyment": None,
            "edges": None,
        }
        experiment = self._registry.experiment(exp)
        all_graph = None
        if experiment is not None and course in experiment.courses:
            all_graph = experiment.courses[course].all_graph
        likely = likely_task(tasks, all_graph)
        feedback = None if agg.feedback is None else agg.feedback[2]
        facts = Facts(
            first_event=agg.first,
            last_event=agg.last,
            last_new_transition=self.last_new_transition_time(user, exp, course),
            feedback=feedback,
        )
        numbers = {
            "likely_task": likely,
            "likely_distance": None if likely is None else tasks[likely],
            "tasks": tasks,
            "indicators": dict(indicators),
            "feedback": feedback,
        }
        return numbers, facts


def likely_task(tasks: Mapping[str, Optional[float]], all_graph: Optional[str]) -> Optional[str]:
    """The task graph at the smallest defined distance (the whole-procedure graph is not a task)."""
    ranked = sorted((d, name) for name, d in tasks.items() if d is not None and name != all_graph)
    return ranked[0][1] if ranked else None
