"""Verification of attestation reports (pure: no clock, no I/O, no Docker).

`verify_report(task, report, policy)` checks, in this order, and stops at the first failure:

1. the bytes decode to a canonical `UnverifiedReport`               -> MALFORMED
2. the signature verifies under the key the report names            -> BAD_SIGNATURE
3. the report version is known                                      -> VERSION_UNSUPPORTED
4. that key is the executor the committee chose for the task        -> WRONG_EXECUTOR
5. the task id and the spec hash are the task's                     -> WRONG_TASK, SPEC_MISMATCH
6. the runtime is one the verifier accepts                          -> RUNTIME_NOT_ALLOWED
7. the outcome agrees with the spec (a valid spec cannot be
   SPEC_INVALID, an invalid one can be nothing else)                -> INCONSISTENT
8. input hash, image digest, policy digest equal what the verifier
   computes from the task                                           -> INPUT_/IMAGE_/POLICY_MISMATCH
9. the software measurement is accepted                             -> SOFTWARE_NOT_ALLOWED
10. the figures respect the limits (run time, output, memory, pids,
    CPU) and the outcome agrees with them                           -> LIMIT_EXCEEDED, INCONSISTENT
11. the TEE quote, when present or required, verifies                -> TEE_INVALID, TEE_REQUIRED

An accepted verdict carries a `VerifiedReport`; only that type should reach vote counting or the
ledger. A report that honestly says the job timed out or the image is missing is *accepted*: the
report is true. What the committee does with an unsuccessful outcome is its own decision.

`compare_reexecution` is the second, optional check for deterministic jobs: the verifier runs the
job itself (`executor.run.reexecute`) and compares outcome, exit code and output hash.
"""

from __future__ import annotations

import dataclasses
import enum

from executor.errors import TeeError
from executor.policy import CFS_PERIOD_US, POLICY_VERSION, Runtime, effective_policy
from executor.report import (
    REPORT_VERSION,
    Outcome,
    ReportBody,
    UnverifiedReport,
    report_digest,
    tee_report_data,
)
from executor.spec import JobSpec, spec_hash_of
from executor.tee import TeeVerifier
from ledger.domains import Domain, hasher
from ledger.errors import DecodeError, SignatureError
from ledger.signing import verify_signature

# The deadline kill is asynchronous: the sandbox notices the deadline, sends SIGKILL and waits for
# the engine to report the exit. 2 s covers a loaded engine; a report claiming more is lying.
KILL_SLACK_US = 2_000_000
# CPU accounting may run ahead of the CFS quota by up to one period at the edges of the run; allow
# two periods plus 10 % for sampling skew before calling the figure impossible.
CPU_SLACK_PERIODS = 2

# The cgroup charges a page before it reclaims or OOM-kills, so a sampled peak of a job that ran
# into its limit can read a few pages above it (seen: 4 KiB over a 64 MiB limit). Honest reports
# must not fail on that; a real overrun is far larger.
MEMORY_SAMPLE_SLACK_BYTES = 256 * 1024


class VerdictReason(enum.IntEnum):
    """Machine-readable reason of a verdict (stable numbers: they may appear in votes)."""

    OK = 0
    MALFORMED = 1
    VERSION_UNSUPPORTED = 2
    BAD_SIGNATURE = 3
    WRONG_EXECUTOR = 4
    WRONG_TASK = 5
    SPEC_MISMATCH = 6
    RUNTIME_NOT_ALLOWED = 7
    INCONSISTENT = 8
    INPUT_MISMATCH = 9
    IMAGE_MISMATCH = 10
    POLICY_MISMATCH = 11
    SOFTWARE_NOT_ALLOWED = 12
    LIMIT_EXCEEDED = 13
    TEE_REQUIRED = 14
    TEE_INVALID = 15
    OUTPUT_MISMATCH = 16  # re-execution gave another result
    NOT_REEXECUTABLE = 17  # the job is not deterministic: re-execution cannot judge it


