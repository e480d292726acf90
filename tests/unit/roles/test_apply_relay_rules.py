"""The relay_rules role's apply-relay-rules script (what session-rules.service runs), as a subprocess
against the relay host stand-in on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

relay_standin = pytest.importorskip("relay_standin")

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "roles" / "relay_rules" / "files" / "apply-relay-rules.py"
PY38 = Path(os.environ.get("PYTHON38") or "python3.8-unset")  # a CPython 3.8; skipped when unset
PYTHONS = [sys.executable] + ([str(PY38)] if PY38.exists() else [])


def run(api_url, config_dir, *extra, python=sys.executable, timeout=30):
    proc = subprocess.run(
        [python, str(SCRIPT), "--api-url", api_url, "--config-dir", str(config_dir), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stderr


def write_device(config_dir, device, access, token):
    (config_dir / ("log.access." + device)).write_text(access + "\n")
    (config_dir / ("log.token." + device)).write_text(token + "\n")


def rules(host):
    with urllib.request.urlopen(host.url + "/api/destinations/all", timeout=5) as response:
        return json.loads(response.read())


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def host():
    running = relay_standin.start_host(port=0, bind="127.0.0.1", backoff_initial=0.2, backoff_max=0.5)
    yield running
    running.stop()


@pytest.mark.parametrize("python", PYTHONS)
def test_posts_missing_rules_then_leaves_unchanged_ones_alone(host, tmp_path, python):
    for device in ("spin30", "spin31"):
        write_device(tmp_path, device, f"ws://127.0.0.1:1/session/{device}-log", "tok-" + device)
    (tmp_path / "relay-rules.devices").write_text("# devices\nspin30\nspin31\n")

    rc, log = run(host.url, tmp_path, python=python)
    assert rc == 0, log
    assert "rule spin30 added" in log and "rule spin31 added" in log
    assert {k: (v["stream"], v["destination"], v["token"]) for k, v in rules(host).items()} == {
        "spin30": ("spin30", "ws://127.0.0.1:1/session/spin30-log", "tok-spin30"),
        "spin31": ("spin31", "ws://127.0.0.1:1/session/spin31-log", "tok-spin31"),
    }

    # A rule changed behind its back is put back; the other is not re-posted.
    posted = []
    original = host.server.set_rule

    def spy(rule):
        posted.append(rule["id"])
        original(rule)

    host.server.set_rule = spy
    write_device(tmp_path, "spin31", "ws://127.0.0.1:1/session/spin31-log", "new-token")
    rc, log = run(host.url, tmp_path, python=python)
    assert rc == 0, log
    assert posted == ["spin31"]
    assert "rule spin30 unchanged" in log and "rule spin31 updated" in log
    assert rules(host)["spin31"]["token"] == "new-token"


def test_without_device_list_every_access_file_counts(host, tmp_path):
    write_device(tmp_path, "pend01", "https://relay.example/session/pend01-log", "t1")
    rc, log = run(host.url, tmp_path)
    assert rc == 0, log
    assert list(rules(host)) == ["pend01"]


def test_waits_for_the_api_with_bounded_retry(tmp_path):
    write_device(tmp_path, "spin30", "ws://127.0.0.1:1/x", "t")
    port = free_port()
    holder = {}

    def later():
        time.sleep(1.0)
        holder["host"] = relay_standin.start_host(port=port, bind="127.0.0.1")

    thread = threading.Thread(target=later)
    thread.start()
    try:
        rc, log = run(f"http://127.0.0.1:{port}", tmp_path, "--wait-timeout", "15")
        thread.join()
        assert rc == 0, log
        assert list(rules(holder["host"])) == ["spin30"]
        assert "ready after" in log
    finally:
        thread.join()
        if "host" in holder:
            holder["host"].stop()


def test_gives_up_when_the_api_never_answers(tmp_path):
    write_device(tmp_path, "spin30", "ws://127.0.0.1:1/x", "t")
    started = time.monotonic()
    rc, log = run(f"http://127.0.0.1:{free_port()}", tmp_path, "--wait-timeout", "1.5")
    assert rc == 1
    assert "not ready after" in log
    assert time.monotonic() - started < 15


def test_missing_token_file_fails_but_applies_the_others(host, tmp_path):
    write_device(tmp_path, "spin30", "ws://127.0.0.1:1/x", "t")
    (tmp_path / "log.access.spin31").write_text("ws://127.0.0.1:1/y\n")
    (tmp_path / "relay-rules.devices").write_text("spin30\nspin31\n")
    rc, log = run(host.url, tmp_path)
    assert rc == 1
    assert "spin31" in log and "log.token.spin31" in log
    assert list(rules(host)) == ["spin30"]


@pytest.mark.parametrize("content", ["spin/30\n", "../etc\n", "deleteAll x\n"])
def test_bad_device_names_are_refused(host, tmp_path, content):
    (tmp_path / "relay-rules.devices").write_text(content)
    rc, log = run(host.url, tmp_path)
    assert rc == 2
    assert "device name" in log
    assert rules(host) == {}


def test_bad_access_url_is_skipped(host, tmp_path):
    write_device(tmp_path, "spin30", "not a url", "t")
    rc, log = run(host.url, tmp_path)
    assert rc == 1
    assert "is not an http(s) or ws(s) URL" in log
    assert rules(host) == {}


def test_api_error_is_reported(tmp_path):
    """A host whose rule listing fails with 500 makes the script fail with the body in the log."""

    class Broken(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'"ok"' if self.path == "/healthcheck" else b"boom"
            self.send_response(200 if self.path == "/healthcheck" else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return

    server = HTTPServer(("127.0.0.1", 0), Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        write_device(tmp_path, "spin30", "ws://127.0.0.1:1/x", "t")
        rc, log = run(f"http://127.0.0.1:{server.server_port}", tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 1
    assert "HTTP 500: boom" in log
    assert os.path.exists(SCRIPT)
