"""`SimCore`: a `PeerCore` whose pure, expensive checks are shared by every peer of one process.

Thousands of peers in one process would otherwise each decode every gossiped block, check its
commit certificate, fold it into their own copy of the state, and check every posted task's
signature. Those are pure functions of their inputs, so one peer's answer is every peer's answer:

- gossip verdicts (`validate_gossip`), keyed by topic, message bytes and the peer's tip hash: the
  verdict reads only the message, the state (fixed by its tip hash on one chain) and the signature
  memo below;
- decoded blocks, keyed by the block bytes: decoding is a pure function of the bytes, and records
  are immutable;
- the state after a block, keyed by the block hash, used when the peer's tip is the block's parent
  and the commit certificate is the one already checked for another peer: the fold is a pure
  function of (parent state, block), and a parent state is fixed by its tip hash;
- checked transaction signatures, keyed by transaction hash (`ledger.tx.VerifiedTxCache`, the
  ledger's own memo of a pure function);
- the hashes and decoded payloads of a block's transactions, which every role that follows a
  block asks for again (`Transaction.hash()` re-encodes, `body()` re-decodes): the roles get a view
  of the block whose transactions (`MemoTx`, a `Transaction` subclass) compute each once per
  process. Only the roles' `on_block` sees the view; what is stored and served stays the block
  as decoded.

Everything else (sortition with each peer's own VRF key, the rounds, the outbox, timers) stays per
peer: every peer still computes its own VRF proof for every task. A test runs the same seed with
and without sharing and compares the reports byte for byte.

The core offers no hook for this, so `SimCore` replaces the core's chain role (and the validator
role that holds a reference to it) after construction with `SharedChainRole`, which overrides the
block decoding and the block application step; the core's logic is otherwise untouched.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Final

from ledger.block import CertifiedBlock
from ledger.certificates import QuorumCertificate
from ledger.encoding import Record
from ledger.state import State
from ledger.tx import Transaction, UnsignedTx, VerifiedTxCache
from p2p.core import PeerCore
from p2p.events import GossipVerdict
from p2p.policy import Policy
from p2p.roles.base import ChainArchive, CoreConfig, Services
from p2p.roles.chain import ChainRole, OnBlock
from p2p.roles.validator import ValidatorRole

# Entries kept in each memo: a few hundred blocks and gossip messages in flight at once is far
# more than a run holds (every peer applies block h before block h+1 arrives, give or take sync).
BLOCKS_KEPT_MAX: Final = 512
VERDICTS_KEPT_MAX: Final = 8192
# Checked transactions shared by all peers: a 200-task run at tau 16 has about 5,000.
SHARED_TX_CACHE_MAX: Final = 262_144


class MemoUnsignedTx(UnsignedTx):
    """An unsigned body whose encoding is computed once (task ids are derived from it)."""

    __slots__ = ("_memo_encoding",)

    def encode(self) -> bytes:
        try:
            return self._memo_encoding  # type: ignore[no-any-return]
        except AttributeError:
            value = UnsignedTx.encode(self)
            object.__setattr__(self, "_memo_encoding", value)
            return value


class MemoTx(Transaction):
    """A block's transaction whose hash and decoded body are computed once (see above). Equal
    fields, same encoding; never put inside another record (encoders want the exact class)."""

    __slots__ = ("_memo_body", "_memo_hash", "_memo_unsigned")

    @classmethod
    def of(cls, tx: Transaction) -> MemoTx:
        """A memoising copy of `tx`."""
        return cls(tx.kind, tx.signer, tx.nonce, tx.payload, tx.signature)

    def hash(self) -> bytes:
        try:
            return self._memo_hash  # type: ignore[no-any-return]
        except AttributeError:
            value = Transaction.hash(self)
            object.__setattr__(self, "_memo_hash", value)
            return value

    def unsigned(self, chain: bytes) -> UnsignedTx:
        memo = getattr(self, "_memo_unsigned", None)
        if memo is not None and memo.chain == chain:
            return memo  # type: ignore[no-any-return]
        value = MemoUnsignedTx(chain, self.kind, self.signer, self.nonce, self.payload)
        object.__setattr__(self, "_memo_unsigned", value)
        return value

    def body(self) -> Record:
        try:
            return self._memo_body  # type: ignore[no-any-return]
        except AttributeError:
            value = Transaction.body(self)  # MalformedPayload propagates, and is not memoised
            object.__setattr__(self, "_memo_body", value)
            return value


class SharedChecks:
    """The memos one process's peers share (see the module docstring)."""

    def __init__(self) -> None:
        self.tx_cache = VerifiedTxCache(SHARED_TX_CACHE_MAX)
        self.verdicts: collections.OrderedDict[tuple[str, bytes, bytes], GossipVerdict] = (
            collections.OrderedDict()
        )
        self.decoded: collections.OrderedDict[bytes, CertifiedBlock] = collections.OrderedDict()
        self.after: collections.OrderedDict[bytes, tuple[bytes, QuorumCertificate, State]] = (
            collections.OrderedDict()
        )
        self.views: collections.OrderedDict[int, tuple[CertifiedBlock, CertifiedBlock]] = (
            collections.OrderedDict()
        )
        self.views_by_hash: collections.OrderedDict[bytes, CertifiedBlock] = (
            collections.OrderedDict()
        )
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _bound(table: collections.OrderedDict, limit: int) -> None:  # type: ignore[type-arg]
        while len(table) > limit:
            table.popitem(last=False)

    def verdict(self, key: tuple[str, bytes, bytes]) -> GossipVerdict | None:
        """A verdict computed for the same message at the same tip, or None."""
        return self.verdicts.get(key)

    def remember_verdict(self, key: tuple[str, bytes, bytes], verdict: GossipVerdict) -> None:
        """Record a verdict."""
        self.verdicts[key] = verdict
        self._bound(self.verdicts, VERDICTS_KEPT_MAX)

    def decode_block(self, data: bytes) -> CertifiedBlock:
        """Decode block bytes once for everybody (raises DecodeError as `CertifiedBlock.decode`)."""
        cb = self.decoded.get(data)
        if cb is None:
            cb = CertifiedBlock.decode(data)
            self.decoded[data] = cb
            self._bound(self.decoded, BLOCKS_KEPT_MAX)
        return cb

    def view(self, cb: CertifiedBlock) -> CertifiedBlock:
        """The roles' view of a block: the same header and commit, memoising transactions."""
        found = self.views.get(id(cb))
        if found is not None and found[0] is cb:
            return found[1]
        block_hash = cb.block.header.hash()
        view = self.views_by_hash.get(block_hash)
        if view is None:
            txs = tuple(MemoTx.of(tx) for tx in cb.block.txs)
            view = CertifiedBlock(dataclasses.replace(cb.block, txs=txs), cb.commit)
            self.views_by_hash[block_hash] = view
            self._bound(self.views_by_hash, BLOCKS_KEPT_MAX)
        self.views[id(cb)] = (cb, view)  # holding cb keeps its id from being reused
        self._bound(self.views, BLOCKS_KEPT_MAX)
        return view

    def state_after(self, parent: State, cb: CertifiedBlock) -> State | None:
        """The state after `cb` if another peer applied the same block with the same commit
        certificate on the same parent, else None."""
        header = cb.block.header
        if parent.tip_hash != header.parent_hash or parent.height + 1 != header.height:
            return None
        found = self.after.get(header.hash())
        if found is None or found[0] != parent.tip_hash or found[1] != cb.commit:
            self.misses += 1
            return None
        self.hits += 1
        return found[2]

    def remember_state(self, parent_tip: bytes, cb: CertifiedBlock, state: State) -> None:
        """Record the state a block led to (after its certificate and fold were checked)."""
        self.after[cb.block.header.hash()] = (parent_tip, cb.commit, state)
        self._bound(self.after, BLOCKS_KEPT_MAX)


