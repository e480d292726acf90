"""One event-loop thread over the sockets of every stream: read, answer pings, paced sends, reconnect.

Two threads per stream (a reader and a sender) cost 500 streams 1,000 threads, their stacks and a
hand-off per message. Here one thread waits on all sockets at once (``selectors``, epoll on Linux):

- **Reading.** A readable socket gives one read of up to 64 KiB; ``frames.FrameParser`` turns it into
  frames; the data frames of every socket that was ready in one round go to the inbox in one
  ``put_nowait_many`` call (one hand-off to the worker per round, not per message or per socket).
  Pings are answered at once. The loop never blocks on the inbox: before reading a socket it asks
  ``inbox.room(i)``; when that is False it stops reading that socket (the relay's bytes wait in TCP
  buffers), counts the episode (``errors.read_paused``), logs it once, and looks again every 50 ms.
- **Sending.** Answers the worker submits (``sender.Sender.submit``, thread-safe) wake the loop through
  a socket pair; each stream's messages go out in order at least ``spacing_s`` apart, timed by the
  loop's own timer heap (the select timeout), so the messages of one answer cost one loop wake-up each
  and no other thread. A socket that cannot take more bytes keeps them in its out buffer and the next
  message waits for it to drain.
- **Connecting.** websocket-client still makes each connection (DNS, proxies, TLS, the handshake), on a
  small fixed pool of connect threads so a slow handshake never holds up the loop; the loop then takes
  the socket over, non-blocking. Reconnects follow each stream's ``Backoff`` (full jitter, low cap for
  a loopback relay, reset on connect), so a relay restart spreads the streams' attempts instead of
  sending them all at once.
"""

import collections
import heapq
import itertools
import logging
import os
import queue
import select as _select
import selectors
import socket
import struct
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple, Type

from practable_analytics.service.backoff import Backoff
from practable_analytics.service.config import ServeConfig
from practable_analytics.service.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameParser,
    ProtocolError,
)
from practable_analytics.service.inbox import REQUEST_MARK, Inbox, Item
from practable_analytics.service.sender import Sender
from practable_analytics.service.stats import StreamStats
from practable_analytics.service.threads import name_os_thread

try:
    import ssl

    _SSL_WANT: Tuple[Type[BaseException], ...] = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
    _SSLSocket: Optional[type] = ssl.SSLSocket
except ImportError:  # pragma: no cover (Python without OpenSSL: ws:// only)
    _SSL_WANT = ()
    _SSLSocket = None

_NOT_READY: Tuple[Type[BaseException], ...] = (BlockingIOError, InterruptedError, *_SSL_WANT)
_OS_OR_NOT_READY: Tuple[Type[BaseException], ...] = (OSError, *_SSL_WANT)

LOG = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024  # one socket read: a burst in one call, short enough to keep sends paced
PAUSE_POLL_S = 0.05  # how often a paused socket looks for room in the inbox again
CONNECT_THREADS = 8  # most handshakes in flight at once (fewer when there are fewer streams)
SMALL_STACK = 256 * 1024
# epoll (and poll) wait whole milliseconds, rounded up: a paced message due in 0.3 ms would wait
# 1 ms, and every 1 ms gap of an answer became ~1.15 ms. Waits shorter than this go through select()
# on the epoll descriptor (readable when a registered socket is), which waits to the microsecond.
FINE_WAIT_S = 0.01
FD_SETSIZE = 1024  # select() takes no descriptor at or above it
# Dense traffic: a wake-up costs more CPU than the frame it reads (the kernel's wake-up, the GIL, the
# round's bookkeeping), so while frames arrive faster than one per DENSE_GAP_S on average and no
# dashboard asked anything on this loop for ASKED_QUIET_S, the loop lets HOLD_S pass before it reads
# again (waiting only for the worker's answers, commands and timers) and takes what came meanwhile in
# one read. Such a frame waits at most HOLD_S longer for the worker, whose commit window holds it
# 25 ms anyway; a frame whose bytes may be a request (they contain ``request``, as the inbox's own
# wake-up test) turns holding off, so a dashboard's requests and answers are never held back.
DENSE_GAP_S = 0.002
HOLD_S = 0.002
ASKED_QUIET_S = 2.0
OP_PONG = 0xA

