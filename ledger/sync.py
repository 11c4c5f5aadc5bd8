"""Sync payloads: how a node behind the chain asks peers for blocks by height range.

A node at height h sends `SyncRequest(first=h+1, count=n, wait_ms=w)`; the peer answers with
`SyncResponse(tip_height, blocks)`: consecutive certified blocks from `first`, as many as fit its
byte budget (at least one if it has any). With `wait_ms` above 0 and no block from `first` yet, the
peer may hold the request until it has that block or `wait_ms` passed (a long poll: a node the
block gossip misses gets each block from a peer as soon as that peer has it, with one request).

The requester runs `validate_response` before anything touches its store: the response answers
this request (heights, count, size), the blocks chain to the requester's tip and to each other,
and each block's own commit certificate is checked against the validator set. The fold then
runs block by block through `Store.accept`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Annotated, Final

from ledger.block import CertifiedBlock, verify_commit
from ledger.certificates import Membership
from ledger.encoding import U32, U64, MaxItems, Record
from ledger.errors import LedgerError, SyncError

# Blocks per response: enough to catch up quickly, few enough that one bad response wastes little.
SYNC_BLOCKS_MAX: Final = 64
# Bytes per response: a responder stops adding blocks past this budget (always sending at least
# one), and the requester refuses larger responses before parsing them. Two maximal blocks fit,
# and it stays below encoding.DECODE_BYTES_MAX.
SYNC_BYTES_MAX: Final = 40 * 1024 * 1024
# Longest a requester may ask a responder to hold a request for a block it does not have yet:
# well below the request timeout (p2p.events.PROTO_SYNC, 10 s), leaving room for slow round trips.
SYNC_WAIT_MS_MAX: Final = 5000


@dataclasses.dataclass(frozen=True, slots=True)
class SyncRequest(Record):
    """Ask for up to `count` blocks starting at height `first`; a responder that has none yet may
    wait up to `wait_ms` for the first one before answering (0: answer at once)."""

    MAX_BYTES = 32
    first: U64
    count: U32
    wait_ms: U32 = 0

    def __post_init__(self) -> None:
        if self.first < 1 or not 1 <= self.count <= SYNC_BLOCKS_MAX:
            raise ValueError(f"a sync request asks for 1..{SYNC_BLOCKS_MAX} blocks from height 1")
        if self.wait_ms > SYNC_WAIT_MS_MAX:
            raise ValueError(f"a sync request waits at most {SYNC_WAIT_MS_MAX} ms")


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResponse(Record):
    """The responder's tip height and consecutive certified blocks from the requested height."""

    MAX_BYTES = SYNC_BYTES_MAX
    tip_height: U64
    blocks: Annotated[tuple[CertifiedBlock, ...], MaxItems(SYNC_BLOCKS_MAX)]


def answer(request: SyncRequest, tip_height: int, blocks: Iterable[CertifiedBlock]) -> SyncResponse:
    """Build the response from the responder's blocks `request.first...` in order (for example
    `Store.blocks(first, first + count - 1)`), within the byte budget."""
    out: list[CertifiedBlock] = []
    size = 16
    for cb in blocks:
        if len(out) >= request.count:
            break
        n = len(cb.encode())
        if out and size + n > SYNC_BYTES_MAX:
            break
        out.append(cb)
        size += n
    return SyncResponse(tip_height, tuple(out))


def validate_response(
    request: SyncRequest,
    response: SyncResponse,
    *,
    tip_height: int,
    tip_hash: bytes,
    chain: bytes,
    validators: Membership,
) -> tuple[CertifiedBlock, ...]:
    """Check that `response` answers `request` for a node whose tip is (tip_height, tip_hash):
    heights consecutive from `request.first` (which must be tip_height + 1), at most
    `request.count` blocks, each on this chain, linked to the previous one, its commit
    certificate valid. An empty response is valid only if the peer claims no block past ours.

    Raises SyncError: discard the whole response and penalise the peer. Blocks it returns still
    go through the fold (`Store.accept`) one by one."""
    if request.first != tip_height + 1:
        raise SyncError("the request does not start right after our tip (local misuse)")
    blocks = response.blocks
    if len(blocks) > request.count:
        raise SyncError(f"{len(blocks)} blocks answer a request for {request.count}")
    if not blocks:
        if response.tip_height > tip_height:
            raise SyncError("the peer claims a longer chain but sent no block")
        return blocks
    parent = tip_hash
    for offset, cb in enumerate(blocks):
        header = cb.block.header
        if header.height != request.first + offset:
            raise SyncError(
                f"block {offset} has height {header.height}, not {request.first + offset}"
            )
        if header.chain != chain:
            raise SyncError(f"block {header.height} is from another chain")
        if header.parent_hash != parent:
            raise SyncError(f"block {header.height} does not link to its predecessor")
        try:
            verify_commit(header, cb.commit, validators)
        except LedgerError as exc:
            raise SyncError(f"block {header.height}: {exc}") from None
        parent = header.hash()
    if response.tip_height < blocks[-1].block.header.height:
        raise SyncError("the peer's tip is below the blocks it sent")
    return blocks
