# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)

DOCUMENTATION = r"""
name: relay_token
short_description: Mint a practable relay access token
version_added: "0.1.0"
author:
  - practable.analytics contributors (@practable)
description:
  - Returns an HS256 JWT signed with the relay secret for the log topic of one stream, as the practable
    relay access endpoint expects it.
  - "Claims: C(topic) = C(<stream>-log), C(prefix) = C(session), C(scopes) = C([read, write]),
    C(aud) = C([access_base]), C(iat), C(nbf) = C(iat), C(exp) = C(iat) + O(lifetime)."
  - Runs on the controller and needs the PyJWT library there.
options:
  _input:
    description: The relay secret (keep it vaulted).
    type: str
    required: true
  stream:
    description: Stream (device) name, for example C(spin30).
    type: str
    required: true
  access_base:
    description: Base URL of the relay access endpoint, for example C(https://relay-access.practable.io).
    type: str
    required: true
  lifetime:
    description: Seconds the token stays valid.
    type: int
    default: 31536000
  now:
    description: Unix time to use as C(iat); defaults to the current time.
    type: int
"""

EXAMPLES = r"""
- name: Mint a token valid for one year
  ansible.builtin.set_fact:
    spin30_token: >-
      {{ relay_secret | practable.analytics.relay_token('spin30', 'https://relay-access.practable.io') }}
  no_log: true
"""

RETURN = r"""
_value:
  description: The signed token.
  type: str
"""

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible_collections.practable.analytics.plugins.plugin_utils.relay_jwt import (  # noqa: E402
    DEFAULT_LIFETIME,
    RelayTokenError,
    mint,
)


def relay_token(secret, stream, access_base, lifetime=DEFAULT_LIFETIME, now=None):
    """Mint a relay access token (see DOCUMENTATION)."""
    try:
        return mint(secret, stream, access_base, lifetime=lifetime, now=now)
    except RelayTokenError as exc:
        raise AnsibleFilterError(f"relay_token: {exc}") from exc


class FilterModule:
    """Relay token filter."""

    def filters(self):
        """Filters provided by this file."""
        return {"relay_token": relay_token}
