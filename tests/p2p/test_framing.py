from __future__ import annotations

import random

import pytest
import trio

from ledger.errors import DecodeError
from p2p import framing
from p2p.pex import PexAnswer, PexPeer, build_answer, parse_answer, usable_addr


class FakeStream:
    """Hands out the buffered bytes in small, irregular chunks (as a muxer may)."""

    def __init__(self, data: bytes, chunk: int = 3) -> None:
        self._data = data
        self._chunk = chunk
        self.read_bytes = 0

    async def read(self, n: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self._data:
            raise EOFError
        take = min(n or len(self._data), self._chunk)
        out, self._data = self._data[:take], self._data[take:]
        self.read_bytes += len(out)
        return out


def _read(data: bytes, max_bytes: int) -> tuple[tuple[int, bytes], int]:
    stream = FakeStream(data)

    async def go() -> tuple[int, bytes]:
        return await framing.read_frame(stream, max_bytes)

    frame = trio.run(go)
    return frame, stream.read_bytes


def test_request_frame_round_trip_in_chunks() -> None:
    frame, _ = _read(framing.encode_frame(7, b"hello world"), 100)
    assert frame == (7, b"hello world")
    top = framing.REQUEST_ID_MODULUS - 1
    assert _read(framing.encode_frame(top, b""), 0)[0] == (top, b"")
    for bad_id in (-1, framing.REQUEST_ID_MODULUS):
        with pytest.raises(ValueError, match="request id"):
            framing.encode_frame(bad_id, b"")


def test_oversized_frame_is_refused_before_its_body_is_read() -> None:
    frame = framing.encode_frame(42, b"x" * 1000)
    with pytest.raises(framing.FrameTooLarge) as info:
        _read(frame, 999)
    # The id comes with the refusal, so that the server can answer that very request.
    assert (info.value.request_id, info.value.size_bytes, info.value.max_bytes) == (42, 1000, 999)
    stream = FakeStream(frame, chunk=4096)
    with pytest.raises(framing.FrameTooLarge):
        trio.run(framing.read_frame, stream, 10)
    assert stream.read_bytes == framing.HEADER_BYTES


def test_frames_one_after_the_other_then_a_clean_end() -> None:
    data = (
        framing.encode_frame(1, b"first")
        + framing.encode_frame(3, b"")
        + framing.encode_frame(2, b"3")
    )
    stream = FakeStream(data, chunk=2)

    async def go() -> list[tuple[int, bytes] | None]:
        return [await framing.read_frame_or_eof(stream, 10) for _ in range(4)]

    # None: ended at a frame boundary.
    assert trio.run(go) == [(1, b"first"), (3, b""), (2, b"3"), None]
    for cut in (1, 4, 6, 9):  # inside the header or the body: truncated, not a clean end
        truncated = FakeStream(framing.encode_frame(0, b"ab")[:cut])
        with pytest.raises(framing.FrameTruncated):
            trio.run(framing.read_frame_or_eof, truncated, 10)
    with pytest.raises(framing.FrameTooLarge):
        trio.run(framing.read_frame_or_eof, FakeStream(framing.encode_frame(0, b"x" * 11)), 10)


def test_truncated_frame() -> None:
    with pytest.raises(framing.FrameTruncated):
        _read(framing.encode_frame(5, b"abcdef")[:-1], 100)
    with pytest.raises(framing.FrameTruncated):
        _read(b"\x00\x00", 100)


def test_responses() -> None:
    ok = framing.encode_response_ok(9, b"payload")
    assert ok[: framing.REQUEST_ID_BYTES] == (9).to_bytes(framing.REQUEST_ID_BYTES, "big")
    assert framing.decode_response(ok[framing.HEADER_BYTES :]) == (framing.Status.OK, b"payload")
    err = framing.encode_response_error(9, "bad-request" + "x" * 1000)
    status, reason = framing.decode_response(err[framing.HEADER_BYTES :])
    assert status is framing.Status.ERROR
    assert isinstance(reason, str)
    assert len(reason) == framing.ERROR_REASON_BYTES_MAX
    for body in (b"", b"\x07abc", b"\x01" + b"x" * (framing.ERROR_REASON_BYTES_MAX + 1)):
        with pytest.raises(framing.FrameError):
            framing.decode_response(body)


def test_pex_answer_round_trip_and_filters() -> None:
    keys = [bytes([i]) * 32 for i in range(1, 40)]
    candidates = [(k, ("/ip4/127.0.0.1/tcp/1000", "/ip4/127.0.0.1/udp/9")) for k in keys]
    candidates.append((b"\x55" * 32, ("/dns4/x/udp/1",)))  # nothing usable: dropped
    answer = build_answer(candidates, 16, random.Random(3))
    assert len(answer.peers) == 16
    assert all(p.addrs == ("/ip4/127.0.0.1/tcp/1000",) for p in answer.peers)
    decoded = PexAnswer.decode(answer.encode())
    assert decoded == answer
    parsed = parse_answer(decoded)
    assert len(parsed) == 16
    assert all(pid.startswith("12D3KooW") for pid, _ in parsed)


def test_pex_answer_decoding_is_strict() -> None:
    too_many = PexAnswer.MAX_BYTES + 1
    with pytest.raises(DecodeError):
        PexAnswer.decode(b"\x00" * too_many)
    with pytest.raises(DecodeError):
        PexAnswer.decode(b"\x91\x91\x92\xc4\x01x\x90")  # a 1-byte key
    junk = PexAnswer((PexPeer(b"\x01" * 32, ("garbage", "/ip4/1.2.3.4/tcp/5/p2p/x")),))
    assert parse_answer(PexAnswer.decode(junk.encode())) == []


@pytest.mark.parametrize(
    ("addr", "ok"),
    [
        ("/ip4/127.0.0.1/tcp/4001", True),
        ("/ip6/::1/tcp/4001", True),
        ("/dns4/example.org/tcp/1", True),
        ("/ip4/127.0.0.1/udp/4001", False),
        ("/ip4/127.0.0.1/tcp/4001/ws", False),
        ("nonsense", False),
        ("/ip4/127.0.0.1/tcp/" + "1" * 200, False),
    ],
)
def test_usable_addr(addr: str, ok: bool) -> None:
    assert usable_addr(addr) is ok
