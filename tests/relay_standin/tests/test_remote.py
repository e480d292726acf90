"""The remote relay stand-in: HS256 access tokens, single-use codes, topic fan-out."""

import base64
import hashlib
import hmac
import json
import socket
from typing import Optional

import pytest

import relay_standin as rs

from .conftest import SECRET
from .helpers import call, wait_for


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode_part(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def sign(claims: dict, secret: str = SECRET, header: Optional[dict] = None) -> str:
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64url(signature)


BASE = "https://relay-access.example"


def good_claims(now: int) -> dict:
    return {
        "topic": "spin30-log",
        "prefix": "session",
        "scopes": ["read", "write"],
        "aud": [BASE],
        "iat": now,
        "nbf": now,
        "exp": now + 100,
    }


def test_mint_token_has_the_spec_claims_and_a_valid_signature() -> None:
    token = rs.mint_token(SECRET, "spin30-log", BASE, now=1700000000)
    head, body, signature = token.split(".")
    assert decode_part(head)["alg"] == "HS256"
    assert decode_part(body) == {
        "topic": "spin30-log",
        "prefix": "session",
        "scopes": ["read", "write"],
        "aud": [BASE],
        "iat": 1700000000,
        "nbf": 1700000000,
        "exp": 1700000000 + 31536000,
    }
    expected = hmac.new(SECRET.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    assert rs.verify_token(token, SECRET, "spin30-log", BASE, now=1700000001) == ""


def test_verify_token_accepts_good_and_names_what_is_wrong() -> None:
    now = 1700000000
    assert rs.verify_token(sign(good_claims(now)), SECRET, "spin30-log", BASE, now=now) == ""
    assert rs.verify_token(sign(dict(good_claims(now), aud=BASE)), SECRET, "spin30-log", BASE, now=now) == ""
    cases = {
        "signature": (sign(good_claims(now), secret="other"), now),
        "topic": (sign(dict(good_claims(now), topic="spin31-log")), now),
        "prefix": (sign(dict(good_claims(now), prefix="expt")), now),
        "scopes": (sign(dict(good_claims(now), scopes=["read"])), now),
        "audience": (sign(dict(good_claims(now), aud=["https://elsewhere"])), now),
        "expired": (sign(good_claims(now)), now + 100),
        "valid yet": (sign(good_claims(now)), now - 1),
        "HS256": (sign(good_claims(now), header={"alg": "none"}), now),
        "nbf missing": (sign({k: v for k, v in good_claims(now).items() if k != "nbf"}), now),
        "JWT": ("not-a-token", now),
    }
    for word, (token, at) in cases.items():
        reason = rs.verify_token(token, SECRET, "spin30-log", BASE, now=at)
        assert word in reason, (word, reason)


def test_access_endpoint_refuses_bad_tokens_with_401(remote: rs.RunningRemote) -> None:
    url = remote.access_url("spin30-log")
    assert call("POST", url, b"")[0] == 401
    status, _, body = call(
        "POST", url, b"", {"Authorization": rs.mint_token("wrong", "spin30-log", remote.url)}
    )
    assert (status, body.strip()) == (401, "bad signature")
    status, _, body = call(
        "POST", url, b"", {"Authorization": rs.mint_token(SECRET, "spin31-log", remote.url)}
    )
    assert (status, body.strip()) == (401, "topic does not match")
    bearer = "Bearer " + rs.mint_token(SECRET, "spin30-log", remote.url)
    assert call("POST", url, b"", {"Authorization": bearer})[0] == 401


def test_good_token_gives_a_websocket_uri_whose_code_works_once(remote: rs.RunningRemote) -> None:
    url = remote.access_url("spin30-log")
    status, _, body = call(
        "POST", url, b"", {"Authorization": rs.mint_token(SECRET, "spin30-log", remote.url)}
    )
    assert status == 200
    uri = json.loads(body)["uri"]
    assert uri.startswith(f"ws://127.0.0.1:{remote.port}/relay/spin30-log?code=")
    client = rs.WSClient.connect(uri)
    with pytest.raises(rs.HandshakeError) as again:
        rs.WSClient.connect(uri)
    assert again.value.status == 401
    client.close()
    assert remote.access_log[-1]["result"] == "ok"


def test_code_is_bound_to_its_topic(remote: rs.RunningRemote) -> None:
    uri = remote.client_url("spin30-log").replace("/relay/spin30-log", "/relay/spin31-log")
    with pytest.raises(rs.HandshakeError) as refused:
        rs.WSClient.connect(uri)
    assert refused.value.status == 401
    with pytest.raises(rs.HandshakeError):
        rs.WSClient.connect(f"ws://127.0.0.1:{remote.port}/relay/spin30-log")


def test_explicit_access_base_is_the_required_audience() -> None:
    with rs.start_remote(SECRET, access_base=BASE) as remote:
        url = remote.access_url("spin30-log")
        assert (
            call("POST", url, b"", {"Authorization": rs.mint_token(SECRET, "spin30-log", remote.url)})[0]
            == 401
        )
        assert call("POST", url, b"", {"Authorization": rs.mint_token(SECRET, "spin30-log", BASE)})[0] == 200


def test_topic_fan_out_never_back_to_sender(remote: rs.RunningRemote) -> None:
    ui, dashboard, other = (rs.WSClient.connect(remote.client_url(t)) for t in ("t", "t", "u"))
    wait_for(lambda: len(remote.stats().get("t", {}).get("clients", {})) == 2)
    for i in range(20):  # the remote stand-in buffers per client: back-to-back sends all arrive
        ui.send_text(f"m{i}")
    assert [dashboard.recv(2) for _ in range(20)] == [f"m{i}" for i in range(20)]
    dashboard.send_binary(b"answer")
    assert ui.recv(2) == b"answer"
    for client in (ui, dashboard, other):  # nothing back to senders, nothing across topics
        with pytest.raises(socket.timeout):
            client.recv(0.2)
