#!/usr/bin/env python3
"""The demo's show: recorded lab sessions through the remote relay, then the dashboard's view.

Runs on the controller against the converged demo container (molecule/demo). It plays the remote
practable relay (the relay stand-in's ``remote`` mode, which the container's relay host reaches as
host.containers.internal), replays the recorded sessions of a few students exactly as their lab UIs
would (access endpoint with a token, websocket, one message at a time, paced), then asks for
``all_feedback`` as the analytics dashboard would and prints the five answers for one student. Finally it
copies the container's SQLite store and draws the student's task graph beside the expert graph (PNG).
"""

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "molecule" / "shared"))
sys.path.insert(0, str(ROOT / "tests" / "relay_standin"))
import check_e2e  # noqa: E402
import relay_standin  # noqa: E402
from practable_analytics.commands.report import DISTANCE_SCALE, indicator_lines, number, ranked  # noqa: E402

log = logging.getLogger("demo")


def say(text: str = "") -> None:
    """Progress for the person watching (the demo's output is its purpose)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def show_graph(answer: Dict[str, Any]) -> None:
    edges = sorted(answer.get("edges", []), key=lambda e: (-float(e.get("width", 0)), e["from"], e["to"]))
    if not edges:
        say("    (no transitions yet)")
    for e in edges:
        target = "(again)" if e["from"] == e["to"] else e["to"]
        say(f"    {e['from']:>14} -> {target:<14} x{e.get('label', '')}")
    cent = answer.get("node_info", {}).get("in_centrality", {})
    if cent:
        ranked = sorted(cent.items(), key=lambda kv: -kv[1])
        say("    in-centrality: " + ", ".join(f"{k} {number(v)}" for k, v in ranked if v))


def show(answers: List[Dict[str, Any]], graph: str) -> None:
    by = {a.get("content"): a for a in answers}
    if "student_graph" in by:
        say("  Student's task graph (mode -> next mode, times):")
        show_graph(by["student_graph"])
    if "comparison_graph" in by:
        say(f"  Expert graph {graph}:")
        show_graph(by["comparison_graph"])
    if "task_identification" in by:
        tasks = by["task_identification"].get("tasks", {})
        say("  Task distances to each expert graph, closest first (lower = closer):")
        say(f"    {DISTANCE_SCALE[0]}")
        marked = False
        for name, dist in ranked(tasks):
            mark = ""
            if not marked and dist is not None and not name.endswith("-all"):
                mark, marked = "  <- closest task: its feedback is below", True
            say(f"    {name:<28} {number(dist):>9}{mark}")
    if "indicators" in by:
        say("  Indicators:")
        for line in indicator_lines(by["indicators"].get("indicators", {})):
            say("    " + line)
    if "centroids" in by:
        cents = by["centroids"].get("centroids", {})
        say("  Centroids (mass centre of the modes used, unit circle):")
        for key, value in cents.items():
            if key == "vertices":
                continue
            if isinstance(value, dict):
                say(f"    {key:<14} x {number(value.get('x'))}  y {number(value.get('y'))}")
            elif isinstance(value, (list, tuple)) and len(value) == 2:
                say(f"    {key:<14} x {number(value[0])}  y {number(value[1])}")
            else:
                say(f"    {key:<14} {value}")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--container", default="practable-demo")
    p.add_argument("--devices", default="spin30,spin31,spin32")
    p.add_argument("--secret", required=True)
    p.add_argument("--remote-port", type=int, default=18082)
    p.add_argument("--access-base", required=True)
    p.add_argument("--db", default="/var/analytics/data/analytics.sqlite")
    p.add_argument("--sessions", default=str(ROOT / "analytics_src/tests/data/sample_logs"))
    p.add_argument("--graph", default="spinner-engdes1-1-core")
    p.add_argument("--pace", type=float, default=0.15, help="seconds between a lab UI's messages")
    p.add_argument("--out", default=str(ROOT / "demo" / "out"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    devices = [d for d in args.devices.split(",") if d]
    box = check_e2e.Container(args.container)

    say(f"--- remote relay (stand-in) on port {args.remote_port}, for the container: {args.access_base}")
    remote = relay_standin.start_remote(
        args.secret, port=args.remote_port, bind="0.0.0.0", access_base=args.access_base
    )
    try:
        say("    waiting for the relay host's destinations to connect (it retries every 1-10 s)...")
        ok, secs = check_e2e.wait_linked(remote, devices, 40)
        if not ok:
            say(
                "    the relay host did not connect to the remote relay: see `podman exec "
                f"{args.container} journalctl -u session.service`"
            )
            return 1
        say(f"    {len(devices)} device topics linked after {secs:.1f} s")

        # the students
        sessions: Dict[str, List[Dict[str, Any]]] = {}
        fresh: Dict[str, str] = {}  # recorded student id -> this run's id (a rerun is new students)
        spare = list(devices)
        recorded: Dict[str, List[Dict[str, Any]]] = {}
        for path in sorted(Path(args.sessions).glob("*.json")):
            msgs = [
                m
                for m in check_e2e.load_messages(path, fresh)
                if m.get("exp") == "spinner" and m.get("course") and m.get("hardware")
            ]
            if msgs:
                recorded[path.name] = msgs
                if msgs[0]["hardware"] in spare:
                    spare.remove(msgs[0]["hardware"])
        for name, msgs in recorded.items():
            hw = msgs[0]["hardware"]
            if hw not in devices:  # a session recorded on a test rig: play it on a free device
                if not spare:
                    continue
                new = spare.pop(0)
                for m in msgs:
                    m["hardware"] = new
            sessions[name] = msgs
        users = sorted({m["user"] for msgs in sessions.values() for m in msgs})
        say(
            f"--- playing {len(sessions)} recorded lab sessions of {len(users)} students"
            f" ({sum(len(v) for v in sessions.values())} messages, {args.pace:.2f} s apart)"
        )
        sent: List[Dict[str, Any]] = []
        for name, msgs in sessions.items():
            dev = msgs[0]["hardware"]
            ui = check_e2e.LabClient(args.remote_port, args.access_base, args.secret, dev + "-log")
            say(f"  lab UI of student {msgs[0]['user'][:8]} on {dev} ({name})")
            for m in msgs:
                ui.send(m)
                sent.append(m)
                mode = m.get("payload", {}).get("log", m.get("type"))
                say(f"    {time.strftime('%H:%M:%S')} {dev} {m['type']:<9} {mode}")
                time.sleep(args.pace)
            ui.close()

        # the dashboard
        # the student with the most varied session: the most distinct modes, then devices
        student = max(
            users,
            key=lambda u: (
                len({str(m.get("payload", {}).get("log")) for m in sent if m["user"] == u}),
                len({m["hardware"] for m in sent if m["user"] == u}),
            ),
        )
        first = next(m for m in sent if m["user"] == student)
        dev = first["hardware"]
        say(f"--- the dashboard of student {student} asks for all_feedback on {dev} (graph {args.graph})")
        dashboard = check_e2e.LabClient(args.remote_port, args.access_base, args.secret, dev + "-log")
        for state, subject in (("Curious", "Hardware"), ("Engaged", "UI"), ("Confused", "Workbook")):
            report = {
                "user": student,
                "t": int(time.time() * 1000),
                "exp": first["exp"],
                "course": first["course"],
                "type": "feedback",
                "payload": {"state": state, "subject": subject},
            }
            dashboard.send(report)
            say(f"    the student reports feeling {state} about {subject}")
            time.sleep(args.pace)
        request = {
            "user": student,
            "t": int(time.time() * 1000),
            "exp": first["exp"],
            "course": first["course"],
            "type": "request",
            "payload": {"content": "all_feedback", "graph": args.graph},
        }
        got: List[Dict[str, Any]] = []
        for _ in range(5):
            dashboard.received.clear()
            dashboard.send(request)
            dashboard.collect(lambda r: len([a for a in r if a.get("type") == "response"]) >= 5, 5)
            got = [a for a in dashboard.received if a.get("type") == "response" and a.get("user") == student]
            if len(got) >= 5:
                break
        tasks = next((a.get("tasks", {}) for a in got if a.get("content") == "task_identification"), {})
        closest = next((n for n, d in ranked(tasks) if d is not None and not n.endswith("-all")), "")
        advice: Dict[str, Any] = {}
        if closest:
            dashboard.received.clear()
            ask = dict(
                request, t=int(time.time() * 1000), payload={"content": "task_feedback", "task": closest}
            )
            dashboard.send(ask)
            dashboard.collect(lambda r: any(a.get("content") == "task_feedback" for a in r), 5)
            advice = next((a for a in dashboard.received if a.get("content") == "task_feedback"), {})
        dashboard.close()
        if len(got) < 5:
            say(
                f"    only {len(got)} answers arrived: see `podman exec {args.container} journalctl -u "
                "'analytics-logger@*'`"
            )
            return 1
        say(f"    5 answers received: {', '.join(a.get('content', '?') for a in got)}")
        show(got, args.graph)
        if advice:
            fb = advice.get("feedback", {})
            say(f"  Task feedback against {closest} (what the dashboard suggests next):")
            say("    modes not tried yet:            " + (", ".join(fb.get("hardware", [])) or "none"))
            say("    modes used less than expected:  " + (", ".join(fb.get("hardware_freq", [])) or "none"))
            say("    transitions not tried yet:      " + (", ".join(fb.get("transition", [])) or "none"))
            say("    transitions used less:          " + (", ".join(fb.get("transition_freq", [])) or "none"))
            got.append(advice)
        (out / "answers.json").write_text(json.dumps(got, indent=2) + "\n")
    finally:
        remote.stop()

    # the store and the picture
    say("--- copying the container's SQLite store and drawing the task graphs")
    snap = "/tmp/demo-store-copy.sqlite"
    code = (
        f"import sqlite3;s=sqlite3.connect('file:{args.db}?mode=ro',uri=True);d=sqlite3.connect('{snap}');"
        "s.backup(d);d.close()"
    )
    box.run("python3", "-c", code, check=True)
    db = out / "analytics.sqlite"
    if db.exists():
        db.unlink()
    subprocess.run(["podman", "cp", f"{args.container}:{snap}", str(db)], check=True)
    png = out / f"task-graph-{student[:8]}.png"
    cli = Path(sys.executable).parent / "practable-analytics"
    subprocess.run(
        [
            str(cli),
            "plot",
            "--db",
            str(db),
            "--user",
            student,
            "--exp",
            first["exp"],
            "--course",
            first["course"],
            "--compare",
            args.graph,
            "--out",
            str(png),
        ],
        check=True,
    )
    say("")
    say("--- done. Files:")
    say(f"    {png}  (student's task graph beside the expert graph {args.graph})")
    held = "all_feedback's five and task_feedback" if advice else "all_feedback's five"
    say(f"    {out / 'answers.json'}  (the dashboard's answers: {held})")
    say(f"    {db}  (copy of the analytics store; try: .venv/bin/practable-analytics report --db {db}")
    say(f"        --user {student}, or export --db {db} --format csv --out DIR)")
    say(
        f"    inside the container: podman exec -it {args.container} bash  (units: session.service,"
        " session-rules.service, analytics-logger@<device>)"
    )
    say("    clean up: make demo-clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
