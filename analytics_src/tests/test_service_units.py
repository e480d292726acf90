"""Unit tests of the service parts: backoff, configuration, inbox, sender pacing, status file."""

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import pytest

from practable_analytics.service.backoff import Backoff
from practable_analytics.service.config import ConfigError, add_arguments, resolve
from practable_analytics.service.inbox import Inbox
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import StreamStats, WorkerStats
from practable_analytics.service.status import build, read, render, write_atomic


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------- backoff


def test_backoff_doubles_to_the_cap_with_full_jitter() -> None:
    b = Backoff(0.1, 10.0, rng=random.Random(1))
    ceilings = []
    for _ in range(12):
        ceilings.append(b.ceiling())
        delay = b.next_delay()
        assert 0.0 <= delay <= ceilings[-1]
    assert ceilings[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(ceilings) == 10.0 and ceilings[-1] == 10.0
    b.reset()
    assert b.ceiling() == pytest.approx(0.1)


def test_backoff_jitter_spreads_delays() -> None:
    b = Backoff(0.1, 10.0, rng=random.Random(7))
    for _ in range(20):
        b.next_delay()
    delays = [b.next_delay() for _ in range(200)]
    assert min(delays) < 2.0 and max(delays) > 8.0  # spread over [0, cap], not one value
    assert all(0 <= d <= 10.0 for d in delays)


def test_backoff_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


# ---------------------------------------------------------------------------------- config


def test_config_from_command_line(tmp_path: Path) -> None:
    cfg = resolve(
        parse(
            [
                "--stream",
                "ws://127.0.0.1:8888/ws/spin30",
                "--stream",
                "pend=ws://h:1/x/y",
                "--db",
                str(tmp_path / "a.db"),
                "--send-spacing-ms",
                "2.5",
                "--queue-size",
                "10",
            ]
        ),
        environ={},
    )
    assert [(s.name, s.url) for s in cfg.streams] == [
        ("spin30", "ws://127.0.0.1:8888/ws/spin30"),
        ("pend", "ws://h:1/x/y"),
    ]
    assert cfg.db == tmp_path / "a.db"
    assert cfg.send_spacing_s == pytest.approx(0.0025)
    assert cfg.queue_size == 10
    assert cfg.status_file is None and cfg.graphs is None


def test_config_from_environment_and_precedence(tmp_path: Path) -> None:
    env = {
        "PRACTABLE_ANALYTICS_STREAMS": "ws://127.0.0.1:8888/ws/spin30, ws://127.0.0.1:8888/ws/spin31\nws://127.0.0.1:8888/ws/a/b",
        "PRACTABLE_ANALYTICS_DB": str(tmp_path / "env.db"),
        "PRACTABLE_ANALYTICS_GRAPHS": str(tmp_path),
        "PRACTABLE_ANALYTICS_STATUS_FILE": str(tmp_path / "s.json"),
        "PRACTABLE_ANALYTICS_SEND_SPACING_MS": "0",
        "PRACTABLE_ANALYTICS_BACKOFF_MAX": "3",
    }
    cfg = resolve(parse([]), environ=env)
    assert [s.name for s in cfg.streams] == ["spin30", "spin31", "a/b"]
    assert cfg.db == tmp_path / "env.db"
    assert cfg.graphs == tmp_path
    assert cfg.status_file == tmp_path / "s.json"
    assert cfg.send_spacing_s == 0.0
    assert cfg.backoff_max_s == 3.0
    # the command line wins over the environment
    cfg2 = resolve(parse(["--stream", "ws://127.0.0.1:1/ws/x", "--db", str(tmp_path / "cli.db"),
                          "--backoff-max", "5"]), environ=env)  # fmt: skip
    assert (
        [s.name for s in cfg2.streams] == ["x"]
        and cfg2.db == tmp_path / "cli.db"
        and cfg2.backoff_max_s == 5.0
    )


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--db", "DB"], "no stream"),
        (["--stream", "http://127.0.0.1/ws/a", "--db", "DB"], "invalid stream URL"),
        (["--stream", "ws:///ws/a", "--db", "DB"], "invalid stream URL"),
        (["--stream", "ws://h:99999/ws/a", "--db", "DB"], "invalid stream URL"),
        (["--stream", "ws://h/ws/a", "--stream", "ws://g/ws/a", "--db", "DB"], "stream given twice"),
        (["--stream", "ws://h/", "--db", "DB"], "invalid stream name"),
        (["--stream", "ws://h/ws/a"], "no database"),
        (["--stream", "ws://h/ws/a", "--db", "/nonexistent-dir/x.db"], "does not exist"),
        (["--stream", "ws://h/ws/a", "--db", "TMP"], "is a directory"),
        (["--stream", "ws://h/ws/a", "--db", "DB", "--graphs", "/nonexistent-graphs"], "graphs directory"),
        (["--stream", "ws://h/ws/a", "--db", "DB", "--queue-size", "0"], "queue-size"),
        (["--stream", "ws://h/ws/a", "--db", "DB", "--send-spacing-ms", "nan"], "send-spacing-ms"),
        (
            ["--stream", "ws://h/ws/a", "--db", "DB", "--backoff-initial", "5", "--backoff-max", "1"],
            "backoff-max",
        ),
    ],
)
def test_config_errors(tmp_path: Path, argv: List[str], reason: str) -> None:
    argv = [str(tmp_path / "a.db") if a == "DB" else str(tmp_path) if a == "TMP" else a for a in argv]
    with pytest.raises(ConfigError, match=reason):
        resolve(parse(argv), environ={})


