"""cells (the product's one implementation of the formulas, pure Python) gives the same floats as an
independent numpy implementation (numpy_reference), bit for bit; taskgraph (the numpy-facing side)
gives what cells gives; and the serving path never imports numpy."""

import json
import os
import subprocess
import sys
from typing import List

import numpy as np
import numpy_reference as ref
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from practable_analytics import cells, taskgraph
from practable_analytics.experiments import Registry

# Counts, fractions (mean graphs) and awkward magnitudes: summation order shows in the last bits.
values = st.one_of(
    st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.5]),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
)


@st.composite
def pairs(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(2, 12))
    shape = (n, n)
    return draw(hnp.arrays(np.float64, shape, elements=values)), draw(
        hnp.arrays(np.float64, shape, elements=values)
    )


def same(x: object, y: object) -> bool:
    """Equal floats bit for bit (None only with None)."""
    return (x is None and y is None) or (isinstance(x, float) and isinstance(y, float) and x.hex() == y.hex())


def test_taskgraph_is_the_numpy_side_of_cells() -> None:
    """taskgraph takes and gives numpy arrays and computes through cells (the one implementation)."""
    exp = Registry.load().experiment("spinner")
    assert exp is not None
    course = exp.courses["engdes1"]
    seq = [0, 1, 1, 2, 3, 2, 5, 4, 4, 0]
    am = taskgraph.adjacency(seq, len(exp.nodes))
    assert am.dtype == np.float64 and am.shape == (len(exp.nodes),) * 2
    assert am.tolist() == cells.adjacency(seq, len(exp.nodes))
    for expert in course.graphs.values():
        assert same(taskgraph.task_distance(am, expert), cells.task_distance(am.tolist(), expert.tolist()))
        assert same(taskgraph.ged(am, expert), cells.ged(am.tolist(), expert.tolist()))
    assert taskgraph.in_centrality(am).tolist() == cells.in_centrality(am.tolist())
    assert taskgraph.indicators(am, None, {}) == {"exploration": None, "enjoyment": 0, "edges": None}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns where Python quietly gives inf/nan
@settings(max_examples=300, deadline=None)
@given(
    ab=pairs(),
    a=st.sampled_from([10.0, 0.0, 3.0]),
    b=st.sampled_from([1.0, 10.0]),
    loop=st.sampled_from([2.0, 1.0, 0.1]),
    upper=st.sampled_from([2.0, 0.5, -0.5]),
    lower=st.sampled_from([-1.0, -0.5, 0.5]),
)
def test_formulas_equal_numpy_bit_for_bit(ab, a, b, loop, upper, lower) -> None:  # type: ignore[no-untyped-def]
    am, bm = ab
    al, bl = am.tolist(), bm.tolist()
    kw = dict(a=a, b=b, loop=loop, upper=upper, lower=lower)
    assert same(cells.task_distance(al, bl, **kw), ref.task_distance(am, bm, **kw))
    assert same(cells.ged(al, bl), ref.ged(am, bm))
    assert cells.task_feedback(al, bl, [str(i) for i in range(len(al))]) == ref.task_feedback(
        am, bm, [str(i) for i in range(len(al))]
    )
    assert cells.in_centrality(al) == ref.in_centrality(am).tolist()
    got = cells.indicators(al, bl, {"Curious": 2, "Bored": 1})
    want = ref.indicators(am, bm, {"Curious": 2, "Bored": 1})
    assert got.keys() == want.keys()
    assert all(same(got[k], want[k]) or got[k] == want[k] for k in got)
    assert cells.column_sums(al) == am.sum(axis=0).tolist()
    assert same(cells.total(al), float(am.sum()))


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 300),
    data=st.data(),
)
def test_fsum_np_is_numpys_pairwise_sum(n: int, data: st.DataObject) -> None:
    xs: List[float] = data.draw(
        st.lists(st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False), min_size=n, max_size=n)
    )
    assert same(cells.fsum_np(xs), float(np.array(xs, dtype=np.float64).sum()))


@settings(max_examples=100, deadline=None)
@given(seq=st.lists(st.integers(0, 4), max_size=60))
def test_adjacency_equals_numpy(seq: List[int]) -> None:
    assert cells.adjacency(seq, 5) == ref.adjacency(seq, 5).tolist()


