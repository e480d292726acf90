"""Experiment definitions and comparison graphs, loaded from data files.

An experiment is a JSON file ``<name>.json`` (nodes in order, raw log name -> node map, unit positions
for centroids, drawing positions in pixels (given, or as a scale of the unit positions), feedback
subjects, and optionally per course the centroid keys the dashboard reads). Comparison graphs are CSV
files ``<exp>-<course>-<task>.csv`` whose first row and first column name the nodes (row = from). A
course exists when it has at least one graph.

The package ships spinner and pendulum with their graphs; an operator directory may add experiments
and graphs, or replace shipped ones with the same name. Any invalid file raises
:class:`DefinitionError` with the file name and the problem; :func:`check` applies the same rules and
returns every problem instead of stopping at the first (``practable-analytics check``).

Loading needs no numpy (``serve`` never imports it): matrices and positions are kept as tuples of
floats (``Course.cells``, ``Experiment.unit_xy``/``draw_xy``), and the numpy arrays the offline
commands use (``Course.graphs``, ``Experiment.unit_positions``/``draw_positions``, ``Registry.graph``)
are made from them, read-only, on first use.
"""

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from practable_analytics.text import printable

if TYPE_CHECKING:  # numpy is imported only when an array is asked for (offline commands)
    import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
"""Experiment and course names: no ``-`` (it separates exp, course and task in graph names)."""
TASK_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
MAX_NODES = 64
MAX_FILE_BYTES = 1 << 20
MAX_VALUE = 1e6
"""Bound on every number of a definition (|position|, graph cell): far above any real count or pixel,
far below where the graph edit distance or a centroid could overflow to inf."""
RESERVED_CENTROID_KEYS = ("student", "all", "vertices")


class DefinitionError(ValueError):
    """An experiment or graph file is invalid; the message starts with the file name."""


Matrix = Tuple[Tuple[float, ...], ...]
"""A comparison graph as rows of floats (row = from, column = to), in the experiment's node order."""
XY = Tuple[Tuple[float, float], ...]
"""One (x, y) per node, in the experiment's node order."""


def _array(value: Any) -> "np.ndarray":
    import numpy as np  # noqa: PLC0415 (offline commands only; serve never needs an array)

    arr = np.array(value, dtype=np.float64)
    arr.setflags(write=False)
    return arr


class _Arrays(Mapping[str, "np.ndarray"]):
    """Read-only numpy views of a name -> Matrix mapping, each made once on first access."""

    def __init__(self, cells: Mapping[str, Matrix]) -> None:
        self._cells = cells
        self._made: Dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> "np.ndarray":
        arr = self._made.get(key)
        if arr is None:
            arr = self._made[key] = _array(self._cells[key])
        return arr

    def __contains__(self, key: object) -> bool:
        return key in self._cells  # no conversion just to ask

    def __iter__(self) -> Iterator[str]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)


@dataclass(frozen=True)
class Course:
    """The comparison graphs of one experiment and course."""

    name: str
    cells: Mapping[str, Matrix]
    """Full graph name (``spinner-engdes1-2``) -> (n, n) matrix as rows of floats, sorted by name."""
    all_graph: Optional[str]
    """``<exp>-<course>-all`` when that graph exists."""
    centroid_keys: Mapping[str, str]
    """Response key (``task1core``) -> full graph name, for the centroids answer."""
    _arrays: _Arrays = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_arrays", _Arrays(self.cells))

    @property
    def graphs(self) -> Mapping[str, "np.ndarray"]:
        """Full graph name -> read-only float64 (n, n) numpy array (made on first access)."""
        return self._arrays


