# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)

DOCUMENTATION = r"""
name: device_range
short_description: Expand device names and ranges such as C(spin30..spin41)
version_added: "0.1.0"
author:
  - practable.analytics contributors (@practable)
description:
  - Turns a list (or a comma or space separated string) of device names and ranges into a list of names,
    in order, without duplicates.
  - A range C(<prefix><first>..<prefix><last>) expands to every number from first to last. Zero padding of
    the first number is kept (C(dev01..dev03) gives C(dev01), C(dev02), C(dev03)).
  - Names must match C([A-Za-z0-9][A-Za-z0-9-]*) because they become relay rule ids, file names and
    systemd instance names.
options:
  _input:
    description: Names and ranges.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: All spinners
  ansible.builtin.debug:
    msg: "{{ ['spin30..spin41', 'pend01'] | practable.analytics.device_range }}"
"""

RETURN = r"""
_value:
  description: The device names.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.practable.analytics.plugins.plugin_utils.relay_jwt import (  # noqa: E402
    RelayTokenError,
    expand_devices,
)


def device_range(devices):
    """Expand device names and ranges (see DOCUMENTATION)."""
    try:
        return expand_devices(devices)
    except RelayTokenError as exc:
        raise AnsibleFilterError(f"device_range: {exc}") from exc


class FilterModule:
    """Device range filter."""

    def filters(self):
        """Filters provided by this file."""
        return {"device_range": device_range}
