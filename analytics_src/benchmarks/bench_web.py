"""Class view benchmark: the course page and its API for 200 students with 100k events in total.

Run: ``python benchmarks/bench_web.py [--students 200] [--events 100000] [--repeats 100]`` (from
analytics_src). Prints p50/p95 in ms and ratios against a baseline measured in the same run (the
dashboard path: ``task_identification`` + ``indicators`` through the Handler for every student of the
course); never asserts anything about time. Everything runs on a real SQLite file; pages are fetched
over HTTP from a real ``practable-analytics web`` process (waitress) on loopback.

Three cases: **cold** (a fresh process: every student's numbers computed), **warm** (no new event since
the last refresh: cached numbers, one aggregate query), **live** (10 students got a new event since the
last refresh: those 10 recomputed), which is what a class in progress costs per refresh.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.store import Store

SPINNER_LOGS = ("voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp")
STATES = ("Engaged", "Curious", "Confused", "Bored")


def class_events(students: int, events: int, now_ms: int, seed: int = 7) -> List[Dict[str, Any]]:
    """A class session: each student's events spread over the last 2.5 h, a few feedback reports."""
    rnd = random.Random(seed)
    out: List[Dict[str, Any]] = []
    per = events // students
    for s in range(students):
        user = f"{s:08x}-bench-student"
        t = now_ms - 9_000_000 + rnd.randrange(600_000)
        for i in range(per):
            t += rnd.randrange(1000, 17_000)
            if i % 100 == 99:
                out.append({"user": user, "t": t, "exp": "spinner", "course": "engdes1", "type": "feedback",
                            "payload": {"state": rnd.choice(STATES), "subject": "Hardware"}})  # fmt: skip
            else:
                out.append({"user": user, "t": t, "exp": "spinner", "course": "engdes1", "hardware": "spin30",
                            "type": "analytics", "payload": {"log": rnd.choice(SPINNER_LOGS)}})  # fmt: skip
    out.sort(key=lambda m: m["t"])
    return out


def pct(samples: List[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any], repeats: int, between: Callable[[], None] = lambda: None) -> List[float]:
    out = []
    for _ in range(repeats):
        between()
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def start_server(db: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "practable_analytics.cli", "--log-level", "WARNING", "web", "--db", str(db),
         "--listen", f"127.0.0.1:{port}"],
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get(f"http://127.0.0.1:{port}/")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("web did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--port", type=int, default=18190)
    args = parser.parse_args()
    registry = Registry.load()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "analytics.sqlite"
        now = int(time.time() * 1000)
        msgs = class_events(args.students, args.events, now)
        start = time.perf_counter()
        with Store(db, synchronous="NORMAL") as store:
            h = Handler(store, registry)
            for i in range(0, len(msgs), 1000):
                h.handle_many(msgs[i : i + 1000])
        print(
            f"store: {len(msgs)} events of {args.students} students"
            f" written in {time.perf_counter() - start:.1f} s"
        )

        users = sorted({m["user"] for m in msgs})
        # baseline: the dashboard path for every student of the course (two requests each)
        with Store(db, synchronous="NORMAL") as store:  # no fsync per request: the work, not the disk
            h = Handler(store, registry)

            def dashboard_all() -> None:
                for u in users:
                    h.handle({"type": "request", "user": u, "exp": "spinner", "course": "engdes1",
                              "payload": {"content": "task_identification"}})  # fmt: skip
                    h.handle({"type": "request", "user": u, "exp": "spinner", "course": "engdes1",
                              "payload": {"content": "indicators"}})  # fmt: skip

            base = timed(dashboard_all, max(5, args.repeats // 10))
        writer = Store(db)
        wh = Handler(writer, registry)
        rnd = random.Random(1)

        def ten_new_events() -> None:
            t = int(time.time() * 1000)
            wh.handle_many([
                {"user": rnd.choice(users), "t": t, "exp": "spinner", "course": "engdes1",
                 "hardware": "spin31", "type": "analytics", "payload": {"log": rnd.choice(SPINNER_LOGS)}}
                for _ in range(10)
            ])  # fmt: skip

        results: Dict[str, List[float]] = {}
        for name, path in (
            ("api", "/api/courses/spinner/engdes1/students"),
            ("page", "/courses/spinner/engdes1"),
        ):
            cold = []
            for _ in range(3):
                proc = start_server(db, args.port)
                try:
                    start = time.perf_counter()
                    get(f"http://127.0.0.1:{args.port}{path}")
                    cold.append((time.perf_counter() - start) * 1000)
                finally:
                    proc.terminate()
                    proc.wait()
            results[f"{name} cold"] = cold
            proc = start_server(db, args.port)
            try:
                url = f"http://127.0.0.1:{args.port}{path}"
                get(url)
                results[f"{name} warm"] = timed(lambda url=url: get(url), args.repeats)
                results[f"{name} live"] = timed(lambda url=url: get(url), args.repeats, ten_new_events)
                size = len(get(url))
            finally:
                proc.terminate()
                proc.wait()
            print(f"{name}: {size / 1024:.0f} KiB per response")
        writer.close()
        b95 = pct(base, 0.95)
        print(f"baseline (dashboard answers for all {len(users)} students through the Handler):"
              f" p50 {statistics.median(base):.1f} ms, p95 {b95:.1f} ms")  # fmt: skip
        for key, samples in results.items():
            p95 = pct(samples, 0.95)
            print(f"{key:<10} n={len(samples):<4} p50 {statistics.median(samples):6.1f} ms  p95 {p95:6.1f} ms"
                  f"  ({p95 / b95:.2f} x baseline p95)")  # fmt: skip
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (target: p95 <= 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
