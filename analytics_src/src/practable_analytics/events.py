"""The stored form of one received message (shared by the handler and the store)."""

from dataclasses import dataclass
from typing import Optional

EVENT_TYPES = ("analytics", "log", "feedback", "request", "invalid")


@dataclass(frozen=True, init=False)
class Event:
    """One received message as the store keeps it.

    ``node`` is the index of the mapped task-graph node for ``analytics`` events (None when the log
    name maps to no node of the experiment). ``state``/``subject`` are set for feedback reports that
    count towards the enjoyment indicator only. ``raw`` is the message as JSON text, or the received
    text for ``invalid`` events.
    """

    type: str
    user: Optional[str]
    exp: Optional[str]
    course: Optional[str]
    hardware: Optional[str]
    t: Optional[int]
    log: Optional[str]
    node: Optional[int]
    raw: str
    state: Optional[str] = None
    subject: Optional[str] = None
    stream: Optional[str] = None

    def __init__(  # noqa: PLR0917 (one parameter per field, as dataclass would make it)
        self,
        type: str,
        user: Optional[str],
        exp: Optional[str],
        course: Optional[str],
        hardware: Optional[str],
        t: Optional[int],
        log: Optional[str],
        node: Optional[int],
        raw: str,
        state: Optional[str] = None,
        subject: Optional[str] = None,
        stream: Optional[str] = None,
    ) -> None:
        # The generated frozen __init__ sets each field through object.__setattr__ (about 1.2 us per
        # event, a fifth of validating a message); one dict update does the same in a third of that.
        # The instance stays frozen (assignment raises); tests check the parameters match the fields.
        self.__dict__.update(
            type=type, user=user, exp=exp, course=course, hardware=hardware, t=t, log=log, node=node,
            raw=raw, state=state, subject=subject, stream=stream,
        )  # fmt: skip
