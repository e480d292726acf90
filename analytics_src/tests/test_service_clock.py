"""A step of the wall clock (NTP correcting it, a Raspberry Pi without a real-time clock setting its
time after boot) while a real `serve` runs on the relay stand-in: nothing received waits for a
commit longer than the commit window, and no duration it reports jumps with the clock.

The wall clock of the serve process is stepped through wall_clock.py (see there why not
libfaketime); the monotonic clock goes on, as with a real step."""

import socket
import threading
import time
from pathlib import Path
from typing import Any, List

from service_helpers import (
    SPINNER_LOGS,
    Serve,
    all_feedback,
    analytics,
    connect,
    delivered_when_quiet,
    dumps,
    relay_standin,
    stored_counts,
    wait_for,
)
from wall_clock import set_offset

LAUNCHER = (str(Path(__file__).with_name("wall_clock.py")),)
HOUR = 3600.0


def test_wall_clock_steps_hold_nothing_past_the_window_and_report_true_latencies(
    tmp_path: Path, host: Any
) -> None:
    db = tmp_path / "a.db"
    offset = tmp_path / "wall-offset"
    set_offset(offset, 0.0)
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], db, launcher=(*LAUNCHER, str(offset)))
    try:
        serve.wait_connected(["spin30"])
        ui, dashboard = connect(host, "spin30"), connect(host, "spin30")
        ours = [ui.local_name, dashboard.local_name]
        stop = threading.Event()

        def drain(client: Any) -> None:  # the relay closes a client that does not read its answers
            while not stop.is_set():
                try:
                    client.recv(timeout=0.1)
                except socket.timeout:
                    continue
                except (relay_standin.ConnectionClosed, OSError):
                    return

        threads = [threading.Thread(target=drain, args=(c,), daemon=True) for c in (ui, dashboard)]
        for th in threads:
            th.start()
        t = 0
        before = 0.0
        steps: List[float] = [-2 * HOUR, -4 * HOUR, -6 * HOUR, -3 * HOUR]  # three back, then one forward
        for step in steps:
            # 1 kHz from the lab UI: events are held in a commit window nearly all the time, so the
            # step lands while some are; then a few more, far fewer than a commit's event bound
            for k in range(100):
                ui.send_text(dumps(analytics(t, SPINNER_LOGS[t % 6])))
                t += 1
                if k % 25 == 0:  # another student's dashboard: its answers never end the lab's window
                    dashboard.send_text(dumps(all_feedback(user="another-student")))
                time.sleep(0.001)
            if step > before:  # forward: step while an answer is being sent (5 messages, 1 ms apart)
                dashboard.send_text(dumps(all_feedback(user="another-student")))
                time.sleep(0.002)
            set_offset(offset, step)
            before = step
            for _ in range(10):
                ui.send_text(dumps(analytics(t, SPINNER_LOGS[t % 6])))
                t += 1
                time.sleep(0.001)
            # the lab UI's events and the dashboard's requests, all of them stored as events
            delivered = delivered_when_quiet(host, "spin30", ours)
            # quiet for 0.5 s: everything delivered is committed by now (the window is 25 ms); a
            # window measured on the wall clock would hold the last events for hours after a step back
            assert wait_for(lambda n=delivered: stored_counts(db).get("spin30", 0) >= n, 1.0), (
                step,
                delivered,
                stored_counts(db),
                serve.status().get("worker"),
            )
        stop.set()
        for th in threads:
            th.join(5)
        status: dict = {}

        def answered() -> bool:
            status.update(serve.status())
            return bool(status.get("streams", {}).get("spin30", {}).get("answers_sent"))

        assert wait_for(answered, 5), status
        worker = status["worker"]
        # the forward step came while events were held: a wall-clock latency would be hours (the
        # commit window is COMMIT_WINDOW_S, 25 ms; a second leaves room for a loaded CI machine)
        assert worker["max_commit_latency_ms"] < 1000.0, worker
        latency = status["streams"]["spin30"]["answer_latency_ms"]
        assert latency["max"] is not None and latency["max"] < 1000.0, latency
        ui.close()
        dashboard.close()
    finally:
        assert serve.terminate()[0] == 0, serve.stderr()[-4000:]
