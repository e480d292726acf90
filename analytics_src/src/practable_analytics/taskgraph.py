"""Task-graph analytics (SPEC section 2 and 3) for numpy matrices: no I/O, no store or service.

The formulas have one implementation, :mod:`practable_analytics.cells` (plain lists, what ``serve``
uses without importing numpy); this module is its numpy-facing side for the offline commands (report,
plot, import-legacy): it takes and gives float64 (n, n) arrays with row = from, column = to, and returns
plain Python numbers (``float``/``None``) so answers can be JSON-encoded directly; ``None`` means "not
defined". The tests hold ``cells`` against an independent numpy implementation (tests/numpy_reference.py).
"""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from practable_analytics import cells
from practable_analytics.cells import FEEDBACK_STATES, NEGATIVE_STATES, POSITIVE_STATES

__all__ = ["FEEDBACK_STATES", "NEGATIVE_STATES", "POSITIVE_STATES"]


def adjacency(nodes: Sequence[int], n: int) -> np.ndarray:
    """Directly-follows matrix of a node index sequence: A[a, b] = times b directly followed a."""
    return np.array(cells.adjacency([int(x) for x in nodes], n), dtype=np.float64).reshape(n, n)


def task_distance(
    student: np.ndarray,
    expert: np.ndarray,
    *,
    a: float = 10.0,
    b: float = 1.0,
    loop: float = 2.0,
    upper: float = 2.0,
    lower: float = -1.0,
) -> Optional[float]:
    """TaskDistance(A, B) of the student graph A = ``student`` from the comparison graph B = ``expert``
    (SPEC section 3, :func:`practable_analytics.cells.task_distance`); None when A has no transitions."""
    return cells.task_distance(
        student.tolist(), expert.tolist(), a=a, b=b, loop=loop, upper=upper, lower=lower
    )


def ged(student: np.ndarray, expert: np.ndarray) -> float:
    """Graph edit distance used by ``algorithm: "ged"``: the sum of |A - B| over all cells."""
    return cells.ged(student.tolist(), expert.tolist())


def task_feedback(student: np.ndarray, expert: np.ndarray, nodes: Sequence[str]) -> Dict[str, List[str]]:
    """What the student has not done (``hardware``/``transition``) or done less often than the
    comparison graph wants (``*_freq``), cells in row-major order."""
    return cells.task_feedback(student.tolist(), expert.tolist(), nodes)


def centroid(student: np.ndarray, positions: np.ndarray) -> Tuple[Optional[float], Optional[float]]:
    """Mass-weighted mean of node positions, mass = column sums (transitions in); (None, None) if
    there is no mass."""
    return cells.centroid(student.tolist(), positions.tolist())


def in_centrality(student: np.ndarray) -> np.ndarray:
    """Per node: number of non-zero cells in its column (self-loop included) / (n - 1)."""
    return np.array(cells.in_centrality(student.tolist()), dtype=np.float64)


def enjoyment(feedback_counts: Mapping[str, int]) -> int:
    """Positive minus negative affective-state reports."""
    return cells.enjoyment(feedback_counts)


def indicators(
    student: np.ndarray, all_graph: Optional[np.ndarray], feedback_counts: Mapping[str, int]
) -> Dict[str, Optional[float]]:
    """The dashboard's indicators: exploration, enjoyment and edges (percent of the -all graph); see
    :func:`practable_analytics.cells.indicators`."""
    return cells.indicators(
        student.tolist(), None if all_graph is None else all_graph.tolist(), feedback_counts
    )
