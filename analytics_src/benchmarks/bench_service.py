"""Service benchmark: `practable-analytics serve` as a real process against real websockets.

Run from analytics_src: ``python benchmarks/bench_service.py [--messages 20000] [--streams 48]
[--trials 100]``. Prints, each with a ratio against the original design (one process per stream
importing pandas/networkx/matplotlib; about 225 us CPU per event, all_feedback p95 87 ms at 1k events,
119 MiB per process, answers sent back to back):

1. ingest: messages/s of one stream through a real websocket (a server pushing frames as fast as TCP
   allows), checked for zero loss in the database, and the service's CPU us per message end to end;
2. all_feedback round trip p50/p95 through the relay stand-in (a separate process) while a lab UI
   sends analytics 1 ms apart, and how many answers arrive complete with 1 ms spacing vs back to back;
3. RSS of one serve process with 1 and with 48 streams;
4. start-to-connected: process start until the relay sees the service's websocket.

Never asserts anything; numbers depend on the machine and its load.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from service_helpers import (  # noqa: E402
    SPINNER_LOGS,
    STANDIN_DIR,
    all_feedback,
    analytics,
    dumps,
    query,
    recv_responses,
    relay_standin,
)

from practable_analytics import responses  # noqa: E402

ORIGINAL_CPU_US_PER_EVENT = 225.0
ORIGINAL_P95_MS_AT_1K = 87.0
ORIGINAL_RSS_MIB = 119.0
BASELINE_IMPORTS = (
    "import websocket, pandas, networkx, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot\n"
)
ALL_FEEDBACK = list(responses.ALL_FEEDBACK)  # the five answers, in the order serve sends them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_cmd(
    db: Path, urls: Sequence[str], status: Path, *extra: str, status_interval: float = 0.05
) -> List[str]:
    cmd = [
        sys.executable,
        "-m",
        "practable_analytics.cli",
        "--log-level",
        "WARNING",
        "serve",
        "--db",
        str(db),
    ]
    for url in urls:
        cmd += ["--stream", url]
    return [*cmd, "--status-file", str(status), "--status-interval", str(status_interval), *extra]


def env(src: Optional[str] = None) -> Dict[str, str]:
    """The environment for serve; ``src`` (default: BENCH_SERVE_SRC=DIR) runs another checkout's
    package, a baseline."""
    e = dict(os.environ)
    e.pop("PYTHONPATH", None)
    src = src or e.get("BENCH_SERVE_SRC")
    if src:
        e["PYTHONPATH"] = src
    return e


def status_of(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def stop(proc: "subprocess.Popen[bytes]") -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Pusher:
    """Websocket server on 127.0.0.1: on `go`, pushes frames to its one client as fast as TCP allows."""

    def __init__(self, frames: Sequence[bytes]) -> None:
        self.frames = frames
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"ws://127.0.0.1:{self.sock.getsockname()[1]}/ws/bench"
        self.connected = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn = relay_standin.accept_websocket(self.sock)
        if conn is None:
            return
        self.connected.set()
        self.go.wait()
        blob = b"".join(relay_standin.encode_frame(0x1, f, mask=False) for f in self.frames)
        view = memoryview(blob)
        for i in range(0, len(blob), 1 << 20):
            conn.sendall(view[i : i + (1 << 20)])
        self.done.set()
        while conn.recv(65536):
            pass


def bench_ingest(tmp: Path, n: int) -> Dict[str, float]:
    frames = [dumps(analytics(1_700_000_000_000 + i, SPINNER_LOGS[i % 6], user=f"u{i % 50}")).encode()
              for i in range(n)]  # fmt: skip
    pusher = Pusher(frames)
    db, status = tmp / "ingest.db", tmp / "ingest.json"
    proc = subprocess.Popen(serve_cmd(db, [pusher.url], status), env=env())
    try:
        pusher.connected.wait(30)
        time.sleep(0.3)  # let the start-up settle before measuring CPU
        ps = psutil.Process(proc.pid)
        cpu0 = sum(ps.cpu_times()[:2])
        t0 = time.monotonic()
        pusher.go.set()
        while status_of(status).get("worker", {}).get("messages", 0) < n:
            time.sleep(0.005)
            if time.monotonic() - t0 > 300:
                break
        elapsed = time.monotonic() - t0
        cpu = sum(ps.cpu_times()[:2]) - cpu0
    finally:
        stop(proc)
    stored = query(db, "SELECT COUNT(*) FROM events")[0][0]
    return {"n": n, "stored": stored, "rate": n / elapsed, "cpu_us": cpu / n * 1e6, "elapsed": elapsed}


class StandinProcess:
    """The relay host stand-in as its own process (so its work does not share our GIL)."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = free_port() if port is None else port
        e = env()
        e["VW_PORT"] = str(self.port)
        self.proc = subprocess.Popen(
            [sys.executable, str(STANDIN_DIR / "relay_standin.py"), "host", "--bind", "127.0.0.1"], env=e
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.02)

    def url(self, stream: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/{stream}"

    def stats(self) -> Dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/standin/stats", timeout=2) as r:
            data = json.loads(r.read())
        return data.get("streams", data) if isinstance(data, dict) else {}

    def clients(self, stream: str) -> int:
        try:
            entry = self.stats().get(stream, {})
        except OSError:
            return 0
        return sum(1 for c in entry.get("clients", {}).values() if c.get("connected"))

    def stop(self) -> None:
        stop(self.proc)


def bench_round_trip(
    tmp: Path, standin: StandinProcess, trials: int, spacing_ms: float, same_stream: bool
) -> Dict[str, float]:
    """all_feedback round trips on stream `q` while a lab UI sends analytics 1 ms apart on stream
    `load` (same_stream: on `q` itself, where the relay's hand-off also drops answers)."""
    tag = f"{int(spacing_ms * 1000)}{'s' if same_stream else 'o'}"
    q, load = f"q{tag}", (f"q{tag}" if same_stream else f"load{tag}")
    db, status = tmp / f"rt{tag}.db", tmp / f"rt{tag}.json"
    urls = [standin.url(q)] + ([] if same_stream else [standin.url(load)])
    proc = subprocess.Popen(serve_cmd(db, urls, status, "--send-spacing-ms", str(spacing_ms)), env=env())
    try:
        while not all(v.get("connected") for v in status_of(status).get("streams", {"x": {}}).values()):
            time.sleep(0.01)
        ui = relay_standin.WSClient.connect(standin.url(q))
        loader = ui if same_stream else relay_standin.WSClient.connect(standin.url(load))
        dash = relay_standin.WSClient.connect(standin.url(q))
        t = 1_700_000_000_000
        for i in range(1000):  # a 1k-event history, as in the original's 87 ms figure
            t += 1
            ui.send_text(dumps(analytics(t, SPINNER_LOGS[i % 6])))
            time.sleep(0.001)
        busy = threading.Event()
        busy.set()

        def produce() -> None:
            nonlocal t
            while busy.is_set():
                t += 1
                loader.send_text(dumps(analytics(t, SPINNER_LOGS[t % 6], user="other")))
                time.sleep(0.001)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        times: List[float] = []
        complete = 0
        for k in range(trials):
            t0 = time.perf_counter()
            dash.send_text(dumps(all_feedback(t=k)))
            got = recv_responses(dash, 5, 1.0)
            if [g["content"] for g in got] == ALL_FEEDBACK:
                complete += 1
                times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)
        busy.clear()
        producer.join(2)
        streams = status_of(status).get("streams", {})
        received = streams.get(load, {}).get("messages_received", 0)
        inside = streams.get(q, {}).get("answer_latency_ms", {})
    finally:
        stop(proc)
    times.sort()
    p = (lambda q: times[min(len(times) - 1, int(q * len(times)))]) if times else (lambda q: float("nan"))
    return {
        "p50": p(0.5),
        "p95": p(0.95),
        "complete": complete / trials,
        "load_received": received,
        "inside_p50": inside.get("p50") or float("nan"),
        "inside_p95": inside.get("p95") or float("nan"),
    }


