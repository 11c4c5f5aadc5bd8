"""The result certificate a poster keeps: everything needed to check a task's output offline.

A `ResultCertificate` file (canonical msgpack) holds the task id, the job spec the task carried,
the executor's signed report, the output, the roster's RESULT_ACCEPT certificate, and a ledger
`RecordProof` of the task's record. `verify_result(cert, genesis)` checks the chain of trust from
the genesis file alone:

1. the proof: the header is final (a COMMIT quorum of the genesis validators) and the task record
   is in its state (`ledger.proofs.verify_proof`); the record is COMPLETED;
2. the job spec is the task's (`spec_digest`), the report is the one the ledger recorded
   (`report_digest`);
3. the certificate is a RESULT_ACCEPT quorum of the task's roster (from the proven record) over
   that report digest, for the round `result_round_id(task, attempt)`;
4. the report is signed by the executor the roster chose and agrees with the spec
   (`executor.verify.verify_report`);
5. the output hashes to the report's `output_hash`.

What it cannot prove: the report's figures are the executor's statement (see executor/README.md);
for a deterministic job, the certificate says a quorum of the roster re-executed and agreed.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Final

from executor.report import UnverifiedReport, report_digest
from executor.sandbox import output_hash
from executor.spec import JOB_SPEC_BYTES_MAX, OUTPUT_BYTES_MAX_MAX
from executor.verify import TaskView, VerifyPolicy, verify_report
from ledger.certificates import (
    Membership,
    QuorumCertificate,
    VoteKind,
    result_round_id,
    verify_certificate,
)
from ledger.domains import Domain, digest
from ledger.encoding import U8, Hash, MaxLen, Record
from ledger.errors import DecodeError, LedgerError
from ledger.genesis import Genesis
from ledger.proofs import PROOF_BYTES_MAX, RecordProof, verify_proof
from ledger.state import Task, TaskStatus, task_key
from p2p.errors import P2PError

REPORT_FIELD_BYTES_MAX: Final = UnverifiedReport.MAX_BYTES
# The whole file: spec + report + output + certificate + proof, each at its own bound.
RESULT_CERT_BYTES_MAX: Final = (
    JOB_SPEC_BYTES_MAX
    + REPORT_FIELD_BYTES_MAX
    + OUTPUT_BYTES_MAX_MAX
    + QuorumCertificate.MAX_BYTES
    + PROOF_BYTES_MAX
    + 1024
)


class ResultInvalid(P2PError):
    """The result certificate does not verify: do not trust its output. The message names the
    failed step."""


@dataclasses.dataclass(frozen=True, slots=True)
class ResultCertificate(Record):
    """A task's output with the evidence that the roster certified it (see the module doc)."""

    MAX_BYTES = RESULT_CERT_BYTES_MAX
    task_id: Hash
    attempt: U8
    job_spec: Annotated[bytes, MaxLen(JOB_SPEC_BYTES_MAX)]
    report: Annotated[bytes, MaxLen(REPORT_FIELD_BYTES_MAX)]
    output: Annotated[bytes, MaxLen(OUTPUT_BYTES_MAX_MAX)]
    certificate: QuorumCertificate
    proof: RecordProof


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedResult:
    """What `verify_result` proved."""

    task_id: bytes
    attempt: int
    height: int
    task: Task
    report: UnverifiedReport
    output: bytes


def decode_result(data: bytes) -> ResultCertificate:
    """Decode a result certificate file. Raises ResultInvalid if it is not one."""
    try:
        return ResultCertificate.decode(data)
    except DecodeError as exc:
        raise ResultInvalid(f"not a result certificate: {exc}") from None


def verify_result(cert: ResultCertificate, genesis: Genesis) -> VerifiedResult:
    """Check a result certificate offline against the chain's genesis (steps in the module doc).

    Raises ResultInvalid naming the step that failed."""
    try:
        proven = verify_proof(cert.proof, genesis)
    except LedgerError as exc:
        raise ResultInvalid(f"the ledger proof does not verify: {exc}") from None
    if proven.key != task_key(cert.task_id) or not isinstance(proven.record, Task):
        raise ResultInvalid("the proof is not about this task's record")
    task = proven.record
    if task.status is not TaskStatus.COMPLETED:
        raise ResultInvalid(f"the task is {task.status.name}, not COMPLETED, in the proven state")
    if task.attempt != cert.attempt:
        raise ResultInvalid(f"the ledger completed attempt {task.attempt}, not {cert.attempt}")
    if digest(Domain.JOB_SPEC, cert.job_spec) != task.spec_digest:
        raise ResultInvalid("the job spec is not the one the task carries")
    try:
        report = UnverifiedReport.decode(cert.report)
    except DecodeError as exc:
        raise ResultInvalid(f"the report does not decode: {exc}") from None
    digest_of_report = report_digest(report)
    if task.report_digest != digest_of_report:
        raise ResultInvalid("the report is not the one the ledger recorded")
    if task.executor is None:
        raise ResultInvalid("the proven task names no executor")
    try:
        verified = verify_certificate(cert.certificate, Membership.roster(task.roster))
    except (LedgerError, ValueError) as exc:
        raise ResultInvalid(f"the result certificate is not the roster's: {exc}") from None
    if (
        verified.kind is not VoteKind.RESULT_ACCEPT
        or verified.context != result_round_id(cert.task_id, cert.attempt)
        or verified.value != digest_of_report
    ):
        raise ResultInvalid(
            "the certificate does not accept this report for this task and attempt "
            f"(kind {verified.kind.name})"
        )
    verdict = verify_report(
        TaskView(cert.task_id, cert.job_spec, task.executor), report, VerifyPolicy()
    )
    if not verdict.accepted:
        raise ResultInvalid(f"the report does not verify: {verdict.reason.name}: {verdict.detail}")
    if output_hash(cert.output) != report.body.output_hash:
        raise ResultInvalid("the output does not hash to the report's output_hash")
    return VerifiedResult(
        task_id=cert.task_id,
        attempt=cert.attempt,
        height=proven.height,
        task=task,
        report=report,
        output=cert.output,
    )
