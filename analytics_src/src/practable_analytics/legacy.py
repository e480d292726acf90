"""Import a data directory written by the original logging scripts into the store.

Files recognised (names come from the directory listing only; nothing in a file ever becomes a path):

- ``<user>-<hw>-<exp>-<course>.json``: JSON-lines logs, one received message per line. The name is
  split from the right (user ids are UUIDs with dashes) and ``<exp>`` must be a known experiment.
  Each line goes through the same validation as live messages. Missing ``exp``/``course`` are taken
  from the file name, ``hardware`` too on analytics lines, and a line with ``payload.log`` but no
  ``type`` is an analytics event of the earliest UI. The line's own ``user`` wins over the file name
  (a mismatch is reported). The stream of every line is ``<hw>``. The stored raw text is the line.
- ``<user>-<exp>-<course>-adjacency.csv``: a matrix like the comparison graphs (first row and column
  name the nodes, row = from). It is kept in ``legacy_adjacency`` as a baseline (exported, never
  used for answers: answers always come from events). When the store has events of that student it
  is compared with the matrix recomputed from them and any disagreement is reported.
- ``<user>-<exp>-<course>-feedback.csv``: feedback reports, a header row naming at least a state
  column (``state``/``feedback``/``emotion``/``affect``) and optionally a subject column
  (``subject``/``topic``) and a time column (``t``/``time``/``timestamp``, ms since the epoch); other
  columns, such as a pandas index, are ignored. A row equal to a feedback event already stored from
  the logs (same state and subject, and same t when the CSV has times) is not imported twice.

Idempotence: every imported line or row is recorded as (file name, line number, sha256 of its text).
A line already recorded is not imported again; a log line whose text was already imported from a
*different* file (a copy of a log under another name) is skipped as a duplicate. Files whose name
matches their lines' user are imported first, so a copy with a wrong name is the one reported as
the duplicate. Lines that cannot be read are skipped and reported with their line numbers.

Hostile directories: the ids in a file name (user, hardware, exp, course) must pass the same rule as
ids received on the network (:func:`practable_analytics.messages.valid_id`), or the file is skipped;
every name echoed in the report or a log line has its control characters escaped; every read is
bounded (a log line, the first line included, at 1 MiB; a CSV file at 16 MiB); a file is opened with
``O_NOFOLLOW`` and checked to be a regular file on the open descriptor, so a symbolic link or a FIFO
swapped in after the directory listing is refused. Feedback rows are counted by the same rule as live
feedback (:func:`practable_analytics.messages.feedback_subjects`).
"""

import csv
import errno
import hashlib
import io
import json
import logging
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from practable_analytics.events import Event
from practable_analytics.experiments import DefinitionError, Registry, parse_graph
from practable_analytics.messages import feedback_subjects, parse_message, valid_id
from practable_analytics.store import Marker, Store
from practable_analytics.taskgraph import FEEDBACK_STATES
from practable_analytics.text import printable

LOG = logging.getLogger(__name__)

BATCH = 1000
MAX_LINE_BYTES = 1 << 20
MAX_CSV_BYTES = 16 << 20
STATE_COLUMNS = ("state", "feedback", "emotion", "affect", "affective_state")
SUBJECT_COLUMNS = ("subject", "topic", "about")
TIME_COLUMNS = ("t", "time", "timestamp", "ts")
SHOWN_LINES = 5


