"""The current websocket of one stream, shared by its reader (owner) and its sender (user)."""

import threading
from typing import Any, Optional


class Link:
    """Holds the connected websocket, or None while the stream is down."""

    def __init__(self) -> None:
        self._ws: Optional[Any] = None
        self._cond = threading.Condition()

    def set(self, ws: Optional[Any]) -> None:
        with self._cond:
            self._ws = ws
            self._cond.notify_all()

    def get(self) -> Optional[Any]:
        return self._ws

    def wait(self, timeout: float) -> Optional[Any]:
        """The websocket, waiting up to timeout for one to be connected."""
        with self._cond:
            if self._ws is None and timeout > 0:
                self._cond.wait(timeout)
            return self._ws

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()
