"""Engine + store benchmark: ingest rate, CPU per event, request latency vs history, serving RSS.

Run: ``python benchmarks/bench_engine.py [--events 20000] [--history 100000] [--baseline-src DIR]``
(from analytics_src). Prints figures and ratios against the original design (pandas/networkx per
request: about 225 us CPU per event in a single process, all_feedback p95 87 ms at 1k events; issue 9's
host figures: 180.6 us per message with 4 processes on one file, 120.6 MiB per stream process); never
asserts anything about time. Everything runs on a real SQLite file in a temporary directory.

The processing path on a host (section "4 processes"): 4 processes, one stream each, on ONE database
file, each running the service's real Inbox -> Worker -> Handler -> Store with a feeder thread that
puts one frame every ``--gap-ms`` (the relay's pace), 2 students per stream and an all_feedback every
50 messages; CPU is every thread of the process (``time.process_time``) minus the feeder thread's own,
from the first frame until everything is stored. ``--baseline-src DIR`` (a ``src`` directory of another
version, e.g. ``git archive <commit> analytics_src | tar -x -C /tmp/base``) runs the same children from
that tree, alternately with this one, so old and new are compared in the same run on the same load.
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.messages import parse_message
from practable_analytics.store import Store

ORIGINAL_CPU_US_PER_EVENT = 225.0
ORIGINAL_P95_MS_AT_1K = 87.0
ORIGINAL_RSS_MIB = 119.0
ORIGINAL_HOST_US_PER_MESSAGE = 180.6  # issue 9: 4 processes on one file, every thread
ORIGINAL_STREAM_RSS_MIB = 120.6  # issue 9: one stream process
BATCH = 100
SPINNER_LOGS = ("voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp")

SERVING_IMPORTS = (
    "import sys\n"
    "from practable_analytics import cli\n"
    "cli.build_parser()\n"
    "import practable_analytics.commands.serve, practable_analytics.service.runner\n"
    "import practable_analytics.service.processing, practable_analytics.experiments\n"
    "import websocket\n"
    "practable_analytics.experiments.Registry.load()\n"
    "print('numpy' in sys.modules)\n"
)
BASELINE_IMPORTS = "import pandas, networkx, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot\n"


def messages(
    n: int, users: int, seed: int, t0: int = 1_673_351_988_000, mixed: bool = False
) -> List[Dict[str, Any]]:
    """Analytics messages from 12 spinners, ~1% arriving slightly late.

    Realistic (default): each device has one student at a time, who hands over to another student
    after ~200 events; the devices' messages interleave. ``mixed``: every message from a random
    student of ``users`` (a worst case for the store: every batch touches ~100 students).
    """
    rnd = random.Random(seed)
    current = [rnd.randrange(users) for _ in range(12)]
    out = []
    for i in range(n):
        device = rnd.randrange(12)
        if mixed:
            current[device] = rnd.randrange(users)
        elif rnd.random() < 1 / 200:
            current[device] = rnd.randrange(users)
        user = f"{current[device]:08x}-e689-48d4-9231-c2fbd23df009"
        t = t0 + i * 37 - (rnd.randint(1, 2000) if rnd.random() < 0.01 else 0)
        log = rnd.choice(SPINNER_LOGS)
        data = {"set": round(rnd.uniform(0, 10), 2), "kp": 1, "ki": 0, "kd": 0}
        out.append({"user": user, "t": t, "exp": "spinner", "hardware": f"spin{30 + device}",
                    "course": "engdes1", "type": "analytics",
                    "payload": {"log": log, "data": data}})  # fmt: skip
    return out


def ingest(handler: Handler, msgs: List[Dict[str, Any]], as_text: bool) -> Tuple[float, float]:
    """(wall seconds, CPU seconds) to handle ``msgs`` in batches of BATCH."""
    texts = [json.dumps(m) for m in msgs] if as_text else []
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(msgs), BATCH):
        if as_text:
            handler.handle_texts(texts[i : i + BATCH], stream="spin30")
        else:
            handler.handle_many(msgs[i : i + BATCH], stream="spin30")
    return time.perf_counter() - wall, time.process_time() - cpu


def latency_ms(handler: Handler, user: str, repeats: int) -> Tuple[float, float]:
    """p50 and p95 of an all_feedback request (five answers) for ``user``, in ms."""
    req = {"user": user, "t": 1, "exp": "spinner", "course": "engdes1", "type": "request",
           "payload": {"content": "all_feedback", "graph": "spinner-engdes1-all"}}  # fmt: skip
    assert len(handler.handle(req)) == 5
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        handler.handle(req)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


CHILD = r"""
import json, os, sys, threading, time
from practable_analytics.experiments import Registry
from practable_analytics.service.frames import OP_TEXT
from practable_analytics.service.inbox import Inbox, received_now
from practable_analytics.service.processing import HandlerProcessor
from practable_analytics.service.stats import StreamStats, WorkerStats
from practable_analytics.service.worker import Worker