def test_config_bad_environment_number(tmp_path: Path) -> None:
    env = {"PRACTABLE_ANALYTICS_QUEUE_SIZE": "many"}
    with pytest.raises(ConfigError, match="PRACTABLE_ANALYTICS_QUEUE_SIZE"):
        resolve(parse(["--stream", "ws://h/ws/a", "--db", str(tmp_path / "a.db")]), environ=env)


@pytest.mark.parametrize(
    "extra",
    [
        ["--stream", "not a url"],
        ["--stream", "ws://127.0.0.1:1/ws/a", "--graphs", "/nonexistent-graphs"],
        ["--stream", "ws://127.0.0.1:1/ws/a", "--db-is-dir"],
    ],
)
def test_serve_configuration_errors_exit_2_with_one_line(tmp_path: Path, extra: List[str]) -> None:
    db = str(tmp_path / "a.db")
    if "--db-is-dir" in extra:
        extra = [e for e in extra if e != "--db-is-dir"]
        db = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "practable_analytics.cli", "serve", "--db", db, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("practable-analytics: error: "), proc.stderr


def test_serve_invalid_graph_definitions_exit_2(tmp_path: Path) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "spinner-engdes1-bad.csv").write_text("this,is\nnot,a graph\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "practable_analytics.cli",
            "serve",
            "--db",
            str(tmp_path / "a.db"),
            "--stream",
            "ws://127.0.0.1:1/ws/a",
            "--graphs",
            str(graphs),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "invalid graphs" in proc.stderr


def test_serve_unusable_database_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not an sqlite database" * 100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "practable_analytics.cli",
            "serve",
            "--db",
            str(db),
            "--stream",
            "ws://127.0.0.1:1/ws/a",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("practable-analytics: error: cannot open database"), lines


# ---------------------------------------------------------------------------------- inbox


def test_inbox_fifo_batches_and_per_stream_high_water() -> None:
    inbox = Inbox(2, max_items=1000)
    for i in range(5):
        assert inbox.put((i % 2, 1, b"x" * i, 0.0))
    assert inbox.stream_snapshot([0, 1]) == [(3, 3), (2, 2)]
    batch = inbox.get_batch(3, 0.0)
    assert [len(item[2]) for item in batch] == [0, 1, 2]
    assert inbox.get_batch(10, 0.0)[0][2] == b"xxx"
    assert inbox.stream_snapshot([0, 1]) == [(0, 3), (0, 2)]
    snap = inbox.snapshot()
    assert (
        snap["depth"] == 0
        and snap["bytes"] == 0
        and snap["high_water"] == 5
        and snap["high_water_bytes"] == 10
    )


def test_inbox_full_blocks_the_reader_until_room_and_loses_nothing() -> None:
    inbox = Inbox(1, max_items=3)
    for i in range(3):
        inbox.put((0, 1, bytes([i]), 0.0))
    done = threading.Event()

    def put_fourth() -> None:
        inbox.put((0, 1, b"\x03", 0.0))
        done.set()

    thread = threading.Thread(target=put_fourth)
    thread.start()
    assert not done.wait(0.3)  # waits while full
    first = inbox.get_batch(1, 0.0)
    assert done.wait(2.0)
    thread.join()
    rest = inbox.get_batch(10, 0.0)
    assert [item[2] for item in first + rest] == [b"\x00", b"\x01", b"\x02", b"\x03"]
    assert inbox.snapshot()["full_episodes"] == 1


def test_inbox_byte_bound_and_stop_while_full() -> None:
    inbox = Inbox(1, max_items=100, max_bytes=10)
    assert inbox.put((0, 1, b"0123456789", 0.0))
    stop = threading.Event()
    result: List[bool] = []
    thread = threading.Thread(target=lambda: result.append(inbox.put((0, 1, b"a", 0.0), stop)))
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(2.0)
    assert result == [False]
    # one message larger than the whole byte bound still goes in when the inbox is empty
    inbox.get_batch(10, 0.0)
    assert inbox.put((0, 1, b"x" * 50, 0.0))


def test_inbox_close_wakes_the_worker_and_keeps_items() -> None:
    inbox = Inbox(1)
    inbox.put((0, 1, b"a", 0.0))
    inbox.close()
    assert not inbox.put((0, 1, b"b", 0.0))
    assert [i[2] for i in inbox.get_batch(10, 5.0)] == [b"a"]
    t0 = time.monotonic()
    assert inbox.get_batch(10, 5.0) == []
    assert time.monotonic() - t0 < 1.0


def wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


# ---------------------------------------------------------------------------------- status file


def test_status_file_is_written_atomically_and_readable(tmp_path: Path) -> None:
    inbox = Inbox(1)
    inbox.put((0, 1, b"abc", 0.0))
    stats = StreamStats("spin30", "ws://127.0.0.1:8888/ws/spin30")
    stats.set_connected(True)
    stats.received = 3
    stats.error("connect_failed", 2)
    sender = Sender("spin30", stats)
    doc = build(
        started=time.time(), db=tmp_path / "a.db", inbox=inbox, streams=[stats], senders=[sender],
        worker=WorkerStats(), state="running",
    )  # fmt: skip
    path = tmp_path / "status.json"
    write_atomic(path, doc)
    again = read(path)
    s = again["streams"]["spin30"]
    assert s["connected"] is True and s["messages_received"] == 3 and s["errors"] == {"connect_failed": 2}
    assert s["queue_pending"] == 1 and s["queue_high_water"] == 1
    assert again["queue"]["depth"] == 1 and again["state"] == "running"
    assert json.loads(path.read_text()) == again
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary files left behind
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError):
        read(tmp_path / "bad.json")


