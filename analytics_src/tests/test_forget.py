"""forget: one student erased everywhere, everybody else untouched, nothing left in the file."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE_LOGS

from practable_analytics.cli import main
from practable_analytics.events import Event
from practable_analytics.experiments import Registry
from practable_analytics.legacy import import_dir
from practable_analytics.store import Store

GONE = "0417fa50-de61-4a45-b71f-410fc7da9388"


def analytics(user: str, t: int, node: int) -> Event:
    raw = json.dumps({"user": user, "t": t, "payload": {"log": "x"}})
    return Event("analytics", user, "spinner", "engdes1", "spin30", t, "x", node, raw)


def test_forget_removes_every_trace_of_one_student(tmp_path: Path, registry: Registry) -> None:
    db = tmp_path / "a.db"
    with Store(db) as store:
        import_dir(store, registry, SAMPLE_LOGS)  # GONE has one pendulum line + a legacy marker
        store.add_events(
            [
                analytics(GONE, 1, 0),
                analytics(GONE, 2, 1),
                analytics("keep", 1, 0),
                analytics("keep", 2, 2),
                Event("feedback", GONE, "spinner", "engdes1", None, 3, None, None, "{}", "Engaged", "UI"),
                Event("feedback", "keep", "spinner", "engdes1", None, 3, None, None, "{}", "Bored", "UI"),
                Event("request", GONE, "spinner", "engdes1", None, 4, None, None, "{}"),
                Event("invalid", None, None, None, None, None, None, None, f'{{"user": "{GONE}", "t": '),
                Event("invalid", None, None, None, None, None, None, None, "unrelated garbage"),
            ]
        )
        store.set_legacy_adjacency(GONE, "spinner", "engdes1", np.ones((6, 6)), "x.csv")
        before = store.count_events()
        keep_matrix = store.matrix("keep", "spinner", "engdes1", 6)
        removed = store.forget(GONE)
        assert removed == {
            "events": 1 + 4 + 1,  # pendulum log line, 4 attributed events, 1 invalid text naming the id
            "transitions": 1,
            "feedback": 1,
            "legacy_markers": 1,
            "legacy_adjacency": 36,
        }
        assert store.count_events() == before - 6
        assert GONE not in store.users()
        assert store.matrix(GONE, "spinner", "engdes1", 6).sum() == 0
        assert store.feedback_counts(GONE, "spinner", "engdes1") == {}
        assert np.array_equal(store.matrix("keep", "spinner", "engdes1", 6), keep_matrix)
        assert store.feedback_counts("keep", "spinner", "engdes1") == {"Bored": 1}
        assert store.forget(GONE) == dict.fromkeys(removed, 0)
    # the id is gone from the bytes on disk too (secure_delete + WAL checkpoint)
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("a.db*"))
    assert GONE.encode() not in blob
    assert b"keep" in blob


def test_forget_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "a.db"
    with Store(db) as store:
        store.add_events([analytics("u9", 1, 0), analytics("u9", 2, 0)])
    assert main(["forget", "--db", str(db), "--user", "u9"]) == 0
    out = capsys.readouterr().out
    assert "user u9: 3 rows removed" in out and "  events: 2" in out and "  transitions: 1" in out
    assert main(["forget", "--db", str(db), "--user", "u9"]) == 0
    assert "nothing stored for this user" in capsys.readouterr().out
    assert main(["forget", "--db", str(db), "--user", " "]) == 2
    assert main(["forget", "--db", str(tmp_path / "no" / "dir.db"), "--user", "x"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert all(line.startswith("practable-analytics: error:") for line in err) and len(err) == 2


def test_short_ids_do_not_sweep_unrelated_invalid_text(tmp_path: Path) -> None:
    with Store(tmp_path / "a.db") as store:
        store.add_events(
            [
                analytics("ab", 1, 0),
                Event("invalid", None, None, None, None, None, None, None, "table of abbreviations"),
            ]
        )
        assert store.forget("ab")["events"] == 1
        assert store.count_events() == 1
