"""Two processes (one per lab device) write the same students to one SQLite file at the same time."""

import multiprocessing
import random
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np

from practable_analytics.events import Event
from practable_analytics.store import Store
from practable_analytics.taskgraph import adjacency as dfg

N = 6
USERS = ("alice", "bob", "carol")
PER_PROCESS = 600


def plan(seed: int, hardware: str) -> List[Tuple[str, int, int]]:
    """(user, t, node) events of one device; times interleave with the other device's, some late."""
    rnd = random.Random(seed)
    out = []
    for i in range(PER_PROCESS):
        t = 1000 + 2 * i + (1 if hardware == "spin31" else 0)
        if rnd.random() < 0.1:
            t -= rnd.randint(1, 40)  # arrives out of order
        out.append((rnd.choice(USERS), t, rnd.randrange(N)))
    return out


def writer(path: str, seed: int, hardware: str, start: "multiprocessing.synchronize.Barrier") -> None:
    rnd = random.Random(seed + 1)
    events = [
        Event("analytics", u, "spinner", "engdes1", hardware, t, f"n{node}", node, "{}", stream=hardware)
        for u, t, node in plan(seed, hardware)
    ]
    store = Store(path, busy_timeout_s=60.0)
    start.wait(60)  # both processes have opened the file: write at the same time
    i = 0
    while i < len(events):
        size = rnd.randint(1, 25)
        store.add_events(events[i : i + size])
        i += size
        time.sleep(rnd.random() * 0.004)  # let the other device in between batches
    store.close()


def test_two_processes_writing_one_file_lose_and_double_count_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    Store(path).close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [
        ctx.Process(target=writer, args=(str(path), seed, hw, start))
        for seed, hw in ((1, "spin30"), (2, "spin31"))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(path) as store:
        assert store.count_events() == 2 * PER_PROCESS
        rows = [r for chunk in store.iter_events() for r in chunk]
        # both devices really interleaved (neither wrote all of its events first)
        hw_sequence = [r[7] for r in rows]
        switches = sum(1 for a, b in zip(hw_sequence, hw_sequence[1:]) if a != b)
        assert switches > 2
        for user in USERS:
            mine = sorted((r[8], r[0], r[10]) for r in rows if r[4] == user)  # (t, id, node)
            want = dfg([node for _, _, node in mine], N)
            assert np.array_equal(store.matrix(user, "spinner", "engdes1", N), want)
            assert store.matrix(user, "spinner", "engdes1", N).sum() == len(mine) - 1
