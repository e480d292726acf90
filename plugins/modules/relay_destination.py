#!/usr/bin/python
# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)

DOCUMENTATION = r"""
---
module: relay_destination
short_description: Manage destinations (forwarding rules) of a practable relay host
version_added: "0.1.0"
description:
  - Adds, replaces and removes destinations of a practable relay host (C(session-relay host)) through its
    local HTTP API.
  - Reads the current rules first and only posts rules whose C(stream), C(destination) or C(token) differ,
    because the relay host tears down and re-dials a rule whenever it is posted, even with identical
    content.
  - Removes rules one by one with C(DELETE /api/destinations/<id>), never with the C(all) or
    C(deleteAll) routes.
  - The relay host keeps rules in memory only; they are lost when it restarts. The C(relay_rules) role
    installs a service that re-applies them from the same host plan (O(plan)) with the same client code.
author:
  - practable.analytics contributors (@practable)
options:
  api_url:
    description:
      - Base URL of the relay host API. With O(plan), the plan's C(api_url) is used instead.
    type: str
    default: http://127.0.0.1:8888
  plan:
    description:
      - Path on the host of a host plan (C(/etc/practable/plan.json), written by the C(relay_rules) role from
        the P(practable.analytics.host_plan#filter) filter). Every device in it gets its rule, the token read
        from the device's C(token_file) on the host, so tokens never pass through the module's arguments.
      - Mutually exclusive with O(id) and O(destinations).
    type: path
    version_added: "0.2.0"
  id:
    description:
      - Id of one rule. Must match C([a-zA-Z0-9-/]+) and must not be C(all) or C(deleteAll).
      - Mutually exclusive with O(destinations) and O(plan).
    type: str
  stream:
    description:
      - Local stream whose messages the rule forwards. A leading C(/) is trimmed.
      - Defaults to O(id).
    type: str
  destination:
    description:
      - Access URL (with a token) or websocket URL (without one) the rule forwards to.
      - Required when O(state=present) and O(id) is set.
    type: str
  token:
    description:
      - Token sent as the C(Authorization) header to the access URL. Empty means dial O(destination)
        directly.
    type: str
    default: ""
  state:
    description:
      - Whether the rule O(id) must exist (V(present)) or not (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  destinations:
    description:
      - A set of rules to manage in one call. Mutually exclusive with O(id).
    type: list
    elements: dict
    suboptions:
      id:
        description: Rule id.
        type: str
        required: true
      stream:
        description: Stream of the rule, defaults to the id.
        type: str
      destination:
        description: Destination URL, required when the item's state is V(present).
        type: str
      token:
        description: Token for the access URL.
        type: str
        default: ""
      state:
        description: Whether this rule must exist.
        type: str
        choices: [present, absent]
        default: present
  purge:
    description:
      - Remove every rule of the host that is not listed in O(destinations) (or is not O(id)).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the API to answer its health check before giving up. V(0) tries once.
    type: int
    default: 30
  timeout:
    description:
      - Timeout of each HTTP request, in seconds.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: Reads the rules and reports what would change without posting or deleting.
  diff_mode:
    support: full
    description: Shows the managed rules before and after, with tokens masked.
notes:
  - Tokens are never shown in results or diffs; a changed token shows as C(<hidden> (changed)).
  - The API has no authentication; keep its port closed to everything but loopback.
"""

EXAMPLES = r"""
- name: Forward the spin30 stream to the remote relay
  practable.analytics.relay_destination:
    id: spin30
    destination: https://relay-access.practable.io/session/spin30-log
    token: "{{ spin30_token }}"

- name: Manage every device rule and remove the others
  practable.analytics.relay_destination:
    api_url: http://127.0.0.1:8888
    purge: true
    destinations:
      - id: spin30
        destination: https://relay-access.practable.io/session/spin30-log
        token: "{{ tokens.spin30 }}"
      - id: spin31
        destination: https://relay-access.practable.io/session/spin31-log
        token: "{{ tokens.spin31 }}"

- name: Remove one rule
  practable.analytics.relay_destination:
    id: spin41
    state: absent

- name: Every device of the host plan, tokens read from their files on the host, other rules removed
  practable.analytics.relay_destination:
    plan: /etc/practable/plan.json
    purge: true
"""

