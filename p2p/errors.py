"""Typed errors of the p2p package.

`P2PError` is the root. Errors split by who is at fault:

* the remote peer misbehaved: `RemoteProtocolError` (carries the peer and a penalty);
* the remote is not there or too slow: `PeerUnreachable`, `RequestTimeout`;
* the remote refused our request: `RequestRejected`;
* this process misused the API or its configuration: `ConfigError` (and its subclasses),
  `MessageTooLarge`, `UnknownTopic`, `UnknownProtocol`, `HostNotRunning`.
"""

from __future__ import annotations


class P2PError(Exception):
    """Root of every error the p2p package raises."""


class ConfigError(P2PError, ValueError):
    """A `HostConfig` (or one of its parts) breaks an invariant. Fix the configuration: the message
    names the field, the value and the rule."""


class RemoteProtocolError(P2PError):
    """The remote peer broke the protocol (malformed, oversized or invalid data).

    `penalty` is how many score points the peer loses for it. A request handler raises it to
    refuse a request: the host sends an error frame back and penalises the caller. The host raises
    it from `request()` when the remote's answer breaks the protocol; it has already penalised the
    remote, so the caller must only drop the answer (and may try another peer)."""

    def __init__(self, peer: str, reason: str, penalty: int) -> None:
        super().__init__(f"peer {peer}: {reason} (penalty {penalty})")
        self.peer = peer
        self.reason = reason
        self.penalty = penalty


class RequestRejected(P2PError):
    """The remote answered our request with an error frame (it judged the request invalid, or it
    was busy or failed). Do not retry the same bytes with the same peer; fix the request or ask
    another peer."""

    def __init__(self, peer: str, protocol_id: str, reason: str) -> None:
        super().__init__(f"peer {peer} rejected a {protocol_id} request: {reason}")
        self.peer = peer
        self.protocol_id = protocol_id
        self.reason = reason


class RequestTimeout(P2PError):
    """No complete answer arrived within the deadline. The remote may be slow, overloaded or gone:
    retry later or ask another peer."""

    def __init__(self, peer: str, protocol_id: str, timeout_s: float) -> None:
        super().__init__(f"peer {peer}: no {protocol_id} answer within {timeout_s:g} s")
        self.peer = peer
        self.protocol_id = protocol_id
        self.timeout_s = timeout_s


class PeerUnreachable(P2PError):
    """No stream could be opened to the peer (no known address, dial failed, connection lost, or
    the peer is banned). Try another peer; the host keeps redialling peers it should stay connected
    to."""

    def __init__(self, peer: str, reason: str) -> None:
        super().__init__(f"peer {peer} unreachable: {reason}")
        self.peer = peer
        self.reason = reason


class MessageTooLarge(P2PError):
    """A message this process tried to send is above the configured bound for its topic or protocol.
    Split or shrink it; the bound is part of the protocol and is not raised per message."""

    def __init__(self, what: str, size_bytes: int, max_bytes: int) -> None:
        super().__init__(f"{what}: {size_bytes} bytes is above the limit of {max_bytes} bytes")
        self.what = what
        self.size_bytes = size_bytes
        self.max_bytes = max_bytes


class UnknownTopic(P2PError):
    """The topic is not in `HostConfig.topics`: add it there (every topic needs a size bound)."""


class UnknownProtocol(P2PError):
    """The protocol id is not in `HostConfig.protocols`: add it there (every protocol needs size
    bounds)."""


class HostNotRunning(P2PError):
    """The host is not running (not started yet, or shut down). Use it only inside
    `async with open_host(...)`."""
