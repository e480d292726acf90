"""report: a student's matrix, indicators, distances and feedback, readable in a terminal."""

from pathlib import Path

import pytest
from conftest import SAMPLE_LOGS, message

from practable_analytics.cli import main
from practable_analytics.commands.report import indicator_lines, number, ranked
from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "r.db"
    with Store(path) as store:
        h = Handler(store, Registry.load())
        h.handle_texts((SAMPLE_LOGS / "test-test00-spinner-engdes1.json").read_text().splitlines())
        h.handle_many(
            [
                message("feedback", user="test", state="Curious", subject="UI"),
                message("feedback", user="test", state="Bored", subject="Hardware"),
                message("feedback", user="test", state="Curious", subject="LA"),
                message(user="test", exp="pendulum", log="start", t=1),
                message(user="test", exp="pendulum", log="record", t=2),
                message(user="test", exp="lathe", log="cut", t=2),
            ]
        )
    return path


def test_report_one_course(db: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--db", str(db), "--user", "test", "--exp", "spinner", "--course", "engdes1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "user test  exp spinner  course engdes1"
    # aligned matrix rows: V->V 1, V->P 1; P->P 2, P->PR 1; PR->P 1, PR->PR 3
    assert "  0 voltage_step  1 0 1 0 0 0" in lines
    assert "  2 position_step 0 0 2 1 0 0" in lines
    assert "  3 position_ramp 0 0 1 3 0 0" in lines
    # exploration 70 and edges 100*9/49 (see test_responses); enjoyment 2 - 1
    # each indicator once, with its scale; numbers as integers or two decimals
    at = lines.index("Indicators:")
    assert lines[at + 1].split()[:2] == ["exploration", "70"] and "-all graph" in lines[at + 1]
    assert lines[at + 2].split()[:2] == ["enjoyment", "1"] and "minus" in lines[at + 2]
    assert lines[at + 3].split()[:3] == ["edges", "18.37", "%"] and "percentage" in lines[at + 3]
    row = next(x for x in lines if x.strip().startswith("spinner-engdes1-1-core "))
    assert row.split() == ["spinner-engdes1-1-core", "13", "10"]
    # distances closest first (ties by name), under a header naming both columns
    head = next(i for i, x in enumerate(lines) if x.startswith("Task distances, closest first"))
    assert "TaskDistance a=10, b=1" in lines[head + 1] and lines[head + 2].startswith("  GED: ")
    assert lines[head + 3].split() == ["graph", "TaskDistance", "GED"]
    rows = [x.split() for x in lines[head + 4 :] if x.startswith("  spinner-")]
    assert len(rows) == 5
    assert [(float(r[1]), r[0]) for r in rows] == sorted((float(r[1]), r[0]) for r in rows)
    assert "Feedback (counted reports): Bored 1, Curious 2" in lines
    assert "pendulum" not in out


def test_report_every_course_of_the_user(db: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--db", str(db), "--user", "test"]) == 0
    out = capsys.readouterr().out
    assert (
        "user test  exp pendulum  course engdes1" in out and "user test  exp spinner  course engdes1" in out
    )
    assert "  0 start           0 0 0 0 0 0 0 0 1" in out.splitlines()
    assert "exp lathe" in out and "unknown experiment" in out


def test_report_errors(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--db", str(db), "--user", "nobody"]) == 1
    assert capsys.readouterr().err.startswith("practable-analytics: error: no events for user 'nobody'")
    assert main(["report", "--db", str(tmp_path / "absent.db"), "--user", "test"]) == 1
    assert "absent.db: no such database file" in capsys.readouterr().err


def test_ranked_and_number_are_the_one_format() -> None:
    got = ranked({"b": 2.0, "a": 2.0, "c": None, "d": 0.5})
    assert got == [("d", 0.5), ("a", 2.0), ("b", 2.0), ("c", None)]
    assert [number(v) for v in (70.0, 18.367346, None, 0)] == ["70", "18.37", "undefined", "0"]
    lines = indicator_lines({"exploration": None, "enjoyment": -2, "edges": None})
    want = [["exploration", "undefined"], ["enjoyment", "-2"], ["edges", "undefined"]]
    assert [x.split()[:2] for x in lines] == want
