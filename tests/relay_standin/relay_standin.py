#!/usr/bin/env python3
"""Stand-in for the practable relay host (``session-relay host``) and for the remote relay.

Standard library only, Python 3.8+. See README.md in this directory for the behaviours, the command
line, the Python API and the known differences from the real (Go) relay host.

Modes:
  host    the local relay host: HTTP API for destinations, /ws/<stream> websocket fan-out, outgoing
          destination connections (SPEC section 4), with the real host's lossy hand-off to clients.
  remote  the remote relay: access endpoint POST /session/<topic> checking HS256 tokens, and the
          websocket topics /relay/<topic>?code=... where lab UIs and dashboards meet the host.
  mint    print an access token (HS256 JWT) for a topic, as the relay's token command does.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import select
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple, Union

try:  # only wss:// destinations need it; a Python built without OpenSSL still runs everything else
    import ssl
except ImportError:  # pragma: no cover
    ssl = None  # type: ignore[assignment]

LOG = logging.getLogger("relay_standin")

__all__ = [
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "MAX_MESSAGE",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "ConnectionClosed",
    "HandshakeError",
    "HostOptions",
    "ProtocolError",
    "Running",
    "RunningRemote",
    "WSClient",
    "accept_key",
    "accept_websocket",
    "encode_frame",
    "main",
    "mint_token",
    "parse_rule",
    "start_host",
    "start_remote",
    "verify_token",
]

MAX_MESSAGE = 10 * 1024 * 1024  # the largest message the host reads (bytes)
LISTEN_BACKLOG = 1024
MAX_HEADER = 64 * 1024  # HTTP request line + headers
MAX_BODY = 10 * 1024 * 1024  # HTTP request body
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
DATA_OPCODES = (OP_TEXT, OP_BINARY)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_TOO_BIG = 1009

ID_RE = re.compile(r"^[a-zA-Z0-9\-/]+$")
RULE_FIELDS = ("id", "stream", "destination", "token", "file")

# A message travelling through a hub: (opcode, payload). Opcode is OP_TEXT or OP_BINARY.
Message = Tuple[int, bytes]


# --------------------------------------------------------------------------------------------------
# Websocket protocol (RFC 6455), both ends
# --------------------------------------------------------------------------------------------------


class ConnectionClosed(Exception):  # noqa: N818 (named like websocket libraries name it)
    """The websocket connection is closed (close frame, EOF or error)."""

    def __init__(self, code: Optional[int] = None, reason: str = "") -> None:
        super().__init__(f"connection closed (code {code}) {reason}".strip())
        self.code = code
        self.reason = reason


class ProtocolError(Exception):
    """The peer broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL) -> None:
        super().__init__(message)
        self.code = code


def _apply_mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, mask: bool, fin: bool = True) -> bytes:
    """One websocket frame; ``mask`` is True for frames a client sends."""
    first = (0x80 if fin else 0) | opcode
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, mbit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, mbit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mbit | 127, n)
    if mask:
        key = os.urandom(4)
        return header + key + _apply_mask(payload, key)
    return header + payload


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")


def accept_websocket(listener: socket.socket) -> Optional[socket.socket]:
    """Accepts one client on ``listener`` and completes its websocket handshake without checks: the raw
    socket for tests and benchmarks that write frames straight to a service (no hub, no lossy
    hand-off). None when the client closed before its request head was complete."""
    conn, _ = listener.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            conn.close()
            return None
        head += chunk
    key = ""
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("sec-websocket-key:"):
            key = line.split(":", 1)[1].strip()
    conn.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode("latin-1")
    )
    return conn


def _address_name(sock: socket.socket, peer: bool) -> str:
    try:
        address = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return "?"
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) or "?"


