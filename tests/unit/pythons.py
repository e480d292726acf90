"""The Pythons the target-side code is run with in the unit tests: this one, and CPython 3.8 (Ubuntu
20.04's) when one is found (PYTHON38, else python3.8 on PATH)."""

import os
import shutil
import subprocess
import sys
from typing import List, Optional


def python38() -> Optional[str]:
    """A working CPython 3.8, or None."""
    candidate = os.environ.get("PYTHON38") or shutil.which("python3.8")
    if not candidate:
        return None
    try:
        proc = subprocess.run(
            [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 8))"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return candidate if proc.returncode == 0 else None


def pythons() -> List[str]:
    """This interpreter, plus CPython 3.8 when there is one."""
    found = python38()
    return [sys.executable] + ([found] if found else [])
