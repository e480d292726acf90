"""Task-graph formulas (SPEC sections 2 and 3) over plain Python lists: the serving path's arithmetic.

``serve`` answers from matrices of at most a few dozen cells (n <= ~10 nodes); numpy's import alone
costs more memory than the rest of the process, so the service computes with this module and never
imports numpy. :mod:`practable_analytics.taskgraph` keeps the numpy implementation for the offline
commands; the property tests check that both give the same floats, bit for bit.

Exactness: every sum is taken in the order numpy takes it (:func:`fsum_np`: numpy's pairwise
summation, 8 partial sums for 8..128 items, halves above), so a task distance, a graph edit distance
or an indicator is the same float as numpy's. A centroid is the SPEC's weighted mean summed in node
order (``mass[0]*x[0] + mass[1]*x[1] + ...``); the numpy implementation delegates to it, because a
BLAS dot product's order (and rounding) depends on the machine.

A matrix is a list of rows (row = from, column = to), ``cells[i][j]`` a float.
"""

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

Cells = Sequence[Sequence[float]]
"""A square matrix as rows of floats."""
Positions = Sequence[Sequence[float]]
"""(n, 2) node positions as rows of (x, y)."""

POSITIVE_STATES = ("Engaged", "Curious", "Delighted")
NEGATIVE_STATES = ("Bored", "Confused", "Frustrated", "Surprised", "Anxious")
FEEDBACK_STATES = POSITIVE_STATES + NEGATIVE_STATES

_BLOCK = 128  # numpy's PW_BLOCKSIZE


def fsum_np(values: Sequence[float]) -> float:
    """The float numpy's ``np.add.reduce`` gives for a contiguous float64 array of ``values``."""
    return _pairwise(values, 0, len(values))


def _pairwise(a: Sequence[float], lo: int, n: int) -> float:
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= _BLOCK:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo : lo + 8]
        i = 8
        end = n - n % 8
        while i < end:
            k = lo + i
            r0 += a[k]
            r1 += a[k + 1]
            r2 += a[k + 2]
            r3 += a[k + 3]
            r4 += a[k + 4]
            r5 += a[k + 5]
            r6 += a[k + 6]
            r7 += a[k + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)


def zeros(n: int) -> List[List[float]]:
    """An n x n matrix of 0.0."""
    return [[0.0] * n for _ in range(n)]


def adjacency(nodes: Sequence[int], n: int) -> List[List[float]]:
    """Directly-follows matrix of a node index sequence: A[a][b] = times b directly followed a."""
    m = zeros(n)
    for a, b in zip(nodes, nodes[1:]):
        m[a][b] += 1.0
    return m


def _flat(m: Cells) -> List[float]:
    return [v for row in m for v in row]


def task_distance(
    student: Cells,
    expert: Cells,
    *,
    a: float = 10.0,
    b: float = 1.0,
    loop: float = 2.0,
    upper: float = 2.0,
    lower: float = -1.0,
) -> Optional[float]:
    """TaskDistance(A, B) (SPEC section 3); None when A has no transitions. Same float as
    :func:`practable_analytics.taskgraph.task_distance`."""
    n = len(student)
    missing: List[float] = []  # the cells' loop factors, summed as numpy sums them
    additional: List[float] = []
    ratios: List[float] = []
    any_student = False
    for i in range(n):
        srow = student[i]
        erow = expert[i]
        for j in range(n):
            x = srow[j]
            y = erow[j]
            if x != 0:
                any_student = True
                if y == 0:
                    additional.append(loop if i == j else 1.0)
                elif x != y:
                    ratios.append((x - y) / y)
            elif y != 0:
                missing.append(loop if i == j else 1.0)
    if not any_student:
        return None
    total = a * fsum_np(missing) + b * fsum_np(additional)
    if ratios:
        w: List[float] = []
        for r in ratios:
            if upper > 0 and 0 <= r <= upper:
                w.append(b * r / upper)
            elif lower < 0 and lower <= r < 0:
                w.append(a * abs(r) / abs(lower))
            elif r > upper:
                w.append(b)
            elif r < lower:
                w.append(a)
            else:
                w.append(0.0)
        total += fsum_np(w) / len(w)
    return total


def ged(student: Cells, expert: Cells) -> float:
    """Graph edit distance (``algorithm: "ged"``): the sum of |A - B| over all cells."""
    return fsum_np([abs(x - y) for srow, erow in zip(student, expert) for x, y in zip(srow, erow)])


def task_feedback(student: Cells, expert: Cells, nodes: Sequence[str]) -> Dict[str, List[str]]:
    """What the student has not done (``hardware``/``transition``) or done less often than the
    comparison graph wants (``*_freq``), cells in row-major order."""
    out: Dict[str, List[str]] = {"hardware": [], "hardware_freq": [], "transition": [], "transition_freq": []}
    for i, (srow, erow) in enumerate(zip(student, expert)):
        for j, (x, y) in enumerate(zip(srow, erow)):
            if x == 0 and y != 0:
                suffix = ""
            elif x < y:
                suffix = "_freq"
            else:
                continue
            if i == j:
                out["hardware" + suffix].append(nodes[i])
            else:
                out["transition" + suffix].append(f"{nodes[i]} to {nodes[j]}")
    return out


def column_sums(m: Cells) -> List[float]:
    """Per column, the sum of its cells from the first row down (numpy's ``sum(axis=0)``)."""
    sums = [0.0] * len(m)
    for row in m:
        sums = [s + v for s, v in zip(sums, row)]
    return sums


def centroid(student: Cells, positions: Positions) -> Tuple[Optional[float], Optional[float]]:
    """Mass-weighted mean of node positions, mass = column sums (transitions in), summed in node
    order; (None, None) if there is no mass."""
    mass = column_sums(student)
    total = fsum_np(mass)
    if total == 0:
        return (None, None)
    x = 0.0
    y = 0.0
    for m, p in zip(mass, positions):
        x += m * p[0]
        y += m * p[1]
    return (x / total, y / total)


def in_centrality(student: Cells) -> List[float]:
    """Per node: number of non-zero cells in its column (self-loop included) / (n - 1)."""
    n = len(student)
    counts = [0] * n
    for row in student:
        for j, v in enumerate(row):
            if v != 0:
                counts[j] += 1
    d = max(n - 1, 1)
    return [c / d for c in counts]


def enjoyment(feedback_counts: Mapping[str, int]) -> int:
    """Positive minus negative affective-state reports."""
    pos = sum(int(feedback_counts.get(s, 0)) for s in POSITIVE_STATES)
    neg = sum(int(feedback_counts.get(s, 0)) for s in NEGATIVE_STATES)
    return pos - neg


def total(m: Cells) -> float:
    """The sum of all cells (numpy's ``m.sum()``)."""
    return fsum_np(_flat(m))


def indicators(
    student: Cells, all_graph: Optional[Cells], feedback_counts: Mapping[str, int]
) -> Dict[str, Optional[float]]:
    """The dashboard's indicators: exploration, enjoyment and edges (percent of the -all graph).

    Without an ``-all`` graph, exploration and edges are undefined: None (SPEC section 3, never a
    made-up 0); exploration is None for a student without transitions and edges is None when the
    ``-all`` graph is empty.
    """
    exploration: Optional[float] = None
    edges: Optional[float] = None
    if all_graph is not None:
        exploration = task_distance(student, all_graph, a=0.0, b=10.0, loop=2.0, upper=2.0, lower=-1.0)
        denominator = total(all_graph)
        edges = 100.0 * total(student) / denominator if denominator else None
    return {"exploration": exploration, "enjoyment": enjoyment(feedback_counts), "edges": edges}
