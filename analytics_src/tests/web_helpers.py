"""What the class-view tests share: recorded sessions replayed into a real SQLite file, a real server."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.store import Store

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The shared reference data beside the repository when it is there (the lead's copy), else the copy
# the repository carries in tests/data.
_SHARED = REPO.parent / "shared" / "reference-data"
REFERENCE = _SHARED if (_SHARED / "sample_logs").is_dir() else HERE / "data"
SAMPLE_LOGS = REFERENCE / "sample_logs"
COMPARISON_LOGS = REFERENCE / "comparison_logs"


def recorded_lines(shift_to_ms: Optional[int] = None) -> List[str]:
    """Every line of the sample and comparison logs, as text frames.

    Each comparison log is an expert's walk through one task, recorded as ``log`` messages of user
    ``testuser``: each file is replayed as its own student (``cmp-<file stem>``) sending those modes
    as the lab UI does (``analytics`` events on a device), so its closest graph is its own task.
    With ``shift_to_ms`` each student's times are moved by one offset per student so that the
    student's latest event is at that time (a class session happening now).
    """
    lines: List[str] = []
    for path in sorted(SAMPLE_LOGS.glob("*.json")):
        lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for path in sorted(COMPARISON_LOGS.glob("*.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                obj.update(user="cmp-" + path.stem, type="analytics", hardware="cmp00")
                lines.append(json.dumps(obj))
    if shift_to_ms is None:
        return lines
    parsed = [json.loads(line) for line in lines]
    last: Dict[str, int] = {}
    for o in parsed:
        if isinstance(o.get("user"), str) and isinstance(o.get("t"), int):
            last[o["user"]] = max(last.get(o["user"], 0), o["t"])
    for o in parsed:
        if o.get("user") in last and isinstance(o.get("t"), int):
            o["t"] += shift_to_ms - last[o["user"]]
    return [json.dumps(o) for o in parsed]


def replay_into(db: Path, registry: Registry, lines: List[str]) -> None:
    """Feed text frames through the live Handler into the SQLite file ``db`` (then close it)."""
    with Store(db) as store:
        Handler(store, registry).handle_texts(lines, stream="test")


def students_of(db: Path) -> Dict[Tuple[str, str], List[str]]:
    """(exp, course) -> sorted users with events, read straight from the file."""
    with Store(db) as store:
        found: Dict[Tuple[str, str], List[str]] = {}
        for user, exp, course in store.keys():
            found.setdefault((exp, course), []).append(user)
    return found


def handler_answer(
    db: Path, registry: Registry, user: str, exp: str, course: str, content: str, **payload: Any
):
    """What the dashboard is answered for one request at this moment, through Handler.handle.

    The handler stores the request as an event: it is asked on a snapshot of ``db`` (SQLite backup),
    so the file under test stays as the loggers left it.
    """
    msg = {
        "type": "request",
        "user": user,
        "exp": exp,
        "course": course,
        "t": 1,
        "payload": {"content": content},
    }
    msg["payload"].update(payload)
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "snapshot.sqlite"
        src, dst = sqlite3.connect(str(db)), sqlite3.connect(str(snapshot))
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        with Store(snapshot) as store:
            answers = Handler(store, registry).handle(msg)
    assert len(answers) == 1, answers
    return answers[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebServer:
    """``practable-analytics web`` as a real process on a free loopback port."""

    def __init__(
        self, db: Path, *extra: str, env: Optional[Dict[str, str]] = None, prefix: Sequence[str] = ()
    ) -> None:
        cmd = [*prefix, sys.executable, "-m", "practable_analytics.cli", "web", "--db", str(db), *extra]
        from_env = (env or {}).get("PRACTABLE_ANALYTICS_WEB_LISTEN")
        if from_env:  # the command reads it: no --listen
            self.port = int(from_env.rsplit(":", 1)[1])
        else:
            self.port = free_port()
            cmd += ["--listen", f"127.0.0.1:{self.port}"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"web exited {self.proc.returncode}: {out}")
            try:
                self.get("/api/courses")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("web did not answer within 20 s")

    def get(self, path: str) -> Tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)

    def stop(self) -> int:
        """SIGTERM, as systemd stops the unit; returns the exit code."""
        self.proc.terminate()
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        return code
