# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)
"""Re-apply the practable relay destinations after session.service (re)starts.

The relay host keeps its rules in memory only, so every start of session.service loses them.
session-rules.service runs this script after each start: it waits for the host's API (bounded retry
with backoff, not a fixed sleep), reads /etc/practable/log.access.<dev> and log.token.<dev> for every
device, reads the host's current rules and posts only the rules that differ (posting an unchanged rule
would tear its connection down). Standard library only; Python 3.8 or newer.

Exit status: 0 all rules in place, 1 the API never answered or a rule could not be applied,
2 bad configuration.
"""

import argparse
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Tuple

LOG = logging.getLogger("apply-relay-rules")
DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
URL_RE = re.compile(r"^(https?|wss?)://[^\s/]+\S*$")
MAX_FILE = 64 * 1024


class ApiError(Exception):
    """The relay host API failed or answered something unexpected."""


def request(api_url: str, method: str, path: str, body: Optional[dict], timeout: float) -> object:
    """One HTTP request to the API; the parsed JSON answer."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(api_url + path, data=data, method=method)  # noqa: S310 (operator's URL)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            text = response.read(MAX_FILE * 64).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace").strip()
        raise ApiError(f"{method} {path} answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError("{} {} failed: {}".format(method, path, getattr(exc, "reason", exc))) from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(f"{method} {path} answered something that is not JSON: {text[:200]!r}") from exc


def wait_for_api(api_url: str, timeout: float, request_timeout: float) -> None:
    """Poll /healthcheck with growing pauses until it answers or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    attempts = 0
    while True:
        attempts += 1
        try:
            request(api_url, "GET", "/healthcheck", None, request_timeout)
            LOG.info("relay host API %s ready after %d attempt(s)", api_url, attempts)
            return
        except ApiError as exc:
            last = str(exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiError(
                f"relay host API {api_url} not ready after {timeout:.0f}s ({attempts} attempts): {last}"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)


def read_small(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_FILE + 1)
    if len(text) > MAX_FILE:
        raise ValueError(f"{path} is larger than {MAX_FILE} bytes")
    return text.strip()


def devices_from(config_dir: str, devices_file: str) -> List[str]:
    """Devices named in ``devices_file`` (one a line, # comments), else every log.access.<dev> present."""
    if os.path.exists(devices_file):
        names = []
        for raw in read_small(devices_file).splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                names.append(line)
    else:
        names = sorted(n[len("log.access.") :] for n in os.listdir(config_dir) if n.startswith("log.access."))
    for name in names:
        if not DEVICE_RE.match(name):
            raise ValueError(f"device name {name!r} must match {DEVICE_RE.pattern}")
    return names


def wanted_rules(config_dir: str, devices: List[str]) -> Tuple[Dict[str, Dict[str, str]], List[str]]:
    """(rules by id, problems) from the access and token files."""
    rules = {}
    problems = []
    for device in devices:
        try:
            access = read_small(os.path.join(config_dir, "log.access." + device))
            token = read_small(os.path.join(config_dir, "log.token." + device))
        except (OSError, ValueError) as exc:
            problems.append(f"{device}: {exc}")
            continue
        if not URL_RE.match(access):
            problems.append(f"{device}: access URL {access!r} is not an http(s) or ws(s) URL")
            continue
        if any(c.isspace() for c in token):
            problems.append(f"{device}: token file holds whitespace inside the token")
            continue
        rules[device] = {"id": device, "stream": device, "destination": access, "token": token}
    return rules, problems


def same(current: object, wanted: Dict[str, str]) -> bool:
    if not isinstance(current, dict):
        return False
    return (
        str(current.get("stream") or "").lstrip("/") == wanted["stream"]
        and str(current.get("destination") or "") == wanted["destination"]
        and str(current.get("token") or "") == wanted["token"]
    )


def apply(api_url: str, rules: Dict[str, Dict[str, str]], request_timeout: float) -> int:
    """Post the rules that differ; the number of failures."""
    current = request(api_url, "GET", "/api/destinations/all", None, request_timeout)
    if not isinstance(current, dict):
        raise ApiError(f"GET /api/destinations/all answered {type(current).__name__}, not an object")
    failures = 0
    for rule_id in sorted(rules):
        rule = rules[rule_id]
        old = current.get(rule_id)
        if same(old, rule):
            LOG.info("rule %s unchanged", rule_id)
            continue
        try:
            request(api_url, "POST", "/api/destinations", rule, request_timeout)
        except ApiError as exc:
            failures += 1
            LOG.error("rule %s: %s", rule_id, exc)
            continue
        LOG.info("rule %s %s -> %s", rule_id, "added" if old is None else "updated", rule["destination"])
    return failures


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--api-url", default=os.environ.get("PRACTABLE_RELAY_API", "http://127.0.0.1:8888"))
    parser.add_argument("--config-dir", default="/etc/practable")
    parser.add_argument("--devices-file", default=None, help="default: <config-dir>/relay-rules.devices")
    parser.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait for the API")
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(name)s: %(levelname)s %(message)s", stream=sys.stderr)

    api_url = args.api_url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", api_url):
        LOG.error("--api-url %r must be http(s)://host:port", args.api_url)
        return 2
    devices_file = args.devices_file or os.path.join(args.config_dir, "relay-rules.devices")
    try:
        devices = devices_from(args.config_dir, devices_file)
    except (OSError, ValueError) as exc:
        LOG.error("cannot read the device list: %s", exc)
        return 2
    rules, problems = wanted_rules(args.config_dir, devices)
    for problem in problems:
        LOG.error("%s", problem)
    try:
        wait_for_api(api_url, args.wait_timeout, args.request_timeout)
        failures = apply(api_url, rules, args.request_timeout)
    except ApiError as exc:
        LOG.error("%s", exc)
        return 1
    LOG.info(
        "%d rule(s) in place, %d failed, %d device(s) skipped", len(rules) - failures, failures, len(problems)
    )
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
