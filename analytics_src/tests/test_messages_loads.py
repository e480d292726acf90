"""messages.loads (the decoder's scanner called directly) gives json.loads's verdict for any text."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from practable_analytics.messages import loads

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def verdict(f, text):  # type: ignore[no-untyped-def]
    try:
        return ("ok", json.dumps(f(text), sort_keys=True, default=repr))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc).__name__)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=60),
        json_values.map(json.dumps),
        st.tuples(st.sampled_from(["", " ", "\n", "x", "{}", "1"]), json_values.map(json.dumps)).map(
            lambda p: p[0] + p[1] if p[0] in ("", " ", "\n") else p[1] + p[0]
        ),
    )
)
def test_loads_agrees_with_json_loads(text: str) -> None:
    assert verdict(loads, text) == verdict(json.loads, text)


def test_loads_edge_cases() -> None:
    for text in ['{"a":1}', ' {"a":1} ', "1 2", "", "[", '{"a":', "NaN", "1e400", '"\\ud800"']:
        assert verdict(loads, text) == verdict(json.loads, text), text
    assert math.isnan(loads("NaN"))
