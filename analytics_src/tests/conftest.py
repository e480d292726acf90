"""Shared fixtures for the engine tests: the packaged registry and a Handler over a real SQLite file."""

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from practable_analytics.experiments import Registry
from practable_analytics.handler import Handler
from practable_analytics.store import Store

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_LOGS = DATA / "sample_logs"
COMPARISON_LOGS = DATA / "comparison_logs"
PACKAGE_GRAPHS = Path(__file__).resolve().parents[1] / "src" / "practable_analytics" / "data" / "graphs"


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The experiments and graphs shipped in the package."""
    return Registry.load()


@pytest.fixture
def handler(tmp_path: Path, registry: Registry) -> Iterator[Handler]:
    """A Handler over a fresh database file in tmp_path (``handler.db_path`` names the file)."""
    store = Store(tmp_path / "analytics.db")
    h = Handler(store, registry)
    h.db_path = tmp_path / "analytics.db"  # type: ignore[attr-defined]
    h.store = store  # type: ignore[attr-defined]
    yield h
    store.close()


def message(
    type_: str = "analytics",
    *,
    user: str = "u1",
    t: Optional[Any] = 1000,
    exp: str = "spinner",
    course: str = "engdes1",
    hardware: Optional[str] = "spin30",
    **payload: Any,
) -> Dict[str, Any]:
    """A stream message as the lab UI / dashboard sends it."""
    m: Dict[str, Any] = {
        "user": user,
        "t": t,
        "exp": exp,
        "course": course,
        "type": type_,
        "payload": payload,
    }
    if hardware is not None:
        m["hardware"] = hardware
    if t is None:
        del m["t"]
    return m


def request(content: str, **kw: Any) -> Dict[str, Any]:
    """A dashboard request (no hardware)."""
    user = kw.pop("user", "u1")
    exp = kw.pop("exp", "spinner")
    course = kw.pop("course", "engdes1")
    return message("request", user=user, exp=exp, course=course, hardware=None, content=content, **kw)


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """The JSON objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def strict_json(obj: object) -> str:
    """JSON as a browser's JSON.parse accepts it (raises ValueError on NaN/Infinity)."""
    return json.dumps(obj, allow_nan=False)


@pytest.fixture
def host() -> Iterator[Any]:
    """A relay host stand-in on 127.0.0.1 (an ephemeral port), stopped after the test."""
    from service_helpers import relay_standin  # noqa: PLC0415 (only the service tests need it)

    running = relay_standin.start_host(port=0)
    yield running
    running.stop()
