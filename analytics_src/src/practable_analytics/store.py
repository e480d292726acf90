"""The event store: one SQLite file (WAL) shared by every process that serves a lab device.

What it keeps:

- ``events``: every received message, never deleted by normal operation. ``id`` is the global arrival
  order (the order in which batches were committed, across processes).
- ``transitions``: the exact directly-follows counts of each student's task graph, per
  (user, exp, course), over the ``analytics`` events with a mapped node and a time, ordered by
  (t, id). They are kept current as events arrive, including events that arrive out of ``t`` order
  (the pair around the late event is removed and the two new pairs added), so a request only reads
  at most n*n rows whatever the length of the history.
- ``feedback``: counted feedback reports per (user, exp, course, state, subject).
- ``legacy_markers`` / ``legacy_adjacency``: what ``import-legacy`` has read (idempotence) and the
  adjacency matrices found in legacy CSV files (a baseline kept for export, never used for answers).

Every write is one ``BEGIN IMMEDIATE`` transaction: the writer holds the database write lock from
its first read of the chain to its commit, so several processes appending to the same student's
chain cannot lose or double-count a transition.

Durability: ``synchronous=FULL`` (the default) syncs the WAL on every commit: a committed batch
survives a power loss. ``synchronous="NORMAL"`` is faster and still never corrupts the file nor loses
anything when a process crashes, but the WAL is only synced at checkpoints, so a power loss or OS
crash can roll back every transaction committed since the last checkpoint (up to ~1000 WAL pages,
thousands of events; at low traffic that can span minutes, although the OS usually writes the data
out within about 30 s). Events and counts are rolled back together and stay consistent.
"""

import logging
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from practable_analytics.events import Event

if TYPE_CHECKING:  # numpy only for the offline commands' matrix(); serving uses cells()
    import numpy as np

LOG = logging.getLogger(__name__)

Key = Tuple[str, str, str]
"""(user, exp, course)."""
ChainItem = Tuple[int, int, int]
"""(t, id, node) of one event in a student's chain."""
Marker = Tuple[str, int, str, Optional[str]]
"""(file name, line number, sha256 of the line, user) recorded by import-legacy."""

EVENT_COLUMNS = (
    "id",
    "received_at",
    "stream",
    "type",
    "user",
    "exp",
    "course",
    "hardware",
    "t",
    "log",
    "node",
    "state",
    "subject",
    "raw",
)
TRANSITION_COLUMNS = ("user", "exp", "course", "src", "dst", "count")
FEEDBACK_COLUMNS = ("user", "exp", "course", "state", "subject", "count")
LEGACY_ADJACENCY_COLUMNS = ("user", "exp", "course", "src", "dst", "count", "file")