DOWN = 0
CONNECTING = 1
OPEN = 2


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


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked frame, as a client must send it (RFC 6455 section 5.3)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    if n == 0:
        return head + key
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return head + key + (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")


def raise_nofile_limit(needed: int) -> None:
    """Raise the soft open-files limit towards the hard one when `needed` descriptors would not fit."""
    try:
        import resource  # noqa: PLC0415 (POSIX only)
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        LOG.info("open files limit raised from %d to %d", soft, target)
    except (ValueError, OSError) as exc:
        LOG.warning("cannot raise the open files limit from %d (%s)", soft, exc)
    if target < needed:
        LOG.warning("open files limit %d is below the %d this many streams need", target, needed)


class Stream:
    """The loop's state for one stream (loop thread only, except where noted)."""

    def __init__(self, index: int, url: str, stats: StreamStats, sender: Sender, backoff: Backoff) -> None:
        self.index = index
        self.url = url
        self.name = stats.name
        self.stats = stats
        self.sender = sender
        self.backoff = backoff
        self.state = DOWN
        self.generation = 0  # bumps on every connect attempt: stale handshake results are dropped
        self.ws: Optional[Any] = None  # websocket-client object (kept: it owns the TLS socket)
        self.sock: Optional[socket.socket] = None
        self.tls = False
        self.parser = FrameParser()
        self.out = bytearray()  # bytes the socket did not take yet
        self.events = 0  # selector interest now registered
        self.paused = False
        self.connected_at = 0.0
        self.next_send = 0.0  # monotonic time the next paced message may go out
        self.pump_at: Optional[float] = None  # pending pacing timer
        self.expiry_at: Optional[float] = None  # pending answer-ttl timer
        self.down_logged = False
        self.down_since: Optional[float] = None


class Loop(threading.Thread):
    """The event loop thread serving every stream of the process."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        stats: Sequence[StreamStats],
        senders: Sequence[Sender],
        backoffs: Sequence[Backoff],
        inbox: Inbox,
        connect_timeout_s: float = ServeConfig.connect_timeout_s,
        max_message: int = 16 * 1024 * 1024,
        connect_threads: int = CONNECT_THREADS,
    ) -> None:
        super().__init__(name="loop", daemon=True)
        self.inbox = inbox
        self.connect_timeout_s = connect_timeout_s
        self.max_message = max_message
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._woken = False  # a wake byte is in flight (saves a syscall per submit)
        self._wake_lock = threading.Lock()
        self._notified: Deque[int] = collections.deque()
        self._results: Deque[Tuple[Stream, int, Any, Optional[BaseException]]] = collections.deque()
        self._timers: List[Tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._reread: List[Stream] = []
        self.streams: List[Stream] = []
        for i, (url, st, sender, backoff) in enumerate(zip(urls, stats, senders, backoffs)):
            stream = Stream(i, url, st, sender, backoff)
            stream.parser = FrameParser(max_message)
            sender.attach(self.notify, i)
            self.streams.append(stream)
        self._connects: "queue.Queue[Optional[Tuple[Stream, int]]]" = queue.Queue()  # noqa: UP037 (3.8)
        self._connect_threads: List[threading.Thread] = []
        n_threads = max(1, min(connect_threads, len(self.streams)))
        old = threading.stack_size()
        try:
            threading.stack_size(SMALL_STACK)
            for k in range(n_threads):
                self._connect_threads.append(
                    threading.Thread(target=self._connect_worker, name=f"connect-{k}", daemon=True)
                )
        finally:
            threading.stack_size(old)
        self._reading = True
        self._closing = False
        self.read_stopped = threading.Event()
        self.drained = threading.Event()
        self.closed = threading.Event()
        self.wakeups = 0  # select() returns, for the benchmarks
        self.holds = 0  # waits of HOLD_S in dense traffic, for the benchmarks
        self.dense_gap_s = DENSE_GAP_S
        self.hold_s = HOLD_S
        self._gap = 1.0  # moving average of the time between data frames, s
        self._asked = -ASKED_QUIET_S  # monotonic time a frame that may be a request was last read
        self._last_data = 0.0  # monotonic time of the last round that read data frames
        self._round_asked = False  # a frame read this round may be a request (told to the inbox)
        sel_fd = self._sel.fileno() if hasattr(self._sel, "fileno") else -1
        self._sel_fd = sel_fd if 0 <= sel_fd < FD_SETSIZE else -1
        wake_fd = self._wake_r.fileno()
        self._wake_fd = wake_fd if wake_fd < FD_SETSIZE else -1
        self._command: Deque[str] = collections.deque()

    # -- other threads ----------------------------------------------------------------------------
    def notify(self, index: int) -> None:
        """A stream's sender has work (any thread): wake the loop, once per batch of notifications."""
        self._notified.append(index)
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._woken:
                return
            self._woken = True
        try:
            self._wake_w.send(b"\0")
        except OSError:  # buffer full means a wake is pending anyway; closed means stopping
            pass

    def stop_reading(self, timeout: float = 1.0) -> None:
        """Stop reading every socket (no new message enters); returns when the loop has done it."""
        self._command.append("stop_reading")
        self._wake()
        self.read_stopped.wait(timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Close every socket (a close frame, best effort) and end the loop thread."""
        self._command.append("close")
        self._wake()
        self.closed.wait(timeout)

    def start(self) -> None:
        for thread in self._connect_threads:
            thread.start()
        super().start()

    # -- connect pool -----------------------------------------------------------------------------
    def _connect_worker(self) -> None:
        import websocket  # noqa: PLC0415 (only serve needs it: keeps other commands light)

        name_os_thread(f"serve-{threading.current_thread().name}")

        while True:
            job = self._connects.get()
            if job is None:
                return
            stream, generation = job
            try:
                ws = websocket.create_connection(
                    stream.url,
                    timeout=self.connect_timeout_s,
                    skip_utf8_validation=True,
                    sockopt=_keepalive_options(),
                )
            except Exception as exc:  # noqa: BLE001 (any connect failure: back off and retry)
                self._results.append((stream, generation, None, exc))
            else:
                self._results.append((stream, generation, ws, None))
            self._wake()

    # -- loop thread --------------------------------------------------------------------------------
    def run(self) -> None:
        name_os_thread("serve-loop")
        try:
            for stream in self.streams:
                self._connect(stream)
            self._run()
        except Exception:  # a bug: logged, and the runner sees the thread end
            LOG.exception("event loop failed")
            raise
        finally:
            self._close_all()
            for _ in self._connect_threads:
                self._connects.put(None)
            self.read_stopped.set()
            self.drained.set()
            self.closed.set()

    def _run(self) -> None:
        select = self._sel.select
        fine = _select.select
        sel_fd = self._sel_fd
        put_many = self.inbox.put_nowait_many
        monotonic = time.monotonic
        timers = self._timers
        while True:
            if self._reread:
                timeout: Optional[float] = 0.0
            elif timers:
                timeout = max(0.0, timers[0][0] - monotonic())
                if 0.0 < timeout < FINE_WAIT_S and sel_fd >= 0:
                    fine([sel_fd], [], [], timeout)
                    timeout = 0.0
            else:
                timeout = None
            events = select(timeout)
            self.wakeups += 1
            items: List[Item] = []
            self._round_asked = False
            if self._reread:
                again, self._reread = self._reread, []
                for stream in again:
                    if stream.state == OPEN and self._reading:
                        self._read(stream, items)
            for key, mask in events:
                stream = key.data
                if stream is None:
                    self._drain_wake()
                    continue
                if mask & selectors.EVENT_WRITE:
                    self._flush(stream)
                if mask & selectors.EVENT_READ and stream.state == OPEN and self._reading:
                    self._read(stream, items)
            if items:
                put_many(items, self._round_asked)
                self._density(len(items))
            while self._results:
                self._handshake_done(*self._results.popleft())
            if self._notified:
                seen = set()
                while self._notified:
                    seen.add(self._notified.popleft())
                for index in seen:
                    self._answers_arrived(self.streams[index])
            if timers and timers[0][0] <= monotonic():
                now = monotonic()
                while timers and timers[0][0] <= now:
                    heapq.heappop(timers)[2]()
            while self._command:
                command = self._command.popleft()
                if command == "stop_reading":
                    self._stop_reading()
                elif command == "close":
                    return
            if not self._reading and not self.drained.is_set():
                self._check_drained()
            if (
                items
                and self._gap < self.dense_gap_s
                and self._reading
                and not self._reread
                and self._last_data - self._asked > ASKED_QUIET_S
            ):
                self._hold()

    def _density(self, frames: int) -> None:
        """Update the moving average of the time between data frames (frames read this round)."""
        now = time.monotonic()
        sample = min(0.1, (now - self._last_data) / frames)
        self._last_data = now
        self._gap += (sample - self._gap) * 0.25

    def _hold(self) -> None:
        """Dense traffic: wait HOLD_S (less if a timer is due sooner) for anything but the sockets'
        data: a wake (answers to send, a command) ends the wait at once."""
        until = time.monotonic() + self.hold_s
        if self._timers:
            until = min(until, self._timers[0][0])
        left = until - time.monotonic()
        if left <= 0:
            return
        self.holds += 1
        if self._wake_fd >= 0:
            _select.select([self._wake_fd], [], [], left)
        else:  # pragma: no cover (a wake descriptor beyond select's range: plain sleep)
            time.sleep(left)

    def _drain_wake(self) -> None:
        # Bytes first, then the flag: a wake sent in between leaves a byte behind (one spare
        # wake-up), never a notification without a byte (a lost one). The notified streams are
        # looked at after this, in the same round.
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._wake_lock:
            self._woken = False

    def _at(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), callback))

    # -- selector interest --------------------------------------------------------------------------
    def _interest(self, stream: Stream) -> None:
        want = 0
        if stream.state == OPEN and stream.sock is not None:
            if self._reading and not stream.paused:
                want |= selectors.EVENT_READ
            if stream.out:
                want |= selectors.EVENT_WRITE
        if want == stream.events:
            return
        sock = stream.sock
        assert sock is not None  # registered (events) only while the stream has its socket
        if stream.events and not want:
            self._sel.unregister(sock)
        elif not stream.events:
            self._sel.register(sock, want, stream)
        else:
            self._sel.modify(sock, want, stream)
        stream.events = want

    # -- connecting -----------------------------------------------------------------------------------
    def _connect(self, stream: Stream) -> None:
        if not self._reading:
            return
        stream.state = CONNECTING
        stream.generation += 1
        self._connects.put((stream, stream.generation))

    def _handshake_done(self, stream: Stream, generation: int, ws: Any, exc: Optional[BaseException]) -> None:
        if generation != stream.generation or not self._reading or stream.state != CONNECTING:
            if ws is not None:
                _close_quietly(ws.sock)
            return
        if ws is None:
            assert exc is not None
            self._connect_failed(stream, exc)
            return
        sock = ws.sock
        try:
            sock.setblocking(False)
        except OSError as exc2:
            _close_quietly(sock)
            self._connect_failed(stream, exc2)
            return
        stream.ws = ws
        stream.sock = sock
        stream.tls = _SSLSocket is not None and isinstance(sock, _SSLSocket)
        stream.parser = FrameParser(self.max_message)
        stream.out = bytearray()
        stream.events = 0
        stream.paused = False
        stream.state = OPEN
        stream.connected_at = time.monotonic()
        stream.stats.set_connected(True)
        stream.backoff.connected()
        if stream.down_since is not None:
            LOG.info(
                "stream %s connected to %s (down %.2f s)",
                stream.name,
                stream.url,
                time.monotonic() - stream.down_since,
            )
        else:
            LOG.info("stream %s connected to %s", stream.name, stream.url)
        stream.down_logged = False
        stream.down_since = None
        self._interest(stream)
        self._pump(stream)

    def _connect_failed(self, stream: Stream, exc: BaseException) -> None:
        stream.state = DOWN
        stream.stats.error("connect_failed")
        if stream.down_since is None:
            stream.down_since = time.monotonic()
        delay = stream.backoff.next_delay()
        if not stream.down_logged:
            LOG.warning(
                "stream %s cannot connect to %s (%s); retrying with backoff up to %.1f s",
                stream.name,
                stream.url,
                describe(exc),
                stream.backoff.cap_s,
            )
            stream.down_logged = True
        else:
            LOG.debug(
                "stream %s connect attempt %d failed (%s)", stream.name, stream.backoff.attempt, describe(exc)
            )
        self._retry_in(stream, delay)

    def _retry_in(self, stream: Stream, delay: float) -> None:
        generation = stream.generation

        def retry() -> None:
            if stream.state == DOWN and stream.generation == generation:
                self._connect(stream)

        self._at(time.monotonic() + delay, retry)
        self._schedule_expiry(stream)

    def _drop(self, stream: Stream, reason: str) -> None:
        """The connection ended (or broke): close it, count it, reconnect after a backoff delay."""
        if stream.state != OPEN:
            return
        self._release(stream)
        stream.stats.set_connected(False)
        stream.stats.error("disconnected")
        stream.down_since = time.monotonic()
        LOG.warning("stream %s disconnected (%s); reconnecting", stream.name, reason)
        stream.down_logged = True
        stream.backoff.disconnected(time.monotonic() - stream.connected_at)
        self._retry_in(stream, stream.backoff.next_delay())

    def _release(self, stream: Stream) -> None:
        if stream.events and stream.sock is not None:
            try:
                self._sel.unregister(stream.sock)
            except (KeyError, ValueError):
                pass
        stream.events = 0
        if stream.sock is not None:
            _close_quietly(stream.sock)
        stream.sock = None
        stream.ws = None
        stream.out = bytearray()
        stream.state = DOWN
        stream.paused = False

    # -- reading ------------------------------------------------------------------------------------
    def _read(self, stream: Stream, items: List[Item]) -> None:
        if not self.inbox.room(stream.index):
            self._pause(stream)
            return
        sock = stream.sock
        assert sock is not None
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except _SSL_WANT:
            return
        except OSError as exc:
            self._drop(stream, describe(exc))
            return
        if not data:
            self._drop(stream, "connection closed")
            return
        if stream.tls:
            data = self._more_tls(stream, sock, data)
        self._take(stream, data, items)

    def _more_tls(self, stream: Stream, sock: Any, data: bytes) -> bytes:
        """TLS may hold decrypted bytes the socket will not signal again: take them, up to one
        read's worth; what is left waits for the next round (no select wait)."""
        chunks = [data]
        size = len(data)
        try:
            while size < RECV_BYTES and sock.pending():
                more = sock.recv(RECV_BYTES)
                if not more:
                    break
                chunks.append(more)
                size += len(more)
        except _NOT_READY:
            pass
        except OSError:
            pass  # the next read reports it
        if sock.pending():
            self._reread.append(stream)
        return b"".join(chunks) if len(chunks) > 1 else data

    def _take(self, stream: Stream, data: bytes, items: List[Item]) -> None:
        try:
            frames = stream.parser.feed(data)
        except ProtocolError as exc:
            self._drop(stream, describe(exc))
            return
        if not frames:
            return
        now = time.time()
        mono = time.monotonic()
        index = stream.index
        n = 0
        size = 0
        closing: Optional[bytes] = None
        asked = False
        for opcode, payload in frames:
            if opcode == OP_TEXT or opcode == OP_BINARY:  # noqa: PLR1714 (hot path: no tuple)
                items.append((index, opcode, payload, now, mono))
                n += 1
                size += len(payload)
                if REQUEST_MARK in payload:
                    asked = True
            elif opcode == OP_PING:
                self._write(stream, client_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                closing = payload[:2]
                break
        if n:
            stats = stream.stats
            stats.received += n
            stats.received_bytes += size
            stats.last_event = now
            if asked:
                self._asked = mono
                self._round_asked = True
        if closing is not None and stream.state == OPEN:
            self._write(stream, client_frame(OP_CLOSE, closing))
            self._drop(stream, "closed by the relay")

    def _pause(self, stream: Stream) -> None:
        if stream.paused:
            return
        stream.paused = True
        stream.stats.error("read_paused")
        LOG.warning(
            "stream %s: inbox full, reading paused until the worker catches up (the relay buffers)",
            stream.name,
        )
        self._interest(stream)
        self._at(time.monotonic() + PAUSE_POLL_S, lambda: self._look_again(stream))

    def _look_again(self, stream: Stream) -> None:
        if not stream.paused:
            return
        if stream.state != OPEN or not self._reading:
            stream.paused = False
            return
        if self.inbox.room(stream.index):
            stream.paused = False
            LOG.info("stream %s: reading again", stream.name)
            self._interest(stream)
        else:
            self._at(time.monotonic() + PAUSE_POLL_S, lambda: self._look_again(stream))

    # -- writing ------------------------------------------------------------------------------------
    def _write(self, stream: Stream, frame: bytes) -> bool:
        """Send a frame now, or keep what the socket does not take; False if the socket broke."""
        if stream.out:
            stream.out += frame
            return True
        sock = stream.sock
        if sock is None:
            return False
        try:
            sent = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except _SSL_WANT:
            sent = 0
        except OSError as exc:
            stream.stats.error("send_failed")
            LOG.warning("stream %s: send failed (%s)", stream.name, type(exc).__name__)
            self._drop(stream, describe(exc))
            return False
        if sent < len(frame):
            stream.out += frame[sent:]
            self._interest(stream)
        return True

    def _flush(self, stream: Stream) -> None:
        sock = stream.sock
        if sock is None or not stream.out:
            return
        try:
            sent = sock.send(bytes(stream.out[:RECV_BYTES]) if stream.tls else stream.out)
        except (BlockingIOError, InterruptedError):
            return
        except _SSL_WANT:
            return
        except OSError as exc:
            stream.stats.error("send_failed")
            self._drop(stream, describe(exc))
            return
        del stream.out[:sent]
        if not stream.out:
            self._interest(stream)
            self._pump(stream)

    # -- paced answers ------------------------------------------------------------------------------
    def _answers_arrived(self, stream: Stream) -> None:
        if stream.state == OPEN:
            self._pump(stream)
        else:
            self._schedule_expiry(stream)
        if stream.sender.stopping:
            self._at(stream.sender.drain_until, lambda: self._drain_deadline(stream))

    def _pump(self, stream: Stream) -> None:
        """Send the stream's next message if its time has come, else set one timer for it."""
        sender = stream.sender
        spacing = sender.spacing_s
        while stream.state == OPEN and not stream.out:
            answer = sender.current
            now = time.monotonic()
            if answer is None:
                answer = sender.take()
                if answer is None:
                    return
                if now > answer.deadline:  # waited in the backlog past its ttl: nobody waits for it
                    stream.stats.error("answer_expired")
                    sender.log_dropped("answer expired in the backlog")
                    continue
                sender.current = answer
            if now < stream.next_send:
                if stream.pump_at is None or stream.pump_at > stream.next_send:
                    stream.pump_at = stream.next_send
                    self._at(stream.next_send, lambda: self._pump_timer(stream))
                return
            text = answer.messages[answer.next]
            answer.next += 1
            if not self._write(stream, client_frame(OP_TEXT, text.encode("utf-8"))):
                sender.current = None
                LOG.warning(
                    "stream %s: answer dropped after %d of %d messages", stream.name, answer.next - 1,
                    len(answer.messages),
                )  # fmt: skip
                return
            # spacing from this write's start (not its end): the relay needs the writes that far apart
            stream.next_send = now + spacing
            stream.stats.messages_sent += 1
            if answer.next >= len(answer.messages):
                sender.current = None
                stream.stats.answers_sent += 1
                stream.stats.answer_latencies.append(time.monotonic() - answer.received)

    def _pump_timer(self, stream: Stream) -> None:
        stream.pump_at = None
        self._pump(stream)

    def _schedule_expiry(self, stream: Stream) -> None:
        """While a stream is down, drop its answers once they outlive the ttl (one timer at a time)."""
        if stream.expiry_at is not None:
            return
        current = stream.sender.current
        first = current.deadline if current is not None else stream.sender.first_deadline()
        if first is None:
            return
        stream.expiry_at = first
        self._at(first + 0.001, lambda: self._expire(stream))

    def _expire(self, stream: Stream) -> None:
        stream.expiry_at = None
        if stream.state == OPEN:
            return  # connected: _pump drops expired answers as it reaches them
        sender = stream.sender
        now = time.monotonic()
        if sender.current is not None and sender.current.deadline < now:
            sender.current = None
            stream.stats.error("answer_expired")
            sender.log_dropped("answer dropped, not connected")
        while True:
            first = sender.first_deadline()
            if first is None or first >= now:
                break
            sender.take()
            stream.stats.error("answer_expired")
            sender.log_dropped("answer dropped, not connected")
        self._schedule_expiry(stream)

    # -- stopping -----------------------------------------------------------------------------------
    def _stop_reading(self) -> None:
        self._reading = False
        for stream in self.streams:
            if stream.state == CONNECTING:
                stream.state = DOWN
                stream.generation += 1
            self._interest(stream)
        self.read_stopped.set()

    def _drain_deadline(self, stream: Stream) -> None:
        sender = stream.sender
        if not sender.stopping or time.monotonic() < sender.drain_until:
            return
        dropped = sender.drop_all()
        if dropped:
            stream.stats.error("answer_unsent_at_stop", dropped)

    def _check_drained(self) -> None:
        now = time.monotonic()
        for stream in self.streams:
            sender = stream.sender
            if not sender.stopping:
                return
            if sender.pending() or stream.out:
                if now < sender.drain_until:
                    return
                dropped = sender.drop_all()
                if dropped:
                    stream.stats.error("answer_unsent_at_stop", dropped)
        self.drained.set()

    def _close_all(self) -> None:
        for stream in self.streams:
            sock = stream.sock
            if sock is not None and stream.state == OPEN and not stream.out:
                try:
                    sock.send(client_frame(OP_CLOSE, struct.pack("!H", 1001)))
                except _OS_OR_NOT_READY:
                    pass
            if stream.state == OPEN:
                stream.stats.set_connected(False)
            self._release(stream)
        try:
            self._sel.close()
        except OSError:
            pass
        for sock in (self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass


def _close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        LOG.debug("socket close failed")