@dataclass
class FileReport:
    """What happened to one file."""

    name: str
    kind: str
    imported: int = 0
    already: int = 0
    duplicates: int = 0
    skipped: Dict[str, List[int]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def skip(self, reason: str, line: int) -> None:
        """Count one skipped line (or the whole file with line 0) under ``reason``."""
        self.skipped.setdefault(reason, []).append(line)

    def render(self) -> List[str]:
        """Human-readable lines for this file."""
        parts = [f"imported {self.imported}"]
        if self.already:
            parts.append(f"already imported {self.already}")
        if self.duplicates:
            parts.append(f"duplicates of other files {self.duplicates}")
        out = [f"{printable(self.name)} [{self.kind}]: " + ", ".join(parts)]
        for reason, lines in sorted(self.skipped.items()):
            numbered = [n for n in lines if n > 0]
            where = ""
            if numbered:
                shown = ", ".join(str(n) for n in numbered[:SHOWN_LINES])
                more = f" and {len(numbered) - SHOWN_LINES} more" if len(numbered) > SHOWN_LINES else ""
                where = f" (line {shown}{more})"
            count = f"{len(lines)} " if numbered else ""
            out.append(f"  skipped {count}{printable(reason)}{where}")
        out.extend(f"  note: {printable(n)}" for n in self.notes)
        return out


@dataclass
class ImportReport:
    """What an import did, per file."""

    files: List[FileReport] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Lines and rows imported in total."""
        return sum(f.imported for f in self.files)

    def render(self) -> str:
        """The report as text."""
        lines: List[str] = []
        for f in self.files:
            lines.extend(f.render())
        already = sum(f.already for f in self.files)
        dup = sum(f.duplicates for f in self.files)
        skipped = sum(len(v) for f in self.files for v in f.skipped.values())
        total = f"total: {len(self.files)} files, imported {self.imported}, already imported {already}"
        total += f", duplicates {dup}, skipped {skipped}"
        lines.append(total)
        if self.imported == 0:
            lines.append("nothing new to import")
        return "\n".join(lines) + "\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def split_log_name(stem: str, registry: Registry) -> Optional[Tuple[str, str, str, str]]:
    """(user, hw, exp, course) of a log file name stem, or None when it is not one (an id in it
    failing the network id rule included)."""
    parts = stem.rsplit("-", 3)
    if len(parts) != 4 or not all(valid_id(p) for p in parts):
        return None
    user, hw, exp, course = parts
    if registry.experiment(exp) is None:
        return None
    return user, hw, exp, course


def split_csv_name(stem: str, suffix: str, registry: Registry) -> Optional[Tuple[str, str, str]]:
    """(user, exp, course) of ``<user>-<exp>-<course>-<suffix>``, or None."""
    if not stem.endswith("-" + suffix):
        return None
    parts = stem[: -len(suffix) - 1].rsplit("-", 2)
    if len(parts) != 3 or not all(valid_id(p) for p in parts) or registry.experiment(parts[1]) is None:
        return None
    return parts[0], parts[1], parts[2]


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading without following a symbolic link, checked to be a regular file
    on the open descriptor (what was listed may have been swapped since). Never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, refused") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file, refused")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_bounded(path: Path, limit: int) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (OSError when larger)."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB")
    return data


def _first_user(path: Path) -> Optional[str]:
    """The ``user`` of the first non-blank line (read at most 1 MiB of it), or None."""
    try:
        with open_regular(path) as f:
            for _, data in _bounded_lines(f):
                if data is None:
                    return None
                if data.strip():
                    msg = json.loads(data.decode("utf-8", errors="replace"))
                    user = msg.get("user") if isinstance(msg, dict) else None
                    return user if isinstance(user, str) else None
    except (OSError, ValueError, RecursionError):
        return None
    return None


def _bounded_lines(handle: BinaryIO) -> Iterator[Tuple[int, Optional[bytes]]]:
    """(line number, bytes) of each line; None for a line over MAX_LINE_BYTES (never held whole)."""
    lineno = 0
    while True:
        data = handle.readline(MAX_LINE_BYTES + 1)
        if not data:
            return
        lineno += 1
        if len(data) > MAX_LINE_BYTES:
            while not data.endswith(b"\n"):
                data = handle.readline(MAX_LINE_BYTES)
                if not data:
                    break
            yield lineno, None
        else:
            yield lineno, data


class _Importer:
    def __init__(self, store: Store, registry: Registry, progress: Optional[Callable[[str], None]]) -> None:
        self.store = store
        self.registry = registry
        self.progress = progress
        self.lines_read = 0

    def _tick(self, n: int = 1) -> None:
        before = self.lines_read // 10000
        self.lines_read += n
        if self.progress is not None and self.lines_read // 10000 > before:
            self.progress(f"{self.lines_read} lines read")

    def _commit(self, events: List[Event], markers: List[Marker]) -> None:
        if markers:
            self.store.add_legacy(events, markers)
        events.clear()
        markers.clear()

    def log_file(self, path: Path, parts: Tuple[str, str, str, str]) -> FileReport:
        name_user, hw, exp, course = parts
        report = FileReport(path.name, "log")
        fills: Counter = Counter()
        mismatched: Counter = Counter()
        pending: List[Tuple[int, str, Dict[str, Any]]] = []
        try:
            handle = open_regular(path)
        except OSError as exc:
            report.skip(f"file: cannot read ({exc.strerror or exc})", 0)
            return report
        with handle:
            for lineno, data in _bounded_lines(handle):
                self._tick()
                if data is None:
                    report.skip("line longer than 1 MiB", lineno)
                    continue
                try:
                    text = data.decode("utf-8").strip()
                except UnicodeDecodeError:
                    report.skip("not UTF-8", lineno)
                    continue
                if not text:
                    continue
                try:
                    msg = json.loads(text)
                except (ValueError, RecursionError):
                    report.skip("not JSON", lineno)
                    continue
                if not isinstance(msg, dict):
                    report.skip("not a JSON object", lineno)
                    continue
                payload = msg.get("payload")
                if "type" not in msg:
                    if isinstance(payload, dict) and "log" in payload:
                        msg["type"] = "analytics"
                        fills["type (analytics, earliest UI)"] += 1
                    else:
                        report.skip("no type and no payload.log", lineno)
                        continue
                for key, value in (("exp", exp), ("course", course)):
                    if key not in msg:
                        msg[key] = value
                        fills[key] += 1
                if msg.get("type") == "analytics" and "hardware" not in msg:
                    msg["hardware"] = hw
                    fills["hardware"] += 1
                if "user" not in msg:
                    msg["user"] = name_user
                    fills["user"] += 1
                elif msg["user"] != name_user:
                    mismatched[repr(msg["user"])[:80]] += 1
                pending.append((lineno, text, msg))
                if len(pending) >= BATCH:
                    self._store_lines(path.name, hw, pending, report)
                    pending = []
        self._store_lines(path.name, hw, pending, report)
        if fills and report.imported:
            done = ", ".join(f"{k} on {n} lines" for k, n in sorted(fills.items()))
            report.notes.append(f"filled from the file name: {done}")
        for user, n in sorted(mismatched.items()):
            report.notes.append(
                f"{n} lines name user {user}, not {name_user!r} as the file name: kept {user}"
            )
        return report

    def _store_lines(
        self, file: str, hw: str, pending: Sequence[Tuple[int, str, Dict[str, Any]]], report: FileReport
    ) -> None:
        if not pending:
            return
        known = self.store.legacy_markers([_sha(text) for _, text, _ in pending])
        events: List[Event] = []
        markers: List[Marker] = []
        for lineno, text, msg in pending:
            sha = _sha(text)
            seen = known.get(sha, [])
            if (file, lineno) in seen:
                report.already += 1
                continue
            if any(f != file for f, _ in seen):
                report.duplicates += 1
                continue
            parsed = parse_message(msg, self.registry, stream=hw, raw=text)
            event = parsed.event
            if event is None:
                report.skip(f"type {msg.get('type')!r} (not stored)", lineno)
                continue
            if event.type == "invalid":
                report.skip("invalid message (fails validation)", lineno)
                continue
            events.append(event)
            markers.append((file, lineno, sha, event.user))
            report.imported += 1
        self._commit(events, markers)

    def adjacency_file(self, path: Path, parts: Tuple[str, str, str]) -> FileReport:
        user, exp_name, course = parts
        report = FileReport(path.name, "adjacency")
        exp = self.registry.experiment(exp_name)
        assert exp is not None
        try:
            data = _read_bounded(path, MAX_CSV_BYTES)
            sha = hashlib.sha256(data).hexdigest()
            matrix = parse_graph(path, exp.nodes, text=data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            report.skip("file: not UTF-8", 0)
            return report
        except OSError as exc:
            report.skip(f"file: cannot read ({exc.strerror or exc})", 0)
            return report
        except DefinitionError as exc:
            report.skip(f"file: {exc}", 0)
            return report
        if (path.name, 0) in self.store.legacy_markers([sha]).get(sha, []):
            report.already = 1
            return report
        self.store.set_legacy_adjacency(user, exp_name, course, matrix, path.name)
        self.store.add_legacy([], [(path.name, 0, sha, user)])
        report.imported = 1
        events = self.store.matrix(user, exp_name, course, len(exp.nodes))
        if not self.store.chain(user, exp_name, course):
            report.notes.append("no events of this student: kept as the legacy baseline only")
        elif np.array_equal(events, matrix):
            report.notes.append("equals the matrix recomputed from the stored events")
        else:
            cells = int(np.count_nonzero(events != matrix))
            report.notes.append(
                f"differs from the matrix recomputed from the stored events in {cells} cells"
                f" (CSV total {matrix.sum():g}, events total {events.sum():g});"
                " answers use the events, the CSV is kept as the legacy baseline"
            )
        return report

    def feedback_file(self, path: Path, parts: Tuple[str, str, str]) -> FileReport:
        user, exp_name, course = parts
        report = FileReport(path.name, "feedback")
        exp = self.registry.experiment(exp_name)
        assert exp is not None
        try:
            text = _read_bounded(path, MAX_CSV_BYTES).decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except OSError as exc:
            report.skip(f"file: cannot read ({exc.strerror or exc})", 0)
            return report
        except (UnicodeDecodeError, csv.Error) as exc:
            report.skip(f"file: cannot read ({exc})", 0)
            return report
        rows = [r for r in rows if any(c.strip() for c in r)]
        if not rows:
            report.skip("file: empty", 0)
            return report
        header = [c.strip().lower() for c in rows[0]]

        def column(names: Sequence[str]) -> Optional[int]:
            for i, h in enumerate(header):
                if h in names:
                    return i
            return None

        c_state, c_subject, c_t = column(STATE_COLUMNS), column(SUBJECT_COLUMNS), column(TIME_COLUMNS)
        if c_state is None:
            report.skip(f"file: no state column in header {rows[0]!r}", 0)
            return report
        ignored = [rows[0][i] for i in range(len(header)) if i not in (c_state, c_subject, c_t)]
        if ignored:
            report.notes.append(f"columns ignored: {', '.join(repr(c) for c in ignored)}")
        if c_subject is None:
            report.notes.append("no subject column: reports stored but not counted")
        stored: Counter = Counter()
        for t_stored, state_stored, subject_stored in self.store.feedback_events(user, exp_name, course):
            stored[(t_stored if c_t is not None else None, state_stored, subject_stored)] += 1
        subjects = set(feedback_subjects(exp, course))
        texts = [",".join(r) for r in rows[1:]]
        known = self.store.legacy_markers([_sha(t) for t in texts])
        events: List[Event] = []
        markers: List[Marker] = []
        uncounted = 0
        for lineno, (row, text) in enumerate(zip(rows[1:], texts), start=2):
            sha = _sha(text)
            if (path.name, lineno) in known.get(sha, []):
                report.already += 1
                continue
            state, subject, t_text = _cell(row, c_state), _cell(row, c_subject), _cell(row, c_t)
            if state is None:
                report.skip("row without a state", lineno)
                continue
            t = _parse_ms(t_text)
            if c_t is not None and t_text is not None and t is None:
                report.skip("time is not a number of ms", lineno)
                continue
            if stored[(t, state, subject)] > 0:
                stored[(t, state, subject)] -= 1
                report.duplicates += 1
                continue
            counted = state in FEEDBACK_STATES and subject in subjects
            uncounted += 0 if counted else 1
            raw = json.dumps(
                {
                    "user": user,
                    "t": t,
                    "exp": exp_name,
                    "course": course,
                    "type": "feedback",
                    "payload": {"state": state, "subject": subject},
                    "legacy_csv": {"file": path.name, "row": lineno},
                }
            )
            events.append(
                Event(
                    type="feedback",
                    user=user,
                    exp=exp_name,
                    course=course,
                    hardware=None,
                    t=t,
                    log=None,
                    node=None,
                    raw=raw,
                    state=state if counted else None,
                    subject=subject if counted else None,
                )
            )
            markers.append((path.name, lineno, sha, user))
            report.imported += 1
            self._tick()
        self._commit(events, markers)
        if report.duplicates:
            report.notes.append(
                f"{report.duplicates} rows equal feedback already stored from the logs: not imported twice"
            )
            report.duplicates = 0
        if uncounted:
            report.notes.append(
                f"{uncounted} rows with a state or subject outside the lists: stored, not counted"
            )
        return report


def _cell(row: Sequence[str], i: Optional[int]) -> Optional[str]:
    if i is None or i >= len(row) or not row[i].strip():
        return None
    return row[i].strip()


def _parse_ms(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not np.isfinite(value) or value < 0 or value > 2**53 or not value.is_integer():
        return None
    return int(value)


def import_dir(
    store: Store,
    registry: Registry,
    data_dir: Path,
    progress: Optional[Callable[[str], None]] = None,
) -> ImportReport:
    """Import every legacy file directly in ``data_dir`` (not recursive); returns the per-file report."""
    importer = _Importer(store, registry, progress)
    report = ImportReport()
    logs: List[Tuple[bool, str, Path, Tuple[str, str, str, str]]] = []
    adjacency: List[Tuple[Path, Tuple[str, str, str]]] = []
    feedback: List[Tuple[Path, Tuple[str, str, str]]] = []
    for path in sorted(data_dir.iterdir()):
        if path.is_symlink() or not path.is_file():
            report.files.append(FileReport(path.name, "other", skipped={"not a regular file": [0]}))
            continue
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        if path.suffix == ".json":
            if registry.graph(stem) is not None:
                fr = FileReport(path.name, "comparison log")
                fr.skip("file: the log of comparison graph " + stem + ", not student data", 0)
                report.files.append(fr)
                continue
            parts = split_log_name(stem, registry)
            if parts is not None:
                logs.append((_first_user(path) not in (None, parts[0]), path.name, path, parts))
                continue
        elif path.suffix == ".csv":
            adj = split_csv_name(stem, "adjacency", registry)
            if adj is not None:
                adjacency.append((path, adj))
                continue
            fb = split_csv_name(stem, "feedback", registry)
            if fb is not None:
                feedback.append((path, fb))
                continue
        fr = FileReport(path.name, "other")
        fr.skip(
            "file: name is not <user>-<hw>-<exp>-<course>.json, <user>-<exp>-<course>-adjacency.csv"
            " or -feedback.csv with a known experiment and valid ids",
            0,
        )
        report.files.append(fr)
    # Logs whose lines name the same user as the file name first: a misnamed copy is the duplicate.
    for _, _, path, parts in sorted(logs, key=lambda x: (x[0], x[1])):
        LOG.debug("importing %s", printable(path.name))
        report.files.append(importer.log_file(path, parts))
    for path, fparts in feedback:
        report.files.append(importer.feedback_file(path, fparts))
    for path, aparts in adjacency:  # last: compared with the events imported above
        report.files.append(importer.adjacency_file(path, aparts))
    return report
