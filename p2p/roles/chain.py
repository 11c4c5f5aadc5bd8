"""The follower role (every node): apply finalised blocks from gossip, consensus or sync; serve
blocks to peers that are behind; ask peers for blocks when this node falls behind.

A block is applied only after its commit certificate verified against the genesis validator set
and the fold accepted it (`ledger.chain.accept_block`); then `StoreBlock` is emitted before
anything else reacts to it. Blocks from the future (a gap after our tip) are kept (bounded) while
a sync request fills the gap.

With `CoreConfig.poll_blocks` (off by default; p2p/README.md says why), a node the block gossip
misses (at 300 peers on two cores most operators' meshes held one peer, and two thirds of the peers
got each block by sync, tens of seconds late) follows the chain by long poll: when a sync answer,
not gossip, brought it to the tip, it asks the same peer for the next block at once with `wait_ms`,
and that peer holds the request until it has the block (at most SYNC_HELD_MAX held at once). A poll
that comes back empty (the peer had no block in time) or after gossip already delivered the block
ends the polling; the periodic sync check picks it up again.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Final

from ledger.block import CertifiedBlock, verify_commit
from ledger.chain import accept_block
from ledger.errors import DecodeError, LedgerError, SyncError
from ledger.state import State
from ledger.sync import (
    SYNC_BLOCKS_MAX,
    SYNC_WAIT_MS_MAX,
    SyncRequest,
    SyncResponse,
    answer,
    validate_response,
)
from p2p.events import (
    ACCEPT,
    PROTO_SYNC,
    FailureKind,
    GossipVerdict,
    Ignore,
    LogLevel,
    Reject,
    RequestFailed,
    RequestReceived,
    Respond,
    StoreBlock,
)
from p2p.roles.base import Answer, Services

# Blocks kept in memory to serve sync without an archive (the simulator, a node without a store):
# a few minutes of blocks at the default interval, enough for a restarted peer to catch up.
RECENT_BLOCKS_MAX: Final = 256
# A gossiped block we already hold is still relayed when it is one of our last few (see `validate`).
RELAY_BLOCKS_MAX: Final = 4
# Blocks past a gap kept while sync fills it: more would be a peer trying to make us buffer.
FUTURE_BLOCKS_MAX: Final = 16
# A block one height past our tip waits this long for the missing one to arrive by gossip before
# we ask for it (see `on_gossip`): a mesh hop takes well under a second.
GAP_GRACE_MS: Final = 1000
# Sync requests in flight at once (see `sync_now`).
SYNC_IN_FLIGHT_MAX: Final = 2
# Peers' sync requests held at once until we have the block they wait for (see the module
# docstring); past it a request is answered at once. Each holds an inbound request slot of the
# host (64 by default), so this leaves half of them to everything else.
SYNC_HELD_MAX: Final = 32
# Connected peers remembered as sync partners (the host keeps about 8; more is plenty).
PEERS_MAX: Final = 1024
# Penalties (points; the shell bans at 100): bytes that are not a block, or a block whose
# certificate or fold fails, can not come from an honest relay of a finalised chain.
PENALTY_MALFORMED: Final = 20
PENALTY_INVALID_BLOCK: Final = 50

OnBlock = Callable[[CertifiedBlock, State, State], None]


class ChainRole:
    """Follows the chain (see the module docstring)."""

    def __init__(self, s: Services, on_block: OnBlock) -> None:
        self.s = s
        self.on_block = on_block
        self.recent: collections.deque[CertifiedBlock] = collections.deque(maxlen=RECENT_BLOCKS_MAX)
        self.future: dict[int, tuple[CertifiedBlock, bytes]] = {}
        self.peers: dict[bytes, None] = {}
        self.syncing: set[int] = set()  # request ids of sync requests in flight
        self.gap_timers: set[int] = set()  # missing heights waiting out GAP_GRACE_MS
        self.held: dict[int, SyncRequest] = {}  # peers' sync requests waiting for our next block
        # True once this node reached the network's tip at least once (a sync answer had nothing
        # beyond our tip, a gossiped block extended it directly, or our own round finalised it):
        # a poster signs with the account's nonce only then.
        self.caught_up = False
        self.last_progress_ms = 0
        self._rotation = 0
        self._validator_failed = False  # the last sync request to a validator failed
        self._decoded: tuple[bytes, CertifiedBlock] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic sync check and ask a peer for blocks at once."""
        self.last_progress_ms = self.s.now_ms
        self.s.timer(("chain", "sync"), self.s.config.sync_every_ms)
        self.sync_now(None)

    def peer_connected(self, peer: bytes) -> None:
        """Remember a sync partner."""
        if peer == self.s.me:
            return
        self.peers.pop(peer, None)
        self.peers[peer] = None
        if len(self.peers) > PEERS_MAX:
            del self.peers[next(iter(self.peers))]

    def peer_disconnected(self, peer: bytes) -> None:
        """Forget a sync partner."""
        self.peers.pop(peer, None)

    def on_timer(self, key: tuple[object, ...]) -> None:
        """The periodic sync check (ask for blocks if none arrived for a while), and the end of
        a gap's grace (ask the peer that showed the later block, if the gap is still there), and
        the end of a held sync request's wait (answer it with what we have)."""
        if key[1] == "held":
            request_id = key[2]
            assert isinstance(request_id, int)
            request = self.held.pop(request_id, None)
            if request is not None:
                self._answer_sync(request_id, request)
            return
        if key[1] == "gap":
            _, _, missing, sender = key
            assert isinstance(missing, int)
            assert isinstance(sender, bytes)
            self.gap_timers.discard(missing)
            if self.s.state.height < missing:
                self.sync_now(sender)
            return
        if key[1] != "sync":
            return
        if self.s.now_ms - self.last_progress_ms >= self.s.config.sync_every_ms:
            self.sync_now(None)
        self.s.timer(("chain", "sync"), self.s.config.sync_every_ms)

    # --- gossip ------------------------------------------------------------------------------

    def decode_block(self, data: bytes) -> CertifiedBlock:
        """Decode a gossiped block (the last one is cached: `validate` then `handle` decode the
        same bytes). Raises DecodeError."""
        cached = self._decoded
        if cached is not None and cached[0] == data:
            return cached[1]
        cb = CertifiedBlock.decode(data)
        self._decoded = (data, cb)
        return cb

    def validate(self, data: bytes) -> GossipVerdict:
        """Quick checks of a gossiped block: it decodes, is on this chain, is not old, and its
        commit certificate is a quorum of the validators (a few signature checks)."""
        try:
            cb = self.decode_block(data)
        except DecodeError as exc:
            return Reject("malformed-block", PENALTY_MALFORMED, str(exc))
        header = cb.block.header
        state = self.s.state
        if header.chain != state.genesis_hash:
            return Reject("wrong-chain", PENALTY_INVALID_BLOCK, "genesis hash differs")
        if header.height <= state.height:
            # Relay a block we hold ourselves (sync got it here first): an ignored message is not
            # forwarded, and the peers behind us in the mesh would have to sync it too.
            if self._recent_hash(header.height) == header.hash():
                return ACCEPT
            return Ignore("old-block")
        try:
            verify_commit(header, cb.commit, state.validators)
        except LedgerError as exc:
            return Reject("bad-commit", PENALTY_INVALID_BLOCK, str(exc))
        return ACCEPT

    def _recent_hash(self, height: int) -> bytes | None:
        """The hash of the block we stored at `height`, if it is among the last RELAY_BLOCKS_MAX."""
        if not self.recent:
            return None
        back = self.s.state.height - height
        if not 0 <= back < min(RELAY_BLOCKS_MAX, len(self.recent)):
            return None
        return self.recent[-1 - back].block.header.hash()

    def on_gossip(self, sender: bytes, data: bytes) -> None:
        """A block that `validate` accepted."""
        try:
            cb = self.decode_block(data)
        except DecodeError as exc:
            self.s.penalise(sender, "malformed-block", PENALTY_MALFORMED, str(exc))
            return
        height = cb.block.header.height
        tip = self.s.state.height
        if height <= tip:
            return
        if height == tip + 1:
            if self.apply(cb, sender, via="gossip") and not self.future:
                self.caught_up = True
            return
        if len(self.future) < FUTURE_BLOCKS_MAX or height < max(self.future):
            self.future[height] = (cb, sender)
            while len(self.future) > FUTURE_BLOCKS_MAX:
                del self.future[max(self.future)]
        if height == tip + 2:
            # One block missing: it is most likely still on its way through the mesh (gossip
            # reorders under load). Syncing at once would make every peer that saw the two
            # blocks out of order ask for one, a storm that slows the gossip further.
            if tip + 1 not in self.gap_timers:
                self.gap_timers.add(tip + 1)
                self.s.timer(("chain", "gap", tip + 1, sender), GAP_GRACE_MS)
            return
        self.sync_now(sender)

    # --- applying ----------------------------------------------------------------------------

    def apply(
        self,
        cb: CertifiedBlock,
        sender: bytes | None,
        known: State | None = None,
        via: str = "round",
    ) -> bool:
        """Apply the next block (its certificate and fold checked, unless `known` is the state a
        validator already computed for it), store it, tell the roles, then apply any buffered
        successors (gossiped) and answer the sync requests held for them. `via` says how the
        block came (StoreBlock.via). Returns False (and penalises `sender`) if the block is
        invalid."""
        if not self._apply_one(cb, sender, known, via):
            return False
        while True:
            nxt = self.future.pop(self.s.state.height + 1, None)
            for height in [h for h in self.future if h <= self.s.state.height]:
                del self.future[height]
            if nxt is None or not self._apply_one(nxt[0], nxt[1], None, "gossip"):
                break
        for request_id, request in list(self.held.items()):
            if request.first <= self.s.state.height:
                del self.held[request_id]
                self._answer_sync(request_id, request)
        return True

    def _apply_one(
        self, cb: CertifiedBlock, sender: bytes | None, known: State | None, via: str
    ) -> bool:
        old = self.s.state
        if known is None:
            try:
                new = self._fold(old, cb)
            except LedgerError as exc:
                if sender is not None:
                    self.s.penalise(sender, "invalid-block", PENALTY_INVALID_BLOCK, str(exc))
                self.s.log(LogLevel.WARNING, "invalid-block", str(exc))
                return False
        else:
            new = known
        self.s.state = new
        self.s.tip_commit = cb.commit
        self.s.emit(StoreBlock(cb, new, via))
        self.recent.append(cb)
        self.last_progress_ms = self.s.now_ms
        self.on_block(cb, old, new)
        return True

    def _fold(self, old: State, cb: CertifiedBlock) -> State:
        folds = self.s.folds
        if folds is None:
            return accept_block(old, cb, cache=self.s.cache)
        block_hash = cb.block.hash()
        new = folds.get(old, block_hash)
        if new is None:
            new = accept_block(old, cb, cache=self.s.cache)
            folds.put(old, block_hash, new)
        else:
            verify_commit(cb.block.header, cb.commit, old.validators)
        return new

    # --- sync (client) -----------------------------------------------------------------------

    def _pick_peer(self, hint: bytes | None) -> bytes | None:
        """The hint; else a validator (they finalise the blocks, so they have every one), in
        turn; else, or right after a validator did not answer, a connected peer in turn. A
        connected peer may be as far behind as we are: its answer then ends the attempt until
        the next periodic check (at 300 peers on two cores, a third of the peers synced each
        block from such peers, two minutes late at p50)."""
        if hint is not None and hint != self.s.me:
            return hint
        validators = [
            m.identity for m in self.s.state.validators.members if m.identity != self.s.me
        ]
        candidates = validators
        if not validators or (self._validator_failed and self.peers):
            candidates = list(self.peers)
        self._validator_failed = False
        if not candidates:
            return None
        self._rotation += 1
        return candidates[self._rotation % len(candidates)]

    def sync_now(self, hint: bytes | None, wait_ms: int = 0) -> None:
        """Ask a peer (`_pick_peer`: the hint, else a validator) for the blocks after our tip;
        with `wait_ms`, the peer may hold the request that long for the next block (a long poll,
        see the module docstring). At most SYNC_IN_FLIGHT_MAX requests are out at once: a
        peer that showed us a newer block gets asked even while a request to a silent peer waits
        for its timeout."""
        if len(self.syncing) >= SYNC_IN_FLIGHT_MAX:
            return
        peer = self._pick_peer(hint)
        if peer is None:
            return
        request = SyncRequest(self.s.state.height + 1, SYNC_BLOCKS_MAX, wait_ms)
        request_id = 0

        def on_answer(ans: Answer) -> None:
            self.syncing.discard(request_id)
            self._on_sync_answer(peer, request, ans)

        request_id = self.s.request(peer, PROTO_SYNC, request.encode(), on_answer)
        self.syncing.add(request_id)

    def _on_sync_answer(self, peer: bytes, request: SyncRequest, ans: Answer) -> None:
        if isinstance(ans, RequestFailed):
            if peer in self.s.state.validators:
                self._validator_failed = True
            if ans.kind is not FailureKind.UNREACHABLE:
                self.s.log(LogLevel.DEBUG, "sync-failed", f"{ans.kind.value}: {ans.reason}")
            return
        try:
            response = SyncResponse.decode(ans.data)
        except DecodeError as exc:
            self.s.penalise(peer, "malformed-sync", PENALTY_MALFORMED, str(exc))
            return
        state = self.s.state
        if request.first != state.height + 1:
            # Blocks arrived by gossip meanwhile: this answer starts below our tip.
            if response.tip_height > state.height:
                self.sync_now(peer)
            return
        try:
            blocks = validate_response(
                request,
                response,
                tip_height=state.height,
                tip_hash=state.tip_hash,
                chain=state.genesis_hash,
                validators=state.validators,
            )
        except SyncError as exc:
            self.s.penalise(peer, "invalid-sync", PENALTY_INVALID_BLOCK, str(exc))
            return
        via = "poll" if request.wait_ms else "sync"
        applied = 0
        for cb in blocks:
            if cb.block.header.height != self.s.state.height + 1:
                continue  # applied meanwhile (a buffered successor)
            if not self.apply(cb, peer, via=via):
                return
            applied += 1
        if response.tip_height <= self.s.state.height:
            self.caught_up = True
            if applied and self.s.config.poll_blocks:
                # This answer, not gossip, brought us to the tip: wait for the next block at
                # the same peer (see the module docstring).
                wait = min(SYNC_WAIT_MS_MAX, 2 * self.s.config.block_interval_ms)
                self.sync_now(peer, wait)
        elif blocks:
            self.sync_now(peer)

    # --- sync (server) -----------------------------------------------------------------------

    def serve(self, event: RequestReceived) -> None:
        """Answer a SyncRequest from the recent window or the archive; one that waits for our
        next block is held until we have it or its wait ends (SYNC_HELD_MAX at once)."""
        try:
            request = SyncRequest.decode(event.data)
        except DecodeError:  # the error frame carries the reason; the shell logs refusals
            self.s.emit(Respond(event.request_id, error="malformed", penalty=PENALTY_MALFORMED))
            return
        waits = request.wait_ms > 0 and request.first == self.s.state.height + 1
        if waits and len(self.held) < SYNC_HELD_MAX:
            self.held[event.request_id] = request
            self.s.timer(("chain", "held", event.request_id), request.wait_ms)
            return
        self._answer_sync(event.request_id, request)

    def _answer_sync(self, request_id: int, request: SyncRequest) -> None:
        tip = self.s.state.height
        last = min(request.first + request.count - 1, tip)
        blocks: list[CertifiedBlock] = []
        if request.first <= last:
            if self.recent and request.first >= self.recent[0].block.header.height:
                start = request.first - self.recent[0].block.header.height
                blocks = list(self.recent)[start : start + (last - request.first + 1)]
            elif self.s.archive is not None:
                blocks = list(self.s.archive.blocks(request.first, last))
            else:
                self.s.emit(Respond(request_id, error="pruned", penalty=0))
                return
        self.s.emit(Respond(request_id, data=answer(request, tip, blocks).encode()))
