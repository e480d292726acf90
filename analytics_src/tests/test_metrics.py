"""Prometheus metrics of serve (issue 12): a real `serve` subprocess against the relay stand-in, real
SQLite files; the scraped values are compared with what was sent, the status file and the rows stored.
promtool (Debian's `prometheus` package) checks a real scrape when it is installed."""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import (
    Serve,
    analytics,
    connect,
    dumps,
    query,
    recv_responses,
    relay_standin,
    request,
    service_client,
    stored_counts,
    wait_for,
)

from practable_analytics.commands.status import check
from practable_analytics.messages import invalid
from practable_analytics.service.config import ConfigError, add_arguments, resolve
from practable_analytics.service.metrics import exposition, parse_listen, write_textfile
from practable_analytics.service.stats import ANSWER_BUCKETS_S, EventCounts, LatencyRecord

P = "practable_analytics_"
Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, labels); parsing proves the format."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = float(s.value)
    return out


def value(got: Samples, name: str, **labels: str) -> float:
    return got[(P + name, frozenset(labels.items()))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return str(response.read().decode("utf-8"))


# ------------------------------------------------------------------------------------------ units


def test_listen_address_forms_and_loopback_default() -> None:
    assert parse_listen("") is None and parse_listen("  ") is None
    assert parse_listen("9841") == ("127.0.0.1", 9841)
    assert parse_listen(":9841") == ("127.0.0.1", 9841)
    assert parse_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("host.example:9000", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", "1.2.3.4:"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_metrics_options_from_command_line_and_environment(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--stream", "ws://127.0.0.1:1/ws/spin30", "--db", str(tmp_path / "a.db")]
    config = resolve(parser.parse_args(base), environ={})
    assert config.metrics_listen is None and config.metrics_textfile is None
    env = {
        "PRACTABLE_ANALYTICS_METRICS_LISTEN": ":9850",
        "PRACTABLE_ANALYTICS_METRICS_TEXTFILE": str(tmp_path / "a.prom"),
    }
    config = resolve(parser.parse_args(base), environ=env)
    assert config.metrics_listen == ("127.0.0.1", 9850) and config.metrics_textfile == tmp_path / "a.prom"
    config = resolve(parser.parse_args([*base, "--metrics-listen", "127.0.0.2:9851"]), environ=env)
    assert config.metrics_listen == ("127.0.0.2", 9851)
    for args, reason in (
        (["--metrics-listen", "nowhere:1"], "IP address"),
        (["--metrics-textfile", str(tmp_path / "a.txt")], ".prom"),
        (["--metrics-textfile", str(tmp_path / "missing" / "a.prom")], "missing or not writable"),
    ):
        with pytest.raises(ConfigError, match=reason):
            resolve(parser.parse_args([*base, *args]), environ={})


def test_latency_record_keeps_the_window_and_a_cumulative_histogram() -> None:
    record = LatencyRecord(maxlen=3)
    for seconds in (0.001, 0.005, 0.2, 3.0, 60.0):
        record.append(seconds)
    assert list(record) == [0.2, 3.0, 60.0]  # the window for p50/p95 stays bounded
    hist = record.histogram()
    assert hist["le"] == list(ANSWER_BUCKETS_S) and hist["count"] == 5
    by_bound = dict(zip(hist["le"], hist["counts"]))
    assert by_bound[0.005] == 2  # le is inclusive
    assert by_bound[0.1] == 2 and by_bound[0.25] == 3 and by_bound[2.5] == 3 and by_bound[5.0] == 4
    assert hist["counts"][-1] == 4  # 60 s is only in +Inf
    assert hist["sum"] == pytest.approx(63.206)


def test_event_counts_by_stream_type_and_request_content() -> None:
    counts = EventCounts(["indicators"])

    class E:
        def __init__(self, type_: str, raw: str, stream: str = "s") -> None:
            self.type, self.raw, self.stream = type_, raw, stream

    counts.committed([E("analytics", "{}"), invalid("garbage", "s"),
                      E("request", dumps(request("indicators"))), E("request", dumps(request("x" * 300))),
                      E("log", "{}", stream="t")])  # fmt: skip
    assert counts.stream("s") == {"stored": 4, "invalid": 1, "requests": {"indicators": 1, "other": 1}}
    assert counts.stream("t") == {"stored": 1, "invalid": 0, "requests": {}}
    assert counts.stream("none") == {"stored": 0, "invalid": 0, "requests": {}}


def test_textfile_parses_and_is_replaced_atomically(tmp_path: Path) -> None:
    """Readers racing the writer only ever see a whole file, and no temporary file stays behind."""
    path = tmp_path / "spin30.prom"
    streams = {
        f"s{i}": {"messages_received": i, "stored": i, "connected": True, "connects": 1, "errors": {}}
        for i in range(200)
    }
    doc = {"streams": streams, "queue": {"depth": 0, "high_water": 3, "limit": 10}, "state": "running",
           "package_version": "0.1.0", "db_bytes": 4096, "updated_epoch": 1.0}  # fmt: skip
    write_textfile(path, doc)
    expected = path.read_text()
    assert len(expected) > 50_000  # big enough that a non-atomic write would be seen half done
    stop = threading.Event()
    seen: List[str] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(path.read_text())

    t = threading.Thread(target=reader)
    t.start()
    inodes = set()
    for _ in range(30):
        write_textfile(path, doc)
        inodes.add(os.stat(path).st_ino)
    stop.set()
    t.join()
    assert len(inodes) > 1  # replaced by rename, not rewritten in place
    assert seen and all(text == expected for text in seen)
    got = samples(expected)
    assert value(got, "messages_received_total", stream="s199") == 199
    assert value(got, "inbox_high_water") == 3 and value(got, "store_bytes") == 4096
    assert value(got, "build_info", version="0.1.0") == 1
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["spin30.prom"]


# ---------------------------------------------------------------------------------- real serve


def wait_caught_up(serve: Serve, host: Any, stream: str, others: List[str], db: Path, before: int = 0) -> int:
    """Until the stand-in stopped delivering to the service and the store holds it all (plus
    ``before`` stored earlier, through a stand-in since restarted); returns the delivered count."""
    state: Dict[str, Any] = {"last": -1, "since": time.monotonic()}

    def settled() -> bool:
        delivered = int(service_client(host, stream, others)["delivered"])
        if delivered != state["last"]:
            state["last"], state["since"] = delivered, time.monotonic()
            return False
        s = serve.status().get("streams", {}).get(stream, {})
        return (
            time.monotonic() - state["since"] >= 0.5
            and stored_counts(db).get(stream, 0) == before + delivered
            and s.get("stored") == before + delivered
        )

    assert wait_for(settled, 15), (state, serve.status())
    return int(state["last"])


def check_against_status_and_db(got: Samples, doc: Dict[str, Any], db: Path, stream: str) -> None:
    s = doc["streams"][stream]
    rows = query(db, "SELECT type, raw FROM events WHERE stream = ?", [stream])
    assert value(got, "messages_stored_total", stream=stream) == len(rows) == s["stored"]
    invalid = sum(1 for t, _ in rows if t == "invalid")
    assert value(got, "messages_invalid_total", stream=stream) == invalid == s["invalid"]
    by_content: Dict[str, int] = {}
    for t, raw in rows:
        if t == "request":
            content = json.loads(raw)["payload"]["content"]
            by_content[content] = by_content.get(content, 0) + 1
    scraped = {dict(k[1])["content"]: v for k, v in got.items() if k[0] == P + "requests_total"}
    assert scraped == by_content == s["requests_by_content"]
    assert value(got, "messages_received_total", stream=stream) == s["messages_received"]
    assert value(got, "answers_sent_total", stream=stream) == s["answers_sent"]
    assert value(got, "answer_seconds_count", stream=stream) == s["answers_sent"]
    assert value(got, "answer_seconds_bucket", stream=stream, le="+Inf") == s["answers_sent"]
    assert value(got, "stream_connected", stream=stream) == (1 if s["connected"] else 0)
    assert value(got, "reconnects_total", stream=stream) == s["connects"] - 1
    last_event = value(got, "last_event_timestamp_seconds", stream=stream)
    assert last_event == pytest.approx(s["last_event_epoch"], abs=0.0005)
    # the stored received_at is the reader's time of the frame, or (older stores) its commit time
    last_row = query(db, "SELECT MAX(received_at) FROM events WHERE stream = ?", [stream])[0][0]
    assert last_row - 1.0 < last_event <= last_row + 0.0005
    dropped = sum(v for k, v in got.items() if k[0] == P + "requests_dropped_total")
    assert dropped == sum(v for k, v in s["errors"].items() if k.startswith(("answer_", "send_", "encode_")))
    db_bytes = os.stat(db).st_size + (os.stat(f"{db}-wal").st_size if os.path.exists(f"{db}-wal") else 0)
    assert value(got, "store_bytes") == db_bytes == doc["db_bytes"]
    assert value(got, "inbox_high_water") == doc["queue"]["high_water"]
    assert value(got, "inbox_depth") == 0 and value(got, "store_errors_total") == 0


def test_scrape_equals_what_was_sent_the_status_file_and_the_database_after_faults(
    tmp_path: Path,
) -> None:
    host = relay_standin.start_host(port=0)
    port, db = free_port(), tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db, "--metrics-listen", f"127.0.0.1:{port}",
                  "--backoff-max", "0.5")  # fmt: skip
    try:
        serve.wait_connected(["spin30"])
        ui, dash = connect(host, "spin30"), connect(host, "spin30")
        for i in range(20):
            ui.send_text(dumps(analytics(i, "voltage" if i % 2 else "speed")))
            time.sleep(0.01)  # the relay drops what arrives while its writer is busy: pace like a UI
        ui.send_text("not json at all")  # faults: garbage, a binary frame, bad UTF-8
        time.sleep(0.01)
        ui.send_binary(b"\x00\x01binary")
        time.sleep(0.01)
        ui.conn.send_frame(relay_standin.OP_TEXT, b"\xc3\x28")
        time.sleep(0.01)
        answered = 0
        for content in ("indicators", "student_graph", "indicators"):
            dash.send_text(dumps(request(content)))
            answered += len(recv_responses(dash, 1, 2.0))
        assert answered >= 2
        delivered = wait_caught_up(serve, host, "spin30", [ui.local_name, dash.local_name], db)
        assert delivered >= 20
        assert wait_for(lambda: serve.status()["streams"]["spin30"]["answers_pending"] == 0, 3)
        time.sleep(0.3)  # one more status interval: the status file and the scrape see the same state
        got = samples(scrape(port))
        doc = serve.status()
        check_against_status_and_db(got, doc, db, "spin30")
        assert value(got, "messages_invalid_total", stream="spin30") >= 3
        assert value(got, "reconnects_total", stream="spin30") == 0
        assert value(got, "answers_sent_total", stream="spin30") >= answered

        # fault: the relay goes away; the gauge says so, and the reconnect is counted when it is back
        relay_port = host.port
        host.stop()
        assert wait_for(lambda: value(samples(scrape(port)), "stream_connected", stream="spin30") == 0, 5)
        assert wait_for(lambda: not serve.connected("spin30"), 5)  # the status file too, a moment later
        host = relay_standin.start_host(port=relay_port)
        serve.wait_connected(["spin30"], timeout=5)
        ui = connect(host, "spin30")
        for i in range(5):
            ui.send_text(dumps(analytics(100 + i, "voltage")))
            time.sleep(0.01)
        again = wait_caught_up(serve, host, "spin30", [ui.local_name], db, before=delivered)
        assert again >= 1
        time.sleep(0.3)
        got = samples(scrape(port))
        assert value(got, "reconnects_total", stream="spin30") == 1
        assert value(got, "stream_connected", stream="spin30") == 1
        check_against_status_and_db(got, serve.status(), db, "spin30")

        # only /metrics is served
        with pytest.raises(urllib.error.HTTPError) as info:
            scrape(port, "/other")
        assert info.value.code == 404
    finally:
        rc, _ = serve.terminate()
        host.stop()
    assert rc == 0, serve.stderr()
    with pytest.raises(OSError):  # the server closed with the service
        scrape(port)


