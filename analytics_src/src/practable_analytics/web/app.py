"""The Flask application of the class view: server-rendered pages and the JSON API they are built from.

Pages work without JavaScript; ``static/class.js`` only refreshes the course table (polling the API
every few seconds) and ``static/student.js`` draws the graphs with the vendored vis-network. Nothing is
loaded from outside the server (the Content-Security-Policy says so to the browser too).
"""

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from flask import Flask, Response, abort, jsonify, render_template, request, url_for

from practable_analytics.experiments import Registry
from practable_analytics.store import Store, StoreError
from practable_analytics.web.view import (
    DEFAULT_STUCK_MINUTES,
    DEFAULT_WINDOW,
    STATUSES,
    WINDOWS,
    ClassView,
    NotFoundError,
)

LOG = logging.getLogger(__name__)
REFRESH_MS = 3000
SORT_KEYS = ("user", "first_event", "last_event", "events", "likely_task", "likely_distance", "status")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


def fmt_time(ms: Optional[int]) -> str:
    """An event time (ms since the epoch) as UTC text for the pages."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def fmt_number(value: Optional[float]) -> str:
    """A distance or indicator for the pages (``-`` where undefined)."""
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) and not float(value).is_integer() else str(int(value))


def short_id(user: str) -> str:
    """The first 8 characters of a student id (the full id is shown on hover)."""
    return user if len(user) <= 10 else user[:8] + "\u2026"


def _sort_rows(rows: List[Dict[str, Any]], key: str, descending: bool) -> List[Dict[str, Any]]:
    def value(row: Dict[str, Any]) -> Tuple[int, Any]:
        v = row.get(key)
        return (1, "") if v is None else (0, v)

    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=value, reverse=descending) + missing


def display_row(row: Dict[str, Any], graphs: List[str]) -> Tuple[Any, ...]:
    """A course-table row as the page prints it (formatted once in Python: 200 rows stay fast).

    (user, short id, status, reason, first, last, events, likely task, number cells, feedback).
    """
    ind = row["indicators"]
    numbers = [fmt_number(row["likely_distance"])]
    numbers += [fmt_number(row["tasks"].get(g)) for g in graphs]
    numbers += [
        fmt_number(ind.get("exploration")),
        fmt_number(ind.get("enjoyment")),
        fmt_number(ind.get("edges")),
    ]
    return (
        row["user"],
        short_id(row["user"]),
        row["status"],
        row["reason"],
        fmt_time(row["first_event"]),
        fmt_time(row["last_event"]),
        row["events"],
        row["likely_task"] or "-",
        numbers,
        row["feedback"] or "-",
    )


def create_app(
    db_path: str,
    registry: Registry,
    *,
    stuck_minutes: float = DEFAULT_STUCK_MINUTES,
    clock_ms: Callable[[], int] = _wall_clock_ms,
) -> Flask:
    """The class view over the database at ``db_path``, opened read-only in each serving thread."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    view = ClassView(
        lambda: Store.read_only(db_path), registry, stuck_minutes=stuck_minutes, clock_ms=clock_ms
    )
    app.extensions["practable_class_view"] = view
    app.jinja_env.filters["time"] = fmt_time
    app.jinja_env.filters["num"] = fmt_number
    app.jinja_env.filters["short"] = short_id

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(404)
    def not_found(error: Exception) -> Tuple[Any, int]:
        reason = getattr(error, "description", None) or "not found"
        if wants_json():
            return jsonify({"error": reason}), 404
        return render_template("error.html", code=404, reason=reason), 404

    @app.errorhandler(400)
    def bad_request(error: Exception) -> Tuple[Any, int]:
        reason = getattr(error, "description", None) or "bad request"
        if wants_json():
            return jsonify({"error": reason}), 400
        return render_template("error.html", code=400, reason=reason), 400

    @app.errorhandler(StoreError)
    def store_error(error: StoreError) -> Tuple[Any, int]:
        LOG.warning("store unavailable: %s", error)
        view.close()  # reopen on the next request (the loggers may not have created the file yet)
        if wants_json():
            return jsonify({"error": "store unavailable"}), 503
        return render_template("error.html", code=503, reason="store unavailable"), 503

    def window_arg() -> str:
        window = request.args.get("window", DEFAULT_WINDOW)
        if window not in WINDOWS:
            abort(400, description="window must be one of: " + ", ".join(WINDOWS))
        return window

    def status_arg() -> Optional[str]:
        wanted = request.args.get("status", "")
        if wanted and wanted not in STATUSES:
            abort(400, description="status must be one of: " + ", ".join(STATUSES))
        return wanted or None

    def course_rows(exp: str, course: str) -> List[Dict[str, Any]]:
        try:
            rows = view.students(exp, course, window_arg())
        except NotFoundError as exc:
            abort(404, description=str(exc))
        wanted = status_arg()
        if wanted is not None:
            rows = [r for r in rows if r["status"] == wanted]
        return rows

    def student_detail(exp: str, course: str, user: str) -> Dict[str, Any]:
        try:
            return view.student(exp, course, user)
        except NotFoundError as exc:
            abort(404, description=str(exc))

    def course_graphs(exp: str, course: str) -> List[str]:
        experiment = registry.experiment(exp)
        if experiment is None or course not in experiment.courses:
            return []
        return sorted(experiment.courses[course].graphs)

    # -- JSON API -------------------------------------------------------------------------------

    @app.get("/api/courses")
    def api_courses() -> Response:
        return jsonify(view.courses())

    @app.get("/api/courses/<exp>/<course>/students")
    def api_students(exp: str, course: str) -> Response:
        return jsonify(course_rows(exp, course))

    @app.get("/api/courses/<exp>/<course>/students/<path:user>")
    def api_student(exp: str, course: str, user: str) -> Response:
        return jsonify(student_detail(exp, course, user))

    # -- pages ----------------------------------------------------------------------------------

    @app.get("/")
    def index() -> str:
        return render_template("index.html", courses=view.courses())

    @app.get("/courses/<exp>/<course>")
    def course_page(exp: str, course: str) -> str:
        rows = course_rows(exp, course)
        sort = request.args.get("sort", "last_event")
        if sort not in SORT_KEYS:
            abort(400, description="sort must be one of: " + ", ".join(SORT_KEYS))
        descending = request.args.get("order", "desc") != "asc"
        graphs = course_graphs(exp, course)
        return render_template(
            "course.html",
            exp=exp,
            course=course,
            rows=[display_row(r, graphs) for r in _sort_rows(rows, sort, descending)],
            student_base=url_for("course_page", exp=exp, course=course) + "/students/",
            graphs=graphs,
            window=window_arg(),
            windows=list(WINDOWS),
            status=status_arg() or "",
            statuses=STATUSES,
            sort=sort,
            order="desc" if descending else "asc",
            sort_keys=SORT_KEYS,
            refresh_ms=REFRESH_MS,
            stuck_minutes=view.stuck_ms / 60000,
            now=view.now_ms(),
        )

    @app.get("/courses/<exp>/<course>/students/<path:user>")
    def student_page(exp: str, course: str, user: str) -> str:
        detail = student_detail(exp, course, user)
        return render_template(
            "student.html",
            exp=exp,
            course=course,
            s=detail,
            graphs=course_graphs(exp, course),
            now=view.now_ms(),
        )

    return app
