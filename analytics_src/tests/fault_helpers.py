"""Real faults for tests: a small tmpfs that can be filled and freed (skips when mount is refused)."""

import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest


class Tmpfs:
    """A tmpfs mounted on a fresh directory; fill() takes every free byte, free() gives it back."""

    def __init__(self, size: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="pa-tmpfs-"))
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            os.rmdir(str(self.path))
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        self.filler = self.path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Write a filler file until the file system is full, then give back ``leave`` bytes."""
        fd = os.open(str(self.filler), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 4096, 512, 1):
                block = b"\0" * size
                try:
                    while os.write(fd, block) > 0:
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        if leave:
            size = self.filler.stat().st_size
            os.truncate(str(self.filler), max(0, size - leave))

    def free(self) -> None:
        if self.filler.exists():
            self.filler.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)
        try:
            os.rmdir(str(self.path))
        except OSError:
            pass


@pytest.fixture
def tmpfs() -> Iterator[Tmpfs]:
    """16 MiB: room for the database and a WAL of 1000 pages (SQLite's checkpoint point), 4 MiB."""
    fs = Tmpfs("16m")
    try:
        yield fs
    finally:
        fs.unmount()


class CommitDenier:
    """An SQLite authoriser that makes every COMMIT fail for real while ``on`` (install it with
    ``conn.set_authorizer``, which also re-prepares cached statements; switch it off with ``on``:
    Python 3.8 cannot remove an authoriser)."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self, action: int, arg1: object, *_: object) -> int:
        if self.on and action == sqlite3.SQLITE_TRANSACTION and str(arg1).upper() == "COMMIT":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
