"""Plain counters of the host, for the node to export (Prometheus or logs).

Keys are bounded: topics and protocols come from the configuration; rejection reasons come from
validators and handlers, and only the first `REASONS_MAX` distinct reasons get their own key (the
rest count under `OTHER_REASON`), so a peer cannot grow the tables by inventing reasons.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

# Distinct rejection reasons tracked by name. Validators should use a small fixed vocabulary
# ("bad-signature", "decode", "stale"...); 64 is room for all of them.
REASONS_MAX = 64
OTHER_REASON = "other"


@dataclasses.dataclass(slots=True)
class HostMetrics:
    """Counters since the host started. Read them any time; only the host writes them.

    gossip_*: keyed by topic. gossip_rejected: keyed by (topic, reason). rpc_*: keyed by protocol
    id; rpc_failures: keyed by (protocol id, kind) with kind one of "timeout", "unreachable",
    "rejected", "remote-error", "busy", "too-large", "handler-error", "handler-timeout"."""

    gossip_in_messages: Counter[str] = dataclasses.field(default_factory=Counter)
    gossip_in_bytes: Counter[str] = dataclasses.field(default_factory=Counter)
    gossip_out_messages: Counter[str] = dataclasses.field(default_factory=Counter)
    gossip_out_bytes: Counter[str] = dataclasses.field(default_factory=Counter)
    # Accepted messages the node did not take in time (its delivery queue was full).
    gossip_dropped: Counter[str] = dataclasses.field(default_factory=Counter)
    gossip_ignored: Counter[str] = dataclasses.field(default_factory=Counter)
    gossip_rejected: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    rpc_out_requests: Counter[str] = dataclasses.field(default_factory=Counter)
    rpc_out_bytes: Counter[str] = dataclasses.field(default_factory=Counter)
    rpc_in_requests: Counter[str] = dataclasses.field(default_factory=Counter)
    rpc_in_bytes: Counter[str] = dataclasses.field(default_factory=Counter)
    rpc_failures: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    rpc_rejected: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    # Outbound request streams (channels) opened, and requests that found theirs already open.
    rpc_streams_opened: Counter[str] = dataclasses.field(default_factory=Counter)
    rpc_streams_reused: Counter[str] = dataclasses.field(default_factory=Counter)
    # Stream openings that failed, by protocol and "timeout" (not open within twice the dial
    # timeout) or the library's exception class, with its cause's ("SwarmException <- ...") and,
    # for a failed negotiation, the step ("StreamFailure <- MultiselectClientError: timed out").
    rpc_stream_failures: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    # Answers that came after their caller had given up, and no identical request waited (dropped).
    rpc_late_answers: Counter[str] = dataclasses.field(default_factory=Counter)
    # Requests identical to one sent and not answered yet on the same stream, which waited for its
    # answer instead of going out again (p2p/channel.py).
    rpc_requests_joined: Counter[str] = dataclasses.field(default_factory=Counter)
    # Timed-out requests by protocol and where the time ran out: "stream" (opening a stream,
    # dialling if not connected), "write" (sending the request) or "answer" (waiting for it).
    rpc_timeouts_at: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)
    # Pubsub streams ended because their peer sent an RPC that does not parse.
    gossip_broken_streams: int = 0
    dials: int = 0  # every dial, the ones below included
    dials_ahead: int = 0  # dials for requests soon to follow (`P2PHost.connect_soon`)
    dial_failures: int = 0
    connections_opened: int = 0
    connections_closed: int = 0
    bans: int = 0
    banned_connections_refused: int = 0
    _reasons: set[str] = dataclasses.field(default_factory=set)

    def reason_key(self, reason: str) -> str:
        """The counter key for `reason` (bounded: see module docstring)."""
        if reason in self._reasons:
            return reason
        if len(self._reasons) < REASONS_MAX:
            self._reasons.add(reason)
            return reason
        return OTHER_REASON
