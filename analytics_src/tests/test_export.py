"""export: every table written chunk by chunk and read back by pandas with the right rows and dtypes."""

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from practable_analytics.cli import main
from practable_analytics.events import Event
from practable_analytics.store import Store

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


def fill(path: Path) -> None:
    with Store(path) as store:
        events = []
        for i in range(130):  # two users, voltage/position alternating, one unmapped log
            user = "alice" if i % 2 else "bob"
            node = None if i % 13 == 0 else (i // 2) % 3
            events.append(Event("analytics", user, "spinner", "engdes1", "spin30", 1000 + i, "x", node, "{}"))
        events.append(
            Event("feedback", "alice", "spinner", "engdes1", None, 2000, None, None, "{}", "Engaged", "UI")
        )
        events.append(
            Event("feedback", "alice", "spinner", "engdes1", None, 2001, None, None, "{}", "Bored", "LA")
        )
        events.append(Event("invalid", None, None, None, None, None, None, None, "{oops"))
        for start in range(0, len(events), 40):
            store.add_events(events[start : start + 40])
        m = np.zeros((6, 6))
        m[0, 1] = 2.0
        store.set_legacy_adjacency("carol", "spinner", "engdes1", m, "carol-spinner-engdes1-adjacency.csv")


@pytest.mark.parametrize("fmt", ["parquet", "feather", "csv"])
def test_export_reads_back_in_pandas(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "a.db"
    fill(db)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="practable_analytics"):
        rc = main(["export", "--db", str(db), "--format", fmt, "--out", str(out), "--chunk-rows", "50"])
    assert rc == 0
    progress = [r.getMessage() for r in caplog.records if "events:" in r.getMessage()]
    assert "events: 50/133 rows" in progress and "events: 100/133 rows" in progress
    read = {"parquet": pd.read_parquet, "feather": pd.read_feather, "csv": pd.read_csv}[fmt]
    events = read(out / f"events.{fmt}")
    matrices = read(out / f"matrices.{fmt}")
    feedback = read(out / f"feedback.{fmt}")
    legacy = read(out / f"legacy_adjacency.{fmt}")
    with Store(db) as store:
        assert len(events) == store.count_events() == 133
        transitions = [r for chunk in store.iter_transitions() for r in chunk]
        assert len(matrices) == len(transitions)
        alice = store.matrix("alice", "spinner", "engdes1", 6)
    assert list(events.columns)[:5] == ["id", "received_at", "stream", "type", "user"]
    assert events["id"].is_monotonic_increasing and events["id"].dtype == np.int64
    assert events["received_at"].dtype == np.float64
    assert events["type"].tolist().count("invalid") == 1
    assert events["raw"].iloc[-1] == "{oops"
    # long-form matrices carry node names and integer counts that rebuild the matrix
    assert matrices["count"].dtype == np.int64
    names = ["voltage_step", "voltage_ramp", "position_step", "position_ramp", "speed_step", "speed_ramp"]
    rebuilt = np.zeros((6, 6))
    mine = matrices[matrices["user"] == "alice"]
    for src, dst, count in zip(mine["from"], mine["to"], mine["count"]):
        rebuilt[names.index(src), names.index(dst)] = count
    assert np.array_equal(rebuilt, alice) and alice.sum() > 0
    assert sorted(zip(feedback["state"], feedback["count"])) == [("Bored", 1), ("Engaged", 1)]
    assert feedback["count"].dtype == np.int64
    assert legacy[["user", "from", "to"]].values.tolist() == [["carol", "voltage_step", "voltage_ramp"]]
    assert legacy["count"].dtype == np.float64
    if fmt != "csv":  # typed formats keep string columns as strings even when mostly null
        assert pd.api.types.is_string_dtype(events["state"]) and pd.api.types.is_string_dtype(events["user"])
    assert "events: " in capsys.readouterr().out


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--db", str(tmp_path / "none.db"), "--format", "csv", "--out", str(tmp_path)]) == 1
    assert "no such database file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--db", "x", "--format", "xlsx", "--out", str(tmp_path)])
    capsys.readouterr()
    db = tmp_path / "a.db"
    fill(db)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", "--db", str(db), "--format", "csv", "--out", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("practable-analytics: error: cannot write") and err.count("\n") == 1


HOSTILE = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "plain", "a=b"]


@pytest.mark.parametrize("fmt", ["parquet", "feather", "csv"])
def test_csv_cells_that_a_spreadsheet_would_run_are_inert(tmp_path: Path, fmt: str) -> None:
    """A user id (or any text) starting with = + - @ tab or CR is written with a leading ' in CSV, as
    spreadsheet tools expect; parquet and feather keep the raw values."""
    db = tmp_path / "a.db"
    with Store(db) as store:
        store.add_events(
            [Event("analytics", u, "spinner", "engdes1", "spin30", 1000 + i, "voltage", 0, u) for i, u in
             enumerate(HOSTILE)]
        )  # fmt: skip
    out = tmp_path / "out"
    assert main(["export", "--db", str(db), "--format", fmt, "--out", str(out)]) == 0
    read = {"parquet": pd.read_parquet, "feather": pd.read_feather, "csv": pd.read_csv}[fmt]
    events = read(out / f"events.{fmt}")
    want = HOSTILE if fmt != "csv" else [("'" + u if u[0] in "=+-@\t\r" else u) for u in HOSTILE]
    assert events["user"].tolist() == want
    assert events["raw"].tolist() == want
    assert events["t"].tolist() == [1000 + i for i in range(len(HOSTILE))]  # numbers untouched
    if fmt == "csv":  # every cell of every table, as a spreadsheet reads them
        for table in out.glob("*.csv"):
            with table.open(newline="") as f:
                cells = [c for row in csv.reader(f) for c in row]
            assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], table