db, stream = sys.argv[1], sys.argv[2]
n, gap, start_at, every = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
logs = ("voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp")

class Null:
    def __init__(self):
        self.answers = 0
    def submit(self, messages, received):
        self.answers += 1

sender = Null()
inbox = Inbox(1)
worker = Worker(inbox=inbox, make_processor=lambda: HandlerProcessor(db, Registry.load()),
                names=[stream], senders=[sender], stream_stats=[StreamStats(stream, "ws://h/ws/" + stream)],
                stats=WorkerStats())
worker.start()
worker.ready.wait()
frames = []
for i in range(n):
    user = "%s-%d-e689-48d4-9231-c2fbd23df009" % (stream, i % 2)
    frames.append(json.dumps({"user": user, "t": 1673351988000 + 37 * i, "exp": "spinner", "hardware": stream,
                              "course": "engdes1", "type": "analytics",
                              "payload": {"log": logs[i % 6], "data": {"set": i % 10, "kp": 1}}}).encode())
    if every and i % every == every - 1:
        frames.append(json.dumps({"user": user, "t": 1, "exp": "spinner", "course": "engdes1",
                                  "type": "request", "payload": {"content": "all_feedback"}}).encode())
time.sleep(max(0.0, start_at - time.time()))
feeder_cpu = [0.0]

def feed():
    c = time.thread_time()
    for data in frames:
        inbox.put_nowait_many([received_now(0, OP_TEXT, data)])
        time.sleep(gap)
    feeder_cpu[0] = time.thread_time() - c

cpu0 = time.process_time()
feeder = threading.Thread(target=feed)
feeder.start()
feeder.join()
while worker.stats.messages < len(frames):
    time.sleep(0.002)
cpu = time.process_time() - cpu0 - feeder_cpu[0]
inbox.close()
worker.join(10)
rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")][0]
print(json.dumps({"cpu_s": cpu, "messages": len(frames), "commits": worker.stats.batches,
                  "answers": sender.answers, "rss_kib": rss, "numpy": "numpy" in sys.modules}))
"""


def host_run(src: Optional[str], procs: int, n: int, gap_s: float, every: int) -> Dict[str, float]:
    """One run of ``procs`` processes on one fresh database (code from ``src``, or this tree)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    else:
        env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "host.db")
        Store(db).close()  # created and migrated once, before the processes race for it
        start_at = time.time() + 1.5  # every child has imported and opened the file by then
        argv = [str(n), str(gap_s), str(start_at), str(every)]
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, db, f"spin{30 + k}", *argv],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for k in range(procs)
        ]
        outs = [json.loads(c.communicate(timeout=600)[0].strip().splitlines()[-1]) for c in children]
    messages = sum(o["messages"] for o in outs)
    return {
        "us_per_message": sum(o["cpu_s"] for o in outs) / messages * 1e6,
        "commits_per_process": statistics.mean(o["commits"] for o in outs),
        "rss_mib": statistics.median(o["rss_kib"] for o in outs) / 1024.0,
        "numpy": float(any(o["numpy"] for o in outs)),
    }