@dataclass(frozen=True)
class Experiment:
    """One kind of lab (spinner, pendulum, ...)."""

    name: str
    nodes: Tuple[str, ...]
    log_map: Mapping[str, int]
    unit_xy: XY
    """Centroid (unit) positions of the nodes."""
    draw_xy: XY
    """Pixel positions for vis-network."""
    courses: Mapping[str, Course]
    feedback_subjects: Tuple[str, ...]
    _arrays: Dict[str, "np.ndarray"] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def unit_positions(self) -> "np.ndarray":
        """``unit_xy`` as a read-only float64 (n, 2) numpy array."""
        if "unit" not in self._arrays:
            self._arrays["unit"] = _array(self.unit_xy)
        return self._arrays["unit"]

    @property
    def draw_positions(self) -> "np.ndarray":
        """``draw_xy`` as a read-only float64 (n, 2) numpy array."""
        if "draw" not in self._arrays:
            self._arrays["draw"] = _array(self.draw_xy)
        return self._arrays["draw"]

    def resolve_graph(self, course: str, name: str) -> Optional[str]:
        """Full name of a comparison graph of this experiment given as a full name or a task suffix.

        ``name`` may be any graph of the experiment (``spinner-cie3-all``) or a task of ``course``
        (``all`` -> ``spinner-<course>-all``). None when there is no such graph.
        """
        for other in self.courses.values():
            if name in other.cells:
                return name
        c = self.courses.get(course)
        if c is not None:
            full = f"{self.name}-{course}-{name}"
            if full in c.cells:
                return full
        return None

    def graph(self, name: str) -> Optional["np.ndarray"]:
        """The matrix of a graph of this experiment by full name."""
        course = self.courses.get(_course_of(self.name, name))
        return None if course is None else course.graphs.get(name)

    def graph_cells(self, name: str) -> Optional[Matrix]:
        """The matrix of a graph of this experiment by full name, as rows of floats."""
        course = self.courses.get(_course_of(self.name, name))
        return None if course is None else course.cells.get(name)


@dataclass(frozen=True)
class _Definition:
    """An experiment as read from JSON, before its graphs are attached."""

    name: str
    nodes: Tuple[str, ...]
    log_map: Dict[str, int]
    unit_positions: XY
    draw_positions: XY
    feedback_subjects: Tuple[str, ...]
    centroid_keys: Dict[str, Dict[str, str]]  # course -> key -> task suffix


def _course_of(exp: str, graph: str) -> str:
    rest = graph[len(exp) + 1 :] if graph.startswith(exp + "-") else ""
    return rest.split("-", 1)[0]


def _fail(path: Path, problem: str) -> DefinitionError:
    return DefinitionError(f"{printable(path.name)}: {problem}")


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _fail(path, f"larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, f"cannot read: {exc}") from exc


def _position_table(path: Path, value: Any, key: str, nodes: Tuple[str, ...]) -> XY:
    if not isinstance(value, dict) or set(value) != set(nodes):
        raise _fail(path, f"'{key}' must be an object with exactly one [x, y] per node")
    out: List[Tuple[float, float]] = []
    for node in nodes:
        pair = value[node]
        ok = isinstance(pair, list) and len(pair) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
        if not ok or not all(math.isfinite(v) and abs(v) <= MAX_VALUE for v in pair):
            raise _fail(path, f"'{key}.{node}' must be [x, y] with finite numbers, |v| <= {MAX_VALUE:g}")
        out.append((float(pair[0]), float(pair[1])))
    return tuple(out)


def _draw_scale(path: Path, value: Any) -> Tuple[float, float]:
    """``[sx, sy]``: drawing positions are the unit positions times these, computed at full float
    precision (spinner: ``[200, -200]``, y flipped, so voltage_step is at y = -200 sin 60 degrees)."""
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(v) and v != 0 for v in value):
        raise _fail(path, "'draw_scale' must be [sx, sy] with finite non-zero numbers")
    return (float(value[0]), float(value[1]))


