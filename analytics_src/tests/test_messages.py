"""messages: the validation limits and which messages become which events."""

import hashlib
import json
from typing import Any

import pytest
from conftest import message, request

from practable_analytics.experiments import Registry
from practable_analytics.messages import (
    INVALID_KEEP_CHARS,
    MAX_DEPTH,
    MAX_TEXT_CHARS,
    parse_message,
    parse_t,
    parse_text,
    valid_id,
)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (1673351988406, 1673351988406),
        (1673351988406.0, 1673351988406),
        (0, 0),
        (True, None),
        (False, None),
        (1.5, None),
        (float("nan"), None),
        (float("inf"), None),
        (-1, None),
        (2**53 + 1, None),
        ("1673351988406", None),
        (None, None),
    ],
)
def test_t_is_integer_milliseconds(value: Any, want: Any) -> None:
    assert parse_t(value) == want


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("53a6788c-e689-48d4-9231-c2fbd23df009", True),
        ("a/b", True),
        ("..", True),
        ("é ü 学生", True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("", False),
        ("a\x00b", False),
        ("a\nb", False),
        ("a\x7f", False),
        ("\ud800", False),
        (1, False),
        (True, False),
        (None, False),
        (["a"], False),
    ],
)
def test_ids(value: Any, ok: bool) -> None:
    assert valid_id(value) is ok


def test_analytics_maps_log_to_node(registry: Registry) -> None:
    p = parse_message(message(log="position", data={"set": 1}), registry, "spin30")
    assert p.error is None and p.request is None and p.event is not None
    e = p.event
    assert (e.type, e.user, e.exp, e.course, e.hardware, e.t, e.log, e.node, e.stream) == (
        "analytics", "u1", "spinner", "engdes1", "spin30", 1000, "position", 2, "spin30",
    )  # fmt: skip
    assert json.loads(e.raw)["payload"]["data"] == {"set": 1}


def test_unmapped_log_and_unknown_exp_keep_the_event_without_node(registry: Registry) -> None:
    for m in (message(log="warp"), message(exp="lathe", log="position")):
        p = parse_message(m, registry)
        assert p.event is not None and p.event.type == "analytics" and p.event.node is None
        assert p.error is None


def test_response_messages_are_ignored(registry: Registry) -> None:
    p = parse_text('{"type":"response","content":"indicators"}', registry)
    assert p.event is None and p.request is None and p.error is None


@pytest.mark.parametrize(
    "bad",
    [
        message(user=""),
        message(user=7),  # type: ignore[arg-type]
        message(t=True),
        message(t=1.5),
        message(t="soon"),
        message(t=None, log="voltage"),
        message(exp=None),  # type: ignore[arg-type]
        message(hardware=3),  # type: ignore[arg-type]
        message(log=None),
        message(log=5),
        {"user": "u1", "t": 1, "exp": "spinner", "course": "c", "type": "analytics", "payload": []},
        {"user": "u1", "t": 1, "exp": "spinner", "course": "c", "type": "wat", "payload": {}},
        {"user": "u1", "t": 1, "exp": "spinner", "course": "c", "payload": {"log": "voltage"}},
        [1, 2],
        "text",
        None,
    ],
)
def test_invalid_messages_are_stored_as_invalid_without_answer(registry: Registry, bad: Any) -> None:
    p = parse_message(bad, registry, "s")
    assert p.event is not None and p.event.type == "invalid" and p.event.stream == "s"
    assert p.request is None and p.error is None
    assert p.event.user is None and p.event.node is None


def test_invalid_request_is_answered_with_the_error_object(registry: Registry) -> None:
    p = parse_message(request("indicators", t=float("nan")), registry)
    assert p.event is not None and p.event.type == "invalid"
    assert p.error == {
        "type": "response",
        "content": "error",
        "user": "u1",
        "error": "invalid field: t",
        "request": "indicators",
    }
    p = parse_message({"type": "request", "user": "a\x00", "payload": {"content": 3}}, registry)
    assert p.error is not None and p.error["user"] is None and p.error["request"] is None


def test_request_without_t_is_valid(registry: Registry) -> None:
    p = parse_message(request("indicators", t=None), registry)
    assert p.event is not None and p.event.type == "request" and p.event.t is None
    assert p.request is not None and p.request.content == "indicators" and p.error is None
    p = parse_message(request(None), registry)  # type: ignore[arg-type]
    assert p.event is not None and p.event.type == "request"
    assert p.error is not None and p.error["error"] == "invalid field: payload.content"


def test_feedback_states_and_subjects(registry: Registry) -> None:
    ok = parse_message(message("feedback", state="Curious", subject="Hardware"), registry)
    assert (
        ok.event is not None
        and (ok.event.state, ok.event.subject) == ("Curious", "Hardware")
        and ok.error is None
    )
    task = parse_message(message("feedback", state="Bored", subject="spinner-engdes1-2"), registry)
    assert task.event is not None and task.event.subject == "spinner-engdes1-2"
    for payload, field in (({"state": "Happy", "subject": "UI"}, "payload.state"),
                           ({"state": "Bored", "subject": "Lunch"}, "payload.subject"),
                           ({"state": "Bored", "subject": ["UI"]}, "payload.subject"),
                           ({"state": ["Bored"], "subject": "UI"}, "payload.state")):  # fmt: skip
        p = parse_message(message("feedback", **payload), registry)
        assert p.event is not None and p.event.type == "feedback"
        assert p.event.state is None and p.event.subject is None  # kept, not counted
        assert p.error is not None and p.error["error"] == f"invalid field: {field}"
        assert p.error["request"] == "feedback"


def test_text_limits(registry: Registry) -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    p = parse_text(deep, registry)
    assert p.event is not None and p.event.type == "invalid" and p.event.raw == deep
    # deep brackets inside a string do not count
    fine = json.dumps(message(log="voltage", note="[" * 5000))
    p = parse_text(fine, registry)
    assert p.event is not None and p.event.type == "analytics" and p.event.raw == fine
    nested = message(log="voltage", data=json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH))
    assert parse_text(json.dumps(nested), registry).event.type == "invalid"  # type: ignore[union-attr]
    huge = json.dumps(message(log="voltage", data="x" * MAX_TEXT_CHARS))
    p = parse_text(huge, registry)
    assert p.event is not None and p.event.type == "invalid"
    digest = hashlib.sha256(huge.encode()).hexdigest()
    assert p.event.raw == huge[:INVALID_KEEP_CHARS] + (
        f"\n[truncated: {len(huge)} characters received, sha256 {digest}]"
    )


def test_unparseable_and_surrogate_text_is_stored_safely(registry: Registry) -> None:
    for text in ("garbage", "{", '{"a": NaN', "\ud800 lone", '"\\ud800"'):
        p = parse_text(text, registry)
        assert p.event is not None and p.event.type == "invalid" and p.error is None
        p.event.raw.encode("utf-8")  # storable as UTF-8
    p = parse_text(json.dumps(message(log="voltage", data="\ud800")), registry)
    assert p.event is not None and p.event.type == "analytics"
