"""The worker over the real Handler and a real SQLite Store: order, cross-stream commit-before-answer,
undecodable frames, answers routed to the stream they were asked on."""

import json
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from fault_helpers import CommitDenier
from service_helpers import USER, all_feedback, analytics, dumps, query, request

from practable_analytics.experiments import Registry
from practable_analytics.service.frames import OP_BINARY, OP_TEXT
from practable_analytics.service.inbox import Inbox, Item, received_now
from practable_analytics.service.processing import HandlerProcessor
from practable_analytics.service.stats import StreamStats, WorkerStats
from practable_analytics.service.worker import Worker


class Capture:
    """Stands in for a stream's Sender: records what the worker submits."""

    def __init__(self) -> None:
        self.answers: List[Tuple[List[str], float]] = []

    def submit(self, messages: List[str], received: float) -> None:
        self.answers.append((messages, received))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Tuple[Worker, HandlerProcessor, List[Capture], Path]]:
    db = tmp_path / "w.db"
    processor = HandlerProcessor(db, Registry.load())
    senders = [Capture(), Capture()]
    worker = Worker(
        inbox=Inbox(2),
        make_processor=lambda: processor,
        names=["spin30", "spin31"],
        senders=senders,  # type: ignore[arg-type]
        stream_stats=[StreamStats("spin30", "ws://h/ws/spin30"), StreamStats("spin31", "ws://h/ws/spin31")],
        stats=WorkerStats(),
    )
    yield worker, processor, senders, db
    processor.close()


def item(stream: int, message: object, opcode: int = OP_TEXT) -> Item:
    data = message if isinstance(message, bytes) else dumps(message).encode()
    return received_now(stream, opcode, data)


def test_request_on_one_stream_sees_events_received_before_it_on_another(setup) -> None:  # type: ignore[no-untyped-def]
    worker, processor, senders, db = setup
    batch = [
        item(0, analytics(1, "voltage", user="alice")),
        item(0, analytics(2, "speed", user="alice")),
        item(1, request("student_graph", user="alice")),  # asked on spin31, events came on spin30
        item(0, analytics(3, "position", user="alice")),  # same batch: committed with the others
    ]
    worker.process(processor, batch)
    assert senders[0].answers == []
    ((messages, received),) = senders[1].answers
    answer = json.loads(messages[0])
    # group commit: the whole batch is committed once, before any of its requests is answered
    assert [(e["from"], e["to"]) for e in answer["edges"]] == [
        ("voltage_step", "speed_step"),
        ("speed_step", "position_step"),
    ]
    assert received == batch[2][4]  # the request's receive time, on the monotonic clock
    rows = query(db, "SELECT stream, type, t FROM events ORDER BY id")
    assert rows == [("spin30", "analytics", 1), ("spin30", "analytics", 2), ("spin31", "request", 1),
                    ("spin30", "analytics", 3)]  # fmt: skip
    assert worker.stats.messages == 4 and worker.stats.batches == 1


def test_undecodable_frames_are_stored_in_order_as_invalid(setup) -> None:  # type: ignore[no-untyped-def]
    worker, processor, _senders, db = setup
    batch = [
        item(0, analytics(1, "voltage")),
        item(0, b'{"user": "\xff"}'),  # invalid UTF-8 in a text frame
        item(0, analytics(2, "speed")),
        item(0, b"\x00\x01binary", OP_BINARY),
        item(0, b"not json"),
    ]
    worker.process(processor, batch)
    rows = query(db, "SELECT type, t, raw FROM events ORDER BY id")
    assert [r[0] for r in rows] == ["analytics", "invalid", "analytics", "invalid", "invalid"]
    assert rows[1][2] == '{"user": "\\xff"}'
    assert rows[3][2].startswith("binary frame: ")
    assert rows[4][2] == "not json"
    assert worker.stream_stats[0].errors() == {"undecodable_frame": 2}


