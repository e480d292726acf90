"""What held must keep holding, with real `serve` processes on the relay stand-in: kill -9 loses at
most the batch in flight and a restart goes on; two loggers (two streams) on one database count
exactly; forget while serving erases the student and leaves the others exact."""

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, List

import numpy as np
from service_helpers import (
    SPINNER_LOGS,
    Serve,
    analytics,
    connect,
    delivered_when_quiet,
    dumps,
    query,
    service_client,
    stored_counts,
    wait_for,
)

from practable_analytics.service.worker import COMMIT_MIN, COMMIT_WINDOW_S
from practable_analytics.store import Store
from practable_analytics.taskgraph import adjacency

N = 6


def exact_counts(db: Path, users: List[str]) -> None:
    with Store(db, readonly=True) as store:
        for user in users:
            chain = store.chain(user, "spinner", "engdes1")
            assert np.array_equal(store.matrix(user, "spinner", "engdes1", N), adjacency(chain, N)), user


def test_kill_9_loses_at_most_the_batch_in_flight_and_a_restart_goes_on(tmp_path: Path, host: Any) -> None:
    db = tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    serve.wait_connected(["spin30"])
    ui = connect(host, "spin30")
    sent = 0
    t0 = time.monotonic()
    for i in range(1500):
        ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6])))
        sent += 1
        time.sleep(0.0005)
    rate = sent / (time.monotonic() - t0)
    before = int(service_client(host, "spin30", [ui.local_name])["delivered"])
    serve.proc.kill()  # kill -9 in the middle of the traffic
    serve.kill()
    stored = stored_counts(db).get("spin30", 0)
    # what was received but not yet committed: at most the commit window's worth (plus one batch
    # being committed while it filled), never more than the window's event bound plus that batch
    in_window = min(COMMIT_MIN, int(rate * COMMIT_WINDOW_S) + 1)
    assert before - stored <= 2 * in_window, (before, stored, in_window)
    again = Serve(tmp_path, [host.ws_url("ws/spin30")], db)  # the lock is free: it starts
    try:
        again.wait_connected(["spin30"])
        for i in range(1500, 1600):
            ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6])))
            time.sleep(0.001)
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) >= stored + 90, 10)
    finally:
        assert again.terminate()[0] == 0
    ts = [r[0] for r in query(db, "SELECT t FROM events ORDER BY id")]
    assert len(ts) == len(set(ts))  # nothing twice
    exact_counts(db, ["0417fa50-de61-4a45-b71f-410fc7da9388"])


def test_two_loggers_on_one_database_count_exactly(tmp_path: Path, host: Any) -> None:
    db = tmp_path / "a.db"
    a = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    a.wait_connected(["spin30"])  # its status file exists: the second Serve picks another name
    b = Serve(tmp_path, [host.ws_url("ws/spin31")], db)
    try:
        b.wait_connected(["spin31"])
        ui30, ui31 = connect(host, "spin30"), connect(host, "spin31")
        users = ["alice-0000", "bob-000000"]

        def send(ui: Any, hardware: str, offset: int) -> None:
            for i in range(600):  # the same students on both devices, interleaved in time
                ui.send_text(dumps(analytics(2 * i + offset, SPINNER_LOGS[(i * 5 + offset) % 6],
                                             user=users[i % 2], hardware=hardware)))  # fmt: skip
                time.sleep(0.001)

        threads = [threading.Thread(target=send, args=(ui30, "spin30", 0)),
                   threading.Thread(target=send, args=(ui31, "spin31", 1))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        d30 = delivered_when_quiet(host, "spin30", [ui30.local_name])
        d31 = delivered_when_quiet(host, "spin31", [ui31.local_name])
        assert wait_for(lambda: stored_counts(db) == {"spin30": d30, "spin31": d31}, 10), stored_counts(db)
        assert wait_for(
            lambda: (a.status()["worker"]["stored"], b.status()["worker"]["stored"]) == (d30, d31), 3
        )
    finally:
        assert a.terminate()[0] == 0 and b.terminate()[0] == 0
    exact_counts(db, users)


def test_forget_while_serving_erases_the_student_and_keeps_the_others_exact(
    tmp_path: Path, host: Any
) -> None:
    db = tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    gone, kept = "leaver-0123456789", "stayer-0123456789"
    try:
        serve.wait_connected(["spin30"])
        ui = connect(host, "spin30")
        for i in range(200):
            ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6], user=gone)))
            time.sleep(0.001)
        assert wait_for(
            lambda: query(db, "SELECT COUNT(*) FROM events WHERE user = ?", (gone,))[0][0] > 150, 10
        )
        running = threading.Event()
        running.set()

        def keep_sending() -> None:
            i = 1000
            while running.is_set():
                ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6], user=kept)))
                i += 1
                time.sleep(0.002)

        sender = threading.Thread(target=keep_sending)
        sender.start()
        time.sleep(0.3)
        result = subprocess.run(
            [sys.executable, "-m", "practable_analytics.cli", "forget", "--db", str(db), "--user", gone],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        time.sleep(0.3)
        running.clear()
        sender.join(10)
        assert result.returncode == 0, result.stderr
        delivered = delivered_when_quiet(host, "spin30", [ui.local_name])
        erased = query(db, "SELECT COUNT(*) FROM events")[0][0]
        assert wait_for(lambda: serve.status()["worker"]["stored"] == delivered, 10)
    finally:
        assert serve.terminate()[0] == 0
    assert query(db, "SELECT COUNT(*) FROM events WHERE user = ?", (gone,)) == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM transitions WHERE user = ?", (gone,)) == [(0,)]
    assert erased > 0
    exact_counts(db, [kept])
    assert query(db, "SELECT COUNT(*) FROM events WHERE user = ?", (kept,))[0][0] > 100
