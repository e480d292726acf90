# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)
"""Client for the practable relay host API (``session-relay host``).

Runs on the managed host with its own Python (3.8 or newer), so it only uses
the standard library and ``ansible.module_utils.urls``.

API facts this client relies on (SPEC section 4):

* ``GET /healthcheck`` answers 200 ``"ok"``.
* ``GET /api/destinations/all`` answers ``{id: rule}`` (``{}`` when empty).
* ``POST /api/destinations`` adds or replaces one rule; replacing, even with
  identical content, reconnects it, so callers must only post rules that differ.
* ``DELETE /api/destinations/<id>`` removes one rule.  ``DELETE
  /api/destinations/deleteAll`` removes every rule, so the id ``deleteAll``
  must never be used for one rule.
"""

import json
import re
import socket
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

#: Ids the relay accepts (SPEC section 4).
RULE_ID_RE = re.compile(r"^[a-zA-Z0-9/-]+$")
#: Ids that collide with special routes of the host.
RESERVED_IDS = frozenset(["all", "deleteAll"])
#: The fields of a rule that this collection manages.
RULE_FIELDS = ("id", "stream", "destination", "token")
#: What a masked token looks like in diffs and results.
MASK = "<hidden>"


class RelayHostError(Exception):
    """Any failure to talk to the relay host, with a message fit for an operator."""


def normalise_stream(stream):
    """The stream as the host stores it: leading slashes trimmed."""
    return (stream or "").lstrip("/")


def normalise_rule(rule):
    """A rule reduced to the managed fields, each a string, stream trimmed."""
    out = {}
    for key in RULE_FIELDS:
        value = rule.get(key)
        out[key] = "" if value is None else str(value)
    out["stream"] = normalise_stream(out["stream"])
    return out


def rules_differ(current, wanted):
    """True when the host's rule differs from the wanted one in any managed field."""
    if current is None:
        return True
    return normalise_rule(current) != normalise_rule(wanted)


def validate_rule_id(rule_id):
    """Raise ValueError unless ``rule_id`` is an id this client may post or delete."""
    if not isinstance(rule_id, str) or not RULE_ID_RE.match(rule_id):
        raise ValueError(f"rule id {rule_id!r} must match [a-zA-Z0-9-/]+")
    if rule_id in RESERVED_IDS:
        raise ValueError(f"rule id {rule_id!r} collides with a special route of the relay host")
    if rule_id.startswith("/") or rule_id.endswith("/") or "//" in rule_id:
        raise ValueError(f"rule id {rule_id!r} must not start or end with '/' or contain '//'")


def mask_rule(rule, changed_token=False):
    """A copy of a normalised rule with the token replaced by a marker."""
    out = dict(rule)
    token = out.get("token") or ""
    if token:
        out["token"] = MASK + (" (changed)" if changed_token else "")
    return out


