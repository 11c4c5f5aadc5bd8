"""Every transaction kind with arbitrary field values, in a state where tasks and measurements are
in every phase: the fold either applies it or rejects it with a TransactionError, never anything
else, and the invariants hold after every accepted one."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.certificates import QuorumCertificate, Signer, VoteKind, task_round_id
from ledger.chain import round_seed
from ledger.devnet import DevChain, DevNet
from ledger.domains import Domain
from ledger.errors import TransactionError
from ledger.fold import apply_block
from ledger.state import check_invariants, measurement_id
from ledger.tx import (
    Bond,
    Credential,
    DeployService,
    IntegrityReport,
    OperatorStatus,
    PostTask,
    RegisterImage,
    RegisterOperator,
    RoundKind,
    SetStatus,
    SlashEvidence,
    TaskCertificate,
    TaskResult,
    Transfer,
    Unbond,
    UpdateOperator,
    derived_id,
)
from tests.ledger.conftest import IMAGE, TEST_PARAMS, forced_block
from tests.ledger.test_fold import _equivocation, assign, post, staff


@pytest.fixture(scope="module")
def busy() -> DevChain:
    """Tasks SEEDING, DRAWING, ELECTING and EXECUTING, and a measurement round open."""
    net = DevNet.create(validators=4, operators=5, users=4, params=TEST_PARAMS, images=[IMAGE])
    ch = DevChain(net)
    op = net.operators[4].identity.public
    deploy = ch.sign(net.users[1], DeployService(IMAGE, b"\x01" * 32, op, 3))
    ch.extend([deploy])
    executing = post(ch)
    staff(ch, executing)
    assign(ch, executing)
    electing = post(ch)
    staff(ch, electing)
    drawing = post(ch)
    ch.extend([])
    ch.extend([])
    post(ch)  # seeding
    ch.busy_ids = [executing, electing, drawing]  # type: ignore[attr-defined]
    ch.service = derived_id(Domain.SERVICE_ID, deploy, ch.chain)  # type: ignore[attr-defined]
    return ch


def payloads(ch: DevChain) -> st.SearchStrategy[object]:
    net = ch.net
    ids = [*ch.busy_ids, measurement_id(ch.service, 0), ch.service]  # type: ignore[attr-defined]
    hashes = st.sampled_from([bytes(32), b"\x05" * 32, IMAGE, *ids])
    keys = st.sampled_from(
        [bytes(32), *(u.public for u in net.users), *(o.identity.public for o in net.operators)]
    )
    vrf_keys = st.sampled_from([bytes(32), bytes(net.operators[0].vrf_key.public_key)])
    ints = st.sampled_from([0, 1, 3, 1_000, 10**6, 2**32 - 1])
    bigs = st.one_of(ints, st.just(2**64 - 1))
    executing = ch.busy_ids[0]  # type: ignore[attr-defined]
    real = ch.executor_certificate(executing, ch.state.task(executing).roster[0].identity)
    certs = st.sampled_from(
        [
            real,
            dataclasses.replace(real, kind=VoteKind.RESULT_ACCEPT),
            dataclasses.replace(real, signers=(Signer(0, b"\x00" * 64),)),
            dataclasses.replace(real, signers=(Signer(60, b"\x00" * 64),)),
            QuorumCertificate(VoteKind.COMMIT, task_round_id(executing, 0), 0, bytes(32), ()),
        ]
    )
    evidence = _equivocation(ch, executing).evidence
    seed = round_seed(ch.state, RoundKind.TASK, ch.busy_ids[2]) or b"\x00" * 32  # type: ignore[attr-defined]
    proofs = st.sampled_from([b"\x00" * 80, bytes(net.operators[0].vrf_key.prove(seed))])
    return st.one_of(
        st.builds(Transfer, keys, bigs),
        st.builds(RegisterOperator, vrf_keys, bigs, ints),
        st.builds(UpdateOperator, vrf_keys, ints),
        st.builds(Bond, bigs),
        st.builds(Unbond, bigs),
        st.builds(SetStatus, st.sampled_from(list(OperatorStatus))),
        st.builds(PostTask, st.binary(max_size=20), bigs, ints),
        st.builds(Credential, st.sampled_from(list(RoundKind)), hashes, proofs, bigs),
        st.builds(TaskCertificate, hashes, st.integers(0, 3), keys, certs),
        st.builds(TaskResult, hashes, st.integers(0, 3), hashes, certs),
        st.builds(SlashEvidence, st.sampled_from(list(RoundKind)), hashes, bigs, st.just(evidence)),
        st.builds(RegisterImage, hashes, bigs),
        st.builds(DeployService, hashes, hashes, keys, ints),
        st.builds(IntegrityReport, hashes, hashes, certs),
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_payload_applies_or_is_rejected_with_a_typed_error(
    busy: DevChain, data: object
) -> None:
    body = data.draw(payloads(busy))  # type: ignore[attr-defined]
    signer = data.draw(  # type: ignore[attr-defined]
        st.sampled_from([*busy.net.users, *(o.identity for o in busy.net.operators)])
    )
    busy.forget_nonce(signer.public)
    tx = busy.sign(signer, body)
    built = busy.propose([tx])
    if built.rejected:
        assert isinstance(built.rejected[0][1], TransactionError)
        with pytest.raises(TransactionError):
            apply_block(busy.state, forced_block(busy, [tx]))
    else:
        check_invariants(built.state)