def test_worker_thread_drains_the_inbox_then_stops(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    registry = Registry.load()
    senders = [Capture(), Capture()]
    worker = Worker(
        inbox=Inbox(2),
        make_processor=lambda: HandlerProcessor(db, registry),  # opened on the worker thread
        names=["spin30", "spin31"],
        senders=senders,  # type: ignore[arg-type]
        stream_stats=[StreamStats("spin30", "ws://h/ws/spin30"), StreamStats("spin31", "ws://h/ws/spin31")],
        stats=WorkerStats(),
    )
    for i in range(1000):
        worker.inbox.put(item(i % 2, analytics(i, "voltage", user=f"u{i % 2}")))
    worker.inbox.put(item(1, request("indicators", user="u1")))
    worker.inbox.close()
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and worker.failed is None
    assert worker.stats.errors() == {}
    assert query(db, "SELECT COUNT(*) FROM events")[0][0] == 1001
    assert len(senders[1].answers) == 1 and senders[0].answers == []
    assert worker.stats.max_batch <= 300 and worker.stats.messages == 1001


def test_a_failing_commit_keeps_everything_and_answers_store_unavailable(setup) -> None:  # type: ignore[no-untyped-def]
    worker, processor, senders, db = setup
    conn = processor._store._conn

    deny_commit = CommitDenier()
    conn.set_authorizer(deny_commit)  # every COMMIT fails for real, as on a full disk
    first = [item(0, analytics(1, "voltage")), item(0, b"\xff", OP_TEXT), item(1, request("indicators"))]
    worker.process(processor, first)
    assert worker.stats.messages == 0 and worker.stats.held == 3 and worker.unstored() == 3
    assert worker.stats.errors() == {"store_failed": 1}
    ((messages, _received),) = senders[1].answers
    assert json.loads(messages[0]) == {"type": "response", "content": "error", "user": USER,
                                       "error": "store unavailable", "request": "indicators"}  # fmt: skip
    assert query(db, "SELECT COUNT(*) FROM events")[0][0] == 0
    deny_commit.on = False  # space is back
    worker.process(processor, [item(0, analytics(2, "speed")), item(1, request("student_graph"))])
    assert worker.stats.messages == 5 == query(db, "SELECT COUNT(*) FROM events")[0][0]
    assert worker.stats.held == 0 and worker.unstored() == 0
    assert [s.stored for s in worker.stream_stats] == [3, 2]
    rows = query(db, "SELECT type, t, received_at FROM events ORDER BY id")
    assert [r[:2] for r in rows] == [("analytics", 1), ("invalid", None), ("request", 1), ("analytics", 2),
                                     ("request", 1)]  # fmt: skip
    assert rows[0][2] == first[0][3]  # received_at is the reader's receive time, not the commit's
    answer = json.loads(senders[1].answers[-1][0][0])
    assert [(e["from"], e["to"]) for e in answer["edges"]] == [("voltage_step", "speed_step")]


def test_identical_waiting_requests_are_answered_once_and_the_budget_drops_a_flood(setup, caplog) -> None:  # type: ignore[no-untyped-def]
    worker, processor, senders, _db = setup
    batch = [item(0, all_feedback()) for _ in range(5)] + [item(0, request("indicators", user="bob"))]
    worker.process(processor, batch)
    assert len(senders[0].answers) == 2  # five identical all_feedback answered once, bob's once
    assert worker.stream_stats[0].requests_merged == 4
    flood = [item(0, request("indicators", n=i)) for i in range(100)]  # payloads differ: not identical
    worker.process(processor, flood)
    answered = len(senders[0].answers) - 2
    assert 14 <= answered <= 16  # burst 20 minus the 6 just spent (a little refill meanwhile)
    assert worker.stream_stats[0].requests_dropped == 100 - answered
    assert worker.stream_stats[0].budget_episodes == 1
    assert caplog.text.count("the excess is stored, not answered") == 1  # one line for the episode
    assert worker.stats.messages == 106  # every request is stored even when it is not answered


def test_invalid_frames_beyond_the_streams_byte_budget_are_counted_not_stored(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    processor = HandlerProcessor(db, Registry.load())
    worker = Worker(
        inbox=Inbox(1),
        make_processor=lambda: processor,
        names=["spin30"],
        senders=[Capture()],  # type: ignore[list-item]
        stream_stats=[StreamStats("spin30", "ws://h/ws/spin30")],
        stats=WorkerStats(),
        invalid_bytes_rate=1.0,
        invalid_bytes_burst=10 * 5000.0,  # room for about ten 4 kB garbage events
    )
    junk = b"#" * 100_000  # 100 kB of garbage per frame: each keeps a 4 kB prefix
    worker.process(processor, [item(0, junk) for _ in range(30)] + [item(0, analytics(1, "voltage"))])
    rows = query(db, "SELECT type, length(raw) FROM events ORDER BY id")
    invalid = [n for kind, n in rows if kind == "invalid"]
    assert 10 <= len(invalid) <= 12 and max(invalid) < 4300
    assert rows[-1][0] == "analytics"  # valid messages are never held back by the garbage budget
    assert worker.stream_stats[0].errors()["invalid_dropped"] == 30 - len(invalid)
    assert worker.stats.messages == len(rows)
    processor.close()


def test_a_stream_with_few_requests_is_answered_before_a_flooding_one(setup) -> None:  # type: ignore[no-untyped-def]
    worker, processor, senders, _db = setup
    order: List[int] = []
    for index, capture in enumerate(senders):
        capture.submit = lambda messages, received, i=index: order.append(i)  # type: ignore[method-assign]
    flood = [item(0, request("indicators", user=f"u{i}")) for i in range(30)]  # 30 users: all in budget
    worker.process(processor, [*flood[:10], item(1, request("indicators", user="victim")), *flood[10:]])
    assert order == [1] + [0] * 30  # the victim's answer first, then the flood's, in their order
