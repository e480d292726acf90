"""Make the checkout importable as ``ansible_collections.practable.analytics`` for plain pytest runs.

Under ``ansible-test units`` the collection is already importable and nothing is changed.
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "collections"
STANDIN = REPO / "tests" / "relay_standin"

try:
    import ansible_collections.practable.analytics.plugins  # noqa: F401  pylint: disable=unused-import
except ImportError:
    sys.path.insert(0, str(COLLECTIONS))
    for name in [
        m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")
    ]:
        del sys.modules[name]
if str(STANDIN) not in sys.path:
    sys.path.insert(0, str(STANDIN))
