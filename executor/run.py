"""Executing a task and re-executing it: the glue between a sandbox and signed reports.

`execute(task_id, job_spec, ...)` always returns a signed report unless it is cancelled: a bad spec,
an absent image or an engine failure is an *outcome*, because the committee must learn what happened
from a signed statement. `reexecute` is the verifier's second check for deterministic jobs.
"""

from __future__ import annotations

import dataclasses

from executor.errors import (
    ImageMismatch,
    ImageMissing,
    ImageRejected,
    PolicyRefused,
    RuntimeUnavailable,
    SandboxError,
    TeeError,
)
from executor.policy import effective_policy
from executor.report import (
    REPORT_VERSION,
    Outcome,
    Phases,
    ReportBody,
    UnverifiedReport,
    Usage,
    clip_detail,
    sign_report,
    tee_report_data,
)
from executor.sandbox import Sandbox, output_hash
from executor.spec import JobSpec, spec_hash_of
from executor.tee import TeeProvider
from executor.verify import (
    Verdict,
    VerdictReason,
    VerifiedReport,
    compare_reexecution,
)
from ledger.errors import DecodeError
from ledger.signing import IdentityKey

_NO_PHASES = Phases(create_us=0, start_us=0, run_us=0, collect_us=0)
_NO_USAGE = Usage(
    peak_memory_bytes=None, cpu_time_us=None, pids_peak=None, stdout_bytes=0, stderr_bytes=0
)


@dataclasses.dataclass(frozen=True, slots=True)
class Execution:
    """A signed report and the output it attests (verifiers fetch the output on request)."""

    report: UnverifiedReport
    stdout: bytes
    stderr: bytes


async def execute(
    task_id: bytes,
    job_spec: bytes,
    *,
    sandbox: Sandbox,
    key: IdentityKey,
    software_measurement: bytes,
    tee: TeeProvider | None = None,
) -> Execution:
    """Run the task's job in `sandbox` and sign what happened with `key`.

    Never raises for anything the job, the spec or the engine did: those become the report's
    outcome (SPEC_INVALID, IMAGE_*, POLICY_REFUSED, RUNTIME_UNAVAILABLE, SANDBOX_ERROR...).
    Cancellation propagates (after the sandbox removed the container). Raises ValueError only on
    local misuse (a task id that is not 32 bytes)."""
    if type(task_id) is not bytes or len(task_id) != 32:
        raise ValueError("task_id is 32 bytes")
    runtime = sandbox.runtime

    def not_run(
        outcome: Outcome,
        detail: str,
        *,
        spec: JobSpec | None,
        image_digest: str | None = None,
    ) -> ReportBody:
        return ReportBody(
            version=REPORT_VERSION,
            task_id=task_id,
            executor_key=key.public,
            spec_hash=spec_hash_of(job_spec),
            image_digest=image_digest,
            policy_digest=None if spec is None else effective_policy(spec, runtime).policy_digest(),
            runtime=runtime,
            input_hash=None if spec is None else spec.input_hash(),
            outcome=outcome,
            exit_code=None,
            output_hash=output_hash(b""),
            stderr_hash=output_hash(b""),
            phases=_NO_PHASES,
            usage=_NO_USAGE,
            software_measurement=software_measurement,
            detail=clip_detail(detail),
        )

    stdout = stderr = b""
    try:
        spec = JobSpec.decode(job_spec)
    except DecodeError as exc:
        body = not_run(Outcome.SPEC_INVALID, str(exc), spec=None)
    else:
        policy = effective_policy(spec, runtime)
        try:
            result = await sandbox.run(spec, policy)
        except ImageMissing as exc:
            body = not_run(Outcome.IMAGE_MISSING, str(exc), spec=spec)
        except ImageMismatch as exc:
            body = not_run(
                Outcome.IMAGE_MISMATCH, str(exc), spec=spec, image_digest=exc.image_digest
            )
        except ImageRejected as exc:
            body = not_run(
                Outcome.IMAGE_REJECTED, str(exc), spec=spec, image_digest=exc.image_digest
            )
        except PolicyRefused as exc:
            body = not_run(Outcome.POLICY_REFUSED, str(exc), spec=spec)
        except RuntimeUnavailable as exc:
            body = not_run(Outcome.RUNTIME_UNAVAILABLE, str(exc), spec=spec)
        except SandboxError as exc:
            body = not_run(Outcome.SANDBOX_ERROR, str(exc), spec=spec)
        else:
            stdout, stderr = result.stdout, result.stderr
            body = ReportBody(
                version=REPORT_VERSION,
                task_id=task_id,
                executor_key=key.public,
                spec_hash=spec_hash_of(job_spec),
                image_digest=result.image_digest,
                policy_digest=policy.policy_digest(),
                runtime=result.runtime,
                input_hash=spec.input_hash(),
                outcome=result.outcome,
                exit_code=result.exit_code,
                output_hash=result.output_hash(),
                stderr_hash=result.stderr_hash(),
                phases=result.phases,
                usage=result.usage,
                software_measurement=software_measurement,
                detail=clip_detail(result.detail),
            )
    quote = None
    if tee is not None:
        try:
            quote = tee.quote(tee_report_data(body), software_measurement)
        except TeeError:
            quote = None  # the report stays valid without a quote; verifiers may require one
    return Execution(sign_report(body, key, quote), stdout, stderr)


async def reexecute(
    verified: VerifiedReport,
    *,
    sandbox: Sandbox,
    key: IdentityKey,
    software_measurement: bytes,
) -> Verdict:
    """Run a verified report's job again in the verifier's own sandbox and compare.

    Returns NOT_REEXECUTABLE for jobs that are not deterministic (or whose spec is invalid),
    OUTPUT_MISMATCH when the results differ, OK when they agree. Never raises for the job's
    behaviour; cancellation propagates."""
    if verified.spec is None or not verified.spec.deterministic:
        return Verdict(False, VerdictReason.NOT_REEXECUTABLE, "the job is not deterministic")
    own = await execute(
        verified.body.task_id,
        verified.spec.encode(),
        sandbox=sandbox,
        key=key,
        software_measurement=software_measurement,
    )
    return compare_reexecution(verified, own.report.body)
