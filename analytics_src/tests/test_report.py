"""report: a student's matrix, indicators, distances and feedback, readable in a terminal."""

from pathlib import Path

import pytest
from conftest import SAMPLE_LOGS, message

from practable_analytics.cli import main
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
    assert "Indicators: exploration 70  enjoyment 1  edges 18.367 %" in lines
    row = next(x for x in lines if x.strip().startswith("spinner-engdes1-1-core "))
    assert row.split() == ["spinner-engdes1-1-core", "13", "10"]
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
