"""responses: the SPEC section 1 shapes, exactly, and the error object."""

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import pytest

from practable_analytics.experiments import Registry
from practable_analytics.messages import Request
from practable_analytics.responses import ALL_FEEDBACK, Responder, encode


def req(content: str, exp: str = "spinner", course: str = "engdes1", **payload: Any) -> Request:
    return Request(
        user="u1", exp=exp, course=course, content=content, payload={"content": content, **payload}
    )


@pytest.fixture(scope="module")
def responder(registry: Registry) -> Responder:
    return Responder(registry)


def student() -> np.ndarray:
    am = np.zeros((6, 6))
    am[0, 0] = 1  # voltage_step -> voltage_step
    am[0, 2] = 1  # voltage_step -> position_step
    am[2, 2] = 2
    am[2, 3] = 1
    am[3, 3] = 3
    am[3, 2] = 1
    return am


def one(
    responder: Responder, r: Request, am: np.ndarray, counts: Optional[Mapping[str, int]] = None
) -> Dict[str, Any]:
    out = responder.answer(r, am, counts or {})
    assert len(out) == 1
    json.dumps(out, allow_nan=False)
    return out[0]


def test_student_graph_shape(responder: Responder) -> None:
    got = one(responder, req("student_graph"), student())
    head = {k: got[k] for k in ("user", "type", "exp", "course", "content")}
    assert head == {
        "user": "u1",
        "type": "response",
        "exp": "spinner",
        "course": "engdes1",
        "content": "student_graph",
    }
    assert set(got) == {"user", "type", "exp", "course", "content", "nodes", "edges", "node_info"}
    assert got["nodes"][0] == {
        "id": "voltage_step", "label": "voltage_step", "shape": "dot", "size": 10, "color": "#97c2fc",
        "x": 100, "y": -200 * math.sin(math.radians(60)), "physics": False,
    }  # fmt: skip
    assert '"y":-173.20508075688772,' in encode(got)  # full precision on the wire, not -173.2
    assert got["nodes"][2]["x"] == 200 and got["nodes"][2]["y"] == 0
    assert [n["id"] for n in got["nodes"]] == list(responder._registry.experiment("spinner").nodes)  # type: ignore[union-attr]
    assert got["edges"] == [
        {"from": "voltage_step", "to": "voltage_step", "width": 1, "label": "1", "arrows": "to"},
        {"from": "voltage_step", "to": "position_step", "width": 1, "label": "1", "arrows": "to"},
        {"from": "position_step", "to": "position_step", "width": 2, "label": "2", "arrows": "to"},
        {"from": "position_step", "to": "position_ramp", "width": 1, "label": "1", "arrows": "to"},
        {"from": "position_ramp", "to": "position_step", "width": 1, "label": "1", "arrows": "to"},
        {"from": "position_ramp", "to": "position_ramp", "width": 3, "label": "3", "arrows": "to"},
    ]
    # column position_step has 3 non-zero cells (from voltage_step, itself, position_ramp): 3/5
    assert got["node_info"] == {
        "in_centrality": {"voltage_step": 0.2, "voltage_ramp": 0.0, "position_step": 0.6,
                          "position_ramp": 0.4, "speed_step": 0.0, "speed_ramp": 0.0}
    }  # fmt: skip


def test_edge_width_keeps_fractions_and_label_truncates(responder: Responder) -> None:
    got = one(responder, req("comparison_graph", graph="spinner-cie3-mean-21-22"), np.zeros((6, 6)))
    assert got["content"] == "comparison_graph"
    assert {
        "from": "voltage_step",
        "to": "voltage_step",
        "width": 795,
        "label": "795",
        "arrows": "to",
    } in got["edges"]
    am = np.zeros((6, 6))
    am[1, 1] = 2.5
    edge = one(responder, req("student_graph"), am)["edges"][0]
    assert edge["width"] == 2.5 and edge["label"] == "2"


def test_task_identification_every_graph_of_the_course(responder: Responder, registry: Registry) -> None:
    got = one(responder, req("task_identification", course="cie3"), student())
    course = registry.experiment("spinner").courses["cie3"]  # type: ignore[union-attr]
    assert list(got["tasks"]) == list(course.graphs) and len(got["tasks"]) == 8
    # spinner-cie3-3: B has (2,2)=1 (2,3)=1 (3,3)=3; A additional (0,0) loop 2 + (0,2) 1 + (3,2) 1 = 4;
    # (2,2) n=(2-1)/1=1 -> 0.5, (2,3) equal, (3,3) equal -> total 4.5
    assert got["tasks"]["spinner-cie3-3"] == pytest.approx(4.5, abs=1e-12)
    ged = one(responder, req("task_identification", course="cie3", algorithm="ged"), student())
    # |A - B| for spinner-cie3-3: 1 + 1 + 1 (2 vs 1) + 0 + 0 + 1 = 4
    assert ged["tasks"]["spinner-cie3-3"] == 4.0
    empty = one(responder, req("task_identification"), np.zeros((6, 6)))
    assert set(empty["tasks"].values()) == {None}
    assert json.loads(encode(empty))["tasks"]["spinner-engdes1-all"] is None


