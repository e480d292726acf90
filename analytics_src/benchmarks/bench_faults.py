"""Fault and load benchmark: `practable-analytics serve` (single-process mode, two streams) under a
dashboard request flood, and a data directory that fills up.

Run from analytics_src: ``python benchmarks/bench_faults.py [--flood-rate 8000] [--seconds 10]``
(root needed for the disk-full part: it mounts a small tmpfs; skipped otherwise). Prints:

1. flood: one dashboard sends ``--flood-rate`` all_feedback/s for ``--seconds`` s on spin30 while a lab
   UI on spin31 sends 100 analytics/s and spin31's dashboard asks all_feedback twice a second. Figures:
   the victim's p99 store delay (send -> visible in the database), its p95 answer time, the flooding
   stream's answered rate, the service's peak RSS, and what SIGTERM right after the flood leaves
   unstored (with the exit status). Targets: p99 <= 1 s, p95 <= 1 s, RSS <= 150 MiB, 0 unstored.
2. disk-full: 1,500 messages arrive while the database's file system is full; space returns; how
   many of those delivered are stored (target: all).
3. relay restarts: the relay host (the stand-in, in this process) is stopped and started again on the
   same port 10 times, down for 0.5-8 s each; the delay from the relay being back to serve being
   connected to it again, per restart and the max (target: max <= 1.5 s), with the default ladder.

Never asserts anything; figures depend on the machine and its load (printed with the load average).
The relay stand-in runs as its own process and carries spin31; the flood comes from a websocket server
of this script standing in for spin30's relay, writing pre-encoded frames straight to the service at
the asked rate (through the stand-in's lossy hand-off most of a flood never reaches the service).
"""

import argparse
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_service import StandinProcess, env, serve_cmd, status_of, stop  # noqa: E402
from service_helpers import SPINNER_LOGS, all_feedback, analytics, dumps, recv_responses, relay_standin  # noqa: E402

from practable_analytics import responses  # noqa: E402

ALL_FEEDBACK = list(responses.ALL_FEEDBACK)  # the five answers, in the order serve sends them


def pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def vm_hwm_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def serve(db: Path, urls: List[str], status: Path, log: Path, *extra: str) -> "subprocess.Popen[bytes]":
    cmd = serve_cmd(db, urls, status, *extra)
    cmd[cmd.index("WARNING")] = "INFO"
    return subprocess.Popen(cmd, env=env(), stderr=open(log, "wb"))


