"""relay_token filter, relay_token_valid test and their shared helpers, checked with PyJWT itself."""

import time

import jwt
import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.practable.analytics.plugins.filter.relay_token import FilterModule, relay_token
from ansible_collections.practable.analytics.plugins.plugin_utils.relay_jwt import check
from ansible_collections.practable.analytics.plugins.test.relay_token_valid import (
    TestModule as RelayTestPlugin,  # renamed: pytest collects a "Test*" class
)
from ansible_collections.practable.analytics.plugins.test.relay_token_valid import (
    relay_token_valid,
)

SECRET = "not-a-real-secret-but-long-enough-for-hs384-0000"  # >= 48 bytes: no InsecureKeyLengthWarning
BASE = "https://relay-access.practable.io"
NOW = 1700000000
DAY = 86400


def decode(token, secret=SECRET):
    return jwt.decode(token, secret, algorithms=["HS256"], audience=BASE, options={"verify_exp": False})


def test_claims_exact():
    token = relay_token(SECRET, "spin30", BASE, now=NOW)
    assert decode(token) == {
        "topic": "spin30-log",
        "prefix": "session",
        "scopes": ["read", "write"],
        "aud": [BASE],
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 31536000,
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_lifetime_and_leading_slash():
    claims = decode(relay_token(SECRET, "/spin31", BASE, lifetime=3600, now=NOW))
    assert claims["topic"] == "spin31-log"
    assert claims["exp"] - claims["iat"] == 3600


def test_wrong_secret_does_not_verify():
    token = relay_token(SECRET, "spin30", BASE, now=NOW)
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, secret="other-secret-that-is-long-enough-for-hs256-111")


def test_current_time_used_by_default():
    before = int(time.time())
    claims = decode(relay_token(SECRET, "spin30", BASE))
    assert before <= claims["iat"] <= int(time.time())


@pytest.mark.parametrize(
    "args",
    [
        ("", "spin30", BASE),
        (SECRET, "", BASE),
        (SECRET, "spin30", ""),
        (SECRET, "spin30", BASE, 0),
        (SECRET, "s", BASE, "x"),
    ],
)
def test_bad_input_raises_filter_error(args):
    with pytest.raises(AnsibleFilterError, match="relay_token"):
        relay_token(*args)


def test_plugin_registration():
    assert FilterModule().filters()["relay_token"] is relay_token
    assert RelayTestPlugin().tests()["relay_token_valid"] is relay_token_valid


def test_fresh_token_is_kept():
    token = relay_token(SECRET, "spin30", BASE, now=NOW)
    assert relay_token_valid(token, SECRET, "spin30", BASE, min_days=30, now=NOW + 10 * DAY)


def test_token_near_expiry_is_rotated():
    token = relay_token(SECRET, "spin30", BASE, now=NOW)
    # 365 days lifetime: at day 335 exactly 30 days are left (kept), one second later it is rotated.
    assert relay_token_valid(token, SECRET, "spin30", BASE, min_days=30, now=NOW + 335 * DAY)
    assert not relay_token_valid(token, SECRET, "spin30", BASE, min_days=30, now=NOW + 335 * DAY + 1)
    assert not relay_token_valid(token, SECRET, "spin30", BASE, now=NOW + 400 * DAY)


@pytest.mark.parametrize(
    ("secret", "stream", "base", "reason"),
    [
        ("other-secret-that-is-long-enough-for-hs256-222", "spin30", BASE, "invalid token"),
        (SECRET, "spin31", BASE, "claim topic"),
        (SECRET, "spin30", "https://elsewhere.example", "invalid token"),
    ],
)
def test_token_for_other_claims_is_rotated(secret, stream, base, reason):
    token = relay_token(SECRET, "spin30", BASE, now=NOW)
    valid, why = check(token, secret, stream, base, min_days=1, now=NOW)
    assert not valid
    assert reason in why
    assert not relay_token_valid(token, secret, stream, base, min_days=1, now=NOW)


def test_token_with_other_prefix_or_scopes_is_rotated():
    for extra in ({"prefix": "other"}, {"scopes": ["read"]}):
        claims = {
            "topic": "spin30-log",
            "prefix": "session",
            "scopes": ["read", "write"],
            "aud": [BASE],
            "iat": NOW,
            "nbf": NOW,
            "exp": NOW + 365 * DAY,
        }
        claims.update(extra)
        token = jwt.encode(claims, SECRET, algorithm="HS256")
        assert not relay_token_valid(token, SECRET, "spin30", BASE, now=NOW)


def test_token_without_exp_or_other_algorithm_is_rotated():
    claims = {
        "topic": "spin30-log",
        "prefix": "session",
        "scopes": ["read", "write"],
        "aud": [BASE],
        "iat": NOW,
        "nbf": NOW,
    }
    assert not relay_token_valid(
        jwt.encode(claims, SECRET, algorithm="HS256"), SECRET, "spin30", BASE, now=NOW
    )
    claims["exp"] = NOW + 365 * DAY
    assert not relay_token_valid(
        jwt.encode(claims, SECRET, algorithm="HS384"), SECRET, "spin30", BASE, now=NOW
    )


@pytest.mark.parametrize("token", ["", "   ", "garbage", "a.b.c", None])
def test_missing_or_garbage_token_is_rotated(token):
    assert not relay_token_valid(token, SECRET, "spin30", BASE, now=NOW)


def test_token_with_trailing_newline_from_file_is_kept():
    token = relay_token(SECRET, "spin30", BASE, now=NOW) + "\n"
    assert relay_token_valid(token, SECRET, "spin30", BASE, now=NOW)