def test_indicators(responder: Responder) -> None:
    got = one(responder, req("indicators"), student(), {"Curious": 2, "Bored": 1})
    # engdes1-all has 49 transitions, the student 9: 100*9/49
    assert got["indicators"]["edges"] == pytest.approx(900 / 49, abs=1e-12)
    assert got["indicators"]["enjoyment"] == 1
    # exploration (a=0,b=10) vs engdes1-all {(2,2):19,(2,4):1,(4,4):29}: additional (0,0) 20, (0,2) 10,
    # (2,3) 10, (3,2) 10, (3,3) 20 = 70; (2,2) n=(2-19)/19 < 0 -> a*|n| = 0; mean 0 -> 70
    assert got["indicators"]["exploration"] == pytest.approx(70.0, abs=1e-12)
    none = one(responder, req("indicators", course="nocourse"), student())
    assert none["indicators"] == {"exploration": None, "enjoyment": 0, "edges": None}  # no -all graph


def test_centroids(responder: Responder, registry: Registry) -> None:
    got = one(responder, req("centroids"), student())
    c = got["centroids"]
    assert list(c) == ["student", "task1core", "task1ext", "task2", "all", "vertices"]
    # masses: voltage_step 1, position_step 1+2+1 = 4, position_ramp 1+3 = 4 -> x = (0.5 + 4 - 4)/9
    assert c["student"][0] == pytest.approx(0.5 / 9, abs=1e-12)
    assert c["task1core"] == [1.0, 0.0] and c["task2"] == [0.5, pytest.approx(-(3**0.5) / 2)]
    assert c["vertices"][0] == {"name": "voltage_step", "x": 0.5, "y": pytest.approx(3**0.5 / 2)}
    cie3 = one(responder, req("centroids", course="cie3"), np.zeros((6, 6)))["centroids"]
    assert list(cie3) == ["student", "task1", "task3", "task4", "all", "vertices"]
    assert cie3["student"] == [None, None]
    bare = one(responder, req("centroids", course="nocourse"), student())["centroids"]
    assert list(bare) == ["student", "all", "vertices"] and bare["all"] == [None, None]


def test_task_feedback(responder: Responder) -> None:
    got = one(responder, req("task_feedback", task="spinner-engdes1-all"), student())
    assert got["feedback"] == {
        "hardware": ["speed_step"],
        "hardware_freq": ["position_step"],
        "transition": ["position_step to speed_step"],
        "transition_freq": [],
    }
    assert one(responder, req("task_feedback", task="all"), student())["feedback"] == got["feedback"]


def test_all_feedback_is_five_messages_in_order(responder: Responder) -> None:
    out = responder.answer(req("all_feedback", graph="spinner-engdes1-2"), student(), {"Engaged": 1})
    assert [m["content"] for m in out] == list(ALL_FEEDBACK) == [
        "student_graph", "comparison_graph", "task_identification", "indicators", "centroids",
    ]  # fmt: skip
    assert out[1]["edges"] == [
        {"from": "speed_step", "to": "speed_step", "width": 29, "label": "29", "arrows": "to"}
    ]
    assert out[3]["indicators"]["enjoyment"] == 1
    for m in out:
        json.dumps(m, allow_nan=False)


@pytest.mark.parametrize(
    ("r", "reason"),
    [
        (req("sing"), "unknown content"),
        (req("indicators", exp="lathe"), "unknown exp"),
        (req("comparison_graph"), "invalid field: payload.graph"),
        (req("comparison_graph", graph=5), "invalid field: payload.graph"),
        (req("comparison_graph", graph="pendulum-engdes1-all"), "unknown graph: payload.graph"),
        (req("task_feedback", task="nope"), "unknown graph: payload.task"),
        (req("task_identification", algorithm="magic"), "invalid field: payload.algorithm"),
        (req("task_identification", course="nocourse"), "no comparison graphs for this exp and course"),
    ],
)
def test_unanswerable_requests_get_the_error_object(responder: Responder, r: Request, reason: str) -> None:
    assert responder.answer(r, np.zeros((6, 6)), {}) == [
        {"type": "response", "content": "error", "user": "u1", "error": reason, "request": r.content}
    ]


def test_all_feedback_answers_every_part_it_can_and_an_error_in_place_of_the_others(
    responder: Responder,
) -> None:
    def shape(out: List[dict]) -> List[Tuple[str, Optional[str], Optional[str]]]:
        return [(m["content"], m.get("request"), m.get("error")) for m in out]

    no_course = responder.answer(req("all_feedback", graph="all", course="nocourse"), student(), {})
    assert shape(no_course) == [
        ("student_graph", None, None),
        ("error", "comparison_graph", "unknown graph: payload.graph"),
        ("error", "task_identification", "no comparison graphs for this exp and course"),
        ("indicators", None, None),
        ("centroids", None, None),
    ]
    assert no_course[3]["indicators"] == {"exploration": None, "enjoyment": 0, "edges": None}
    unknown = responder.answer(req("all_feedback", graph="nope"), student(), {})
    assert [m["content"] for m in unknown] == ["student_graph", "error", "task_identification",
                                               "indicators", "centroids"]  # fmt: skip
    assert unknown[1]["request"] == "comparison_graph" and unknown[1]["user"] == "u1"
    assert responder.check(req("all_feedback")) is None  # no graph: answered part by part, not refused


def test_encode_is_compact_and_sends_non_finite_numbers_as_null() -> None:
    assert encode({"a": [1, None], "b": "é"}) == '{"a":[1,null],"b":"\\u00e9"}'
    tasks = {"tasks": {"g": float("inf"), "h": 2.5}, "c": [float("nan"), (float("-inf"), 1.0)]}
    assert encode(tasks) == '{"tasks":{"g":null,"h":2.5},"c":[null,[null,1.0]]}'
    assert tasks["tasks"]["g"] == float("inf")  # the answer itself is not changed
