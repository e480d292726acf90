"""Per-stream reader: connect, read frames, put them in the inbox; reconnect forever.

The reader does nothing but read: no decoding, no JSON, no storing. websocket-client makes the
connection (handshake, TLS, proxies) and does all sending; the frames are read from its socket with
service.frames.FrameParser (many frames per socket read, no UTF-8 check: the worker decodes strictly
and stores invalid text as an invalid event). The reader answers the relay's pings itself.
"""

import logging
import socket
import threading
import time
from typing import Any, List, Optional, Tuple

from practable_analytics.service.backoff import Backoff
from practable_analytics.service.frames import OP_BINARY, OP_PING, OP_TEXT, FrameParser
from practable_analytics.service.inbox import Inbox
from practable_analytics.service.link import Link
from practable_analytics.service.stats import StreamStats

LOG = logging.getLogger(__name__)

# One socket read: large enough to take a burst in one call, small enough to stay cheap.
RECV_BYTES = 256 * 1024


def _keepalive_options() -> List[Tuple[int, int, int]]:
    """TCP keepalive so a relay host that vanished without closing is noticed within ~2 minutes."""
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return opts


def describe(exc: BaseException) -> str:
    """A short reason for logs (exception type and message, never a payload)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > 160:
        text = text[:160] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Reader(threading.Thread):
    """Reads one stream into the inbox, reconnecting with capped exponential backoff and jitter."""

    def __init__(
        self,
        *,
        index: int,
        url: str,
        inbox: Inbox,
        link: Link,
        stats: StreamStats,
        backoff: Backoff,
        stop: threading.Event,
        connect_timeout_s: float = 5.0,
        max_message: int = 16 * 1024 * 1024,
    ) -> None:
        super().__init__(name=f"read-{stats.name}", daemon=True)
        self.index = index
        self.url = url
        self.inbox = inbox
        self.link = link
        self.stats = stats
        self.backoff = backoff
        self.stop_event = stop
        self.connect_timeout_s = connect_timeout_s
        self.max_message = max_message
        self._ws: Optional[Any] = None
        self._ws_lock = threading.Lock()
        self._down_logged = False

    # -- control from other threads -------------------------------------------------------------
    def stop(self) -> None:
        """Stop reading now: wake a blocked recv by shutting the socket's read side.

        The write side stays open so the senders can still deliver answers to what was read; the
        runner closes the socket afterwards (close_socket).
        """
        self.stop_event.set()
        with self._ws_lock:
            ws = self._ws
        sock = getattr(ws, "sock", None) if ws is not None else None
        if sock is not None:
            try:
                # The plain socket method even for TLS: ssl.SSLSocket.shutdown() would also drop
                # the TLS layer, and the senders still write through it.
                socket.socket.shutdown(sock, socket.SHUT_RD)
            except OSError:
                pass

    def close_socket(self) -> None:
        with self._ws_lock:
            ws, self._ws = self._ws, None
        self.link.set(None)
        if ws is not None:
            _close_quietly(ws)

    # -- thread body ----------------------------------------------------------------------------
    def run(self) -> None:
        import websocket  # noqa: PLC0415 (only serve needs it: keeps other commands light)

        while not self.stop_event.is_set():
            try:
                ws = websocket.create_connection(
                    self.url,
                    timeout=self.connect_timeout_s,
                    skip_utf8_validation=True,
                    enable_multithread=True,
                    sockopt=_keepalive_options(),
                )
            except Exception as exc:  # noqa: BLE001 (any connect failure: back off and retry)
                self._connect_failed(exc)
                continue
            if self.stop_event.is_set():
                _close_quietly(ws)
                return
            ws.settimeout(None)
            reason = self._serve(ws)
            if self.stop_event.is_set():
                return  # the runner closes the socket once the answers are out
            self.close_socket()
            self.stats.set_connected(False)
            self.stats.error("disconnected")
            LOG.warning("stream %s disconnected (%s); reconnecting", self.stats.name, reason)
            self._down_logged = True
            self.stop_event.wait(self.backoff.next_delay())

    def _connect_failed(self, exc: BaseException) -> None:
        self.stats.error("connect_failed")
        delay = self.backoff.next_delay()
        if not self._down_logged:
            LOG.warning(
                "stream %s cannot connect to %s (%s); retrying with backoff up to %.1f s",
                self.stats.name,
                self.url,
                describe(exc),
                self.backoff.cap_s,
            )
            self._down_logged = True
        else:
            LOG.debug(
                "stream %s connect attempt %d failed (%s)",
                self.stats.name,
                self.backoff.attempt,
                describe(exc),
            )
        self.stop_event.wait(delay)

    def _serve(self, ws: Any) -> str:
        """Read frames until the connection ends; returns why it ended."""
        connected_at = time.monotonic()
        with self._ws_lock:
            self._ws = ws
        if self.stop_event.is_set():
            return "stopping"
        self.link.set(ws)
        self.stats.set_connected(True)
        self.backoff.connected()
        self._down_logged = False
        LOG.info("stream %s connected to %s", self.stats.name, self.url)
        try:
            reason = self._read_loop(ws)
        except Exception as exc:  # noqa: BLE001 (socket, protocol or close: all mean reconnect)
            reason = describe(exc)
        self.backoff.disconnected(time.monotonic() - connected_at)
        return reason

    def _read_loop(self, ws: Any) -> str:
        recv = ws.sock.recv
        feed = FrameParser(self.max_message).feed
        put_many = self.inbox.put_many
        index = self.index
        stats = self.stats
        stop = self.stop_event
        clock = time.time
        while True:
            data = recv(RECV_BYTES)
            if not data:
                return "connection closed"
            frames = feed(data)
            if not frames:
                continue
            now = clock()
            items = []
            size = 0
            closing = False
            for opcode, payload in frames:
                if opcode == OP_TEXT or opcode == OP_BINARY:  # noqa: PLR1714 (hot path: no tuple)
                    items.append((index, opcode, payload, now))
                    size += len(payload)
                elif opcode == OP_PING:
                    ws.pong(payload)
                else:  # OP_CLOSE
                    closing = True
                    break
            if items:
                n = put_many(items, stop)
                stats.received += n
                stats.received_bytes += size
                stats.last_event = now
                if n < len(items):
                    return "stopping"
            if closing:
                return "closed by the relay"


def _close_quietly(ws: Any) -> None:
    """Send a close frame (best effort) and close the socket, without waiting for the reply: a
    stop must not wait on 48 relays' close handshakes one after the other."""
    try:
        ws.send_close()
    except Exception:  # noqa: BLE001 (the connection may already be broken; nothing to do)
        LOG.debug("close frame not sent")
    try:
        ws.shutdown()
    except Exception:  # noqa: BLE001
        LOG.debug("socket close failed")
