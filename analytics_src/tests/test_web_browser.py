"""The class view in a real browser: Debian's chromium, headless, driven by Playwright (never its own
browser download). Screenshots of both pages go to the test's output folder (printed)."""

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from web_helpers import WebServer, handler_answer, recorded_lines, replay_into, students_of

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.store import Store
from practable_analytics.web.headless import chromium_flags

CHROMIUM = os.environ.get("PRACTABLE_CHROMIUM") or shutil.which("chromium") or ""
FLAGS = chromium_flags()

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM, reason="chromium not installed (make test installs Debian's chromium)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright not installed (the test extra has it)"),
]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[WebServer, Path, Registry]]:
    """The recorded sessions replayed as if they ended a minute ago, served by a real web process."""
    registry = Registry.load()
    db = tmp_path_factory.mktemp("browser") / "analytics.sqlite"
    replay_into(db, registry, recorded_lines(shift_to_ms=int(time.time() * 1000) - 60_000))
    server = WebServer(db)
    try:
        yield server, db, registry
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("screenshots")
    print(f"\nclass view screenshots: {out}")
    return out


def open_page(browser: Any, server: WebServer) -> Tuple[Any, List[str]]:
    """A new page that records every request it makes."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests: List[str] = []
    page.on("request", lambda r: requests.append(r.url))
    return page, requests


def outside(requests: List[str], server: WebServer) -> List[str]:
    return [u for u in requests if not (u.startswith(server.url + "/") or u.startswith("data:"))]


def expected_likely(db: Path, registry: Registry, user: str, exp: str, course: str) -> Any:
    """The closest task graph from the dashboard's own task_identification answer."""
    tasks = handler_answer(db, registry, user, exp, course, "task_identification")["tasks"]
    all_graph = registry.experiment(exp).courses[course].all_graph  # type: ignore[union-attr]
    ranked = sorted((d, g) for g, d in tasks.items() if d is not None and g != all_graph)
    return ranked[0][1] if ranked else None


def test_course_page_lists_every_student_and_refreshes_live(
    session: Tuple[WebServer, Path, Registry], browser: Any, shots: Path
) -> None:
    server, db, registry = session
    for (exp, course), users in students_of(db).items():
        page, requests = open_page(browser, server)
        page.goto(f"{server.url}/courses/{exp}/{course}")
        rows = page.locator("#students tbody tr")
        assert rows.count() == len(users)
        for user in users:
            row = page.locator(f'#students tbody tr[data-user="{user}"]')
            assert row.count() == 1
            assert row.locator("a").get_attribute("title") == user  # full id on hover
            likely = row.locator("td.likely").inner_text()
            assert likely == (expected_likely(db, registry, user, exp, course) or "-"), user
        page.screenshot(path=str(shots / f"course-{exp}-{course}.png"), full_page=True)
        assert outside(requests, server) == []
        page.close()

    # live refresh: a student who starts working after the page was opened appears without a reload
    page, requests = open_page(browser, server)
    page.goto(f"{server.url}/courses/spinner/engdes1")
    page.evaluate("window.__notReloaded = true")
    before = page.locator("#students tbody tr").count()
    now = int(time.time() * 1000)
    late = [
        {"user": "late-student", "t": now + i, "exp": "spinner", "course": "engdes1", "hardware": "spin33",
         "type": "analytics", "payload": {"log": log}}
        for i, log in enumerate(["voltage", "position", "position_ramp"])
    ]  # fmt: skip
    with Store(db) as store:  # what a logger does while the page is open
        Handler(store, registry).handle_many(late)
    row = page.locator('#students tbody tr[data-user="late-student"]')
    row.wait_for(timeout=10_000)  # the page polls every 3 s
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator("#students tbody tr").count() == before + 1
    assert "active" in row.inner_text()
    assert row.locator("td.likely").inner_text() == expected_likely(
        db, registry, "late-student", "spinner", "engdes1"
    )
    page.screenshot(path=str(shots / "course-live.png"), full_page=True)
    assert outside(requests, server) == []
    page.close()


def test_student_page_draws_both_graphs(
    session: Tuple[WebServer, Path, Registry], browser: Any, shots: Path
) -> None:
    server, _db, registry = session
    exp, course, user = "spinner", "engdes1", "53a6788c-e689-48d4-9231-c2fbd23df009"
    detail = server.json(f"/api/courses/{exp}/{course}/students/{user}")
    n_nodes = len(registry.experiment(exp).nodes)  # type: ignore[union-attr]
    page, requests = open_page(browser, server)
    errors: List[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/courses/{exp}/{course}/students/{user}")
    page.wait_for_function("window.practableGraphs && window.practableGraphs.comparison_graph")
    for source, box in (("student_graph", "#student-graph"), ("comparison_graph", "#expert-graph")):
        assert page.locator(f"{box} canvas").count() == 1
        drawn: Dict[str, Any] = page.evaluate(
            """(source) => {
                const g = window.practableGraphs[source];
                const body = g.network.body.nodes;
                const positions = {};
                g.nodes.get().forEach(n => {
                    positions[n.id] = {given: [n.x, n.y], drawn: [body[n.id].x, body[n.id].y]};
                });
                return {nodes: g.nodes.length, positions: positions,
                        widths: g.edges.get().map(e => [e.from, e.to, e.width])};
            }""",
            source,
        )
        answer = detail[source]
        assert drawn["nodes"] == n_nodes == len(answer["nodes"])
        for node in answer["nodes"]:
            at = drawn["positions"][node["id"]]
            assert at["given"] == [node["x"], node["y"]]  # vis-network is given the answered positions
            # and draws them fixed (physics off) at its own parseInt() of them, as in the dashboard
            assert at["drawn"] == [math.trunc(node["x"]), math.trunc(node["y"])]
        assert drawn["widths"] == [[e["from"], e["to"], e["width"]] for e in answer["edges"]]
        assert answer["edges"], source  # both graphs have something to draw
    assert page.locator("h2", has_text=detail["likely_task"]).count() == 1
    page.wait_for_timeout(300)  # let the canvas paint before the screenshot
    page.screenshot(path=str(shots / "student.png"), full_page=True)
    assert errors == []
    assert outside(requests, server) == []
    page.close()
