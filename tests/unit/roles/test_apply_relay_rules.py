"""session-rules.service's apply-relay-rules: the script and the collection's one relay API client
(plugins/module_utils/relay_host.py) laid out as the relay_rules role installs them, without Ansible,
run from the host plan against the relay host stand-in on 127.0.0.1."""

import json
import shutil
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pythons import pythons  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "roles" / "relay_rules" / "files" / "apply-relay-rules.py"
CLIENT = REPO / "plugins" / "module_utils" / "relay_host.py"
PYTHONS = pythons()


@pytest.fixture
def installed(tmp_path):
    """The script and the client in one directory, as on the host (no Ansible importable there)."""
    libexec = tmp_path / "libexec"
    libexec.mkdir()
    shutil.copy(SCRIPT, libexec / "apply-relay-rules")
    shutil.copy(CLIENT, libexec / "relay_host.py")
    return libexec / "apply-relay-rules"


def write_plan(config_dir, api_url, devices, access_base="ws://127.0.0.1:1"):
    """A plan as the host_plan filter writes it, with a token file per device (None: no token file)."""
    entries = []
    for device, token in devices.items():
        token_file = config_dir / ("log.token." + device)
        if token is not None:
            token_file.write_text(token + "\n")
        entries.append(
            {
                "id": device,
                "stream": device,
                "destination": f"{access_base}/session/{device}-log",
                "token_file": str(token_file),
            }
        )
    plan = {"format": 1, "api_url": api_url, "devices": entries}
    path = config_dir / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def run(script, plan, *extra, python=sys.executable, timeout=30):
    # -I: isolated, as on a host without Ansible: the script must find the client beside itself
    proc = subprocess.run(
        [python, "-I", str(script), "--plan", str(plan), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stderr


def free_port():
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rules(host):
    with urllib.request.urlopen(host.url + "/api/destinations/all", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def host():
    running = relay_standin.start_host(port=0, bind="127.0.0.1", backoff_initial=0.2, backoff_max=0.5)
    yield running
    running.stop()


@pytest.mark.parametrize("python", PYTHONS)
def test_posts_missing_rules_then_leaves_unchanged_ones_alone(host, tmp_path, installed, python):
    plan = write_plan(tmp_path, host.url, {"spin30": "tok-spin30", "spin31": "tok-spin31"})
    rc, log = run(installed, plan, python=python)
    assert rc == 0, log
    assert "rule spin30 added" in log and "rule spin31 added" in log
    assert {k: (v["stream"], v["destination"], v["token"]) for k, v in rules(host).items()} == {
        "spin30": ("spin30", "ws://127.0.0.1:1/session/spin30-log", "tok-spin30"),
        "spin31": ("spin31", "ws://127.0.0.1:1/session/spin31-log", "tok-spin31"),
    }

    # A token changed behind its back is put back; the other rule is not re-posted.
    posted = []
    original = host.server.set_rule

    def spy(rule):
        posted.append(rule["id"])
        original(rule)

    host.server.set_rule = spy
    (tmp_path / "log.token.spin31").write_text("new-token\n")
    rc, log = run(installed, plan, python=python)
    assert rc == 0, log
    assert posted == ["spin31"]
    assert "rule spin31 updated" in log and "spin30" not in log.replace("rule(s)", "")
    assert rules(host)["spin31"]["token"] == "new-token"


def test_gives_up_when_the_api_never_answers(tmp_path, installed):
    plan = write_plan(tmp_path, f"http://127.0.0.1:{free_port()}", {"spin30": "t"})
    started = time.monotonic()
    rc, log = run(installed, plan, "--wait-timeout", "1.5")
    assert rc == 1
    assert "not ready after" in log
    assert time.monotonic() - started < 15


def test_missing_token_file_fails_but_applies_the_others(host, tmp_path, installed):
    plan = write_plan(tmp_path, host.url, {"spin30": "t", "spin31": None})
    rc, log = run(installed, plan)
    assert rc == 1
    assert "spin31" in log and "log.token.spin31" in log
    assert list(rules(host)) == ["spin30"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": "spin/30"}, "must match"),
        ({"id": "../etc"}, "must match"),
        ({"destination": "not a url"}, "URL"),
        ({"token_file": "relative/path"}, "absolute path"),
    ],
)
def test_an_invalid_plan_is_refused_before_any_request(host, tmp_path, installed, change, reason):
    plan = write_plan(tmp_path, host.url, {"spin30": "t"})
    data = json.loads(plan.read_text())
    data["devices"][0].update(change)
    plan.write_text(json.dumps(data))
    rc, log = run(installed, plan)
    assert rc == 2
    assert reason in log
    assert rules(host) == {}


@pytest.mark.parametrize(
    "content", ["", "{", '{"format": 2, "api_url": "http://127.0.0.1:1", "devices": []}']
)
def test_an_unreadable_plan_exits_2(tmp_path, installed, content):
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    rc, log = run(installed, plan)
    assert rc == 2, log
    assert "plan" in log


def test_api_error_is_reported(tmp_path, installed):
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
        plan = write_plan(tmp_path, f"http://127.0.0.1:{server.server_port}", {"spin30": "t"})
        rc, log = run(installed, plan)
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 1
    assert "HTTP 500: boom" in log
