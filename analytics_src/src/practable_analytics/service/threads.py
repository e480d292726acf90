"""What the kernel knows about the service's threads: their names and their timers' slack."""

import os
import threading

COMM_MAX = 15  # Linux keeps the first 15 bytes of a thread's name
# Linux lets a sleeping thread wake up to 50 us late by default (timer slack, to coalesce wake-ups).
# The loop waits ~1 ms between the paced messages of an answer: 50 us late four times is 0.2 ms of
# every all_feedback. 1 us keeps the waits exact; the cost is at most a few more wake-ups per second.
TIMER_SLACK_NS = 1000


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in ``/proc`` (Linux; elsewhere, or if refused, nothing).

    ``threading`` names exist only inside Python; the kernel shows every thread as the program's
    name. Writing the thread's own ``comm`` file needs no privilege and no ctypes."""
    get_native_id = getattr(threading, "get_native_id", None)
    if get_native_id is None:  # pragma: no cover (Python < 3.8)
        return
    try:
        with open(f"/proc/self/task/{get_native_id()}/comm", "w", encoding="ascii") as handle:
            handle.write(name.encode("ascii", "replace").decode("ascii")[:COMM_MAX])
    except OSError:
        pass


def tighten_timer_slack(slack_ns: int = TIMER_SLACK_NS) -> bool:
    """Set the main thread's timer slack, which every thread it starts afterwards inherits; True if
    it was set. Call it on the main thread before starting the others.

    Linux (4.6 and later) has it as ``/proc/<pid>/timerslack_ns``, the main thread's: a process may
    set its own without privilege. Off the main thread, on other systems, or when refused: nothing."""
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        with open(f"/proc/{os.getpid()}/timerslack_ns", "w", encoding="ascii") as handle:
            handle.write(str(int(slack_ns)))
    except OSError:
        return False
    return True
