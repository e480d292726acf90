"""How the class view is rendered without a display: the flags for Debian's ``chromium`` that the
browser tests and the demo's screenshot both use (nothing in the service starts a browser)."""

from typing import List

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container, where chromium's own sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",  # no call home from an offline machine
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_flags(*extra: str) -> List[str]:
    """The flags, then ``extra`` (a window size, hidden scrollbars for a screenshot)."""
    return [*CHROMIUM_FLAGS, *extra]
