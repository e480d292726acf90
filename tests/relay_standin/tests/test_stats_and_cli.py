"""Stats endpoint, and the command line: VW_PORT, VW_LOG_LEVEL, RELAYHOST_* ignored, all interfaces."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

import relay_standin as rs

from .helpers import call, client_stats, free_port, get_json, wait_for

SCRIPT = Path(__file__).resolve().parents[1] / "relay_standin.py"
PY38 = Path(os.environ.get("PYTHON38") or "python3.8-unset")  # a CPython 3.8; skipped when unset
PYTHONS = [sys.executable] + ([str(PY38)] if PY38.exists() else [])


def test_stats_count_received_delivered_dropped_over_http(host: rs.Running) -> None:
    a = rs.WSClient.connect(host.ws_url("ws/st"))
    b = rs.WSClient.connect(host.ws_url("ws/st"))
    wait_for(lambda: len(host.stats().get("st", {}).get("clients", {})) == 2)
    for i in range(3):
        a.send_text(str(i))
        assert b.recv(2) == str(i)
        time.sleep(0.05)
    wait_for(lambda: client_stats(host, "st", b)["delivered"] == 3)
    over_http = get_json(host.url + "/standin/stats")
    assert over_http == host.stats()
    assert client_stats(host, "st", a) == {
        "received": 3,
        "delivered": 0,
        "dropped": 0,
        "connected": True,
        "closed_reason": "",
    }
    assert client_stats(host, "st", b)["delivered"] == 3
    assert over_http["st"]["destinations"] == {}


def test_remote_serves_stats_and_healthcheck() -> None:
    with rs.start_remote("s") as remote:
        assert call("GET", remote.url + "/healthcheck")[0] == 200
        assert get_json(remote.url + "/standin/stats") == {}


def _spawn(python: str, args: List[str], env: Dict[str, str]) -> "subprocess.Popen[bytes]":
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VW_", "RELAYHOST_"))}
    full_env.update(env)
    return subprocess.Popen(
        [python, str(SCRIPT), *args], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


@pytest.fixture
def processes() -> Iterator[List["subprocess.Popen[bytes]"]]:
    started: List[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(5)


def _healthy(port: int) -> bool:
    try:
        return call("GET", f"http://127.0.0.1:{port}/healthcheck")[0] == 200
    except OSError:
        return False


def _listening_on_all_interfaces(port: int) -> bool:
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local == f"00000000:{port:04X}":
                return True
    return False


@pytest.mark.parametrize("python", PYTHONS)
def test_host_command_uses_vw_port_ignores_relayhost_and_is_silent_by_default(
    python: str, processes: List["subprocess.Popen[bytes]"]
) -> None:
    port, decoy = free_port(), free_port()
    process = _spawn(python, ["host"], {"VW_PORT": str(port), "RELAYHOST_PORT": str(decoy)})
    processes.append(process)
    wait_for(lambda: _healthy(port), timeout=10)
    assert not _healthy(decoy)
    assert _listening_on_all_interfaces(port)
    client = rs.WSClient.connect(f"ws://127.0.0.1:{port}/ws/x")
    client.close()
    process.terminate()
    _, stderr = process.communicate(timeout=5)
    assert stderr == b""  # VW_LOG_LEVEL defaults to panic: nothing logged


def test_host_command_logs_at_the_level_asked(processes: List["subprocess.Popen[bytes]"]) -> None:
    port = free_port()
    process = _spawn(
        sys.executable, ["host", "--bind", "127.0.0.1"], {"VW_PORT": str(port), "VW_LOG_LEVEL": "Info"}
    )
    processes.append(process)
    wait_for(lambda: _healthy(port), timeout=10)
    assert not _listening_on_all_interfaces(port)
    process.terminate()
    _, stderr = process.communicate(timeout=5)
    assert b"listening" in stderr


@pytest.mark.parametrize("python", PYTHONS)
def test_remote_and_mint_commands(python: str, processes: List["subprocess.Popen[bytes]"]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.append(_spawn(python, ["remote", "--port", str(port), "--secret", "s3"], {}))
    wait_for(lambda: _healthy(port), timeout=10)
    token = (
        subprocess.run(
            [python, str(SCRIPT), "mint", "--secret", "s3", "--topic", "spin30-log", "--access-base", base],
            check=True,
            stdout=subprocess.PIPE,
        )
        .stdout.decode()
        .strip()
    )
    status, _, body = call("POST", base + "/session/spin30-log", b"", {"Authorization": token})
    assert status == 200
    client = rs.WSClient.connect(json.loads(body)["uri"])
    client.close()


def test_bad_vw_port_is_an_error(processes: List["subprocess.Popen[bytes]"]) -> None:
    process = _spawn(sys.executable, ["host"], {"VW_PORT": "eighty"})
    processes.append(process)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert b"VW_PORT" in stderr
