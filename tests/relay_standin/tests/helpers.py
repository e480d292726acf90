"""Small helpers shared by the stand-in's tests (HTTP without proxies, waiting for a condition)."""

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Optional, Tuple

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    method: str, url: str, body: Optional[bytes] = None, headers: Optional[dict] = None
) -> Tuple[int, str, str]:
    """(status, content type, body text) of one request; never raises for HTTP error statuses."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=5) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")


def get_json(url: str) -> Any:
    status, _, text = call("GET", url)
    assert status == 200, (status, text)
    return json.loads(text)


def post_rule(base: str, rule: dict) -> Any:
    status, _, text = call("POST", base + "/api/destinations", json.dumps(rule).encode())
    assert status == 200, (status, text)
    return json.loads(text)


def wait_for(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_stats(running: Any, stream: str, client: Any) -> dict:
    """The stand-in's stats for one test client (keyed by the client's local ip:port)."""
    return running.stats()[stream]["clients"][client.local_name]
