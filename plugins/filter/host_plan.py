# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)

DOCUMENTATION = r"""
name: host_plan
short_description: The host plan of an analytics host, computed once from the shared inputs
version_added: "0.2.0"
author:
  - practable.analytics contributors (@practable)
description:
  - Returns the plan every role, unit and script of the collection derives from (written to the host as
    C(/etc/practable/plan.json)).
  - "For each device: its relay rule (C(id), C(stream),
    C(destination) = C(<access base>/session/<device>-log), C(token_file), C(access_file)), the
    C(stream_url) its logger reads and its C(logger_unit)."
  - "C(loggers): the units to enable and start in order (C(units)), the unit one restart goes through
    (C(group)) and the other mode's units (C(other))."
  - The access base loses its trailing slashes here, the same way as the token audience.
options:
  _input:
    description: Device names and ranges such as C(spin30..spin41), expanded as
      P(practable.analytics.device_range#filter) does.
    type: raw
    required: true
  access_base:
    description: Base URL of the remote relay's access endpoint.
    type: str
    required: true
  relay_port:
    description: Port of the relay host API and streams on loopback.
    type: int
    default: 8888
  config_dir:
    description: Directory of the access, token and plan files on the host.
    type: str
    default: /etc/practable
  single_process:
    description: One logger process for every stream instead of one unit per device.
    type: bool
    default: false
  stream_base:
    description: Websocket base of the streams (empty means C(ws://127.0.0.1:<relay_port>/ws)).
    type: str
    default: ""
  api_url:
    description: Relay host API URL (empty means C(http://127.0.0.1:<relay_port>)).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Work out the host plan
  ansible.builtin.set_fact:
    plan: >-
      {{ ['spin30..spin41'] | practable.analytics.host_plan('https://relay-access.practable.io', 8888) }}
"""

RETURN = r"""
_value:
  description: The plan (format 1).
  type: dict
"""

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.practable.analytics.plugins.module_utils.relay_host import (  # noqa: E402
    DEFAULT_PORT,
    PlanError,
    build_plan,
)
from ansible_collections.practable.analytics.plugins.plugin_utils.relay_jwt import (  # noqa: E402
    RelayTokenError,
    expand_devices,
)


def host_plan(devices, access_base, relay_port=DEFAULT_PORT, **options):
    """The host plan (see DOCUMENTATION); options: config_dir, single_process, stream_base, api_url."""
    try:
        return build_plan(expand_devices(devices), access_base, relay_port=relay_port, **options)
    except (PlanError, RelayTokenError) as exc:
        raise AnsibleFilterError(f"host_plan: {exc}") from exc


class FilterModule:
    """Host plan filter."""

    def filters(self):
        """Filters provided by this file."""
        return {"host_plan": host_plan}
