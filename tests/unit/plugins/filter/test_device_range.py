"""device_range filter."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.practable.analytics.plugins.filter.device_range import FilterModule, device_range


def test_seed_range():
    assert device_range("spin30..spin41") == [f"spin{n}" for n in range(30, 42)]


def test_mixed_list_keeps_order_and_drops_duplicates():
    assert device_range(["pend01", "spin30..spin32", "spin31", "trus1"]) == [
        "pend01",
        "spin30",
        "spin31",
        "spin32",
        "trus1",
    ]


def test_zero_padding_kept():
    assert device_range(["dev08..dev11"]) == ["dev08", "dev09", "dev10", "dev11"]


def test_string_with_commas_and_spaces():
    assert device_range("spin1..spin2, pend-a  pend-b") == ["spin1", "spin2", "pend-a", "pend-b"]


def test_single_element_range():
    assert device_range(["spin5..spin5"]) == ["spin5"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("spin41..spin30", "start 41 is after end 30"),
        ("spin30..pend41", "share the prefix"),
        ("spin..spin3", "must look like"),
        ("30..41", "needs a name prefix"),
        ("spin1..spin100000", "longer than"),
        (["spin/30"], "must match"),
        (["spin 30"], "must match"),
        (["spin_30"], "must match"),
        ([30], "not a string"),
        ({"a": 1}, "string or a list"),
    ],
)
def test_errors_are_clear(value, message):
    with pytest.raises(AnsibleFilterError, match=message):
        device_range(value)


def test_registration():
    assert FilterModule().filters() == {"device_range": device_range}
