"""Run the practable-analytics CLI with a wall clock that a test can step, as NTP or a Raspberry Pi
without a real-time clock does: ``python wall_clock.py OFFSET_FILE serve ...``.

``time.time()`` returns the real time plus the number of seconds in OFFSET_FILE (read again whenever
the file changes; write it with :func:`set_offset`, which replaces it in one rename). The monotonic
clock is left alone, as a real step leaves it. libfaketime would step the clock below Python instead,
but its 0.9.10 (Debian 12) makes ``time.sleep`` fail with EINVAL once its offset has changed while
the monotonic clock is left alone, and serve sleeps; so the step is made here, in the one function
every wall-clock reading of the service goes through.
"""

import os
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional


def set_offset(path: Path, seconds: float) -> None:
    """Step the wall clock of the processes that read ``path`` to real time + ``seconds``."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(f"{seconds!r}\n")
    os.replace(tmp, path)


def stepped_clock(path: Path, real: Callable[[], float]) -> Callable[[], float]:
    """``real()`` plus the offset in ``path``, re-read when the file's identity or mtime changes."""
    seen: List[Optional[tuple]] = [None]  # (inode, mtime_ns) of the last read
    offset = [0.0]

    def now() -> float:
        st = os.stat(path)
        key = (st.st_ino, st.st_mtime_ns)
        if key != seen[0]:
            offset[0] = float(path.read_text().strip() or 0)
            seen[0] = key
        return real() + offset[0]

    return now


def run(argv: List[str]) -> int:
    offset_file = Path(argv[0])
    time.time = stepped_clock(offset_file, time.time)  # type: ignore[assignment]
    from practable_analytics.cli import main  # noqa: PLC0415 (after the clock is in place)

    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
