"""Every role documents exactly the variables its defaults define, with matching types and defaults,
and every variable in defaults/main.yml carries a comment."""

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "defaults" / "main.yml").exists())
TYPES = {bool: "bool", int: "int", str: ("str", "path", "raw"), list: "list", dict: "dict"}


def load(role, *parts):
    return yaml.safe_load((ROLES / role).joinpath(*parts).read_text())


def test_all_four_roles_are_checked():
    assert ROLE_NAMES == ["analytics", "golang", "relay", "relay_rules"]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_match_defaults(role):
    defaults = load(role, "defaults", "main.yml")
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, value in defaults.items():
        spec = options[name]
        expected = TYPES[type(value)]
        assert spec["type"] in (expected if isinstance(expected, tuple) else (expected,)), name
        assert spec.get("description"), name
        if "default" in spec:
            assert spec["default"] == value, name
        if isinstance(value, str) and "{{" not in value:
            assert "default" in spec, name


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_is_commented_and_prefixed(role):
    lines = (ROLES / role / "defaults" / "main.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^([a-z0-9_]+):", line)
        if match:
            assert match.group(1).startswith(role + "_"), match.group(1)
            assert lines[index - 1].startswith("#"), f"{match.group(1)} has no comment"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_galaxy_info(role):
    info = load(role, "meta", "main.yml")["galaxy_info"]
    assert info["namespace"] == "practable"
    assert info["role_name"] == role
