"""Report verification (pure): honest reports pass; every tampered field fails with its reason;
random byte flips never pass; re-execution catches a wrong output; the TEE hook binds the body."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.fake import FakeOutcome, FakeSandbox
from executor.policy import Runtime, effective_policy
from executor.report import (
    REPORT_VERSION,
    Outcome,
    Phases,
    ReportBody,
    TeeKind,
    TeeQuote,
    UnverifiedReport,
    Usage,
    report_digest,
    sign_report,
    tee_report_data,
)
from executor.run import execute, reexecute
from executor.sandbox import output_hash
from executor.spec import JobSpec, make_spec, spec_hash_of
from executor.tee import FakeTee
from executor.verify import (
    MEMORY_SAMPLE_SLACK_BYTES,
    TaskView,
    VerdictReason,
    VerifyPolicy,
    compare_reexecution,
    verify_report,
)
from ledger.signing import IdentityKey

DIGEST = "sha256:" + "cd" * 32
KEY = IdentityKey(b"\x01" * 32)
OTHER = IdentityKey(b"\x02" * 32)
TASK_ID = b"\x07" * 32
SOFTWARE = b"\x05" * 32
SPEC = make_spec(DIGEST, ["sh", "-c", "cat"], input=b"hello", wall_time_ms=5_000, pids_max=32)
TASK = TaskView(TASK_ID, SPEC.encode(), KEY.public)
POLICY = VerifyPolicy()


def honest_body(spec: JobSpec = SPEC, **changes: object) -> ReportBody:
    runtime = Runtime.RUNC
    body = ReportBody(
        version=REPORT_VERSION,
        task_id=TASK_ID,
        executor_key=KEY.public,
        spec_hash=spec.spec_hash(),
        image_digest=spec.image_digest,
        policy_digest=effective_policy(spec, runtime).policy_digest(),
        runtime=runtime,
        input_hash=spec.input_hash(),
        outcome=Outcome.EXITED,
        exit_code=0,
        output_hash=output_hash(b"hello"),
        stderr_hash=output_hash(b""),
        phases=Phases(create_us=20_000, start_us=90_000, run_us=40_000, collect_us=8_000),
        usage=Usage(
            peak_memory_bytes=4 << 20,
            cpu_time_us=30_000,
            pids_peak=2,
            stdout_bytes=5,
            stderr_bytes=0,
        ),
        software_measurement=SOFTWARE,
        detail="EXITED",
    )
    return dataclasses.replace(body, **changes)


def test_honest_report_is_accepted_and_verified_type_carries_digest() -> None:
    report = sign_report(honest_body(), KEY)
    verdict = verify_report(TASK, report.encode(), POLICY)
    assert verdict.accepted, verdict
    assert verdict.reason is VerdictReason.OK
    assert verdict.report is not None
    assert verdict.report.digest == report_digest(report)
    assert verdict.report.spec == SPEC


def _phases(**kw: int) -> Phases:
    return dataclasses.replace(honest_body().phases, **kw)


def _usage(**kw: int | None) -> Usage:
    return dataclasses.replace(honest_body().usage, **kw)


# (field, new value, reason when the executor itself signs the lie)
RESIGNED: list[tuple[str, object, VerdictReason]] = [
    ("version", REPORT_VERSION + 1, VerdictReason.VERSION_UNSUPPORTED),
    ("task_id", b"\x08" * 32, VerdictReason.WRONG_TASK),
    ("spec_hash", b"\x09" * 32, VerdictReason.SPEC_MISMATCH),
    ("image_digest", "sha256:" + "ee" * 32, VerdictReason.IMAGE_MISMATCH),
    ("image_digest", None, VerdictReason.IMAGE_MISMATCH),
    ("policy_digest", b"\x0a" * 32, VerdictReason.POLICY_MISMATCH),
    ("policy_digest", None, VerdictReason.POLICY_MISMATCH),
    ("runtime", Runtime.RUNSC, VerdictReason.POLICY_MISMATCH),
    ("runtime", Runtime.FAKE, VerdictReason.RUNTIME_NOT_ALLOWED),
    ("input_hash", b"\x0b" * 32, VerdictReason.INPUT_MISMATCH),
    ("outcome", Outcome.TIMEOUT, VerdictReason.INCONSISTENT),
    ("outcome", Outcome.SPEC_INVALID, VerdictReason.INCONSISTENT),
    ("outcome", Outcome.IMAGE_MISSING, VerdictReason.INCONSISTENT),
    ("outcome", Outcome.OUTPUT_LIMIT, VerdictReason.INCONSISTENT),
    ("exit_code", None, VerdictReason.INCONSISTENT),
    ("phases", _phases(run_us=5_000_000 + 2_000_001), VerdictReason.LIMIT_EXCEEDED),
    (
        "usage",
        _usage(peak_memory_bytes=(128 << 20) + MEMORY_SAMPLE_SLACK_BYTES + 1),
        VerdictReason.LIMIT_EXCEEDED,
    ),
    ("usage", _usage(pids_peak=33), VerdictReason.LIMIT_EXCEEDED),
    ("usage", _usage(stdout_bytes=(1 << 20) + 1), VerdictReason.LIMIT_EXCEEDED),
    ("usage", _usage(cpu_time_us=10_000_000), VerdictReason.LIMIT_EXCEEDED),
]


@pytest.mark.parametrize(
    ("field", "value", "reason"), RESIGNED, ids=[f"{f}-{r.name}" for f, _, r in RESIGNED]
)
def test_lies_signed_by_the_executor_fail_with_their_reason(
    field: str, value: object, reason: VerdictReason
) -> None:
    report = sign_report(honest_body(**{field: value}), KEY)
    verdict = verify_report(TASK, report, POLICY)
    assert not verdict.accepted
    assert verdict.reason is reason, verdict.detail


FIELDS = [f.name for f in dataclasses.fields(ReportBody)]


def _tampered_value(field: str, value: object) -> object:
    if isinstance(value, bytes):
        return bytes([value[0] ^ 1]) + value[1:]
    if isinstance(value, bool):
        return not value
    if isinstance(value, Runtime):
        return Runtime.RUNSC
    if isinstance(value, Outcome):
        return Outcome.TIMEOUT
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1] != "0" else "1")
    if isinstance(value, Phases):
        return dataclasses.replace(value, run_us=value.run_us + 1)
    if isinstance(value, Usage):
        return dataclasses.replace(value, stderr_bytes=value.stderr_bytes + 1)
    raise AssertionError(f"no tamper rule for {field}")


@pytest.mark.parametrize("field", FIELDS)
def test_any_field_changed_after_signing_fails_the_signature(field: str) -> None:
    report = sign_report(honest_body(), KEY)
    body = report.body
    forged = dataclasses.replace(
        report,
        body=dataclasses.replace(body, **{field: _tampered_value(field, getattr(body, field))}),
    )
    verdict = verify_report(TASK, forged.encode(), POLICY)
    assert not verdict.accepted
    assert verdict.reason is VerdictReason.BAD_SIGNATURE


def test_signature_quote_and_signer_tampering() -> None:
    report = sign_report(honest_body(), KEY)
    bad_sig = dataclasses.replace(report, signature=bytes(64))
    assert verify_report(TASK, bad_sig, POLICY).reason is VerdictReason.BAD_SIGNATURE
    added_quote = dataclasses.replace(report, tee_quote=TeeQuote(TeeKind.TEST_DOUBLE, b"q"))
    assert verify_report(TASK, added_quote, POLICY).reason is VerdictReason.BAD_SIGNATURE
    # Another node signs a report naming itself: the signature is fine, the signer is not the
    # executor the committee chose.
    impostor = sign_report(honest_body(executor_key=OTHER.public), OTHER)
    assert verify_report(TASK, impostor, POLICY).reason is VerdictReason.WRONG_EXECUTOR
    # Naming the real executor but signing with another key.
    with pytest.raises(ValueError, match="executor key"):
        sign_report(honest_body(), OTHER)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_no_single_byte_flip_is_accepted(pos: int, xor: int) -> None:
    data = bytearray(sign_report(honest_body(), KEY).encode())
    data[pos % len(data)] ^= xor
    verdict = verify_report(TASK, bytes(data), POLICY)
    assert not verdict.accepted
    assert verdict.reason in (VerdictReason.MALFORMED, VerdictReason.BAD_SIGNATURE)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_is_malformed(data: bytes) -> None:
    verdict = verify_report(TASK, data, POLICY)
    assert not verdict.accepted
    assert verdict.reason is VerdictReason.MALFORMED


def test_software_allow_list() -> None:
    report = sign_report(honest_body(), KEY)
    strict = VerifyPolicy(accepted_software=frozenset({b"\x06" * 32}))
    assert verify_report(TASK, report, strict).reason is VerdictReason.SOFTWARE_NOT_ALLOWED
    ok = VerifyPolicy(accepted_software=frozenset({SOFTWARE}))
    assert verify_report(TASK, report, ok).accepted


def test_invalid_spec_reports() -> None:
    garbage = b"\x93not a spec"
    task = TaskView(TASK_ID, garbage, KEY.public)
    body = honest_body(
        spec_hash=spec_hash_of(garbage),
        image_digest=None,
        policy_digest=None,
        input_hash=None,
        outcome=Outcome.SPEC_INVALID,
        exit_code=None,
        output_hash=output_hash(b""),
        phases=Phases(0, 0, 0, 0),
        usage=Usage(None, None, None, 0, 0),
    )
    assert verify_report(task, sign_report(body, KEY), POLICY).accepted
    # Claiming the spec was fine when it is not, and claiming a run on an invalid spec.
    lie = dataclasses.replace(body, outcome=Outcome.EXITED)
    assert verify_report(task, sign_report(lie, KEY), POLICY).reason is VerdictReason.INCONSISTENT
    ran = dataclasses.replace(body, phases=Phases(0, 0, 5, 0))
    assert verify_report(task, sign_report(ran, KEY), POLICY).reason is VerdictReason.INCONSISTENT


def test_tee_hook_with_the_test_double() -> None:
    tee = FakeTee(b"\x0c" * 32)
    body = honest_body()
    quoted = sign_report(body, KEY, tee.quote(tee_report_data(body), SOFTWARE))
    with_tee = VerifyPolicy(require_tee=True, tee_verifier=tee)
    assert verify_report(TASK, quoted, with_tee).accepted
    unquoted = sign_report(body, KEY)
    assert verify_report(TASK, unquoted, with_tee).reason is VerdictReason.TEE_REQUIRED
    # A quote from another "machine" (key), and a quote lifted from another body.
    foreign = FakeTee(b"\x0d" * 32).quote(tee_report_data(body), SOFTWARE)
    assert (
        verify_report(TASK, sign_report(body, KEY, foreign), with_tee).reason
        is VerdictReason.TEE_INVALID
    )
    other_body = honest_body(detail="other")
    lifted = tee.quote(tee_report_data(other_body), SOFTWARE)
    assert (
        verify_report(TASK, sign_report(body, KEY, lifted), with_tee).reason
        is VerdictReason.TEE_INVALID
    )
    # A quote but no verifier configured: cannot be checked, so not accepted.
    assert verify_report(TASK, quoted, POLICY).reason is VerdictReason.TEE_INVALID


def _run(sandbox: FakeSandbox, spec: JobSpec = SPEC, key: IdentityKey = KEY) -> UnverifiedReport:
    async def main() -> UnverifiedReport:
        done = await execute(
            TASK_ID, spec.encode(), sandbox=sandbox, key=key, software_measurement=SOFTWARE
        )
        return done.report

    return trio.run(main)


FAKE_OK = VerifyPolicy(allowed_runtimes=frozenset({Runtime.FAKE}))


def test_fake_reports_are_refused_by_the_default_policy() -> None:
    report = _run(FakeSandbox())
    assert report.body.runtime is Runtime.FAKE
    assert verify_report(TASK, report, POLICY).reason is VerdictReason.RUNTIME_NOT_ALLOWED
    assert verify_report(TASK, report, FAKE_OK).accepted


def _reexecute(verified_report: UnverifiedReport, verifier_sandbox: FakeSandbox) -> VerdictReason:
    verdict = verify_report(TASK, verified_report, FAKE_OK)
    assert verdict.report is not None

    async def main() -> VerdictReason:
        result = await reexecute(
            verdict.report, sandbox=verifier_sandbox, key=OTHER, software_measurement=SOFTWARE
        )
        return result.reason

    return trio.run(main)


def test_reexecution_agrees_or_catches_a_wrong_output() -> None:
    honest = _run(FakeSandbox())
    assert _reexecute(honest, FakeSandbox()) is VerdictReason.OK
    lying = _run(FakeSandbox(default=FakeOutcome(stdout=b"forged")))
    assert _reexecute(lying, FakeSandbox()) is VerdictReason.OUTPUT_MISMATCH
    wrong_exit = _run(FakeSandbox(default=FakeOutcome(exit_code=3)))
    assert _reexecute(wrong_exit, FakeSandbox()) is VerdictReason.OUTPUT_MISMATCH
    # The verifier's own run failing is no evidence against the executor.
    from executor.errors import SandboxError

    broken = FakeSandbox(default=FakeOutcome(raises=SandboxError("engine down")))
    assert _reexecute(honest, broken) is VerdictReason.NOT_REEXECUTABLE


def test_non_deterministic_jobs_are_not_reexecuted() -> None:
    spec = make_spec(DIGEST, ["date"], deterministic=False)
    report = _run(FakeSandbox(), spec)
    task = TaskView(TASK_ID, spec.encode(), KEY.public)
    verdict = verify_report(task, report, FAKE_OK)
    assert verdict.report is not None
    own = _run(FakeSandbox(default=FakeOutcome(stdout=b"other")), spec, OTHER).body
    assert compare_reexecution(verdict.report, own).reason is VerdictReason.NOT_REEXECUTABLE


SCRIPTED: list[tuple[FakeOutcome, Outcome]] = [
    (FakeOutcome(outcome=Outcome.TIMEOUT, exit_code=137), Outcome.TIMEOUT),
    (FakeOutcome(outcome=Outcome.OOM, exit_code=137), Outcome.OOM),
    (FakeOutcome(stdout=b"x" * ((1 << 20) + 10)), Outcome.OUTPUT_LIMIT),
]


@pytest.mark.parametrize(("scripted", "expected"), SCRIPTED)
def test_scripted_outcomes_give_honest_reports(scripted: FakeOutcome, expected: Outcome) -> None:
    report = _run(FakeSandbox(default=scripted))
    assert report.body.outcome is expected
    verdict = verify_report(TASK, report, FAKE_OK)
    assert verdict.accepted, verdict.detail


ERRORS: list[tuple[Callable[[], Exception], Outcome]] = []


def test_scripted_errors_become_outcomes() -> None:
    from executor.errors import ImageMismatch, ImageMissing, PolicyRefused, RuntimeUnavailable

    cases = [
        (ImageMissing("absent"), Outcome.IMAGE_MISSING),
        (ImageMismatch("other", image_digest="sha256:" + "ff" * 32), Outcome.IMAGE_MISMATCH),
        (PolicyRefused("no network"), Outcome.POLICY_REFUSED),
        (RuntimeUnavailable("no runsc"), Outcome.RUNTIME_UNAVAILABLE),
    ]
    for error, outcome in cases:
        report = _run(FakeSandbox(default=FakeOutcome(raises=error)))
        assert report.body.outcome is outcome
        assert report.body.phases.run_us == 0
        verdict = verify_report(TASK, report, FAKE_OK)
        assert verdict.accepted, (outcome, verdict.detail)
