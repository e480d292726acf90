"""Handler over a real SQLite store: storing rules, answers from stored history, batching, restarts."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
from conftest import SAMPLE_LOGS, message, read_jsonl, request, strict_json

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.store import Store

V, VR, P, PR, S, SR = range(6)


def stored(db: Path, sql: str = "SELECT type, user, node, raw FROM events ORDER BY id") -> List[tuple]:
    with sqlite3.connect(str(db)) as conn:
        return conn.execute(sql).fetchall()


def lines(*names: str) -> List[str]:
    out: List[str] = []
    for name in names:
        out += [x for x in (SAMPLE_LOGS / name).read_text().splitlines() if x.strip()]
    return out


def test_sample_log_gives_the_hand_counted_matrix(handler: Handler) -> None:
    assert handler.handle_texts(lines("test-test00-spinner-engdes1.json")) == [[]] * 10
    # voltage voltage position position position position_ramp x4 position:
    # V->V 1, V->P 1, P->P 2, P->PR 1, PR->PR 3, PR->P 1
    want = np.zeros((6, 6))
    want[V, V], want[V, P], want[P, P], want[P, PR], want[PR, PR], want[PR, P] = 1, 1, 2, 1, 3, 1
    (answer,) = handler.handle(request("student_graph", user="test"))
    got = np.zeros((6, 6))
    names = handler.registry.experiment("spinner").nodes  # type: ignore[union-attr]
    for e in answer["edges"]:
        got[names.index(e["from"]), names.index(e["to"])] = e["width"]
    assert np.array_equal(got, want)
    assert np.array_equal(handler.store.matrix("test", "spinner", "engdes1", 6), want)  # type: ignore[attr-defined]


def test_two_devices_interleave_by_time(handler: Handler) -> None:
    user = "53a6788c-e689-48d4-9231-c2fbd23df009"
    # spin30 sends voltage at even ms, spin31 voltage_ramp at odd ms: V R V R ... (20 events)
    handler.handle_texts(lines(f"{user}-spin30-spinner-engdes1.json"), stream="spin30")
    handler.handle_texts(lines(f"{user}-spin31-spinner-engdes1.json"), stream="spin31")
    m = handler.store.matrix(user, "spinner", "engdes1", 6)  # type: ignore[attr-defined]
    want = np.zeros((6, 6))
    want[V, VR], want[VR, V] = 10, 9
    assert np.array_equal(m, want)


def test_single_event_pendulum_student_has_undefined_numbers(handler: Handler) -> None:
    handler.handle_texts(lines("0417fa50-de61-4a45-b71f-410fc7da9388-pend00-pendulum-engdes1.json"))
    user = "0417fa50-de61-4a45-b71f-410fc7da9388"
    out = handler.handle(request("all_feedback", user=user, exp="pendulum", graph="all"))
    assert [m["content"] for m in out] == [
        "student_graph", "comparison_graph", "task_identification", "indicators", "centroids",
    ]  # fmt: skip
    assert out[0]["edges"] == [] and set(out[2]["tasks"].values()) == {None}
    assert out[3]["indicators"] == {"exploration": None, "enjoyment": 0, "edges": 0.0}
    assert out[4]["centroids"]["student"] == [None, None]
    strict_json(out)


def test_storing_rules(handler: Handler) -> None:
    msgs = [
        message(log="voltage"),
        message("log", log="opened-ui"),
        message("feedback", state="Engaged", subject="UI"),
        message("feedback", state="Sleepy", subject="UI"),
        request("indicators"),
        {"type": "response", "user": "u1", "content": "indicators"},
        "not an object",
        message(log="position", t=True),
    ]
    answers = handler.handle_many(msgs, stream="spin30")
    assert answers[0] == answers[1] == answers[2] == answers[5] == answers[6] == answers[7] == []
    assert answers[3] == [
        {
            "type": "response",
            "content": "error",
            "user": "u1",
            "error": "invalid field: payload.state",
            "request": "feedback",
        }
    ]
    assert answers[4][0]["indicators"]["enjoyment"] == 1  # the bad feedback is not counted
    rows = stored(handler.db_path, "SELECT type, user, node, state, stream FROM events ORDER BY id")  # type: ignore[attr-defined]
    assert rows == [
        ("analytics", "u1", V, None, "spin30"),
        ("log", "u1", None, None, "spin30"),
        ("feedback", "u1", None, "Engaged", "spin30"),
        ("feedback", "u1", None, None, "spin30"),
        ("request", "u1", None, None, "spin30"),
        ("invalid", None, None, None, "spin30"),
        ("invalid", None, None, None, "spin30"),
    ]
    raw = stored(handler.db_path, "SELECT raw FROM events WHERE type = 'invalid' ORDER BY id")  # type: ignore[attr-defined]
    assert raw[0][0] == '"not an object"' and json.loads(raw[1][0])["t"] is True


def test_unparseable_text_is_stored_verbatim_and_not_answered(handler: Handler) -> None:
    assert handler.handle_text("hello {") == []
    assert handler.handle_text("") == []
    assert stored(handler.db_path, "SELECT type, raw FROM events") == [
        ("invalid", "hello {"),
        ("invalid", ""),
    ]  # type: ignore[attr-defined]


def test_request_sees_every_event_before_it_in_the_same_batch(handler: Handler) -> None:
    batch = [
        message(log="voltage", t=1),
        message(log="speed", t=2),
        request("student_graph"),
        message(log="speed", t=3),
    ]
    out = handler.handle_many(batch)
    assert [(e["from"], e["to"]) for e in out[2][0]["edges"]] == [("voltage_step", "speed_step")]
    (after,) = handler.handle(request("student_graph"))
    assert len(after["edges"]) == 2


def test_unmapped_log_and_unknown_exp_never_break_requests(handler: Handler) -> None:
    handler.handle_many([message(log="voltage", t=1), message(log="warp", t=2), message(log="speed", t=3)])
    (g,) = handler.handle(request("student_graph"))
    assert [(e["from"], e["to"]) for e in g["edges"]] == [("voltage_step", "speed_step")]  # warp skipped
    handler.handle(message(exp="lathe", log="cut"))
    assert handler.handle(request("indicators", exp="lathe"))[0]["error"] == "unknown exp"
    assert stored(
        handler.db_path, "SELECT exp, node FROM events WHERE exp = 'lathe' AND type = 'analytics'"
    ) == [("lathe", None)]  # type: ignore[attr-defined]


def test_student_graph_needs_only_the_experiment(handler: Handler) -> None:
    handler.handle_many(
        [message(log="voltage", t=1, course="summer"), message(log="speed", t=2, course="summer")]
    )
    (g,) = handler.handle(request("student_graph", course="summer"))
    assert g["course"] == "summer" and len(g["edges"]) == 1
    (e,) = handler.handle(request("task_identification", course="summer"))
    assert e["content"] == "error"


def test_history_survives_a_restart(tmp_path: Path, registry: Registry) -> None:
    db = tmp_path / "a.db"
    with Store(db) as s:
        Handler(s, registry).handle_many([message(log="voltage", t=1), message(log="speed", t=3)])
    with Store(db) as s:
        h = Handler(s, registry)
        h.handle(message(log="position", t=2, hardware="spin31"))  # late, from another device
        (g,) = h.handle(request("student_graph"))
    assert [(e["from"], e["to"]) for e in g["edges"]] == [
        ("voltage_step", "position_step"),
        ("position_step", "speed_step"),
    ]


def test_replaying_all_sample_logs_answers_are_strict_json(handler: Handler) -> None:
    for path in sorted(SAMPLE_LOGS.glob("*.json")):
        handler.handle_texts(path.read_text().splitlines())
    users = {m.get("user") for p in SAMPLE_LOGS.glob("*.json") for m in read_jsonl(p)}
    for user in sorted(u for u in users if u):
        for content in ("all_feedback", "task_feedback", "indicators"):
            for answer in handler.handle(request(content, user=user, graph="all", task="all")):
                assert answer["content"] != "error"
                strict_json(answer)


@pytest.mark.parametrize(
    "module", ["practable_analytics.handler", "practable_analytics.store", "practable_analytics.service"]
)
def test_serving_path_does_not_import_heavy_libraries(module: str) -> None:
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "import practable_analytics.handler\n"
        "heavy = [m for m in ('pandas', 'matplotlib', 'pyvis', 'networkx', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
