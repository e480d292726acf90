"""serve under real faults: a data directory that fills up and empties again, SIGTERM while storage
fails, a flood of garbage frames. A real `practable-analytics serve`, the relay stand-in (or a raw
frame pusher) on 127.0.0.1, a real tmpfs. Counts are checked against what was delivered."""

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from fault_helpers import Tmpfs, tmpfs  # noqa: F401 (fixture)
from service_helpers import (
    SPINNER_LOGS,
    FramePusher,
    Serve,
    analytics,
    connect,
    delivered_when_quiet,
    dumps,
    recv_responses,
    relay_standin,
    request,
    stored_counts,
    wait_for,
)


def send_events(ui: Any, first: int, n: int) -> None:
    for i in range(first, first + n):
        ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6])))
        time.sleep(0.001)


def test_disk_full_loses_nothing_and_counters_stay_honest(tmp_path: Path, host: Any, tmpfs: Tmpfs) -> None:  # noqa: F811
    db = tmpfs.path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    try:
        serve.wait_connected(["spin30"])
        ui, dash = connect(host, "spin30"), connect(host, "spin30")
        others = [ui.local_name, dash.local_name]
        send_events(ui, 0, 300)
        before = delivered_when_quiet(host, "spin30", others)
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) == before, 10), (
            before,
            stored_counts(db),
            serve.status(),
            serve.stderr()[-3000:],
        )
        tmpfs.fill()  # the data directory is full from here on
        send_events(ui, 300, 1000)
        # the request goes out once the relay has forwarded the events: sent while its writer toward
        # the service is still busy, the relay's lossy hand-off (SPEC 4) can drop it, and no answer comes
        delivered_when_quiet(host, "spin30", others)
        dash.send_text(dumps(request("indicators")))
        answers = recv_responses(dash, 1, 5.0)
        assert [(a["content"], a.get("error"), a.get("request")) for a in answers] == [
            ("error", "store unavailable", "indicators")
        ], serve.stderr()[-2000:]
        delivered = delivered_when_quiet(host, "spin30", others)

        def accounted() -> bool:
            w = serve.status()["worker"]
            return bool(w["held"] + w["stored"] == delivered and w["stored"] == stored_counts(db)["spin30"])

        assert wait_for(accounted, 5), (delivered, serve.status()["worker"])
        status = serve.status()  # stored means committed: the database has exactly that many rows
        assert status["worker"]["held"] > 500 and status["worker"]["retries"] >= 1
        assert status["worker"]["unstored"] == status["worker"]["held"]
        assert status["streams"]["spin30"]["messages_stored"] == status["worker"]["stored"]
        tmpfs.free()  # space returns: everything received meanwhile is stored
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) == delivered, 15), serve.stderr()[-2000:]
        assert wait_for(lambda: serve.status()["worker"]["unstored"] == 0, 5)
        status = serve.status()
        assert status["worker"]["stored"] == delivered == status["streams"]["spin30"]["messages_stored"]
        dash.send_text(dumps(request("indicators")))
        (answer,) = recv_responses(dash, 1, 5.0)
        assert answer["content"] == "indicators"
    finally:
        rc, _ = serve.terminate(30)
    assert rc == 0, serve.stderr()[-3000:]
    log = serve.stderr()
    assert log.count("they are kept and retried") == 1 and "storage works again" in log
    final = stored_counts(db)["spin30"]  # the last request is one more row
    assert final == delivered + 1 and f"stopped: {final} messages stored" in log and " 0 unstored" in log
    assert delivered >= 1000  # sanity: the stand-in delivered most of what was sent


def test_sigterm_while_storage_fails_reports_the_unstored_count_and_exits_non_zero(
    tmp_path: Path,
    host: Any,
    tmpfs: Tmpfs,  # noqa: F811
) -> None:
    db = tmpfs.path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db, "--stop-timeout", "2")
    try:
        serve.wait_connected(["spin30"])
        ui = connect(host, "spin30")
        send_events(ui, 0, 10)
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) >= 5, 10)
        tmpfs.fill()
        send_events(ui, 10, 200)
        delivered = delivered_when_quiet(host, "spin30", [ui.local_name])
        rc, elapsed = serve.terminate(10)
    finally:
        serve.kill()
    assert rc != 0 and elapsed < 4.0
    unstored = delivered - stored_counts(db).get("spin30", 0)
    assert unstored > 0
    assert f"stop: {unstored} received messages are NOT stored at the deadline" in serve.stderr()


def test_garbage_flood_grows_the_database_by_a_few_mib_only(tmp_path: Path) -> None:
    junk = os.urandom(1 << 20)
    frames = []
    for i in range(300):
        if i % 2:
            frames.append((relay_standin.OP_BINARY, junk))
        else:  # valid UTF-8, not JSON
            frames.append(
                (relay_standin.OP_TEXT, (b"garbage %d " % i) + junk.hex().encode()[: (1 << 20) - 16])
            )
    frames.append((relay_standin.OP_TEXT, dumps(analytics(1, "voltage")).encode()))
    pusher = FramePusher(frames)
    db = tmp_path / "a.db"
    serve = Serve(tmp_path, [pusher.url], db)
    try:
        assert wait_for(lambda: serve.status().get("streams", {}).get("soak", {}).get("messages_received", 0)
                        == len(frames), 60), serve.status()  # fmt: skip
        assert wait_for(lambda: serve.status()["worker"]["unstored"] == 0, 30)
        status = serve.status()
    finally:
        rc, _ = serve.terminate(30)
        pusher.close()
    assert rc == 0
    size = sum(p.stat().st_size for p in tmp_path.glob("a.db*"))
    assert size <= 4 << 20, size  # 300 MiB received
    errors = status["streams"]["soak"]["errors"]
    stored = stored_counts(db)["soak"]
    assert errors.get("invalid_dropped", 0) + stored == len(frames)  # every frame stored or counted
    assert stored >= 150  # the burst allowance


def test_a_write_lock_held_by_another_process_costs_retries_not_messages(tmp_path: Path, host: Any) -> None:
    db = tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    try:
        serve.wait_connected(["spin30"])
        ui, dash = connect(host, "spin30"), connect(host, "spin30")
        others = [ui.local_name, dash.local_name]
        send_events(ui, 0, 50)
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) > 0, 10)
        holder = sqlite3.connect(str(db), isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")  # another process's long write: longer than serve's 5 s wait
        try:
            send_events(ui, 50, 200)
            dash.send_text(dumps(request("indicators")))
            answers = recv_responses(dash, 1, 10.0)
            assert [a.get("error") for a in answers] == ["store unavailable"], serve.stderr()[-2000:]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        delivered = delivered_when_quiet(host, "spin30", others)
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) == delivered, 15), serve.stderr()[-2000:]
        assert wait_for(lambda: serve.status()["worker"]["stored"] == delivered, 5)
        assert serve.status()["worker"]["retries"] >= 1
    finally:
        rc, _ = serve.terminate(30)
    assert rc == 0
    assert "database is locked" in serve.stderr()