class RelayHost:
    """Small synchronous client of one relay host API.

    ``opener`` is ``ansible.module_utils.urls.open_url`` unless a test injects
    another callable with the same signature.
    """

    def __init__(self, api_url, timeout=10.0, opener=None):
        if not isinstance(api_url, str) or not re.match(r"^https?://[^/\s]+", api_url):
            raise RelayHostError(f"api_url {api_url!r} must be an http:// or https:// URL")
        self.api_url = api_url.rstrip("/")
        self.timeout = float(timeout)
        self._open = opener or open_url

    # -- low level -------------------------------------------------------
    def _request(self, method, path, body=None):
        """Send one request; return (status, body text)."""
        url = self.api_url + path
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            response = self._open(
                url,
                data=data,
                method=method,
                headers=headers,
                timeout=self.timeout,
                validate_certs=True,
                follow_redirects="none",
            )
            try:
                status = response.getcode()
                text = response.read().decode("utf-8", "replace")
            finally:
                response.close()
        except HTTPError as exc:
            try:
                detail = exc.read().decode("utf-8", "replace").strip()
            except (OSError, AttributeError, ValueError):
                detail = ""
            raise RelayHostError(
                f"{method} {url} answered HTTP {exc.code}: {detail[:500] or exc.reason}"
            ) from exc
        except URLError as exc:
            raise RelayHostError(f"relay host API {url} unreachable: {exc.reason}") from exc
        except (socket.timeout, OSError) as exc:
            raise RelayHostError(f"relay host API {url} unreachable: {exc}") from exc
        return status, text

    def _json(self, method, path, body=None):
        status, text = self._request(method, path, body)
        if status != 200:
            raise RelayHostError(f"{method} {self.api_url + path} answered HTTP {status}: {text[:500]}")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RelayHostError(
                f"{method} {self.api_url + path} answered something that is not JSON: {text[:200]!r}"
            ) from exc

    # -- API ---------------------------------------------------------------
    def healthy(self):
        """True when ``GET /healthcheck`` answers 200."""
        try:
            status, _text = self._request("GET", "/healthcheck")
        except RelayHostError:
            return False
        return status == 200

    def wait(self, timeout, interval=0.5, clock=time.monotonic, sleep=time.sleep):
        """Wait until the API answers, at most ``timeout`` seconds (bounded retry).

        Raises RelayHostError naming the last failure when the deadline passes.
        """
        deadline = clock() + max(0.0, float(timeout))
        delay = interval
        last = "no attempt"
        while True:
            try:
                status, _text = self._request("GET", "/healthcheck")
                if status == 200:
                    return
                last = f"HTTP {status}"
            except RelayHostError as exc:
                last = str(exc)
            remaining = deadline - clock()
            if remaining <= 0:
                raise RelayHostError(f"relay host API {self.api_url} not ready after {timeout}s: {last}")
            sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)

    def list(self):
        """All rules as ``{id: normalised rule}``."""
        data = self._json("GET", "/api/destinations/all")
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise RelayHostError(f"GET /api/destinations/all answered {type(data).__name__}, not an object")
        rules = {}
        for key, rule in data.items():
            if not isinstance(rule, dict):
                raise RelayHostError(f"rule {key!r} from the relay host is not an object")
            normal = normalise_rule(rule)
            if not normal["id"]:
                normal["id"] = str(key)
            rules[str(key)] = normal
        return rules

    def put(self, rule):
        """Add or replace one rule (``POST /api/destinations``); return the host's answer."""
        normal = normalise_rule(rule)
        try:
            validate_rule_id(normal["id"])
        except ValueError as exc:
            raise RelayHostError(str(exc)) from exc
        answer = self._json("POST", "/api/destinations", normal)
        if not isinstance(answer, dict):
            raise RelayHostError(f"POST /api/destinations answered {answer!r}, not a rule")
        return answer

    def delete(self, rule_id):
        """Remove one rule (``DELETE /api/destinations/<id>``)."""
        try:
            validate_rule_id(rule_id)
        except ValueError as exc:
            raise RelayHostError(str(exc)) from exc
        return self._json("DELETE", "/api/destinations/" + rule_id)


def plan(current, wanted, absent_ids, purge):
    """Decide what to change.

    ``current``: ``{id: rule}`` from the host; ``wanted``: list of rules that
    must be present; ``absent_ids``: ids that must be gone; ``purge``: remove
    every other rule too.  Returns ``(add, update, remove)``: two lists of
    normalised rules and one list of ids, each sorted by id.
    """
    add = []
    update = []
    wanted_ids = set()
    for rule in wanted:
        normal = normalise_rule(rule)
        wanted_ids.add(normal["id"])
        existing = current.get(normal["id"])
        if existing is None:
            add.append(normal)
        elif rules_differ(existing, normal):
            update.append(normal)
    remove = set(i for i in absent_ids if i in current and i not in wanted_ids)
    if purge:
        remove.update(i for i in current if i not in wanted_ids)
    return (
        sorted(add, key=lambda r: r["id"]),
        sorted(update, key=lambda r: r["id"]),
        sorted(remove),
    )
