"""taskgraph: every SPEC section 2/3 formula, against hand-worked numbers and a literal reference."""

import csv
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
from conftest import COMPARISON_LOGS, PACKAGE_GRAPHS, read_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from practable_analytics import taskgraph
from practable_analytics.experiments import Registry

# The project's shared reference data: $PRACTABLE_SHARED, else ../shared beside the repository root.
SHARED = Path(os.environ.get("PRACTABLE_SHARED") or Path(__file__).resolve().parents[2].parent / "shared")
REFERENCE_GRAPHS = SHARED / "reference-data" / "comparison_graphs"
needs_reference = pytest.mark.skipif(
    not REFERENCE_GRAPHS.is_dir(), reason=f"no reference data at {REFERENCE_GRAPHS} (set PRACTABLE_SHARED)"
)


# -- a straightforward reference, written from the SPEC text cell by cell --------------------------


def ref_task_distance(am, bm, a=10.0, b=1.0, loop=2.0, upper=2.0, lower=-1.0) -> Optional[float]:
    n = len(am)
    if all(am[i][j] == 0 for i in range(n) for j in range(n)):
        return None
    total = 0.0
    ws: List[float] = []
    for i in range(n):
        for j in range(n):
            x, y = am[i][j], bm[i][j]
            if x == 0 and y != 0:
                total += a * (loop if i == j else 1)
            elif x != 0 and y == 0:
                total += b * (loop if i == j else 1)
            elif x != 0 and y != 0 and x != y:
                r = (x - y) / y
                if 0 <= r <= upper:
                    ws.append(b * r / upper)
                elif r > upper:
                    ws.append(b)
                elif lower <= r < 0:
                    ws.append(a * abs(r) / abs(lower))
                else:
                    ws.append(a)
    if ws:
        total += sum(ws) / len(ws)
    return total


def ref_adjacency(seq, n):
    m = [[0.0] * n for _ in range(n)]
    for x, y in zip(seq, seq[1:]):
        m[x][y] += 1
    return np.array(m)


def ref_centroid(am, pos):
    mass = [sum(am[i][j] for i in range(len(am))) for j in range(len(am))]
    total = sum(mass)
    if total == 0:
        return (None, None)
    return (
        sum(m * p[0] for m, p in zip(mass, pos)) / total,
        sum(m * p[1] for m, p in zip(mass, pos)) / total,
    )


def ref_feedback(am, bm, nodes):
    out: Dict[str, List[str]] = {"hardware": [], "hardware_freq": [], "transition": [], "transition_freq": []}
    for i in range(len(nodes)):
        for j in range(len(nodes)):
            if am[i][j] == 0 and bm[i][j] != 0:
                key = "hardware" if i == j else "transition"
            elif am[i][j] < bm[i][j]:
                key = "hardware_freq" if i == j else "transition_freq"
            else:
                continue
            out[key].append(nodes[i] if i == j else f"{nodes[i]} to {nodes[j]}")
    return out


def close(x: Optional[float], y: Optional[float]) -> bool:
    return (x is None and y is None) or (x is not None and y is not None and abs(x - y) <= 1e-9)


# -- hand-worked cases --------------------------------------------------------------------------------


def test_adjacency_counts_each_consecutive_pair() -> None:
    # 0 0 1 1 1 0 -> (0,0) once, (0,1) once, (1,1) twice, (1,0) once
    am = taskgraph.adjacency([0, 0, 1, 1, 1, 0], 3)
    assert am.dtype == np.float64
    assert am.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert taskgraph.adjacency([], 2).tolist() == [[0, 0], [0, 0]]
    assert taskgraph.adjacency([1], 2).tolist() == [[0, 0], [0, 0]]


def test_task_distance_hand_worked_two_nodes() -> None:
    am = np.array([[1.0, 0.0], [2.0, 0.0]])
    bm = np.array([[0.0, 3.0], [1.0, 0.0]])
    # (0,0) additional on the diagonal: b*loop = 1*2 = 2
    # (0,1) missing off the diagonal: a = 10
    # (1,0) both non-zero: n = (2-1)/1 = 1 in [0, upper] -> w = b*n/upper = 0.5; mean of w = 0.5
    assert taskgraph.task_distance(am, bm) == pytest.approx(12.5, abs=1e-12)
    # exploration weights a=0, b=10: 10*2 (additional loop) + 0 (missing) + mean(10*1/2) = 25
    assert taskgraph.task_distance(am, bm, a=0, b=10) == pytest.approx(25.0, abs=1e-12)