def bench_rss(tmp: Path, standin: StandinProcess, streams: int) -> float:
    names = [f"rss{streams}-{i:02d}" for i in range(streams)]
    db, status = tmp / f"rss{streams}.db", tmp / f"rss{streams}.json"
    proc = subprocess.Popen(serve_cmd(db, [standin.url(n) for n in names], status), env=env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = status_of(status).get("streams", {})
            if len(st) == streams and all(v.get("connected") for v in st.values()):
                break
            time.sleep(0.05)
        for name in names:  # page in the answering path on every stream
            dash = relay_standin.WSClient.connect(standin.url(name))
            for i in range(20):
                dash.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6])))
                time.sleep(0.001)
            dash.send_text(dumps(all_feedback()))
            recv_responses(dash, 5, 1.0)
            dash.close()
        time.sleep(0.5)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        stop(proc)
    return rss


def bench_start(tmp: Path, standin: StandinProcess, runs: int) -> float:
    out = []
    for i in range(runs):
        stream = f"start{i}"
        t0 = time.monotonic()
        proc = subprocess.Popen(
            serve_cmd(tmp / "start.db", [standin.url(stream)], tmp / f"s{i}.json"), env=env()
        )
        try:
            while standin.clients(stream) == 0 and time.monotonic() - t0 < 30:
                time.sleep(0.005)
            out.append(time.monotonic() - t0)
        finally:
            stop(proc)
    return statistics.median(out)