class WSConnection:
    """One websocket connection over a connected socket, for either end.

    One thread at a time may read (``read_message``); any thread may send (sends are serialised by a
    lock). The socket's timeout is the write deadline: a send that cannot complete within it raises
    ``socket.timeout``. Reads are not bounded by it (they wait until data, EOF or ``abort``).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        is_client: bool,
        initial: bytes = b"",
        max_message: int = MAX_MESSAGE,
        auto_pong: bool = True,
        on_pong: Optional[Callable[[bytes], None]] = None,
        on_ping: Optional[Callable[[bytes], None]] = None,
    ) -> None:
        self.sock = sock
        self.is_client = is_client
        self.max_message = max_message
        self.auto_pong = auto_pong
        self.on_pong = on_pong
        self.on_ping = on_ping
        self._buf = bytearray(initial)
        self._parts: List[bytes] = []
        self._size = 0
        self._first_opcode: Optional[int] = None
        self._send_lock = threading.Lock()
        self._close_sent = False
        self._aborted = False
        self.close_code: Optional[int] = None
        self.peer_name = _address_name(sock, peer=True)
        self.local_name = _address_name(sock, peer=False)

    # ---- sending ----
    def send_frame(self, opcode: int, payload: bytes) -> None:
        frame = encode_frame(opcode, payload, mask=self.is_client)
        with self._send_lock:
            if self._close_sent and opcode != OP_CLOSE:
                raise ConnectionClosed(self.close_code, "close already sent")
            self.sock.sendall(frame)

    def send_message(self, message: Message) -> None:
        self.send_frame(message[0], message[1])

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (best effort, without waiting on a busy writer) and shut the socket."""
        if self._send_lock.acquire(timeout=0.2):
            try:
                if not self._close_sent and not self._aborted:
                    self._close_sent = True
                    payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
                    self.sock.settimeout(0.5)
                    self.sock.sendall(encode_frame(OP_CLOSE, payload, mask=self.is_client))
            except OSError:
                pass
            finally:
                self._send_lock.release()
        self.abort()

    def abort(self) -> None:
        """Shut the socket down without a close frame; wakes any reader or blocked writer."""
        self._aborted = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        self.abort()
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- receiving ----
    def _fill(self, deadline: Optional[float]) -> None:
        """Read more bytes into the buffer; raise ConnectionClosed on EOF, socket.timeout at deadline."""
        while True:
            if self._aborted:
                raise ConnectionClosed(self.close_code, "aborted")
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise socket.timeout("read timed out")
                pending = ssl is not None and isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
                if not pending:
                    readable, _, _ = select.select([self.sock], [], [], min(remaining, 1.0))
                    if not readable:
                        continue
            try:
                chunk = self.sock.recv(262144)
            except socket.timeout:
                continue
            except OSError as exc:
                raise ConnectionClosed(self.close_code, str(exc)) from exc
            if not chunk:
                raise ConnectionClosed(self.close_code, "eof")
            self._buf += chunk
            return

    def _need(self, n: int, deadline: Optional[float]) -> None:
        while len(self._buf) < n:
            self._fill(deadline)

    def _read_frame(self, deadline: Optional[float]) -> Tuple[bool, int, bytes]:
        self._need(2, deadline)
        b0, b1 = self._buf[0], self._buf[1]
        fin = bool(b0 & 0x80)
        if b0 & 0x70:
            raise ProtocolError("reserved bits set (no extension was negotiated)")
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        length = b1 & 0x7F
        pos = 2
        if length == 126:
            self._need(4, deadline)
            length = struct.unpack_from("!H", self._buf, 2)[0]
            pos = 4
        elif length == 127:
            self._need(10, deadline)
            length = struct.unpack_from("!Q", self._buf, 2)[0]
            pos = 10
        if opcode >= 0x8:
            if not fin or length > 125:
                raise ProtocolError("bad control frame")
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise ProtocolError(f"unknown opcode {opcode}")
        elif opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
            raise ProtocolError(f"unknown opcode {opcode}")
        if masked == self.is_client:
            raise ProtocolError("bad mask bit" if self.is_client else "client frame not masked")
        if length > self.max_message:
            raise ProtocolError("message too big", CLOSE_TOO_BIG)
        key = b""
        if masked:
            self._need(pos + 4, deadline)
            key = bytes(self._buf[pos : pos + 4])
            pos += 4
        self._need(pos + length, deadline)
        payload = bytes(self._buf[pos : pos + length])
        del self._buf[: pos + length]
        if masked:
            payload = _apply_mask(payload, key)
        return fin, opcode, payload

    def read_message(self, timeout: Optional[float] = None) -> Message:
        """The next data message; answers pings and closes. Raises ConnectionClosed, socket.timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # a message's fragments live on the connection, so a timeout between fragments loses nothing
        parts = self._parts
        try:
            while True:
                fin, opcode, payload = self._read_frame(deadline)
                if opcode == OP_PING:
                    if self.on_ping is not None:
                        self.on_ping(payload)
                    if self.auto_pong:
                        try:
                            self.send_frame(OP_PONG, payload)
                        except (OSError, ConnectionClosed):
                            pass
                    continue
                if opcode == OP_PONG:
                    if self.on_pong is not None:
                        self.on_pong(payload)
                    continue
                if opcode == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
                    self.close_code = code
                    reason = payload[2:].decode("utf-8", "replace")
                    self.close(code if len(payload) >= 2 else CLOSE_NORMAL)
                    raise ConnectionClosed(code, reason)
                if opcode == OP_CONT:
                    if self._first_opcode is None:
                        raise ProtocolError("continuation without a message")
                elif self._first_opcode is not None:
                    raise ProtocolError("new message inside a fragmented one")
                else:
                    self._first_opcode = opcode
                self._size += len(payload)
                if self._size > self.max_message:
                    raise ProtocolError("message too big", CLOSE_TOO_BIG)
                parts.append(payload)
                if fin:
                    message = (self._first_opcode, b"".join(parts))
                    parts.clear()
                    self._size = 0
                    self._first_opcode = None
                    return message
        except ProtocolError as exc:
            self.close_code = exc.code
            self.close(exc.code, str(exc))
            raise ConnectionClosed(exc.code, str(exc)) from exc


# --------------------------------------------------------------------------------------------------
# Websocket client (used for destinations, and by tests)
# --------------------------------------------------------------------------------------------------


class HandshakeError(OSError):
    """The websocket opening handshake failed (status and body available)."""

    def __init__(self, message: str, status: int = 0, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _read_http_head(sock: socket.socket, buf: bytearray, deadline: float) -> bytes:
    """Read until the end of an HTTP head; return the head, leave the rest in ``buf``."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end])
            del buf[: end + 4]
            return head
        if len(buf) > MAX_HEADER:
            raise HandshakeError("HTTP head too large")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("handshake timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise HandshakeError("connection closed during handshake")
        buf += chunk


class WSClient:
    """A small RFC 6455 client: ``WSClient.connect(url)``, send_text/send_binary, recv, close."""

    def __init__(self, conn: WSConnection, url: str) -> None:
        self.conn = conn
        self.url = url
        self.pings_received = 0
        conn.on_ping = self._count_ping

    def _count_ping(self, _payload: bytes) -> None:
        self.pings_received += 1

    @classmethod
    def connect(
        cls,
        url: str,
        timeout: float = 5.0,
        *,
        headers: Optional[Dict[str, str]] = None,
        auto_pong: bool = True,
        write_timeout: float = 10.0,
        rcvbuf: Optional[int] = None,
        max_message: int = MAX_MESSAGE,
    ) -> "WSClient":
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a websocket URL: {url!r}")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        deadline = time.monotonic() + timeout
        raw = socket.socket(socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET, socket.SOCK_STREAM)
        sock: socket.socket = raw
        try:
            if rcvbuf is not None:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(timeout)
            raw.connect((parts.hostname, port))
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if secure:
                if ssl is None:
                    raise HandshakeError("wss:// needs the ssl module")
                sock = ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname)
            key = base64.b64encode(os.urandom(16)).decode("ascii")
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
            if ":" in parts.hostname and parts.port is not None:
                host = f"[{parts.hostname}]:{parts.port}"
            lines = [
                f"GET {target} HTTP/1.1",
                f"Host: {host}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
            ]
            for name, value in (headers or {}).items():
                lines.append(f"{name}: {value}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            buf = bytearray()
            head = _read_http_head(sock, buf, deadline)
            status_line, _, header_block = head.decode("latin-1").partition("\r\n")
            fields = status_line.split(" ", 2)
            status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
            resp_headers = _parse_headers(header_block)
            if status != 101:
                raise HandshakeError(f"handshake refused: {status_line}", status, bytes(buf))
            if resp_headers.get("sec-websocket-accept") != accept_key(key):
                raise HandshakeError("bad Sec-WebSocket-Accept", status)
            sock.settimeout(write_timeout)
        except BaseException:
            sock.close()
            raise
        conn = WSConnection(
            sock, is_client=True, initial=bytes(buf), auto_pong=auto_pong, max_message=max_message
        )
        return cls(conn, url)

    @property
    def local_name(self) -> str:
        """``ip:port`` of this end: the name the stand-in's stats use for this client."""
        return self.conn.local_name

    def send_text(self, text: str) -> None:
        self.conn.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.conn.send_frame(OP_BINARY, bytes(data))

    def send_fragmented(self, opcode: int, chunks: List[bytes]) -> None:
        """Send one message as several frames (first frame carries ``opcode``)."""
        with self.conn._send_lock:
            for i, chunk in enumerate(chunks):
                op = opcode if i == 0 else OP_CONT
                self.conn.sock.sendall(encode_frame(op, chunk, mask=True, fin=i == len(chunks) - 1))

    def ping(self, payload: bytes = b"") -> None:
        self.conn.send_frame(OP_PING, payload)

    def recv_message(self, timeout: Optional[float] = None) -> Message:
        """(opcode, payload); raises socket.timeout after ``timeout`` s, ConnectionClosed at the end."""
        return self.conn.read_message(timeout)

    def recv(self, timeout: Optional[float] = None) -> Union[str, bytes]:
        """A text message as str, a binary one as bytes."""
        opcode, payload = self.conn.read_message(timeout)
        if opcode == OP_TEXT:
            return payload.decode("utf-8", "replace")
        return payload

    def close(self, code: int = CLOSE_NORMAL) -> None:
        self.conn.close(code)
        try:
            self.conn.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "WSClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# Hub: members of streams, the hand-off to writers, statistics
# --------------------------------------------------------------------------------------------------

HANDOFF = "handoff"  # unbuffered: a message offered while the writer is busy is dropped
QUEUE = "queue"  # buffer of ``slots`` messages, dropped when full
UNBOUNDED = "unbounded"  # never drops (the remote stand-in's clients)


class Stats:
    """Counters for one member of a stream (kept after it leaves)."""

    def __init__(self, kind: str) -> None:
        self._lock = threading.Lock()
        self.kind = kind
        self.received = 0  # frames (messages) received from it
        self.delivered = 0  # messages written to its socket (sendall returned)
        self.dropped = 0  # messages meant for it that were dropped
        self.connects = 0
        self.live = 0  # open connections counted under these stats (a replaced rule overlaps briefly)
        self.closed_reason = ""
        self.extra: Dict[str, Any] = {}

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + n)

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            out: Dict[str, Any] = {
                "received": self.received,
                "delivered": self.delivered,
                "dropped": self.dropped,
                "connected": self.live > 0,
                "closed_reason": self.closed_reason,
            }
            if self.kind == "destination":
                out["connects"] = self.connects
            out.update(self.extra)
            return out


