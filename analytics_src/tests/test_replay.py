"""replay: JSON-lines through the live Handler; answers on stdout in the wire encoding."""

import json
from pathlib import Path

import pytest
from conftest import PACKAGE_GRAPHS, SAMPLE_LOGS, request

from practable_analytics.cli import main
from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.responses import encode
from practable_analytics.store import Store

SAMPLE = SAMPLE_LOGS / "test-test00-spinner-engdes1.json"


def session(tmp_path: Path) -> Path:
    lines = SAMPLE.read_text().splitlines()
    lines += [
        json.dumps(request("all_feedback", user="test", graph="all")),
        "garbage",
        "",
        json.dumps(request("nonsense", user="test")),
        json.dumps({"type": "response", "content": "indicators", "user": "test"}),
    ]
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_prints_what_the_handler_answers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = session(tmp_path)
    assert main(["replay", "--db", str(tmp_path / "r.db"), str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    # the same lines through a Handler by hand, on another database
    with Store(tmp_path / "check.db") as store:
        h = Handler(store, Registry.load())
        want = [
            encode(a)
            for out in h.handle_texts([x for x in path.read_text().splitlines() if x.strip()])
            for a in out
        ]
    assert printed == want
    assert [json.loads(x)["content"] for x in printed] == [
        "student_graph", "comparison_graph", "task_identification", "indicators", "centroids", "error",
    ]  # fmt: skip
    with Store(tmp_path / "r.db") as store:
        assert (
            store.count_events() == 10 + 1 + 1 + 1
        )  # events, request, garbage, bad request (response ignored)
        assert store.matrix("test", "spinner", "engdes1", 6).sum() == 9


def test_replay_files_in_order_and_env_db(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "1.jsonl"
    first.write_text(
        json.dumps(
            {
                "user": "u",
                "t": 1,
                "exp": "spinner",
                "course": "c",
                "type": "analytics",
                "payload": {"log": "voltage"},
            }
        )
    )
    second = tmp_path / "2.jsonl"
    second.write_text(json.dumps(request("student_graph", user="u", course="c")) + "\n")
    monkeypatch.setenv("PRACTABLE_ANALYTICS_DB", str(tmp_path / "env.db"))
    assert main(["replay", str(second), str(first), str(second)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(out) == 2 and all(o["edges"] == [] for o in out)  # one event: no transition yet
    assert (tmp_path / "env.db").exists()


def test_replay_with_operator_graphs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "spinner-summer-all.csv").write_text((PACKAGE_GRAPHS / "spinner-engdes1-all.csv").read_text())
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(request("task_identification", course="summer")) + "\n")
    assert main(["replay", "--db", str(tmp_path / "g.db"), "--graphs", str(graphs), str(path)]) == 0
    (answer,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert answer["tasks"] == {"spinner-summer-all": None}


def test_replay_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = session(tmp_path)
    assert main(["replay", "--db", str(tmp_path / "x.db"), str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("practable-analytics: error: cannot read") and "\n" not in err
    not_db = tmp_path / "not.db"
    not_db.write_bytes(b"this is not sqlite" * 100)
    assert main(["replay", "--db", str(not_db), str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("practable-analytics: error: ") and "\n" not in err
    assert main(["replay", "--db", str(tmp_path), str(path)]) == 1  # a directory
    bad_graphs = tmp_path / "g"
    bad_graphs.mkdir()
    (bad_graphs / "spinner-x-all.csv").write_text("nonsense")
    assert main(["replay", "--db", str(tmp_path / "y.db"), "--graphs", str(bad_graphs), str(path)]) == 1
    assert "spinner-x-all.csv" in capsys.readouterr().err
