"""The one systemd sandboxing list (plugins/filter/unit_hardening.py): options per systemd release, and
the exposure systemd-analyze gives the units built with it (when a systemd-analyze with --offline runs
here)."""

import re
import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.practable.analytics.plugins.filter.unit_hardening import (
    unit_hardening,
)


def test_focal_gets_no_option_its_systemd_lacks():
    lines = unit_hardening(245)
    assert "ProtectClock=yes" in lines and "ProtectKernelLogs=yes" in lines
    assert not [
        line for line in lines if line.startswith(("ProtectProc=", "PrivateIPC="))
    ]
    assert unit_hardening(0) == lines  # unknown: the oldest supported release
    assert unit_hardening("245.4-4ubuntu3") == lines


def test_focal_in_a_container_loses_only_protect_hostname():
    """systemd 245 fails every unit (228/SECCOMP) with ProtectHostname= where no UTS namespace may be
    made: left out in containers (LXD, podman, ...), kept on a VM or a real host and from 247 on."""
    vm = unit_hardening(
        {"systemd": 245, "virtualization_type": "kvm", "virtualization_role": "guest"}
    )
    assert vm == unit_hardening(245) and "ProtectHostname=yes" in vm
    for kind in ("lxc", "podman", "docker", "systemd-nspawn"):
        lines = unit_hardening(
            {
                "systemd": "245.4-4ubuntu3",
                "virtualization_type": kind,
                "virtualization_role": "guest",
            }
        )
        assert lines == [line for line in vm if line != "ProtectHostname=yes"]
    assert "ProtectHostname=yes" in unit_hardening(
        {"systemd": 245, "virtualization_type": "lxc", "virtualization_role": "host"}
    )
    assert "ProtectHostname=yes" in unit_hardening(
        {
            "systemd": 247,
            "virtualization_type": "podman",
            "virtualization_role": "guest",
        }
    )
    assert unit_hardening({"systemd": 252}) == unit_hardening(252)


def test_newer_releases_get_more():
    assert "ProtectProc=invisible" in unit_hardening(247)
    assert "PrivateIPC=yes" not in unit_hardening(247)
    assert "PrivateIPC=yes" in unit_hardening(252)


def test_unit_specific_lines():
    lines = unit_hardening(
        252, umask="0027", read_write_paths=["/var/analytics/data"], loopback_only=True
    )
    assert lines[-4:] == [
        "UMask=0027",
        "ReadWritePaths=/var/analytics/data",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
    ]
    assert not [line for line in unit_hardening(252) if line.startswith("IPAddress")]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("x",), {}),
        (({"systemd": "x"},), {}),
        ((252,), {"umask": "27"}),
        ((252,), {"read_write_paths": ["rel"]}),
    ],
)
def test_bad_input_is_refused(args, kwargs):
    with pytest.raises(AnsibleFilterError):
        unit_hardening(*args, **kwargs)


def _analyze():
    tool = shutil.which("systemd-analyze")
    if not tool:
        return None
    version = subprocess.run(
        [tool, "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"systemd (\d+)", version)
    return (tool, int(match.group(1))) if match and int(match.group(1)) >= 250 else None


@pytest.mark.parametrize(
    ("user", "kwargs"),
    [
        ("session-relay", {}),  # the relay host
        (
            "analytics",
            {
                "umask": "0027",
                "read_write_paths": ["/var/analytics/data"],
                "loopback_only": True,
            },
        ),
        (
            None,
            {"loopback_only": True},
        ),  # session-rules.service runs as root, without capabilities
    ],
)
def test_exposure_is_at_most_3(tmp_path, user, kwargs):
    found = _analyze()
    if not found:
        pytest.skip("no systemd-analyze with --offline (systemd >= 250) here")
    tool, version = found
    unit = tmp_path / "probe.service"
    body = ["[Service]", "Type=simple", "ExecStart=/bin/true"]
    if user:
        body.append(f"User={user}")
    unit.write_text("\n".join(body + unit_hardening(version, **kwargs)) + "\n")
    argv = [tool, "security", "--offline=true", "--no-pager", str(unit)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 3.0, proc.stdout
