"""Property tests of the Handler over a real SQLite file.

1. The stored matrix always equals the directly-follows graph of the whole (t, arrival)-ordered
   sequence, however the events are split across devices, handle_many batches, text frames and
   restarts (a new Store and Handler on the same file), with out-of-order and tied times.
2. No input makes the handler raise, every answer is strict JSON, and every message except a
   ``response`` is stored exactly once.
"""

import json
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from conftest import message, request, strict_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from practable_analytics import taskgraph
from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.responses import CONTENTS
from practable_analytics.store import Store

REGISTRY = Registry.load()
SPINNER = REGISTRY.experiment("spinner")
assert SPINNER is not None
LOGS = [*SPINNER.log_map, "warp", "reset"]  # two names that map to no node
KEYS = [("u1", "engdes1"), ("u2", "engdes1"), ("u1", "cie3")]

event_st = st.tuples(
    st.sampled_from(LOGS),
    st.integers(0, 40),  # small range: many ties and out-of-order arrivals
    st.sampled_from(["spin30", "spin31", "spin32"]),
    st.sampled_from(range(len(KEYS))),
)
plan_st = st.lists(
    st.tuples(st.integers(1, 8), st.sampled_from(["many", "texts", "single"]), st.booleans()),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event_st, max_size=60), plan=plan_st)
def test_matrix_is_the_dfg_of_the_whole_history(events: List[Tuple[str, int, str, int]], plan: Any) -> None:
    msgs = [
        message(log=log, t=t, hardware=dev, user=KEYS[k][0], course=KEYS[k][1], data={"set": i})
        for i, (log, t, dev, k) in enumerate(events)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "p.db"
        store = Store(db)
        handler = Handler(store, REGISTRY)
        pos = 0
        step = 0
        while pos < len(msgs):
            size, how, restart = plan[step % len(plan)]
            step += 1
            chunk = msgs[pos : pos + size]
            pos += size
            if how == "many":
                assert handler.handle_many(chunk, stream=chunk[0]["hardware"]) == [[]] * len(chunk)
            elif how == "texts":
                assert handler.handle_texts([json.dumps(m) for m in chunk]) == [[]] * len(chunk)
            else:
                for m in chunk:
                    assert handler.handle(m) == []
            if restart:
                store.close()
                store = Store(db)
                handler = Handler(store, REGISTRY)
        for k, (user, course) in enumerate(KEYS):
            ordered = sorted(
                (t, i, SPINNER.log_map[log])
                for i, (log, t, _, kk) in enumerate(events)
                if kk == k and log in SPINNER.log_map
            )
            want = taskgraph.adjacency([node for _, _, node in ordered], 6)
            assert np.array_equal(store.matrix(user, "spinner", course, 6), want)
            (answer,) = handler.handle(request("student_graph", user=user, course=course))
            assert sum(e["width"] for e in answer["edges"]) == want.sum()
        store.close()


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
nasty = st.sampled_from(
    [
        "", "a/b", "..", "../../etc/passwd", "\x00", "a\x00b", "x" * 10_000, "\ud800", True, False, 1.5,
        float("nan"), float("inf"), -1, 2**64, [], {}, None, [[[[[[]]]]]], "spinner", "engdes1",
        "request", "analytics", "feedback", "all_feedback", "spinner-engdes1-all", "all", "ged", "Bored",
    ]
)  # fmt: skip
field_st = nasty | json_st
message_st = st.fixed_dictionaries(
    {},
    optional={
        "user": st.sampled_from(["u1", "u2"]) | field_st,
        "t": st.integers(0, 10**13) | field_st,
        "exp": st.sampled_from(["spinner", "pendulum", "lathe"]) | field_st,
        "course": st.sampled_from(["engdes1", "cie3", "x"]) | field_st,
        "hardware": st.sampled_from(["spin30"]) | field_st,
        "type": st.sampled_from(["analytics", "log", "feedback", "request", "response"]) | field_st,
        "payload": st.fixed_dictionaries(
            {},
            optional={
                "log": st.sampled_from(LOGS) | field_st,
                "content": st.sampled_from(CONTENTS) | field_st,
                "graph": st.sampled_from(["all", "spinner-engdes1-2", "pendulum-engdes1-all"]) | field_st,
                "task": st.sampled_from(["all", "2", "spinner-cie3-3"]) | field_st,
                "algorithm": st.sampled_from(["ged", "task_distance"]) | field_st,
                "state": st.sampled_from(["Bored", "Engaged"]) | field_st,
                "subject": st.sampled_from(["UI", "spinner-engdes1-2"]) | field_st,
                "data": json_st,
            },
        )
        | field_st,
    },
)


def check_answers(answers: List[List[Dict[str, Any]]], count: int) -> None:
    assert isinstance(answers, list) and len(answers) == count
    for out in answers:
        assert isinstance(out, list)
        for a in out:
            assert a["type"] == "response"
            strict_json(a)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(message_st | field_st, min_size=1, max_size=8))
def test_no_input_makes_the_handler_raise(batch: List[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "f.db") as store:
        handler = Handler(store, REGISTRY)
        check_answers(handler.handle_many(batch), len(batch))
        ignored = sum(1 for m in batch if isinstance(m, dict) and m.get("type") == "response")
        assert store.count_events() == len(batch) - ignored
        texts = []
        for m in batch:
            try:
                texts.append(json.dumps(m))
            except (ValueError, RecursionError):
                texts.append(repr(m)[:1000])
        check_answers(handler.handle_texts(texts), len(texts))


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_arbitrary_text_is_stored_and_never_answered(texts: List[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "t.db") as store:
        handler = Handler(store, REGISTRY)
        answers = handler.handle_texts(texts)
        check_answers(answers, len(texts))
        for text, out in zip(texts, answers):
            try:
                obj = json.loads(text)
            except ValueError:
                assert out == []
                continue
            if not (isinstance(obj, dict) and obj.get("type") in ("request", "feedback")):
                assert out == []


def test_targeted_nasty_values_in_every_field() -> None:
    values = [
        "", "a/b", "..", "\x00", "x" * 10_000, "\ud800", True, 1.5, float("nan"), float("inf"),
        -5, 2**70, [], {}, None, [[[]]],
    ]  # fmt: skip
    base = request("all_feedback", graph="all", task="all", algorithm="ged")
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "n.db") as store:
        handler = Handler(store, REGISTRY)
        batch: List[Any] = []
        for field in ("user", "t", "exp", "course", "hardware", "type", "payload"):
            for v in values:
                batch.append({**base, field: v})
        for field in ("content", "graph", "task", "algorithm", "log", "state", "subject"):
            for v in values:
                batch.append({**base, "payload": {**base["payload"], field: v}})
                batch.append({**message("feedback", state="Bored", subject="UI"), "payload": {field: v}})
        deep: Any = []
        for _ in range(5000):
            deep = [deep]
        batch += [deep, {"type": "request", "payload": deep}]
        check_answers(handler.handle_many(batch), len(batch))
        texts = ["[" * 100_000, '{"type":"request","payload":' * 3000, "\ud800", "x" * (2 << 20)]
        check_answers(handler.handle_texts(texts), len(texts))
        rows = store.count_events()
        assert rows == len(batch) + len(texts)
