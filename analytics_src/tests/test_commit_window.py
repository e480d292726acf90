"""The worker's commit window over a real Inbox, Handler and SQLite file: events trickling in share a
transaction (fewer commits), a request ends the window at once, nothing waits past the window."""

import threading
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from service_helpers import USER, analytics, dumps, query, request, wait_for

from practable_analytics.experiments import Registry
from practable_analytics.service.frames import OP_TEXT
from practable_analytics.service.inbox import Inbox, Item, received_now
from practable_analytics.service.processing import HandlerProcessor
from practable_analytics.service.stats import StreamStats, WorkerStats
from practable_analytics.service.worker import Worker


class Capture:
    def __init__(self) -> None:
        self.answers: List[Tuple[List[str], float]] = []
        self.at: List[float] = []

    def submit(self, messages: List[str], received: float) -> None:
        self.answers.append((messages, received))
        self.at.append(time.time())


def item(message: object) -> Item:
    return received_now(0, OP_TEXT, dumps(message).encode())


def start_worker(db: Path, inbox: Inbox, sender: Capture, window_s: float) -> Worker:
    worker = Worker(
        inbox=inbox,
        make_processor=lambda: HandlerProcessor(db, Registry.load()),
        names=["spin30"],
        senders=[sender],  # type: ignore[list-item]
        stream_stats=[StreamStats("spin30", "ws://h/ws/spin30")],
        stats=WorkerStats(),
        commit_window_s=window_s,
        commit_min=64,
    )
    worker.start()
    return worker


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Tuple[Worker, Inbox, Capture, Path]]:
    db = tmp_path / "w.db"
    inbox = Inbox(1)
    sender = Capture()
    worker = start_worker(db, inbox, sender, 0.05)
    assert worker.ready.wait(5)
    yield worker, inbox, sender, db
    inbox.close()
    worker.join(10)
    assert not worker.is_alive()


def test_events_trickling_in_share_one_commit_within_the_window(running) -> None:  # type: ignore[no-untyped-def]
    worker, inbox, _sender, db = running
    first = time.time()
    for i in range(10):  # 10 events 2 ms apart: inside one 50 ms window
        inbox.put_nowait_many([item(analytics(i, "voltage"))])
        time.sleep(0.002)
    deadline = time.monotonic() + 5
    while worker.stats.messages < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.stats.messages == 10
    assert worker.stats.batches <= 2  # without the window: about one commit per event
    assert worker.stats.last_commit - first < 1.0  # committed, not left waiting
    assert query(db, "SELECT count(*) FROM events")[0][0] == 10


def test_a_request_ends_the_window_at_once(running) -> None:  # type: ignore[no-untyped-def]
    _worker, inbox, sender, db = running
    inbox.put_nowait_many([item(analytics(1, "voltage"))])
    time.sleep(0.005)  # the worker is now waiting in its window for more
    inbox.put_nowait_many([item(analytics(2, "speed")), item(request("student_graph"))])
    asked = time.time()
    deadline = time.monotonic() + 5
    while not sender.answers and time.monotonic() < deadline:
        time.sleep(0.001)
    assert sender.answers
    answer = sender.answers[0][0]
    assert '"from":"voltage_step","to":"speed_step"' in answer[0]  # both events came before it
    assert sender.at[0] - asked < 0.04  # well before the 50 ms window would have ended
    assert query(db, "SELECT count(*) FROM events")[0][0] == 3


def test_inbox_min_items_wakes_on_a_request_frame_and_at_the_timeout() -> None:
    inbox = Inbox(1)
    inbox.put_nowait_many([item(analytics(1, "voltage"))])
    start = time.monotonic()
    got = inbox.get_batch(100, 0.05, min_items=10)  # only 1 in: waits the whole timeout
    assert len(got) == 1 and time.monotonic() - start >= 0.045
    timer = threading.Timer(0.01, lambda: inbox.put_nowait_many([item(request("indicators"))]))
    timer.start()
    start = time.monotonic()
    got = inbox.get_batch(100, 2.0, min_items=10)
    assert len(got) == 1 and time.monotonic() - start < 1.0  # the request woke it
    timer = threading.Timer(
        0.01, lambda: inbox.put_nowait_many([item(analytics(i, "speed")) for i in range(10)])
    )
    timer.start()
    start = time.monotonic()
    got = inbox.get_batch(100, 2.0, min_items=10)
    assert len(got) == 10 and time.monotonic() - start < 1.0  # enough items woke it


def test_the_loops_request_hint_wakes_the_window_or_spares_the_scan() -> None:
    """The event loop tells the inbox whether a round's frames may hold a request (it already looked
    for its read hold): True wakes a worker waiting in its window at once; False is trusted."""
    inbox = Inbox(1)
    timer = threading.Timer(
        0.01, lambda: inbox.put_nowait_many([item(analytics(1, "voltage"))], maybe_request=True)
    )
    timer.start()
    start = time.monotonic()
    got = inbox.get_batch(100, 2.0, min_items=10)
    assert len(got) == 1 and time.monotonic() - start < 1.0  # the hint woke it
    timer = threading.Timer(
        0.01, lambda: inbox.put_nowait_many([item(request("indicators"))], maybe_request=False)
    )
    timer.start()
    start = time.monotonic()
    got = inbox.get_batch(100, 0.2, min_items=10)
    assert len(got) == 1 and time.monotonic() - start >= 0.19  # not looked at again: the timeout


def test_a_request_with_nothing_of_its_student_held_is_answered_before_the_commit(tmp_path: Path) -> None:
    """The window holds another student's event and the request's own: neither can change the
    answer, so it goes out at once (no commit, no fsync on its path); both are committed when the
    window ends, and the answer has the student's earlier, committed events."""
    db = tmp_path / "w.db"
    inbox = Inbox(1)
    stored_at_answer: List[int] = []

    class Counting(Capture):
        def submit(self, messages: List[str], received: float) -> None:
            stored_at_answer.append(query(db, "SELECT count(*) FROM events")[0][0])
            super().submit(messages, received)

    sender = Counting()
    worker = start_worker(db, inbox, sender, 0.3)
    assert worker.ready.wait(5)
    try:
        inbox.put_nowait_many([item(analytics(1, "voltage")), item(analytics(2, "speed"))])
        assert wait_for(lambda: worker.stats.messages == 2, 5)  # the student's events: committed
        inbox.put_nowait_many([item(analytics(3, "voltage", user="other-student"))])
        time.sleep(0.01)  # held in a new window
        asked = time.time()
        inbox.put_nowait_many([item(request("student_graph"))])
        assert wait_for(lambda: bool(sender.answers), 5)
        assert sender.at[0] - asked < 0.2  # well before the 0.3 s window ends
        assert stored_at_answer == [2]  # answered before the other student's event was committed
        assert '"from":"voltage_step","to":"speed_step"' in sender.answers[0][0][0]
        assert worker.stats.messages == 2
        assert wait_for(lambda: worker.stats.messages == 4, 5)  # then the window's commit: both
        assert query(db, "SELECT type, user FROM events ORDER BY id")[2:] == [
            ("analytics", "other-student"),
            ("request", USER),
        ]
    finally:
        inbox.close()
        worker.join(10)
