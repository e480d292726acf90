"""The class view (``practable-analytics web``): its numbers are the dashboard's answers, status rules,
404s, and the store opened read-only (by the app and by the real server process)."""

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from web_helpers import (
    WebServer,
    free_port,
    handler_answer,
    recorded_lines,
    replay_into,
    students_of,
)

from practable_analytics.cli import main
from practable_analytics.commands.common import CommandError
from practable_analytics.commands.web import parse_listen
from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.messages import parse_message
from practable_analytics.store import Store, StoreError
from practable_analytics.web.app import create_app
from practable_analytics.web.view import ACTIVE_MS, Facts, last_new_transition, likely_task, status

MIN = 60_000


@pytest.fixture(scope="module")
def recorded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference sample logs and comparison logs replayed into one real SQLite file."""
    db = tmp_path_factory.mktemp("web") / "analytics.sqlite"
    replay_into(db, Registry.load(), recorded_lines())
    return db


@pytest.fixture(scope="module")
def client(recorded_db: Path) -> Any:
    return create_app(str(recorded_db), Registry.load()).test_client()


def get_json(client: Any, path: str, code: int = 200) -> Any:
    r = client.get(path)
    assert r.status_code == code, (path, r.status_code, r.data[:300])
    assert r.content_type.startswith("application/json")
    return json.loads(r.data)


# -- numbers: the dashboard's own answers ---------------------------------------------------------


def test_api_numbers_equal_the_handlers_answers(recorded_db: Path, client: Any, registry: Registry) -> None:
    courses = get_json(client, "/api/courses")
    expected = students_of(recorded_db)
    assert {(c["exp"], c["course"]) for c in courses} == set(expected)
    for c in courses:
        assert c["students"] == len(expected[(c["exp"], c["course"])])
    likely_seen = 0
    for (exp, course), users in expected.items():
        rows = get_json(client, f"/api/courses/{exp}/{course}/students?window=all")
        assert sorted(r["user"] for r in rows) == users
        graphs = registry.experiment(exp).courses[course]  # type: ignore[union-attr]
        for row in rows:
            user = row["user"]
            ti = handler_answer(recorded_db, registry, user, exp, course, "task_identification")
            ind = handler_answer(recorded_db, registry, user, exp, course, "indicators")
            assert row["tasks"] == ti["tasks"]
            assert set(row["tasks"]) == set(graphs.graphs)
            assert row["indicators"] == ind["indicators"]
            ranked = sorted((d, g) for g, d in ti["tasks"].items() if d is not None and g != graphs.all_graph)
            assert row["likely_task"] == (ranked[0][1] if ranked else None)
            likely_seen += row["likely_task"] is not None
            detail = get_json(client, f"/api/courses/{exp}/{course}/students/{user}")
            for key in ("tasks", "indicators", "likely_task", "events", "first_event", "last_event"):
                assert detail[key] == row[key]
            sg = handler_answer(recorded_db, registry, user, exp, course, "student_graph")
            assert detail["student_graph"] == sg
            if row["likely_task"] is not None:
                cg = handler_answer(
                    recorded_db, registry, user, exp, course, "comparison_graph", graph=row["likely_task"]
                )
                assert detail["comparison_graph"] == cg
    assert likely_seen >= 10  # the recorded students made transitions: real numbers, not nulls


def test_rows_count_the_recorded_events(recorded_db: Path, registry: Registry) -> None:
    lines = recorded_lines()
    app = create_app(str(recorded_db), registry)
    rows = get_json(app.test_client(), "/api/courses/spinner/engdes1/students?window=all")
    by_user = {r["user"]: r for r in rows}
    want: Dict[str, List[int]] = {}
    for line in lines:
        obj = json.loads(line)
        parsed = parse_message(obj, registry, None)
        e = parsed.event
        if e is not None and e.type != "invalid" and (e.exp, e.course) == ("spinner", "engdes1"):
            want.setdefault(e.user, []).append(e.t)  # type: ignore[arg-type]
    for user, times in want.items():
        row = by_user[user]
        assert row["first_event"] == min(times)
        assert row["last_event"] == max(times)
        assert row["events"] == len(times)


def test_course_page_lists_every_student_with_likely_task(recorded_db: Path, client: Any) -> None:
    rows = get_json(client, "/api/courses/pendulum/engdes1/students?window=all")
    page = client.get("/courses/pendulum/engdes1?window=all").get_data(as_text=True)
    for row in rows:
        assert f'data-user="{row["user"]}"' in page
        assert f'title="{row["user"]}"' in page
    assert page.count("<tr data-user=") == len(rows)
    likely = {r["likely_task"] for r in rows if r["likely_task"]}
    assert likely and all(f'<td class="likely">{t}</td>' in page for t in likely)


def test_student_page_embeds_both_answers(client: Any) -> None:
    detail = get_json(client, "/api/courses/spinner/engdes1/students/cmp-spinner-engdes1-2")
    page = client.get("/courses/spinner/engdes1/students/cmp-spinner-engdes1-2").get_data(as_text=True)
    start = page.index('<script type="application/json" id="graph-data">') + len(
        '<script type="application/json" id="graph-data">'
    )
    embedded = json.loads(page[start : page.index("</script>", start)])
    assert embedded["student_graph"] == detail["student_graph"]
    assert embedded["comparison_graph"] == detail["comparison_graph"]
    assert detail["likely_task"] == "spinner-engdes1-2"  # the expert's own run is closest to its graph
    assert "/static/vendor/vis-network/vis-network.min.js" in page
    assert len(detail["timeline"]) == detail["events"] or len(detail["timeline"]) == 500


def test_static_files_are_served_from_the_package(client: Any) -> None:
    r = client.get("/static/vendor/vis-network/vis-network.min.js")
    assert r.status_code == 200 and len(r.data) > 100_000
    for name in ("LICENSE-MIT", "LICENSE-APACHE-2.0"):
        assert client.get(f"/static/vendor/vis-network/{name}").status_code == 200
    page = client.get("/")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_pages_work_without_javascript_sorted_and_filtered(client: Any) -> None:
    rows = get_json(client, "/api/courses/spinner/engdes1/students?window=all")
    page = client.get("/courses/spinner/engdes1?window=all&sort=events&order=asc").get_data(as_text=True)
    order = [line.split('"')[1] for line in page.split("<tr data-user=")[1:]]
    assert order == [r["user"] for r in sorted(rows, key=lambda r: r["events"])]
    # old recorded sessions: nobody has an event in the last 3 h (the default window) nor is active
    assert get_json(client, "/api/courses/spinner/engdes1/students") == []
    assert get_json(client, "/api/courses/spinner/engdes1/students?window=all&status=active") == []
    assert len(get_json(client, "/api/courses/spinner/engdes1/students?window=all&status=idle")) == len(rows)


# -- status rules on constructed timelines ----------------------------------------------------------


def test_status_rules() -> None:
    now = 100 * MIN
    stuck = 10 * MIN
    active = Facts(
        first_event=now - 30 * MIN, last_event=now - 10_000, last_new_transition=now - MIN, feedback=None
    )
    assert status(active, now, stuck) == ("active", None)
    idle = Facts(
        first_event=now - 30 * MIN,
        last_event=now - ACTIVE_MS - 1,
        last_new_transition=now - 5 * MIN,
        feedback=None,
    )
    assert status(idle, now, stuck) == ("idle", "no event for 2 min")
    assert status(Facts(None, None, None, None), now, stuck) == ("idle", "no timed event")
    looping = Facts(
        first_event=now - 30 * MIN, last_event=now, last_new_transition=now - 12 * MIN, feedback=None
    )
    assert status(looping, now, stuck) == ("stuck", "no new transition type for 12 min")
    no_moves = Facts(first_event=now - 11 * MIN, last_event=now, last_new_transition=None, feedback=None)
    assert status(no_moves, now, stuck) == ("stuck", "no transition for 11 min")
    just_started = Facts(first_event=now - MIN, last_event=now, last_new_transition=None, feedback=None)
    assert status(just_started, now, stuck) == ("active", None)
    confused = Facts(first_event=now - MIN, last_event=now, last_new_transition=now, feedback="Confused")
    assert status(confused, now, stuck) == ("stuck", "latest feedback: Confused")
    happy = Facts(first_event=now - MIN, last_event=now, last_new_transition=now, feedback="Curious")
    assert status(happy, now, stuck) == ("active", None)
    left_confused = Facts(
        first_event=now - 60 * MIN, last_event=now - 20 * MIN, last_new_transition=now, feedback="Bored"
    )
    assert status(left_confused, now, stuck)[0] == "idle"


def ref_last_new_transition(chain: List[Tuple[int, int]]) -> Optional[int]:
    """Reference: t of the event completing the latest first-seen (src, dst) pair of (t, node) items."""
    seen = set()
    found = None
    for (_, a), (t, b) in zip(chain, chain[1:]):
        if (a, b) not in seen:
            seen.add((a, b))
            found = t
    return found


def test_last_new_transition_time(tmp_path: Path, registry: Registry) -> None:
    modes = ["voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp"]
    nodes = registry.experiment("spinner").log_map  # type: ignore[union-attr]
    rnd = random.Random(3)
    cases: Dict[str, List[Tuple[int, str]]] = {
        "empty": [],
        "one": [(1, "voltage")],
        "loop": [(1, "voltage"), (2, "voltage"), (3, "voltage")],
        "back-and-forth": [(1, "voltage"), (2, "position"), (3, "voltage"), (4, "position"), (5, "voltage")],
    }
    for k in range(25):  # random chains, ties in t and late (out-of-order) arrivals included
        used = modes[: rnd.randrange(2, 7)]
        cases[f"random{k}"] = [(rnd.randrange(1, 60), rnd.choice(used)) for _ in range(40)]
    with Store(tmp_path / "chains.sqlite") as store:
        h = Handler(store, registry)
        for user, items in cases.items():
            for i in range(0, len(items), 7):  # in batches, as they arrive
                h.handle_many([_msg(user, t, log) for t, log in items[i : i + 7]])
    with Store.read_only(tmp_path / "chains.sqlite") as ro:
        for user, items in cases.items():
            # the chain order: by t, ties by arrival
            ordered = sorted(enumerate(items), key=lambda x: (x[1][0], x[0]))
            chain = [(t, nodes[log]) for _, (t, log) in ordered]
            length, got = ro.chain_after(user, "spinner", "engdes1")
            assert length == len(chain) and [(t, n) for t, _, n in got] == chain, user
            assert last_new_transition(got) == ref_last_new_transition(chain), user
    assert ref_last_new_transition([(1, 0), (2, 1), (3, 0), (4, 1), (5, 0)]) == 3  # (1,0) first at t=3


def test_last_new_transition_follows_a_growing_chain(tmp_path: Path, registry: Registry) -> None:
    """The view reads only new chain items between refreshes, and the whole chain again after a late
    (out-of-order) arrival or an erasure: the answer always equals the reference on the whole chain."""
    modes = ["voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp"]
    nodes = registry.experiment("spinner").log_map  # type: ignore[union-attr]
    db = tmp_path / "grow.sqlite"
    rnd = random.Random(5)
    sent: Dict[str, List[Tuple[int, str]]] = {"a": [], "b": []}
    with Store(db) as store:
        h = Handler(store, registry)
        app = create_app(str(db), registry)
        view = app.extensions["practable_class_view"]
        t = 1000
        for step in range(60):
            user = rnd.choice(["a", "b"])
            batch = []
            for _ in range(rnd.randrange(1, 4)):
                t += rnd.randrange(0, 3)
                late = step % 9 == 8  # now and then an item from the past
                item = (t - rnd.randrange(5, 50) if late else t, rnd.choice(modes[:4]))
                batch.append(item)
            h.handle_many([_msg(user, bt, log) for bt, log in batch])
            sent[user] += batch
            if step == 40:
                store.forget("b")
                sent["b"] = []
            for who, items in sent.items():
                ordered = sorted(enumerate(items), key=lambda x: (x[1][0], x[0]))
                chain = [(bt, nodes[log]) for _, (bt, log) in ordered]
                assert view.last_new_transition_time(who, "spinner", "engdes1") == ref_last_new_transition(
                    chain
                ), (step, who)


def test_likely_task_skips_the_whole_procedure_graph() -> None:
    assert likely_task({"a-all": 1.0, "b": 3.0, "c": 2.0, "d": None}, "a-all") == "c"
    assert likely_task({"a-all": 1.0, "d": None}, "a-all") is None


def _msg(user: str, t: int, log: Optional[str] = None, **kw: Any) -> Dict[str, Any]:
    m: Dict[str, Any] = {"user": user, "t": t, "exp": "spinner", "course": "engdes1", "hardware": "spin30"}
    if log is not None:
        m.update(type="analytics", payload={"log": log})
    else:
        m.update(type="feedback", payload=kw)
    return m


def test_status_through_the_api_on_a_constructed_class(tmp_path: Path, registry: Registry) -> None:
    now = 1_700_000_000_000
    db = tmp_path / "class.sqlite"
    msgs = []
    modes = ["voltage", "voltage_ramp", "position", "position_ramp", "speed", "speed_ramp"]
    for i in range(12):  # working: a new kind of step every 30 s, last one 10 s ago
        msgs.append(
            _msg("working", now - 10_000 - (11 - i) * 30_000, modes[i % 6] if i < 6 else modes[(i * 5) % 6])
        )
    for i in range(40):  # looping: the same two modes back and forth for 20 min, still clicking
        msgs.append(_msg("looping", now - 20 * MIN + i * 30_000, modes[i % 2]))
    msgs.append(_msg("gone", now - 30 * MIN, "voltage"))
    msgs.append(_msg("gone", now - 29 * MIN, "position"))
    msgs.append(_msg("confused", now - MIN, "voltage"))
    msgs.append(_msg("confused", now - 30_000, state="Confused", subject="Hardware"))
    msgs.append(_msg("old", now - 4 * 3600_000, "voltage"))
    with Store(db) as store:
        Handler(store, registry).handle_many(msgs)
    app = create_app(str(db), registry, stuck_minutes=10, clock_ms=lambda: now)
    c = app.test_client()
    rows = {r["user"]: r for r in get_json(c, "/api/courses/spinner/engdes1/students")}
    assert set(rows) == {"working", "looping", "gone", "confused"}  # "old" is outside the last 3 h
    assert (rows["working"]["status"], rows["working"]["reason"]) == ("active", None)
    assert rows["looping"]["status"] == "stuck"
    assert rows["looping"]["reason"].startswith("no new transition type for 1")  # 19-20 min
    assert (rows["gone"]["status"], rows["gone"]["reason"]) == ("idle", "no event for 29 min")
    assert (rows["confused"]["status"], rows["confused"]["reason"]) == ("stuck", "latest feedback: Confused")
    assert rows["confused"]["feedback"] == "Confused"
    assert rows["confused"]["indicators"]["enjoyment"] == -1
    everyone = get_json(c, "/api/courses/spinner/engdes1/students?window=all")
    assert {r["user"] for r in everyone} == set(rows) | {"old"}
    stuck = get_json(c, "/api/courses/spinner/engdes1/students?status=stuck")
    assert {r["user"] for r in stuck} == {"looping", "confused"}
    page = c.get("/courses/spinner/engdes1?status=stuck").get_data(as_text=True)
    assert "latest feedback: Confused" in page and page.count("<tr data-user=") == 2


def test_a_new_event_refreshes_a_cached_row(tmp_path: Path, registry: Registry) -> None:
    db = tmp_path / "live.sqlite"
    now = [1_700_000_000_000]
    with Store(db) as store:
        h = Handler(store, registry)
        h.handle_many([_msg("u", now[0] - 3000, "voltage"), _msg("u", now[0] - 2000, "position")])
        c = create_app(str(db), registry, clock_ms=lambda: now[0]).test_client()
        first = get_json(c, "/api/courses/spinner/engdes1/students")[0]
        assert first["events"] == 2
        h.handle_many([_msg("u", now[0] - 1000, "speed")])  # the logger writes while the view is open
        second = get_json(c, "/api/courses/spinner/engdes1/students")[0]
    assert second["events"] == 3
    assert second["tasks"] != first["tasks"]
    assert (
        second["tasks"]
        == handler_answer(db, registry, "u", "spinner", "engdes1", "task_identification")["tasks"]
    )


# -- 404s and URL fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/courses/spinner/nosuchcourse",
        "/courses/nosuchexp/engdes1",
        "/courses/spinner/engdes1/students/nobody",
        "/courses/spinner/engdes1/students/%01bad",
        "/courses/spinner/engdes1/students/" + "x" * 300,
        "/courses/..%2F..%2Fetc/passwd",
        "/courses/spinner/engdes1'%20OR%20'1'='1",
        "/nothing/here",
    ],
)
def test_unknown_course_or_student_is_a_404_page(client: Any, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.content_type.startswith("text/html")
    assert "404" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/api/courses/spinner/nosuchcourse/students",
        "/api/courses/spinner/engdes1/students/nobody",
        "/api/courses/spinner/engdes1/students/%01bad",
        "/api/courses/spinner/engdes1'%20OR%201=1--/students",
        "/api/courses/pendulum/engdes1/students/53a6788c-e689-48d4-9231-c2fbd23df009",  # a spinner student
    ],
)
def test_unknown_course_or_student_is_a_json_404(client: Any, path: str) -> None:
    body = get_json(client, path, 404)
    assert set(body) == {"error"} and body["error"].startswith("unknown")


def test_bad_query_values_are_400(client: Any) -> None:
    assert get_json(client, "/api/courses/spinner/engdes1/students?window=1y", 400)["error"].startswith(
        "window"
    )
    assert get_json(client, "/api/courses/spinner/engdes1/students?status=happy", 400)["error"].startswith(
        "status"
    )
    assert client.get("/courses/spinner/engdes1?sort=raw;drop").status_code == 400


# -- read-only ------------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_store_refuses_every_write(recorded_db: Path, registry: Registry) -> None:
    before = _digest(recorded_db)
    store = Store.read_only(recorded_db)
    try:
        with pytest.raises(StoreError, match=r"readonly|read-only|query_only"):
            store.add_events([parse_message(_msg("x", 1, "voltage"), registry, None).event])  # type: ignore[list-item]
        with pytest.raises(sqlite3.OperationalError):
            store._conn.execute("PRAGMA query_only = OFF")
            store._conn.execute("DELETE FROM events")
    finally:
        store.close()
    assert _digest(recorded_db) == before


def test_read_only_open_refuses_a_missing_or_unmigrated_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store.read_only(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
    sqlite3.connect(str(tmp_path / "empty.sqlite")).close()
    with pytest.raises(StoreError, match="schema version 0"):
        Store.read_only(tmp_path / "empty.sqlite")


def test_readers_never_block_the_writer(tmp_path: Path, registry: Registry) -> None:
    db = tmp_path / "busy.sqlite"
    with Store(db) as writer:
        Handler(writer, registry).handle_many([_msg("u", 1000, "voltage")])
        reader = Store.read_only(db)
        reader._conn.execute("BEGIN")
        assert reader.student_aggregates()[0][3] == 1  # a read transaction stays open
        quick = Store(db, busy_timeout_s=0.2)
        start = time.monotonic()
        Handler(quick, registry).handle_many([_msg("u", 2000, "position")])
        assert time.monotonic() - start < 1.0
        quick.close()
        assert reader.student_aggregates()[0][3] == 1  # its snapshot
        reader._conn.execute("COMMIT")
        assert reader.student_aggregates()[0][3] == 2
        reader.close()


def _open_modes(pid: int, names: List[Path]) -> Dict[str, int]:
    """O_ACCMODE of every descriptor the process holds on one of ``names``."""
    want = {str(p.resolve()) for p in names}
    modes: Dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target in want:
            flags = next(
                line
                for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                if line.startswith("flags:")
            )
            modes[target] = int(flags.split()[1], 8) & os.O_ACCMODE
    return modes


# Runs the command with the database's directory mounted read-only in a private mount namespace (what
# the unit's ReadOnlyPaths= does), after checking that a write into the file fails there.
READ_ONLY_MOUNT = (
    'mount --bind "$D" "$D" && mount -o remount,bind,ro "$D" "$D" || exit 96; '
    'if (true >> "$DB") 2>/dev/null; then echo "still writable"; exit 97; fi; exec "$@"'
)


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs /proc fdinfo (Linux)")
@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare --mount for a read-only bind mount")
def test_the_web_process_cannot_write_the_file(tmp_path: Path, registry: Registry) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "analytics.sqlite"
    wal = Path(str(db) + "-wal")
    replay_into(db, registry, recorded_lines())
    writer = Store(db)  # a logger holding the file open keeps the WAL in place, as in production
    h = Handler(writer, registry)
    h.handle_many([_msg("live", int(time.time() * 1000), "voltage")])
    before = (_digest(db), _digest(wal))
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY_MOUNT, "sh"]
    server = WebServer(db, env={"D": str(data), "DB": str(db)}, prefix=prefix)
    try:
        for path in (
            "/",
            "/api/courses",
            "/courses/spinner/engdes1?window=all",
            "/api/courses/spinner/engdes1/students/live",
            "/courses/spinner/engdes1/students/live",
        ):
            assert server.get(path)[0] == 200, path
        modes = _open_modes(server.proc.pid, [db])
        assert modes == {str(db.resolve()): os.O_RDONLY}  # the database file is open for reading only
        assert (_digest(db), _digest(wal)) == before  # serving changed nothing
        h.handle_many([_msg("live", int(time.time() * 1000), "position")])  # the logger still writes
        assert server.json("/api/courses/spinner/engdes1/students/live")["events"] == 2  # and it is seen
    finally:
        server.stop()
        writer.close()


# -- the command ------------------------------------------------------------------------------------


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8090") == ("127.0.0.1", 8090)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8090", "host:", ":80", "h:0", "h:70000", "h:x"):
        with pytest.raises(CommandError):
            parse_listen(bad)


def test_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["web", "--db", str(tmp_path / "none.sqlite")]) == 1
    assert "no such database file" in capsys.readouterr().err
    sqlite3.connect(str(tmp_path / "empty.sqlite")).close()
    assert main(["web", "--db", str(tmp_path / "empty.sqlite")]) == 1
    assert "schema version 0" in capsys.readouterr().err
    assert main(["web", "--db", str(tmp_path / "empty.sqlite"), "--listen", "nope"]) == 2
    assert main(["web", "--db", str(tmp_path / "empty.sqlite"), "--stuck-minutes", "0"]) == 2


def test_listen_address_from_the_environment(recorded_db: Path) -> None:
    port = free_port()
    server = WebServer(recorded_db, env={"PRACTABLE_ANALYTICS_WEB_LISTEN": f"127.0.0.1:{port}"})
    try:
        assert server.get("/api/courses")[0] == 200  # on the port the environment named
    finally:
        assert server.stop() == 0  # SIGTERM is a clean stop