class Member:
    """A websocket in a hub stream, with its own writer thread.

    ``mode`` HANDOFF models the real host's unbuffered channel to a client's writer: the writer is busy
    from the hand-off until its write returns, and a message offered meanwhile is dropped.
    """

    def __init__(
        self,
        conn: WSConnection,
        stream: str,
        stats: Stats,
        *,
        mode: str,
        slots: int = 2,
        ping_interval: float = 0.0,
        pong_wait: float = 0.0,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.stats = stats
        self.mode = mode
        self.slots = slots
        self.ping_interval = ping_interval
        self.pong_wait = pong_wait
        self._cond = threading.Condition()
        self._pending: Deque[Message] = collections.deque()
        self._busy = False
        self._closed = False
        now = time.monotonic()
        self._last_pong = now
        self._next_ping = now + ping_interval
        self._writer = threading.Thread(target=self._write_loop, name=f"writer-{conn.peer_name}", daemon=True)
        conn.on_pong = self._pong

    def start(self) -> None:
        self.stats.add("live")
        self._writer.start()

    def _pong(self, _payload: bytes) -> None:
        with self._cond:
            self._last_pong = time.monotonic()
            self._cond.notify()

    def offer(self, message: Message) -> bool:
        """Hand a message to this member's writer without blocking; False (and counted) if dropped."""
        with self._cond:
            if self._closed:
                accepted = False
            elif self.mode == HANDOFF:
                accepted = not self._busy and not self._pending
                if accepted:
                    self._busy = True
            elif self.mode == QUEUE:
                accepted = len(self._pending) < self.slots
            else:
                accepted = True
            if accepted:
                self._pending.append(message)
                self._cond.notify()
        if not accepted:
            self.stats.add("dropped")
        return accepted

    def close(self, reason: str = "") -> None:
        with self._cond:
            first = not self._closed and self._writer.ident is not None
            if not self._closed:
                self._closed = True
                if reason and not self.stats.closed_reason:
                    self.stats.closed_reason = reason
            self._cond.notify()
        if first:
            self.stats.add("live", -1)

    def join(self, timeout: float = 2.0) -> None:
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(timeout)

    def _fail(self, reason: str) -> None:
        LOG.info("closing %s on stream %s: %s", self.conn.peer_name, self.stream, reason)
        self.close(reason)
        self.conn.abort()

    def _write_loop(self) -> None:
        while True:
            ping = False
            message: Optional[Message] = None
            with self._cond:
                while not self._pending and not self._closed:
                    now = time.monotonic()
                    waits: List[float] = []
                    if self.pong_wait > 0:
                        pong_deadline = self._last_pong + self.pong_wait
                        if now >= pong_deadline:
                            break
                        waits.append(pong_deadline - now)
                    if self.ping_interval > 0:
                        if now >= self._next_ping:
                            ping = True
                            break
                        waits.append(self._next_ping - now)
                    self._cond.wait(min(waits) if waits else None)
                if self._closed:
                    return
                if not self._pending and not ping:
                    reason = "no pong"
                else:
                    reason = ""
                    if self._pending:
                        ping = False
                        message = self._pending.popleft()
                    else:
                        self._next_ping = time.monotonic() + self.ping_interval
                    self._busy = True
            if reason:
                self._fail(reason)
                return
            try:
                if ping:
                    self.conn.send_frame(OP_PING, b"")
                else:
                    assert message is not None
                    self.conn.send_message(message)
            except socket.timeout:
                self._fail("write deadline")
                return
            except (OSError, ConnectionClosed) as exc:
                self._fail(f"write failed: {exc}")
                return
            if not ping:
                self.stats.add("delivered")
            with self._cond:
                self._busy = False


class Hub:
    """Streams of members; a message from one member goes to every other member of its stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: Dict[str, List[Member]] = {}
        self._stats: Dict[str, Dict[str, Dict[str, Stats]]] = {}

    def stats_for(self, stream: str, section: str, name: str, kind: str) -> Stats:
        with self._lock:
            table = self._stats.setdefault(stream, {"clients": {}, "destinations": {}})[section]
            if section == "clients" and name in table:
                n = 2
                while f"{name}#{n}" in table:
                    n += 1
                name = f"{name}#{n}"
            if name not in table:
                table[name] = Stats(kind)
            return table[name]

    def add(self, member: Member) -> None:
        with self._lock:
            self._members.setdefault(member.stream, []).append(member)

    def remove(self, member: Member) -> None:
        with self._lock:
            members = self._members.get(member.stream, [])
            if member in members:
                members.remove(member)
            if not members:
                self._members.pop(member.stream, None)

    def broadcast(self, sender: Member, message: Message) -> None:
        sender.stats.add("received")
        with self._lock:
            for member in self._members.get(sender.stream, ()):
                if member is not sender:
                    member.offer(message)

    def members(self) -> List[Member]:
        with self._lock:
            return [m for ms in self._members.values() for m in ms]

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            tables = {s: {sec: dict(t) for sec, t in v.items()} for s, v in self._stats.items()}
        return {
            stream: {sec: {name: st.snapshot() for name, st in t.items()} for sec, t in v.items()}
            for stream, v in sorted(tables.items())
        }


# --------------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 server with websocket upgrade
# --------------------------------------------------------------------------------------------------


class Request:
    def __init__(self, method: str, target: str, version: str, headers: Dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        parts = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(parts.path)
        self.query = urllib.parse.parse_qs(parts.query)

    def is_websocket(self) -> bool:
        return self.headers.get("upgrade", "").lower() == "websocket"


class Response:
    def __init__(
        self,
        status: int,
        body: Union[bytes, str] = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = headers or {}


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, json.dumps(value, separators=(",", ":")), "application/json")


REASONS = {
    101: "Switching Protocols",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    426: "Upgrade Required",
    500: "Internal Server Error",
}


def _parse_headers(block: str) -> Dict[str, str]:
    headers: Dict[str, str] = {}
    for line in block.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("bad header line")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = headers[key] + ", " + value if key in headers else value
    return headers


def raise_open_files_limit(needed: int = 4096) -> None:
    """Raise the soft open-files limit to the hard one when it is below ``needed`` (each client
    connection is a descriptor; 500 streams with a service and a student each need over 1,000)."""
    try:
        import resource  # noqa: PLC0415 (POSIX only)
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))
    except (ValueError, OSError) as exc:
        LOG.warning("cannot raise the open files limit from %d: %s", soft, exc)


class BaseServer:
    """Accepts connections on a thread each; subclasses route HTTP requests and websocket upgrades.

    Two threads per websocket client (its reader and its writer): 1,000 clients (500 streams, a
    service and a student on each) are about 2,000 mostly idle threads, which Linux handles well;
    the listen backlog and the open files limit are raised so that many can connect at once."""

    server_name = "server"
    ws_prefix = "/ws/"  # websocket paths: ws_prefix + non-empty name

    def __init__(self, bind: str, port: int, *, write_deadline: float = 10.0) -> None:
        self.write_deadline = write_deadline
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((bind, port))
        # 500 services connecting at once after a restart must not overflow the accept queue
        self._listener.listen(LISTEN_BACKLOG)
        raise_open_files_limit()
        self._listener.settimeout(0.5)
        self.bind = bind
        self.port: int = self._listener.getsockname()[1]
        self.hub = Hub()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: Set[socket.socket] = set()
        self._threads: Set[threading.Thread] = set()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=self.server_name + "-accept", daemon=True
        )

    def start(self) -> None:
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, addr = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)
                continue
            thread = threading.Thread(
                target=self._serve_connection, args=(sock, addr), name=f"conn-{addr}", daemon=True
            )
            with self._lock:
                if self._stopping.is_set():
                    sock.close()
                    return
                self._sockets.add(sock)
                self._threads.add(thread)
            thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        except OSError:
            pass
        if self._acceptor.is_alive() and self._acceptor is not threading.current_thread():
            self._acceptor.join(1.0)
        try:
            self._listener.close()
        except OSError:
            pass
        self._stop_extra()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        end = time.monotonic() + timeout
        for thread in [self._acceptor, *threads]:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(max(0.0, end - time.monotonic()))

    def _stop_extra(self) -> None:
        """Subclasses stop their own threads here."""

    def _serve_connection(self, sock: socket.socket, addr: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._http_loop(sock)
        except (OSError, ValueError, ConnectionClosed) as exc:
            LOG.debug("connection %s ended: %s", addr, exc)
        finally:
            with self._lock:
                self._sockets.discard(sock)
                self._threads.discard(threading.current_thread())
            try:
                sock.close()
            except OSError:
                pass

    def _http_loop(self, sock: socket.socket) -> None:
        buf = bytearray()
        while not self._stopping.is_set():
            try:
                head = _read_http_head(sock, buf, time.monotonic() + 60.0)
            except HandshakeError:
                return
            except socket.timeout:
                return
            text = head.decode("latin-1")
            request_line, _, header_block = text.partition("\r\n")
            fields = request_line.split(" ")
            if len(fields) != 3 or not fields[2].startswith("HTTP/1."):
                self._send_response(sock, Response(400, "bad request line\n"), close=True)
                return
            try:
                headers = _parse_headers(header_block)
            except ValueError:
                self._send_response(sock, Response(400, "bad header\n"), close=True)
                return
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._send_response(sock, Response(411, "chunked bodies are not supported\n"), close=True)
                return
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._send_response(sock, Response(413, "bad body length\n"), close=True)
                return
            if length > len(buf) and headers.get("expect", "").lower() == "100-continue":
                sock.settimeout(10.0)
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            while len(buf) < length:
                sock.settimeout(30.0)
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            body = bytes(buf[:length])
            del buf[:length]
            request = Request(fields[0], fields[1], fields[2], headers, body)
            is_ws_path = request.path.startswith(self.ws_prefix) and len(request.path) > len(self.ws_prefix)
            if request.method == "GET" and is_ws_path and not request.is_websocket():
                problem = (
                    "websocket: the client is not using the websocket protocol: 'upgrade' token not found"
                )
                self._send_response(sock, Response(400, "Bad Request\n" + problem + "\n"), close=True)
                return
            if request.method == "GET" and request.is_websocket():
                target = self.websocket_route(request)
                if target is None:
                    self._send_response(sock, Response(404, "404 page not found\n"), close=True)
                    return
                if isinstance(target, Response):
                    self._send_response(sock, target, close=True)
                    return
                conn = self._upgrade(sock, request, bytes(buf))
                if conn is not None:
                    target(conn)
                return
            try:
                response = self.route(request)
            except Exception:  # a bug in a handler must not kill the server: answer 500
                LOG.exception("handler failed for %s %s", request.method, request.target)
                response = Response(500, "internal error\n")
            connection = headers.get("connection", "").lower()
            close = "close" in connection or (
                request.version == "HTTP/1.0" and "keep-alive" not in connection
            )
            self._send_response(sock, response, close=close)
            if close:
                return

    @staticmethod
    def _send_response(sock: socket.socket, response: Response, close: bool) -> None:
        lines = [
            "HTTP/1.1 {} {}".format(response.status, REASONS.get(response.status, "Status")),
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Date: {}".format(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())),
        ]
        for name, value in response.headers.items():
            lines.append(f"{name}: {value}")
        if close:
            lines.append("Connection: close")
        sock.settimeout(10.0)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)

    def _upgrade(self, sock: socket.socket, request: Request, leftover: bytes) -> Optional[WSConnection]:
        key = request.headers.get("sec-websocket-key", "")
        connection_tokens = [t.strip().lower() for t in request.headers.get("connection", "").split(",")]
        problem = ""
        if "upgrade" not in connection_tokens:
            problem = "websocket: 'upgrade' token not found in 'Connection' header"
        elif request.headers.get("sec-websocket-version", "") != "13":
            problem = "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header"
        else:
            try:
                if len(base64.b64decode(key, validate=True)) != 16:
                    problem = "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is invalid"
            except ValueError:
                problem = "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is invalid"
        if problem:
            self._send_response(sock, Response(400, "Bad Request\n" + problem + "\n"), close=True)
            return None
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        )
        sock.settimeout(self.write_deadline)
        sock.sendall(head.encode("latin-1"))
        return WSConnection(sock, is_client=False, initial=leftover)

    # ---- subclass hooks ----
    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def websocket_route(self, request: Request) -> Union[Response, Callable[[WSConnection], None], None]:
        """None: no such websocket path (404); a Response: refuse; a callable: serve the upgraded conn."""
        return None

    def serve_member(self, hub: Hub, member: Member) -> None:
        """Run the reader side of a member until its connection ends."""
        conn = member.conn
        hub.add(member)
        member.start()
        LOG.info("client %s joined stream %s", conn.peer_name, member.stream)
        try:
            while True:
                message = conn.read_message()
                hub.broadcast(member, message)
        except ConnectionClosed as exc:
            member.close(exc.reason or "closed")
        finally:
            hub.remove(member)
            member.close("closed")
            conn.abort()
            member.join()
            LOG.info(
                "client %s left stream %s (%s)", conn.peer_name, member.stream, member.stats.closed_reason
            )


# --------------------------------------------------------------------------------------------------
# The relay host
# --------------------------------------------------------------------------------------------------


def _empty_rule() -> Dict[str, str]:
    return {name: "" for name in RULE_FIELDS}


def parse_rule(body: bytes) -> Dict[str, str]:
    """Decode a destination rule as Go's encoding/json would into the host's Rule struct."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"invalid character in JSON body: {exc}") from exc
    rule = _empty_rule()
    if value is None:
        return rule
    if not isinstance(value, dict):
        raise ValueError(f"json: cannot unmarshal {type(value).__name__} into Go value of type Rule")
    for key, field_value in value.items():
        name = key.lower()  # Go matches JSON keys to struct fields case-insensitively
        if name not in RULE_FIELDS or field_value is None:
            continue
        if not isinstance(field_value, str):
            raise ValueError(
                f"json: cannot unmarshal {type(field_value).__name__} into Go struct field "
                f"Rule.{name} of type string"
            )
        rule[name] = field_value
    if rule["stream"].startswith("/"):
        rule["stream"] = rule["stream"][1:]
    return rule


class Destination:
    """The host's outgoing connection for one rule: access POST, dial, relay both ways, retry."""

    def __init__(self, host: "HostServer", rule: Dict[str, str], stats: Stats) -> None:
        self.host = host
        self.rule = dict(rule)
        self.stats = stats
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conn: Optional[WSConnection] = None
        self._thread = threading.Thread(
            target=self._run, name="destination-{}".format(rule["id"]), daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            conn.close(CLOSE_NORMAL)

    def join(self, timeout: float = 2.0) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _resolve(self) -> str:
        token = self.rule["token"]
        destination = self.rule["destination"]
        if not token:
            return destination
        parts = urllib.parse.urlsplit(destination)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"access URL is not http(s): {destination!r}")
        request = urllib.request.Request(destination, data=b"", method="POST")
        request.add_header("Authorization", token)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=self.host.options.dial_timeout) as answer:
            data = answer.read(65536)
        value = json.loads(data.decode("utf-8"))
        uri = value.get("uri") if isinstance(value, dict) else None
        if not isinstance(uri, str):
            raise ValueError("access answer has no uri")
        return uri

    def _run(self) -> None:
        options = self.host.options
        backoff = options.backoff_initial
        while not self._stop.is_set():
            try:
                uri = self._resolve()
                client = WSClient.connect(
                    uri, timeout=options.dial_timeout, write_timeout=options.write_deadline
                )
            except (OSError, ValueError, urllib.error.URLError) as exc:
                self.stats.extra["last_error"] = str(exc)
                LOG.info("destination %s: %s; retry in %.1f s", self.rule["id"], exc, backoff)
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, options.backoff_max)
                continue
            backoff = options.backoff_initial
            conn = client.conn
            with self._lock:
                if self._stop.is_set():
                    conn.close(CLOSE_NORMAL)
                    conn.release()
                    return
                self._conn = conn
            self.stats.add("connects")
            self.stats.extra["last_error"] = ""
            member = Member(conn, self.rule["stream"], self.stats, mode=QUEUE, slots=2)
            self.host.hub.add(member)
            member.start()
            LOG.info("destination %s connected to %s", self.rule["id"], uri)
            try:
                while True:
                    self.host.hub.broadcast(member, conn.read_message())
            except ConnectionClosed as exc:
                self.stats.extra["last_error"] = str(exc)
            finally:
                self.host.hub.remove(member)
                member.close("closed")
                conn.abort()
                member.join()
                conn.release()
                with self._lock:
                    self._conn = None
            if self._stop.wait(options.backoff_initial):
                return


