"""Where a `PeerCore` may deviate from the protocol: the byzantine-behaviour hook.

A `PeerCore` consults its `Policy` at each decision point a byzantine node could abuse. The default
`Policy` is honest (every hook returns its input unchanged). The simulator subclasses it to build
misbehaving nodes without monkeypatching the core; every hook is called synchronously inside
`PeerCore.handle` and must stay pure (seeded randomness belongs to the policy object itself).

| behaviour | hook |
|---|---|
| equivocating voter | `outgoing`: re-sign round votes with another value, send both |
| withholding member | `outgoing`: drop `Request`s on PROTO_COMMITTEE (or PROTO_CONSENSUS) |
| silent executor | `execute`: return False (the core never emits `Execute`) |
| lying executor | `report`: rewrite its own report and output before the core uses them |
| lying verifier | `verdict`: flip the verdict it gives its round |
| forged credential | `credential`: change the claimed weight or the proof of its own credential |
| censoring validator | `candidates`: drop transactions from the block it proposes |
| flooding peer | nothing inside the core: the driver injects garbage at other peers |

`outgoing` sees every action the core returns (after the core decided it), so it can also delay
nothing and rewrite anything; keep hooks small so a test says exactly what is byzantine.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.tx import Credential, Transaction
from p2p.events import Action


class Policy:
    """The honest policy. Subclass and override hooks to misbehave (simulator only)."""

    def outgoing(self, actions: list[Action]) -> list[Action]:
        """Every batch of actions `handle` is about to return. Honest: unchanged."""
        return actions

    def execute(self, task_id: bytes, attempt: int) -> bool:
        """Whether to run a job this node was chosen to execute. Honest: True."""
        return True

    def report(
        self, task_id: bytes, attempt: int, report: bytes, output: bytes
    ) -> tuple[bytes, bytes]:
        """The report and output this node, as executor, stands behind. Honest: what it got."""
        return report, output

    def verdict(self, task_id: bytes, attempt: int, accept: bool) -> bool:
        """The verdict this node gives on another executor's report. Honest: its own check."""
        return accept

    def credential(self, body: Credential) -> Credential:
        """The credential this node submits for a round. Honest: the one sortition gave."""
        return body

    def candidates(self, txs: Sequence[Transaction]) -> Sequence[Transaction]:
        """The mempool transactions a proposing validator offers its block builder, in order.
        Honest: all of them."""
        return txs


HONEST = Policy()
