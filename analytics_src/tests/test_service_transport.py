"""Transport end to end: reconnects against a relay stand-in that is stopped and restarted, many
streams in one `serve` process. Real `serve` subprocesses, real SQLite files, the stand-in on
127.0.0.1."""

import time
from pathlib import Path
from typing import Any, List

import pytest
from service_helpers import (
    SPINNER_LOGS,
    Serve,
    analytics,
    client_stats,
    dumps,
    query,
    recv_responses,
    relay_standin,
    request,
    stored_counts,
    wait_for,
)

from practable_analytics.service.backoff import Backoff, is_loopback_url


def test_loopback_urls_get_the_low_cap_and_remote_ones_the_ladder() -> None:
    for url in ("ws://127.0.0.1:8888/ws/a", "ws://127.3.4.5/ws/a", "ws://localhost:1/ws/a",
                "ws://[::1]:8888/ws/a", "wss://LOCALHOST./ws/a"):  # fmt: skip
        assert is_loopback_url(url), url
        assert Backoff.for_url(url, 0.1, 10.0).cap_s == 0.5
    for url in ("wss://relay.example.org/ws/a", "ws://10.0.0.1/ws/a", "ws://128.0.0.1/ws/a"):
        assert not is_loopback_url(url), url
        assert Backoff.for_url(url, 0.1, 10.0).cap_s == 10.0
    assert Backoff.for_url("ws://127.0.0.1/ws/a", 1.0, 10.0, local_cap_s=0.25).initial_s == 0.25


def test_the_ladder_resets_on_connect_but_not_after_a_flap() -> None:
    b = Backoff(0.1, 10.0)
    for _ in range(6):
        b.next_delay()
    b.connected()
    assert b.ceiling() == pytest.approx(0.1)  # the next outage starts at the bottom
    b.disconnected(up_s=30.0)
    assert b.ceiling() == pytest.approx(0.1)
    for _ in range(6):
        b.next_delay()
    b.connected()
    b.disconnected(up_s=0.01)  # accepted and closed at once: carry on up the ladder
    assert b.ceiling() == pytest.approx(min(10.0, 0.1 * 2**7))


def _service_connected(host: Any, stream: str, others: List[str]) -> bool:
    return any(
        c["connected"] for name, c in client_stats(host, stream).items() if name.split("#")[0] not in others
    )


@pytest.mark.parametrize("outage_s", [0.5, 3.0])
def test_reconnects_within_a_second_of_the_relay_coming_back(tmp_path: Path, outage_s: float) -> None:
    host = relay_standin.start_host(port=0)
    port = host.port
    db = tmp_path / "a.db"
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db)  # default ladder: no backoff options
    try:
        serve.wait_connected(["spin30"])
        host.stop()
        assert wait_for(lambda: not serve.connected("spin30"), 5)
        time.sleep(outage_s)  # failed attempts meanwhile: the old ladder climbed to seconds here
        host = relay_standin.start_host(port=port)
        back = time.monotonic()
        assert wait_for(lambda: _service_connected(host, "spin30", []), 5, 0.005)
        delay = time.monotonic() - back
        assert delay <= 1.0, f"reconnected {delay:.2f} s after the relay came back"
        ui = relay_standin.WSClient.connect(host.ws_url("ws/spin30"))
        for i in range(20):
            ui.send_text(dumps(analytics(100 + i, SPINNER_LOGS[i % 6])))
            time.sleep(0.005)  # the relay drops what arrives while its writer is busy: pace like a UI
        assert wait_for(lambda: stored_counts(db).get("spin30", 0) == 20, 5), stored_counts(db)
        assert [r[0] for r in query(db, "SELECT t FROM events ORDER BY id")] == list(range(100, 120))
        dash = relay_standin.WSClient.connect(host.ws_url("ws/spin30"))
        dash.send_text(dumps(request("student_graph")))
        got = recv_responses(dash, 1, 3.0)
        assert got and sum(e["width"] for e in got[0]["edges"]) == 19
    finally:
        rc, _ = serve.terminate()
        host.stop()
    assert rc == 0
    log = serve.stderr()
    assert log.count("spin30 connected") == 2  # each state change once, not per attempt
    assert log.count("spin30 disconnected") == 1
    assert log.count("cannot connect") <= 1