def host_section(
    baseline: Optional[str], procs: int, n: int, gap_ms: float, *, runs: int, every: int
) -> None:
    trees = [("this tree", None)] + ([("baseline", baseline)] if baseline else [])
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name, _ in trees}
    for _ in range(runs):
        for name, src in trees:  # alternately: old and new see the same machine load
            results[name].append(host_run(src, procs, n, gap_ms / 1000.0, every))
    asks = f" plus an all_feedback every {every}" if every else " (no requests)"
    print(f"Processing path on a host: {procs} processes (one stream each) on one database file,")
    print(f"{n} analytics frames per stream, one every {gap_ms:g} ms{asks}; CPU of every thread")
    print(f"but the feeder's per frame, median of {runs} runs alternating old/new:")
    medians = {}
    for name, rs in results.items():
        us = statistics.median(r["us_per_message"] for r in rs)
        medians[name] = us
        commits = statistics.median(r["commits_per_process"] for r in rs)
        rss = statistics.median(r["rss_mib"] for r in rs)
        print(f"  {name:10s} {us:6.1f} us CPU/message (original {ORIGINAL_HOST_US_PER_MESSAGE} us:"
              f" x{ORIGINAL_HOST_US_PER_MESSAGE / us:.1f} less)  {commits:6.0f} commits/process"
              f"  RSS {rss:5.1f} MiB  numpy loaded: {bool(rs[0]['numpy'])}")  # fmt: skip
    if baseline:
        print(f"  this tree / baseline: x{medians['this tree'] / medians['baseline']:.2f} CPU")


