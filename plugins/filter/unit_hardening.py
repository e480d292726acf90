# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)

DOCUMENTATION = r"""
name: unit_hardening
short_description: The systemd sandboxing lines of every unit the collection installs
version_added: "0.2.0"
author:
  - practable.analytics contributors (@practable)
description:
  - Returns the C([Service]) lines that sandbox a unit, the one list every unit of the collection uses
    (the relay host, the loggers and session-rules), so that C(systemd-analyze security) rates each at an
    exposure of 3 or less.
  - Options a systemd release lacks are left out, chosen from the host's systemd version (the
    C(ansible_facts.systemd.version) fact); V(0) (unknown) means the oldest supported release (245, Ubuntu
    focal).
  - C(PrivateUsers=) is always left out, it fails (226/NAMESPACE) in unprivileged containers.
  - C(ProtectHostname=) is left out on systemd before 247 inside a container (LXC/LXD, podman, docker,
    systemd-nspawn, OpenVZ). Systemd 245 sets it up with a UTS namespace, and where it may not create one
    its fallback fails every unit with 228/SECCOMP. A virtual machine or a real host keeps it.
options:
  _input:
    description:
      - The host's systemd version (an integer such as V(247), or a version string such as V(245.4-4ubuntu3)),
      - or a mapping with C(systemd) (that version) and optionally C(virtualization_type) and
        C(virtualization_role) (the C(ansible_facts) of those names).
    type: raw
    required: true
  umask:
    description: C(UMask=) of the unit.
    type: str
    default: "0077"
  read_write_paths:
    description: Paths the unit may write to under C(ProtectSystem=strict).
    type: list
    elements: str
    default: []
  loopback_only:
    description: Allow IP traffic with loopback addresses only (C(IPAddressDeny=any),
      C(IPAddressAllow=localhost)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Show the hardening of a unit for this host, container or not
  ansible.builtin.debug:
    msg: >-
      {{ {'systemd': ansible_facts.systemd.version | default(0),
          'virtualization_type': ansible_facts.virtualization_type | default(''),
          'virtualization_role': ansible_facts.virtualization_role | default('')}
         | practable.analytics.unit_hardening }}

- name: Show the hardening of a loopback-only unit on this host
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.systemd.version | default(0)
         | practable.analytics.unit_hardening(loopback_only=true) }}
"""

RETURN = r"""
_value:
  description: The unit lines, in order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError  # noqa: E402

#: The oldest systemd of a supported release (Ubuntu 20.04).
OLDEST = 245
#: ``ansible_facts.virtualization_type`` values of container managers (the guest shares the kernel).
CONTAINER_TYPES = frozenset(
    (
        "container",
        "docker",
        "podman",
        "lxc",
        "lxd",
        "openvz",
        "systemd-nspawn",
        "containerd",
    )
)
#: The first systemd whose ProtectHostname= works where no UTS namespace may be made (bullseye's 247 does).
HOSTNAME_IN_CONTAINER = 247
#: Every option with the first systemd release that has it (all of them exist in 245 unless noted).
OPTIONS = (
    ("NoNewPrivileges=yes", 0),
    ("CapabilityBoundingSet=", 0),
    ("AmbientCapabilities=", 0),
    ("ProtectSystem=strict", 0),
    ("ProtectHome=yes", 0),
    ("PrivateTmp=yes", 0),
    ("PrivateDevices=yes", 0),
    ("ProtectKernelTunables=yes", 0),
    ("ProtectKernelModules=yes", 0),
    ("ProtectKernelLogs=yes", 0),
    ("ProtectControlGroups=yes", 0),
    ("ProtectClock=yes", 0),
    ("ProtectHostname=yes", 0),
    ("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", 0),
    ("RestrictRealtime=yes", 0),
    ("RestrictSUIDSGID=yes", 0),
    ("RestrictNamespaces=yes", 0),
    ("LockPersonality=yes", 0),
    ("MemoryDenyWriteExecute=yes", 0),
    ("RemoveIPC=yes", 0),
    ("SystemCallArchitectures=native", 0),
    ("SystemCallFilter=@system-service", 0),
    ("SystemCallErrorNumber=EPERM", 0),
    ("ProtectProc=invisible", 247),
    ("ProcSubset=pid", 247),
    ("PrivateIPC=yes", 248),
)


def _platform(value):
    """(systemd version, in a container) of the filter's input."""
    container = False
    if isinstance(value, dict):
        role = str(value.get("virtualization_role") or "")
        kind = str(value.get("virtualization_type") or "")
        container = role == "guest" and kind in CONTAINER_TYPES
        value = value.get("systemd", 0)
    try:
        version = int(str(value or 0).split(".", 1)[0].split()[0])
    except (TypeError, ValueError, IndexError) as exc:
        raise AnsibleFilterError(
            f"unit_hardening: systemd version {value!r} is no number"
        ) from exc
    return version or OLDEST, container


def unit_hardening(
    systemd_version, umask="0077", read_write_paths=None, loopback_only=False
):
    """The sandboxing lines for a unit on a host with ``systemd_version`` (see DOCUMENTATION)."""
    version, container = _platform(systemd_version)
    if not isinstance(umask, str) or not umask.isdigit() or len(umask) != 4:
        raise AnsibleFilterError(
            f"unit_hardening: umask {umask!r} must be four octal digits"
        )
    lines = [line for line, since in OPTIONS if version >= since]
    if container and version < HOSTNAME_IN_CONTAINER:
        lines.remove("ProtectHostname=yes")
    lines.append(f"UMask={umask}")
    for path in read_write_paths or []:
        if (
            not isinstance(path, str)
            or not path.startswith("/")
            or any(c.isspace() for c in path)
        ):
            raise AnsibleFilterError(
                f"unit_hardening: read_write_paths {path!r} is not an absolute path"
            )
        lines.append(f"ReadWritePaths={path}")
    if loopback_only:
        lines.extend(["IPAddressDeny=any", "IPAddressAllow=localhost"])
    return lines


class FilterModule:
    """Unit hardening filter."""

    def filters(self):
        """Filters provided by this file."""
        return {"unit_hardening": unit_hardening}