def test_status_render_flags_a_silent_running_service_as_stale() -> None:
    stream = {"connected": True, "url": "ws://h/ws/spin30", "messages_received": 5}
    doc = {"pid": 1, "state": "running", "updated_epoch": 1000.0, "queue": {}, "worker": {},
           "streams": {"spin30": stream}}  # fmt: skip
    lines = render([doc], {"spin30": {"events": 5, "last_received": None}, "": {"events": 2}}, now=1005.0)
    assert "STALE" not in lines[0] and "spin30: connected since" in "\n".join(lines)
    assert any("received 5  stored 5" in line for line in lines)
    assert any("(no stream: replay/import): 2 events" in line for line in lines)
    assert "STALE" in render([doc], None, now=1100.0)[0]
    assert "STALE" not in render([dict(doc, state="stopped")], None, now=1100.0)[0]


def test_inbox_logs_each_high_water_threshold_once(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(1, max_items=20_000)
    with caplog.at_level("WARNING", logger="practable_analytics.service.inbox"):
        for _ in range(3):  # the mark only counts new heights
            inbox.put_many([(0, 1, b"x", 0.0)] * 1500)
            inbox.get_batch(10_000, 0.0)
        inbox.put_many([(0, 1, b"x", 0.0)] * 10_500)
    marks = [r.getMessage() for r in caplog.records]
    # thresholds 1,000 / 10,000 / 18,000: crossed at 1,500 (once, not on every refill) and at 10,500
    assert len(marks) == 2, marks
    assert "mark 1500 messages" in marks[0] and "mark 10500 messages" in marks[1]
    assert inbox.snapshot()["high_water"] == 10_500
