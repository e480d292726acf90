"""An independent numpy implementation of SPEC section 3's formulas: the oracle the tests hold the
serving path's pure-Python formulas (:mod:`practable_analytics.cells`, the product's one implementation)
against, bit for bit. Test code only: the package computes everything through ``cells``."""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from practable_analytics import cells


def adjacency(nodes: Sequence[int], n: int) -> np.ndarray:
    """Directly-follows matrix of a node index sequence: A[a, b] = times b directly followed a."""
    seq = np.asarray(nodes, dtype=np.int64)
    if seq.size < 2:
        return np.zeros((n, n), dtype=np.float64)
    counts = np.bincount(seq[:-1] * n + seq[1:], minlength=n * n)
    return counts.reshape(n, n).astype(np.float64)


def task_distance(student: np.ndarray, expert: np.ndarray, *, a: float = 10.0, b: float = 1.0,
                  loop: float = 2.0, upper: float = 2.0, lower: float = -1.0) -> Optional[float]:  # fmt: skip
    """TaskDistance(A, B) of the student graph A = ``student`` from the comparison graph B = ``expert``.

    SPEC section 3. None when A has no transitions. Missing cells (A=0, B!=0) cost ``a``, additional
    cells (A!=0, B=0) cost ``b``, both times ``loop`` on the diagonal; cells where both are non-zero
    and differ contribute the mean of their weights w(n), n = (A-B)/B.
    """
    if not student.any():
        return None
    a_nz = student != 0
    b_nz = expert != 0
    factor = np.where(np.eye(student.shape[0], dtype=bool), loop, 1.0)
    total = a * float(factor[~a_nz & b_nz].sum()) + b * float(factor[a_nz & ~b_nz].sum())
    both = a_nz & b_nz & (student != expert)
    if both.any():
        ratio = (student[both] - expert[both]) / expert[both]
        w = np.where(ratio > upper, b, np.where(ratio < lower, a, 0.0))
        if upper > 0:
            inside = (ratio >= 0) & (ratio <= upper)
            w = np.where(inside, b * ratio / upper, w)
        if lower < 0:
            inside = (ratio >= lower) & (ratio < 0)
            w = np.where(inside, a * np.abs(ratio) / abs(lower), w)
        total += float(w.mean())
    return total


def ged(student: np.ndarray, expert: np.ndarray) -> float:
    """Graph edit distance used by ``algorithm: "ged"``: the sum of |A - B| over all cells."""
    return float(np.abs(student - expert).sum())


def task_feedback(student: np.ndarray, expert: np.ndarray, nodes: Sequence[str]) -> Dict[str, List[str]]:
    """What the student has not done (``hardware``/``transition``) or done less often than the
    comparison graph wants (``*_freq``), cells in row-major order."""
    out: Dict[str, List[str]] = {"hardware": [], "hardware_freq": [], "transition": [], "transition_freq": []}
    missing = (student == 0) & (expert != 0)
    fewer = ~missing & (student < expert)
    for i, j in zip(*np.nonzero(missing | fewer)):
        suffix = "" if missing[i, j] else "_freq"
        if i == j:
            out["hardware" + suffix].append(nodes[i])
        else:
            out["transition" + suffix].append(f"{nodes[i]} to {nodes[j]}")
    return out


def centroid(student: np.ndarray, positions: np.ndarray) -> Tuple[Optional[float], Optional[float]]:
    """Mass-weighted mean of node positions, mass = column sums (transitions in); (None, None) if
    there is no mass. Summed in node order (see :func:`practable_analytics.cells.centroid`, the one
    definition: a BLAS dot product's summation order depends on the machine)."""
    return cells.centroid(student.tolist(), positions.tolist())


def in_centrality(student: np.ndarray) -> np.ndarray:
    """Per node: number of non-zero cells in its column (self-loop included) / (n - 1)."""
    n = student.shape[0]
    return np.count_nonzero(student, axis=0) / max(n - 1, 1)


def enjoyment(feedback_counts: Mapping[str, int]) -> int:
    """Positive minus negative affective-state reports."""
    return cells.enjoyment(feedback_counts)


def indicators(
    student: np.ndarray, all_graph: Optional[np.ndarray], counts: Mapping[str, int]
) -> Dict[str, Any]:
    """SPEC 3's indicators, numpy arrays; undefined ones (no -all graph, an empty one) are None."""
    if all_graph is None:
        return {"exploration": None, "enjoyment": enjoyment(counts), "edges": None}
    whole = float(all_graph.sum())
    return {
        "exploration": task_distance(student, all_graph, a=0.0, b=10.0, loop=2.0, upper=2.0, lower=-1.0),
        "enjoyment": enjoyment(counts),
        "edges": 100.0 * float(student.sum()) / whole if whole else None,
    }