@dataclasses.dataclass(frozen=True, slots=True)
class TaskView:
    """What a verifier knows about a task from the ledger and the committee's decision."""

    task_id: bytes
    job_spec: bytes  # the spec bytes exactly as the task carries them (valid or not)
    executor_key: bytes  # identity key of the member the committee chose to execute


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """What a verifier accepts. Validated at construction (raises ValueError on misuse)."""

    allowed_runtimes: frozenset[Runtime] = frozenset({Runtime.RUNC, Runtime.RUNSC})
    # None accepts any measurement: fine on a test network, but a real network should pin the
    # releases it trusts (the measurement is self-reported unless a TEE quote attests it).
    accepted_software: frozenset[bytes] | None = None
    require_tee: bool = False
    tee_verifier: TeeVerifier | None = None

    def __post_init__(self) -> None:
        if not self.allowed_runtimes or not all(
            isinstance(r, Runtime) for r in self.allowed_runtimes
        ):
            raise ValueError("allowed_runtimes must be a non-empty set of Runtime")
        if self.accepted_software is not None and any(
            type(m) is not bytes or len(m) != 32 for m in self.accepted_software
        ):
            raise ValueError("accepted_software holds 32-byte measurements")
        if self.require_tee and self.tee_verifier is None:
            raise ValueError("require_tee needs a tee_verifier")


