from __future__ import annotations

import dataclasses

import pytest

from ledger.signing import IdentityKey
from p2p import config as c
from p2p.identity import NotAnIdentityPeerId, peer_id_of, public_key_of

KEY = IdentityKey(b"\x07" * 32)
OTHER = peer_id_of(IdentityKey(b"\x08" * 32).public)


def test_defaults_are_valid_and_override_the_library_pitfalls() -> None:
    cfg = c.HostConfig(identity=KEY)
    assert cfg.gossip.heartbeat_interval_s == 1
    assert (cfg.gossip.degree_low, cfg.gossip.degree, cfg.gossip.degree_high) == (4, 6, 12)
    assert cfg.gossip.spam_limit_per_s is None
    assert cfg.peer_id == peer_id_of(KEY.public)


def test_peer_id_is_the_identity_key_both_ways() -> None:
    assert public_key_of(peer_id_of(KEY.public)) == KEY.public
    with pytest.raises(NotAnIdentityPeerId):
        public_key_of("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")  # sha256 peer id
    with pytest.raises(ValueError, match="32 bytes"):
        peer_id_of(b"short")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"listen_addrs": ()}, c.InvalidAddress),
        ({"listen_addrs": ("not a multiaddr",)}, c.InvalidAddress),
        ({"listen_addrs": ("/ip4/127.0.0.1/udp/1",)}, c.InvalidAddress),
        ({"listen_addrs": (f"/ip4/127.0.0.1/tcp/1/p2p/{OTHER}",)}, c.InvalidAddress),
        ({"bootstrap": ("/ip4/127.0.0.1/tcp/1",)}, c.InvalidAddress),
        ({"bootstrap": (f"/ip4/127.0.0.1/tcp/1/p2p/{peer_id_of(KEY.public)}",)}, c.InvalidAddress),
        (
            {"bootstrap": (f"/ip4/127.0.0.1/tcp/1/p2p/{OTHER}",) * 2},
            c.DuplicateName,
        ),
        ({"muxer": "quic"}, c.ConfigError),
        ({"topics": (c.TopicConfig("t", 10), c.TopicConfig("t", 20))}, c.DuplicateName),
        (
            {"protocols": (c.ProtocolConfig("/posi/a/1", 1, 1),) * 2},
            c.DuplicateName,
        ),
        ({"protocols": (c.ProtocolConfig(c.PEX_PROTOCOL_ID, 1, 1),)}, c.DuplicateName),
        ({"request_timeout_s": 0}, c.BoundOutOfRange),
        ({"request_timeout_s": float("nan")}, c.BoundOutOfRange),
        ({"max_inbound_requests": 0}, c.BoundOutOfRange),
    ],
)
def test_host_config_errors(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        c.HostConfig(identity=KEY, **kwargs)  # type: ignore[arg-type]


def test_muxer_accepts_its_name() -> None:
    assert c.HostConfig(identity=KEY, muxer="yamux").muxer is c.Muxer.YAMUX  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: c.GossipConfig(degree=3, degree_low=4), c.DegreeOrderError),
        (lambda: c.GossipConfig(degree=13), c.DegreeOrderError),
        (lambda: c.GossipConfig(degree_low=0, degree=0), c.DegreeOrderError),
        (lambda: c.GossipConfig(heartbeat_interval_s=0), c.BoundOutOfRange),
        (lambda: c.GossipConfig(heartbeat_interval_s=0.5), c.BoundOutOfRange),
        (lambda: c.GossipConfig(protocols=()), c.InvalidName),
        (lambda: c.GossipConfig(protocols=("/meshsub/9.9.9",)), c.InvalidName),
        (lambda: c.GossipConfig(protocols=("/meshsub/1.1.0",) * 2), c.DuplicateName),
        (lambda: c.GossipConfig(seen_max_entries=1), c.BoundOutOfRange),
        (lambda: c.GossipConfig(spam_limit_per_s=10.0), c.BoundOutOfRange),
        (lambda: c.TopicConfig("", 10), c.InvalidName),
        (lambda: c.TopicConfig("a b", 10), c.InvalidName),
        (lambda: c.TopicConfig("t", 0), c.BoundOutOfRange),
        (lambda: c.TopicConfig("t", c.GOSSIP_MESSAGE_BYTES_CEILING + 1), c.BoundOutOfRange),
        (lambda: c.TopicConfig("t", 10, delivery_queue_len=0), c.BoundOutOfRange),
        (lambda: c.ProtocolConfig("/other/1", 1, 1), c.InvalidName),
        (lambda: c.ProtocolConfig("/posi/x/1", -1, 1), c.BoundOutOfRange),
        (lambda: c.BackoffConfig(base_s=2.0, cap_s=1.0), c.BackoffOrderError),
        (lambda: c.BackoffConfig(base_s=0.0), c.BackoffOrderError),
        (lambda: c.BackoffConfig(jitter=1.0), c.BackoffOrderError),
        (lambda: c.ScoreConfig(ban_threshold=0), c.BoundOutOfRange),
        (lambda: c.ScoreConfig(max_peers=1), c.BoundOutOfRange),
        (
            lambda: c.ConnectionConfig(target_connections=9, max_connections=8),
            c.ConnectionLimitOrderError,
        ),
        (lambda: c.ConnectionConfig(target_connections=0), c.ConnectionLimitOrderError),
        (lambda: c.ConnectionConfig(pex_sample_size=1000), c.BoundOutOfRange),
    ],
)
def test_part_config_errors(make: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()  # type: ignore[operator]


def test_every_named_error_is_a_config_error() -> None:
    for name in (
        "InvalidAddress",
        "DegreeOrderError",
        "BoundOutOfRange",
        "DuplicateName",
        "InvalidName",
        "BackoffOrderError",
        "ConnectionLimitOrderError",
    ):
        assert issubclass(getattr(c, name), c.ConfigError)


def test_config_is_frozen() -> None:
    cfg = c.HostConfig(identity=KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.request_timeout_s = 1.0  # type: ignore[misc]
