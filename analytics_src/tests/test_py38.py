"""The package must run on Python 3.8 (Ubuntu 20.04 targets): vermin, and a real 3.8 byte-compile."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PY38 = Path(os.environ.get("PYTHON38") or "python3.8-unset")  # a CPython 3.8; skipped when unset


def test_vermin_finds_nothing_newer_than_38() -> None:
    vermin = shutil.which("vermin") or str(Path(sys.executable).with_name("vermin"))
    if not Path(vermin).exists():
        pytest.skip("vermin is not installed (pip install vermin)")
    out = subprocess.run(
        [vermin, "--target=3.8-", "--violations", "--no-tips", "--eval-annotations", str(SRC)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(not PY38.exists(), reason=f"no CPython 3.8 at {PY38}")
def test_cpython38_compiles_every_module(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(PY38), "-c",
         "import compileall, sys; sys.exit(0 if compileall.compile_dir(sys.argv[1], quiet=1, legacy=False,"
         " ddir='src', force=True, workers=1) else 1)", str(SRC)],
        capture_output=True, text=True, timeout=120, check=False, env={"PYTHONPYCACHEPREFIX": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