def _str_list(path: Path, value: Any, key: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, f"'{key}' must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise _fail(path, f"'{key}' has duplicates")
    return list(value)


def parse_experiment(path: Path) -> _Definition:
    """Read and validate one experiment JSON file."""
    try:
        doc = json.loads(_read_text(path))
    except ValueError as exc:
        raise _fail(path, f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise _fail(path, "must be a JSON object")
    required = ("name", "nodes", "logs", "unit_positions")
    missing = [k for k in required if k not in doc]
    if "draw_positions" not in doc and "draw_scale" not in doc:
        missing.append("draw_positions (or draw_scale)")
    if missing:
        raise _fail(path, f"missing key(s): {', '.join(missing)}")
    if "draw_positions" in doc and "draw_scale" in doc:
        raise _fail(path, "give 'draw_positions' or 'draw_scale', not both")
    unknown = set(doc) - {*required, "draw_positions", "draw_scale", "feedback_subjects", "courses"}
    if unknown:
        raise _fail(path, f"unknown key(s): {', '.join(sorted(unknown))}")
    name = doc["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _fail(path, "'name' must match [A-Za-z0-9_]{1,64}")
    if name != path.stem:
        raise _fail(path, f"'name' {name!r} differs from the file name")
    nodes = tuple(_str_list(path, doc["nodes"], "nodes"))
    if not 2 <= len(nodes) <= MAX_NODES:
        raise _fail(path, f"'nodes' must have 2..{MAX_NODES} entries")
    logs = doc["logs"]
    if not isinstance(logs, dict):
        raise _fail(path, "'logs' must be an object from log name to node")
    log_map: Dict[str, int] = {}
    for log, node in logs.items():
        if node not in nodes:
            raise _fail(path, f"'logs.{log}' names unknown node {node!r}")
        log_map[log] = nodes.index(node)
    subjects = _str_list(path, doc.get("feedback_subjects", []), "feedback_subjects")
    courses = doc.get("courses", {})
    if not isinstance(courses, dict):
        raise _fail(path, "'courses' must be an object")
    keys: Dict[str, Dict[str, str]] = {}
    for course, spec in courses.items():
        if not NAME_RE.match(course):
            raise _fail(path, f"course name {course!r} must match [A-Za-z0-9_]{{1,64}}")
        ck = spec.get("centroid_keys", {}) if isinstance(spec, dict) else None
        if not isinstance(ck, dict) or set(spec) - {"centroid_keys"}:
            raise _fail(path, f"'courses.{course}' must be {{\"centroid_keys\": {{key: task}}}}")
        for key, task in ck.items():
            if key in RESERVED_CENTROID_KEYS or not isinstance(task, str) or not TASK_RE.match(task):
                raise _fail(path, f"'courses.{course}.centroid_keys.{key}' is invalid")
        keys[course] = dict(ck)
    unit = _position_table(path, doc["unit_positions"], "unit_positions", nodes)
    if "draw_scale" in doc:
        sx, sy = _draw_scale(path, doc["draw_scale"])
        draw = tuple((x * sx, y * sy) for x, y in unit)
        if not all(abs(v) <= MAX_VALUE for pair in draw for v in pair):
            raise _fail(path, f"'draw_scale' puts a drawing position beyond {MAX_VALUE:g}")
    else:
        draw = _position_table(path, doc["draw_positions"], "draw_positions", nodes)
    return _Definition(
        name=name,
        nodes=nodes,
        log_map=log_map,
        unit_positions=unit,
        draw_positions=draw,
        feedback_subjects=tuple(subjects),
        centroid_keys=keys,
    )


def parse_graph(path: Path, nodes: Tuple[str, ...], text: Optional[str] = None) -> "np.ndarray":
    """Read one comparison graph CSV and return it in ``nodes`` order (row = from, column = to), as a
    float64 numpy array (:func:`parse_cells` without numpy).

    ``text`` is the file's content when the caller has read it already (``path`` then only names it).
    """
    import numpy as np  # noqa: PLC0415 (offline commands only)

    return np.array(parse_cells(path, nodes, text), dtype=np.float64)


def parse_cells(path: Path, nodes: Tuple[str, ...], text: Optional[str] = None) -> Matrix:
    """Read one comparison graph CSV and return it in ``nodes`` order as rows of floats."""
    if text is None:
        text = _read_text(path)
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise _fail(path, "empty file")
    header = [c.strip() for c in rows[0][1:]]
    names = [r[0].strip() for r in rows[1:]]
    expected = sorted(nodes)
    for what, got in (("header row", header), ("first column", names)):
        if sorted(got) != expected:
            raise _fail(path, f"{what} names {sorted(got)} do not match the nodes {expected}")
    n = len(nodes)
    matrix = [[0.0] * n for _ in range(n)]
    col_index = [nodes.index(h) for h in header]
    for r, row in enumerate(rows[1:], start=2):
        if len(row) != n + 1:
            raise _fail(path, f"row {r} has {len(row) - 1} values, expected {n}")
        i = nodes.index(row[0].strip())
        for j, cell in zip(col_index, row[1:]):
            try:
                value = float(cell)
            except ValueError:
                raise _fail(path, f"row {r}: {cell!r} is not a number") from None
            if not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
                raise _fail(path, f"row {r}: {cell!r} must be finite, >= 0 and <= {MAX_VALUE:g}")
            matrix[i][j] = value
    return tuple(tuple(row) for row in matrix)


class Registry:
    """All known experiments with their courses and comparison graphs (read-only after load)."""

    def __init__(self, experiments: Mapping[str, Experiment]) -> None:
        self._experiments = dict(experiments)
        self._graphs: Dict[str, Tuple[Experiment, Course]] = {}
        for exp in self._experiments.values():
            for course in exp.courses.values():
                for gname in course.cells:
                    self._graphs[gname] = (exp, course)

    @classmethod
    def load(cls, extra_dir: Optional[Path] = None) -> "Registry":
        """Load the package data, then ``extra_dir`` (``*.json`` and ``*.csv``) over it.

        Raises :class:`DefinitionError` at the first invalid file (:func:`check` lists them all).
        """

        def stop(problem: DefinitionError) -> None:
            raise problem

        return cls(_load(extra_dir, stop))

    def experiment(self, name: str) -> Optional[Experiment]:
        """The experiment called ``name``, or None."""
        return self._experiments.get(name)

    def experiments(self) -> List[str]:
        """Names of all experiments, sorted."""
        return sorted(self._experiments)

    def graph(self, name: str) -> Optional[Tuple[Experiment, "np.ndarray"]]:
        """The experiment and matrix of a comparison graph by full name, or None."""
        found = self._graphs.get(name)
        return None if found is None else (found[0], found[1].graphs[name])


def check(extra_dir: Optional[Path] = None) -> List[str]:
    """Every problem :meth:`Registry.load` would stop at, one ``<file>: <reason>`` each (empty: valid).

    A file is reported once (its first problem); a graph of an experiment whose own file is invalid
    is reported as such rather than checked against a definition that does not exist.
    """
    problems: List[str] = []
    _load(extra_dir, lambda exc: problems.append(str(exc)))
    return problems


def _load(extra_dir: Optional[Path], problem: Callable[[DefinitionError], None]) -> Dict[str, Experiment]:
    """The experiments of the package data with ``extra_dir`` over it. Each invalid file goes to
    ``problem`` (which may raise) and is left out."""
    dirs = [(DATA_DIR / "experiments", DATA_DIR / "graphs")]
    if extra_dir is not None:
        extra = Path(extra_dir)
        if not extra.is_dir():
            problem(DefinitionError(f"{printable(str(extra))}: not a directory"))
            return {}
        dirs.append((extra, extra))
    defs: Dict[str, _Definition] = {}
    broken: Dict[str, str] = {}  # experiment (file stem) -> its file name, when that file is invalid
    graph_files: Dict[str, Path] = {}
    broken_graphs = set()  # graph files already reported invalid
    for exp_dir, graph_dir in dirs:
        for path in sorted(exp_dir.glob("*.json")):
            try:
                d = parse_experiment(path)
            except DefinitionError as exc:
                broken[path.stem] = path.name
                defs.pop(path.stem, None)
                problem(exc)
                continue
            broken.pop(d.name, None)
            defs[d.name] = d
        for path in sorted(graph_dir.glob("*.csv")):
            graph_files[path.stem] = path
    graphs: Dict[str, Dict[str, Dict[str, Matrix]]] = {name: {} for name in defs}
    for gname, path in graph_files.items():
        owners = [e for e in (*defs, *broken) if gname.startswith(e + "-")]
        if not owners:
            problem(_fail(path, f"no experiment for graph name {gname!r} (want <exp>-<course>-<task>)"))
            continue
        exp = max(owners, key=len)
        if exp in broken:
            problem(_fail(path, f"not checked: its experiment file {broken[exp]} is invalid"))
            continue
        parts = gname[len(exp) + 1 :].split("-", 1)
        if len(parts) != 2 or not NAME_RE.match(parts[0]) or not TASK_RE.match(parts[1]):
            problem(_fail(path, f"graph name {gname!r} is not <exp>-<course>-<task>"))
            continue
        try:
            graphs[exp].setdefault(parts[0], {})[gname] = parse_cells(path, defs[exp].nodes)
        except DefinitionError as exc:
            broken_graphs.add(gname)
            problem(exc)
    experiments = {}
    for name, d in defs.items():
        courses = {}
        for cname, cgraphs in graphs[name].items():
            keys = {}
            for key, task in d.centroid_keys.get(cname, {}).items():
                full = f"{name}-{cname}-{task}"
                if full in broken_graphs:
                    continue
                if full not in cgraphs:
                    what = f"centroid key {key!r} of course {cname!r} names missing graph {full}"
                    problem(DefinitionError(f"{name}.json: {what}"))
                    continue
                keys[key] = full
            if not keys:  # undeclared course: every task graph under its task name
                prefix = len(name) + len(cname) + 2
                keys = {g[prefix:]: g for g in sorted(cgraphs)}
                keys = {k: g for k, g in keys.items() if k not in RESERVED_CENTROID_KEYS}
            all_name = f"{name}-{cname}-all"
            courses[cname] = Course(
                name=cname,
                cells=dict(sorted(cgraphs.items())),
                all_graph=all_name if all_name in cgraphs else None,
                centroid_keys=keys,
            )
        experiments[name] = Experiment(
            name=name,
            nodes=d.nodes,
            log_map=d.log_map,
            unit_xy=d.unit_positions,
            draw_xy=d.draw_positions,
            courses=courses,
            feedback_subjects=d.feedback_subjects,
        )
    return experiments
