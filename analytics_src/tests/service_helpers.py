"""Helpers for the service tests: the relay stand-in, serve as a subprocess, a frame-pushing server."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]
STANDIN_DIR = REPO / "tests" / "relay_standin"
if str(STANDIN_DIR) not in sys.path:
    sys.path.insert(0, str(STANDIN_DIR))

import relay_standin  # noqa: E402

USER = "0417fa50-de61-4a45-b71f-410fc7da9388"
SPINNER_LOGS = ("voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp")


def analytics(t: int, log: str, user: str = USER, hardware: str = "spin30") -> Dict[str, Any]:
    return {
        "user": user,
        "t": t,
        "exp": "spinner",
        "course": "engdes1",
        "hardware": hardware,
        "type": "analytics",
        "payload": {"log": log, "data": {"set": t % 7}},
    }


def request(content: str, user: str = USER, t: int = 1, **payload: Any) -> Dict[str, Any]:
    body: Dict[str, Any] = {"content": content}
    body.update(payload)
    return {"user": user, "t": t, "exp": "spinner", "course": "engdes1", "type": "request", "payload": body}


def all_feedback(user: str = USER, t: int = 1) -> Dict[str, Any]:
    return request("all_feedback", user=user, t=t, graph="spinner-engdes1-all")


def dumps(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))


# ---------------------------------------------------------------------------------- store queries


def stored_counts(db: Path) -> Dict[Optional[str], int]:
    """Events per stream, read-only ({} while the database or its schema does not exist yet)."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {s: n for s, n in conn.execute("SELECT stream, COUNT(*) FROM events GROUP BY stream")}
    except sqlite3.OperationalError:  # no events table yet
        return {}
    finally:
        conn.close()


def query(db: Path, sql: str, params: Sequence[object] = ()) -> List[Tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(sql, tuple(params)))
    finally:
        conn.close()


# ---------------------------------------------------------------------------------- stand-in


def client_stats(host: Any, stream: str) -> Dict[str, Dict[str, Any]]:
    return dict(host.stats().get(stream, {}).get("clients", {}))


def service_client(host: Any, stream: str, others: Sequence[str]) -> Dict[str, Any]:
    """The stand-in's counters for the one client of stream that is not one of ours (the service)."""
    mine = [v for k, v in client_stats(host, stream).items() if k.split("#")[0] not in others]
    assert len(mine) >= 1, client_stats(host, stream)
    total: Dict[str, Any] = {"received": 0, "delivered": 0, "dropped": 0}
    for entry in mine:
        for key in total:
            total[key] += entry[key]
    return total


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def recv_responses(client: Any, n: int, timeout: float) -> List[Dict[str, Any]]:
    """Up to n response messages arriving within timeout (other messages skipped)."""
    out: List[Dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            text = client.recv(timeout=left)
        except socket.timeout:
            break
        if isinstance(text, bytes):
            continue
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):  # other clients' garbage reaches us too
            continue
        if isinstance(message, dict) and message.get("type") == "response":
            out.append(message)
    return out


# ---------------------------------------------------------------------------------- serve subprocess


class Serve:
    """``practable-analytics serve`` as a real subprocess (stderr captured to a file)."""

    def __init__(
        self,
        tmp: Path,
        urls: Sequence[str],
        db: Path,
        *extra: str,
        env: Optional[Dict[str, str]] = None,
        launcher: Sequence[str] = ("-m", "practable_analytics.cli"),
    ):
        """``launcher``: what runs the CLI, after the interpreter (wall_clock.py runs it with a wall
        clock the test steps)."""
        self.status_file = tmp / f"status-{len(list(tmp.glob('status-*')))}.json"
        self.stderr_path = tmp / f"serve-{time.monotonic_ns()}.log"
        args = [sys.executable, *launcher, "serve", "--db", str(db)]
        for url in urls:
            args += ["--stream", url]
        args += ["--status-file", str(self.status_file), "--status-interval", "0.1"]
        args += list(extra)
        full_env = dict(os.environ)
        full_env.pop("PYTHONPATH", None)
        full_env.update(env or {})
        self._stderr = open(self.stderr_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._stderr, env=full_env)

    def status(self) -> Dict[str, Any]:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def connected(self, name: str) -> bool:
        return bool(self.status().get("streams", {}).get(name, {}).get("connected"))

    def wait_connected(self, names: Sequence[str], timeout: float = 10.0) -> None:
        ok = wait_for(lambda: all(self.connected(n) for n in names), timeout)
        assert ok, f"not connected: {self.status()} {self.stderr()}"

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10.0) -> Tuple[int, float]:
        """SIGTERM; returns (exit status, seconds until exit)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        t0 = time.monotonic()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # serve dumps its threads' stacks to stderr
            time.sleep(0.5)
            self.kill()
            raise AssertionError(f"serve did not stop within {timeout} s:\n{self.stderr()[-6000:]}") from None
        self._stderr.close()
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if not self._stderr.closed:
            self._stderr.close()


# ---------------------------------------------------------------------------------- frame pusher


class FramePusher:
    """A websocket server on 127.0.0.1 that pushes a fixed list of frames to each client, as fast
    as TCP allows (no lossy hand-off), and records what the client sends back."""

    def __init__(self, frames: Sequence[Tuple[int, bytes]], gap_s: float = 0.0) -> None:
        self.frames = list(frames)
        self.gap_s = gap_s  # > 0: one frame per send, this far apart (traffic that trickles in)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/ws/soak"
        self.pushed = threading.Event()
        self.replies: List[bytes] = []
        self._threads: List[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        conn = relay_standin.accept_websocket(self.sock)
        if conn is None:
            return
        reader = threading.Thread(target=self._drain, args=(conn,), daemon=True)
        reader.start()
        self._threads.append(reader)
        if self.gap_s > 0:
            for opcode, payload in self.frames:
                conn.sendall(relay_standin.encode_frame(opcode, payload, mask=False))
                time.sleep(self.gap_s)
            self.pushed.set()
            return
        out: List[bytes] = []
        size = 0
        for opcode, payload in self.frames:
            frame = relay_standin.encode_frame(opcode, payload, mask=False)
            out.append(frame)
            size += len(frame)
            if size > 256 * 1024:
                conn.sendall(b"".join(out))
                out, size = [], 0
        if out:
            conn.sendall(b"".join(out))
        self.pushed.set()

    def _drain(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.replies.append(data)

    def close(self) -> None:
        self.sock.close()


def iter_chunks(items: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def connect(host: Any, stream: str) -> Any:
    """A lab UI or dashboard client of one stream of the relay stand-in."""
    return relay_standin.WSClient.connect(host.ws_url(f"ws/{stream}"))


def delivered_when_quiet(host: Any, stream: str, others: List[str]) -> int:
    """The stand-in's count of messages delivered to the service, once it stops changing."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 0.5:
        now = int(service_client(host, stream, others)["delivered"])
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(0.05)
    return last
