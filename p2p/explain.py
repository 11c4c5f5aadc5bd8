"""`posi-peer why TASK`: why this node was or was not drawn for a task, from its store and keys.

Everything is recomputed offline from the stored chain: the task record (its seed, recorded total
stake, roster and executor), the operator's record, and the node's own VRF key. The ledger keeps
only the state at the tip, so eligibility (status, capacity, stake) is judged as of the tip; the
weight is recomputed exactly as sortition did (same seed, same recorded total stake). For a roster
member, its rank among the candidates comes from the members' CREDENTIAL transactions
(`p2p.admission.member_priority`), the order in which the executor agreement tries them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import vrf
from committee import sortition
from committee.credentials import NotSelectedReason
from ledger.state import State, TaskStatus, task_seed
from ledger.tx import Credential, Transaction
from p2p.admission import ineligibility, member_priority


class _Store(Protocol):
    state: State

    def transaction(self, tx_hash: bytes) -> tuple[int, Transaction] | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of `explain_draw`. `known` is False when the task is not on this node's chain."""

    task_id: bytes
    known: bool
    drawn: bool
    reason: str  # a NotSelectedReason value, or "drawn", "executor", "unknown-task", "seeding"...
    detail: str
    height: int
    status: str | None = None
    weight: int = 0
    rank: int | None = None
    candidates: int = 0

    def as_json(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        doc = dataclasses.asdict(self)
        doc["task_id"] = self.task_id.hex()
        return doc

    def text(self) -> str:
        """One or two lines for people."""
        head = f"task {self.task_id.hex()[:16]}"
        if self.status:
            head += f" ({self.status.lower()})"
        verdict = "DRAWN" if self.drawn else "NOT DRAWN" if self.known else "UNKNOWN"
        return f"{head}: {verdict} [{self.reason}] {self.detail}  (as of height {self.height})"


def _roster_rank(store: _Store, roster: tuple[Any, ...], me: bytes) -> int | None:
    """0-based rank of `me` among the roster's candidates (lowest priority first)."""
    ranked = []
    for member in roster:
        found = store.transaction(member.credential)
        if found is None:
            return None
        body = found[1].body()
        if not isinstance(body, Credential):
            return None
        ranked.append((member_priority(body.vrf_proof, member.weight), member.identity))
    ranked.sort()
    for rank, (_, identity) in enumerate(ranked):
        if identity == me:
            return rank
    return None


def explain_draw(
    store: _Store, task_id: bytes, identity: bytes, vrf_key: vrf.SecretKey | None
) -> Explanation:
    """Why `identity` (with `vrf_key`) was or was not drawn for `task_id`, per the store."""
    state = store.state
    height = state.height
    task = state.task(task_id)
    if task is None:
        return Explanation(
            task_id,
            False,
            False,
            "unknown-task",
            "no such task on this node's chain: not included yet, or this node is behind "
            "(let it sync) or on another chain",
            height,
        )
    status = task.status.name
    base = {"task_id": task_id, "known": True, "height": height, "status": status}
    members = {m.identity: m for m in task.roster}
    if identity in members:
        member = members[identity]
        rank = _roster_rank(store, task.roster, identity)
        role = "executor" if task.executor == identity else "drawn"
        detail = f"on the roster with weight {member.weight} of {task.roster_weight()}"
        if rank is not None:
            detail += f", candidate rank {rank + 1} of {len(task.roster)}"
        if task.executor == identity:
            detail += f"; chosen executor of attempt {task.attempt}"
        elif task.executor is not None:
            detail += f"; verifier (executor {task.executor.hex()[:16]})"
        return Explanation(
            **base,
            drawn=True,
            reason=role,
            detail=detail,
            weight=member.weight,
            rank=rank,
            candidates=len(task.roster),
        )
    seed = task.seed
    total = task.total_stake
    if seed is None:
        if task.status is TaskStatus.SEEDING and task.posted_height + 1 == height:
            seed, total = task_seed(task_id, state.tip_hash), state.globals.active_stake
        else:
            return Explanation(
                **base,
                drawn=False,
                reason="seeding",
                detail=f"the seed is fixed by the block after the one that included it "
                f"(height {task.posted_height + 1}); this node is not there yet",
            )
    op = state.operator(identity)
    if op is None:
        return Explanation(
            **base,
            drawn=False,
            reason=NotSelectedReason.NOT_REGISTERED.value,
            detail="this identity is not a registered operator",
        )
    if vrf_key is None:
        return Explanation(
            **base,
            drawn=False,
            reason=NotSelectedReason.VRF_KEY_MISMATCH.value,
            detail="this data directory has no vrf.key",
        )
    if op.vrf_key != vrf_key.public_key.key:
        return Explanation(
            **base,
            drawn=False,
            reason=NotSelectedReason.VRF_KEY_MISMATCH.value,
            detail="the local VRF key is not the one registered on the ledger",
        )
    why = ineligibility(state, identity, task)
    if why is not None and why.reason is not NotSelectedReason.OVER_CAPACITY:
        return Explanation(**base, drawn=False, reason=why.reason.value, detail=why.detail)
    beta = vrf_key.prove(seed).to_hash()
    if total < 1 or op.stake > total:
        return Explanation(
            **base,
            drawn=False,
            reason=NotSelectedReason.STALE_STAKE.value,
            detail=f"stake {op.stake} exceeds the round's recorded total {total}",
        )
    weight = sortition.select_weight(beta, op.stake, task.tau, total)
    if weight == 0:
        return Explanation(
            **base,
            drawn=False,
            reason=NotSelectedReason.WEIGHT_ZERO.value,
            detail=f"sortition drew no sub-user (stake {op.stake} of {total}, tau {task.tau})",
        )
    if why is not None:  # over capacity now; it may not have been at draw time
        return Explanation(
            **base,
            drawn=False,
            reason=why.reason.value,
            detail=f"sortition gives weight {weight}, but {why.detail}",
            weight=weight,
        )
    if task.status in (TaskStatus.SEEDING, TaskStatus.DRAWING):
        detail = (
            f"drawn with weight {weight}; the credential is not on the ledger yet (window "
            f"closes before height {task.draw_until})"
        )
        reason = "pending"
    else:
        detail = (
            f"sortition gives weight {weight}, but no credential of this node reached the "
            f"ledger before height {task.draw_until} (node offline, behind, or late)"
        )
        reason = "credential-missing"
    return Explanation(**base, drawn=False, reason=reason, detail=detail, weight=weight)