def baseline_import_s() -> Optional[float]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", BASELINE_IMPORTS], capture_output=True, env=env(), check=False)
    return time.monotonic() - t0 if r.returncode == 0 else None


def line(label: str, figure: str, ratio: str = "") -> None:
    print(f"{label:<58} {figure:<34} {ratio}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--streams", type=int, default=48)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args(argv)
    orig_rate = 1e6 / ORIGINAL_CPU_US_PER_EVENT
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        ing = bench_ingest(tmp, args.messages)
        loss = "zero loss" if ing["stored"] == ing["n"] else f"LOST {ing['n'] - ing['stored']}"
        line(
            "ingest, 1 stream, real websocket",
            f"{ing['rate']:.0f} msg/s ({loss}, {ing['stored']}/{ing['n']})",
            f"{ing['rate'] / orig_rate:.1f}x the original's CPU-bound {orig_rate:.0f} msg/s",
        )
        line(
            "CPU per message end to end (serve process)",
            f"{ing['cpu_us']:.1f} us",
            f"{ORIGINAL_CPU_US_PER_EVENT / ing['cpu_us']:.1f}x less than {ORIGINAL_CPU_US_PER_EVENT:.0f} us",
        )
        standin = StandinProcess()
        try:
            for same in (False, True):
                rt = bench_round_trip(tmp, standin, args.trials, 1.0, same)
                where = "same stream" if same else "another stream"
                line(
                    f"all_feedback round trip via stand-in, load on {where}",
                    f"p50 {rt['p50']:.1f} ms  p95 {rt['p95']:.1f} ms",
                    f"p95 {ORIGINAL_P95_MS_AT_1K / rt['p95']:.1f}x better than {ORIGINAL_P95_MS_AT_1K:.0f};"
                    f" complete {rt['complete'] * 100:.0f}%",
                )
                line(
                    "  of which inside serve (request read -> 5th answer sent)",
                    f"p50 {rt['inside_p50']:.1f} ms  p95 {rt['inside_p95']:.1f} ms",
                    f"p95 {ORIGINAL_P95_MS_AT_1K / rt['inside_p95']:.1f}x better",
                )
            rt0 = bench_round_trip(tmp, standin, 20, 0.0, False)
            line("all_feedback complete, answers back to back (original)", f"{rt0['complete'] * 100:.0f}%",
                 "vs 1 ms spacing above")  # fmt: skip
            rss1 = bench_rss(tmp, standin, 1)
            rss_n = bench_rss(tmp, standin, args.streams)
            line(
                "RSS, 1 stream",
                f"{rss1:.1f} MiB",
                f"{ORIGINAL_RSS_MIB / rss1:.1f}x less than {ORIGINAL_RSS_MIB:.0f}",
            )
            total = args.streams * ORIGINAL_RSS_MIB
            many = f"{total / rss_n:.0f}x less than {args.streams} x {ORIGINAL_RSS_MIB:.0f} MiB processes"
            line(f"RSS, {args.streams} streams in one process", f"{rss_n:.1f} MiB", many)
            start = bench_start(tmp, standin, 5)
            base = baseline_import_s()
            ratio = (
                f"{base / start:.1f}x faster than the original's imports alone ({base:.2f} s)" if base else ""
            )
            line("start to connected (median of 5)", f"{start:.2f} s", ratio)
        finally:
            standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
