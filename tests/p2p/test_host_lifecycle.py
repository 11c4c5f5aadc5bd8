"""Bootstrap, discovery, reconnection and shutdown of real hosts on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from p2p.host import ACCEPT, P2PHost, Verdict, _resource_manager, open_host
from p2p.peers import PeerSource

from .swarm import DEADLINE_S, TOPIC, config, free_port, hosts


def accept_all(topic: str, peer: str, data: bytes) -> Verdict:
    return ACCEPT


def test_discovery_beyond_the_bootstrap_list() -> None:
    async def main() -> None:
        async with hosts(config(0)) as (hub,):
            boot = (hub.listen_addrs[0],)
            async with hosts(*(config(i, bootstrap=boot) for i in range(1, 5))) as leaves:
                newcomer = leaves[-1]
                others = {h.peer_id for h in leaves[:-1]}
                with trio.fail_after(DEADLINE_S):
                    # It knows only the hub; peer exchange finds the rest.
                    await newcomer.wait_until(lambda: others <= newcomer.connected_peers())
                assert hub.peer_id in newcomer.connected_peers()
                # Leaves learnt each other from the hub's peer-exchange answers and dialled them.
                assert any(len(h.known_peers()) > 1 for h in leaves)
                assert sum(h.metrics.dials for h in leaves) > len(leaves)
                assert hub.metrics.rpc_in_requests["/posi/pex/1"] >= 1

    trio.run(main)


def test_clean_shutdown_is_seen_by_the_remote() -> None:
    async def main() -> None:
        async with hosts(config(0)) as (stayer,):
            async with open_host(config(1, bootstrap=(stayer.listen_addrs[0],))) as leaver:
                with trio.fail_after(DEADLINE_S):
                    await stayer.wait_until(lambda: leaver.peer_id in stayer.connected_peers())
                network = leaver._lhost.get_network()
            # Leaving the block closed every connection of the leaver...
            assert dict(network.connections) == {} or all(
                not conns for conns in network.connections.values()
            )
            assert leaver.connected_peers() == set()
            # ...and the remote saw it at once, without waiting for a timeout.
            with trio.fail_after(DEADLINE_S):
                await stayer.wait_until(lambda: leaver.peer_id not in stayer.connected_peers())
                await stayer.wait_until(lambda: stayer.metrics.connections_closed >= 1)

    trio.run(main)


def test_bootstrap_peer_that_comes_up_late_is_redialled_with_backoff() -> None:
    async def main() -> None:
        port = free_port()
        late_cfg = config(1, port=port)
        boot = (f"/ip4/127.0.0.1/tcp/{port}/p2p/{late_cfg.peer_id}",)
        async with hosts(config(0, bootstrap=boot)) as (early,):
            with trio.fail_after(DEADLINE_S):
                await early.wait_until(lambda: early.metrics.dial_failures >= 2)
                async with open_host(late_cfg) as late:
                    await early.wait_until(lambda: late.peer_id in early.connected_peers())
        assert early.metrics.dials >= 3

    trio.run(main)


def test_reconnection_after_restart_with_same_identity() -> None:
    async def main() -> None:
        async with hosts(config(0)) as (stayer,):
            channel = await stayer.subscribe(TOPIC, accept_all)
            first_cfg = config(1, bootstrap=(stayer.listen_addrs[0],))
            async with open_host(first_cfg) as first:
                await first.subscribe(TOPIC, accept_all)
                port = first.listen_addrs[0].split("/tcp/")[1].split("/")[0]
                with trio.fail_after(DEADLINE_S):
                    await first.wait_until(lambda: len(first.mesh_peers(TOPIC)) == 1)
                    await stayer.wait_until(lambda: len(stayer.mesh_peers(TOPIC)) == 1)
                    await first.publish(TOPIC, b"before restart")
                    assert (await channel.receive()).data == b"before restart"
                last_seqno = first._pubsub.counter
            with trio.fail_after(DEADLINE_S):
                await stayer.wait_until(lambda: first.peer_id not in stayer.connected_peers())

            # Same identity, same port, and this time no bootstrap: the stayer must redial it
            # from its address book (learnt by identify while they were connected).
            again_cfg = config(1, port=int(port))
            async with open_host(again_cfg) as again:
                assert again.peer_id == first.peer_id
                await again.subscribe(TOPIC, accept_all)
                # A restart within a second reuses the seqno counter (it starts at
                # int(time.time())): force that case, where peer+seqno ids collide.
                again._pubsub.counter = last_seqno - 1
                with trio.fail_after(DEADLINE_S):
                    await stayer.wait_until(lambda: again.peer_id in stayer.connected_peers())
                    await again.wait_until(lambda: len(again.mesh_peers(TOPIC)) == 1)
                    await stayer.wait_until(lambda: again.peer_id in stayer.mesh_peers(TOPIC))
                    await again.publish(TOPIC, b"after restart")
                    assert again._pubsub.counter == last_seqno  # same (origin, seqno) as before
                    # Delivered: message ids are content addresses, not origin + seqno.
                    msg = await channel.receive()
                assert (msg.data, msg.origin) == (b"after restart", again.peer_id)
                assert stayer.metrics.dials >= 1

    trio.run(main)


def test_a_listener_closed_under_the_librarys_identify_handler_is_not_an_error() -> None:
    """py-libp2p's identify handler reads the listening socket's address; if close() closes it
    under a handler still running, EBADF escapes the library's run(). Only then, while closing,
    is it dropped: the same error before closing, or any other, still surfaces."""

    async def main(closing: bool, error: OSError) -> None:
        host = P2PHost(config(0))

        @contextlib.asynccontextmanager
        async def run(_: object) -> AsyncIterator[None]:
            yield
            host._closing = closing
            raise ExceptionGroup("library nursery", [error])

        host._lhost.run = run  # type: ignore[method-assign]
        async with host._library_run([]):
            pass

    trio.run(main, True, OSError(errno.EBADF, "Bad file descriptor"))
    with pytest.raises(ExceptionGroup):
        trio.run(main, False, OSError(errno.EBADF, "Bad file descriptor"))
    with pytest.raises(ExceptionGroup):
        trio.run(main, True, OSError(errno.ECONNRESET, "reset"))


@pytest.mark.parametrize("max_connections", [8, 64, 300, 1024])
def test_the_librarys_connection_caps_follow_the_configured_maximum(max_connections: int) -> None:
    # The library's defaults cap established inbound connections at 256 whatever the host's
    # maximum: a validator of 300 peers silently refused the rest.
    manager = _resource_manager(max_connections)
    caps = manager.connection_limits
    established = (
        caps.max_established_inbound,
        caps.max_established_outbound,
        caps.max_established_total,
    )
    assert all(cap is not None for cap in established), caps
    assert min(cap or 0 for cap in established) > max_connections, caps
    assert (caps.max_pending_inbound or 0) >= 64, caps
    assert manager.limits.max_connections >= 2 * max_connections


def test_committee_co_members_connect_ahead_once_per_pair() -> None:
    """`connect_soon` on both sides of a pair: the side whose peer id sorts first dials, the other
    waits for it; one connection, one dial."""

    async def main() -> None:
        # Upkeep passes an hour apart: the only pass runs at start, before the hosts know each
        # other, so no dial but connect_soon's happens.
        idle = dataclasses.replace(config(0).connections, maintain_interval_s=3600.0)
        async with hosts(*(config(i, connections=idle) for i in (1, 2))) as (a, b):
            first, second = sorted((a, b), key=lambda h: h.peer_id)
            with trio.fail_after(DEADLINE_S):
                await trio.testing.wait_all_tasks_blocked()  # both first passes are done
                for one, other in ((a, b), (b, a)):
                    bare = other.listen_addrs[0].split("/p2p/", 1)[0]
                    one._book.add(other.peer_id, (bare,), PeerSource.EXCHANGE)
                assert second.connect_soon(first.peer_id) is False  # the other side dials
                assert first.connect_soon(second.peer_id) is True
                assert first.connect_soon(second.peer_id) is False  # already dialling
                await first.wait_until(lambda: second.peer_id in first.connected_peers())
                await second.wait_until(lambda: first.peer_id in second.connected_peers())
                assert first.connect_soon(second.peer_id) is False  # connected
            assert (first.metrics.dials, second.metrics.dials) == (1, 0)
            assert first.metrics.dials_ahead == 1
            assert len(first._lhost.get_network().connections[second._lhost.get_id()]) == 1

    trio.run(main)
