"""Request channels: one stream per (peer, protocol), many requests in flight on it at once.

Opening a stream costs a muxer round trip and a multistream-select negotiation with the other
side, and under load that negotiation is where requests ran out of time (the 300-peer
measurements in simnet/README.md: 97 % of the committee timeouts while opening the stream),
while requests on streams already open were answered. So the caller keeps one stream per peer and
protocol and sends every request on it, tagged with a request id (p2p/framing.py); the server
answers each request when its handler is done, in any order; the channel's reader hands each
answer to the request that waits for it.

The channel selects its protocol without waiting: its first write is the multistream-select header
and the protocol line, and requests follow at once; its reader checks the two lines the server
echoes before the first answer. The library's own selection waits for each answer: two round
trips before the first request, and under load at 300 peers more than half of the committee stream
openings failed there (timed out after 10 s, or broke), each round trip costing seconds. Any
multistream-select server (the library's too) reads pipelined lines as if it had waited. A server
that does not speak the protocol answers "na": every request on the channel fails, unreachable.

A channel has two tasks: a writer that sends queued requests one frame at a time (so a caller
cancelled mid-request never leaves half a frame on the stream, and a request whose caller left
before it went out is not sent at all), and a reader. A clean end of the stream (the server closed
it) means the server answered every request it had read, so the requests still unanswered were
never read and may be sent again on a new channel; any other end fails the requests already sent
(they may have been served) and sends the others again.

A request the server has not answered yet stays on the channel after its caller gave up, and a
request with the same bytes (a core sending a round message again after a timeout) waits for that
answer instead of going out again: on a live stream the first copy is delivered, and a second copy
would only add work to a peer that is already slow (at 300 peers two thirds of the committee
requests were such copies). Every protocol's requests are idempotent (a round message, a
transaction, a read), so sharing an answer between identical requests is safe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable

import trio
from libp2p.abc import INetStream
from libp2p.exceptions import BaseLibp2pError, ParseError
from libp2p.io.exceptions import MessageTooLarge
from libp2p.utils import encode_delim
from libp2p.utils.varint import read_varint_prefixed_bytes_limited

from p2p import framing
from p2p.config import ProtocolConfig
from p2p.errors import P2PError, PeerUnreachable, RemoteProtocolError
from p2p.metrics import HostMetrics

# Requests one channel carries at once; a server answers "busy" beyond it. Callers past it wait
# for a slot (within their own timeout).
IN_FLIGHT_MAX = 32
# Sent requests kept for their answer after every caller gave up (see the module docstring); past
# it the oldest is forgotten (its answer, if it comes, is counted late).
UNANSWERED_KEPT_MAX = 4 * IN_FLIGHT_MAX
# Closing or resetting a stream must not hold anything up.
CLOSE_TIMEOUT_S = 1.0
# multistream-select (https://github.com/multiformats/multistream-select): the header line, the
# refusal, and the longest line a server may send back while selecting.
MULTISTREAM = b"/multistream/1.0.0"
NOT_SERVED = b"na"
SELECT_LINE_MAX = 1024


@dataclasses.dataclass(slots=True, eq=False)
class _Waiter:
    data: bytes
    frame: bytes
    answered: trio.Event = dataclasses.field(default_factory=trio.Event)
    written: bool = False
    callers: int = 1
    body: bytes | None = None
    error: P2PError | None = None


class RequestChannel:
    """The caller's side of one request stream. Start `run()` in a long-lived nursery right after
    the stream is opened; `request()` from any task; `retire()` to close it once idle, `abort()`
    when its connection is gone."""

    def __init__(
        self,
        stream: INetStream,
        peer: str,
        config: ProtocolConfig,
        violation: Callable[[str], RemoteProtocolError],
        metrics: HostMetrics,
    ) -> None:
        """`violation(reason)` penalises the peer for a broken answer and returns the error to
        raise to the waiting callers; `metrics.rpc_late_answers` counts answers nobody waits
        for."""
        self.peer = peer
        self.config = config
        self.last_used_s = trio.current_time()
        self.ended = False
        self.closed = trio.Event()  # set once run() has finished
        self._metrics = metrics
        self._stream = stream
        self._violation = violation
        self._pending: dict[int, _Waiter] = {}
        # Written and unanswered, by request bytes: callers of an identical request join these.
        self._unanswered: dict[bytes, _Waiter] = {}
        self._queue_send, self._queue_recv = trio.open_memory_channel[int](math.inf)
        self._slots = trio.Semaphore(IN_FLIGHT_MAX)
        self._next_id = 0
        self._scope = trio.CancelScope()
        self._clean = False  # the stream ended at a frame boundary, or we retired it
        self._refused = False  # the server does not serve the protocol: fail every request
        # Makes the error for the requests already sent, when the stream fails (one per caller).
        self._failure: Callable[[], P2PError] = lambda: PeerUnreachable(peer, "stream ended")

    @property
    def busy(self) -> bool:
        """Callers are waiting for answers."""
        return any(waiter.callers for waiter in self._pending.values())

    def usable(self, now_s: float, idle_s: float) -> bool:
        """Open, and either busy or used within `idle_s` (a server closes a stream left idle, so
        the caller stops sending on it well before)."""
        return not self.ended and (self.busy or now_s - self.last_used_s < idle_s)

    def retire(self) -> None:
        """Close an idle channel cleanly (the server sees the end and closes its side)."""
        if not self.ended and not self.busy:
            self._clean = True
            self.abort()

    def abort(self) -> None:
        """End the channel now (its connection is gone): reset the stream and fail the requests
        already sent (their fate is unknown); the ones not sent yet go out on a new channel."""
        self.ended = True
        self._scope.cancel()

    async def request(self, data: bytes, stage: list[str]) -> bytes | None:
        """Send one request and return the response body (status byte + payload).

        None: the channel ended before the server read the request; send it again on a new
        channel. Raises PeerUnreachable (the stream broke after the request went out: it may or
        may not have been served) or the `violation` error (the answer broke the protocol).
        `stage[0]` says where the caller is: "write" (waiting for a slot or the writer) then
        "answer" (sent). A request identical to one sent and not answered yet waits for that
        one's answer (module docstring)."""
        sent = self._unanswered.get(data)
        if sent is not None and not self.ended:
            self._metrics.rpc_requests_joined[self.config.protocol_id] += 1
            stage[0] = "answer"
            sent.callers += 1
            self.last_used_s = trio.current_time()
            try:
                await sent.answered.wait()
            finally:
                sent.callers -= 1
            return self._outcome(sent)
        stage[0] = "write"
        async with self._slots:
            if self.ended:
                return None
            request_id = self._next_id
            self._next_id = (request_id + 1) % framing.REQUEST_ID_MODULUS
            waiter = _Waiter(data, framing.encode_frame(request_id, data))
            self._pending[request_id] = waiter
            self.last_used_s = trio.current_time()
            try:
                self._queue_send.send_nowait(request_id)
                await waiter.answered.wait()
            finally:
                waiter.callers -= 1
                if waiter.written:
                    stage[0] = "answer"
                else:
                    self._pending.pop(request_id, None)  # not sent: the writer skips it
        return self._outcome(waiter)

    @staticmethod
    def _outcome(waiter: _Waiter) -> bytes | None:
        if waiter.body is not None:
            return waiter.body
        if waiter.error is not None:
            raise waiter.error
        return None

    def _sent(self, request_id: int, waiter: _Waiter) -> None:
        """`waiter`'s request goes out: it stays (for identical requests) until answered. Past
        UNANSWERED_KEPT_MAX the oldest request nobody waits for any more is forgotten."""
        waiter.written = True
        self._unanswered[waiter.data] = waiter
        if len(self._unanswered) > UNANSWERED_KEPT_MAX:
            for old_id, old in list(self._pending.items()):
                if old.written and not old.callers and old_id != request_id:
                    del self._pending[old_id]
                    self._forget(old)
                    break

    def _forget(self, waiter: _Waiter) -> None:
        if self._unanswered.get(waiter.data) is waiter:
            del self._unanswered[waiter.data]

    async def run(self) -> None:
        """Write and read until the stream ends or the channel is retired; then answer every
        waiting request (None or an error, see `request`) and close or reset the stream."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, nursery.cancel_scope)
                    await self._read_loop()
                    nursery.cancel_scope.cancel()
        finally:
            self.ended = True
            for waiter in self._pending.values():
                if (waiter.written and not self._clean) or self._refused:
                    waiter.error = self._failure()
                waiter.answered.set()
            self._pending.clear()
            self._unanswered.clear()
            await end_stream(self._stream, clean=self._clean)
            self.closed.set()

    async def _write_loop(self, scope: trio.CancelScope) -> None:
        protocol = self.config.protocol_id.encode()
        try:
            await self._stream.write(encode_delim(MULTISTREAM) + encode_delim(protocol))
            async for request_id in self._queue_recv:
                waiter = self._pending.get(request_id)
                if waiter is None:
                    continue  # its caller left before it went out: do not send it
                # Before the write: its answer may be read before the write call returns. A
                # failed write then fails the request rather than resending it (part of it may
                # have gone out).
                self._sent(request_id, waiter)
                await self._stream.write(waiter.frame)
        except (BaseLibp2pError, OSError) as exc:
            self._broken(exc)
            scope.cancel()

    async def _read_loop(self) -> None:
        bound = self.config.max_response_bytes + 1  # +1: the status byte
        try:
            if not await self._selected():
                return
            while True:
                frame = await framing.read_frame_or_eof(self._stream, bound)
                if frame is None:
                    self._clean = True
                    return
                request_id, body = frame
                waiter = self._pending.get(request_id)
                if waiter is None or not waiter.written:
                    self._metrics.rpc_late_answers[self.config.protocol_id] += 1
                    continue
                del self._pending[request_id]
                self._forget(waiter)
                if not waiter.callers:
                    self._metrics.rpc_late_answers[self.config.protocol_id] += 1
                waiter.body = body
                waiter.answered.set()
                self.last_used_s = trio.current_time()
        except framing.FrameError as exc:
            error = self._violation(f"{self.config.protocol_id}: {exc}")
            self._failure = lambda: RemoteProtocolError(error.peer, error.reason, error.penalty)
        except (BaseLibp2pError, OSError) as exc:
            self._broken(exc)

    async def _selected(self) -> bool:
        """Read the server's two selection lines: the header, then our protocol echoed. False
        (with the failure set) if the server refused the protocol or broke the exchange."""
        protocol = self.config.protocol_id.encode()
        try:
            for expected in (MULTISTREAM, protocol):
                line = await read_varint_prefixed_bytes_limited(self._stream, SELECT_LINE_MAX)
                if line == NOT_SERVED + b"\n" and expected == protocol:
                    self._metrics.rpc_stream_failures[(self.config.protocol_id, "not-served")] += 1
                    self._refused = True
                    self._failure = lambda: PeerUnreachable(
                        self.peer, f"the peer does not serve {self.config.protocol_id}"
                    )
                    return False
                if line != expected + b"\n":
                    raise ParseError(f"expected {expected!r}, got {line[:64]!r}")
        except (ParseError, MessageTooLarge) as exc:
            error = self._violation(f"{self.config.protocol_id}: selection: {exc}")
            self._refused = True
            self._failure = lambda: RemoteProtocolError(error.peer, error.reason, error.penalty)
            return False
        return True

    def _broken(self, exc: BaseException) -> None:
        reason = f"stream failed: {exc!r}"
        self._failure = lambda: PeerUnreachable(self.peer, reason)


async def end_stream(stream: INetStream, *, clean: bool) -> None:
    """Close `stream` (clean: the other side reads the end) or reset it, without raising and
    within CLOSE_TIMEOUT_S, even in a cancelled scope."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(CLOSE_TIMEOUT_S),
        contextlib.suppress(BaseLibp2pError, OSError),
    ):
        await (stream.close() if clean else stream.reset())
