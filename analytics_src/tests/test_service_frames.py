"""The websocket frame parser the readers use, against frames built by the relay stand-in's encoder."""

import random
from typing import List

import pytest
from service_helpers import relay_standin

from practable_analytics.service.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    ProtocolError,
)


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = False) -> bytes:
    return relay_standin.encode_frame(opcode, payload, mask=mask, fin=fin)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 1024 * 1024 + 3])
def test_lengths_of_every_header_form(size: int) -> None:
    payload = bytes(random.Random(size).randrange(256) for _ in range(min(size, 1000))) * (size // 1000 + 1)
    payload = payload[:size]
    assert FrameParser().feed(frame(OP_BINARY, payload)) == [(OP_BINARY, payload)]


def test_many_frames_in_one_read_and_frames_split_across_reads() -> None:
    messages = [(OP_TEXT, f'{{"n": {i}}}'.encode()) for i in range(500)] + [(OP_BINARY, b"\x00" * 70000)]
    stream = b"".join(frame(op, p) for op, p in messages)
    assert FrameParser().feed(stream) == messages
    rng = random.Random(3)
    parser = FrameParser()
    got: List[tuple] = []
    pos = 0
    while pos < len(stream):  # arbitrary read boundaries, down to one byte
        step = rng.choice([1, 2, 3, 7, 100, 5000])
        got += parser.feed(stream[pos : pos + step])
        pos += step
    assert got == messages


def test_fragmented_message_with_control_frames_between() -> None:
    data = (
        frame(OP_TEXT, b"hel", fin=False)
        + frame(OP_PING, b"p1")
        + frame(OP_CONT, b"lo ", fin=False)
        + frame(OP_PONG, b"ignored")
        + frame(OP_CONT, b"world")
        + frame(OP_CLOSE, b"\x03\xe8bye")
    )
    assert FrameParser().feed(data) == [
        (OP_PING, b"p1"),
        (OP_TEXT, b"hello world"),
        (OP_CLOSE, b"\x03\xe8bye"),
    ]


def test_masked_frames_are_unmasked() -> None:
    assert FrameParser().feed(frame(OP_TEXT, b"masked payload!", mask=True)) == [
        (OP_TEXT, b"masked payload!")
    ]


@pytest.mark.parametrize(
    "data",
    [
        frame(OP_CONT, b"x"),  # continuation without a start
        frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"),  # new message inside a fragmented one
        bytes([0x80 | 0x40 | OP_TEXT, 1]) + b"x",  # reserved bit
        bytes([0x80 | 0x3, 0]),  # unknown opcode
        frame(OP_PING, b"x", fin=False),  # fragmented control frame
        bytes([0x80 | OP_PING, 126, 0, 200]) + b"x" * 200,  # oversized control frame
    ],
)
def test_protocol_violations_raise(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameParser().feed(data)


def test_size_limit_for_frames_and_reassembled_messages() -> None:
    with pytest.raises(ProtocolError, match="limit"):
        FrameParser(max_message=1000).feed(frame(OP_TEXT, b"x" * 1001))
    parser = FrameParser(max_message=1000)
    parser.feed(frame(OP_TEXT, b"x" * 600, fin=False))
    with pytest.raises(ProtocolError, match="limit"):
        parser.feed(frame(OP_CONT, b"x" * 600))