def peak_rss_mib(code: str, src: Optional[str] = None) -> float:
    """Peak RSS of a fresh interpreter that runs ``code``.

    Read from /proc/self/status VmHWM (the peak of this process image). ru_maxrss cannot be used
    here: Linux carries the parent's peak over fork+exec, so a child of this (large) benchmark
    process would report the parent's figure.
    """
    probe = code + (
        "import re\nprint(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if src is not None:
        env["PYTHONPATH"] = src
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="events for the ingest measurement")
    parser.add_argument(
        "--history", type=int, default=100000, help="one student's events for the latency test"
    )
    parser.add_argument("--repeats", type=int, default=500, help="requests per latency measurement")
    parser.add_argument("--baseline-src", default=None, help="src directory of a version to compare with")
    parser.add_argument("--procs", type=int, default=4, help="processes sharing one file (host section)")
    parser.add_argument("--host-messages", type=int, default=1000, help="frames per process (host section)")
    parser.add_argument("--gap-ms", type=float, default=0.2, help="feeder pause between frames, ms")
    parser.add_argument("--runs", type=int, default=3, help="runs of the host section (median)")
    parser.add_argument(
        "--request-every", type=int, default=0, help="an all_feedback after every N frames (0: ingest only)"
    )
    parser.add_argument("--only-host", action="store_true", help="only the host and memory sections")
    args = parser.parse_args()
    print(os.popen("uptime").read().strip())
    host_section(
        args.baseline_src,
        args.procs,
        args.host_messages,
        args.gap_ms,
        runs=args.runs,
        every=args.request_every,
    )
    memory_section(args.baseline_src)
    if args.only_host:
        return 0
    registry = Registry.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scenarios = [
            ("FULL", False, False),
            ("FULL", True, False),
            ("NORMAL", True, False),
            ("FULL", True, True),
        ]
        for sync, as_text, mixed in scenarios:
            path = Path(tmp) / f"ingest-{sync}-{as_text}-{mixed}.db"
            store = Store(path, synchronous=sync)
            handler = Handler(store, registry)
            msgs = messages(args.events, users=300, seed=1, mixed=mixed)
            wall, cpu = ingest(handler, msgs, as_text)
            assert store.count_events() == len(msgs)
            store.close()
            kind = "text frames" if as_text else "decoded dicts"
            kind += ", random students" if mixed else ""
            rows.append((sync, kind, len(msgs) / wall, cpu / len(msgs) * 1e6))
        print(f"Ingest through the Handler, {args.events} analytics events of 300 students on 12 devices,")
        print(f"batches of {BATCH}, WAL (wall-clock rate on a shared machine; CPU is this process only):")
        for sync, kind, rate, cpu_us in rows:
            print(f"  synchronous={sync:6s} {kind:32s} {rate:8.0f} events/s  {cpu_us:6.1f} us CPU/event"
                  f"  ({ORIGINAL_CPU_US_PER_EVENT / cpu_us:.1f}x less CPU than the original)")  # fmt: skip

        # The store alone: add_events of already validated events (insert + transition upserts).
        events = [parse_message(m, registry, "spin30").event for m in messages(args.events, 300, seed=1)]
        store = Store(Path(tmp) / "store-only.db")
        cpu = time.process_time()
        for i in range(0, len(events), BATCH):
            store.add_events(events[i : i + BATCH])  # type: ignore[arg-type]
        cpu = time.process_time() - cpu
        store.close()
        print(f"  store alone (add_events, FULL): {cpu / len(events) * 1e6:.1f} us CPU/event")

        # Request latency against one student's history: 1k events, then 100k (same student).
        path = Path(tmp) / "latency.db"
        store = Store(path)
        handler = Handler(store, registry)
        student = messages(args.history, users=1, seed=2)
        user = student[0]["user"]
        others = messages(args.history // 10, users=500, seed=3)
        ingest(handler, student[:1000], as_text=False)
        p50_1k, p95_1k = latency_ms(handler, user, args.repeats)
        ingest(handler, student[1000:], as_text=False)
        ingest(handler, others, as_text=False)
        p50_big, p95_big = latency_ms(handler, user, args.repeats)
        total = store.count_events()
        store.close()
        print(f"all_feedback (five answers) for one student, {args.repeats} requests:")
        print(f"  history 1,000 events:   p50 {p50_1k:6.2f} ms  p95 {p95_1k:6.2f} ms"
              f"  (original p95 {ORIGINAL_P95_MS_AT_1K:.0f} ms:"
              f" {ORIGINAL_P95_MS_AT_1K / p95_1k:.0f}x faster)")  # fmt: skip
        print(f"  history {args.history:,} events ({total:,} in the file): p50 {p50_big:6.2f} ms"
              f"  p95 {p95_big:6.2f} ms  (ratio to 1k: {p95_big / p95_1k:.2f})")  # fmt: skip

    this = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"(this benchmark process, ru_maxrss: {this:.1f} MiB)")
    print(os.popen("uptime").read().strip())
    return 0


def memory_section(baseline_src: Optional[str]) -> None:
    """Peak RSS of a fresh interpreter that imports what ``serve`` imports and loads the registry."""
    serving = peak_rss_mib(SERVING_IMPORTS)
    original = peak_rss_mib(BASELINE_IMPORTS)
    print("Peak RSS of a fresh process (VmHWM):")
    print(f"  serve's imports (cli, serve, service, engine, websocket) + registry: {serving:6.1f} MiB"
          f"  (target <= 30; original design {ORIGINAL_STREAM_RSS_MIB} MiB:"
          f" {ORIGINAL_STREAM_RSS_MIB / serving:.1f}x less)")  # fmt: skip
    if baseline_src:
        old = peak_rss_mib(SERVING_IMPORTS, baseline_src)
        print(f"  the same with the baseline's code:                               {old:6.1f} MiB"
              f"  (this tree x{old / serving:.2f} less)")  # fmt: skip
    print(f"  pandas + networkx + matplotlib imports only (original stack):    {original:6.1f} MiB"
          f"  (ratio to serving {original / serving:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
