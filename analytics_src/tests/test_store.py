"""Store: exact directly-follows counts, feedback counts, schema migrations, reads for the commands."""

import json
import sqlite3
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from practable_analytics.events import Event
from practable_analytics.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from practable_analytics.taskgraph import adjacency as dfg

N = 6


def ev(
    user: str = "u1",
    t: Optional[int] = 1000,
    node: Optional[int] = 0,
    *,
    type_: str = "analytics",
    exp: str = "spinner",
    course: str = "engdes1",
    hardware: str = "spin30",
    state: Optional[str] = None,
    subject: Optional[str] = None,
) -> Event:
    raw = json.dumps({"user": user, "t": t, "type": type_, "exp": exp, "course": course})
    log = None if node is None else f"n{node}"
    return Event(type_, user, exp, course, hardware, t, log, node, raw, state, subject, "spin30")


def expected(items: Sequence[Tuple[int, int, int]], n: int = N) -> np.ndarray:
    """From-scratch DFG of (t, arrival, node) items ordered by (t, arrival)."""
    return dfg([node for _, _, node in sorted(items)], n)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "a.db")
    yield s
    s.close()


def test_in_order_events_count_each_pair(store: Store) -> None:
    ids = store.add_events([ev(t=1, node=0), ev(t=2, node=1), ev(t=3, node=1)])
    assert ids == sorted(ids) and len(set(ids)) == 3
    store.add_events([ev(t=4, node=2)])
    m = store.matrix("u1", "spinner", "engdes1", N)
    assert m.dtype == np.float64 and m.shape == (N, N)
    want = np.zeros((N, N))
    want[0, 1] = want[1, 1] = want[1, 2] = 1
    assert np.array_equal(m, want)


def test_late_event_is_inserted_between_its_neighbours(store: Store) -> None:
    store.add_events([ev(t=10, node=0), ev(t=30, node=2)])
    store.add_events([ev(t=20, node=1)])  # arrives late: 0->2 becomes 0->1, 1->2
    m = store.matrix("u1", "spinner", "engdes1", N)
    assert m[0, 2] == 0 and m[0, 1] == 1 and m[1, 2] == 1 and m.sum() == 2
    # the emptied cell is gone from the table, not left as a zero row
    rows = [r for chunk in store.iter_transitions() for r in chunk]
    assert all(r[5] > 0 for r in rows) and len(rows) == 2


def test_earliest_event_arriving_last_becomes_the_head(store: Store) -> None:
    store.add_events([ev(t=10, node=1), ev(t=20, node=2)])
    store.add_events([ev(t=5, node=0)])
    assert store.chain("u1", "spinner", "engdes1") == [0, 1, 2]
    assert np.array_equal(store.matrix("u1", "spinner", "engdes1", N), dfg([0, 1, 2], N))


def test_ties_in_t_are_ordered_by_arrival(store: Store) -> None:
    store.add_events([ev(t=5, node=0), ev(t=5, node=3)])
    store.add_events([ev(t=5, node=4), ev(t=1, node=2)])
    assert store.chain("u1", "spinner", "engdes1") == [2, 0, 3, 4]
    assert np.array_equal(store.matrix("u1", "spinner", "engdes1", N), dfg([2, 0, 3, 4], N))


def test_events_outside_the_chain_are_stored_but_not_counted(store: Store) -> None:
    events = [
        ev(t=1, node=0),
        ev(t=None, node=1),  # no time: stored, not in the chain
        ev(t=2, node=None),  # log name that maps to no node: skipped, chain not broken
        ev(t=3, node=2, type_="log"),
        Event("invalid", None, None, None, None, None, None, None, "{not json"),
        ev(t=4, node=3),
    ]
    store.add_events(events)
    assert store.count_events() == 6
    assert store.chain("u1", "spinner", "engdes1") == [0, 3]
    assert np.array_equal(store.matrix("u1", "spinner", "engdes1", N), dfg([0, 3], N))


def test_keys_are_separate(store: Store) -> None:
    store.add_events(
        [ev("a", 1, 0), ev("b", 2, 1), ev("a", 3, 1, course="cie3"), ev("a", 4, 2), ev("b", 5, 2)]
    )
    assert store.chain("a", "spinner", "engdes1") == [0, 2]
    assert store.chain("b", "spinner", "engdes1") == [1, 2]
    assert store.matrix("a", "spinner", "cie3", N).sum() == 0
    assert store.keys() == [
        ("a", "spinner", "cie3"),
        ("a", "spinner", "engdes1"),
        ("b", "spinner", "engdes1"),
    ]
    assert store.users() == ["a", "b"]
    assert store.keys("b") == [("b", "spinner", "engdes1")]


