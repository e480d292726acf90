"""Capped exponential backoff with full jitter for reconnecting to a relay stream.

A relay host on this machine (loopback URL) comes back within a second or two of a restart, and
every event sent while the service is not connected is lost at the relay, so such a URL is retried
often with a low cap (``LOCAL_CAP_S``); a remote relay keeps the higher ladder (``--backoff-max``).
The ladder starts over on every successful connect, except after a connection that ended at once
(a relay that accepts and closes straight away), so that case cannot turn into a tight loop.
"""

import ipaddress
import random
from typing import Optional
from urllib.parse import urlsplit

from practable_analytics.service.config import ServeConfig

# Cap of the delay between attempts for a relay on this machine (127.0.0.0/8, ::1, localhost).
LOCAL_CAP_S = ServeConfig.backoff_local_max_s

# A connection shorter than this counts as a flap: the ladder carries on from where it was.
FLAP_S = 1.0


def is_loopback_url(url: str) -> bool:
    """True for ws(s) URLs whose host is localhost, 127.0.0.0/8 or ::1."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Backoff:
    """Delays for successive reconnect attempts: uniform in [0, min(cap, initial * 2**n)].

    Full jitter spreads the reconnects of many streams (and many processes) after a relay restart
    instead of letting them all arrive at the same instant.
    """

    def __init__(
        self,
        initial_s: float = ServeConfig.backoff_initial_s,
        cap_s: float = ServeConfig.backoff_max_s,
        rng: Optional[random.Random] = None,
    ) -> None:
        if initial_s <= 0 or cap_s < initial_s:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self._attempt = 0
        self._saved = 0
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter, not crypto)

    @classmethod
    def for_url(
        cls,
        url: str,
        initial_s: float = ServeConfig.backoff_initial_s,
        cap_s: float = ServeConfig.backoff_max_s,
        local_cap_s: float = LOCAL_CAP_S,
        rng: Optional[random.Random] = None,
    ) -> "Backoff":
        """The ladder for url: capped at local_cap_s (when lower) for a loopback relay."""
        if is_loopback_url(url):
            cap_s = min(cap_s, local_cap_s)
            initial_s = min(initial_s, cap_s)
        return cls(initial_s, cap_s, rng=rng)

    @property
    def attempt(self) -> int:
        """Number of delays handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """Upper bound of the next delay."""
        # Stop doubling once the cap is reached so the exponent never overflows.
        exponent = min(self._attempt, 64)
        return min(self.cap_s, self.initial_s * (2.0**exponent))

    def next_delay(self) -> float:
        """The delay before the next attempt; each call moves one step up the ladder."""
        upper = self.ceiling()
        self._attempt += 1
        return self._rng.uniform(0.0, upper)

    def reset(self) -> None:
        """Start again from the initial delay."""
        self._attempt = 0
        self._saved = 0

    def connected(self) -> None:
        """A connect succeeded: the next outage starts at the bottom of the ladder."""
        self._saved = self._attempt
        self._attempt = 0

    def disconnected(self, up_s: float) -> None:
        """The connection ended after up_s seconds; a flap resumes the ladder where it was."""
        if up_s < FLAP_S:
            self._attempt = self._saved + 1
        self._saved = 0
