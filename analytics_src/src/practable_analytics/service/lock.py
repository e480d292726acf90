"""One logger per stream and database: an flock'ed lock file per stream beside the database.

Two processes serving the same stream into the same database would store every event twice and
answer every request twice. ``serve`` takes ``<db>.<stream>.lock`` (stream name percent-encoded) with
``fcntl.flock`` before it connects; the kernel releases it when the process ends however it ends
(kill -9 included), so a stale file never blocks a restart. The file holds the owner's pid, which
the refusal names.
"""

import fcntl
import os
from pathlib import Path
from typing import List, Sequence
from urllib.parse import quote


class StreamLockError(RuntimeError):
    """Another process already serves one of the streams on this database (one line)."""


def lock_path(db: Path, stream: str) -> Path:
    """The lock file of ``stream`` on database ``db``."""
    return db.with_name(f"{db.name}.{quote(stream, safe='')}.lock")


class StreamLocks:
    """The locks of every stream a process serves; held until release() or the process ends."""

    def __init__(self, db: Path, streams: Sequence[str]) -> None:
        self.db = db
        self.streams = list(streams)
        self._fds: List[int] = []

    def acquire(self) -> "StreamLocks":
        """Take every stream's lock or none; StreamLockError naming the holder when one is taken."""
        try:
            for stream in self.streams:
                self._fds.append(self._take(stream))
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, stream: str) -> int:
        path = lock_path(self.db, stream)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(str(path), flags, 0o644)
        except OSError as exc:
            raise StreamLockError(f"cannot open lock file {path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            raise StreamLockError(
                f"stream {stream} is already served by another process (pid {holder}) on {self.db}"
                f" (lock {path})"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)  # closing the descriptor drops the flock
            except OSError:
                pass
        self._fds = []

    def __enter__(self) -> "StreamLocks":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