class HostOptions:
    def __init__(
        self,
        *,
        ping_interval: float = 54.0,
        pong_wait: float = 60.0,
        write_deadline: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 10.0,
        dial_timeout: float = 10.0,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.ping_interval = ping_interval
        self.pong_wait = pong_wait
        self.write_deadline = write_deadline
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.dial_timeout = dial_timeout
        self.max_message = max_message


class HostServer(BaseServer):
    server_name = "host"

    def __init__(self, bind: str, port: int, options: HostOptions) -> None:
        super().__init__(bind, port, write_deadline=options.write_deadline)
        self.options = options
        self._rules_lock = threading.Lock()
        self.rules: Dict[str, Dict[str, str]] = {}
        self.destinations: Dict[str, Destination] = {}

    # ---- rules ----
    def set_rule(self, rule: Dict[str, str]) -> None:
        with self._rules_lock:
            old = self.destinations.pop(rule["id"], None)
            self.rules[rule["id"]] = dict(rule)
            if old is not None:
                old.stop()
            stats = self.hub.stats_for(rule["stream"], "destinations", rule["id"], "destination")
            stats.extra["destination"] = rule["destination"]
            destination = Destination(self, rule, stats)
            self.destinations[rule["id"]] = destination
            if not self._stopping.is_set():
                destination.start()

    def delete_rule(self, rule_id: str) -> None:
        with self._rules_lock:
            self.rules.pop(rule_id, None)
            old = self.destinations.pop(rule_id, None)
            if old is not None:
                old.stop()

    def delete_all(self, join: bool = False) -> None:
        with self._rules_lock:
            olds = list(self.destinations.values())
            self.rules.clear()
            self.destinations.clear()
            for old in olds:
                old.stop()
        if join:
            for old in olds:
                old.join()

    def _stop_extra(self) -> None:
        self.delete_all(join=True)
        for member in self.hub.members():
            member.close("host stopped")
            member.conn.abort()

    # ---- HTTP ----
    def route(self, request: Request) -> Response:
        path = request.path
        method = request.method
        if path == "/healthcheck":
            return json_response("ok") if method == "GET" else Response(405, "")
        if path == "/standin/stats":
            return json_response(self.hub.snapshot()) if method == "GET" else Response(405, "")
        if path == "/api/destinations":
            if method != "POST":
                return Response(405, "")
            try:
                rule = parse_rule(request.body)
            except ValueError as exc:
                return Response(500, str(exc) + "\n")
            self.set_rule(rule)
            return json_response(rule)
        prefix = "/api/destinations/"
        if path.startswith(prefix) and ID_RE.match(path[len(prefix) :]):
            rule_id = path[len(prefix) :]
            if method == "GET":
                with self._rules_lock:
                    if rule_id == "all":
                        return json_response(dict(sorted(self.rules.items())))
                    return json_response(self.rules.get(rule_id, _empty_rule()))
            if method == "DELETE":
                if rule_id == "deleteAll":
                    self.delete_all()
                else:
                    self.delete_rule(rule_id)
                return json_response(rule_id)
            return Response(405, "")
        return Response(404, "404 page not found\n")

    def websocket_route(self, request: Request) -> Union[Response, Callable[[WSConnection], None], None]:
        if not request.path.startswith("/ws/") or len(request.path) <= len("/ws/"):
            return None
        stream = request.path[len("/ws/") :]

        def serve(conn: WSConnection) -> None:
            conn.max_message = self.options.max_message
            stats = self.hub.stats_for(stream, "clients", conn.peer_name, "client")
            stats.add("connects")
            member = Member(
                conn,
                stream,
                stats,
                mode=HANDOFF,
                ping_interval=self.options.ping_interval,
                pong_wait=self.options.pong_wait,
            )
            self.serve_member(self.hub, member)

        return serve


# --------------------------------------------------------------------------------------------------
# The remote relay
# --------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not re.match(r"^[A-Za-z0-9_\-]*$", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(
    secret: str, topic: str, access_base: str, lifetime: int = 31536000, now: Optional[float] = None
) -> str:
    """An access token as SPEC section 4 describes: HS256 JWT for ``topic``, audience ``access_base``."""
    iat = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "topic": topic,
        "prefix": "session",
        "scopes": ["read", "write"],
        "aud": [access_base],
        "iat": iat,
        "nbf": iat,
        "exp": iat + int(lifetime),
    }
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def verify_token(token: str, secret: str, topic: str, access_base: str, now: Optional[float] = None) -> str:
    """'' if ``token`` grants read+write on ``topic`` for ``access_base`` now, else the reason it does not."""
    now = time.time() if now is None else now
    parts = token.split(".")
    if len(parts) != 3:
        return "token is not a JWT"
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        return "token is not a JWT"
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return "token algorithm is not HS256"
    expected = hmac.new(
        secret.encode("utf-8"), (parts[0] + "." + parts[1]).encode("ascii"), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    if not isinstance(claims, dict):
        return "claims are not an object"
    if claims.get("topic") != topic:
        return "topic does not match"
    if claims.get("prefix") != "session":
        return "prefix is not session"
    scopes = claims.get("scopes")
    if not isinstance(scopes, list) or "read" not in scopes or "write" not in scopes:
        return "scopes must include read and write"
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    base = access_base.rstrip("/")
    if not isinstance(audiences, list) or base not in [
        a.rstrip("/") for a in audiences if isinstance(a, str)
    ]:
        return "audience does not match"
    for name in ("nbf", "iat"):
        if not _is_number(claims.get(name)):
            return f"{name} missing"
        if claims[name] > now:
            return f"token not valid yet ({name})"
    if not _is_number(claims.get("exp")):
        return "exp missing"
    if now >= claims["exp"]:
        return "token expired"
    return ""


class RemoteServer(BaseServer):
    server_name = "remote"
    ws_prefix = "/relay/"

    def __init__(self, bind: str, port: int, secret: str, access_base: Optional[str] = None) -> None:
        super().__init__(bind, port)
        self.secret = secret
        self.access_base = access_base
        self._codes_lock = threading.Lock()
        self._codes: Dict[str, str] = {}  # code -> topic (single use)
        self.access_log: List[Dict[str, Any]] = []  # what the access endpoint was asked, for tests

    def issue_code(self, topic: str) -> str:
        code = secrets.token_urlsafe(16)
        with self._codes_lock:
            self._codes[code] = topic
        return code

    def client_url(self, topic: str, host: Optional[str] = None) -> str:
        """A websocket URL (with a fresh code) for a test client of ``topic``; skips the access step."""
        host = host or f"127.0.0.1:{self.port}"
        return f"ws://{host}/relay/{topic}?code={self.issue_code(topic)}"

    def _stop_extra(self) -> None:
        for member in self.hub.members():
            member.close("remote stopped")
            member.conn.abort()

    def route(self, request: Request) -> Response:
        path = request.path
        if path == "/healthcheck":
            return json_response("ok")
        if path == "/standin/stats":
            return json_response(self.hub.snapshot())
        if path.startswith("/session/") and len(path) > len("/session/"):
            if request.method != "POST":
                return Response(405, "")
            topic = path[len("/session/") :]
            host = request.headers.get("host", f"127.0.0.1:{self.port}")
            base = self.access_base or f"http://{host}"
            token = request.headers.get("authorization", "")
            reason = verify_token(token, self.secret, topic, base) if token else "missing Authorization"
            with self._codes_lock:
                self.access_log.append(
                    {
                        "topic": topic,
                        "authorization": token,
                        "result": reason or "ok",
                        "time": time.monotonic(),
                    }
                )
            if reason:
                return Response(401, reason + "\n")
            return json_response({"uri": f"ws://{host}/relay/{topic}?code={self.issue_code(topic)}"})
        return Response(404, "404 page not found\n")

    def websocket_route(self, request: Request) -> Union[Response, Callable[[WSConnection], None], None]:
        if not request.path.startswith("/relay/") or len(request.path) <= len("/relay/"):
            return None
        topic = request.path[len("/relay/") :]
        codes = request.query.get("code", [])
        with self._codes_lock:
            ok = len(codes) == 1 and self._codes.get(codes[0]) == topic
            if ok:
                del self._codes[codes[0]]
        if not ok:
            return Response(401, "missing, used or wrong code\n")

        def serve(conn: WSConnection) -> None:
            stats = self.hub.stats_for(topic, "clients", conn.peer_name, "client")
            stats.add("connects")
            self.serve_member(self.hub, Member(conn, topic, stats, mode=UNBOUNDED))

        return serve


# --------------------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------------------


class Running:
    """A stand-in server running on background threads."""

    def __init__(self, server: BaseServer) -> None:
        self.server = server
        self.port = server.port
        address = "127.0.0.1" if server.bind in ("0.0.0.0", "") else server.bind
        if ":" in address:
            address = f"[{address}]"
        self.address = address
        self.url = f"http://{address}:{server.port}"

    def ws_url(self, path: str) -> str:
        """``ws://`` URL of ``path`` on this server (host: ``ws_url("ws/spin30")``)."""
        return "ws://{}:{}/{}".format(self.address, self.port, path.lstrip("/"))

    def stats(self) -> Dict[str, Any]:
        return self.server.hub.snapshot()

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RunningRemote(Running):
    server: RemoteServer

    def client_url(self, topic: str) -> str:
        return self.server.client_url(topic)

    def access_url(self, topic: str) -> str:
        return f"{self.url}/session/{topic}"

    @property
    def access_log(self) -> List[Dict[str, Any]]:
        return list(self.server.access_log)


def start_host(port: int = 0, bind: str = "127.0.0.1", host: Optional[str] = None, **options: Any) -> Running:
    """Start a relay host stand-in; ``options`` are HostOptions fields (ping_interval, pong_wait, ...).

    ``host`` is an alias of ``bind`` (the name docs/INTERFACES.md uses).
    """
    server = HostServer(host if host is not None else bind, port, HostOptions(**options))
    server.start()
    return Running(server)


def start_remote(
    secret: str, port: int = 0, bind: str = "127.0.0.1", access_base: Optional[str] = None
) -> RunningRemote:
    server = RemoteServer(bind, port, secret, access_base)
    server.start()
    return RunningRemote(server)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL + 10,
}