@dataclasses.dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A report that passed `verify_report` for `spec` (None when the spec was invalid)."""

    report: UnverifiedReport
    spec: JobSpec | None
    digest: bytes  # report_digest(report): how the ledger refers to it

    @property
    def body(self) -> ReportBody:
        """The verified body."""
        return self.report.body


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """The result of a check: accepted or not, why (machine-readable) and a human detail."""

    accepted: bool
    reason: VerdictReason
    detail: str
    report: VerifiedReport | None = None


def _reject(reason: VerdictReason, detail: str) -> Verdict:
    return Verdict(False, reason, detail)


def verify_report(
    task: TaskView, report: UnverifiedReport | bytes, policy: VerifyPolicy
) -> Verdict:
    """Check a report against its task and the verifier's policy. Never raises on any report input:
    every failure is a rejected Verdict with its reason (see the module docstring for the order)."""
    if isinstance(report, bytes | bytearray):
        try:
            report = UnverifiedReport.decode(bytes(report))
        except DecodeError as exc:
            return _reject(VerdictReason.MALFORMED, str(exc))
    body = report.body
    try:
        verify_signature(
            body.executor_key, Domain.REPORT_SIG, report.signed_message(), report.signature
        )
    except SignatureError as exc:
        return _reject(VerdictReason.BAD_SIGNATURE, str(exc))
    if body.version != REPORT_VERSION:
        return _reject(
            VerdictReason.VERSION_UNSUPPORTED,
            f"report version {body.version} (know {REPORT_VERSION})",
        )
    if body.executor_key != task.executor_key:
        return _reject(
            VerdictReason.WRONG_EXECUTOR,
            f"signed by {body.executor_key.hex()[:16]}, the task's executor is "
            f"{task.executor_key.hex()[:16]}",
        )
    if body.task_id != task.task_id:
        return _reject(VerdictReason.WRONG_TASK, "report is about another task")
    if body.spec_hash != spec_hash_of(task.job_spec):
        return _reject(VerdictReason.SPEC_MISMATCH, "report names another job spec")
    if body.runtime not in policy.allowed_runtimes:
        return _reject(
            VerdictReason.RUNTIME_NOT_ALLOWED, f"runtime {body.runtime.name} is not accepted"
        )

    try:
        spec: JobSpec | None = JobSpec.decode(task.job_spec)
    except DecodeError as exc:
        spec = None
        spec_error = str(exc)
    if spec is None:
        verdict = _check_invalid_spec_report(body, spec_error)
    else:
        verdict = _check_against_spec(body, spec)
    if verdict is not None:
        return verdict

    if policy.accepted_software is not None and (
        body.software_measurement not in policy.accepted_software
    ):
        return _reject(
            VerdictReason.SOFTWARE_NOT_ALLOWED,
            f"software measurement {body.software_measurement.hex()[:16]} is not accepted",
        )
    if report.tee_quote is not None:
        if policy.tee_verifier is None:
            return _reject(VerdictReason.TEE_INVALID, "report carries a quote; no verifier")
        try:
            policy.tee_verifier.verify(
                report.tee_quote, tee_report_data(body), body.software_measurement
            )
        except TeeError as exc:
            return _reject(VerdictReason.TEE_INVALID, str(exc))
    elif policy.require_tee:
        return _reject(VerdictReason.TEE_REQUIRED, "policy requires a TEE quote; none present")
    return Verdict(
        True,
        VerdictReason.OK,
        body.outcome.name,
        VerifiedReport(report, spec, report_digest(report)),
    )


def _check_invalid_spec_report(body: ReportBody, spec_error: str) -> Verdict | None:
    if body.outcome is not Outcome.SPEC_INVALID:
        return _reject(
            VerdictReason.INCONSISTENT,
            f"the task's spec is invalid ({spec_error}) but the report says {body.outcome.name}",
        )
    if body.input_hash is not None or body.policy_digest is not None:
        return _reject(VerdictReason.INCONSISTENT, "an invalid spec has no input or policy digest")
    return _check_not_run(body)


def _check_not_run(body: ReportBody) -> Verdict | None:
    usage = body.usage
    if (
        body.exit_code is not None
        or body.phases.run_us != 0
        or usage.stdout_bytes
        or usage.stderr_bytes
        or body.output_hash != _EMPTY_OUTPUT_HASH
    ):
        return _reject(
            VerdictReason.INCONSISTENT, f"outcome {body.outcome.name} but the report shows a run"
        )
    return None


def _check_against_spec(body: ReportBody, spec: JobSpec) -> Verdict | None:
    if body.outcome is Outcome.SPEC_INVALID:
        return _reject(VerdictReason.INCONSISTENT, "the task's spec is valid; report says invalid")
    if body.input_hash != spec.input_hash():
        return _reject(VerdictReason.INPUT_MISMATCH, "input hash differs from the task's input")
    if body.outcome is Outcome.IMAGE_MISSING:
        if body.image_digest is not None:
            return _reject(VerdictReason.INCONSISTENT, "IMAGE_MISSING names an image digest")
    elif body.outcome is Outcome.IMAGE_MISMATCH:
        if body.image_digest is None or body.image_digest == spec.image_digest:
            return _reject(
                VerdictReason.INCONSISTENT, "IMAGE_MISMATCH must name the digest found instead"
            )
    elif body.image_digest != spec.image_digest and (
        body.outcome.container_ran or body.image_digest is not None
    ):
        return _reject(
            VerdictReason.IMAGE_MISMATCH,
            f"ran image {body.image_digest}, the task pins {spec.image_digest}",
        )
    policy = effective_policy(spec, body.runtime)
    if policy.version != POLICY_VERSION or body.policy_digest != policy.policy_digest():
        return _reject(
            VerdictReason.POLICY_MISMATCH,
            "policy digest differs from the effective policy of this spec and runtime",
        )
    if not body.outcome.container_ran:
        return _check_not_run(body)
    return _check_limits(body, spec, policy.pids_limit)


def _check_limits(body: ReportBody, spec: JobSpec, pids_limit: int) -> Verdict | None:
    limits = spec.limits
    usage = body.usage
    run_us = body.phases.run_us
    wall_us = limits.wall_time_ms * 1000
    captured = usage.stdout_bytes + usage.stderr_bytes
    if run_us > wall_us + KILL_SLACK_US:
        return _reject(
            VerdictReason.LIMIT_EXCEEDED, f"run took {run_us} us, limit {wall_us} us + kill slack"
        )
    if captured > limits.output_bytes_max:
        return _reject(
            VerdictReason.LIMIT_EXCEEDED,
            f"captured {captured} output bytes, limit {limits.output_bytes_max}",
        )
    if (
        usage.peak_memory_bytes is not None
        and usage.peak_memory_bytes > limits.memory_bytes + MEMORY_SAMPLE_SLACK_BYTES
    ):
        return _reject(
            VerdictReason.LIMIT_EXCEEDED,
            f"peak memory {usage.peak_memory_bytes} B above the limit {limits.memory_bytes} B",
        )
    if usage.pids_peak is not None and usage.pids_peak > pids_limit:
        return _reject(
            VerdictReason.LIMIT_EXCEEDED,
            f"{usage.pids_peak} pids above the limit {pids_limit}",
        )
    if usage.cpu_time_us is not None:
        allowed = (
            limits.cpu_millicores * (run_us + CPU_SLACK_PERIODS * CFS_PERIOD_US) * 11 // 10_000
        )
        if usage.cpu_time_us > allowed:
            return _reject(
                VerdictReason.LIMIT_EXCEEDED,
                f"CPU time {usage.cpu_time_us} us above the quota's {allowed} us",
            )
    if body.outcome is Outcome.TIMEOUT and run_us < wall_us:
        return _reject(
            VerdictReason.INCONSISTENT, f"TIMEOUT after {run_us} us, before the {wall_us} us limit"
        )
    if body.outcome is Outcome.OUTPUT_LIMIT and captured != limits.output_bytes_max:
        return _reject(
            VerdictReason.INCONSISTENT,
            f"OUTPUT_LIMIT with {captured} bytes captured, limit {limits.output_bytes_max}",
        )
    if body.outcome is Outcome.EXITED and body.exit_code is None:
        return _reject(VerdictReason.INCONSISTENT, "EXITED without an exit code")
    return None


def compare_reexecution(verified: VerifiedReport, own: ReportBody) -> Verdict:
    """Compare a verified report with the verifier's own run of the same task (same spec).

    Accepted when outcome, exit code and output hash agree. Not deterministic or not runnable (the
    spec was invalid) -> NOT_REEXECUTABLE (not accepted: re-execution is no evidence either way;
    the caller falls back on `verify_report`'s verdict). A different result -> OUTPUT_MISMATCH,
    which the verifier turns into a reject vote (and, with the two reports, dispute evidence)."""
    theirs = verified.body
    if verified.spec is None or not verified.spec.deterministic:
        return _reject(VerdictReason.NOT_REEXECUTABLE, "the job is not declared deterministic")
    if own.spec_hash != theirs.spec_hash or own.task_id != theirs.task_id:
        return _reject(VerdictReason.WRONG_TASK, "the re-execution ran another task")
    if not own.outcome.container_ran and own.outcome is not theirs.outcome:
        # The verifier's own run failed (no image, engine error): no evidence against the report.
        return _reject(
            VerdictReason.NOT_REEXECUTABLE, f"the re-execution did not run: {own.outcome.name}"
        )
    mine = (own.outcome, own.exit_code, own.output_hash)
    their = (theirs.outcome, theirs.exit_code, theirs.output_hash)
    if mine != their:
        return _reject(
            VerdictReason.OUTPUT_MISMATCH,
            f"re-execution: {own.outcome.name}/{own.exit_code}/{own.output_hash.hex()[:16]}, "
            f"report: {theirs.outcome.name}/{theirs.exit_code}/{theirs.output_hash.hex()[:16]}",
        )
    return Verdict(True, VerdictReason.OK, "re-execution agrees", verified)


# The output hash of a run that produced nothing (the value a report carries when no container ran).
_EMPTY_OUTPUT_HASH = hasher(Domain.OUTPUT).digest()
