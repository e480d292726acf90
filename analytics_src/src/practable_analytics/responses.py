"""Dashboard answers in the exact JSON shapes of SPEC section 1.

:class:`Responder` turns a request plus the student's matrix and feedback counts into response dicts.
Parts that depend only on the registry (node lists, comparison graph answers) are built once. Answers
share those precomputed parts: treat every returned dict as read-only. :func:`encode` is the single
wire encoding used by ``replay`` and the service.

Matrices are rows of floats (:mod:`practable_analytics.cells`): answering never imports numpy.
"""

import json
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from practable_analytics import cells
from practable_analytics.cells import Cells
from practable_analytics.experiments import Experiment, Matrix, Registry
from practable_analytics.messages import Request, error_object

GRAPH_CONTENTS = ("student_graph", "comparison_graph")
CONTENTS = (
    "student_graph",
    "comparison_graph",
    "task_identification",
    "indicators",
    "centroids",
    "task_feedback",
    "all_feedback",
)
ALL_FEEDBACK = ("student_graph", "comparison_graph", "task_identification", "indicators", "centroids")
NEEDS_FEEDBACK_COUNTS = ("indicators", "all_feedback")


def encode(message: Mapping[str, Any]) -> str:
    """The one wire form of an answer: compact JSON, ASCII, never NaN/Infinity: a number that is not
    finite is sent as null (SPEC section 1: an undefined number is null), so an answer can always be
    encoded. Raises TypeError only for values JSON has no form for."""
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(message), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (containers copied, never mutated)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _number(value: float) -> float:
    """An integral float as int (``3`` rather than ``3.0``), otherwise the float."""
    return int(value) if float(value).is_integer() else float(value)


def _nodes(exp: Experiment) -> List[Dict[str, Any]]:
    return [
        {"id": name, "label": name, "shape": "dot", "size": 10, "color": "#97c2fc",
         "x": _number(x), "y": _number(y), "physics": False}
        for name, (x, y) in zip(exp.nodes, exp.draw_xy)
    ]  # fmt: skip


def graph_fields(exp: Experiment, matrix: Cells, nodes: List[Dict[str, Any]]) -> Dict[str, Any]:
    """``nodes``, ``edges`` (one per non-zero cell, row-major) and ``node_info`` of a matrix."""
    names = exp.nodes
    edges = [
        {"from": names[i], "to": names[j], "width": _number(w), "label": str(int(w)), "arrows": "to"}
        for i, row in enumerate(matrix)
        for j, w in enumerate(row)
        if w != 0
    ]
    centrality = dict(zip(names, cells.in_centrality(matrix)))
    return {"nodes": nodes, "edges": edges, "node_info": {"in_centrality": centrality}}


class NotAnswerableError(ValueError):
    """matrix request that gets the error object; the message is the short reason."""