def test_task_distance_hand_worked_every_weight_branch() -> None:
    am = np.array([[4.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    bm = np.array([[1.0, 2.0, 0.0], [0.0, 4.0, 1.0], [0.0, 0.0, 0.0]])
    # (0,0) n = 3 > upper=2 -> w = b = 1
    # (0,1) n = -0.5 in [lower, 0) -> w = a*0.5/1 = 5
    # (1,1) n = -0.75 -> w = a*0.75 = 7.5
    # (1,2) missing off-diagonal -> 10; total = 10 + mean(1, 5, 7.5) = 14.5
    assert taskgraph.task_distance(am, bm) == pytest.approx(14.5, abs=1e-12)
    # lower = -0.5: (0,1) n = -0.5 -> a*0.5/0.5 = 10; (1,1) n = -0.75 < lower -> a = 10
    # total = 10 + mean(1, 10, 10) = 17
    assert taskgraph.task_distance(am, bm, lower=-0.5) == pytest.approx(17.0, abs=1e-12)
    # upper = 4: (0,0) n = 3 -> b*3/4 = 0.75; total = 10 + mean(0.75, 5, 7.5) = 14.4166...
    assert taskgraph.task_distance(am, bm, upper=4) == pytest.approx(10 + (0.75 + 5 + 7.5) / 3, abs=1e-12)


def test_task_distance_missing_loop_and_equal_cells() -> None:
    am = np.array([[0.0, 1.0], [0.0, 3.0]])
    bm = np.array([[2.0, 0.0], [0.0, 3.0]])
    # (0,0) missing on the diagonal: a*loop = 20; (0,1) additional: b = 1; (1,1) equal: nothing
    assert taskgraph.task_distance(am, bm) == 21.0
    assert taskgraph.task_distance(bm, bm) == 0.0


def test_task_distance_undefined_without_transitions() -> None:
    bm = np.ones((3, 3))
    assert taskgraph.task_distance(np.zeros((3, 3)), bm) is None
    assert ref_task_distance(np.zeros((3, 3)), bm) is None


def test_ged_is_sum_of_absolute_differences() -> None:
    am = np.array([[1.0, 0.0], [2.0, 0.0]])
    bm = np.array([[0.0, 3.0], [1.0, 0.0]])
    assert taskgraph.ged(am, bm) == 1 + 3 + 1  # |1-0| + |0-3| + |2-1| + |0-0|
    assert taskgraph.ged(np.zeros((2, 2)), bm) == 4.0


def test_task_feedback_hand_worked() -> None:
    nodes = ["x", "y", "z"]
    am = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 5.0], [0.0, 0.0, 0.0]])
    bm = np.array([[2.0, 3.0, 1.0], [0.0, 4.0, 1.0], [0.0, 0.0, 0.0]])
    # (0,0) missing loop -> hardware x; (0,1) 1<3 -> transition_freq; (0,2) missing -> transition
    # (1,1) 1<4 -> hardware_freq y; (1,2) 5>1 -> nothing
    assert taskgraph.task_feedback(am, bm, nodes) == {
        "hardware": ["x"],
        "hardware_freq": ["y"],
        "transition": ["x to z"],
        "transition_freq": ["x to y"],
    }


def test_centroid_hand_worked(registry: Registry) -> None:
    spinner = registry.experiment("spinner")
    assert spinner is not None
    am = np.zeros((6, 6))
    am[0, 2] = 2  # two transitions into position_step (1, 0)
    am[2, 2] = 1  # one more into position_step
    am[2, 0] = 1  # one into voltage_step (0.5, sin 60)
    # mass: position_step 3, voltage_step 1 -> ((3*1 + 0.5)/4, (0 + sin60)/4)
    x, y = taskgraph.centroid(am, spinner.unit_positions)
    assert x == pytest.approx(3.5 / 4, abs=1e-12)
    assert y == pytest.approx(math.sin(math.radians(60)) / 4, abs=1e-12)
    assert taskgraph.centroid(np.zeros((6, 6)), spinner.unit_positions) == (None, None)


def test_in_centrality_counts_distinct_cells_of_a_column() -> None:
    am = np.zeros((6, 6))
    am[0, 2] = 5
    am[2, 2] = 1  # self-loop counts
    am[3, 1] = 1
    # column 2: 2 cells / (6 - 1); column 1: 1 / 5
    assert taskgraph.in_centrality(am).tolist() == [0.0, 0.2, 0.4, 0.0, 0.0, 0.0]


