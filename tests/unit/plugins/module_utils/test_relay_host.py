"""The collection's one relay API client and the host plan (plugins/module_utils/relay_host.py)."""

import socket
import threading
import time

import pytest

relay_standin = pytest.importorskip("relay_standin")

from ansible_collections.practable.analytics.plugins.module_utils import relay_host  # noqa: E402
from ansible_collections.practable.analytics.plugins.module_utils.relay_host import (  # noqa: E402
    PlanError,
    RelayHost,
    RelayHostError,
    build_plan,
    check_plan,
)
from ansible_collections.practable.analytics.plugins.plugin_utils.relay_jwt import (  # noqa: E402
    check,
    expected_claims,
    mint,
)

SECRET = "test-secret-that-is-long-enough-for-hs512-and-hs384-000000"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_waits_for_an_api_that_comes_up_late():
    """The one "waits for the API" test: the module and session-rules.service both call this wait."""
    port = free_port()
    holder = {}

    def later():
        time.sleep(1.0)
        holder["host"] = relay_standin.start_host(port=port, bind="127.0.0.1")

    thread = threading.Thread(target=later)
    thread.start()
    try:
        client = RelayHost(f"http://127.0.0.1:{port}", timeout=2)
        started = time.monotonic()
        client.wait(15)
        waited = time.monotonic() - started
        assert client.list() == {}
    finally:
        thread.join()
        if "host" in holder:
            holder["host"].stop()
    assert 0.9 < waited < 10
    with pytest.raises(RelayHostError, match="not ready after 1"):
        RelayHost(f"http://127.0.0.1:{port}", timeout=1).wait(1)


def test_client_works_without_ansible_urls(monkeypatch):
    """On the host the client runs on the standard library alone."""
    monkeypatch.setattr(relay_host, "open_url", None)
    host = relay_standin.start_host(port=0, bind="127.0.0.1")
    try:
        client = relay_host.RelayHost(host.url)
        assert client._open is relay_host._urllib_open  # pylint: disable=protected-access
        client.put({"id": "spin30", "destination": "ws://127.0.0.1:1/x", "token": "t"})
        assert list(client.list()) == ["spin30"]
        with pytest.raises(RelayHostError, match="HTTP 404"):
            client._json("GET", "/nowhere")  # pylint: disable=protected-access
    finally:
        host.stop()


def test_plan_per_device():
    plan = build_plan(["spin30", "spin31"], "https://relay.example//", relay_port=9000, config_dir="/etc/p/")
    assert check_plan(plan) is plan
    assert plan["api_url"] == "http://127.0.0.1:9000"
    assert plan["access_base"] == "https://relay.example"
    assert plan["devices"][0] == {
        "id": "spin30",
        "stream": "spin30",
        "destination": "https://relay.example/session/spin30-log",
        "access_file": "/etc/p/log.access.spin30",
        "token_file": "/etc/p/log.token.spin30",
        "stream_url": "ws://127.0.0.1:9000/ws/spin30",
        "logger_unit": "analytics-logger@spin30.service",
    }
    assert plan["loggers"] == {
        "mode": "per-device",
        "units": [
            "analytics-logger@spin30.service",
            "analytics-logger@spin31.service",
            "analytics-loggers.target",
        ],
        "group": "analytics-loggers.target",
        "other": ["analytics-logger-all.service"],
    }


def test_plan_single_process_and_overrides():
    plan = build_plan(
        ["pend01"],
        "wss://a.example/",
        single_process=True,
        stream_base="ws://10.0.0.2:1/ws/",
        api_url="http://10.0.0.2:1/",
    )
    assert plan["api_url"] == "http://10.0.0.2:1"
    assert plan["devices"][0]["stream_url"] == "ws://10.0.0.2:1/ws/pend01"
    assert plan["devices"][0]["logger_unit"] == "analytics-logger-all.service"
    assert plan["loggers"]["units"] == ["analytics-logger-all.service"]
    assert plan["loggers"]["other"] == ["analytics-loggers.target", "analytics-logger@pend01.service"]


@pytest.mark.parametrize(
    ("devices", "base", "options", "reason"),
    [
        (["spin/30"], "https://a", {}, "must match"),
        (["spin30", "spin30"], "https://a", {}, "twice"),
        (["spin30"], "ftp://a", {}, "not an http"),
        (["spin30"], " ", {}, "non-empty"),
        (["spin30"], "https://a", {"relay_port": 70000}, "outside"),
        (["spin30"], "https://a", {"relay_port": "x"}, "not a number"),
        (["spin30"], "https://a", {"config_dir": "etc"}, "absolute"),
        (["spin30"], "https://a", {"api_url": "http://a/b"}, "host:port"),
        (["spin30"], "https://a", {"colour": "red"}, "unknown"),
    ],
)
def test_plan_refuses_bad_input(devices, base, options, reason):
    with pytest.raises(PlanError, match=reason):
        build_plan(devices, base, **options)


@pytest.mark.parametrize("base", ["https://relay.example", "https://relay.example/", " https://a.example// "])
def test_token_audience_and_destination_are_normalised_the_same_way(base):
    plan = build_plan(["spin30"], base)
    audience = expected_claims("spin30", base)["aud"][0]
    assert plan["devices"][0]["destination"] == audience + "/session/spin30-log"
    token = mint(SECRET, "spin30", base)
    # a token minted for any spelling of the base is valid for every other spelling
    clean = plan["access_base"]
    assert check(token, SECRET, "spin30", clean + "/")[0]
    assert check(token, SECRET, "spin30", clean)[0]