RETURN = r"""
changed_ids:
  description: Ids of the rules that were (or in check mode would be) added, replaced or removed.
  returned: always
  type: list
  elements: str
  sample: [spin30, spin41]
added:
  description: Ids of rules added.
  returned: always
  type: list
  elements: str
  sample: [spin30]
updated:
  description: Ids of rules replaced because a managed field differed.
  returned: always
  type: list
  elements: str
  sample: []
removed:
  description: Ids of rules removed.
  returned: always
  type: list
  elements: str
  sample: [spin41]
rules:
  description: The host's rules after the change (predicted in check mode), tokens masked.
  returned: always
  type: dict
  sample: {"spin30": {"id": "spin30", "stream": "spin30", "destination": "https://a/session/spin30-log",
           "token": "<hidden>"}}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.practable.analytics.plugins.module_utils.relay_host import (  # noqa: E402
    PlanError,
    RelayHost,
    RelayHostError,
    apply_rules,
    load_plan,
    mask_rule,
    normalise_rule,
    rules_from_plan,
    validate_rule_id,
)


def _wanted_from_params(module):
    """(wanted rules, absent ids) from the module parameters; fails on invalid input."""
    params = module.params
    if params["plan"] is not None:
        try:
            rules, problems = rules_from_plan(load_plan(params["plan"]))
        except PlanError as exc:
            module.fail_json(msg=str(exc))
        if problems:
            module.fail_json(msg="; ".join(problems))
        items = [dict(rule, state="present") for rule in rules]
    elif params["destinations"] is not None:
        items = params["destinations"]
    else:
        items = [
            {
                "id": params["id"],
                "stream": params["stream"],
                "destination": params["destination"],
                "token": params["token"],
                "state": params["state"],
            }
        ]
    wanted = []
    absent = []
    seen = set()
    for index, item in enumerate(items):
        rule_id = item.get("id")
        try:
            validate_rule_id(rule_id)
        except ValueError as exc:
            module.fail_json(msg=f"destinations[{index}]: {exc}")
        if rule_id in seen:
            module.fail_json(msg=f"rule id {rule_id!r} is listed twice")
        seen.add(rule_id)
        if item.get("state", "present") == "absent":
            absent.append(rule_id)
            continue
        if not item.get("destination"):
            module.fail_json(msg=f"rule {rule_id!r}: destination is required when state is present")
        stream = item.get("stream") or rule_id
        wanted.append(
            normalise_rule(
                {
                    "id": rule_id,
                    "stream": stream,
                    "destination": item["destination"],
                    "token": item.get("token") or "",
                }
            )
        )
    return wanted, absent


def main():
    """Entry point."""
    destination_spec = dict(
        id=dict(type="str", required=True),
        stream=dict(type="str"),
        destination=dict(type="str"),
        token=dict(type="str", default="", no_log=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = AnsibleModule(
        argument_spec=dict(
            api_url=dict(type="str", default="http://127.0.0.1:8888"),
            plan=dict(type="path"),
            id=dict(type="str"),
            stream=dict(type="str"),
            destination=dict(type="str"),
            token=dict(type="str", default="", no_log=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            destinations=dict(type="list", elements="dict", options=destination_spec),
            purge=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=30),
            timeout=dict(type="int", default=10),
        ),
        mutually_exclusive=[["id", "destinations", "plan"]],
        required_one_of=[["id", "destinations", "plan"]],
        supports_check_mode=True,
    )
    if module.params["wait_timeout"] < 0 or module.params["timeout"] <= 0:
        module.fail_json(msg="wait_timeout must be >= 0 and timeout > 0")

    wanted, absent = _wanted_from_params(module)
    api_url = module.params["api_url"]
    if module.params["plan"] is not None:
        api_url = load_plan(module.params["plan"])["api_url"]
    try:
        host = RelayHost(api_url, timeout=module.params["timeout"])
        host.wait(module.params["wait_timeout"])
    except RelayHostError as exc:
        module.fail_json(msg=str(exc))
    try:
        current, after, add, update, remove = apply_rules(
            host, wanted, absent, module.params["purge"], check_mode=module.check_mode
        )
    except RelayHostError as exc:
        module.fail_json(msg=str(exc), changed=True)

    changed_ids = sorted(set([r["id"] for r in add + update] + remove))
    changed = bool(changed_ids)

    result = dict(
        changed=changed,
        changed_ids=changed_ids,
        added=[r["id"] for r in add],
        updated=[r["id"] for r in update],
        removed=remove,
        rules=dict((k, mask_rule(v)) for k, v in sorted(after.items())),
    )
    if module._diff:  # pylint: disable=protected-access
        before_view = {}
        after_view = {}
        for rule_id in sorted(set(current) | set(after)):
            old = current.get(rule_id)
            new = after.get(rule_id)
            if old is not None:
                before_view[rule_id] = mask_rule(old)
            if new is not None:
                token_changed = old is not None and old.get("token", "") != new.get("token", "")
                after_view[rule_id] = mask_rule(new, changed_token=token_changed)
        result["diff"] = dict(before=before_view, after=after_view)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