class Responder:
    """Builds answers for one registry; caches everything that does not depend on the student."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._nodes: Dict[str, List[Dict[str, Any]]] = {}
        self._graphs: Dict[str, Dict[str, Any]] = {}
        self._centroids: Dict[Tuple[str, str], Dict[str, Any]] = {}
        for name in registry.experiments():
            exp = registry.experiment(name)
            assert exp is not None
            self._nodes[name] = nodes = _nodes(exp)
            vertices = [
                {"name": n, "x": float(x), "y": float(y)} for n, (x, y) in zip(exp.nodes, exp.unit_xy)
            ]
            self._centroids[(name, "")] = {"all": [None, None], "vertices": vertices}
            for course in exp.courses.values():
                for gname, matrix in course.cells.items():
                    self._graphs[gname] = graph_fields(exp, matrix, nodes)
                fixed: Dict[str, Any] = {
                    key: list(cells.centroid(course.cells[g], exp.unit_xy))
                    for key, g in course.centroid_keys.items()
                }
                all_graph = course.cells.get(course.all_graph or "")
                fixed["all"] = [None, None]
                if all_graph is not None:
                    fixed["all"] = list(cells.centroid(all_graph, exp.unit_xy))
                fixed["vertices"] = vertices
                self._centroids[(name, course.name)] = fixed
        self._contents: Dict[str, Callable[[Experiment, Request, Cells, Mapping[str, int]], List[dict]]]
        self._contents = {
            "student_graph": self._student_graph,
            "comparison_graph": self._comparison_graph,
            "task_identification": self._task_identification,
            "indicators": self._indicators,
            "centroids": self._centroids_answer,
            "task_feedback": self._task_feedback,
            "all_feedback": self._all_feedback,
        }

    def check(self, request: Request) -> Optional[Dict[str, Any]]:
        """The error object for a request that cannot be answered, checked before any store query."""
        exp = self._registry.experiment(request.exp)
        try:
            if request.content not in self._contents:
                raise NotAnswerableError("unknown content")
            if exp is None:
                raise NotAnswerableError("unknown exp")
            content = request.content  # all_feedback: each part is checked on its own
            if content == "comparison_graph":
                self._graph_name(exp, request, "graph")
            if content == "task_feedback":
                self._graph_name(exp, request, "task")
            if content == "task_identification":
                self._comparison_set(exp, request)
        except NotAnswerableError as exc:
            return error_object(request.user, request.content, str(exc))
        return None

    def answer(self, request: Request, matrix: Cells, feedback_counts: Mapping[str, int]) -> List[dict]:
        """Answers to a request that passed :meth:`check`; an error object list if it did not."""
        error = self.check(request)
        if error is not None:
            return [error]
        exp = self._registry.experiment(request.exp)
        assert exp is not None
        return self._contents[request.content](exp, request, matrix, feedback_counts)

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _head(request: Request, content: str) -> Dict[str, Any]:
        return {
            "user": request.user,
            "type": "response",
            "exp": request.exp,
            "course": request.course,
            "content": content,
        }

    @staticmethod
    def _graph_name(exp: Experiment, request: Request, field: str) -> str:
        value = request.payload.get(field)
        if type(value) is not str:
            raise NotAnswerableError(f"invalid field: payload.{field}")
        name = exp.resolve_graph(request.course, value)
        if name is None:
            raise NotAnswerableError(f"unknown graph: payload.{field}")
        return name

    @staticmethod
    def _comparison_set(exp: Experiment, request: Request) -> Tuple[Mapping[str, Matrix], bool]:
        course = exp.courses.get(request.course)
        if course is None:
            raise NotAnswerableError("no comparison graphs for this exp and course")
        algorithm = request.payload.get("algorithm", "task_distance")
        if algorithm not in ("task_distance", "ged"):
            raise NotAnswerableError("invalid field: payload.algorithm")
        return course.cells, algorithm == "ged"

    # -- contents --------------------------------------------------------------------------------

    def _student_graph(
        self, exp: Experiment, request: Request, matrix: Cells, _: Mapping[str, int]
    ) -> List[dict]:
        out = self._head(request, "student_graph")
        out.update(graph_fields(exp, matrix, self._nodes[exp.name]))
        return [out]

    def _comparison_graph(
        self, exp: Experiment, request: Request, _m: Cells, _c: Mapping[str, int]
    ) -> List[dict]:
        out = self._head(request, "comparison_graph")
        out.update(self._graphs[self._graph_name(exp, request, "graph")])
        return [out]

    def _task_identification(
        self, exp: Experiment, request: Request, matrix: Cells, _: Mapping[str, int]
    ) -> List[dict]:
        graphs, use_ged = self._comparison_set(exp, request)
        if use_ged:
            tasks: Dict[str, Optional[float]] = {g: cells.ged(matrix, expert) for g, expert in graphs.items()}
        else:
            tasks = {g: cells.task_distance(matrix, expert) for g, expert in graphs.items()}
        out = self._head(request, "task_identification")
        out["tasks"] = tasks
        return [out]

    def _indicators(
        self, exp: Experiment, request: Request, matrix: Cells, counts: Mapping[str, int]
    ) -> List[dict]:
        course = exp.courses.get(request.course)
        all_graph = None
        if course is not None and course.all_graph is not None:
            all_graph = course.cells[course.all_graph]
        out = self._head(request, "indicators")
        out["indicators"] = cells.indicators(matrix, all_graph, counts)
        return [out]

    def _centroids_answer(
        self, exp: Experiment, request: Request, matrix: Cells, _: Mapping[str, int]
    ) -> List[dict]:
        fixed = self._centroids.get((exp.name, request.course)) or self._centroids[(exp.name, "")]
        centroids: Dict[str, Any] = {"student": list(cells.centroid(matrix, exp.unit_xy))}
        centroids.update(fixed)
        out = self._head(request, "centroids")
        out["centroids"] = centroids
        return [out]

    def _task_feedback(
        self, exp: Experiment, request: Request, matrix: Cells, _: Mapping[str, int]
    ) -> List[dict]:
        expert = exp.graph_cells(self._graph_name(exp, request, "task"))
        assert expert is not None
        out = self._head(request, "task_feedback")
        out["feedback"] = cells.task_feedback(matrix, expert, exp.nodes)
        return [out]

    def _all_feedback(
        self, exp: Experiment, request: Request, matrix: Cells, counts: Mapping[str, int]
    ) -> List[dict]:
        """Five messages in order, always: a part that cannot be answered is an error object in its
        place (``request`` = that part's content) and the others are answered (SPEC section 1)."""
        out: List[dict] = []
        for content in ALL_FEEDBACK:
            try:
                out.extend(self._contents[content](exp, request, matrix, counts))
            except NotAnswerableError as exc:
                out.append(error_object(request.user, content, str(exc)))
        return out
