# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)

DOCUMENTATION = r"""
name: relay_token_valid
short_description: Whether a relay access token can be kept
version_added: "0.1.0"
author:
  - practable.analytics contributors (@practable)
description:
  - True when the token is an HS256 JWT signed with the secret, carries exactly the claims
    M(practable.analytics.relay_token) would mint for the stream and access base, and stays valid for at
    least O(min_days) more days. Used so that reruns keep tokens instead of rotating them every time.
  - Runs on the controller and needs the PyJWT library there.
options:
  _input:
    description: The existing token (an empty string is never valid).
    type: str
    required: true
  secret:
    description: The relay secret.
    type: str
    required: true
  stream:
    description: Stream (device) name.
    type: str
    required: true
  access_base:
    description: Base URL of the relay access endpoint.
    type: str
    required: true
  min_days:
    description: Days the token must still be valid.
    type: int
    default: 30
  now:
    description: Unix time to check against; defaults to the current time.
    type: int
"""

EXAMPLES = r"""
- name: Keep the token or mint a new one
  ansible.builtin.set_fact:
    token: >-
      {{ old_token if old_token is practable.analytics.relay_token_valid(relay_secret, 'spin30',
         'https://relay-access.practable.io', 30)
         else relay_secret | practable.analytics.relay_token('spin30', 'https://relay-access.practable.io') }}
  no_log: true
"""

RETURN = r"""
_value:
  description: Whether the token can be kept.
  type: bool
"""

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.practable.analytics.plugins.plugin_utils.relay_jwt import (  # noqa: E402
    RelayTokenError,
    check,
)


def relay_token_valid(token, secret, stream, access_base, min_days=30, now=None):  # noqa: PLR0917
    """Whether ``token`` can be kept (see DOCUMENTATION)."""
    try:
        valid, _reason = check(token, secret, stream, access_base, min_days=min_days, now=now)
    except RelayTokenError as exc:
        raise AnsibleFilterError(f"relay_token_valid: {exc}") from exc
    return valid


class TestModule:
    """Relay token test."""

    def tests(self):
        """Tests provided by this file."""
        return {"relay_token_valid": relay_token_valid}
