"""Byzantine behaviours as swappable policy objects (the `p2p.policy.Policy` hook of `PeerCore`).

Each policy holds the peer's identity key (what it signs is really signed: a forged signature would
be caught by the first check and prove nothing) and its own seeded `random.Random`. The catalogue:

- `equivocate` (operator, validator): every vote it sends is followed by a second, signed vote for
  another value; as proposer it sends a different proposal to half the members. Stopped by locks and
  quorum intersection; the two votes are slashable evidence.
- `withhold` (operator, validator): sends no round message at all. Stopped by quorums without it
  (byzantine weight below a third) and view changes.
- `lie` (operator): as executor, signs a report whose output hash is that of a wrong output, and
  serves that output. Verifiers re-execute deterministic jobs and reject it; it is slashed.
- `silent` (operator): never executes when chosen (takes part in the rounds otherwise). The result
  agreement rejects it at the deadline; the next candidate executes.
- `forge` (operator): claims a larger weight in its credential, or sends a proof that does not
  verify. Stopped by the validators' admission check (sortition) and the fold's VRF check.
- `flood` (operator): the driver makes it publish junk on the tasks topic and send junk requests.
  Stopped by gossip validation (`Reject`: not forwarded) and request validation (a penalty).
- `censor` (validator): leaves POST_TASK and TASK_RESULT transactions out of the blocks it
  proposes. The other validators' blocks include them.
- `collude` (operator): lies as executor and accepts every report as verifier. Nothing stops it once
  colluders hold more than two thirds of a roster (outside the model): the checkers must flag the
  wrong result.

Requests a policy adds carry a negative `request_id`: the driver never answers those back to the
core (the core never asked for them).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Final

from committee.messages import NewView, Proposal, VoteMessage, decode_message, encode_message
from executor.report import UnverifiedReport, sign_report
from executor.sandbox import output_hash
from ledger.certificates import UnverifiedVote, VoteBody
from ledger.domains import Domain, digest
from ledger.errors import DecodeError
from ledger.signing import IdentityKey
from ledger.tx import Credential, Transaction, TxKind
from p2p.events import PROTO_COMMITTEE, PROTO_CONSENSUS, Action, Request
from p2p.policy import Policy
from p2p.wire import ConsensusMessage

# Bytes a lying executor prepends to the real output: any change gives another output hash.
WRONG_OUTPUT_PREFIX: Final = b"not what the job printed\n"
# Extra weight a forging operator claims (any nonzero amount is a lie sortition catches).
FORGED_EXTRA_WEIGHT: Final = 5


class SimPolicy(Policy):
    """A byzantine policy in the simulator: a name, the peer's key and its own random stream.
    `flood_interval_ms` > 0 asks the driver to inject junk from this peer at that interval."""

    name: str = "honest"
    flood_interval_ms: int = 0

    def __init__(
        self, key: IdentityKey, rng: random.Random, lies: set[bytes] | None = None
    ) -> None:
        self.key = key
        self.rng = rng
        # Report digests this peer signed for wrong outputs: the safety checker's ground truth.
        self.lies = lies if lies is not None else set()
        self._next_request_id = -1

    def injected_request_id(self) -> int:
        """A fresh negative id for a request the policy adds."""
        self._next_request_id -= 1
        return self._next_request_id


# ------------------------------------------------------------------------------------ helpers


def resign_vote(key: IdentityKey, vote: UnverifiedVote, value: bytes) -> UnverifiedVote:
    """The same vote for another value, validly signed by `key`."""
    body = VoteBody(vote.kind, vote.context, vote.view, value, vote.voter, vote.weight)
    signature = key.sign(Domain.VOTE, body.encode())
    return UnverifiedVote(
        body.kind, body.context, body.view, body.value, body.voter, body.weight, signature
    )


def _twin_committee_message(key: IdentityKey, data: bytes, value: bytes) -> bytes | None:
    """A conflicting copy of a committee message carrying our own vote, or None if the message is
    not one (certificates carry no vote of ours)."""
    try:
        subject, message = decode_message(data)
    except DecodeError:
        return None
    if isinstance(message, VoteMessage):
        return encode_message(subject, VoteMessage(resign_vote(key, message.vote, value)))
    if isinstance(message, Proposal):
        twin = dataclasses.replace(
            message, vote=resign_vote(key, message.vote, value), justification=None
        )
        return encode_message(subject, twin)
    if isinstance(message, NewView):
        return None  # a NEW_VIEW carries no value to equivocate on
    return None


def _twin_consensus(key: IdentityKey, data: bytes, value: bytes) -> bytes | None:
    try:
        wrapped = ConsensusMessage.decode(data)
    except DecodeError:
        return None
    if wrapped.block is not None:
        return None  # a proposal carries its block body: a twin would not match it
    inner = _twin_committee_message(key, wrapped.message, value)
    if inner is None:
        return None
    return ConsensusMessage(wrapped.height, inner, None).encode()


# ----------------------------------------------------------------------------------- policies


class Equivocate(SimPolicy):
    """Signs two different values for every vote it casts (see the module table)."""

    name = "equivocate"

    def outgoing(self, actions: list[Action]) -> list[Action]:
        out: list[Action] = []
        value = self.rng.randbytes(32)  # one conflicting value per batch: a consistent twin
        for action in actions:
            out.append(action)
            if not isinstance(action, Request):
                continue
            if action.protocol == PROTO_COMMITTEE:
                twin = _twin_committee_message(self.key, action.data, value)
            elif action.protocol == PROTO_CONSENSUS:
                twin = _twin_consensus(self.key, action.data, value)
            else:
                continue
            if twin is None:
                continue
            try:
                _, message = decode_message(action.data)
            except DecodeError:
                message = None
            if isinstance(message, Proposal) and self.rng.random() < 0.5:
                out[-1] = dataclasses.replace(action, data=twin)  # this member sees the twin only
                continue
            out.append(
                dataclasses.replace(action, request_id=self.injected_request_id(), data=twin)
            )
        return out


class Withhold(SimPolicy):
    """Sends no round message (committee or consensus)."""

    name = "withhold"

    def outgoing(self, actions: list[Action]) -> list[Action]:
        return [
            a
            for a in actions
            if not (isinstance(a, Request) and a.protocol in (PROTO_COMMITTEE, PROTO_CONSENSUS))
        ]


class Lie(SimPolicy):
    """As executor, attests a wrong output (re-signed report) and serves that output."""

    name = "lie"

    def report(
        self, task_id: bytes, attempt: int, report: bytes, output: bytes
    ) -> tuple[bytes, bytes]:
        return lie_about(self.key, report, output, self.lies)


class Silent(SimPolicy):
    """Never executes a job it was chosen for."""

    name = "silent"

    def execute(self, task_id: bytes, attempt: int) -> bool:
        return False


class Forge(SimPolicy):
    """Claims more weight than sortition gave it, or sends a proof that does not verify."""

    name = "forge"

    def credential(self, body: Credential) -> Credential:
        if self.rng.random() < 0.5:
            return dataclasses.replace(body, weight=body.weight + FORGED_EXTRA_WEIGHT)
        proof = bytearray(body.vrf_proof)
        proof[-1] ^= 0x01
        return dataclasses.replace(body, vrf_proof=bytes(proof))


class Flood(SimPolicy):
    """Honest inside its core; the driver injects junk gossip and junk requests from it."""

    name = "flood"
    flood_interval_ms = 200


class Censor(SimPolicy):
    """As proposing validator, leaves task posts and task results out of its blocks."""

    name = "censor"

    def candidates(self, txs: Sequence[Transaction]) -> Sequence[Transaction]:
        return [tx for tx in txs if tx.kind not in (TxKind.POST_TASK, TxKind.TASK_RESULT)]


class Collude(SimPolicy):
    """Lies as executor and accepts every report as verifier (breaks safety only above 2/3)."""

    name = "collude"

    def report(
        self, task_id: bytes, attempt: int, report: bytes, output: bytes
    ) -> tuple[bytes, bytes]:
        return lie_about(self.key, report, output, self.lies)

    def verdict(self, task_id: bytes, attempt: int, accept: bool) -> bool:
        return True


def lie_about(
    key: IdentityKey, report: bytes, output: bytes, lies: set[bytes]
) -> tuple[bytes, bytes]:
    """A validly signed report for a wrong output, and that output; the lie's digest goes into
    `lies`."""
    try:
        honest = UnverifiedReport.decode(report)
    except DecodeError:
        return report, output
    wrong = WRONG_OUTPUT_PREFIX + output
    body = dataclasses.replace(honest.body, output_hash=output_hash(wrong))
    lied = sign_report(body, key, honest.tee_quote).encode()
    lies.add(digest(Domain.REPORT, lied))
    return lied, wrong


POLICIES: Final[dict[str, type[SimPolicy]]] = {
    cls.name: cls for cls in (Equivocate, Withhold, Lie, Silent, Forge, Flood, Censor, Collude)
}


def make_policy(
    name: str, key: IdentityKey, rng: random.Random, lies: set[bytes] | None = None
) -> SimPolicy:
    """The policy called `name` for the peer holding `key` (lying policies add the digests of
    their lies to `lies`). Raises KeyError for an unknown name (scenarios validate names first)."""
    return POLICIES[name](key, rng, lies)
