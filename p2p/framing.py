"""Tagged, length-prefixed frames for request/response streams.

A stream carries many requests at once: the caller writes request frames, each tagged with a
request id of its choice, and the server answers each with a response frame carrying the same id,
in whatever order its handlers finish. Either side ends the stream by closing it at a frame
boundary (`read_frame_or_eof` returns None there).

    frame    = request id (4 bytes) || length (4 bytes) || body     big-endian, unsigned;
                                                                     length = len(body)
    request  body = payload
    response body = status (1 byte) || payload
                    status 0 = OK     payload = the handler's answer
                    status 1 = ERROR  payload = UTF-8 reason (at most ERROR_REASON_BYTES_MAX)

The reader checks the announced length against the bound before reading the body, so a peer can
never make us buffer more than the bound; the id comes first so that a refusal of an oversized
request can name it. `encode_*`/`decode_*` are pure; `read_frame` and `read_frame_or_eof` are the
only functions that read a stream.
"""

from __future__ import annotations

import enum
from typing import Protocol

from p2p.errors import P2PError

REQUEST_ID_BYTES = 4
LENGTH_PREFIX_BYTES = 4
HEADER_BYTES = REQUEST_ID_BYTES + LENGTH_PREFIX_BYTES
# Request ids wrap around: a caller never has anywhere near 2**32 requests outstanding.
REQUEST_ID_MODULUS = 1 << (8 * REQUEST_ID_BYTES)
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
    """The frame announced a body above the bound. Its body was not read: the stream cannot carry
    another frame."""

    def __init__(self, request_id: int, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"frame of {size_bytes} bytes is above the limit of {max_bytes} bytes")
        self.request_id = request_id
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class FrameTruncated(FrameError):
    """The stream ended inside a frame."""


class ReadableStream(Protocol):
    """What `read_frame` needs from a stream: `read(n)` returns 1..n bytes, or raises at EOF."""

    async def read(self, n: int | None = None) -> bytes: ...


def encode_frame(request_id: int, body: bytes) -> bytes:
    """Header + body. Raises ValueError if the id is out of range or the body cannot be framed
    (over 4 GiB)."""
    if not 0 <= request_id < REQUEST_ID_MODULUS:
        raise ValueError(f"request id {request_id} does not fit in {REQUEST_ID_BYTES} bytes")
    if len(body) >= 1 << (8 * LENGTH_PREFIX_BYTES):
        raise ValueError("frame body too long for a 4-byte length")
    return (
        request_id.to_bytes(REQUEST_ID_BYTES, "big")
        + len(body).to_bytes(LENGTH_PREFIX_BYTES, "big")
        + body
    )


def encode_response_ok(request_id: int, payload: bytes) -> bytes:
    """A complete OK response frame answering `request_id`."""
    return encode_frame(request_id, bytes([Status.OK]) + payload)


def encode_response_error(request_id: int, reason: str) -> bytes:
    """A complete ERROR response frame answering `request_id`; the reason is truncated to
    ERROR_REASON_BYTES_MAX bytes."""
    raw = reason.encode("utf-8", errors="replace")[:ERROR_REASON_BYTES_MAX]
    return encode_frame(request_id, bytes([Status.ERROR]) + raw)


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


def parse_header(header: bytes, max_bytes: int) -> tuple[int, int]:
    """(request id, body length) from an 8-byte header. Raises FrameTruncated if it is short,
    FrameTooLarge if the length is above `max_bytes`."""
    if len(header) != HEADER_BYTES:
        raise FrameTruncated(f"frame header of {len(header)} bytes")
    request_id = int.from_bytes(header[:REQUEST_ID_BYTES], "big")
    size = int.from_bytes(header[REQUEST_ID_BYTES:], "big")
    if size > max_bytes:
        raise FrameTooLarge(request_id, size, max_bytes)
    return request_id, size


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


async def read_frame(stream: ReadableStream, max_bytes: int) -> tuple[int, bytes]:
    """Read one frame: (request id, body of at most `max_bytes` bytes).

    Raises FrameTooLarge (announced length above the bound: the body is not read), FrameTruncated
    (EOF inside the frame). Stream errors of the library (reset, closed) propagate unchanged; the
    caller owns the stream and must reset it on any error."""
    request_id, size = parse_header(await _read_exactly(stream, HEADER_BYTES), max_bytes)
    return request_id, await _read_exactly(stream, size) if size else b""


async def read_frame_or_eof(stream: ReadableStream, max_bytes: int) -> tuple[int, bytes] | None:
    """Like `read_frame`, but None when the stream ends before the frame's first byte (the other
    side closed the stream)."""
    try:
        first = await stream.read(HEADER_BYTES)
    except EOFError:
        first = b""
    if not first:
        return None
    rest = HEADER_BYTES - len(first)
    header = first + (await _read_exactly(stream, rest) if rest else b"")
    request_id, size = parse_header(header, max_bytes)
    return request_id, await _read_exactly(stream, size) if size else b""
