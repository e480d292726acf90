"""The host's /ws/<stream> websocket: fan-out, isolation, frame types, RFC 6455 details."""

import socket
import struct
import time
from typing import List

import pytest

import relay_standin as rs
from relay_standin import relay_standin as impl

from .helpers import call, wait_for


def connect(host: rs.Running, stream: str, **kwargs: object) -> rs.WSClient:
    return rs.WSClient.connect(host.ws_url("ws/" + stream), **kwargs)  # type: ignore[arg-type]


def joined(host: rs.Running, stream: str, n: int) -> None:
    """Wait until ``n`` clients are connected to ``stream`` (joining is asynchronous to the handshake)."""

    def count() -> bool:
        clients = host.stats().get(stream, {}).get("clients", {})
        return sum(1 for c in clients.values() if c["connected"]) >= n

    wait_for(count)


def nothing_arrives(client: rs.WSClient, wait: float = 0.3) -> bool:
    try:
        client.recv_message(wait)
    except socket.timeout:
        return True
    return False


def test_message_goes_to_every_other_client_never_back_to_sender(host: rs.Running) -> None:
    clients = [connect(host, "spin30") for _ in range(3)]
    joined(host, "spin30", 3)
    a, b, c = clients
    a.send_text("from a")
    assert b.recv(2) == "from a"
    assert c.recv(2) == "from a"
    assert nothing_arrives(a)
    b.send_text("from b")
    assert a.recv(2) == "from b"
    assert c.recv(2) == "from b"
    assert nothing_arrives(b)
    for client in clients:
        client.close()


def test_streams_are_isolated(host: rs.Running) -> None:
    names = ["spin30", "spin30/sub", "spin31"]
    pairs = {name: (connect(host, name), connect(host, name)) for name in names}
    for name in names:
        joined(host, name, 2)
    for name in names:
        pairs[name][0].send_text("to " + name)
    for name in names:
        assert pairs[name][1].recv(2) == "to " + name
        assert nothing_arrives(pairs[name][1], 0.2)


def test_frame_types_are_kept(host: rs.Running) -> None:
    a, b = connect(host, "types"), connect(host, "types")
    joined(host, "types", 2)
    # paced: the host drops what arrives while its writer toward b is still busy (SPEC section 4)
    a.send_text("text")
    assert b.recv_message(2) == (rs.OP_TEXT, b"text")
    time.sleep(0.05)
    a.send_binary(b"\x00\xffbin")
    assert b.recv_message(2) == (rs.OP_BINARY, b"\x00\xffbin")
    time.sleep(0.05)
    a.send_text("")
    assert b.recv_message(2) == (rs.OP_TEXT, b"")


def test_fragmented_message_is_reassembled_and_pings_inside_are_answered(host: rs.Running) -> None:
    a, b = connect(host, "frag"), connect(host, "frag")
    joined(host, "frag", 2)
    with a.conn._send_lock:
        a.conn.sock.sendall(rs.encode_frame(rs.OP_BINARY, b"part1-", mask=True, fin=False))
        a.conn.sock.sendall(rs.encode_frame(rs.OP_PING, b"p", mask=True))
        a.conn.sock.sendall(rs.encode_frame(rs.OP_CONT, b"part2-", mask=True, fin=False))
        a.conn.sock.sendall(rs.encode_frame(rs.OP_CONT, b"end", mask=True, fin=True))
    assert b.recv_message(2) == (rs.OP_BINARY, b"part1-part2-end")
    pongs: List[bytes] = []
    a.conn.on_pong = pongs.append
    assert nothing_arrives(a, 0.2)
    assert pongs == [b"p"]


def test_large_message_passes_intact(host: rs.Running) -> None:
    a, b = connect(host, "big"), connect(host, "big")
    joined(host, "big", 2)
    payload = bytes(range(256)) * 4096  # 1 MiB
    a.send_binary(payload)
    assert b.recv_message(5) == (rs.OP_BINARY, payload)


def test_default_read_limit_is_10_mib() -> None:
    assert rs.MAX_MESSAGE == 10 * 1024 * 1024
    assert rs.HostOptions().max_message == rs.MAX_MESSAGE


def test_message_over_the_limit_closes_the_sender_with_1009() -> None:
    with rs.start_host(max_message=1000) as host:
        a, b = connect(host, "s"), connect(host, "s")
        joined(host, "s", 2)
        a.send_binary(b"x" * 1000)
        assert b.recv(2) == b"x" * 1000
        a.send_fragmented(rs.OP_BINARY, [b"y" * 600, b"y" * 600])
        with pytest.raises(rs.ConnectionClosed) as closed:
            a.recv_message(2)
        assert closed.value.code == rs.CLOSE_TOO_BIG
        assert nothing_arrives(b, 0.2)


def test_unmasked_client_frame_is_a_protocol_error(host: rs.Running) -> None:
    a = connect(host, "mask")
    joined(host, "mask", 1)
    a.conn.sock.sendall(rs.encode_frame(rs.OP_TEXT, b"bare", mask=False))
    with pytest.raises(rs.ConnectionClosed) as closed:
        a.recv_message(2)
    assert closed.value.code == rs.CLOSE_PROTOCOL


def test_close_handshake_is_echoed_and_client_leaves_the_stream(host: rs.Running) -> None:
    a, b = connect(host, "bye"), connect(host, "bye")
    joined(host, "bye", 2)
    a.conn.send_frame(rs.OP_CLOSE, struct.pack("!H", 4000) + b"done")
    with pytest.raises(rs.ConnectionClosed) as closed:
        a.recv_message(2)
    assert closed.value.code == 4000
    wait_for(lambda: not host.stats()["bye"]["clients"][a.local_name]["connected"])
    b.send_text("anyone?")
    time.sleep(0.1)
    assert host.stats()["bye"]["clients"][b.local_name]["received"] == 1


def test_plain_get_on_a_stream_is_400_and_unknown_websocket_path_is_404(host: rs.Running) -> None:
    status, _, body = call("GET", host.url + "/ws/spin30")
    assert status == 400
    assert "websocket" in body
    with pytest.raises(rs.HandshakeError) as refused:
        rs.WSClient.connect(host.ws_url("elsewhere/spin30"))
    assert refused.value.status == 404
    with pytest.raises(rs.HandshakeError) as refused:
        rs.WSClient.connect(host.ws_url("ws/"))
    assert refused.value.status == 404


def test_stop_closes_clients_promptly() -> None:
    host = rs.start_host()
    a = connect(host, "s")
    joined(host, "s", 1)
    started = time.monotonic()
    host.stop()
    assert time.monotonic() - started < 2.0
    with pytest.raises(rs.ConnectionClosed):
        a.recv_message(2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", host.port), timeout=1).close()


def test_client_timeout_between_fragments_loses_nothing() -> None:
    left, right = socket.socketpair()
    conn = impl.WSConnection(left, is_client=True)
    right.sendall(rs.encode_frame(rs.OP_TEXT, b"first ", mask=False, fin=False))
    with pytest.raises(socket.timeout):
        conn.read_message(0.1)
    right.sendall(rs.encode_frame(rs.OP_CONT, b"second", mask=False, fin=True))
    assert conn.read_message(1) == (rs.OP_TEXT, b"first second")
    left.close()
    right.close()
