"""Record proofs (and `posi-peer verify-proof`), commit checks when following the chain, and
sync payload validation."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from ledger import cli
from ledger.block import CertifiedBlock
from ledger.certificates import Signer
from ledger.chain import accept_block, check_proposal
from ledger.devnet import DevChain, DevNet
from ledger.errors import InvalidCommit, ProofError, SyncError, UnknownTask
from ledger.fold import build_block
from ledger.genesis import genesis_to_json
from ledger.proofs import RecordProof, make_proof, verify_proof
from ledger.state import (
    Measurement,
    Operator,
    Task,
    TaskStatus,
    measurement_key,
    operator_key,
    task_key,
)
from ledger.statetree import StatePath
from ledger.sync import SyncRequest, SyncResponse, answer, validate_response
from ledger.tx import PostTask, TaskCertificate, Transaction, Transfer
from tests.ledger.test_fold import REPORT, assign, post, staff


@pytest.fixture
def finished(chain: DevChain) -> tuple[DevChain, bytes]:
    """A chain with a completed task."""
    from ledger.tx import TaskResult

    tid = post(chain)
    staff(chain, tid)
    assign(chain, tid)
    cert = chain.result_certificate(tid, REPORT)
    chain.extend([chain.sign(chain.net.users[1], TaskResult(tid, 0, REPORT, cert))])
    assert chain.state.task(tid).status == TaskStatus.COMPLETED
    return chain, tid


def tip_proof(ch: DevChain, key: bytes) -> RecordProof:
    cb = ch.blocks[-1]
    return make_proof(ch.state, cb.block.header, cb.commit, key)


def test_proofs_of_stake_and_task_result(finished: tuple[DevChain, bytes]) -> None:
    ch, tid = finished
    op = ch.net.operators[0].identity.public
    stake = verify_proof(tip_proof(ch, operator_key(op)), ch.net.genesis)
    assert isinstance(stake.record, Operator)
    assert stake.record == ch.state.operator(op)
    result = verify_proof(tip_proof(ch, task_key(tid)), ch.net.genesis)
    assert isinstance(result.record, Task)
    assert result.record.report_digest == REPORT
    assert result.height == ch.state.height
    proof = tip_proof(ch, task_key(tid))
    assert RecordProof.decode(proof.encode()) == proof


def test_proof_of_an_integrity_report(chain: DevChain) -> None:
    from tests.ledger.test_fold import test_measurement_rounds_and_integrity_reports as run

    run(chain)
    key = next(
        k
        for k, v in chain.state.entries.items()
        if isinstance(v, Measurement) and v.report_digest == REPORT
    )
    proven = verify_proof(tip_proof(chain, key), chain.net.genesis)
    assert proven.record.report_digest == REPORT  # type: ignore[attr-defined]
    assert key == measurement_key(key[1:])


def test_tampered_proofs_fail(finished: tuple[DevChain, bytes]) -> None:
    ch, tid = finished
    good = tip_proof(ch, task_key(tid))
    task = Task.decode(good.value)
    other = DevNet.create(validators=2, operators=0, users=1)
    cases = {
        "another value": dataclasses.replace(
            good, value=dataclasses.replace(task, report_digest=b"\x01" * 32).encode()
        ),
        "another key": dataclasses.replace(good, key=task_key(b"\x02" * 32)),
        "path": dataclasses.replace(good, path=StatePath(good.key, good.path.siblings[1:])),
        "header": dataclasses.replace(
            good, header=dataclasses.replace(good.header, state_root=b"\x03" * 32)
        ),
        "commit": dataclasses.replace(
            good,
            commit=dataclasses.replace(
                good.commit, signers=(Signer(0, b"\x00" * 64), *good.commit.signers[1:])
            ),
        ),
        "old commit": dataclasses.replace(good, commit=ch.blocks[-2].commit),
        "bad key": dataclasses.replace(good, key=b"\xee" + good.key[1:]),
    }
    for name, proof in cases.items():
        with pytest.raises(ProofError):
            verify_proof(proof, ch.net.genesis)
        del name  # kept in the loop so a failure's traceback names the case
    with pytest.raises(ProofError, match="another chain"):
        verify_proof(good, other.genesis)
    with pytest.raises(KeyError):
        make_proof(ch.state, good.header, good.commit, task_key(b"\x09" * 32))


def test_verify_proof_command(
    finished: tuple[DevChain, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ch, tid = finished
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(genesis_to_json(ch.net.genesis))
    proof_file = tmp_path / "task.proof"
    proof_file.write_bytes(tip_proof(ch, task_key(tid)).encode())
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> int:
        args = parser.parse_args(["verify-proof", *argv])
        return int(args.func(args))

    assert run(str(proof_file), "--genesis", str(genesis_file)) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "Task"
    assert out["record"]["report_digest"] == REPORT.hex()
    assert out["record"]["status"] == "COMPLETED"
    bad = tip_proof(ch, task_key(tid))
    bad = dataclasses.replace(bad, header=dataclasses.replace(bad.header, time_ms=1))
    proof_file.write_bytes(bad.encode())
    assert run(str(proof_file), "--genesis", str(genesis_file)) == 1
    assert "NOT PROVEN" in capsys.readouterr().err
    proof_file.write_bytes(b"garbage")
    assert run(str(proof_file), "--genesis", str(genesis_file)) == 2
    assert run(str(tmp_path / "missing"), "--genesis", str(genesis_file)) == 2
    assert run(str(proof_file), "--genesis", str(proof_file)) == 2


# --- following the chain -------------------------------------------------------------------


def test_accept_block_checks_the_commit_certificate(chain: DevChain) -> None:
    built = chain.propose([chain.sign(chain.net.users[0], Transfer(chain.net.users[1].public, 1))])
    good = chain.commit(built.block.header)
    short = dataclasses.replace(good, signers=good.signers[:2])  # 2 of 4: no quorum
    for commit in (short, dataclasses.replace(good, value=b"\x01" * 32)):
        with pytest.raises(InvalidCommit):
            accept_block(chain.state, CertifiedBlock(built.block, commit))
    state = accept_block(chain.state, CertifiedBlock(built.block, good))
    assert state.state_root == built.state.state_root
    assert state.tip_hash == built.block.hash()


def test_check_proposal_runs_the_external_checks(chain: DevChain) -> None:
    tx = chain.sign(chain.net.users[0], PostTask(b"spec-the-node-refuses", 5, 2))
    built = chain.propose([tx])

    def admit(state: object, t: Transaction) -> None:
        if t.kind == tx.kind:
            raise UnknownTask("the node's spec check refused it")

    with pytest.raises(UnknownTask) as info:
        check_proposal(chain.state, built.block, admit=admit)
    assert info.value.index == 0
    assert check_proposal(chain.state, built.block).state_root == built.state.state_root
    again = build_block(
        chain.state,
        [tx],
        proposer=chain.net.validators[1].public,
        time_ms=5,
        parent_commit=None,
        admit=admit,
    )
    assert again.block.txs == ()
    assert [type(e) for _, e in again.rejected] == [UnknownTask]


# --- sync ---------------------------------------------------------------------------------


def test_sync_round_trip(chain: DevChain) -> None:
    for i in range(6):
        chain.extend(
            [chain.sign(chain.net.users[i % 4], Transfer(chain.net.users[(i + 1) % 4].public, 1))]
        )
    req = SyncRequest(1, 4)
    resp = SyncResponse.decode(answer(req, chain.state.height, chain.blocks).encode())
    g = chain.net.genesis
    kw = dict(tip_height=0, tip_hash=g.hash(), chain=g.hash(), validators=g.validator_membership())
    blocks = validate_response(req, resp, **kw)  # type: ignore[arg-type]
    assert list(blocks) == chain.blocks[:4]
    follower = DevChain(chain.net)
    for cb in blocks:
        follower.state = accept_block(follower.state, cb)
    assert follower.state.tip_hash == chain.blocks[3].block.hash()


def test_bad_sync_responses_are_refused(chain: DevChain) -> None:
    for _ in range(4):
        chain.extend([])
    g = chain.net.genesis
    kw = dict(tip_height=0, tip_hash=g.hash(), chain=g.hash(), validators=g.validator_membership())
    req = SyncRequest(1, 3)
    b = chain.blocks
    forged = CertifiedBlock(b[1].block, b[0].commit)
    cases = {
        "too many": SyncResponse(4, tuple(b[:4])),
        "gap": SyncResponse(4, (b[0], b[2])),
        "wrong start": SyncResponse(4, (b[1],)),
        "bad commit": SyncResponse(4, (b[0], forged)),
        "lying tip": SyncResponse(1, tuple(b[:2])),
        "withholding": SyncResponse(4, ()),
    }
    for name, resp in cases.items():
        with pytest.raises(SyncError):
            validate_response(req, resp, **kw)  # type: ignore[arg-type]
        del name  # kept in the loop so a failure's traceback names the case
    assert validate_response(req, SyncResponse(0, ()), **kw) == ()  # type: ignore[arg-type]
    with pytest.raises(SyncError, match="local misuse"):
        validate_response(SyncRequest(3, 1), SyncResponse(4, ()), **kw)  # type: ignore[arg-type]


def test_task_certificate_by_anyone_is_fine(chain: DevChain) -> None:
    # the certificate, not the submitter, carries the authority
    tid = post(chain)
    staff(chain, tid)
    ex = chain.state.task(tid).roster[1].identity
    cert = chain.executor_certificate(tid, ex)
    chain.extend([chain.sign(chain.net.users[3], TaskCertificate(tid, 0, ex, cert))])
    assert chain.state.task(tid).executor == ex