def wait_connected(status: Path, names: List[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streams = status_of(status).get("streams", {})
        if all(streams.get(n, {}).get("connected") for n in names):
            return
        time.sleep(0.02)
    raise RuntimeError(f"serve did not connect: {status_of(status)}")


def max_t(db: Path, stream: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT MAX(t) FROM events WHERE stream = ? AND type = 'analytics'", (stream,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return -1
    return int(row[0]) if row and row[0] is not None else -1


def count(db: Path, stream: Optional[str] = None) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        if stream is None:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE stream = ?", (stream,)).fetchone()[0])
    finally:
        conn.close()


def delivered(standin: StandinProcess, stream: str, others: List[str]) -> int:
    clients = standin.stats().get(stream, {}).get("clients", {})
    return sum(int(v.get("delivered", 0)) for k, v in clients.items() if k.split("#")[0] not in others)


class FloodServer:
    """A websocket server on 127.0.0.1 standing in for spin30's relay: it writes the flood straight to
    the service at the asked rate (the relay stand-in's lossy hand-off would drop most of a flood
    before it reached the service), and drains what the service sends back."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"spin30=ws://127.0.0.1:{self.sock.getsockname()[1]}/ws/spin30"
        self.conn: Optional[socket.socket] = None
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        conn = relay_standin.accept_websocket(self.sock)
        if conn is None:
            return
        self.conn = conn
        self.connected.set()
        try:
            while conn.recv(65536):
                pass
        except OSError:
            return

    def sendall(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


def bench_flood(tmp: Path, standin: StandinProcess, rate: int, seconds: float) -> Dict[str, Any]:
    db, status, log = tmp / "flood.db", tmp / "flood.json", tmp / "flood.log"
    direct = FloodServer()
    proc = serve(db, [direct.url, standin.url("spin31")], status, log)
    out: Dict[str, Any] = {}
    try:
        wait_connected(status, ["spin30", "spin31"])
        direct.connected.wait(10)
        ui = relay_standin.WSClient.connect(standin.url("spin31"))
        dash = relay_standin.WSClient.connect(standin.url("spin31"))
        running = threading.Event()
        running.set()

        tick = 0.01
        per_tick = max(1, int(rate * tick))
        frames = [
            b"".join(
                relay_standin.encode_frame(
                    0x1, dumps(all_feedback(user="flooder", t=k * per_tick + i)).encode(), mask=False
                )
                for i in range(per_tick)
            )
            for k in range(50)
        ]
        sent = [0]

        def flood() -> None:
            sock = direct
            t0 = time.monotonic()
            k = 0
            while time.monotonic() - t0 < seconds:
                sock.sendall(frames[k % len(frames)])
                sent[0] += per_tick
                k += 1
                delay = t0 + k * tick - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        sends: List[float] = []  # victim event send times (epoch ms doubles as t)
        seen: List[float] = []  # the time each victim event was first seen in the database

        def victim_ui() -> None:
            while running.is_set():
                t = int(time.time() * 1000)
                if sends and t <= sends[-1]:
                    t = int(sends[-1]) + 1
                ui.send_text(dumps(analytics(t, SPINNER_LOGS[t % 6], user="victim", hardware="spin31")))
                sends.append(float(t))
                time.sleep(0.01)

        def poll() -> None:
            i = 0
            while running.is_set() or i < len(sends):
                top = max_t(db, "spin31")
                now = time.time() * 1000
                while i < len(sends) and sends[i] <= top:
                    seen.append(now - sends[i])
                    i += 1
                if not running.is_set() and time.time() * 1000 - (sends[-1] if sends else 0) > 30_000:
                    break
                time.sleep(0.02)

        answers: List[float] = []
        incomplete = [0]

        def victim_dash() -> None:
            k = 0
            while running.is_set():
                k += 1
                t0 = time.monotonic()
                dash.send_text(dumps(all_feedback(user="victim", t=k)))
                got = recv_responses(dash, 5, 2.0)
                if [g["content"] for g in got] == ALL_FEEDBACK:
                    answers.append(time.monotonic() - t0)
                else:
                    incomplete[0] += 1
                time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))

        threads = [threading.Thread(target=f, daemon=True) for f in (victim_ui, poll, victim_dash)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # the victim's normal traffic first
        t_flood = time.monotonic()
        flood()
        flood_s = time.monotonic() - t_flood
        out["flood_sent_rate"] = sent[0] / flood_s
        out["rss_mib"] = vm_hwm_mib(proc.pid)
        st = status_of(status)
        answered = st.get("streams", {}).get("spin30", {}).get("requests", 0)
        running.clear()
        # SIGTERM right after the flood: everything received before it must be stored
        t_stop = time.monotonic()
        proc.terminate()
        rc = proc.wait(60)
        out["stop_s"] = time.monotonic() - t_stop
        out["rc"] = rc
        for t in threads:
            t.join(35)
        out["answered_rate"] = answered / flood_s
        out["victim_events"] = len(sends)
        out["victim_p99_store_s"] = pct(seen, 0.99) / 1000.0
        out["victim_max_store_s"] = (max(seen) if seen else float("nan")) / 1000.0
        out["victim_p95_answer_s"] = pct(answers, 0.95)
        out["victim_answers"] = len(answers)
        out["victim_incomplete"] = incomplete[0]
        worker = status_of(status).get("worker", {})
        out["dropped"] = status_of(status).get("streams", {}).get("spin30", {}).get("requests_dropped")
        victim = status_of(status).get("streams", {}).get("spin31", {})
        out["victim_sent_by_service"] = victim.get("answers_sent")
        out["victim_errors"] = victim.get("errors")
        text = log.read_text(errors="replace")
        m = re.search(r"stopped: (\d+) messages stored in \d+ commits, (\d+) unstored", text)
        out["unstored"] = int(m.group(2)) if m else None
        out["stored_log"] = int(m.group(1)) if m else None
        out["stored_db"] = count(db)
        out["stored_status"] = worker.get("stored")
        received = sum(
            int(s.get("messages_received", 0)) for s in status_of(status).get("streams", {}).values()
        )
        out["received"] = received
    finally:
        stop(proc)
        direct.close()
    return out


def mount_tmpfs(size: str) -> Optional[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-tmpfs-"))
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
    )
    if r.returncode != 0:
        os.rmdir(str(path))
        return None
    return path


def fill(path: Path) -> Path:
    filler = path / "filler"
    fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * size) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def bench_disk_full(tmp: Path, standin: StandinProcess, n: int) -> Dict[str, Any]:
    mnt = mount_tmpfs("16m")
    if mnt is None:
        return {"skipped": "cannot mount a tmpfs (not root?)"}
    db, status, log = mnt / "full.db", tmp / "full.json", tmp / "full.log"
    proc = serve(db, [standin.url("disk")], status, log)
    try:
        wait_connected(status, ["disk"])
        ui = relay_standin.WSClient.connect(standin.url("disk"))
        for i in range(100):
            ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6])))
            time.sleep(0.002)
        time.sleep(1.0)
        before = count(db, "disk")
        filler = fill(mnt)
        for i in range(100, 100 + n):
            ui.send_text(dumps(analytics(i, SPINNER_LOGS[i % 6])))
            time.sleep(0.002)
        time.sleep(2.0)
        during = count(db, "disk")
        held = status_of(status).get("worker", {}).get("held")
        filler.unlink()
        total = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            total = delivered(standin, "disk", [ui.local_name])
            if count(db, "disk") >= total:
                break
            time.sleep(0.1)
        stored = count(db, "disk")
        deadline = time.monotonic() + 5  # the status file is rewritten every 0.05 s
        while status_of(status).get("worker", {}).get("stored") != stored and time.monotonic() < deadline:
            time.sleep(0.05)
        status_stored = status_of(status).get("worker", {}).get("stored")
    finally:
        stop(proc)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
    return {
        "sent_while_full": n,
        "delivered_while_full": total - before,
        "stored_while_full": during - before,
        "held_while_full": held,
        "stored_after": stored - before,
        "status_stored": status_stored,
        "db_rows": stored,
    }


OUTAGES_S = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 0.5, 1.0, 2.0, 2.0)


def bench_restarts(tmp: Path, outages: Sequence[float] = OUTAGES_S) -> Dict[str, Any]:
    """Relay host stopped and restarted on its port; seconds from back to serve connected again."""
    host = relay_standin.start_host(port=0)
    port = host.port
    db, status, log = tmp / "restarts.db", tmp / "restarts.json", tmp / "restarts.log"
    proc = serve(db, [host.ws_url("ws/spin30")], status, log)  # default backoff options

    def connected() -> bool:
        clients = host.stats().get("spin30", {}).get("clients", {})
        return any(c.get("connected") for c in clients.values())

    delays: List[float] = []
    try:
        wait_connected(status, ["spin30"])
        for outage in outages:
            host.stop()
            time.sleep(outage)
            host = relay_standin.start_host(port=port)
            back = time.monotonic()
            while not connected() and time.monotonic() - back < 30:
                time.sleep(0.005)
            delays.append(time.monotonic() - back)
    finally:
        stop(proc)
        host.stop()
    return {"outages": list(outages), "delays": delays}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood-rate", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--disk-full-messages", type=int, default=1500)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    standin = StandinProcess()
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            f = bench_flood(tmp, standin, args.flood_rate, args.seconds)
            lines = [
                "flood (single process, spin30 flooded, spin31 the victim):",
                f"  flood offered {f['flood_sent_rate']:.0f} all_feedback/s for {args.seconds:g} s"
                f" (asked {args.flood_rate}/s)",
                f"  victim p99 store delay {f['victim_p99_store_s']:.3f} s"
                f" (max {f['victim_max_store_s']:.3f} s, {f['victim_events']} events)  target <= 1 s",
                f"  victim p95 answer {f['victim_p95_answer_s']:.3f} s ({f['victim_answers']} complete,"
                f" {f['victim_incomplete']} incomplete)  target <= 1 s",
                f"    (the service sent {f['victim_sent_by_service']} answers on spin31, errors"
                f" {f['victim_errors']}; an answer sent whole but incomplete at the dashboard was dropped"
                " by the relay's hand-off, SPEC section 4)",
                f"  flooding stream answered {f['answered_rate']:.1f} all_feedback/s"
                f" ({f['dropped']} over budget, not answered)",
                f"  peak RSS {f['rss_mib']:.1f} MiB  target <= 150 MiB",
                f"  SIGTERM after the flood: exit {f['rc']} in {f['stop_s']:.2f} s,"
                f" unstored {f['unstored']}  target 0",
                f"    (log says {f['stored_log']} stored, status {f['stored_status']},"
                f" database {f['stored_db']}, received {f['received']})",
                f"load average after flood: {os.getloadavg()}",
            ]
            print("\n".join(lines))
            full = bench_disk_full(tmp, standin, args.disk_full_messages)
            if "skipped" in full:
                print(f"disk-full: skipped ({full['skipped']})")
            else:
                print(
                    f"disk-full: {full['stored_after']}/{full['delivered_while_full']} delivered while full"
                    f" stored after space returned ({full['sent_while_full']} sent,"
                    f" {full['stored_while_full']} committed while full, {full['held_while_full']} held);"
                    f" status stored {full['status_stored']}, database {full['db_rows']}"
                )
            r = bench_restarts(tmp)
            print(
                f"relay restarts: reconnected {', '.join(f'{d:.2f}' for d in r['delays'])} s after the relay"
                f" was back (down {', '.join(f'{o:g}' for o in r['outages'])} s); max"
                f" {max(r['delays']):.2f} s  target <= 1.5 s"
            )
    finally:
        standin.stop()
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
