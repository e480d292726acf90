"""Soak/fuzz: 100,000 mixed valid and invalid frames through the service's own pipeline (reader ->
inbox -> worker -> Handler -> Store, answers through the paced sender) over a real socket.

The frames come from a small websocket server that pushes them as fast as TCP allows (no lossy relay
in between), so every frame must come out as exactly one stored event. Deselect with -m "not soak".
"""

import json
import random
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from service_helpers import SPINNER_LOGS, FramePusher, analytics, dumps, query, request

from practable_analytics.experiments import Registry
from practable_analytics.service.config import ServeConfig, StreamConfig
from practable_analytics.service.processing import HandlerProcessor
from practable_analytics.service.runner import Service

pytestmark = pytest.mark.soak

N_FRAMES = 100_000
TEXT, BINARY = 0x1, 0x2
ODD = (
    '{"type": "analytics", "user": 7, "t": "x", "payload": 1}',
    "[]",
    "null",
    "3",
    '{"user": "\\ud800"}',
    "{" * 100,
    '"' + "z" * 500,
    "\u00e9\u4e2d\U0001f600",
)


def build_frames(rng: random.Random) -> Tuple[List[Tuple[int, bytes]], Dict[str, Any]]:
    frames: List[Tuple[int, bytes]] = []
    expect: Dict[str, Any] = {"analytics_t": [], "log": 0, "feedback": 0, "requests": 0}
    users = [f"user-{i:03d}" for i in range(40)]
    t = 1_700_000_000_000
    while len(frames) < N_FRAMES:
        t += 1
        r = rng.random()
        user = rng.choice(users)
        if r < 0.55:
            frames.append((TEXT, dumps(analytics(t, rng.choice(SPINNER_LOGS), user=user)).encode()))
            expect["analytics_t"].append(t)
        elif r < 0.65:
            msg = {"user": user, "t": t, "exp": "spinner", "course": "engdes1", "type": "log",
                   "payload": {"event": "click", "n": rng.randrange(1000)}}  # fmt: skip
            frames.append((TEXT, dumps(msg).encode()))
            expect["log"] += 1
        elif r < 0.70:
            state = rng.choice(["Engaged", "Bored", "Curious"])
            msg = {"user": user, "t": t, "exp": "spinner", "course": "engdes1", "type": "feedback",
                   "payload": {"state": state, "subject": "UI"}}  # fmt: skip
            frames.append((TEXT, dumps(msg).encode()))
            expect["feedback"] += 1
        elif r < 0.715:
            frames.append((TEXT, dumps(request("indicators", user=user, t=t)).encode()))
            expect["requests"] += 1
        elif r < 0.80:  # a valid message with random bytes flipped, cut or duplicated
            data = bytearray(dumps(analytics(t, "voltage", user=user)).encode())
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(len(data))]
            frames.append((TEXT, bytes(data)))
        elif r < 0.85:
            frames.append((BINARY, bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))))
        elif r < 0.90:
            odd = rng.choice(ODD)
            frames.append((TEXT, odd.encode("utf-8", "surrogatepass")))
        elif r < 0.99995:
            frames.append((TEXT, b"\xff\xfe\xfd" + bytes(rng.randrange(128) for _ in range(20))))
        else:
            frames.append((TEXT, b'{"big": "' + b"q" * (1024 * 1024) + b'"}'))
    return frames, expect


def test_soak_100k_mixed_frames_all_stored_no_crash(tmp_path: Path) -> None:
    rng = random.Random(20240101)
    frames, expect = build_frames(rng)
    pusher = FramePusher(frames)
    db = tmp_path / "soak.db"
    config = ServeConfig(
        streams=(StreamConfig("soak", pusher.url),), db=db, send_spacing_s=0.0005, status_interval_s=0.2,
        status_file=tmp_path / "status.json",
        request_rate=1e9, request_burst=1e9,  # 100k frames in seconds: far above any dashboard's budget
    )  # fmt: skip
    registry = Registry.load()
    service = Service(config, lambda: HandlerProcessor(db, registry))
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,))
    t0 = time.monotonic()
    service.start()
    runner.start()
    try:
        deadline = t0 + 90
        while service.worker_stats.messages < len(frames) and time.monotonic() < deadline:
            assert service.worker.is_alive() and service.loop.is_alive()
            time.sleep(0.1)
        assert service.worker_stats.messages == len(frames)
        # answers to the valid requests (and to error-answered fuzz) go out paced; identical requests
        # waiting on the same commit are answered once (merged)
        merged = service.stream_stats[0].requests_merged
        assert service.stream_stats[0].requests + merged >= expect["requests"]
        while service.senders[0].pending() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        runner.join(10)
        pusher.close()
    elapsed = time.monotonic() - t0
    stats = service.stream_stats[0]
    assert stats.received == len(frames)
    assert service.worker_stats.errors() == {}
    assert stats.answers_sent + merged >= expect["requests"], (stats.errors(), stats.requests)
    total = query(db, "SELECT COUNT(*) FROM events")[0][0]
    assert total == len(frames)  # every frame is exactly one event (valid or invalid)
    ts = sorted(
        r[0] for r in query(db, "SELECT t FROM events WHERE type = 'analytics' AND t >= 1700000000000")
    )
    assert set(expect["analytics_t"]) <= set(ts)  # every valid analytics event stored (fuzzed ones may add)
    by_type = dict(query(db, "SELECT type, COUNT(*) FROM events GROUP BY type"))
    assert by_type["log"] >= expect["log"] and by_type["feedback"] >= expect["feedback"]
    assert by_type["invalid"] >= 0.15 * len(frames)
    assert all(s == "soak" for (s,) in query(db, "SELECT DISTINCT stream FROM events"))
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "stopped" and status["streams"]["soak"]["messages_received"] == len(frames)
    assert elapsed < 90
