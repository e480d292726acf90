"""The worker computes the answers of a batch while the batch's fsync runs on the sync thread, and
still sends them, and counts the batch, only once that fsync has returned. A real Inbox, Worker,
HandlerProcessor and SQLite file; the fsync is the real one, made 40 ms slow."""

import os
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest
from service_helpers import analytics, dumps, request

from practable_analytics import store as store_module
from practable_analytics.experiments import Registry
from practable_analytics.service.frames import OP_TEXT
from practable_analytics.service.inbox import Inbox, received_now
from practable_analytics.service.processing import HandlerProcessor
from practable_analytics.service.stats import EventCounts, StreamStats, WorkerStats
from practable_analytics.service.syncer import Syncer
from practable_analytics.service.worker import Worker

SLOW_S = 0.04


def test_answers_are_computed_during_the_fsync_and_sent_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    times: Dict[str, List[float]] = {"sync_start": [], "sync_end": [], "reply": [], "submit": []}
    worker: Worker
    counted_at_sync_end: List[int] = []
    real_fsync = os.fsync
    real_reply = HandlerProcessor.reply

    def slow_fsync(fd: int) -> None:
        if threading.current_thread().name != "sync":  # the store's setup, on the worker thread
            real_fsync(fd)
            return
        times["sync_start"].append(time.monotonic())
        time.sleep(SLOW_S)
        real_fsync(fd)
        counted_at_sync_end.append(worker.stats.messages + counts.stream("spin30")["stored"])
        times["sync_end"].append(time.monotonic())

    def reply(self: HandlerProcessor, parsed: object) -> List[dict]:
        times["reply"].append(time.monotonic())
        return real_reply(self, parsed)  # type: ignore[arg-type]

    class Capture:
        def __init__(self) -> None:
            self.answers: List[List[str]] = []

        def submit(self, messages: List[str], received: float) -> None:
            times["submit"].append(time.monotonic())
            self.answers.append(messages)

    monkeypatch.setattr(store_module.os, "fsync", slow_fsync)
    monkeypatch.setattr(store_module.os, "fdatasync", slow_fsync, raising=False)
    monkeypatch.setattr(HandlerProcessor, "reply", reply)
    counts = EventCounts(["student_graph"])
    inbox = Inbox(1)
    sender = Capture()
    worker = Worker(
        inbox=inbox,
        make_processor=lambda: HandlerProcessor(tmp_path / "w.db", Registry.load(), counts),
        names=["spin30"],
        senders=[sender],  # type: ignore[list-item]
        stream_stats=[StreamStats("spin30", "ws://h/ws/spin30")],
        stats=WorkerStats(),
    )
    worker.start()
    assert worker.ready.wait(5)
    frames = [analytics(1, "voltage"), analytics(2, "speed"), request("student_graph")]
    inbox.put_nowait_many([received_now(0, OP_TEXT, dumps(m).encode()) for m in frames])
    deadline = time.monotonic() + 5
    while not sender.answers and time.monotonic() < deadline:
        time.sleep(0.005)
    inbox.close()
    worker.join(10)
    assert sender.answers and '"from":"voltage_step","to":"speed_step"' in sender.answers[0][0]
    assert len(times["sync_end"]) == 1  # the batch's fsync ran on the sync thread
    sync_end = times["sync_end"][0]
    assert times["reply"][0] < sync_end - SLOW_S / 2  # the answer was computed during the fsync ...
    assert times["submit"][0] >= sync_end  # ... and sent only after it
    assert counted_at_sync_end[0] == 0  # nothing counted as stored before it was on disk
    assert worker.stats.messages == 3
    assert counts.stream("spin30")["stored"] == 3


def test_the_syncer_hands_back_a_failure_and_runs_one_job_at_a_time() -> None:
    syncer = Syncer()
    ran = threading.Event()
    release = threading.Event()

    def job() -> None:
        ran.set()
        release.wait(5)

    syncer.start(job)
    assert ran.wait(5)
    with pytest.raises(RuntimeError):
        syncer.start(job)  # one at a time
    release.set()
    syncer.wait()

    def failing() -> None:
        raise OSError(5, "Input/output error")

    syncer.start(failing)
    with pytest.raises(OSError):
        syncer.wait()
    syncer.start(lambda: None)  # still usable after a failure
    syncer.wait()
    syncer.close()
    with pytest.raises(RuntimeError):
        syncer.start(job)
