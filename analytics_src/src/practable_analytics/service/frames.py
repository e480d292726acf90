"""Incremental parser for the frames a websocket server sends (RFC 6455 section 5).

websocket-client does the handshake and all sending; reading uses this parser instead of its
``recv_data``, which makes two or three small socket reads and several Python calls per frame. Here
one socket read of up to 256 KiB yields every complete frame in it, so a burst of small messages costs
about one slice and a few integer operations each. Fragmented messages are reassembled; control
frames are passed up (ping, close) or dropped (pong). Anything RFC 6455 forbids a server to send raises
ProtocolError, and the reader reconnects.
"""

from typing import List, Optional, Tuple

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

Frame = Tuple[int, bytes]


class ProtocolError(ValueError):
    """The server broke the websocket protocol (or sent a message above the size limit)."""


def _unmask(payload: bytes, key: bytes) -> bytes:
    # Servers must not mask; tolerated anyway (cheap, and more useful than dropping the connection).
    n = len(payload)
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")


class FrameParser:
    """Feed it received bytes; it returns complete messages as (opcode, payload)."""

    def __init__(self, max_message: int = 16 * 1024 * 1024) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self._pos = 0
        self._frag_opcode: Optional[int] = None
        self._frag_parts: List[bytes] = []
        self._frag_size = 0

    def feed(self, data: bytes) -> List[Frame]:
        buf = self._buf
        buf += data
        out: List[Frame] = []
        pos = self._pos
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            masked = b1 & 0x80
            if masked:
                head += 4
            if b0 & 0x70:
                raise ProtocolError("reserved bits set")
            if length > self.max_message:
                raise ProtocolError(f"frame of {length} bytes exceeds the {self.max_message} byte limit")
            start = pos + head
            stop = start + length
            if stop > end:
                break
            payload = bytes(buf[start:stop])
            if masked:
                payload = _unmask(payload, bytes(buf[start - 4 : start]))
            pos = stop
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode == OP_TEXT or opcode == OP_BINARY:  # noqa: PLR1714 (hot path: no tuple)
                if self._frag_opcode is not None:
                    raise ProtocolError("new message inside a fragmented one")
                if fin:
                    out.append((opcode, payload))
                else:
                    self._frag_opcode = opcode
                    self._frag_parts = [payload]
                    self._frag_size = length
            elif opcode == OP_CONT:
                if self._frag_opcode is None:
                    raise ProtocolError("continuation frame without a message")
                self._frag_size += length
                if self._frag_size > self.max_message:
                    raise ProtocolError(f"message exceeds the {self.max_message} byte limit")
                self._frag_parts.append(payload)
                if fin:
                    out.append((self._frag_opcode, b"".join(self._frag_parts)))
                    self._frag_opcode = None
                    self._frag_parts = []
                    self._frag_size = 0
            elif opcode in (OP_CLOSE, OP_PING, OP_PONG):
                if not fin or length > 125:
                    raise ProtocolError("fragmented or oversized control frame")
                if opcode != OP_PONG:
                    out.append((opcode, payload))
            else:
                raise ProtocolError(f"unknown opcode {opcode}")
        if pos == end:
            del buf[:]
            pos = 0
        elif pos >= 1 << 20:
            del buf[:pos]
            pos = 0
        self._pos = pos
        return out
