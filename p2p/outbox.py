"""The transactions this node wants on the ledger, and their nonces (pure, bounded).

A node signs credentials, task certificates, task results, slash evidence and posted tasks with its
identity key, each with the account's next nonce. Several members race to submit the same
certificate, and a transaction can become unnecessary before a block takes it (another member's
copy was included first), which would leave a gap in the nonces and block every later
transaction. So the node does not fire and forget: it keeps what it *wants*, with two predicates
over the ledger state:

* `needed(state)`: the transaction still has an effect (the certificate is not on the ledger yet);
  when false the entry is dropped;
* `ready(state)`: the ledger is in the phase the transaction needs (a task result waits until the
  task certificate is included); an entry that is not ready holds no nonce.

After every block (`reconcile`), ready entries get consecutive nonces from the account's next
nonce, in order; an entry whose nonce changed is signed again and sent, and an entry no block took
within `RESEND_BLOCKS` is sent again. Entries are `pinned` when their transaction must never be
re-signed (a posted task: its id is derived from the signed body, nonce included); they come
first, and one whose nonce another transaction consumed is reported lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import Final

from ledger.encoding import Record
from ledger.signing import IdentityKey
from ledger.state import State
from ledger.tx import Transaction, sign_transaction

# What one node wants on the ledger at once: a credential, a certificate and a result per open
# round, bounded by the operator's capacity (rounds of a few minutes each). Past it new wants are
# refused (the caller logs it): a node this far behind on its own submissions has a problem a
# bigger queue would not fix.
OUTBOX_MAX: Final = 1024
# Blocks without inclusion before a transaction is sent again (to the proposers of the next
# heights): every block. A node's later transactions wait for its earlier nonces, and credential
# windows are a few blocks long, so one copy lost on its way to a proposer must not cost more
# than a block. Validators drop the duplicates (same signer, nonce and hash) at once.
RESEND_BLOCKS: Final = 1


@dataclasses.dataclass(slots=True)
class Wanted:
    """One transaction this node wants included (see the module docstring)."""

    key: Hashable  # what it is for, e.g. ("task-result", task id, attempt); unique in the outbox
    body: Record
    needed: Callable[[State], bool]
    ready: Callable[[State], bool]
    pinned: bool = False
    tx: Transaction | None = None
    sent_height: int = -1
    tx_hash: bytes = b""

    def __post_init__(self) -> None:
        if self.tx is not None and not self.tx_hash:
            self.tx_hash = self.tx.hash()


class Outbox:
    """This node's wanted transactions (see the module docstring)."""

    __slots__ = ("_chain", "_entries", "_key")

    def __init__(self, key: IdentityKey, chain: bytes) -> None:
        self._key = key
        self._chain = chain
        self._entries: dict[Hashable, Wanted] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def add(self, wanted: Wanted) -> bool:
        """Queue a wanted transaction (call `reconcile` next). Returns False if the outbox is full
        or already holds `wanted.key` (the existing entry stays)."""
        if wanted.key in self._entries or len(self._entries) >= OUTBOX_MAX:
            return False
        self._entries[wanted.key] = wanted
        return True

    def sign_pinned(self, body: Record, state: State) -> Transaction:
        """Sign `body` with the nonce a new pinned entry will hold (after the pinned entries
        still waiting). The caller adds it with `add(Wanted(..., pinned=True, tx=tx))`."""
        account = state.account(self._key.public)
        nonce = 0 if account is None else account.nonce
        for w in self._entries.values():
            if w.pinned and w.tx is not None:
                nonce = max(nonce, w.tx.nonce + 1)
        return sign_transaction(self._key, self._chain, nonce, body)

    def drop_included(self, tx_hashes: Iterable[bytes]) -> None:
        """Forget the entries whose transaction a block included (their job is done, even when
        `needed` cannot tell, e.g. slash evidence)."""
        done = set(tx_hashes)
        for key in [k for k, w in self._entries.items() if w.tx is not None and w.tx_hash in done]:
            del self._entries[key]

    def reconcile(self, state: State) -> tuple[list[Transaction], list[Wanted]]:
        """Bring the entries in line with `state`: drop what is no longer needed, (re)sign ready
        entries with consecutive nonces. Returns (transactions to send now, pinned entries that
        were lost because their nonce was consumed by something else)."""
        account = state.account(self._key.public)
        if account is None:
            return [], []  # no account: nothing this node signs can be included yet
        send: list[Transaction] = []
        lost: list[Wanted] = []
        expected = account.nonce
        order = sorted(self._entries.values(), key=lambda w: not w.pinned)  # stable: pinned first
        for w in order:
            if not w.needed(state):
                del self._entries[w.key]
                continue
            if w.pinned:
                assert w.tx is not None
                if w.tx.nonce != expected:
                    del self._entries[w.key]
                    lost.append(w)
                    continue
            elif not w.ready(state):
                w.tx = None
                continue
            elif w.tx is None or w.tx.nonce != expected:
                w.tx = sign_transaction(self._key, self._chain, expected, w.body)
                w.tx_hash = w.tx.hash()
                w.sent_height = -1
            if w.sent_height < 0 or state.height - w.sent_height >= RESEND_BLOCKS:
                send.append(w.tx)
                w.sent_height = state.height
            expected += 1
        return send, lost
