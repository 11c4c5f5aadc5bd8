"""The poster role: sign and gossip a task, follow it block by block to its result, fetch the
output and check it against the certified report.

The POST_TASK transaction is a pinned outbox entry (its task id depends on its nonce, so it is
never re-signed): it is gossiped once and re-sent to the next proposers while no block includes
it. When the ledger completes the task, the poster asks the executor (then the other roster
members that re-executed it) for the report and output (PROTO_OUTPUT) and accepts them only if
the report's digest is the one the ledger certified, the output's hash is the one the report
attests, and the result certificate verifies against the task's roster.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from executor.report import UnverifiedReport
from executor.spec import JobSpec
from ledger.block import CertifiedBlock
from ledger.certificates import (
    CertificateError,
    Membership,
    QuorumCertificate,
    VoteKind,
    result_round_id,
    verify_certificate,
)
from ledger.domains import Domain, digest
from ledger.errors import DecodeError
from ledger.state import State, Task, TaskStatus
from ledger.tx import PostTask, TaskResult, TxKind, derived_id
from p2p.events import (
    PROTO_OUTPUT,
    TOPIC_TASKS,
    CoreMisuse,
    FollowTask,
    LogLevel,
    Publish,
    RequestFailed,
    ResultReady,
    SubmitTask,
    TaskPhase,
    TaskSubmitted,
)
from p2p.outbox import Wanted
from p2p.roles.base import Answer, Services
from p2p.wire import OutputResponse, TaskRequest

# Tasks followed at once: a poster submits a handful; `posi-peer result` follows one.
FOLLOWED_MAX: Final = 1024
# Submissions waiting for the node to reach the chain's tip (a poster signs with its account's
# next nonce, which a stale state gets wrong).
DEFERRED_MAX: Final = 64
# Output fetch attempts (cycling through the executor and the other roster members) and the pause
# between rounds of attempts.
FETCH_TRIES_MAX: Final = 12
FETCH_RETRY_MS: Final = 1000
# A peer that serves an output that does not match the certified report lied (or served another
# attempt's): invalid, not fatal.
PENALTY_BAD_OUTPUT: Final = 25
_NO_CERTIFICATE: Final = "no valid result certificate"
# How a REDRAWN event's detail starts when the ledger dropped a roster below its minimum weight
# (the simulator counts those windows apart from empty ones).
LIGHT_WINDOW: Final = "credentials of weight"


@dataclasses.dataclass(slots=True)
class _Followed:
    task_id: bytes
    status: TaskStatus | None = None
    roster_weight: int = 0  # while DRAWING: the weight of the credentials landed so far
    certificate: QuorumCertificate | None = None
    tries: int = 0
    fetching: bool = False
    done: bool = False


class PosterRole:
    """Posts and follows tasks (see the module docstring)."""

    def __init__(self, s: Services) -> None:
        self.s = s
        self.followed: dict[bytes, _Followed] = {}
        self.deferred: list[SubmitTask] = []
        s.on_lost = self._lost

    # --- commands ----------------------------------------------------------------------------

    def submit(self, event: SubmitTask, *, caught_up: bool) -> None:
        """Sign, gossip and follow a task, once the node reached the chain's tip (until then the
        submission waits, see `flush`). Raises CoreMisuse naming what is wrong with it."""
        self._check_submission(event)
        if caught_up:
            self._submit(event)
            return
        if len(self.deferred) >= DEFERRED_MAX:
            raise CoreMisuse(f"{DEFERRED_MAX} submissions already wait for the node to sync")
        self.deferred.append(event)
        self.s.log(LogLevel.INFO, "submit-waits-for-sync", f"ref {event.ref}")

    def flush(self) -> None:
        """Submit what waited for the node to reach the tip."""
        deferred, self.deferred = self.deferred, []
        for event in deferred:
            try:
                self._check_submission(event)
            except CoreMisuse as exc:  # the state changed since: say so, do not raise here
                self.s.log(LogLevel.ERROR, "submit-refused", f"ref {event.ref}: {exc}")
                continue
            self._submit(event)

    def _check_submission(self, event: SubmitTask) -> None:
        state = self.s.state
        params = state.params
        try:
            JobSpec.decode(event.job_spec)
        except DecodeError as exc:
            raise CoreMisuse(f"SubmitTask.job_spec is not a valid JobSpec: {exc}") from None
        if event.fee < params.min_task_fee:
            raise CoreMisuse(f"fee {event.fee} is below min_task_fee {params.min_task_fee}")
        if not 1 <= event.tau <= params.tau_max:
            raise CoreMisuse(f"tau {event.tau} is outside [1, {params.tau_max}] (chain tau_max)")
        account = state.account(self.s.me)
        if account is None or account.balance < event.fee:
            held = 0 if account is None else account.balance
            raise CoreMisuse(f"the poster's account holds {held}, the fee is {event.fee}")
        if len(self.followed) >= FOLLOWED_MAX:
            raise CoreMisuse(f"already following {FOLLOWED_MAX} tasks")

    def _submit(self, event: SubmitTask) -> None:
        state = self.s.state
        body = PostTask(event.job_spec, event.fee, event.tau)
        tx = self.s.outbox.sign_pinned(body, state)
        task_id = derived_id(Domain.TASK_ID, tx, state.genesis_hash)

        def needed(st: State) -> bool:
            return st.task(task_id) is None

        wanted = Wanted(("post", task_id), body, needed, needed, pinned=True, tx=tx)
        wanted.sent_height = state.height
        self.s.outbox.add(wanted)
        data = tx.encode()
        self.s.emit(Publish(TOPIC_TASKS, data))
        if self.s.mempool is not None:
            self.s.send_txs([tx])
        self.s.emit(TaskSubmitted(event.ref, task_id, data))
        self.s.task_event(task_id, TaskPhase.POSTED, f"fee {event.fee}, tau {event.tau}")
        self.followed[task_id] = _Followed(task_id)

    def follow(self, event: FollowTask) -> None:
        """Follow a task posted earlier; fetch its output at once if it already completed."""
        if event.task_id in self.followed:
            return
        if len(self.followed) >= FOLLOWED_MAX:
            raise CoreMisuse(f"already following {FOLLOWED_MAX} tasks")
        f = _Followed(event.task_id)
        self.followed[event.task_id] = f
        self._update(f, self.s.state)

    def _lost(self, wanted: Wanted) -> None:
        key = wanted.key
        if isinstance(key, tuple) and key[0] == "post":
            task_id = key[1]
            assert isinstance(task_id, bytes)
            self.s.task_event(
                task_id,
                TaskPhase.FAILED,
                "another transaction of this account took the task's nonce: submit it again",
            )
            self.followed.pop(task_id, None)

    # --- blocks ------------------------------------------------------------------------------

    def on_block(self, cb: CertifiedBlock, new: State) -> None:
        """Follow the tasks a new block touched."""
        if not self.followed:
            return
        for tx in cb.block.txs:
            if tx.kind == TxKind.TASK_RESULT:
                body = tx.body()
                assert isinstance(body, TaskResult)
                f = self.followed.get(body.task_id)
                if f is not None and body.certificate.kind == VoteKind.RESULT_ACCEPT:
                    f.certificate = body.certificate
        for f in list(self.followed.values()):
            self._update(f, new)

    def _update(self, f: _Followed, state: State) -> None:
        task = state.task(f.task_id)
        if task is None or f.done:
            return
        if task.status == TaskStatus.DRAWING:
            f.roster_weight = task.roster_weight()
        if task.status == f.status:
            return
        previous, f.status = f.status, task.status
        if previous is None:
            self.s.task_event(f.task_id, TaskPhase.INCLUDED, f"height {task.posted_height}")
        if task.status == TaskStatus.DRAWING and previous in (None, TaskStatus.SEEDING):
            self.s.task_event(f.task_id, TaskPhase.SEED, task.seed.hex() if task.seed else "")
        elif task.status == TaskStatus.SEEDING and previous == TaskStatus.DRAWING:
            window, block = task.draw_until, task.seed_height()
            if f.roster_weight:  # the ledger dropped a roster below its minimum weight
                least = state.params.min_roster_weight(task.tau)
                landed = f"{LIGHT_WINDOW} {f.roster_weight} (minimum {least})"
            else:
                landed = "no credential"
            detail = f"{landed} by height {window}; new seed from block {block}"
            self.s.task_event(f.task_id, TaskPhase.REDRAWN, detail)
        elif task.status == TaskStatus.ELECTING:
            self.s.task_event(
                f.task_id, TaskPhase.ROSTER, f"{len(task.roster)} members, attempt {task.attempt}"
            )
        elif task.status == TaskStatus.EXECUTING:
            executor = task.executor.hex()[:16] if task.executor else "?"
            self.s.task_event(f.task_id, TaskPhase.EXECUTOR_CONFIRMED, f"ledger: {executor}")
        elif task.status == TaskStatus.COMPLETED:
            digest_hex = task.report_digest.hex() if task.report_digest else ""
            self.s.task_event(f.task_id, TaskPhase.CERTIFIED, digest_hex)
            self.s.task_event(f.task_id, TaskPhase.PAID, f"height {task.closed_height}")
            self._fetch(f)
        elif task.status in (TaskStatus.FAILED, TaskStatus.EXPIRED):
            phase = TaskPhase.EXPIRED if task.status == TaskStatus.EXPIRED else TaskPhase.FAILED
            self.s.task_event(f.task_id, phase, f"refunded at height {task.closed_height}")
            f.done = True
            del self.followed[f.task_id]

    # --- fetching the output -----------------------------------------------------------------

    def _sources(self, task: Task) -> list[bytes]:
        first = [task.executor] if task.executor is not None else []
        return first + [m.identity for m in task.roster if m.identity != task.executor]

    def _fetch(self, f: _Followed) -> None:
        task = self.s.state.task(f.task_id)
        if task is None or f.fetching or f.done:
            return
        sources = [p for p in self._sources(task) if p != self.s.me]
        if not sources:
            return
        peer = sources[f.tries % len(sources)]
        f.tries += 1
        f.fetching = True
        request = TaskRequest(f.task_id, task.attempt).encode()

        def on_answer(ans: Answer) -> None:
            self._on_output(f, peer, ans)

        self.s.request(peer, PROTO_OUTPUT, request, on_answer)

    def on_timer(self, key: tuple[object, ...]) -> None:
        """("poster", "fetch", task id): try the next source."""
        task_id = key[2]
        f = self.followed.get(task_id) if isinstance(task_id, bytes) else None
        if f is not None:
            self._fetch(f)

    def _retry(self, f: _Followed) -> None:
        f.fetching = False
        if f.tries < FETCH_TRIES_MAX:
            self.s.timer(("poster", "fetch", f.task_id), FETCH_RETRY_MS)
        else:
            self.s.task_event(f.task_id, TaskPhase.FAILED, "no roster member served the output")
            f.done = True
            self.followed.pop(f.task_id, None)

    def _on_output(self, f: _Followed, peer: bytes, ans: Answer) -> None:
        if f.done:
            return
        if isinstance(ans, RequestFailed):
            self._retry(f)
            return
        task = self.s.state.task(f.task_id)
        assert task is not None
        assert task.report_digest is not None
        problem = self._check(f, task, ans.data)
        if isinstance(problem, str):
            if problem != _NO_CERTIFICATE:  # a member may not know the certificate: no blame
                self.s.penalise(peer, "bad-output", PENALTY_BAD_OUTPUT, problem)
            self.s.log(LogLevel.WARNING, "bad-output", problem)
            self._retry(f)
            return
        response, certificate, roster = problem
        f.done = True
        f.fetching = False
        del self.followed[f.task_id]
        self.s.emit(
            ResultReady(
                f.task_id,
                task.attempt,
                response.report,
                task.report_digest,
                response.output,
                certificate,
                roster,
                task.closed_height or self.s.state.height,
            )
        )
        self.s.task_event(f.task_id, TaskPhase.OUTPUT_FETCHED, f"{len(response.output)} bytes")

    def _check(
        self, f: _Followed, task: Task, data: bytes
    ) -> str | tuple[OutputResponse, QuorumCertificate, Membership]:
        try:
            response = OutputResponse.decode(data)
            report = UnverifiedReport.decode(response.report)
        except DecodeError as exc:
            return f"undecodable answer: {exc}"
        if digest(Domain.REPORT, response.report) != task.report_digest:
            return "the report is not the certified one"
        if report.body.output_hash != digest(Domain.OUTPUT, response.output):
            return "the output does not match the report's output hash"
        roster = Membership.roster(task.roster)
        for certificate in (f.certificate, response.certificate):
            if certificate is None:
                continue
            try:
                verified = verify_certificate(
                    certificate,
                    roster,
                    kind=VoteKind.RESULT_ACCEPT,
                    context=result_round_id(f.task_id, task.attempt),
                )
            except CertificateError:
                continue
            if verified.value == task.report_digest:
                return response, certificate, roster
        return _NO_CERTIFICATE