# Each migration is a list of statements that takes the schema from version i to i + 1. Append only:
# a released migration is never edited. The version lives in PRAGMA user_version.
MIGRATIONS: Tuple[Tuple[str, ...], ...] = (
    (  # 1: events, transition counts, feedback counts
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at REAL NOT NULL,
            stream TEXT,
            type TEXT NOT NULL,
            user TEXT,
            exp TEXT,
            course TEXT,
            hardware TEXT,
            t INTEGER,
            log TEXT,
            node INTEGER,
            state TEXT,
            subject TEXT,
            raw TEXT NOT NULL
        )""",
        """CREATE INDEX events_chain ON events (user, exp, course, t)
            WHERE type = 'analytics' AND node IS NOT NULL AND t IS NOT NULL""",
        """CREATE TABLE transitions (
            user TEXT NOT NULL,
            exp TEXT NOT NULL,
            course TEXT NOT NULL,
            src INTEGER NOT NULL,
            dst INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (user, exp, course, src, dst)
        ) WITHOUT ROWID""",
        """CREATE TABLE feedback (
            user TEXT NOT NULL,
            exp TEXT NOT NULL,
            course TEXT NOT NULL,
            state TEXT NOT NULL,
            subject TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (user, exp, course, state, subject)
        ) WITHOUT ROWID""",
    ),
    (  # 2: import-legacy bookkeeping
        """CREATE TABLE legacy_markers (
            file TEXT NOT NULL,
            line INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            user TEXT,
            imported_at REAL NOT NULL,
            PRIMARY KEY (file, line, sha256)
        ) WITHOUT ROWID""",
        "CREATE INDEX legacy_markers_sha ON legacy_markers (sha256)",
        "CREATE INDEX legacy_markers_user ON legacy_markers (user)",
        """CREATE TABLE legacy_adjacency (
            user TEXT NOT NULL,
            exp TEXT NOT NULL,
            course TEXT NOT NULL,
            src INTEGER NOT NULL,
            dst INTEGER NOT NULL,
            count REAL NOT NULL,
            file TEXT NOT NULL,
            PRIMARY KEY (user, exp, course, src, dst)
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
MIN_SWEEP_ID_CHARS = 8

# The chain of one (user, exp, course); every query matches the partial index events_chain.
_SQL_PREV = (
    "SELECT t, id, node FROM events WHERE user = ? AND exp = ? AND course = ?"
    " AND type = 'analytics' AND node IS NOT NULL AND t IS NOT NULL"
    " AND t <= ? ORDER BY t DESC, id DESC LIMIT 1"
)
_SQL_AFTER = (
    "SELECT t, id, node FROM events WHERE user = ? AND exp = ? AND course = ?"
    " AND type = 'analytics' AND node IS NOT NULL AND t IS NOT NULL"
    " AND t > ? ORDER BY t, id"
)
_SQL_CHAIN = (
    "SELECT node FROM events WHERE user = ? AND exp = ? AND course = ?"
    " AND type = 'analytics' AND node IS NOT NULL AND t IS NOT NULL"
    " ORDER BY t, id"
)
# The last item of many chains in one statement (keys given as a VALUES list of (?, ?, ?) rows).
_SQL_TAILS_HEAD = "WITH k (user, exp, course) AS (VALUES "
_SQL_TAILS_ROW = "(?, ?, ?)"
_SQL_TAILS_END = (
    ") SELECT k.user, k.exp, k.course, e.t, e.id, e.node FROM k JOIN events AS e ON e.id = ("
    "SELECT id FROM events WHERE user = k.user AND exp = k.exp AND course = k.course"
    " AND type = 'analytics' AND node IS NOT NULL AND t IS NOT NULL ORDER BY t DESC, id DESC LIMIT 1)"
)
BEGIN_FIRST_WAIT_S = 0.0001  # a write waiting for another process's write lock: first step
BEGIN_MAX_WAIT_S = 0.002  # ... doubling to this (SQLite's own busy handler: 1 ms up to 100 ms)
TAILS_PER_QUERY = 300  # 900 parameters: below SQLite's historical limit of 999
_SQL_INSERT = (
    "INSERT INTO events (id, received_at, stream, type, user, exp, course, hardware, t, log, node, state,"
    " subject, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_UPSERT_TRANSITION = (
    "INSERT INTO transitions (user, exp, course, src, dst, count) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user, exp, course, src, dst) DO UPDATE SET count = count + excluded.count"
)
_SQL_DROP_EMPTY = "DELETE FROM transitions WHERE user = ? AND exp = ? AND course = ? AND count <= 0"
_SQL_UPSERT_FEEDBACK = (
    "INSERT INTO feedback (user, exp, course, state, subject, count) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user, exp, course, state, subject) DO UPDATE SET count = count + excluded.count"
)
_SQL_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
    " coalesce((SELECT max(id) FROM events), 0)) + 1"
)


class StoreError(RuntimeError):
    """The database cannot be opened or used (message is one line, for the command line)."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock (SQLITE_BUSY / SQLITE_LOCKED): worth waiting for."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _keyed(e: Event) -> bool:
    return e.user is not None and e.exp is not None and e.course is not None


def _in_chain(e: Event) -> bool:
    return e.type == "analytics" and e.node is not None and e.t is not None and _keyed(e)


def _counted_feedback(e: Event) -> bool:
    return e.type == "feedback" and e.state is not None and e.subject is not None and _keyed(e)


def changes_counts(e: Event) -> bool:
    """True when storing ``e`` changes what answers read: its (user, exp, course)'s transition counts
    (an analytics event of the chain) or feedback counts. Requests, logs, invalid frames do not."""
    return _in_chain(e) or _counted_feedback(e)


def _pairs(chain: Sequence[ChainItem], delta: Dict[Tuple[int, int], int], sign: int) -> None:
    for a, b in zip(chain, chain[1:]):
        pair = (a[2], b[2])
        delta[pair] = delta.get(pair, 0) + sign


class Store:
    """One connection to the analytics database. One Store per thread; many processes may share a file."""

    def __init__(
        self,
        path: Union[str, Path],
        *,
        busy_timeout_s: float = 30.0,
        synchronous: str = "FULL",
        readonly: bool = False,
        sync_after_commit: bool = False,
    ) -> None:
        """Open (creating and migrating) the database; ``readonly`` opens an existing file for
        reading only (never creates, migrates or writes it).

        ``sync_after_commit``: as durable as ``synchronous=FULL`` when a write method returns, but
        the WAL is flushed to disk (one fsync) *after* COMMIT has released the write lock instead of
        inside it (SQLite runs with ``synchronous=NORMAL``, which syncs only at checkpoints). Other
        processes sharing the file then wait for the lock ~0.7 ms less per commit (the fsync); a
        write method still returns only once its transaction is on disk. The one difference: another
        connection may read a committed transaction before its fsync has finished.
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = Path(path)
        self.readonly = readonly
        self._sync_after = sync_after_commit and not readonly
        self._sync_failed = False
        self._defer_sync = False  # inside sync_deferred(): COMMIT returns without the WAL's fsync
        self._unsynced = False  # a deferred write's fsync has not run yet (sync_pending)
        self._wal_fd: Optional[int] = None  # the WAL, open for its fsync (sync_after_commit)
        if self._sync_after:
            synchronous = "NORMAL"
        self._busy_ms = int(busy_timeout_s * 1000)
        try:
            if readonly:
                uri = "file:" + quote(str(self.path.resolve()), safe="/") + "?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, timeout=busy_timeout_s, isolation_level=None, cached_statements=64
                )
            else:
                self._conn = sqlite3.connect(
                    str(self.path), timeout=busy_timeout_s, isolation_level=None, cached_statements=64
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from exc
        if readonly:
            try:
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
                self._conn.execute("PRAGMA query_only = ON")
                version = self.schema_version()
            except (sqlite3.Error, StoreError) as exc:
                self._conn.close()
                raise StoreError(f"{self.path}: not a usable analytics database: {exc}") from exc
            if version > SCHEMA_VERSION:
                self._conn.close()
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this program's ({SCHEMA_VERSION})"
                )
            return
        # Several loggers start at once on a new file (analytics-loggers.target): switching it to WAL
        # can answer "database is locked" without waiting on the busy handler, so setup is retried
        # until the busy timeout; only a lock held that long, or a file that is no database, fails.
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                self._setup(busy_timeout_s, synchronous)
                return
            except sqlite3.OperationalError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                self._conn.close()
                raise StoreError(f"{self.path}: not a usable analytics database: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                self._conn.close()
                raise StoreError(f"{self.path}: not a usable analytics database: {exc}") from exc
            except StoreError:
                self._conn.close()
                raise

    def _setup(self, busy_timeout_s: float, synchronous: str) -> None:
        """WAL, durability and foreign keys on this connection, then the schema migrations."""
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode})")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        """Run reads on the connection; any sqlite3 failure becomes one StoreError."""
        try:
            yield self._conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {what} failed: {_reason(exc)}") from exc

    @contextmanager
    def _write(self, what: str = "write") -> Iterator[sqlite3.Connection]:
        """One write transaction holding the database write lock from its start.

        All or nothing: when anything fails, the COMMIT itself included (a full disk is often only
        noticed when the WAL is written at commit), the transaction is rolled back before the error
        leaves, so the connection is clean for the next BEGIN IMMEDIATE and a retry of the same
        batch cannot count anything twice. sqlite3 failures leave as StoreError.
        """
        conn = self._conn
        try:
            self._begin_immediate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {what}: cannot begin a transaction: {_reason(exc)}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: {what} failed and was rolled back: {_reason(exc)}") from exc
            raise
        if self._sync_after:
            if self._defer_sync:
                self._unsynced = True
            else:
                self._sync_wal()

    @contextmanager
    def sync_deferred(self) -> Iterator[None]:
        """With ``sync_after_commit``, the writes inside return right after their COMMIT and leave
        the WAL's fsync to :meth:`sync_pending`, which the caller must run before it counts or
        answers anything they wrote (the service's worker computes its answers meanwhile). Without
        ``sync_after_commit`` (SQLite syncs inside COMMIT) nothing changes."""
        self._defer_sync = True
        try:
            yield
        finally:
            self._defer_sync = False

    def sync_pending(self) -> None:
        """The fsync the writes inside :meth:`sync_deferred` left out (nothing when none is pending).
        It touches no connection: another thread may run it while this Store's thread reads, as long
        as that thread writes nothing until it has returned."""
        if self._unsynced:
            self._unsynced = False
            self._sync_wal()

    def _sync_wal(self) -> None:
        """fdatasync the WAL after a COMMIT (``sync_after_commit``). The transaction is committed by
        now, so a failure here cannot be rolled back or retried (a retry would store it twice): it
        is logged (ERROR once, until a sync works again) and the write counts as done."""
        sync = getattr(os, "fdatasync", None) or os.fsync  # what SQLite's FULL uses where it exists
        try:
            # Opened once: while this connection is open SQLite never deletes the WAL (only the last
            # connection to close does), so the descriptor stays the file's. Reopened after a failure.
            if self._wal_fd is None:
                self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            sync(self._wal_fd)
        except OSError as exc:
            self._close_wal_fd()
            if not self._sync_failed:
                self._sync_failed = True
                LOG.error("%s: fsync of the WAL after a commit failed: %s", self.path, _reason(exc))
            return
        if self._sync_failed:
            self._sync_failed = False
            LOG.warning("%s: fsync of the WAL works again", self.path)

    def _close_wal_fd(self) -> None:
        fd, self._wal_fd = self._wal_fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting for another process's write lock in short steps of our own.

        SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms ... between tries: a writer that
        meets another process's commit (a few ms) typically waits 8 ms or more after the lock was
        free, which is most of an answer's latency when several processes share the file. Here the
        first try has no busy handler, and the waits go 0.1 ms doubling to 2 ms, until the same
        busy timeout; then the busy handler is restored (the statements, COMMIT and reads keep it).
        """
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = 0.0
            delay = BEGIN_FIRST_WAIT_S
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    now = time.monotonic()
                    if not deadline:
                        deadline = now + self._busy_ms / 1000.0
                    elif now >= deadline:
                        raise
                time.sleep(delay)
                delay = min(BEGIN_MAX_WAIT_S, delay * 2)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _rollback(self) -> None:
        conn = self._conn
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the connection is unusable: the next BEGIN reports it
            LOG.error("%s: rollback failed: %s", self.path, _reason(exc))

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on this connection (never, between calls)."""
        return bool(self._conn.in_transaction)

    def schema_version(self) -> int:
        """The schema version of the open file (PRAGMA user_version)."""
        with self._reading("reading the schema version") as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        if self.schema_version() == SCHEMA_VERSION:
            return
        with self._write("migration") as conn:
            version = self.schema_version()  # re-read under the lock: another process may have migrated
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this program's ({SCHEMA_VERSION})"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
                LOG.info("%s: schema migrated to version %d", self.path, number + 1)

    def close(self) -> None:
        """Close the connection (the Store is unusable afterwards); a deferred fsync runs first."""
        self.sync_pending()
        self._close_wal_fd()
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def add_events(self, events: Sequence[Event], received_at: Optional[Sequence[float]] = None) -> List[int]:
        """Store ``events`` in one transaction and update the counts; returns their ids in order.

        ``received_at`` (one epoch time per event) is when each was received; default: now.
        """
        if not events:
            return []
        if received_at is not None and len(received_at) != len(events):
            raise ValueError("received_at must give one time per event")
        with self._write("storing events") as conn:
            return self._add_locked(conn, events, received_at)

    def add_legacy(self, events: Sequence[Event], markers: Sequence[Marker]) -> List[int]:
        """``add_events`` plus the import markers of the lines they came from, in one transaction."""
        with self._write("storing legacy events") as conn:
            ids = self._add_locked(conn, events) if events else []
            now = time.time()
            conn.executemany(
                "INSERT OR IGNORE INTO legacy_markers (file, line, sha256, user, imported_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(f, line, sha, user, now) for f, line, sha, user in markers],
            )
            return ids

    def _add_locked(
        self, conn: sqlite3.Connection, events: Sequence[Event], received_at: Optional[Sequence[float]] = None
    ) -> List[int]:
        now = time.time()
        first = int(conn.execute(_SQL_NEXT_ID).fetchone()[0])
        ids = list(range(first, first + len(events)))
        rows = []
        chains: Dict[Key, List[ChainItem]] = {}
        feedback: Dict[Tuple[str, str, str, str, str], int] = {}
        times = received_at if received_at is not None else [now] * len(events)
        for event_id, e, when in zip(ids, events, times):
            t = None if e.t is None else int(e.t)
            node = None if e.node is None else int(e.node)
            rows.append(
                (
                    event_id,
                    when,
                    e.stream,
                    e.type,
                    e.user,
                    e.exp,
                    e.course,
                    e.hardware,
                    t,
                    e.log,
                    node,
                    e.state,
                    e.subject,
                    e.raw,
                )
            )
            if _in_chain(e):
                key = (str(e.user), str(e.exp), str(e.course))
                chains.setdefault(key, []).append((t, event_id, node))  # type: ignore[arg-type]
            elif _counted_feedback(e):
                fkey = (str(e.user), str(e.exp), str(e.course), str(e.state), str(e.subject))
                feedback[fkey] = feedback.get(fkey, 0) + 1
        # The chain deltas are computed before the new rows exist, so every query sees the old chain.
        upserts: List[Tuple[Union[str, int], ...]] = []
        shrunk = []
        tails = self._tails(conn, list(chains))
        for key, new in chains.items():
            delta = self._chain_delta(conn, key, new, tails.get(key))
            if any(v < 0 for v in delta.values()):
                shrunk.append(key)
            upserts.extend((*key, a, b, d) for (a, b), d in delta.items() if d)
        conn.executemany(_SQL_INSERT, rows)
        if upserts:
            conn.executemany(_SQL_UPSERT_TRANSITION, upserts)
        if shrunk:
            conn.executemany(_SQL_DROP_EMPTY, shrunk)
        if feedback:
            conn.executemany(_SQL_UPSERT_FEEDBACK, [(*k, v) for k, v in feedback.items()])
        return ids

    @staticmethod
    def _tails(conn: sqlite3.Connection, keys: List[Key]) -> Dict[Key, ChainItem]:
        """The last stored item (t, id, node) of each key's chain, for keys that have one."""
        found: Dict[Key, ChainItem] = {}
        for i in range(0, len(keys), TAILS_PER_QUERY):
            chunk = keys[i : i + TAILS_PER_QUERY]
            sql = _SQL_TAILS_HEAD + ", ".join([_SQL_TAILS_ROW] * len(chunk)) + _SQL_TAILS_END
            params = [v for key in chunk for v in key]
            for user, exp, course, t, event_id, node in conn.execute(sql, params):
                found[(user, exp, course)] = (t, event_id, node)
        return found

    @staticmethod
    def _chain_delta(
        conn: sqlite3.Connection, key: Key, new: List[ChainItem], last: Optional[ChainItem]
    ) -> Dict[Tuple[int, int], int]:
        """Change in the pair counts of ``key`` when the ``new`` items join its stored chain.

        New items have larger ids than every stored one, so at equal t they go after the stored
        items. Only the stored items from the predecessor of the earliest new item onwards can change
        their neighbours; in the usual in-order case that is just the last stored item.
        """
        new.sort()
        t0 = new[0][0]
        old: List[ChainItem]
        if last is None:
            old = []
            merged = new
        elif last[0] <= t0:
            old = [last]
            merged = [last, *new]
        else:
            prev = conn.execute(_SQL_PREV, (*key, t0)).fetchone()
            after = [tuple(r) for r in conn.execute(_SQL_AFTER, (*key, t0))]
            head = [] if prev is None else [prev]
            old = head + after  # type: ignore[operator]
            merged = head + sorted(after + new)  # type: ignore[operator]
        delta: Dict[Tuple[int, int], int] = {}
        _pairs(old, delta, -1)
        _pairs(merged, delta, +1)
        return delta

    def set_legacy_adjacency(self, user: str, exp: str, course: str, matrix: "np.ndarray", file: str) -> None:
        """Replace the legacy baseline adjacency of (user, exp, course) (zero cells are not stored)."""
        rows = [
            (user, exp, course, i, j, float(v), file)
            for i, row in enumerate(matrix.tolist())
            for j, v in enumerate(row)
            if v != 0
        ]
        with self._write("storing a legacy adjacency") as conn:
            conn.execute(
                "DELETE FROM legacy_adjacency WHERE user = ? AND exp = ? AND course = ?", (user, exp, course)
            )
            conn.executemany(
                "INSERT INTO legacy_adjacency (user, exp, course, src, dst, count, file)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def forget(self, user: str) -> Dict[str, int]:
        """Erase everything about ``user`` in one transaction; returns rows removed per table.

        Besides the rows attributed to the user, invalid (unattributed) events whose raw text contains
        the user id are removed too (for ids of at least ``MIN_SWEEP_ID_CHARS`` characters). Deleted
        content is overwritten (secure_delete) and the WAL is checkpointed so the data does not
        linger in the file.
        """
        if not user:
            raise ValueError("user must be a non-empty string")
        removed: Dict[str, int] = {}
        with self._reading("forget"):
            self._conn.execute("PRAGMA secure_delete = ON")
        try:
            with self._write("forget") as conn:
                removed["events"] = conn.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount
                if len(user) >= MIN_SWEEP_ID_CHARS:  # a short id would match unrelated text
                    removed["events"] += conn.execute(
                        "DELETE FROM events WHERE user IS NULL AND instr(raw, ?) > 0", (user,)
                    ).rowcount
                for table in ("transitions", "feedback", "legacy_markers", "legacy_adjacency"):
                    removed[table] = conn.execute(f"DELETE FROM {table} WHERE user = ?", (user,)).rowcount  # noqa: S608
        finally:
            with self._reading("forget"):
                self._conn.execute("PRAGMA secure_delete = OFF")
        with self._reading("checkpoint after forget"):
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            LOG.warning(
                "%s: other connections kept the WAL from being truncated; erased pages leave it"
                " when the WAL is next reused",
                self.path,
            )
        return removed

    def _rows(self, sql: str, params: Sequence[object] = ()) -> List[tuple]:
        """Every row of one read statement; a sqlite3 failure becomes StoreError."""
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: reading failed: {_reason(exc)}") from exc

    # ------------------------------------------------------------------ reads for answers

    def matrix(self, user: str, exp: str, course: str, n_nodes: int) -> "np.ndarray":
        """The student's adjacency matrix (float64, n_nodes x n_nodes): at most n*n rows read."""
        import numpy as np  # noqa: PLC0415 (offline commands; serve uses cells())

        return np.array(self.cells(user, exp, course, n_nodes), dtype=np.float64).reshape(n_nodes, n_nodes)

    def cells(self, user: str, exp: str, course: str, n_nodes: int) -> List[List[float]]:
        """:meth:`matrix` as rows of floats (no numpy): at most n*n rows read."""
        m = [[0.0] * n_nodes for _ in range(n_nodes)]
        for src, dst, count in self._rows(
            "SELECT src, dst, count FROM transitions WHERE user = ? AND exp = ? AND course = ?",
            (user, exp, course),
        ):
            if 0 <= src < n_nodes and 0 <= dst < n_nodes:
                m[src][dst] = float(count)
            else:
                LOG.warning(
                    "transition %d->%d of %s/%s outside %d nodes: ignored", src, dst, exp, course, n_nodes
                )
        return m

    def feedback_counts(self, user: str, exp: str, course: str) -> Dict[str, int]:
        """Counted feedback reports of the student by state (states never reported are absent)."""
        return {
            state: int(count)
            for state, count in self._rows(
                "SELECT state, sum(count) FROM feedback WHERE user = ? AND exp = ? AND course = ?"
                " GROUP BY state ORDER BY state",
                (user, exp, course),
            )
        }

    # ------------------------------------------------------------------ reads for commands

    def chain(self, user: str, exp: str, course: str) -> List[int]:
        """The student's node sequence ordered by (t, id): the definition the counts must equal."""
        return [r[0] for r in self._rows(_SQL_CHAIN, (user, exp, course))]

    def count_events(self, user: Optional[str] = None) -> int:
        """Number of stored events (of one user when given)."""
        if user is None:
            return int(self._rows("SELECT count(*) FROM events")[0][0])
        return int(self._rows("SELECT count(*) FROM events WHERE user = ?", (user,))[0][0])

    def stream_event_counts(self) -> Dict[str, Tuple[int, Optional[float]]]:
        """Per stream: (stored events, last received_at). Events without a stream count under ""."""
        if self.schema_version() == 0:  # a read-only open of a file nobody has written yet
            return {}
        rows = self._rows(
            "SELECT COALESCE(stream, ''), COUNT(*), MAX(received_at) FROM events"
            " GROUP BY COALESCE(stream, '')"
        )
        return {str(name): (int(n), None if last is None else float(last)) for name, n, last in rows}

    def users(self) -> List[str]:
        """Every user id that has at least one event."""
        return [
            r[0] for r in self._rows("SELECT DISTINCT user FROM events WHERE user IS NOT NULL ORDER BY user")
        ]

    def keys(self, user: Optional[str] = None) -> List[Key]:
        """Every (user, exp, course) with events (of one user when given), sorted."""
        sql = (
            "SELECT DISTINCT user, exp, course FROM events"
            " WHERE user IS NOT NULL AND exp IS NOT NULL AND course IS NOT NULL"
        )
        params: Tuple[str, ...] = ()
        if user is not None:
            sql += " AND user = ?"
            params = (user,)
        return [tuple(r) for r in self._rows(sql + " ORDER BY user, exp, course", params)]  # type: ignore[misc]

    def iter_events(self, chunk_size: int = 10000, user: Optional[str] = None) -> Iterator[List[tuple]]:
        """All events in id order, in lists of at most ``chunk_size`` rows (columns: EVENT_COLUMNS)."""
        cols = ", ".join(EVENT_COLUMNS)
        last = 0
        while True:
            if user is None:
                rows = self._rows(
                    f"SELECT {cols} FROM events WHERE id > ? ORDER BY id LIMIT ?",  # noqa: S608
                    (last, chunk_size),
                )
            else:
                rows = self._rows(
                    f"SELECT {cols} FROM events WHERE user = ? AND id > ? ORDER BY id LIMIT ?",  # noqa: S608
                    (user, last, chunk_size),
                )
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def _iter_table(self, table: str, columns: Sequence[str], chunk_size: int) -> Iterator[List[tuple]]:
        with self._reading(f"reading {table}"):
            cur = self._conn.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns[:5])}"  # noqa: S608
            )
        while True:
            with self._reading(f"reading {table}"):
                rows = cur.fetchmany(chunk_size)
            if not rows:
                return
            yield rows

    def iter_transitions(self, chunk_size: int = 10000) -> Iterator[List[tuple]]:
        """Transition counts (columns: TRANSITION_COLUMNS) in key order."""
        return self._iter_table("transitions", TRANSITION_COLUMNS, chunk_size)

    def iter_feedback(self, chunk_size: int = 10000) -> Iterator[List[tuple]]:
        """Feedback counts (columns: FEEDBACK_COLUMNS) in key order."""
        return self._iter_table("feedback", FEEDBACK_COLUMNS, chunk_size)

    def iter_legacy_adjacency(self, chunk_size: int = 10000) -> Iterator[List[tuple]]:
        """Legacy baseline adjacency cells (columns: LEGACY_ADJACENCY_COLUMNS)."""
        return self._iter_table("legacy_adjacency", LEGACY_ADJACENCY_COLUMNS, chunk_size)

    def legacy_markers(self, shas: Sequence[str]) -> Dict[str, List[Tuple[str, int]]]:
        """For each given sha256 already imported: the (file, line) pairs it was imported from."""
        found: Dict[str, List[Tuple[str, int]]] = {}
        for i in range(0, len(shas), 500):
            chunk = list(shas[i : i + 500])
            marks = ", ".join("?" * len(chunk))
            for sha, file, line in self._rows(
                f"SELECT sha256, file, line FROM legacy_markers WHERE sha256 IN ({marks})",  # noqa: S608
                chunk,
            ):
                found.setdefault(sha, []).append((file, int(line)))
        return found

    def feedback_events(self, user: str, exp: str, course: str) -> List[Tuple[Optional[int], str, str]]:
        """(t, state, subject) of the counted feedback events of a student (import-legacy dedup)."""
        return [
            (r[0], r[1], r[2])
            for r in self._rows(
                "SELECT t, state, subject FROM events WHERE user = ? AND exp = ? AND course = ?"
                " AND type = 'feedback' AND state IS NOT NULL AND subject IS NOT NULL",
                (user, exp, course),
            )
        ]

    # ================================================================== web (class view): read-only
    # Everything below is used by ``practable_analytics.web`` only: a read-only open and the reads of
    # the instructor's class view. Parameterised SQL only; nothing here writes.

    @classmethod
    def read_only(cls, path: Union[str, Path], *, busy_timeout_s: float = 5.0) -> "Store":
        """Open an existing database read-only (``mode=ro`` URI): no WAL switch, no migration, no writes.

        Readers never block the loggers in WAL mode. The file must already be at this program's
        schema version (the loggers migrate it); anything else is a :class:`StoreError`.
        """
        self = cls(path, readonly=True, busy_timeout_s=busy_timeout_s)
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            self._conn.close()
            raise StoreError(
                f"{self.path}: schema version {version}, this program reads {SCHEMA_VERSION}"
                " (start a logger once to migrate it)"
            )
        return self

    def student_aggregates(
        self, after_id: int = 0, upto_id: Optional[int] = None
    ) -> List[Tuple[str, str, str, int, Optional[int], Optional[int], int]]:
        """(user, exp, course, events, first t, last t, largest id) over the events with
        ``after_id < id <= upto_id`` (no upper bound when None).

        With ``after_id`` the largest id already seen, this reads only the rows added since (a range
        of the primary key), so a caller can keep every student's counts current cheaply.
        """
        upper = (1 << 63) - 1 if upto_id is None else int(upto_id)
        try:
            return [
                (r[0], r[1], r[2], int(r[3]), r[4], r[5], int(r[6]))
                for r in self._conn.execute(
                    "SELECT user, exp, course, count(*), min(t), max(t), max(id) FROM events"
                    " WHERE id > ? AND id <= ? AND user IS NOT NULL AND exp IS NOT NULL"
                    " AND course IS NOT NULL GROUP BY user, exp, course",
                    (int(after_id), upper),
                )
            ]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def max_event_id(self) -> int:
        """The largest event id (0 for an empty store): one primary-key lookup."""
        try:
            return int(self._conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def chain_after(
        self, user: str, exp: str, course: str, after: Optional[Tuple[int, int]] = None
    ) -> Tuple[int, List[Tuple[int, int, int]]]:
        """The length of the student's chain and its (t, id, node) items after (t, id) ``after``
        (all of them when None), ordered by (t, id): both read from the chain index.

        A caller that has seen the chain up to ``after`` knows nothing arrived before that point when
        its count plus the new items equals the length (else it reads the chain again).
        """
        chain = (
            " FROM events WHERE user = ? AND exp = ? AND course = ?"
            " AND type = 'analytics' AND node IS NOT NULL AND t IS NOT NULL"
        )
        key = (user, exp, course)
        conn = self._conn
        try:
            conn.execute("BEGIN")  # one snapshot for both reads
            try:
                length = int(conn.execute("SELECT count(*)" + chain, key).fetchone()[0])
                if after is None:
                    rows = conn.execute("SELECT t, id, node" + chain + " ORDER BY t, id", key).fetchall()
                else:
                    rows = conn.execute(
                        "SELECT t, id, node" + chain + " AND t >= ? AND (t > ? OR id > ?) ORDER BY t, id",
                        (*key, after[0], after[0], after[1]),
                    ).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
        return length, rows

    def feedback_since(
        self, after_id: int = 0, upto_id: Optional[int] = None
    ) -> List[Tuple[str, str, str, Optional[int], int, str]]:
        """(user, exp, course, t, id, state) of the counted feedback reports with
        ``after_id < id <= upto_id``: a range of the primary key, like :meth:`student_aggregates`."""
        upper = (1 << 63) - 1 if upto_id is None else int(upto_id)
        try:
            return [
                (r[0], r[1], r[2], r[3], int(r[4]), r[5])
                for r in self._conn.execute(
                    "SELECT user, exp, course, t, id, state FROM events WHERE id > ? AND id <= ?"
                    " AND type = 'feedback' AND state IS NOT NULL AND subject IS NOT NULL"
                    " AND user IS NOT NULL AND exp IS NOT NULL AND course IS NOT NULL",
                    (int(after_id), upper),
                )
            ]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def student_events(
        self, user: str, exp: str, course: str
    ) -> List[Tuple[int, Optional[int], str, Optional[str], Optional[str], Optional[str], Optional[str]]]:
        """Every event of the student ordered by (t, id).

        Columns: (id, t, type, hardware, log, state, subject); ``state``/``subject`` are set only on
        counted feedback reports.
        """
        try:
            return [
                tuple(r)  # type: ignore[misc]
                for r in self._conn.execute(
                    "SELECT id, t, type, hardware, log, state, subject FROM events"
                    " WHERE user = ? AND exp = ? AND course = ? ORDER BY t, id",
                    (user, exp, course),
                )
            ]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from exc