def test_textfile_from_serve_equals_the_status_file(tmp_path: Path, host: Any) -> None:
    db, prom = tmp_path / "a.db", tmp_path / "spin30.prom"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db, "--metrics-textfile", str(prom))
    try:
        serve.wait_connected(["spin30"])
        ui = connect(host, "spin30")
        for i in range(5):
            ui.send_text(dumps(analytics(i, "voltage")))
            time.sleep(0.01)
        assert wait_for(lambda: stored_counts(db).get("spin30") == 5, 5)

        def stored_in_textfile() -> float:
            return value(samples(prom.read_text()), "messages_stored_total", stream="spin30")

        assert wait_for(lambda: stored_in_textfile() == 5, 3)
    finally:
        rc, _ = serve.terminate()
    assert rc == 0
    got, doc = samples(prom.read_text()), serve.status()
    assert doc["state"] == "stopped"
    assert value(got, "service_running") == 0 and value(got, "stream_connected", stream="spin30") == 0
    assert value(got, "status_updated_timestamp_seconds") == doc["updated_epoch"]
    check_against_status_and_db(got, doc, db, "spin30")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_per_device_loggers_on_one_database_each_scrape_their_own_stream(tmp_path: Path, host: Any) -> None:
    """The role's per-device mode: one process per device, a port each, one shared database."""
    db = tmp_path / "a.db"
    ports = {"spin30": free_port(), "spin31": free_port()}
    for name in ports:
        (tmp_path / name).mkdir()  # a status file each
    serves = {
        name: Serve(tmp_path / name, [host.ws_url(f"ws/{name}")], db, "--metrics-listen", f"127.0.0.1:{port}")
        for name, port in ports.items()
    }
    try:
        for name, serve in serves.items():
            serve.wait_connected([name])
        sent = {"spin30": 3, "spin31": 6}
        for name, n in sent.items():
            ui = connect(host, name)
            for i in range(n):
                ui.send_text(dumps(analytics(i, "voltage", hardware=name)))
                time.sleep(0.01)
        assert wait_for(lambda: stored_counts(db) == sent, 5), stored_counts(db)
        for name, serve in serves.items():
            assert wait_for(lambda s=serve, n=name: s.status()["streams"][n]["stored"] == sent[n], 3)
            time.sleep(0.2)
            got = samples(scrape(ports[name]))
            streams = {dict(k[1]).get("stream") for k in got} - {None}
            assert streams == {name}  # each logger speaks for its own stream only
            check_against_status_and_db(got, serve.status(), db, name)
    finally:
        for serve in serves.values():
            rc, _ = serve.terminate()
            assert rc == 0


