"""Scale benchmark: one `practable-analytics serve` process holding many streams (issue 9).

Run from analytics_src: ``python benchmarks/bench_scale.py [--streams 500] [--seconds 30]``.

The relay host stand-in runs as its own process; one simulated lab UI per stream (all driven from
one selector loop here) sends an analytics message every 0.5 s and an ``all_feedback`` request every
10 s, the streams' schedules spread evenly. Prints:

- startup: process start until the relay sees every stream's websocket;
- RSS of the serve process (peak sampled), CPU % of one core over the steady part of the run;
- all_feedback round trip p50/p95 at the client (request sent until its fifth message arrived);
- lost: messages sent minus rows stored, and how many of those the relay itself dropped;
- reconnect spread: the stand-in killed and restarted on the same port; the time until each stream
  is connected again (min / median / max) and the serve process's connect attempts meanwhile.

Targets from issue 9: RSS <= 150 MiB, CPU <= 15 % of one core, answer p95 <= 20 ms, 0 lost, startup
<= 5 s, reconnects spread out. Never asserts anything; numbers depend on the machine and its load.
"""

import argparse
import heapq
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_service import StandinProcess, env, serve_cmd, status_of, stop  # noqa: E402
from service_helpers import SPINNER_LOGS, all_feedback, analytics, dumps, query, relay_standin  # noqa: E402

from practable_analytics.service.frames import OP_TEXT, FrameParser  # noqa: E402
from practable_analytics.service.loop import raise_nofile_limit  # noqa: E402


def pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def service_connected(standin: StandinProcess, names: List[str], mine: set) -> Dict[str, bool]:
    try:
        stats = standin.stats()
    except OSError:
        return {}
    out = {}
    for n in names:
        clients = stats.get(n, {}).get("clients", {})
        out[n] = any(c.get("connected") for k, c in clients.items() if k.split("#")[0] not in mine)
    return out


def service_counts(standin: StandinProcess, names: List[str], mine: set) -> Tuple[int, int]:
    stats = standin.stats()
    delivered = dropped = 0
    for n in names:
        for k, c in stats.get(n, {}).get("clients", {}).items():
            if k.split("#")[0] not in mine:
                delivered += int(c.get("delivered", 0))
                dropped += int(c.get("dropped", 0))
    return delivered, dropped


