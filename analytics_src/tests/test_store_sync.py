"""Store(sync_after_commit=True), the service's writer: each write returns only after the WAL is
fsynced, and that fsync happens after COMMIT, with the write lock already free for other processes."""

import logging
import os
import sqlite3
from pathlib import Path
from typing import List

import pytest

from practable_analytics import store as store_module
from practable_analytics.events import Event
from practable_analytics.store import Store


def batch(first_t: int, n: int) -> List[Event]:
    ts = range(first_t, first_t + n)
    return [Event("analytics", "u1", "spinner", "engdes1", "spin30", t, "voltage", t % 9, "{}") for t in ts]


def synchronous(store: Store) -> int:
    return int(store._conn.execute("PRAGMA synchronous").fetchone()[0])


def test_the_default_store_syncs_inside_the_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    assert synchronous(store) == 2  # FULL
    store.close()


def test_the_wal_is_synced_after_commit_with_the_write_lock_already_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "a.db"
    store = Store(db, sync_after_commit=True)
    assert synchronous(store) == 1  # NORMAL: SQLite itself syncs only at checkpoints
    other = sqlite3.connect(str(db), timeout=0, isolation_level=None)  # another process's connection
    seen: List[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        # the transaction is committed and the lock released: another writer gets it at once ...
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        # ... and sees the new rows
        seen.append(str(other.execute("SELECT COUNT(*) FROM events").fetchone()[0]))
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.os, "fdatasync", fsync, raising=False)
    ids = store.add_events(batch(0, 5))
    assert len(ids) == 5
    assert seen == [str(db) + "-wal", "5"]  # one fsync per write, of the WAL, after the COMMIT
    store.add_events(batch(5, 3))
    assert len(seen) == 4 and store.count_events() == 8
    other.close()
    store.close()


def test_a_failed_fsync_after_commit_is_logged_and_never_stores_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "a.db", sync_after_commit=True)
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_module.os, "fsync", failing)
    monkeypatch.setattr(store_module.os, "fdatasync", failing, raising=False)
    with caplog.at_level(logging.WARNING, logger="practable_analytics.store"):
        assert len(store.add_events(batch(0, 4))) == 4  # committed: not raised, so never retried
        assert len(store.add_events(batch(4, 4))) == 4
        monkeypatch.setattr(store_module.os, "fsync", real_fsync)
        monkeypatch.setattr(store_module.os, "fdatasync", real_fsync, raising=False)
        store.add_events(batch(8, 1))
    assert store.count_events() == 9  # each batch exactly once
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "fsync of the WAL" in errors[0].getMessage()  # once per episode
    assert any("works again" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    store.close()


def test_a_deferred_write_leaves_its_fsync_to_sync_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "a.db"
    store = Store(db, sync_after_commit=True)
    seen: List[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.os, "fdatasync", fsync, raising=False)
    with store.sync_deferred():
        store.add_events(batch(0, 3))
        store.add_events(batch(3, 2))
    assert seen == []  # committed (readable) but not yet synced
    assert store.count_events() == 5
    store.sync_pending()
    assert seen == [str(db) + "-wal"]  # one fsync covers both commits
    store.sync_pending()
    assert len(seen) == 1  # nothing pending: nothing done
    store.add_events(batch(5, 1))  # outside: synced by the write itself again
    assert len(seen) == 2
    with store.sync_deferred():
        store.add_events(batch(6, 1))
    store.close()  # a pending fsync is not forgotten at close
    assert len(seen) == 3
