"""The host's outgoing destinations: access POST with the token, dial, relay both ways, retry."""

import json
import socket
import time

import pytest

import relay_standin as rs

from .conftest import SECRET
from .helpers import call, post_rule, wait_for


def token_rule(host: rs.Running, remote: rs.RunningRemote, stream: str = "spin30", rule_id: str = "") -> dict:
    topic = stream + "-log"
    return {
        "id": rule_id or stream,
        "stream": stream,
        "destination": remote.access_url(topic),
        "token": rs.mint_token(SECRET, topic, remote.url),
    }


def dest_stats(host: rs.Running, stream: str, rule_id: str) -> dict:
    return host.stats().get(stream, {}).get("destinations", {}).get(rule_id, {})


def connected_clients(running: rs.Running, stream: str) -> int:
    clients = running.stats().get(stream, {}).get("clients", {})
    return sum(1 for c in clients.values() if c["connected"])


def wait_connects(host: rs.Running, stream: str, rule_id: str, n: int) -> None:
    wait_for(
        lambda: (
            dest_stats(host, stream, rule_id).get("connects", 0) >= n
            and dest_stats(host, stream, rule_id)["connected"]
        )
    )


def test_token_rule_posts_token_as_authorization_and_relays_both_ways(
    host: rs.Running, remote: rs.RunningRemote
) -> None:
    rule = token_rule(host, remote)
    post_rule(host.url, rule)
    wait_connects(host, "spin30", "spin30", 1)
    assert remote.access_log[0]["authorization"] == rule["token"]  # raw token, no "Bearer"
    assert remote.access_log[0]["topic"] == "spin30-log"
    local = rs.WSClient.connect(host.ws_url("ws/spin30"))
    ui = rs.WSClient.connect(remote.client_url("spin30-log"))
    wait_for(lambda: connected_clients(remote, "spin30-log") == 2 and connected_clients(host, "spin30") == 1)
    ui.send_text('{"user": "u1"}')  # remote -> destination -> local client
    assert local.recv(3) == '{"user": "u1"}'
    local.send_binary(b"answer")  # local client -> destination -> remote topic
    assert ui.recv(3) == b"answer"
    # delivered is counted once the write returned, which may be just after the far end has it
    wait_for(lambda: dest_stats(host, "spin30", "spin30")["delivered"] == 1)
    stats = dest_stats(host, "spin30", "spin30")
    assert (stats["received"], stats["delivered"], stats["dropped"], stats["connects"]) == (1, 1, 0, 1)


def test_empty_token_dials_destination_directly(host: rs.Running, remote: rs.RunningRemote) -> None:
    post_rule(host.url, {"id": "d", "stream": "s", "destination": remote.client_url("s-log"), "token": ""})
    wait_connects(host, "s", "d", 1)
    assert remote.access_log == []
    ui = rs.WSClient.connect(remote.client_url("s-log"))
    local = rs.WSClient.connect(host.ws_url("ws/s"))
    wait_for(lambda: connected_clients(remote, "s-log") == 2 and connected_clients(host, "s") == 1)
    local.send_text("up")
    assert ui.recv(3) == "up"
    ui.send_text("down")
    assert local.recv(3) == "down"


def test_reconnects_after_the_remote_restarts(host: rs.Running) -> None:
    remote = rs.start_remote(SECRET)
    port = remote.port
    try:
        post_rule(host.url, token_rule(host, remote))
        wait_connects(host, "spin30", "spin30", 1)
        remote.stop()
        wait_for(lambda: not dest_stats(host, "spin30", "spin30")["connected"])
        time.sleep(0.3)  # a few failed attempts while the remote is down
        remote = rs.start_remote(SECRET, port=port)
        wait_connects(host, "spin30", "spin30", 2)
        local = rs.WSClient.connect(host.ws_url("ws/spin30"))
        ui = rs.WSClient.connect(remote.client_url("spin30-log"))
        wait_for(
            lambda: connected_clients(remote, "spin30-log") == 2 and connected_clients(host, "spin30") == 1
        )
        ui.send_text("after restart")
        assert local.recv(3) == "after restart"
    finally:
        remote.stop()