def test_centroid_is_the_spec_sum_in_node_order(registry: Registry) -> None:
    """Both implementations give the weighted mean summed in node order (a BLAS dot product's order
    depends on the machine, so numpy's matmul is not used)."""
    for name in registry.experiments():
        exp = registry.experiment(name)
        assert exp is not None
        for course in exp.courses.values():
            for gname, m in course.cells.items():
                mass = [sum(row[j] for row in m) for j in range(len(m))]
                total = cells.fsum_np(mass)
                want = (
                    (
                        sum(w * p[0] for w, p in zip(mass, exp.unit_xy)) / total,
                        sum(w * p[1] for w, p in zip(mass, exp.unit_xy)) / total,
                    )
                    if total
                    else (None, None)
                )
                assert cells.centroid(m, exp.unit_xy) == want, gname
                assert ref.centroid(course.graphs[gname], exp.unit_positions) == want


def test_registry_arrays_are_the_cells(registry: Registry) -> None:
    for name in registry.experiments():
        exp = registry.experiment(name)
        assert exp is not None
        assert exp.unit_positions.tolist() == [list(p) for p in exp.unit_xy]
        assert exp.draw_positions.tolist() == [list(p) for p in exp.draw_xy]
        assert not exp.unit_positions.flags.writeable
        for course in exp.courses.values():
            assert list(course.graphs) == list(course.cells)
            for gname, m in course.cells.items():
                assert course.graphs[gname].tolist() == [list(r) for r in m]
                assert course.graphs[gname] is course.graphs[gname]  # made once
                assert not course.graphs[gname].flags.writeable


SERVING = """
import json, sys, tempfile, os
from practable_analytics import cli
import practable_analytics.commands.serve
from practable_analytics.experiments import Registry
from practable_analytics.service.processing import HandlerProcessor
d = tempfile.mkdtemp()
p = HandlerProcessor(os.path.join(d, "a.db"), Registry.load())
msgs = [json.dumps({"user": "u1", "t": 1000 + i, "exp": "spinner", "course": "engdes1", "type": "analytics",
                    "payload": {"log": log}}) for i, log in enumerate(["voltage", "speed", "position"] * 5)]
msgs.append(json.dumps({"user": "u1", "t": 9, "exp": "spinner", "course": "engdes1", "type": "feedback",
                        "payload": {"state": "Curious", "subject": "UI"}}))
msgs.append("[" * 40 + "]" * 40)
req = {"user": "u1", "exp": "spinner", "course": "engdes1", "type": "request"}
contents = [{"content": "all_feedback", "graph": "spinner-engdes1-all"},
            {"content": "task_feedback", "task": "2"}, {"content": "task_identification", "algorithm": "ged"}]
msgs += [json.dumps(dict(req, payload=c)) for c in contents]
parsed = p.parse("spin30", msgs)
p.commit([x.event for x in parsed if x.event is not None], [0.0] * sum(x.event is not None for x in parsed))
answers = [p.reply(x) for x in parsed if x.request is not None]
print(json.dumps({"numpy": "numpy" in sys.modules, "answers": [[p.encode(a) for a in x] for x in answers]}))
"""


def test_serving_never_imports_numpy_and_answers_as_the_numpy_formulas_do() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVING], check=True, capture_output=True, text=True, env=dict(os.environ)
    )
    got = json.loads(out.stdout)
    assert got["numpy"] is False
    answers = [[json.loads(a) for a in x] for x in got["answers"]]
    assert [len(x) for x in answers] == [5, 1, 1]
    # the same student's matrix through the numpy formulas
    registry = Registry.load()
    exp = registry.experiment("spinner")
    assert exp is not None
    seq = [exp.log_map[log] for log in ["voltage", "speed", "position"] * 5]
    am = ref.adjacency(seq, len(exp.nodes))
    course = exp.courses["engdes1"]
    indicators = answers[0][3]["indicators"]
    want = ref.indicators(am, course.graphs["spinner-engdes1-all"], {"Curious": 1})
    assert indicators == want
    assert answers[0][4]["centroids"]["student"] == list(ref.centroid(am, exp.unit_positions))
    assert answers[1][0]["feedback"] == ref.task_feedback(am, course.graphs["spinner-engdes1-2"], exp.nodes)
    assert answers[2][0]["tasks"] == {g: ref.ged(am, m) for g, m in course.graphs.items()}