class SharedChainRole(ChainRole):
    """The follower role, with block decoding and application shared (see the module docstring)."""

    def __init__(self, s: Services, on_block: OnBlock, shared: SharedChecks) -> None:
        super().__init__(s, self._on_block_view)
        self.shared = shared
        self._roles_on_block = on_block

    def _on_block_view(self, cb: CertifiedBlock, old: State, new: State) -> None:
        self._roles_on_block(self.shared.view(cb), old, new)

    def decode_block(self, data: bytes) -> CertifiedBlock:
        return self.shared.decode_block(data)

    def _apply_one(
        self, cb: CertifiedBlock, sender: bytes | None, known: State | None, via: str
    ) -> bool:
        if known is not None:
            return super()._apply_one(cb, sender, known, via)
        parent = self.s.state
        memo = self.shared.state_after(parent, cb)
        if memo is not None:
            return super()._apply_one(cb, sender, memo, via)
        ok = super()._apply_one(cb, sender, None, via)
        if ok:
            self.shared.remember_state(parent.tip_hash, cb, self.s.state)
        return ok


class SimCore(PeerCore):
    """A `PeerCore` sharing its pure checks with the other peers of the process (see above)."""

    def __init__(
        self,
        config: CoreConfig,
        *,
        state: State,
        shared: SharedChecks,
        tip_commit: QuorumCertificate | None = None,
        archive: ChainArchive | None = None,
        policy: Policy | None = None,
    ) -> None:
        super().__init__(config, state=state, tip_commit=tip_commit, archive=archive, policy=policy)
        self.shared = shared
        self.s.cache = shared.tx_cache
        self.chain = SharedChainRole(self.s, self._on_block, shared)
        if self.validator is not None:
            self.validator = ValidatorRole(self.s, self._finalise, self.chain.sync_now)

    def validate_gossip(self, topic: str, sender: bytes, data: bytes) -> GossipVerdict:
        key = (topic, data, self.s.state.tip_hash)
        verdict = self.shared.verdict(key)
        if verdict is None:
            verdict = super().validate_gossip(topic, sender, data)
            self.shared.remember_verdict(key, verdict)
        return verdict
