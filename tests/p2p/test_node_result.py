"""The result certificate a poster keeps: built from a completed task, verified offline, and every
tampering refused."""

from __future__ import annotations

import dataclasses

import pytest

from executor.report import UnverifiedReport, sign_report
from ledger.certificates import QuorumCertificate
from ledger.proofs import make_proof
from ledger.state import account_key, task_key
from p2p.result import ResultCertificate, ResultInvalid, decode_result, verify_result
from tests.p2p.nodekit import CompletedTask, complete_task, devnet


@pytest.fixture(scope="module")
def done() -> CompletedTask:
    return complete_task(devnet(), b"the input\n")


def certificate(done: CompletedTask, **changes: object) -> ResultCertificate:
    chain = done.chain
    last = chain.blocks[-1]
    proof = make_proof(chain.state, last.block.header, last.commit, task_key(done.task_id))
    task = chain.state.task(done.task_id)
    from executor.report import report_digest

    cert = ResultCertificate(
        task_id=done.task_id,
        attempt=done.attempt,
        job_spec=done.spec.encode(),
        report=done.report.encode(),
        output=done.output,
        certificate=chain.result_certificate(done.task_id, report_digest(done.report)),
        proof=proof,
    )
    assert task.report_digest == report_digest(done.report)
    return dataclasses.replace(cert, **changes)  # type: ignore[arg-type]


def test_a_completed_task_verifies_and_round_trips(done: CompletedTask) -> None:
    cert = certificate(done)
    verified = verify_result(decode_result(cert.encode()), done.chain.net.genesis)
    assert verified.output == b"the input\n"
    assert verified.task.executor == done.executor.public
    assert verified.height == done.chain.state.height


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("output", b"another output\n", "output does not hash"),
        ("attempt", 1, "attempt"),
        ("job_spec", b"\x90", "job spec"),
        ("task_id", b"\x07" * 32, "not about this task"),
    ],
)
def test_tampered_fields_are_refused(
    done: CompletedTask, field: str, value: object, message: str
) -> None:
    with pytest.raises(ResultInvalid, match=message):
        verify_result(certificate(done, **{field: value}), done.chain.net.genesis)


def test_a_report_signed_by_another_key_is_refused(done: CompletedTask) -> None:
    other = done.chain.net.operators[-1].identity
    body = dataclasses.replace(done.report.body, executor_key=other.public)
    forged: UnverifiedReport = sign_report(body, other)
    with pytest.raises(ResultInvalid, match="not the one the ledger recorded"):
        verify_result(certificate(done, report=forged.encode()), done.chain.net.genesis)


def test_a_weak_certificate_is_refused(done: CompletedTask) -> None:
    good = certificate(done).certificate
    weak = QuorumCertificate(good.kind, good.context, good.view, good.value, good.signers[:1])
    with pytest.raises(ResultInvalid, match="not the roster's"):
        verify_result(certificate(done, certificate=weak), done.chain.net.genesis)


def test_a_proof_of_another_record_or_chain_is_refused(done: CompletedTask) -> None:
    chain = done.chain
    last = chain.blocks[-1]
    other_key = account_key(chain.net.users[0].public)
    wrong = make_proof(chain.state, last.block.header, last.commit, other_key)
    with pytest.raises(ResultInvalid, match="not about this task"):
        verify_result(certificate(done, proof=wrong), chain.net.genesis)
    other_chain = devnet(operators=5).genesis
    with pytest.raises(ResultInvalid, match="ledger proof"):
        verify_result(certificate(done), other_chain)


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(ResultInvalid, match="not a result certificate"):
        decode_result(b"\x00garbage")
