"""Typed errors of the committee package.

Two families, as everywhere in posi-peer: `RemoteProtocolError` when a peer sent something invalid
(it carries the peer and a penalty; drop the input and penalise the peer), and `LocalMisuse` when
the caller broke the contract (fix the caller). Inside the BFT round, invalid peer input never
raises: it becomes a `ReportMisbehaviour` action; only local misuse raises.
"""

from __future__ import annotations

from typing import Final

# Penalties are score points for the peer scorer in p2p (a peer is disconnected at 100). A malformed
# or unverifiable message may be a bug or a relay of stale data: costly but not fatal. Provable
# misbehaviour (two signed conflicting votes, a forged proof) is fatal at once.
PENALTY_STALE: Final = 5
PENALTY_INVALID: Final = 25
PENALTY_PROVABLE: Final = 100


class CommitteeError(Exception):
    """Root of every error the committee package raises."""


class RemoteProtocolError(CommitteeError):
    """A peer sent input that breaks the protocol. Drop the input and penalise `peer` by
    `penalty` points."""

    def __init__(
        self, message: str, *, peer: bytes | None = None, penalty: int = PENALTY_INVALID
    ) -> None:
        super().__init__(message)
        self.peer = peer
        self.penalty = penalty


class CredentialError(RemoteProtocolError):
    """A sortition credential is invalid (forged proof, wrong VRF key, wrong claimed weight,
    operator not eligible, wrong round or role). Reject the credential; penalise whoever sent it."""


class ForgedCredential(CredentialError):
    """The VRF proof does not verify, or the VRF key is not the one the operator registered."""


class WrongClaimedWeight(CredentialError):
    """The credential claims a weight other than sortition gives (including a claimed weight for an
    operator that was not drawn)."""


class IneligibleOperator(CredentialError):
    """The operator is not registered, not active, has stale or no stake, or is over capacity at the
    stake table's height. `reason` is the `NotSelectedReason`."""

    def __init__(self, message: str, *, reason: object, peer: bytes | None = None) -> None:
        super().__init__(message, peer=peer, penalty=PENALTY_INVALID)
        self.reason = reason


class LocalMisuse(CommitteeError):
    """The caller broke the contract of a committee API (fix the caller)."""


class ConfigError(LocalMisuse, ValueError):
    """A committee configuration breaks an invariant (timeouts, sizes, membership). Fix the
    configuration; the message names the field, the value and the rule."""


class EventNotAllowed(LocalMisuse):
    """The round was given an event its current phase does not accept (e.g. a second start, a
    timer it never asked for, a verdict before an executor was decided). Fix the shell."""
