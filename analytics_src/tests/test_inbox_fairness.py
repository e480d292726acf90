"""The inbox seam the event loop uses (room / put_nowait_many) and its fairness: one FIFO per stream,
batches taken round-robin, a per-stream share, and what the worker holds counted against the bound."""

import logging

import pytest

from practable_analytics.service.frames import OP_TEXT
from practable_analytics.service.inbox import Inbox, Item


def items(stream: int, n: int, first: int = 0) -> list:
    return [(stream, OP_TEXT, b"m%d" % (first + i), float(first + i), float(first + i)) for i in range(n)]


def test_a_flooded_stream_does_not_delay_another_streams_messages() -> None:
    inbox = Inbox(2, max_items=100_000)
    inbox.put_nowait_many(items(0, 50_000))  # spin30's flood arrived first
    inbox.put_nowait_many(items(1, 3))  # then spin31's three events
    batch = inbox.get_batch(300, 0.1)
    assert [i for i in batch if i[0] == 1] == items(1, 3)  # in the very first batch, in order
    assert [i[3] for i in batch if i[0] == 0] == [float(k) for k in range(297)]  # flood keeps its order
    assert len(inbox) == 50_000 - 297 and inbox.pending == [50_000 - 297, 0]


def test_room_is_false_at_a_streams_share_and_the_episode_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = Inbox(2, max_items=10)  # share: 5 each
    assert inbox.stream_limit == 5
    inbox.put_nowait_many(items(0, 5))
    with caplog.at_level(logging.ERROR):
        assert inbox.room(0) is False and inbox.room(0) is False
    assert inbox.room(1) is True  # the other stream still has room
    assert caplog.text.count("inbox full") == 1
    assert inbox.snapshot()["full_episodes"] == 1
    inbox.put_nowait_many(items(0, 3, first=5))  # one read's worth past the bound: never refused
    assert inbox.pending[0] == 8
    inbox.get_batch(10, 0.1)
    assert inbox.room(0) is True
    assert inbox.snapshot()["full_wait_s"] >= 0.0


def test_what_the_worker_holds_counts_against_the_bound() -> None:
    inbox = Inbox(1, max_items=10)
    inbox.put_nowait_many(items(0, 4))
    assert inbox.room(0)
    inbox.set_held(6, 100)  # 6 received messages the worker could not commit yet
    assert not inbox.room(0)
    inbox.set_held(0, 0)
    assert inbox.room(0)
    assert inbox.snapshot()["held"] == 0


def test_put_nowait_many_after_close_is_ignored_and_room_is_false() -> None:
    inbox = Inbox(1)
    inbox.close()
    inbox.put_nowait_many(items(0, 2))
    assert len(inbox) == 0 and inbox.room(0) is False
    one: Item = (0, OP_TEXT, b"x", 0.0, 0.0)
    assert inbox.put(one) is False
