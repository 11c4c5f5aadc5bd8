"""Request/response between real hosts on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p.host.exceptions import StreamFailure

from p2p import host as host_module
from p2p.config import BackoffConfig
from p2p.errors import (
    MessageTooLarge,
    P2PError,
    PeerUnreachable,
    RemoteProtocolError,
    RequestRejected,
    RequestTimeout,
    UnknownProtocol,
)
from p2p.host import P2PHost
from p2p.identity import peer_id_of

from .swarm import DEADLINE_S, ECHO, UNSERVED, config, free_port, hosts, identity


async def echo(peer: str, data: bytes) -> bytes:
    if data == b"bad":
        raise RemoteProtocolError(peer, "bad-request", 7)
    if data == b"bug":
        raise KeyError("handler bug")
    if data.startswith(b"big"):
        return b"z" * int(data[3:])
    return data[::-1]


@asynccontextmanager
async def echo_pair(**server_options: int) -> AsyncIterator[tuple[P2PHost, P2PHost]]:
    """A server answering ECHO with `echo`, and a client that bootstraps from it."""
    async with (
        hosts(config(0, **server_options)) as (server,),
        hosts(config(1, bootstrap=(server.listen_addrs[0],))) as (client,),
    ):
        server.set_handler(ECHO, echo)
        yield server, client


def test_round_trip_and_handler_errors() -> None:
    async def main() -> None:
        async with echo_pair() as (server, client):
            with trio.fail_after(DEADLINE_S):
                assert await client.request(server.peer_id, ECHO, b"abc") == b"cba"
                assert await client.request(server.peer_id, ECHO, b"") == b""
                # A refusal: error frame, the caller loses the handler's penalty.
                with pytest.raises(RequestRejected) as info:
                    await client.request(server.peer_id, ECHO, b"bad")
                assert info.value.reason == "bad-request"
                assert server.score(client.peer_id) == pytest.approx(-7, abs=0.5)
                # A handler bug: answered, not blamed on the caller.
                with pytest.raises(RequestRejected, match="internal-error"):
                    await client.request(server.peer_id, ECHO, b"bug")
                assert server.score(client.peer_id) == pytest.approx(-7, abs=0.5)
                # Many requests at once, all on the one stream.
                results: list[bytes] = []
                async with trio.open_nursery() as nursery:
                    for n in range(20):

                        async def one(n: int = n) -> None:
                            reply = await client.request(server.peer_id, ECHO, b"%03d" % n)
                            results.append(reply)

                        nursery.start_soon(one)
                assert sorted(results) == sorted((b"%03d" % n)[::-1] for n in range(20))
            assert client.metrics.rpc_streams_opened[ECHO] == 1
            assert server.metrics.rpc_in_requests[ECHO] == 24
            assert server.metrics.rpc_rejected[(ECHO, "bad-request")] == 1
            assert client.metrics.rpc_failures[(ECHO, "rejected")] == 2

    trio.run(main)


def test_timeout_and_unreachable() -> None:
    async def main() -> None:
        release = trio.Event()

        async def stuck(peer: str, data: bytes) -> bytes:
            await release.wait()
            return b"late"

        async with (
            hosts(config(0)) as (server,),
            hosts(config(1, bootstrap=(server.listen_addrs[0],))) as (client,),
        ):
            server.set_handler(ECHO, stuck)
            with trio.fail_after(DEADLINE_S):
                await client.wait_until(lambda: server.peer_id in client.connected_peers())
                with pytest.raises(RequestTimeout) as info:
                    await client.request(server.peer_id, ECHO, b"x", timeout_s=0.3)
                assert info.value.timeout_s == 0.3
                release.set()
                # The stream survives the timeout; the late answer finds nobody and is dropped.
                while client.metrics.rpc_late_answers[ECHO] == 0:
                    assert await client.request(server.peer_id, ECHO, b"y") == b"late"
                assert client.metrics.rpc_streams_opened[ECHO] == 1
                # Nobody listens for this identity: no address, no stream.
                stranger = peer_id_of(identity(99).public)
                with pytest.raises(PeerUnreachable):
                    await client.request(stranger, ECHO, b"x", timeout_s=2.0)
                with pytest.raises(PeerUnreachable):
                    await client.request("not-a-peer-id", ECHO, b"x")
            assert client.metrics.rpc_failures[(ECHO, "timeout")] == 1
            assert client.metrics.rpc_late_answers[ECHO] == 1
            ((failed, kind),) = client.metrics.rpc_stream_failures  # the stranger's
            assert failed == ECHO
            assert kind != "timeout", kind
            # The stream opened and the request went out: the time ran out waiting for the answer.
            assert client.metrics.rpc_timeouts_at == {(ECHO, "answer"): 1}

    trio.run(main)


def test_a_request_dials_a_peer_whose_last_dial_failed() -> None:
    """py-libp2p refuses every dial to a peer for 60 s after one failed ("recently failed"); a
    request lifts that: a committee member that was unreachable for a moment is not shut out."""

    async def main() -> None:
        port = free_port()
        server_id = peer_id_of(identity(0).public)
        slow_redials = BackoffConfig(base_s=600.0, cap_s=600.0, jitter=0.0)
        client_config = config(
            1, bootstrap=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{server_id}",), reconnect=slow_redials
        )
        async with hosts(client_config) as (client,):
            with trio.fail_after(DEADLINE_S):
                # Nobody listens yet: the bootstrap dial fails (the swarm remembers it).
                await client.wait_until(lambda: client.metrics.dial_failures >= 1)
                async with hosts(config(0, port=port)) as (server,):
                    server.set_handler(ECHO, echo)
                    assert await client.request(server.peer_id, ECHO, b"abc") == b"cba"
            assert client.metrics.rpc_stream_failures == {}

    trio.run(main)


def test_a_request_sent_again_waits_for_the_answer_to_the_first_copy() -> None:
    """A core resends a round message whose request timed out; on a live stream the first copy
    was delivered, so the copy waits for its answer instead of going out again."""

    async def main() -> None:
        release = trio.Event()
        served: list[bytes] = []

        async def slow(peer: str, data: bytes) -> bytes:
            served.append(data)
            if data == b"slow":
                await release.wait()
            return data.upper()

        async with (
            hosts(config(0)) as (server,),
            hosts(config(1, bootstrap=(server.listen_addrs[0],))) as (client,),
        ):
            server.set_handler(ECHO, slow)
            with trio.fail_after(DEADLINE_S):
                with pytest.raises(RequestTimeout):
                    await client.request(server.peer_id, ECHO, b"slow", timeout_s=0.3)
                with pytest.raises(RequestTimeout):  # joined the first copy, still unanswered
                    await client.request(server.peer_id, ECHO, b"slow", timeout_s=0.3)
                # Other requests go out and are answered meanwhile.
                assert await client.request(server.peer_id, ECHO, b"other") == b"OTHER"
                answers: list[bytes] = []

                async def resend() -> None:
                    answers.append(await client.request(server.peer_id, ECHO, b"slow"))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(resend)
                    await client.wait_until(lambda: client.metrics.rpc_requests_joined[ECHO] == 2)
                    release.set()
                assert answers == [b"SLOW"]
                # Answered: the next identical request goes out again.
                assert await client.request(server.peer_id, ECHO, b"slow") == b"SLOW"
            assert served == [b"slow", b"other", b"slow"]
            assert client.metrics.rpc_requests_joined[ECHO] == 2
            assert client.metrics.rpc_late_answers[ECHO] == 0  # the join took the answer
            assert client.metrics.rpc_streams_opened[ECHO] == 1

    trio.run(main)


def test_oversized_requests_and_responses() -> None:
    async def main() -> None:
        # The server accepts 100-byte requests; the client believes 1000 is fine (a peer with a
        # different configuration). The server answers up to 1000 bytes; the client takes 100.
        server_cfg = config(0, max_request_bytes=100, max_response_bytes=1000)
        async with hosts(server_cfg) as (server,):
            client_cfg = config(
                1,
                bootstrap=(server.listen_addrs[0],),
                max_request_bytes=1000,
                max_response_bytes=100,
            )
            async with hosts(client_cfg) as (client,):
                server.set_handler(ECHO, echo)
                with trio.fail_after(DEADLINE_S):
                    with pytest.raises(MessageTooLarge):
                        await client.request(server.peer_id, ECHO, b"x" * 1001)
                    with pytest.raises(RequestRejected, match="request-too-large"):
                        await client.request(server.peer_id, ECHO, b"x" * 101)
                    assert server.score(client.peer_id) < 0
                    assert await client.request(server.peer_id, ECHO, b"big100") == b"z" * 100
                    with pytest.raises(RemoteProtocolError) as info:
                        await client.request(server.peer_id, ECHO, b"big101")
                    assert info.value.peer == server.peer_id
                    assert client.score(server.peer_id) < 0
                    # A handler answering above its own bound is a local bug: error frame.
                    client.set_handler(ECHO, echo)
                    with pytest.raises(RequestRejected, match="internal-error"):
                        await server.request(client.peer_id, ECHO, b"big500")
                assert server.metrics.rpc_failures[(ECHO, "too-large")] == 1

    trio.run(main)


def test_handler_registration_rules() -> None:
    async def main() -> None:
        async with hosts(config(0)) as (host,):
            with pytest.raises(UnknownProtocol):
                host.set_handler("/posi/unknown/1", echo)
            with pytest.raises(UnknownProtocol):
                await host.request(host.peer_id, "/posi/unknown/1", b"")
            with pytest.raises(P2PError, match="within the configured"):
                host.set_handler(ECHO, echo, max_request_bytes=10**6)
            host.set_handler(ECHO, echo, max_request_bytes=10)
            with pytest.raises(P2PError, match="already has a handler"):
                host.set_handler(ECHO, echo)

    trio.run(main)


def test_requests_reuse_one_stream_and_survive_its_close() -> None:
    async def main() -> None:
        async with echo_pair(max_request_bytes=100) as (server, client):
            with trio.fail_after(DEADLINE_S):
                for n in range(5):
                    assert await client.request(server.peer_id, ECHO, b"%d" % n) == b"%d" % n
                assert client.metrics.rpc_streams_opened[ECHO] == 1  # one negotiation for five
                assert client.metrics.rpc_streams_reused[ECHO] == 4
                # A refusal that leaves the stream unreadable: the server answers it and closes
                # the stream; a request sent meanwhile was never read, so it goes out again on a
                # new stream, answered once.
                channel = client._channels[(server.peer_id, ECHO)]
                with pytest.raises(RequestRejected, match="request-too-large"):
                    await client.request(server.peer_id, ECHO, b"x" * 101)
                assert await client.request(server.peer_id, ECHO, b"ab") == b"ba"
                assert channel.ended
                assert client.metrics.rpc_streams_opened[ECHO] == 2
            assert server.metrics.rpc_in_requests[ECHO] == 6  # nothing was served twice

    trio.run(main)


def test_one_stream_carries_requests_answered_out_of_order() -> None:
    async def main() -> None:
        arrived = trio.Event()

        async def gate(peer: str, data: bytes) -> bytes:
            if data == b"wait":
                await arrived.wait()  # answered only after the next request arrives
            else:
                arrived.set()
            return data

        async with (
            hosts(config(0)) as (server,),
            hosts(config(1, bootstrap=(server.listen_addrs[0],))) as (client,),
        ):
            server.set_handler(ECHO, gate)
            answered: list[bytes] = []

            async def ask(data: bytes) -> None:
                answered.append(await client.request(server.peer_id, ECHO, data))

            with trio.fail_after(DEADLINE_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ask, b"wait")
                    await client.wait_until(lambda: server.metrics.rpc_in_requests[ECHO] == 1)
                    nursery.start_soon(ask, b"go")
            assert answered == [b"go", b"wait"]
            assert client.metrics.rpc_streams_opened[ECHO] == 1

    trio.run(main)


def test_server_closes_a_stream_left_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_module, "STREAM_IDLE_S", 0.2)

    async def main() -> None:
        async with echo_pair() as (server, client):
            with trio.fail_after(DEADLINE_S):
                assert await client.request(server.peer_id, ECHO, b"ab") == b"ba"
                channel = client._channels[(server.peer_id, ECHO)]
                # The client retires the idle stream, or the server ends it: either way it closes.
                await channel.closed.wait()
                assert (server.peer_id, ECHO) not in client._channels
                # The next request opens a new stream.
                assert await client.request(server.peer_id, ECHO, b"cd") == b"dc"
                assert client.metrics.rpc_streams_opened[ECHO] == 2
                assert client.metrics.rpc_streams_reused[ECHO] == 0

    trio.run(main)


def test_a_request_in_flight_fails_when_the_connection_drops() -> None:
    async def main() -> None:
        release = trio.Event()

        async def stuck(peer: str, data: bytes) -> bytes:
            await release.wait()
            return data

        async with (
            hosts(config(0)) as (server,),
            hosts(config(1, bootstrap=(server.listen_addrs[0],))) as (client,),
        ):
            server.set_handler(ECHO, stuck)
            with trio.fail_after(DEADLINE_S):
                async with trio.open_nursery() as nursery:

                    async def ask() -> None:
                        # Sent and read: it may have been served, so it is not sent again.
                        with pytest.raises(PeerUnreachable):
                            await client.request(server.peer_id, ECHO, b"x", timeout_s=DEADLINE_S)

                    nursery.start_soon(ask)
                    await client.wait_until(lambda: server.metrics.rpc_in_requests[ECHO] == 1)
                    await server._disconnect(client.peer_id)
                release.set()
            assert server.metrics.rpc_in_requests[ECHO] == 1
            assert client.metrics.rpc_failures[(ECHO, "unreachable")] == 1

    trio.run(main)


def test_a_failed_opening_is_counted_by_its_class_and_cause() -> None:
    failure = StreamFailure("failed to open a stream to peer")
    failure.__cause__ = TimeoutError("slow")
    assert host_module._failure_kind(failure) == "StreamFailure <- TimeoutError"
    assert host_module._failure_kind(StreamFailure("no cause")) == "StreamFailure"


def test_a_peer_that_does_not_serve_the_protocol_fails_every_request_on_the_channel() -> None:
    """The channel selects its protocol without waiting for the server; a server without the
    protocol answers "na", and the requests already written fail at once, not by timeout."""

    async def main() -> None:
        async with echo_pair() as (server, client):
            with trio.fail_after(DEADLINE_S):
                async with trio.open_nursery() as nursery:
                    failures: list[str] = []

                    async def one(n: int) -> None:
                        with pytest.raises(PeerUnreachable) as info:
                            await client.request(server.peer_id, UNSERVED, b"%d" % n)
                        failures.append(info.value.reason)

                    for n in range(3):
                        nursery.start_soon(one, n)
                assert len(failures) == 3
                assert all(f"does not serve {UNSERVED}" in reason for reason in failures)
                # The protocol the server does serve still works, on its own stream.
                assert await client.request(server.peer_id, ECHO, b"abc") == b"cba"
            assert client.metrics.rpc_stream_failures[(UNSERVED, "not-served")] >= 1
            assert server.score(client.peer_id) == 0  # asking is no offence

    trio.run(main)