def test_feedback_counts_only_counted_reports(store: Store) -> None:
    fb = [
        ev(t=1, node=None, type_="feedback", state="Engaged", subject="UI"),
        ev(t=2, node=None, type_="feedback", state="Engaged", subject="Hardware"),
        ev(t=3, node=None, type_="feedback", state="Bored", subject="UI"),
        ev(t=4, node=None, type_="feedback"),  # invalid state: stored, not counted
        ev("other", 5, None, type_="feedback", state="Bored", subject="UI"),
    ]
    store.add_events(fb[:2])
    store.add_events(fb[2:])
    assert store.feedback_counts("u1", "spinner", "engdes1") == {"Bored": 1, "Engaged": 2}
    assert store.feedback_counts("u1", "spinner", "cie3") == {}
    assert store.count_events() == 5


def test_matrix_ignores_cells_outside_the_node_count(store: Store) -> None:
    store.add_events([ev(t=1, node=0), ev(t=2, node=5)])
    assert store.matrix("u1", "spinner", "engdes1", 3).sum() == 0
    assert store.matrix("u1", "spinner", "engdes1", 6)[0, 5] == 1


def test_iter_events_in_chunks_returns_everything_in_order(store: Store) -> None:
    store.add_events([ev(t=i, node=i % N) for i in range(25)])
    chunks = list(store.iter_events(chunk_size=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    ids = [r[0] for c in chunks for r in c]
    assert ids == sorted(ids) and len(ids) == 25
    assert [r[8] for c in chunks for r in c] == list(range(25))


def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Store(path) as s:
        s.add_events([ev(t=1, node=0), ev(t=2, node=1)])
    with Store(path) as s:
        s.add_events([ev(t=3, node=0)])
        assert s.chain("u1", "spinner", "engdes1") == [0, 1, 0]
        assert s.matrix("u1", "spinner", "engdes1", N).sum() == 2


def test_failed_batch_is_rolled_back_entirely(store: Store) -> None:
    store.add_events([ev(t=1, node=0)])
    bad = Event("analytics", "u1", "spinner", "engdes1", None, 2, "x", 1, None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.add_events([ev(t=2, node=1), bad])
    assert store.count_events() == 1
    assert store.matrix("u1", "spinner", "engdes1", N).sum() == 0
    store.add_events([ev(t=3, node=2)])
    assert store.chain("u1", "spinner", "engdes1") == [0, 2]


def test_wal_mode_and_schema_version(store: Store) -> None:
    conn = sqlite3.connect(str(store.path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert store.schema_version() == SCHEMA_VERSION


def test_older_schema_is_migrated_on_open_keeping_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(str(path))
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO events (received_at, type, user, exp, course, t, node, raw)"
        " VALUES (0, 'analytics', 'u1', 'spinner', 'engdes1', 1, 0, '{}')"
    )
    conn.commit()
    conn.close()
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION > 1
        tables = {r[0] for r in s._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"legacy_markers", "legacy_adjacency"} <= tables
        s.add_events([ev(t=2, node=3)])  # chain continues from the row written by the old version
        assert s.chain("u1", "spinner", "engdes1") == [0, 3]
        assert s.matrix("u1", "spinner", "engdes1", N)[0, 3] == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with Store(path):
        pass
    conn = sqlite3.connect(str(path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        Store(path)


def test_request_cost_does_not_grow_with_history(store: Store) -> None:
    """matrix() reads the transitions rows of one key only (checked with the query plan)."""
    plan = store._conn.execute(
        "EXPLAIN QUERY PLAN SELECT src, dst, count FROM transitions"
        " WHERE user = ? AND exp = ? AND course = ?",
        ("u", "e", "c"),
    ).fetchall()
    assert any("SEARCH transitions USING PRIMARY KEY" in r[3] for r in plan)


# ---------------------------------------------------------------- property: equals a from-scratch DFG

Item = Tuple[str, int, int]  # (user, t, node)

items_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 12), st.integers(0, N - 1)), min_size=0, max_size=40
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=items_strategy,
    cuts=st.lists(st.integers(0, 40), max_size=6),
    which=st.lists(st.booleans(), max_size=8),
)
def test_counts_equal_dfg_of_sorted_history(
    tmp_path_factory: pytest.TempPathFactory, items: List[Item], cuts: List[int], which: List[bool]
) -> None:
    """Random times (ties included), random batches, two Store instances on one file."""
    path = tmp_path_factory.mktemp("prop") / "p.db"
    stores = [Store(path), Store(path)]
    try:
        bounds = sorted({0, len(items), *[c for c in cuts if c <= len(items)]})
        arrival: List[Tuple[str, int, int, int]] = []
        for k, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            batch = items[lo:hi]
            s = stores[int(which[k % len(which)]) if which else 0]
            ids = s.add_events([ev(u, t, node) for u, t, node in batch])
            arrival.extend((u, t, i, node) for (u, t, node), i in zip(batch, ids))
        for user in ("a", "b"):
            mine = [(t, i, node) for u, t, i, node in arrival if u == user]
            got = stores[0].matrix(user, "spinner", "engdes1", N)
            assert np.array_equal(got, expected(mine)), (user, mine)
        assert stores[1].count_events() == len(items)
    finally:
        for s in stores:
            s.close()
