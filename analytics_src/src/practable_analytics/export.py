"""Export the store as tables pandas reads directly: Parquet, Feather (Arrow IPC) or CSV.

Tables written to the output directory (``<table>.parquet`` / ``.feather`` / ``.csv``):

- ``events``: every stored event, in arrival (id) order, columns as stored (``received_at`` in
  seconds since the epoch, ``t`` in ms, ``node`` the node index, ``raw`` the received text);
- ``matrices``: the transition counts in long form (``user, exp, course, from, to, count``; ``from``
  and ``to`` are node names, or the node index when the experiment is unknown);
- ``feedback``: counted feedback reports (``user, exp, course, state, subject, count``);
- ``legacy_adjacency``: matrices read from legacy adjacency CSVs (``... from, to, count, file``).

Rows are read and written in chunks, so memory stays flat whatever the size of the store. In CSV, a
text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with a
leading ``'`` so that a spreadsheet opening the file shows it as text rather than running it as a
formula (a user id ``=HYPERLINK(...)``); Parquet and Feather keep every value as stored.
pyarrow is needed for parquet and feather (imported here, never by the service).
"""

import csv
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from practable_analytics.experiments import Registry
from practable_analytics.store import Store

FORMATS = ("parquet", "feather", "csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# column name -> arrow type name
EVENTS_SCHEMA: Tuple[Tuple[str, str], ...] = (
    ("id", "int64"),
    ("received_at", "float64"),
    ("stream", "string"),
    ("type", "string"),
    ("user", "string"),
    ("exp", "string"),
    ("course", "string"),
    ("hardware", "string"),
    ("t", "int64"),
    ("log", "string"),
    ("node", "int64"),
    ("state", "string"),
    ("subject", "string"),
    ("raw", "string"),
)
MATRICES_SCHEMA = (
    ("user", "string"),
    ("exp", "string"),
    ("course", "string"),
    ("from", "string"),
    ("to", "string"),
    ("count", "int64"),
)
FEEDBACK_SCHEMA = (
    ("user", "string"),
    ("exp", "string"),
    ("course", "string"),
    ("state", "string"),
    ("subject", "string"),
    ("count", "int64"),
)
LEGACY_SCHEMA = (
    ("user", "string"),
    ("exp", "string"),
    ("course", "string"),
    ("from", "string"),
    ("to", "string"),
    ("count", "float64"),
    ("file", "string"),
)


def inert(value: Any) -> Any:
    """A CSV cell a spreadsheet cannot take for a formula: text starting with one of
    FORMULA_STARTS gets a leading ``'``; other values are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Writer:
    """Writes one table chunk by chunk in one of FORMATS."""

    def __init__(self, path: Path, fmt: str, schema: Sequence[Tuple[str, str]]) -> None:
        self.path = path
        self.fmt = fmt
        self.names = [name for name, _ in schema]
        self._csv: Any = None
        self._file: Any = None
        self._writer: Any = None
        if fmt == "csv":
            self._file = path.open("w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(self.names)
            return
        import pyarrow as pa  # noqa: PLC0415 (tools extra, never imported by the service)

        self._pa = pa
        self.schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in schema])
        if fmt == "parquet":
            import pyarrow.parquet as pq  # noqa: PLC0415

            self._writer = pq.ParquetWriter(str(path), self.schema)
        else:
            from pyarrow import ipc  # noqa: PLC0415

            self._file = pa.OSFile(str(path), "wb")
            self._writer = ipc.new_file(self._file, self.schema)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._csv is not None:
            self._csv.writerows([inert(v) for v in row] for row in rows)
            return
        columns = list(zip(*rows))
        arrays = [self._pa.array(col, type=field.type) for col, field in zip(columns, self.schema)]
        self._writer.write(self._pa.record_batch(arrays, schema=self.schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()


def _node_name(registry: Registry, exp: str, index: int) -> str:
    e = registry.experiment(exp)
    if e is not None and 0 <= index < len(e.nodes):
        return e.nodes[index]
    return str(index)


def _named(registry: Registry, chunks: Iterator[List[tuple]], extra: bool = False) -> Iterator[List[tuple]]:
    for chunk in chunks:
        yield [
            (u, e, c, _node_name(registry, e, s), _node_name(registry, e, d), n, *rest)
            for (u, e, c, s, d, n, *rest) in chunk
        ]


def export(
    store: Store,
    registry: Registry,
    out_dir: Path,
    fmt: str,
    *,
    chunk_size: int = 50000,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Path]:
    """Write every table to ``out_dir`` in ``fmt``; returns table -> file written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "feather" if fmt == "feather" else fmt
    total_events = store.count_events()
    tables: List[Tuple[str, Sequence[Tuple[str, str]], Iterator[List[tuple]], int]] = [
        ("events", EVENTS_SCHEMA, store.iter_events(chunk_size), total_events),
        ("matrices", MATRICES_SCHEMA, _named(registry, store.iter_transitions(chunk_size)), 0),
        ("feedback", FEEDBACK_SCHEMA, store.iter_feedback(chunk_size), 0),
        ("legacy_adjacency", LEGACY_SCHEMA, _named(registry, store.iter_legacy_adjacency(chunk_size)), 0),
    ]
    written: Dict[str, Path] = {}
    for name, schema, chunks, total in tables:
        path = out_dir / f"{name}.{suffix}"
        writer = _Writer(path, fmt, schema)
        rows = 0
        try:
            for chunk in chunks:
                writer.write(chunk)
                rows += len(chunk)
                if progress is not None and total:
                    progress(f"{name}: {rows}/{total} rows")
        finally:
            writer.close()
        if progress is not None:
            progress(f"{name}: {rows} rows written to {path}")
        written[name] = path
    return written