def test_indicators_hand_worked() -> None:
    am = np.array([[1.0, 0.0], [2.0, 0.0]])
    all_graph = np.array([[0.0, 3.0], [1.0, 0.0]])
    counts = {"Engaged": 2, "Curious": 1, "Delighted": 1, "Bored": 1, "Anxious": 2, "Surprised": 1}
    got = taskgraph.indicators(am, all_graph, counts)
    # exploration 25 (worked above); edges 100 * 3 / 4 = 75; enjoyment (2+1+1) - (1+2+1) = 0
    assert got == {"exploration": 25.0, "enjoyment": 0, "edges": 75.0}
    assert taskgraph.indicators(am, None, {"Confused": 3}) == {  # no -all graph: undefined, not 0
        "exploration": None,
        "enjoyment": -3,
        "edges": None,
    }
    empty = taskgraph.indicators(np.zeros((2, 2)), np.zeros((2, 2)), {})
    assert empty == {"exploration": None, "enjoyment": 0, "edges": None}


# -- reference graphs -----------------------------------------------------------------------------


def read_csv(path: Path) -> Dict[str, Dict[str, float]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    header = rows[0][1:]
    return {r[0]: {h: float(v) for h, v in zip(header, r[1:])} for r in rows[1:] if r}


@needs_reference
@pytest.mark.parametrize("log", sorted(COMPARISON_LOGS.glob("*.json")), ids=lambda p: p.stem)
def test_comparison_logs_reproduce_the_reference_graphs(log: Path, registry: Registry) -> None:
    exp = registry.experiment(log.stem.split("-")[0])
    assert exp is not None
    seq = [exp.log_map[m["payload"]["log"]] for m in read_jsonl(log)]
    am = taskgraph.adjacency(seq, len(exp.nodes))
    want = read_csv(REFERENCE_GRAPHS / f"{log.stem}.csv")
    for i, a in enumerate(exp.nodes):
        for j, b in enumerate(exp.nodes):
            assert am[i, j] == want[a][b], (a, b)
    found = registry.graph(log.stem)
    assert found is not None and np.array_equal(found[1], am)


@needs_reference
def test_package_graphs_are_the_reference_graphs() -> None:
    shipped = sorted(p.name for p in PACKAGE_GRAPHS.glob("*.csv"))
    assert shipped == sorted(p.name for p in REFERENCE_GRAPHS.glob("*.csv"))
    for name in shipped:
        assert (PACKAGE_GRAPHS / name).read_bytes() == (REFERENCE_GRAPHS / name).read_bytes()


def test_reference_graph_distances_match_the_reference(registry: Registry) -> None:
    for exp_name in registry.experiments():
        exp = registry.experiment(exp_name)
        assert exp is not None
        for course in exp.courses.values():
            for am in course.graphs.values():
                for bm in course.graphs.values():
                    assert close(taskgraph.task_distance(am, bm), ref_task_distance(am, bm))
                    assert close(
                        taskgraph.task_distance(am, bm, a=0, b=10), ref_task_distance(am, bm, a=0, b=10)
                    )
                    assert taskgraph.task_feedback(am, bm, exp.nodes) == ref_feedback(am, bm, exp.nodes)
                got = taskgraph.centroid(am, exp.unit_positions)
                want = ref_centroid(am.tolist(), exp.unit_positions.tolist())
                assert close(got[0], want[0]) and close(got[1], want[1])


# -- random matrices against the reference --------------------------------------------------------

small = hnp.arrays(np.float64, (4, 4), elements=st.sampled_from([0.0, 0.0, 1.0, 2.0, 3.0, 7.0, 0.5]))


@settings(max_examples=150, deadline=None)
@given(
    am=small,
    bm=small,
    a=st.sampled_from([10.0, 0.0, 3.0]),
    b=st.sampled_from([1.0, 10.0]),
    loop=st.sampled_from([2.0, 1.0]),
    upper=st.sampled_from([2.0, 0.5]),
    lower=st.sampled_from([-1.0, -0.5]),
)
def test_task_distance_equals_reference(am, bm, a, b, loop, upper, lower) -> None:
    got = taskgraph.task_distance(am, bm, a=a, b=b, loop=loop, upper=upper, lower=lower)
    assert close(got, ref_task_distance(am.tolist(), bm.tolist(), a, b, loop, upper, lower))
    assert taskgraph.task_feedback(am, bm, list("pqrs")) == ref_feedback(am, bm, list("pqrs"))
    assert taskgraph.ged(am, bm) == pytest.approx(float(np.abs(am - bm).sum()), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(seq=st.lists(st.integers(0, 4), max_size=60))
def test_adjacency_equals_reference(seq) -> None:
    am = taskgraph.adjacency(seq, 5)
    assert np.array_equal(am, ref_adjacency(seq, 5))
    assert am.sum() == max(len(seq) - 1, 0)
