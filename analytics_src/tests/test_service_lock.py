"""One logger per stream: a second real `serve` for a stream already served on the same database
refuses to start (exit 2, one line naming the other process); other streams and restarts are fine."""

import os
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Serve

from practable_analytics.service.lock import StreamLockError, StreamLocks, lock_path


def test_a_second_serve_for_the_same_stream_and_database_exits_2(tmp_path: Path, host: Any) -> None:
    db = tmp_path / "a.db"
    first = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    try:
        first.wait_connected(["spin30"])
        second = Serve(tmp_path, [host.ws_url("ws/spin31"), host.ws_url("ws/spin30")], db)
        rc = second.proc.wait(20)
        second.kill()
        lines = second.stderr().strip().splitlines()
        assert rc == 2
        assert len(lines) == 1 and f"pid {first.proc.pid}" in lines[0] and "spin30" in lines[0], lines
        other = Serve(tmp_path, [host.ws_url("ws/spin31")], db)  # another stream on the same database
        other.wait_connected(["spin31"])
        assert other.terminate()[0] == 0
    finally:
        rc, _ = first.terminate()
    assert rc == 0
    first.kill()
    assert first.proc.wait() is not None
    again = Serve(tmp_path, [host.ws_url("ws/spin30")], db)  # after the first ended: starts
    try:
        again.wait_connected(["spin30"])
    finally:
        assert again.terminate()[0] == 0


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path, host: Any) -> None:
    db = tmp_path / "a.db"
    first = Serve(tmp_path, [host.ws_url("ws/spin30")], db)
    first.wait_connected(["spin30"])
    first.proc.kill()  # kill -9: no clean-up runs, the kernel drops the flock
    first.kill()
    assert lock_path(db, "spin30").exists()
    with StreamLocks(db, ["spin30"]):  # free again (flock: one holder per open file, even in-process)
        with pytest.raises(StreamLockError, match=rf"spin30 is already served .*pid {os.getpid()}"):
            StreamLocks(db, ["spin31", "spin30"]).acquire()
    with StreamLocks(db, ["spin31", "spin30"]) as both:  # all or none: spin31 was released on the refusal
        assert len(both._fds) == 2
