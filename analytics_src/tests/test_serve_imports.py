"""`practable-analytics serve` never imports numpy (it is most of a stream process's memory)."""

import subprocess
import sys

PROBE = """
import sys
from practable_analytics import cli
parser = cli.build_parser()
import practable_analytics.commands.serve, practable_analytics.service.runner
import practable_analytics.service.processing
from practable_analytics.experiments import Registry
Registry.load()
print(sorted(m for m in ("numpy", "pandas", "matplotlib", "networkx", "pyarrow") if m in sys.modules))
"""


def test_the_serving_process_imports_no_numpy() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
