"""The Store under real storage faults: a COMMIT that fails is rolled back whole, the connection stays
usable, and retrying the same batch counts everything exactly once; every failure is a StoreError."""

from pathlib import Path
from typing import List

import numpy as np
import pytest
from fault_helpers import CommitDenier, Tmpfs, tmpfs  # noqa: F401 (fixture)

from practable_analytics.events import Event
from practable_analytics.store import Store, StoreError
from practable_analytics.taskgraph import adjacency

N = 9


def ev(t: int, node: int, user: str = "u1", pad: int = 0) -> Event:
    return Event("analytics", user, "spinner", "engdes1", "spin30", t, "voltage", node, "x" * pad or "{}")


def batch(first_t: int, n: int, pad: int = 0) -> List[Event]:
    return [ev(first_t + i, (first_t + i) % N, pad=pad) for i in range(n)]


def test_a_denied_commit_is_rolled_back_and_a_retry_counts_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.add_events(batch(0, 10))
    statements: List[str] = []
    store._conn.set_trace_callback(statements.append)

    deny_commit = CommitDenier()
    store._conn.set_authorizer(deny_commit)
    second = batch(10, 10)
    with pytest.raises(StoreError, match=r"rolled back.*not authorized"):
        store.add_events(second)
    inserts = [s for s in statements if s.startswith("INSERT INTO events")]
    assert len(inserts) == 10 and statements[-1] == "ROLLBACK"  # the rows were written; COMMIT failed
    assert not store.in_transaction
    assert store.count_events() == 10
    deny_commit.on = False
    store.add_events(second)  # the retry: BEGIN IMMEDIATE works, nothing counted twice
    assert store.count_events() == 20
    chain = store.chain("u1", "spinner", "engdes1")
    assert np.array_equal(store.matrix("u1", "spinner", "engdes1", N), adjacency(chain, N))
    assert store.matrix("u1", "spinner", "engdes1", N).sum() == 19
    store.close()


def test_disk_full_at_commit_rolls_back_whole_and_retry_after_space_returns(tmpfs: Tmpfs) -> None:  # noqa: F811
    db = tmpfs.path / "full.db"
    store = Store(db)
    store.add_events(batch(0, 50))
    statements: List[str] = []
    store._conn.set_trace_callback(statements.append)
    tmpfs.fill(leave=8192)  # room for a page or two, not for the batch's WAL frames
    big = batch(50, 200, pad=2000)  # ~400 kB: fits in the page cache, written to the WAL at COMMIT
    with pytest.raises(StoreError, match="full"):
        store.add_events(big)
    assert "COMMIT" in statements, statements[-5:]
    assert not store.in_transaction
    with pytest.raises(StoreError):  # still full: fails again, cleanly
        store.add_events(big)
    assert store.count_events() == 50
    tmpfs.free()
    store.add_events(big)
    assert store.count_events() == 250
    chain = store.chain("u1", "spinner", "engdes1")
    assert len(chain) == 250
    assert np.array_equal(store.matrix("u1", "spinner", "engdes1", N), adjacency(chain, N))
    store.close()
    with Store(db, readonly=True) as reopened:  # the file is sound and holds exactly the committed rows
        assert reopened.count_events() == 250
        ((name, (n, _last)),) = reopened.stream_event_counts().items()
        assert (name, n) == ("", 250)


def test_every_storage_failure_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    store.close()
    for call in (
        lambda: store.add_events(batch(0, 2)),
        lambda: store.matrix("u1", "spinner", "engdes1", N),
        store.count_events,
        lambda: list(store.iter_transitions()),
        lambda: store.forget("someone"),
    ):
        with pytest.raises(StoreError):
            call()
    with pytest.raises(StoreError):
        Store(tmp_path / "missing" / "x.db", readonly=True)


def test_a_read_only_store_never_creates_or_writes_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(StoreError):
        Store(missing, readonly=True)
    assert not missing.exists()
    path = tmp_path / "r.db"
    Store(path).close()
    with Store(path, readonly=True) as reader:
        assert reader.stream_event_counts() == {}
        with pytest.raises(StoreError):
            reader.add_events(batch(0, 2))
