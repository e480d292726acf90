"""relay_destination, run as Ansible runs it (a separate Python process reading its arguments as JSON)
against the relay host stand-in over real HTTP on 127.0.0.1, with a stand-in remote relay that checks
the tokens the destinations present."""

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

import ansible  # noqa: E402
import ansible_collections  # noqa: E402  (the namespace package the module runs from)
from ansible_collections.practable.analytics.plugins.filter.relay_token import relay_token  # noqa: E402
from ansible_collections.practable.analytics.plugins.module_utils.relay_host import (  # noqa: E402
    RelayHost,
    RelayHostError,
)

REPO = Path(__file__).resolve().parents[4]
MODULE = "ansible_collections.practable.analytics.plugins.modules.relay_destination"
SECRET = "test-secret-that-is-long-enough-for-hs256"


sys.path.insert(0, str(REPO / "tests" / "unit"))
from pythons import pythons  # noqa: E402

#: The controller's Python and, when present, CPython 3.8 (Ubuntu 20.04 targets run modules with it).
PYTHONS = pythons()


def run_module(args, check=False, diff=False, timeout=60, python=sys.executable):
    """Run the module in a fresh interpreter; return (rc, result dict, raw stdout)."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check
    payload["_ansible_diff"] = diff
    env = dict(os.environ)
    paths = [str(Path(p).parent) for p in ansible_collections.__path__]
    paths.append(str(Path(ansible.__file__).resolve().parents[1]))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [python, "-m", MODULE, json.dumps({"ANSIBLE_MODULE_ARGS": payload})],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"module printed no JSON: stdout={proc.stdout!r} stderr={proc.stderr!r}")
    return proc.returncode, result, proc.stdout


@pytest.fixture
def remote():
    running = relay_standin.start_remote(SECRET, port=0, bind="127.0.0.1")
    yield running
    running.stop()


@pytest.fixture
def host():
    running = relay_standin.start_host(port=0, bind="127.0.0.1", backoff_initial=0.1, backoff_max=0.5)
    yield running
    running.stop()


def rule_for(remote, device):
    """The rule the relay_rules role builds for one device."""
    return {
        "id": device,
        "destination": remote.access_url(device + "-log"),
        "token": relay_token(SECRET, device, remote.url),
    }


def wait_connected(host, device, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dest = host.stats().get(device, {}).get("destinations", {}).get(device)
        if dest and dest.get("connected"):
            return dest
        time.sleep(0.05)
    pytest.fail(f"destination {device} never connected: {host.stats().get(device)!r}")


def current_rules(host):
    with relay_standin_urlopen(host.url + "/api/destinations/all") as response:
        return json.loads(response.read())


def relay_standin_urlopen(url):
    return urllib.request.urlopen(url, timeout=5)


@pytest.mark.parametrize("python", PYTHONS)
def test_adds_rules_that_connect_then_second_run_changes_nothing(host, remote, python):
    rules = [rule_for(remote, d) for d in ("spin30", "spin31")]
    args = {"api_url": host.url, "destinations": rules}

    rc, result, stdout = run_module(args, python=python)
    assert rc == 0, result
    assert result["changed"] is True
    assert result["added"] == ["spin30", "spin31"]
    assert result["updated"] == [] and result["removed"] == []
    assert result["changed_ids"] == ["spin30", "spin31"]
    for rule in rules:
        assert rule["token"] not in stdout
    # The host really has the rules, streams default to the id, and each destination passed the remote
    # relay's token check (which proves the minted token's claims and signature).
    stored = current_rules(host)
    assert {k: (v["stream"], v["destination"], v["token"]) for k, v in stored.items()} == {
        r["id"]: (r["id"], r["destination"], r["token"]) for r in rules
    }
    for device in ("spin30", "spin31"):
        assert wait_connected(host, device)["connects"] == 1
    assert all(entry["result"] == "ok" for entry in remote.access_log)
    asked = len(remote.access_log)

    rc, result, _stdout = run_module(args, python=python)
    assert rc == 0
    assert result["changed"] is False
    assert result["changed_ids"] == []
    time.sleep(0.5)  # a re-posted rule would redial within the 0.1 s backoff
    for device in ("spin30", "spin31"):
        assert wait_connected(host, device)["connects"] == 1
    assert len(remote.access_log) == asked


@pytest.mark.parametrize("python", PYTHONS)
def test_check_mode_and_diff_change_nothing_and_hide_tokens(host, remote, python):
    rc, result, stdout = run_module(
        {
            "api_url": host.url,
            "id": "spin30",
            "destination": remote.access_url("spin30-log"),
            "token": "secret-token-value",
        },
        check=True,
        diff=True,
        python=python,
    )
    assert rc == 0
    assert result["changed"] is True
    assert result["added"] == ["spin30"]
    assert current_rules(host) == {}
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["spin30"]["token"] == "<hidden>"
    assert "secret-token-value" not in stdout


def test_update_only_what_differs_and_show_changed_token(host, remote):
    first = [rule_for(remote, "spin30"), rule_for(remote, "spin31")]
    assert run_module({"api_url": host.url, "destinations": first})[0] == 0
    wait_connected(host, "spin30")
    wait_connected(host, "spin31")

    second = [dict(first[0]), dict(first[1], token="other-token")]
    rc, result, stdout = run_module({"api_url": host.url, "destinations": second}, diff=True)
    assert rc == 0
    assert result["updated"] == ["spin31"] and result["added"] == []
    assert result["diff"]["before"]["spin31"]["token"] == "<hidden>"
    assert result["diff"]["after"]["spin31"]["token"] == "<hidden> (changed)"
    assert "other-token" not in stdout
    assert current_rules(host)["spin31"]["token"] == "other-token"
    time.sleep(0.3)
    assert wait_connected(host, "spin30")["connects"] == 1  # the unchanged rule kept its connection


def test_leading_slash_in_stream_is_not_a_difference(host, remote):
    rule = dict(rule_for(remote, "spin30"), stream="/spin30")
    assert run_module({"api_url": host.url, "destinations": [rule]})[1]["changed"] is True
    assert current_rules(host)["spin30"]["stream"] == "spin30"
    assert run_module({"api_url": host.url, "destinations": [rule]})[1]["changed"] is False


def test_absent_and_purge_delete_one_by_one(host, remote):
    rules = [rule_for(remote, d) for d in ("spin30", "spin31", "spin32")]
    assert run_module({"api_url": host.url, "destinations": rules})[0] == 0

    rc, result, _stdout = run_module({"api_url": host.url, "id": "spin32", "state": "absent"})
    assert rc == 0 and result["removed"] == ["spin32"] and result["changed"] is True
    assert sorted(current_rules(host)) == ["spin30", "spin31"]
    assert run_module({"api_url": host.url, "id": "spin32", "state": "absent"})[1]["changed"] is False

    # purge in check mode: reported, nothing removed
    rc, result, _stdout = run_module(
        {"api_url": host.url, "destinations": [rules[0]], "purge": True}, check=True
    )
    assert rc == 0 and result["removed"] == ["spin31"]
    assert sorted(current_rules(host)) == ["spin30", "spin31"]

    rc, result, _stdout = run_module({"api_url": host.url, "destinations": [rules[0]], "purge": True})
    assert rc == 0 and result["removed"] == ["spin31"] and result["added"] == [] and result["updated"] == []
    assert sorted(current_rules(host)) == ["spin30"]


def test_invalid_ids_are_refused_before_any_request(host):
    for bad in ("deleteAll", "all", "spin 30", "/spin30"):
        rc, result, _stdout = run_module(
            {"api_url": host.url, "id": bad, "destination": "ws://127.0.0.1:1/x"}
        )
        assert rc != 0 and result["failed"] is True
        assert repr(bad) in result["msg"]
    assert current_rules(host) == {}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_api_fails_after_the_wait_timeout():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    rc, result, _stdout = run_module(
        {"api_url": url, "id": "spin30", "destination": "ws://x/y", "wait_timeout": 2}
    )
    elapsed = time.monotonic() - started
    assert rc != 0
    assert "not ready after 2s" in result["msg"] and url in result["msg"]
    assert 1.5 < elapsed < 20


@pytest.mark.parametrize("python", PYTHONS)
def test_plan_reads_tokens_from_the_host_files(host, remote, tmp_path, python):
    """With plan=, every device of the host plan gets its rule, the token read from its file; the tokens
    never appear in the arguments or the output."""
    plan = {"format": 1, "api_url": host.url, "devices": []}
    tokens = {}
    for device in ("spin30", "spin31"):
        tokens[device] = relay_token(SECRET, device, remote.url)
        token_file = tmp_path / ("log.token." + device)
        token_file.write_text(tokens[device] + "\n")
        plan["devices"].append(
            {
                "id": device,
                "stream": device,
                "destination": remote.access_url(device + "-log"),
                "token_file": str(token_file),
            }
        )
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    args = {"plan": str(tmp_path / "plan.json"), "api_url": "http://127.0.0.1:1", "purge": True}

    rc, result, stdout = run_module(args, python=python)
    assert rc == 0, result
    assert result["added"] == ["spin30", "spin31"]
    assert all(token not in stdout for token in tokens.values())
    assert {k: v["token"] for k, v in current_rules(host).items()} == tokens
    for device in tokens:
        assert wait_connected(host, device)["connects"] == 1

    rc, result, _stdout = run_module(args, python=python)
    assert rc == 0 and result["changed"] is False

    (tmp_path / "log.token.spin31").unlink()
    rc, result, _stdout = run_module(args, python=python)
    assert rc != 0 and "spin31" in result["msg"] and "log.token.spin31" in result["msg"]


class _Broken(BaseHTTPRequestHandler):
    """A relay host whose API is broken in configurable ways."""

    mode = "500"

    def do_GET(self):
        if self.path == "/healthcheck":
            self._send(200, b'"ok"')
        elif self.mode == "badjson":
            self._send(200, b"<html>not json</html>")
        else:
            self._send(500, b"database on fire")

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        return


@pytest.mark.parametrize(
    ("mode", "expected"), [("500", "HTTP 500: database on fire"), ("badjson", "not JSON")]
)
def test_api_errors_are_reported_clearly(mode, expected):
    handler = type("Handler", (_Broken,), {"mode": mode})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rc, result, _stdout = run_module(
            {"api_url": f"http://127.0.0.1:{server.server_port}", "id": "spin30", "destination": "ws://x/y"}
        )
    finally:
        server.shutdown()
        server.server_close()
    assert rc != 0
    assert expected in result["msg"]


def test_client_reports_unexpected_statuses(host):
    client = RelayHost(host.url, timeout=5)
    with pytest.raises(RelayHostError, match="HTTP 405"):
        client._json("GET", "/api/destinations")  # pylint: disable=protected-access
    with pytest.raises(RelayHostError, match="HTTP 404"):
        client._json("GET", "/nowhere")  # pylint: disable=protected-access
