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


def test_all_roles_are_checked():
    assert ROLE_NAMES == ["analytics", "common", "golang", "relay", "relay_rules"]


def prefix(role):
    """A role's variables start with its name; the internal common role holds the shared practable_*."""
    return "practable_" if role == "common" else role + "_"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_match_defaults(role):
    defaults = load(role, "defaults", "main.yml")
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(options) == set(defaults)
    for name, value in defaults.items():
        spec = options[name]
        expected = TYPES[type(value)]
        if isinstance(value, str) and "{{" in value:
            expected = ("str", "path", "raw", "int", "bool", "list")  # the type the template yields
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
            assert match.group(1).startswith(prefix(role)), match.group(1)
            assert lines[index - 1].startswith("#"), f"{match.group(1)} has no comment"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_galaxy_info(role):
    info = load(role, "meta", "main.yml")["galaxy_info"]
    assert info["namespace"] == "practable"
    assert info["role_name"] == role


@pytest.mark.parametrize("role", [r for r in ROLE_NAMES if r != "common"])
def test_roles_read_no_other_roles_variables(role):
    """Only the role's own variables, the shared practable_* ones and private _ ones are read."""
    own = (role + "_", "practable_", "_", "ansible_", "relay_secret")
    text = "\n".join(p.read_text() for p in role_files(role))
    others = [r + "_" for r in ROLE_NAMES if r not in ("common", role) and not role.startswith(r + "_")]
    for name in set(re.findall(r"\b([a-z][a-z0-9_]*)\b", text)):
        if name.startswith(own):
            continue
        assert not name.startswith(tuple(others)), f"{role} reads {name}"


def role_files(role=""):
    """The YAML files and templates of one role, or of all."""
    return [p for p in (ROLES / role).rglob("*") if p.is_file() and p.suffix in (".yml", ".j2")]


def test_the_relay_port_is_set_once():
    """The literal relay port is set once, in the shared inputs."""
    hits = [p for p in role_files() if "8888" in p.read_text()]
    assert [p.relative_to(ROLES).as_posix() for p in hits] == ["common/defaults/main.yml"]