def test_replacing_a_rule_even_unchanged_reconnects(host: rs.Running, remote: rs.RunningRemote) -> None:
    rule = token_rule(host, remote)
    post_rule(host.url, rule)
    wait_connects(host, "spin30", "spin30", 1)
    wait_for(lambda: connected_clients(remote, "spin30-log") == 1)
    post_rule(host.url, rule)
    wait_connects(host, "spin30", "spin30", 2)
    assert len(remote.access_log) == 2
    wait_for(lambda: connected_clients(remote, "spin30-log") == 1)
    closed = [c for c in remote.stats()["spin30-log"]["clients"].values() if not c["connected"]]
    assert len(closed) == 1  # the first connection was torn down


def test_delete_and_delete_all_close_connections(host: rs.Running, remote: rs.RunningRemote) -> None:
    for stream in ("a", "b", "c"):
        post_rule(host.url, token_rule(host, remote, stream))
    for stream in ("a", "b", "c"):
        wait_connects(host, stream, stream, 1)
    call("DELETE", host.url + "/api/destinations/a")
    wait_for(lambda: connected_clients(remote, "a-log") == 0)
    assert connected_clients(remote, "b-log") == 1
    call("DELETE", host.url + "/api/destinations/deleteAll")
    wait_for(lambda: connected_clients(remote, "b-log") == 0 and connected_clients(remote, "c-log") == 0)
    attempts = len(remote.access_log)
    time.sleep(0.4)
    assert len(remote.access_log) == attempts  # nothing reconnects a deleted rule


def test_failures_retry_with_growing_backoff(host: rs.Running, remote: rs.RunningRemote) -> None:
    rule = token_rule(host, remote)
    rule["token"] = rs.mint_token("wrong-secret", "spin30-log", remote.url)
    post_rule(host.url, rule)
    wait_for(lambda: len(remote.access_log) >= 6, timeout=5)
    times = [entry["time"] for entry in remote.access_log[:6]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(entry["result"] == "bad signature" for entry in remote.access_log)
    assert gaps[0] < 0.15  # backoff_initial 0.05 in the fixture
    assert max(gaps) >= 0.15  # grew to backoff_max 0.2
    assert max(gaps) < 0.6  # and stayed capped
    assert dest_stats(host, "spin30", "spin30")["connects"] == 0
    assert "401" in dest_stats(host, "spin30", "spin30")["last_error"]


def test_host_options_default_to_the_real_backoff() -> None:
    options = rs.HostOptions()
    assert (options.backoff_initial, options.backoff_max) == (1.0, 10.0)


def test_access_answer_without_uri_is_a_failure(host: rs.Running) -> None:
    # a plain HTTP server that answers JSON without "uri": the host keeps retrying, never connects
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        server.settimeout(3)
        port = server.getsockname()[1]
        post_rule(
            host.url,
            {
                "id": "x",
                "stream": "x",
                "destination": f"http://127.0.0.1:{port}/session/x",
                "token": "t",
            },
        )
        for _ in range(2):
            conn, _ = server.accept()
            with conn:
                request = conn.recv(65536)
                assert request.startswith(b"POST /session/x HTTP/1.1")
                assert b"\r\nAuthorization: t\r\n" in request
                body = json.dumps({"nouri": 1}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(body), body)
                )
    assert dest_stats(host, "x", "x")["connects"] == 0


@pytest.mark.parametrize("delete_path", ["x", "deleteAll"])
def test_deleting_stops_retries(host: rs.Running, delete_path: str) -> None:
    post_rule(host.url, {"id": "x", "stream": "x", "destination": "ws://127.0.0.1:9/nothing", "token": ""})
    wait_for(lambda: dest_stats(host, "x", "x").get("last_error"))
    call("DELETE", host.url + "/api/destinations/" + delete_path)
    assert call("GET", host.url + "/api/destinations/all")[2] == "{}"
