# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)
"""Client for the practable relay host API (``session-relay host``).

Runs on the managed host with its own Python (3.8 or newer) and uses only the
standard library, plus ``ansible.module_utils.urls`` when Ansible runs it (the
relay_destination module). The same file is installed on the host for
session-rules.service (``apply-relay-rules``), which imports it without Ansible.

It also owns the host plan (``/etc/practable/plan.json``): its shape
(:func:`build_plan`, used by the ``host_plan`` filter on the controller) and
its reading (:func:`load_plan`, :func:`rules_from_plan`, used by the module and
by the boot-time re-apply).

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
import os
import re
import socket
import time
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

try:
    from ansible.module_utils.urls import open_url
except ImportError:  # boot-time re-apply: the host's Python without Ansible
    open_url = None

#: Device names: relay rule ids, file name suffixes and systemd instance names.
DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
#: URLs a rule may forward to.
URL_RE = re.compile(r"^(https?|wss?)://[^\s/]+\S*$")
#: Version of the plan file format this code writes and reads.
PLAN_FORMAT = 1
#: Largest plan or token file read.
MAX_FILE = 1024 * 1024
#: The relay host's port when nobody says otherwise (the seed's VW_PORT).
DEFAULT_PORT = 8888
#: The logger units: one process for every stream, or the target grouping one unit per device.
ALL_UNIT = "analytics-logger-all.service"
TARGET = "analytics-loggers.target"
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


class PlanError(ValueError):
    """The host plan (or a file it names) is missing or invalid."""


def normalise_base(url):
    """A base URL as every consumer uses it: surrounding space and trailing slashes removed.

    The token audience (``aud``) and the destination URL both come from this, so
    ``https://a/`` and ``https://a`` give the same tokens and rules.
    """
    if not isinstance(url, str) or not url.strip():
        raise PlanError("a base URL must be a non-empty string")
    return url.strip().rstrip("/")


def destination_url(access_base, device):
    """The access URL of one device's log topic: ``<base>/session/<device>-log``."""
    return f"{normalise_base(access_base)}/session/{device}-log"


def _urllib_open(url, data=None, method="GET", headers=None, timeout=10.0, **_ignored):
    """``open_url``'s calling convention on the standard library (no redirects followed)."""
    body = None if data is None else data.encode("utf-8")
    request = Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 (the plan's URL)
    return urlopen(request, timeout=timeout)  # noqa: S310


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
        self._open = opener or open_url or _urllib_open

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


def apply_rules(host, wanted, absent_ids, purge, check_mode=False):
    """Bring the host's rules to ``wanted`` (posting only what differs) and say what changed.

    Returns ``(current, after, add, update, remove)``; ``after`` is predicted in check mode.
    """
    current = host.list()
    add, update, remove = plan(current, wanted, absent_ids, purge)
    after = dict(current)
    for rule in add + update:
        after[rule["id"]] = rule
    for rule_id in remove:
        after.pop(rule_id, None)
    if not check_mode:
        for rule in add + update:
            host.put(rule)
        for rule_id in remove:
            host.delete(rule_id)
    return current, after, add, update, remove


# -- the host plan --------------------------------------------------------------------------------
def build_plan(devices, access_base, **options):
    """The host plan: every fact about the devices that the roles, units and scripts derive from.

    ``devices`` is a list of expanded device names; ``options``: ``relay_port`` (DEFAULT_PORT),
    ``config_dir`` (/etc/practable), ``single_process`` (False), ``stream_base`` and ``api_url``
    (empty: on loopback at the relay port). Raises PlanError for invalid input.
    """
    unknown = set(options) - {"relay_port", "config_dir", "single_process", "stream_base", "api_url"}
    if unknown:
        raise PlanError("unknown plan option(s): " + ", ".join(sorted(unknown)))
    relay_port = options.get("relay_port", DEFAULT_PORT)
    config_dir = options.get("config_dir") or "/etc/practable"
    stream_base = options.get("stream_base") or ""
    api_url = options.get("api_url") or ""
    try:
        port = int(relay_port)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"relay port {relay_port!r} is not a number") from exc
    if not 0 < port < 65536:
        raise PlanError(f"relay port {port} is outside 1-65535")
    if not isinstance(config_dir, str) or not config_dir.startswith("/"):
        raise PlanError(f"config_dir {config_dir!r} must be an absolute path")
    config_dir = config_dir.rstrip("/") or "/"
    base = normalise_base(access_base)
    if not URL_RE.match(base):
        raise PlanError(f"access base {base!r} is not an http(s) or ws(s) URL")
    api = normalise_base(api_url) if api_url else f"http://127.0.0.1:{port}"
    if not re.match(r"^https?://[^/\s]+$", api):
        raise PlanError(f"relay API URL {api!r} must be http(s)://host:port")
    streams = normalise_base(stream_base) if stream_base else f"ws://127.0.0.1:{port}/ws"
    if not re.match(r"^wss?://[^/\s]+", streams):
        raise PlanError(f"stream base {streams!r} must be a ws(s):// URL")
    if not isinstance(devices, (list, tuple)):
        raise PlanError("devices must be a list of names")
    single = bool(options.get("single_process", False))
    entries = []
    seen = set()
    for device in devices:
        if not isinstance(device, str) or not DEVICE_RE.match(device):
            raise PlanError(f"device name {device!r} must match {DEVICE_RE.pattern}")
        if device in seen:
            raise PlanError(f"device {device!r} is listed twice")
        seen.add(device)
        entries.append(
            {
                "id": device,
                "stream": device,
                "destination": destination_url(base, device),
                "access_file": f"{config_dir}/log.access.{device}",
                "token_file": f"{config_dir}/log.token.{device}",
                "stream_url": f"{streams}/{device}",
                "logger_unit": ALL_UNIT if single else f"analytics-logger@{device}.service",
            }
        )
    per_device = [f"analytics-logger@{e['id']}.service" for e in entries]
    return {
        "format": PLAN_FORMAT,
        "api_url": api,
        "access_base": base,
        "stream_base": streams,
        "config_dir": config_dir,
        "devices": entries,
        "loggers": {
            "mode": "single" if single else "per-device",
            # what is enabled and started (in this order), what one restart goes through
            "units": [ALL_UNIT] if single else [*per_device, TARGET],
            "group": ALL_UNIT if single else TARGET,
            # the other mode's units: stopped and disabled
            "other": [TARGET, *per_device] if single else [ALL_UNIT],
        },
    }