def test_metrics_port_in_use_exits_1_with_one_line(tmp_path: Path, host: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "practable_analytics.cli", "serve", "--db", str(tmp_path / "a.db"),
             "--stream", host.ws_url("ws/spin30"), "--metrics-listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"cannot serve metrics on ('127.0.0.1', {port})" in proc.stderr
    assert not (tmp_path / "a.db").exists() or stored_counts(tmp_path / "a.db") == {}


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_a_real_scrape(tmp_path: Path, host: Any) -> None:
    port, db = free_port(), tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30"), host.ws_url("ws/spin31")], db,
                  "--metrics-listen", str(port))  # fmt: skip
    try:
        serve.wait_connected(["spin30", "spin31"])
        dash = connect(host, "spin30")
        dash.send_text(dumps(request("indicators")))
        assert recv_responses(dash, 1, 2.0)
        assert wait_for(lambda: serve.status()["streams"]["spin30"]["answers_sent"] == 1, 3)
        time.sleep(0.2)
        text = scrape(port)
    finally:
        rc, _ = serve.terminate()
    assert rc == 0
    assert value(samples(text), "answer_seconds_count", stream="spin30") == 1
    check = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # the textfile form of the same document passes too
    stopped = exposition(serve.status())
    check = subprocess.run([str(PROMTOOL), "check", "metrics"], input=stopped, capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


# ---------------------------------------------------------------------------------- status --check


def status_check(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "practable_analytics.cli", "status", "--check", *args],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


def test_status_check_levels_follow_the_running_service(tmp_path: Path) -> None:
    host = relay_standin.start_host(port=0)
    db = tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30"), host.ws_url("ws/spin31")], db, "--backoff-max", "0.5")
    try:
        serve.wait_connected(["spin30", "spin31"])
        ok = status_check("--status-file", str(serve.status_file), "--db", str(db))
        assert ok.returncode == 0, ok.stdout
        lines = ok.stdout.splitlines()
        assert (
            len(lines) == 2
            and lines[0].startswith("OK spin30: connected")
            and lines[1].startswith("OK spin31")
        )
        host.stop()
        assert wait_for(lambda: not serve.connected("spin30"), 5)
        degraded = status_check("--status-file", str(serve.status_file), "--grace", "30")
        assert degraded.returncode == 1 and degraded.stdout.startswith("DEGRADED spin30: disconnected for")
        time.sleep(0.6)
        down = status_check("--status-file", str(tmp_path), "--grace", "0.5")  # a directory: every *.json
        assert down.returncode == 2 and down.stdout.count("DOWN spin3") == 2, down.stdout
    finally:
        rc, _ = serve.terminate()
        host.stop()
    assert rc == 0
    stopped = status_check("--status-file", str(serve.status_file))
    assert stopped.returncode == 2 and "service stopped" in stopped.stdout
    missing = status_check("--status-file", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and missing.stdout.startswith("DOWN ") and "cannot read" in missing.stdout
    usage = status_check()
    assert usage.returncode == 2 and "needs --status-file" in usage.stderr


def test_status_check_degraded_by_store_errors_and_inbox_high_water(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    stream = {"connected": True, "since": None, "last_event_epoch": now - 5, "stored": 3}
    base = {"state": "running", "updated_epoch": now, "pid": 1, "streams": {"spin30": stream},
            "queue": {"limit": 100, "high_water": 10}, "worker": {"errors": {}}}  # fmt: skip
    connected = "spin30: connected, last event 5 s ago, stored 3"
    cases = [
        ({}, 0, f"OK {connected}\n"),
        ({"worker": {"errors": {"store_failed": 2}}}, 1, f"DEGRADED {connected}; store errors 2\n"),
        ({"queue": {"limit": 100, "high_water": 81}}, 1, f"DEGRADED {connected}; inbox high water 81/100\n"),
        ({"state": "starting"}, 1, f"DEGRADED {connected}; service starting\n"),
        ({"updated_epoch": now - 60}, 2, "status not updated (60 s ago): service not running?\n"),
    ]
    for i, (change, code, text) in enumerate(cases):
        doc = json.loads(json.dumps(base))
        doc.update(change)
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(doc))
        assert check([str(path)], "", now=now) == code
        assert capsys.readouterr().out.endswith(text), change
