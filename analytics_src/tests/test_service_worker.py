"""The worker over the real Handler and a real SQLite Store: order, cross-stream commit-before-answer,
undecodable frames, answers routed to the stream they were asked on."""

import json
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from service_helpers import analytics, dumps, query, request

from practable_analytics.experiments import Registry
from practable_analytics.service.frames import OP_BINARY, OP_TEXT
from practable_analytics.service.inbox import Inbox
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


def item(stream: int, message: object, opcode: int = OP_TEXT) -> Tuple[int, int, bytes, float]:
    data = message if isinstance(message, bytes) else dumps(message).encode()
    return (stream, opcode, data, time.time())


def test_request_on_one_stream_sees_events_received_before_it_on_another(setup) -> None:  # type: ignore[no-untyped-def]
    worker, processor, senders, db = setup
    batch = [
        item(0, analytics(1, "voltage", user="alice")),
        item(0, analytics(2, "speed", user="alice")),
        item(1, request("student_graph", user="alice")),  # asked on spin31, events came on spin30
        item(0, analytics(3, "position", user="alice")),  # after the request: not in its answer
    ]
    worker.process(processor, batch)
    assert senders[0].answers == []
    ((messages, received),) = senders[1].answers
    answer = json.loads(messages[0])
    assert [(e["from"], e["to"]) for e in answer["edges"]] == [("voltage_step", "speed_step")]
    assert received == batch[2][3]
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


def test_storage_failures_are_counted_and_the_worker_goes_on(setup) -> None:  # type: ignore[no-untyped-def]
    worker, processor, _senders, _db = setup
    processor.close()  # every store call now fails (a closed connection stands in for a broken disk)
    worker.process(processor, [item(0, analytics(1, "voltage")), item(0, b"\xff", OP_TEXT)])
    assert worker.stats.errors() == {"store_failed": 2}
    assert worker.stats.messages == 2
