"""Gossip between real hosts on 127.0.0.1 (one trio process). Waits are on host events under
trio.fail_after, never on the clock."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.utils.varint import encode_varint_prefixed

from p2p import host as host_module
from p2p.config import GossipConfig
from p2p.errors import HostNotRunning, MessageTooLarge, P2PError, UnknownTopic
from p2p.host import ACCEPT, Ignore, P2PHost, Reject, Verdict, open_host

from .swarm import DEADLINE_S, TOPIC, config, hosts


def accept_all(topic: str, peer: str, data: bytes) -> Verdict:
    return ACCEPT


def junk_is_rejected(topic: str, peer: str, data: bytes) -> Verdict:
    if data.startswith(b"junk"):
        return Reject("junk", 30, detail=f"{len(data)} bytes")
    if data.startswith(b"stale"):
        return Ignore("stale")
    return ACCEPT


async def _wait_mesh(group: list[P2PHost]) -> None:
    for h in group:
        await h.wait_until(lambda h=h: len(h.mesh_peers(TOPIC)) >= 1)


def test_gossip_reaches_all_five_hosts() -> None:
    async def main() -> None:
        hub = config(0)
        async with hosts(hub) as (first,):
            others = [config(i, bootstrap=(first.listen_addrs[0],)) for i in range(1, 5)]
            async with hosts(*others) as rest:
                group = [first, *rest]
                channels = [await h.subscribe(TOPIC, accept_all) for h in group]
                with trio.fail_after(DEADLINE_S):
                    await _wait_mesh(group)
                    for n, publisher in enumerate(group):
                        payload = b"msg-%d" % n
                        await publisher.publish(TOPIC, payload)
                        for i, channel in enumerate(channels):
                            if i == n:
                                continue  # own messages are not delivered back
                            msg = await channel.receive()
                            assert (msg.data, msg.origin) == (payload, publisher.peer_id)
                assert all(h.metrics.gossip_in_messages[TOPIC] == 4 for h in group)
                assert all(h.metrics.gossip_out_messages[TOPIC] == 1 for h in group)
                for channel in channels:
                    with pytest.raises(trio.WouldBlock):
                        channel.receive_nowait()  # nothing delivered twice

    trio.run(main)


def test_rejected_gossip_is_not_forwarded_and_a_junk_sender_is_banned() -> None:
    async def main() -> None:
        # A line a - b - c: a and c know only b and want one connection, so b is the only path.
        async with hosts(config(1, target_connections=1)) as (b,):
            boot = (b.listen_addrs[0],)
            async with hosts(
                config(0, bootstrap=boot, target_connections=1),
                config(2, bootstrap=boot, target_connections=1),
            ) as (a, c):
                channels = [await h.subscribe(TOPIC, junk_is_rejected) for h in (a, b, c)]
                with trio.fail_after(DEADLINE_S):
                    await _wait_mesh([a, b, c])
                    assert c.connected_peers() == {b.peer_id}
                    await a.publish(TOPIC, b"junk-1")
                    await a.publish(TOPIC, b"stale-1")
                    await a.publish(TOPIC, b"good-1")
                    msg = await channels[2].receive()
                    assert msg.data == b"good-1"
                    assert msg.origin == a.peer_id
                    await b.wait_until(lambda: b.metrics.gossip_ignored[TOPIC] == 1)
                # b refused junk and stale before forwarding: c never saw them.
                assert b.metrics.gossip_rejected[(TOPIC, "junk")] == 1
                assert b.score(a.peer_id) == pytest.approx(-30, abs=1.0)
                assert c.metrics.gossip_in_messages[TOPIC] == 1
                assert sum(c.metrics.gossip_rejected.values()) == 0
                assert (await channels[1].receive()).data == b"good-1"

                # Keep sending junk: below -100 b disconnects a and refuses it from then on.
                with trio.fail_after(DEADLINE_S):
                    for n in range(2, 6):
                        await a.publish(TOPIC, b"junk-%d" % n)
                    await b.wait_until(lambda: b.is_banned(a.peer_id))
                    await b.wait_until(lambda: a.peer_id not in b.connected_peers())
                    await a.wait_until(lambda: b.peer_id not in a.connected_peers())
                    # a redials its bootstrap peer with backoff; b drops it on arrival.
                    await b.wait_until(lambda: b.metrics.banned_connections_refused >= 1)
                assert b.metrics.bans == 1
                assert c.metrics.gossip_in_messages[TOPIC] == 1

    trio.run(main)


def test_oversized_gossip_rejected_both_ways() -> None:
    async def main() -> None:
        async with hosts(config(0, topic_max_bytes=100)) as (small,):
            big_cfg = config(1, bootstrap=(small.listen_addrs[0],), topic_max_bytes=1000)
            async with hosts(big_cfg) as (big,):
                await small.subscribe(TOPIC, accept_all)
                await big.subscribe(TOPIC, accept_all)
                with pytest.raises(MessageTooLarge):
                    await small.publish(TOPIC, b"x" * 101)
                with trio.fail_after(DEADLINE_S):
                    await _wait_mesh([small, big])
                    await big.publish(TOPIC, b"y" * 500)  # fine for big, too large for small
                    await small.wait_until(
                        lambda: small.metrics.gossip_rejected[(TOPIC, "too-large")] == 1
                    )
                assert small.score(big.peer_id) < 0
                assert small.metrics.gossip_in_messages[TOPIC] == 0

    trio.run(main)


def test_full_delivery_queue_drops_and_counts() -> None:
    async def main() -> None:
        async with (
            hosts(config(0, delivery_queue_len=1)) as (slow,),
            hosts(config(1, bootstrap=(slow.listen_addrs[0],))) as (fast,),
        ):
            channel = await slow.subscribe(TOPIC, accept_all)
            await fast.subscribe(TOPIC, accept_all)
            with trio.fail_after(DEADLINE_S):
                await _wait_mesh([slow, fast])
                for n in range(3):
                    await fast.publish(TOPIC, b"m%d" % n)
                await slow.wait_until(lambda: slow.metrics.gossip_in_messages[TOPIC] == 3)
            assert slow.metrics.gossip_dropped[TOPIC] == 2
            assert (await channel.receive()).data == b"m0"
            with pytest.raises(trio.WouldBlock):
                channel.receive_nowait()

    trio.run(main)


def test_gossip_misuse_errors() -> None:
    async def main() -> None:
        cfg = config(0)
        async with open_host(cfg) as host:
            with pytest.raises(UnknownTopic):
                await host.subscribe("nope", accept_all)
            with pytest.raises(UnknownTopic):
                await host.publish("nope", b"x")
            await host.subscribe(TOPIC, accept_all)
            with pytest.raises(P2PError, match="already subscribed"):
                await host.subscribe(TOPIC, accept_all)
        with pytest.raises(HostNotRunning):
            await host.publish(TOPIC, b"x")

    trio.run(main)


@pytest.mark.slow
def test_gossip_reaches_a_swarm_of_twenty() -> None:
    async def main() -> None:
        # Each host bootstraps from the previous one (a chain) and finds more by peer exchange;
        # target 4 keeps the dial storm within what 2 shared cores handshake in time.
        async with AsyncExitStack() as stack:
            group: list[P2PHost] = []
            for i in range(20):
                boot = (group[-1].listen_addrs[0],) if group else ()
                cfg = config(i, bootstrap=boot, target_connections=4)
                group.append(await stack.enter_async_context(open_host(cfg)))
            channels = [await h.subscribe(TOPIC, accept_all) for h in group]
            with trio.fail_after(4 * DEADLINE_S):
                await _wait_mesh(group)
                for n in range(5):
                    await group[n * 3].publish(TOPIC, b"wide-%d" % n)
                for i, channel in enumerate(channels):
                    expected = {b"wide-%d" % n for n in range(5) if n * 3 != i}
                    got = {(await channel.receive()).data for _ in expected}
                    assert got == expected

    trio.run(main)


def test_an_undecodable_pubsub_rpc_costs_its_peer_not_the_host() -> None:
    async def main() -> None:
        async with hosts(config(0)) as (hub,):
            boot = (hub.listen_addrs[0],)
            async with hosts(config(1, bootstrap=boot), config(2, bootstrap=boot)) as (bad, good):
                channels = [await h.subscribe(TOPIC, accept_all) for h in (hub, bad, good)]
                with trio.fail_after(DEADLINE_S):
                    await _wait_mesh([hub, bad, good])
                    # `bad` speaks GossipSub's protocol to the hub on a stream of its own.
                    stream = await bad._lhost.new_stream(
                        ID.from_base58(hub.peer_id), [TProtocol(GossipConfig().protocols[0])]
                    )
                    await stream.write(encode_varint_prefixed(b"\xff" * 16))  # not protobuf
                    await hub.wait_until(lambda: hub.metrics.gossip_broken_streams == 1)
                    assert hub.score(bad.peer_id) < 0
                    # The hub still runs and relays.
                    await good.publish(TOPIC, b"after")
                    assert (await channels[0].receive()).data == b"after"

    trio.run(main)


def test_a_peers_signed_record_is_checked_once_while_it_stays_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every pubsub RPC carries its sender's signed peer record; the library verifies it on
    each. A host of ours verifies one peer's unchanged record once."""
    checked: list[str] = []
    library_check = host_module._consume_record

    def counting(msg: object, lhost: object, peer_id: ID) -> bool:
        checked.append(peer_id.to_base58())
        return library_check(msg, lhost, peer_id)  # type: ignore[arg-type]

    monkeypatch.setattr(host_module, "_consume_record", counting)

    async def main() -> None:
        async with hosts(config(0)) as (a,):
            boot = (a.listen_addrs[0],)
            async with hosts(config(1, bootstrap=boot)) as (b,):
                channels = [await h.subscribe(TOPIC, accept_all) for h in (a, b)]
                with trio.fail_after(DEADLINE_S):
                    await _wait_mesh([a, b])
                    for n in range(10):
                        await a.publish(TOPIC, b"msg-%d" % n)
                    got = [(await channels[1].receive()).data for _ in range(10)]
                assert got == [b"msg-%d" % n for n in range(10)]
                assert checked.count(a.peer_id) == 1  # b's first RPC from a; then remembered

    trio.run(main)