def _read_small(path, what):
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise PlanError(f"{what} {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise PlanError(f"{what} {path} is larger than {MAX_FILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{what} {path} is not UTF-8") from exc


def check_plan(data):
    """Raise PlanError unless ``data`` has the plan's shape; return it."""
    if not isinstance(data, dict):
        raise PlanError("the plan is not a JSON object")
    if data.get("format") != PLAN_FORMAT:
        raise PlanError(f"plan format {data.get('format')!r} is not {PLAN_FORMAT}")
    api = data.get("api_url")
    if not isinstance(api, str) or not re.match(r"^https?://[^/\s]+$", api):
        raise PlanError(f"plan api_url {api!r} must be http(s)://host:port")
    devices = data.get("devices")
    if not isinstance(devices, list):
        raise PlanError("plan devices is not a list")
    for index, entry in enumerate(devices):
        if not isinstance(entry, dict):
            raise PlanError(f"plan devices[{index}] is not an object")
        device = entry.get("id")
        if not isinstance(device, str) or not DEVICE_RE.match(device):
            raise PlanError(f"plan devices[{index}]: id {device!r} must match {DEVICE_RE.pattern}")
        if not URL_RE.match(str(entry.get("destination") or "")):
            raise PlanError(f"{device}: destination {entry.get('destination')!r} is not an http(s)/ws(s) URL")
        token_file = entry.get("token_file")
        if not isinstance(token_file, str) or not token_file.startswith("/"):
            raise PlanError(f"{device}: token_file {token_file!r} must be an absolute path")
    return data


def load_plan(path):
    """The plan written on the host, checked."""
    text = _read_small(path, "plan")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"plan {path} is not JSON: {exc}") from exc
    return check_plan(data)


def rules_from_plan(data):
    """(rules, problems): the wanted rule of each device, its token read from the token file.

    A device whose token cannot be read is a problem (named with the device); the others still count.
    """
    rules = []
    problems = []
    for entry in check_plan(data)["devices"]:
        try:
            token = _read_small(entry["token_file"], "token file").strip()
        except PlanError as exc:
            problems.append(f"{entry['id']}: {exc}")
            continue
        if not token or any(c.isspace() for c in token):
            problems.append(f"{entry['id']}: token file {entry['token_file']} is empty or holds whitespace")
            continue
        rules.append(
            normalise_rule(
                {
                    "id": entry["id"],
                    "stream": entry.get("stream") or entry["id"],
                    "destination": entry["destination"],
                    "token": token,
                }
            )
        )
    return rules, problems
