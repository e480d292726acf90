"""What the kernel sees of serve's threads: their names (``top -H``, ``ps -L``) and the timer slack
that keeps the paced answers' 1 ms waits exact. Linux only: /proc is what is being set."""

import ctypes
import os
import sys
import threading
from pathlib import Path
from typing import List

import pytest
from service_helpers import Serve, relay_standin, wait_for

from practable_analytics.service.threads import TIMER_SLACK_NS, name_os_thread, tighten_timer_slack

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
PR_GET_TIMERSLACK = 30


def thread_slack() -> int:
    return int(ctypes.CDLL(None, use_errno=True).prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0))


def comms(pid: int) -> List[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass
    return names


def test_a_thread_names_itself_for_the_kernel() -> None:
    seen: List[str] = []

    def body() -> None:
        name_os_thread("serve-a-very-long-name")
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == ["serve-a-very-lo"]  # the kernel keeps 15 bytes


def test_timer_slack_is_set_on_the_main_thread_and_inherited() -> None:
    path = Path(f"/proc/{os.getpid()}/timerslack_ns")
    before = int(path.read_text())
    try:
        got: List[int] = []
        helper = threading.Thread(target=lambda: got.append(int(tighten_timer_slack())))
        helper.start()
        helper.join()
        assert got == [0]  # off the main thread: refused, nothing changed
        assert int(path.read_text()) == before
        assert tighten_timer_slack()
        assert int(path.read_text()) == TIMER_SLACK_NS
        child: List[int] = []
        t = threading.Thread(target=lambda: child.append(thread_slack()))
        t.start()
        t.join()
        assert child == [TIMER_SLACK_NS]  # a thread started afterwards has it too
    finally:
        path.write_text(str(before))


def test_serve_names_its_threads_and_tightens_their_timers(tmp_path: Path) -> None:
    host = relay_standin.start_host(port=0)
    serve = Serve(tmp_path, [host.ws_url("ws/spin30")], tmp_path / "t.db")
    try:
        serve.wait_connected(["spin30"])
        pid = serve.proc.pid
        assert wait_for(lambda: {"serve-loop", "serve-worker"} <= set(comms(pid)), 5), comms(pid)
        assert any(n.startswith("serve-connect-") for n in comms(pid))
        assert int(Path(f"/proc/{pid}/timerslack_ns").read_text()) == TIMER_SLACK_NS
    finally:
        rc, _ = serve.terminate()
        host.stop()
    assert rc == 0
