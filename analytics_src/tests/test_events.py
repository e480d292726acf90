"""Event: its hand-written __init__ (faster than the generated frozen one) takes exactly its fields,
with the same defaults, and the instance stays a frozen dataclass."""

import dataclasses
import inspect

import pytest

from practable_analytics.events import Event


def test_event_init_takes_exactly_its_fields_and_stays_frozen() -> None:
    params = list(inspect.signature(Event.__init__).parameters.values())[1:]
    fields = dataclasses.fields(Event)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]
    e = Event("analytics", "u", "spinner", "engdes1", None, 1, "voltage", 0, "{}", stream="spin30")
    same = Event("analytics", "u", "spinner", "engdes1", None, 1, "voltage", 0, "{}", None, None, "spin30")
    assert e == same and repr(e) == repr(same)
    assert (e.state, e.subject, e.stream) == (None, None, "spin30")
    assert dataclasses.replace(e, t=2).t == 2 and e.t == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.t = 3  # type: ignore[misc]
