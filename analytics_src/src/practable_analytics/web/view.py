"""What the class view shows, computed from a read-only store with the dashboard's own answer code.

Every number (distances, indicators, graphs) comes from :class:`practable_analytics.responses.Responder`
fed with the store's matrix and feedback counts, exactly as :class:`practable_analytics.handler.Handler`
answers the dashboard: one code path. This module adds only what the dashboard has no answer for: the
most likely task, times, the latest feedback and the status rules.

Per-student results are cached by the student's largest event id, so a refresh only recomputes the
students who have new events.
"""

import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from practable_analytics.experiments import Registry
from practable_analytics.messages import Request, valid_id
from practable_analytics.responses import Responder
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


def last_new_transition(chain: Sequence[Tuple[int, int]]) -> Optional[int]:
    """Time of the event that completed the latest first-seen (src, dst) pair of a (t, node) chain."""
    seen = set()
    found: Optional[int] = None
    for (_, a), (t, b) in zip(chain, chain[1:]):
        if (a, b) not in seen:
            seen.add((a, b))
            found = t
    return found


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
        self._responder = Responder(registry)
        self.stuck_ms = int(stuck_minutes * 60000)
        self._clock_ms = clock_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: Dict[Tuple[str, str, str], Tuple[int, Dict[str, Any], Facts]] = {}

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

    def close(self) -> None:
        """Close this thread's store."""
        store: Optional[Store] = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store = None

    # -- the dashboard's answers -----------------------------------------------------------------

    def answer(self, user: str, exp: str, course: str, content: str, **payload: Any) -> Dict[str, Any]:
        """The dashboard's answer to one request, as the handler computes it (matrix + counts)."""
        request = Request(user=user, exp=exp, course=course, content=content, payload=payload)
        error = self._responder.check(request)
        if error is not None:
            return error
        experiment = self._registry.experiment(exp)
        assert experiment is not None  # checked above
        store = self.store()
        matrix = store.matrix(user, exp, course, len(experiment.nodes))
        counts = store.feedback_counts(user, exp, course)
        return self._responder.answer(request, matrix, counts)[0]

    # -- pages -----------------------------------------------------------------------------------

    def courses(self) -> List[Dict[str, Any]]:
        """Every (experiment, course) with data."""
        return [
            {"exp": exp, "course": course, "students": students, "events": events, "last_event": last}
            for exp, course, students, events, last in self.store().course_summaries()
        ]

    def students(self, exp: str, course: str, window: str = "all") -> List[Dict[str, Any]]:
        """One row per student of the course whose last event is inside ``window``."""
        self._check_names(exp, course)
        if window not in WINDOWS:
            raise ValueError("unknown window")
        rows = self.store().course_students(exp, course)
        if not rows:
            raise NotFoundError("unknown course")
        now = self.now_ms()
        span = WINDOWS[window]
        out = []
        for user, events, first, last, max_id in rows:
            if span is not None and (last is None or now - last > span):
                continue
            out.append(
                self._row(user, exp, course, events=events, first=first, last=last, max_id=max_id, now=now)
            )
        return out

    def student(self, exp: str, course: str, user: str) -> Dict[str, Any]:
        """The student's row plus both graphs, feedback history and event timeline."""
        self._check_names(exp, course)
        if not valid_id(user):
            raise NotFoundError("unknown student")
        store = self.store()
        found = [r for r in store.course_students(exp, course) if r[0] == user]
        if not found:
            raise NotFoundError("unknown student" if store.course_students(exp, course) else "unknown course")
        _, events, first, last, max_id = found[0]
        out = self._row(
            user, exp, course, events=events, first=first, last=last, max_id=max_id, now=self.now_ms()
        )
        out["student_graph"] = self.answer(user, exp, course, "student_graph")
        likely = out["likely_task"]
        if likely is not None:
            out["comparison_graph"] = self.answer(user, exp, course, "comparison_graph", graph=likely)
        else:
            out["comparison_graph"] = None
        out["feedback_history"] = [
            {"t": t, "state": state, "subject": subject}
            for t, state, subject in store.feedback_history(user, exp, course)
        ]
        out["timeline"] = [
            {"id": i, "t": t, "type": type_, "hardware": hw, "log": log, "state": state, "subject": subject}
            for i, t, type_, hw, log, state, subject in store.student_events(
                user, exp, course, TIMELINE_EVENTS
            )
        ]
        return out

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _check_names(exp: str, course: str) -> None:
        if not (valid_id(exp) and valid_id(course)):
            raise NotFoundError("unknown course")

    def _row(
        self,
        user: str,
        exp: str,
        course: str,
        *,
        events: int,
        first: Optional[int],
        last: Optional[int],
        max_id: int,
        now: int,
    ) -> Dict[str, Any]:
        key = (user, exp, course)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None or cached[0] != max_id:
            numbers, facts = self._numbers(user, exp, course, first, last)
            with self._lock:
                self._cache[key] = (max_id, numbers, facts)
        else:
            numbers, facts = cached[1], cached[2]
        state, reason = status(facts, now, self.stuck_ms)
        row: Dict[str, Any] = {"user": user, "events": events, "first_event": first, "last_event": last}
        row.update(numbers)
        row["status"] = state
        row["reason"] = reason
        return row

    def _numbers(
        self, user: str, exp: str, course: str, first: Optional[int], last: Optional[int]
    ) -> Tuple[Dict[str, Any], Facts]:
        tasks_answer = self.answer(user, exp, course, "task_identification")
        indicators_answer = self.answer(user, exp, course, "indicators")
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
        store = self.store()
        history = store.feedback_history(user, exp, course)
        feedback = history[-1][1] if history else None
        facts = Facts(
            first_event=first,
            last_event=last,
            last_new_transition=last_new_transition(store.chain_times(user, exp, course)),
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
