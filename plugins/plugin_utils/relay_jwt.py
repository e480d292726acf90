# Copyright (c) 2026 practable.analytics contributors
# MIT License (see LICENSE or https://opensource.org/licenses/MIT)
"""Relay access tokens (SPEC section 4) and device ranges, on the controller.

Tokens are HS256 JWTs signed with the relay secret, with the claims
``topic`` (``<stream>-log``), ``prefix`` (``session``), ``scopes``
(``["read", "write"]``), ``aud`` (``[access base]``, trailing slashes removed by
relay_host.normalise_base exactly as for the destination URL), ``iat``, ``nbf`` (= iat) and ``exp``
(iat + lifetime).
"""

import re
import time

from ansible_collections.practable.analytics.plugins.module_utils.relay_host import (
    DEVICE_RE,
    PlanError,
    normalise_base,
)

try:
    import jwt

    HAS_JWT = True
    JWT_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - depends on the controller
    jwt = None
    HAS_JWT = False
    JWT_IMPORT_ERROR = _exc

#: One year, the lifetime the seed used.
DEFAULT_LIFETIME = 31536000
RANGE_RE = re.compile(r"^([A-Za-z0-9-]*?)([0-9]+)\.\.([A-Za-z0-9-]*?)([0-9]+)$")
#: Largest range a single item may expand to (catches typos such as spin1..spin1000000).
MAX_RANGE = 10000


class RelayTokenError(ValueError):
    """Invalid input to the token or device-range helpers."""


def _require_jwt():
    if not HAS_JWT:
        raise RelayTokenError("the PyJWT library is required on the controller: pip install 'PyJWT>=2,<3'")


def _check_text(name, value):
    if not isinstance(value, str) or not value:
        raise RelayTokenError(f"{name} must be a non-empty string")


def expected_claims(stream, access_base):
    """The claims other than times a token for ``stream`` must carry."""
    _check_text("stream", stream)
    _check_text("access_base", access_base)
    try:
        audience = normalise_base(access_base)
    except PlanError as exc:
        raise RelayTokenError(str(exc)) from exc
    return {
        "topic": stream.lstrip("/") + "-log",
        "prefix": "session",
        "scopes": ["read", "write"],
        "aud": [audience],
    }


def mint(secret, stream, access_base, lifetime=DEFAULT_LIFETIME, now=None):
    """A signed token for ``stream`` valid from ``now`` for ``lifetime`` seconds."""
    _require_jwt()
    _check_text("secret", secret)
    try:
        lifetime = int(lifetime)
    except (TypeError, ValueError) as exc:
        raise RelayTokenError("lifetime must be an integer number of seconds") from exc
    if lifetime <= 0:
        raise RelayTokenError("lifetime must be positive")
    if now is None:
        now = time.time()
    try:
        iat = int(now)
    except (TypeError, ValueError) as exc:
        raise RelayTokenError("now must be a Unix time in seconds") from exc
    claims = expected_claims(stream, access_base)
    claims.update({"iat": iat, "nbf": iat, "exp": iat + lifetime})
    token = jwt.encode(claims, secret, algorithm="HS256")
    if isinstance(token, bytes):  # PyJWT 1.x
        token = token.decode("ascii")
    return token


def check(token, secret, stream, access_base, min_days=30, now=None):  # noqa: PLR0917
    """(valid, reason): whether ``token`` is signed by ``secret`` for the same claims with at least
    ``min_days`` days left at ``now``."""
    _require_jwt()
    _check_text("secret", secret)
    if not isinstance(token, str) or not token.strip():
        return False, "no token"
    if now is None:
        now = time.time()
    want = expected_claims(stream, access_base)
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            audience=want["aud"][0],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["exp", "iat", "nbf", "aud"],
            },
        )
    except jwt.PyJWTError as exc:
        return False, f"invalid token: {exc}"
    for key in ("topic", "prefix"):
        if claims.get(key) != want[key]:
            return False, f"claim {key} is {claims.get(key)!r}, wants {want[key]!r}"
    scopes = claims.get("scopes")
    if not isinstance(scopes, list) or sorted(scopes) != sorted(want["scopes"]):
        return False, "claim scopes is {!r}, wants {!r}".format(scopes, want["scopes"])
    aud = claims.get("aud")
    if aud != want["aud"]:
        return False, "claim aud is {!r}, wants {!r}".format(aud, want["aud"])
    try:
        exp = int(claims["exp"])
        nbf = int(claims["nbf"])
    except (TypeError, ValueError):
        return False, "exp or nbf is not a number"
    if nbf > now + 60:
        return False, f"not valid before {nbf}"
    left = exp - now
    if left < float(min_days) * 86400:
        return False, f"expires in {left / 86400.0:.1f} days, fewer than {min_days}"
    return True, "valid for %.1f more days" % (left / 86400.0)


def _expand_one(item):
    if not isinstance(item, str):
        raise RelayTokenError(f"device {item!r} is not a string")
    item = item.strip()
    if ".." in item:
        match = RANGE_RE.match(item)
        if not match:
            raise RelayTokenError(f"device range {item!r} must look like spin30..spin41")
        prefix, first, prefix2, last = match.groups()
        if prefix2 and prefix2 != prefix:
            raise RelayTokenError(f"device range {item!r}: both ends must share the prefix {prefix!r}")
        start, end = int(first), int(last)
        if start > end:
            raise RelayTokenError(f"device range {item!r}: start {start} is after end {end}")
        if end - start + 1 > MAX_RANGE:
            raise RelayTokenError(f"device range {item!r} is longer than {MAX_RANGE} devices")
        width = len(first) if first.startswith("0") and len(first) > 1 else 0
        names = [prefix + str(n).zfill(width) for n in range(start, end + 1)]
        if not prefix:
            raise RelayTokenError(f"device range {item!r} needs a name prefix")
        return names
    if not DEVICE_RE.match(item):
        raise RelayTokenError(f"device name {item!r} must match [A-Za-z0-9][A-Za-z0-9-]*")
    return [item]


def expand_devices(devices):
    """Names from a string or list mixing names and ranges (``spin30..spin41``), in order, unique."""
    if isinstance(devices, str):
        devices = [d for d in re.split(r"[,\s]+", devices) if d]
    if not isinstance(devices, (list, tuple)):
        raise RelayTokenError(f"devices must be a string or a list, not {type(devices).__name__}")
    out = []
    seen = set()
    for item in devices:
        for name in _expand_one(item):
            if name not in seen:
                seen.add(name)
                out.append(name)
    return out
