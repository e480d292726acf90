"""The stand-in against independent clients: websocket-client (what the analytics service uses) and
raw HTTP details (100-continue as curl sends it)."""

import socket
import time

import pytest

import relay_standin as rs

from .helpers import get_json, wait_for

websocket = pytest.importorskip("websocket")


def test_websocket_client_library_talks_to_the_host(host: rs.Running) -> None:
    a = websocket.create_connection(host.ws_url("ws/lib"), timeout=5)
    b = websocket.create_connection(host.ws_url("ws/lib"), timeout=5)
    wait_for(lambda: len(host.stats().get("lib", {}).get("clients", {})) == 2)
    a.send('{"x": 1}')
    assert b.recv() == '{"x": 1}'
    time.sleep(0.05)
    big = bytes(range(256)) * 2048
    a.send_binary(big)
    assert b.recv() == big
    a.ping("hello")
    frame = a.recv_data_frame(control_frame=True)[1]
    assert (frame.opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"hello")
    a.close()
    b.close()


def test_websocket_client_library_answers_host_pings() -> None:
    with rs.start_host(ping_interval=0.1, pong_wait=0.4) as host:
        client = websocket.create_connection(host.ws_url("ws/lib"), timeout=5)
        client.settimeout(0.05)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            try:
                client.recv()
            except websocket.WebSocketTimeoutException:
                pass
        stats = host.stats()["lib"]["clients"]
        assert [c["connected"] for c in stats.values()] == [True]
        client.close()


def test_expect_100_continue_is_honoured(host: rs.Running) -> None:
    body = b'{"id": "c", "stream": "s", "destination": "ws://127.0.0.1:9/x", "token": "' + b"t" * 2000 + b'"}'
    with socket.create_connection(("127.0.0.1", host.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/destinations HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    assert get_json(host.url + "/api/destinations/c")["token"] == "t" * 2000
