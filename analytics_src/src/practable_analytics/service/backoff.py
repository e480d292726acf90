"""Capped exponential backoff with full jitter for reconnecting to a relay stream."""

import random
from typing import Optional


class Backoff:
    """Delays for successive reconnect attempts: uniform in [0, min(cap, initial * 2**n)].

    Full jitter spreads the reconnects of many streams (and many processes) after a relay restart
    instead of letting them all arrive at the same instant.
    """

    def __init__(
        self, initial_s: float = 0.1, cap_s: float = 10.0, rng: Optional[random.Random] = None
    ) -> None:
        if initial_s <= 0 or cap_s < initial_s:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self._attempt = 0
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter, not crypto)

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
        """Start again from the initial delay (after a connection that stayed up)."""
        self._attempt = 0
