"""Length-prefixed frames for request/response streams.

A stream carries request/response pairs one after the other: the caller writes one request frame
and reads one response frame, and may then send the next request on the same stream. Either side
ends the stream by closing it at a frame boundary (`read_frame_or_eof` returns None there).

    frame    = length (4 bytes, big-endian, unsigned) || body        length = len(body)
    request  body = payload
    response body = status (1 byte) || payload
                    status 0 = OK     payload = the handler's answer
                    status 1 = ERROR  payload = UTF-8 reason (at most ERROR_REASON_BYTES_MAX)

The reader checks the announced length against the bound before reading the body, so a peer can
never make us buffer more than the bound. `encode_*`/`decode_*` are pure; `read_frame`,
`read_frame_or_eof` and `write_frame` are the only functions that touch a stream.
"""

from __future__ import annotations

import enum
from typing import Protocol

from p2p.errors import P2PError

LENGTH_PREFIX_BYTES = 4
# An error reason is a short diagnostic for logs, never data: 256 bytes is plenty and keeps a
# hostile peer from using error frames as a side channel.
ERROR_REASON_BYTES_MAX = 256
# Read chunk: bounds one read's allocation (the muxer hands out at most what it has buffered).
_READ_CHUNK_BYTES = 64 * 1024


class Status(enum.IntEnum):
    """Status byte of a response frame."""

    OK = 0
    ERROR = 1


class FrameError(P2PError):
    """The bytes on the stream are not a valid frame (too long, truncated, bad status). The peer
    that sent them broke the protocol: drop the stream and penalise it."""


class FrameTooLarge(FrameError):
    """The frame announced a body above the bound."""

    def __init__(self, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"frame of {size_bytes} bytes is above the limit of {max_bytes} bytes")
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class FrameTruncated(FrameError):
    """The stream ended inside a frame."""


class ReadableStream(Protocol):
    """What `read_frame` needs from a stream: `read(n)` returns 1..n bytes, or raises at EOF."""

    async def read(self, n: int | None = None) -> bytes: ...


class WritableStream(Protocol):
    """What `write_frame` needs from a stream."""

    async def write(self, data: bytes) -> None: ...


def encode_frame(body: bytes) -> bytes:
    """Length prefix + body. Raises ValueError if the body cannot be framed (over 4 GiB)."""
    if len(body) >= 1 << (8 * LENGTH_PREFIX_BYTES):
        raise ValueError("frame body too long for a 4-byte length")
    return len(body).to_bytes(LENGTH_PREFIX_BYTES, "big") + body


def encode_response_ok(payload: bytes) -> bytes:
    """A complete OK response frame."""
    return encode_frame(bytes([Status.OK]) + payload)


def encode_response_error(reason: str) -> bytes:
    """A complete ERROR response frame; the reason is truncated to ERROR_REASON_BYTES_MAX bytes."""
    raw = reason.encode("utf-8", errors="replace")[:ERROR_REASON_BYTES_MAX]
    return encode_frame(bytes([Status.ERROR]) + raw)


def decode_response(body: bytes) -> tuple[Status, bytes | str]:
    """Split a response body into (OK, payload bytes) or (ERROR, reason text).

    Raises FrameError on an empty body, an unknown status or an over-long error reason."""
    if not body:
        raise FrameError("empty response frame")
    try:
        status = Status(body[0])
    except ValueError:
        raise FrameError(f"unknown response status {body[0]}") from None
    payload = body[1:]
    if status is Status.OK:
        return status, payload
    if len(payload) > ERROR_REASON_BYTES_MAX:
        raise FrameError(f"error reason of {len(payload)} bytes is above {ERROR_REASON_BYTES_MAX}")
    return status, payload.decode("utf-8", errors="replace")


def parse_length(prefix: bytes, max_bytes: int) -> int:
    """The body length announced by a 4-byte prefix. Raises FrameTooLarge above `max_bytes`."""
    if len(prefix) != LENGTH_PREFIX_BYTES:
        raise FrameTruncated(f"length prefix of {len(prefix)} bytes")
    size = int.from_bytes(prefix, "big")
    if size > max_bytes:
        raise FrameTooLarge(size, max_bytes)
    return size


async def _read_exactly(stream: ReadableStream, n: int) -> bytes:
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        try:
            chunk = await stream.read(min(remaining, _READ_CHUNK_BYTES))
        except EOFError:
            chunk = b""
        if not chunk:
            raise FrameTruncated(f"stream ended {remaining} bytes before the end of the frame")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


async def read_frame(stream: ReadableStream, max_bytes: int) -> bytes:
    """Read one frame's body of at most `max_bytes` bytes.

    Raises FrameTooLarge (announced length above the bound: nothing more is read), FrameTruncated
    (EOF inside the frame). Stream errors of the library (reset, closed) propagate unchanged; the
    caller owns the stream and must reset it on any error."""
    size = parse_length(await _read_exactly(stream, LENGTH_PREFIX_BYTES), max_bytes)
    return await _read_exactly(stream, size) if size else b""


async def read_frame_or_eof(stream: ReadableStream, max_bytes: int) -> bytes | None:
    """Like `read_frame`, but None when the stream ends before the frame's first byte (the other
    side closed a stream it was reusing for several frames)."""
    try:
        first = await stream.read(LENGTH_PREFIX_BYTES)
    except EOFError:
        first = b""
    if not first:
        return None
    rest = LENGTH_PREFIX_BYTES - len(first)
    prefix = first + (await _read_exactly(stream, rest) if rest else b"")
    size = parse_length(prefix, max_bytes)
    return await _read_exactly(stream, size) if size else b""


async def write_frame(stream: WritableStream, body: bytes) -> None:
    """Write one frame (prefix and body in a single write)."""
    await stream.write(encode_frame(body))
