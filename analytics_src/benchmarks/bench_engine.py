"""Engine + store benchmark: ingest rate, CPU per event, request latency vs history, serving RSS.

Run: ``python benchmarks/bench_engine.py [--events 20000] [--history 100000]`` (from analytics_src).
Prints figures and ratios against the original design (pandas/networkx per request: about 225 us
CPU per event, all_feedback p95 87 ms at 1k events, 119 MiB); never asserts anything about time.
Everything runs on a real SQLite file in a temporary directory.
"""

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.messages import parse_message
from practable_analytics.store import Store

ORIGINAL_CPU_US_PER_EVENT = 225.0
ORIGINAL_P95_MS_AT_1K = 87.0
ORIGINAL_RSS_MIB = 119.0
BATCH = 100
SPINNER_LOGS = ("voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp")

SERVING_IMPORTS = (
    "import practable_analytics.handler, practable_analytics.store, practable_analytics.experiments\n"
    "import websocket\n"
    "practable_analytics.experiments.Registry.load()\n"
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


def peak_rss_mib(code: str) -> float:
    """Peak RSS of a fresh interpreter that runs ``code``.

    Read from /proc/self/status VmHWM (the peak of this process image). ru_maxrss cannot be used
    here: Linux carries the parent's peak over fork+exec, so a child of this (large) benchmark
    process would report the parent's figure.
    """
    probe = code + (
        "import re\nprint(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000, help="events for the ingest measurement")
    parser.add_argument(
        "--history", type=int, default=100000, help="one student's events for the latency test"
    )
    parser.add_argument("--repeats", type=int, default=500, help="requests per latency measurement")
    args = parser.parse_args()
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

    serving = peak_rss_mib(SERVING_IMPORTS)
    baseline = peak_rss_mib(BASELINE_IMPORTS)
    print("Peak RSS of a fresh process (VmHWM):")
    print(f"  serving imports (handler, store, experiments, websocket) + registry: {serving:6.1f} MiB"
          f"  (target <= 40; original design {ORIGINAL_RSS_MIB:.0f} MiB:"
          f" {ORIGINAL_RSS_MIB / serving:.1f}x less)")  # fmt: skip
    print(f"  pandas + networkx + matplotlib imports only (original stack):    {baseline:6.1f} MiB"
          f"  (ratio to serving {baseline / serving:.1f}x)")  # fmt: skip
    this = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"  (this benchmark process, ru_maxrss: {this:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