def _setup_logging(level_name: str) -> None:
    level = LOG_LEVELS.get(level_name.strip().lower(), LOG_LEVELS["panic"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(level)


def _wait_forever(running: Running) -> int:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.stop()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="relay_standin", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    sub.required = True
    host_p = sub.add_parser(
        "host",
        help="the relay host (VW_PORT, default 8888; VW_LOG_LEVEL, default panic = silent)",
        description="Relay host stand-in. Environment: VW_PORT (default 8888), VW_LOG_LEVEL (trace, debug, "
        "info, warn, error, fatal, panic; default panic = silent). RELAYHOST_* variables are ignored.",
    )
    host_p.add_argument("--bind", default="0.0.0.0", help="address to listen on (default all interfaces)")
    host_p.add_argument("--port", type=int, default=None, help="overrides VW_PORT")
    host_p.add_argument("--ping-interval", type=float, default=54.0)
    host_p.add_argument("--pong-wait", type=float, default=60.0)
    host_p.add_argument("--write-deadline", type=float, default=10.0)
    host_p.add_argument("--backoff-initial", type=float, default=1.0)
    host_p.add_argument("--backoff-max", type=float, default=10.0)
    remote_p = sub.add_parser("remote", help="the remote relay (access endpoint + topics)")
    remote_p.add_argument("--port", type=int, required=True)
    remote_p.add_argument("--secret", required=True)
    remote_p.add_argument("--access-base", default=None, help="audience to require (default http://<Host>)")
    remote_p.add_argument("--bind", default="127.0.0.1")
    remote_p.add_argument("--log-level", default=os.environ.get("VW_LOG_LEVEL", "panic"))
    mint_p = sub.add_parser("mint", help="print an access token for a topic")
    mint_p.add_argument("--secret", required=True)
    mint_p.add_argument("--topic", required=True)
    mint_p.add_argument("--access-base", required=True)
    mint_p.add_argument("--lifetime", type=int, default=31536000)
    args = parser.parse_args(argv)

    if args.mode == "mint":
        sys.stdout.write(mint_token(args.secret, args.topic, args.access_base, args.lifetime) + "\n")
        return 0
    if args.mode == "remote":
        _setup_logging(args.log_level)
        running: Running = start_remote(args.secret, args.port, args.bind, args.access_base)
        LOG.info("remote relay stand-in listening on %s:%s", args.bind, running.port)
        return _wait_forever(running)
    _setup_logging(os.environ.get("VW_LOG_LEVEL", "panic"))
    port = args.port
    if port is None:
        try:
            port = int(os.environ.get("VW_PORT", "8888") or "8888")
        except ValueError:
            sys.stderr.write("relay_standin: error: VW_PORT is not a number\n")
            return 2
    try:
        running = start_host(
            port,
            args.bind,
            ping_interval=args.ping_interval,
            pong_wait=args.pong_wait,
            write_deadline=args.write_deadline,
            backoff_initial=args.backoff_initial,
            backoff_max=args.backoff_max,
        )
    except OSError as exc:
        sys.stderr.write(f"relay_standin: error: cannot listen on {args.bind}:{port}: {exc}\n")
        return 1
    LOG.info("relay host stand-in listening on %s:%s", args.bind, running.port)
    return _wait_forever(running)


if __name__ == "__main__":
    sys.exit(main())