class Students:
    """One UI client per stream, all on one selector: scheduled sends, answer timing."""

    def __init__(self, standin: StandinProcess, names: List[str]) -> None:
        self.names = names
        self.clients = [relay_standin.WSClient.connect(standin.url(n), timeout=30) for n in names]
        self.sel = selectors.DefaultSelector()
        self.parsers = [FrameParser(1 << 24) for _ in names]
        for i, c in enumerate(self.clients):
            self.sel.register(c.conn.sock, selectors.EVENT_READ, i)
        self.asked: List[Optional[float]] = [None] * len(names)
        self.got = [0] * len(names)
        self.latencies_ms: List[float] = []
        self.incomplete = 0
        self.sent = 0

    def local_names(self) -> set:
        return {c.local_name for c in self.clients}

    def run(self, seconds: float, rate_s: float = 0.5, ask_every_s: float = 10.0) -> None:
        n = len(self.names)
        start = time.monotonic() + 0.2
        heap: List[Tuple[float, int, str]] = []
        for i in range(n):
            heapq.heappush(heap, (start + rate_s * i / n, i, "event"))
            heapq.heappush(heap, (start + 1.0 + ask_every_s * i / n, i, "ask"))
        end = start + seconds
        t_counter = [1_700_000_000_000] * n
        while True:
            now = time.monotonic()
            if heap[0][0] > end and now > end + 2.0:
                break
            while heap and heap[0][0] <= now:
                when, i, kind = heapq.heappop(heap)
                if when > end:
                    continue
                sock = self.clients[i].conn.sock
                if kind == "event":
                    t_counter[i] += 500
                    message = analytics(t_counter[i], SPINNER_LOGS[(t_counter[i] // 500) % 6], user=f"s{i}")
                    heapq.heappush(heap, (when + rate_s, i, "event"))
                    self.sent += 1
                else:
                    if self.asked[i] is not None:
                        self.incomplete += 1
                    message = all_feedback(user=f"s{i}")
                    self.asked[i] = time.monotonic()
                    self.got[i] = 0
                    heapq.heappush(heap, (when + ask_every_s, i, "ask"))
                sock.sendall(relay_standin.encode_frame(OP_TEXT, dumps(message).encode(), mask=True))
            timeout = max(0.0, min(heap[0][0], end + 2.0) - time.monotonic()) if heap else 0.05
            for key, _ in self.sel.select(timeout):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    continue
                for opcode, payload in self.parsers[i].feed(data):
                    if opcode != OP_TEXT or self.asked[i] is None:
                        continue
                    try:
                        message = json.loads(payload)
                    except ValueError:
                        continue
                    if isinstance(message, dict) and message.get("type") == "response":
                        self.got[i] += 1
                        if self.got[i] == 5:
                            self.latencies_ms.append((time.monotonic() - self.asked[i]) * 1000)  # type: ignore[operator]
                            self.asked[i] = None

    def close(self) -> None:
        for c in self.clients:
            try:
                c.close()
            except OSError:
                pass


def failed_attempts(status: Path) -> int:
    streams = status_of(status).get("streams", {}).values()
    return sum(int(s.get("errors", {}).get("connect_failed", 0)) for s in streams)


def cpu_s(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return float(t.user + t.system)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    raise_nofile_limit(4 * args.streams + 256)
    names = [f"dev{i:03d}" for i in range(args.streams)]
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        standin = StandinProcess()
        db, status = tmp / "scale.db", tmp / "scale.json"
        cmd = serve_cmd(db, [], status, status_interval=1.0)
        e = env()
        e["PRACTABLE_ANALYTICS_STREAMS"] = " ".join(standin.url(n) for n in names)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=e)
        students: Optional[Students] = None
        try:
            up: Dict[str, bool] = {}
            while time.monotonic() - t0 < 120:
                up = service_connected(standin, names, set())
                if sum(up.values()) == len(names):
                    break
                time.sleep(0.05)
            startup = time.monotonic() - t0
            print(
                f"startup: all {sum(up.values())}/{len(names)} streams connected {startup:.2f} s after start"
            )
            students = Students(standin, names)
            ps = psutil.Process(proc.pid)
            time.sleep(0.5)
            # warm-up: 3 s of traffic, then the measured run
            students.run(3.0)
            warm_sent = students.sent
            students.latencies_ms.clear()
            cpu0, w0 = cpu_s(ps), time.monotonic()
            rss_peak = 0.0
            students.run(args.seconds)
            cpu = cpu_s(ps) - cpu0
            wall = time.monotonic() - w0
            rss_peak = max(rss_peak, ps.memory_info().rss / 2**20)
            mine = students.local_names()
            settle = time.monotonic() + 20
            last = (-1, -1)
            while time.monotonic() < settle:
                counts = service_counts(standin, names, mine)
                stored = query(db, "SELECT COUNT(*) FROM events")[0][0]
                if counts == last and stored == counts[0]:
                    break
                last = counts
                time.sleep(0.3)
            delivered, dropped = service_counts(standin, names, mine)
            stored = query(db, "SELECT COUNT(*) FROM events")[0][0]
            requests = len(students.latencies_ms) + students.incomplete
            print(f"messages: {students.sent} events sent ({warm_sent} in the warm-up) plus requests; "
                  f"relay delivered {delivered} to serve, dropped {dropped}; stored {stored}")  # fmt: skip
            print(f"lost inside serve (delivered - stored): {delivered - stored}")
            print(f"RSS: {rss_peak:.1f} MiB   CPU: {100 * cpu / wall:.1f} % of one core over {wall:.1f} s "
                  f"({students.sent / max(wall, 1e-9):.0f} msg/s in)")  # fmt: skip
            print(f"all_feedback round trip at the client: p50 {pct(students.latencies_ms, 0.5):.1f} ms  "
                  f"p95 {pct(students.latencies_ms, 0.95):.1f} ms  ({len(students.latencies_ms)} complete, "
                  f"{students.incomplete} incomplete of {requests})")  # fmt: skip
            inside = [
                s.get("answer_latency_ms", {}).get("p95")
                for s in status_of(status).get("streams", {}).values()
            ]
            inside_ok = [v for v in inside if isinstance(v, (int, float))]
            if inside_ok:
                print(f"answer latency inside serve: worst stream p95 {max(inside_ok):.1f} ms, "
                      f"median stream p95 {pct(inside_ok, 0.5):.1f} ms")  # fmt: skip
            doc = status_of(status)
            w, q = doc.get("worker", {}), doc.get("queue", {})
            print(f"worker: {w.get('messages')} messages in {w.get('batches')} batches, worst commit latency "
                  f"{w.get('max_commit_latency_ms')} ms, errors {w.get('errors')}; inbox high-water "
                  f"{q.get('high_water')}")  # fmt: skip
            to_students = [
                c
                for n in names
                for k, c in standin.stats().get(n, {}).get("clients", {}).items()
                if k.split("#")[0] in mine
            ]
            answers_sent = sum(int(s.get("answers_sent", 0)) for s in doc.get("streams", {}).values())
            print(f"answers: serve sent {answers_sent} complete answers; the relay dropped "
                  f"{sum(int(c.get('dropped', 0)) for c in to_students)} of the messages toward the UIs "
                  "(an answer missing one of its five is 'incomplete' above)")  # fmt: skip
            students.close()
            # relay restart: kill the stand-in, start it again on the same port
            port = standin.port
            attempts0 = sum(
                s.get("errors", {}).get("connect_failed", 0)
                for s in status_of(status).get("streams", {}).values()
            )
            standin.proc.send_signal(signal.SIGKILL)
            standin.proc.wait()
            time.sleep(2.0)
            standin = StandinProcess(port=port)
            back = time.monotonic()
            seen: Dict[str, float] = {}
            cpu0 = cpu_s(ps)
            while len(seen) < len(names) and time.monotonic() - back < 30:
                for n, ok in service_connected(standin, names, set()).items():
                    if ok and n not in seen:
                        seen[n] = time.monotonic() - back
                time.sleep(0.02)
            cpu_reconnect = cpu_s(ps) - cpu0
            spread = sorted(seen.values())
            time.sleep(1.1)
            attempts = sum(
                s.get("errors", {}).get("connect_failed", 0)
                for s in status_of(status).get("streams", {}).values()
            )
            print(f"reconnect after a relay restart (2 s down): {len(seen)}/{len(names)} back; first "
                  f"{pct(spread, 0.0):.2f} s, median {pct(spread, 0.5):.2f} s, "
                  f"p95 {pct(spread, 0.95):.2f} s, "
                  f"last {spread[-1] if spread else float('nan'):.2f} s after the relay was back; "
                  f"{attempts - attempts0} failed attempts during the outage; serve CPU "
                  f"{cpu_reconnect:.2f} s while reconnecting")  # fmt: skip
            threads = ps.num_threads()
            print(f"serve threads: {threads}")
        finally:
            if students is not None:
                students.close()
            stop(proc)
            standin.stop()
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
