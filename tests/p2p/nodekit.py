"""Helpers for the node shell tests: data directories, a devnet chain with a completed task, and a
sandbox double that reports like runc (so default verifiers accept its reports)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from executor.policy import Runtime, SandboxPolicy
from executor.report import Outcome, Phases, UnverifiedReport, Usage, report_digest
from executor.run import execute
from executor.sandbox import RunResult
from executor.spec import JobSpec, make_spec
from ledger.chain import round_seed
from ledger.devnet import DevChain, DevNet
from ledger.domains import Domain
from ledger.genesis import ChainParams, genesis_to_json
from ledger.signing import IdentityKey
from ledger.state import TaskStatus
from ledger.tx import PostTask, RoundKind, TaskCertificate, TaskResult, derived_id
from p2p.nodeconfig import NodeConfig, Role, write_key_file

IMAGE_ID = "sha256:" + "ab" * 32
# Short windows so a task completes in a dozen blocks.
PARAMS = ChainParams(
    min_stake=1_000,
    tau_max=16,
    credential_window_blocks=2,
    task_timeout_blocks=12,
    max_attempts=2,
    dispute_window_blocks=5,
    unbonding_blocks=20,
    min_measurement_interval_blocks=3,
    measurement_timeout_blocks=6,
)


class RuncLikeSandbox:
    """Echoes the spec's input as a run under runc would report it (nothing runs)."""

    def __init__(self, stdout: bytes | None = None) -> None:
        self.stdout = stdout
        self.calls = 0

    @property
    def runtime(self) -> Runtime:
        return Runtime.RUNC

    async def run(self, spec: JobSpec, policy: SandboxPolicy) -> RunResult:
        await trio.lowlevel.checkpoint()
        self.calls += 1
        out = spec.input if self.stdout is None else self.stdout
        return RunResult(
            outcome=Outcome.EXITED,
            exit_code=0,
            stdout=out,
            stderr=b"",
            image_digest=spec.image_digest,
            runtime=Runtime.RUNC,
            phases=Phases(create_us=1000, start_us=1000, run_us=5000, collect_us=1000),
            usage=Usage(
                peak_memory_bytes=1 << 20,
                cpu_time_us=1000,
                pids_peak=1,
                stdout_bytes=len(out),
                stderr_bytes=0,
            ),
            detail="",
        )


def job_spec(data: bytes = b"hello") -> JobSpec:
    return make_spec(IMAGE_ID, ["/bin/cat"], input=data, wall_time_ms=5000)


@dataclasses.dataclass
class CompletedTask:
    chain: DevChain
    task_id: bytes
    attempt: int
    spec: JobSpec
    report: UnverifiedReport
    output: bytes
    executor: IdentityKey


def complete_task(net: DevNet, data: bytes = b"hello") -> CompletedTask:
    """Drive a devnet chain through a whole task: post, credentials, executor, result."""
    chain = DevChain(net)
    spec = job_spec(data)
    poster = net.users[0]
    tx = chain.sign(poster, PostTask(spec.encode(), 1000, 3))
    chain.extend([tx])
    task_id = derived_id(Domain.TASK_ID, tx, chain.chain)
    for _ in range(10):
        if round_seed(chain.state, RoundKind.TASK, task_id) is not None:
            break
        chain.extend()
    seed = round_seed(chain.state, RoundKind.TASK, task_id)
    assert seed is not None
    chain.extend([chain.credential(op, RoundKind.TASK, task_id, seed) for op in net.operators[:3]])
    for _ in range(10):
        if chain.state.task(task_id).status is not TaskStatus.DRAWING:
            break
        chain.extend()
    task = chain.state.task(task_id)
    executor_pub = task.roster[0].identity
    executor = next(o.identity for o in net.operators if o.identity.public == executor_pub)
    cert = chain.executor_certificate(task_id, executor_pub)
    chain.extend([chain.sign(net.users[1], TaskCertificate(task_id, 0, executor_pub, cert))])
    done = trio.run(
        lambda: execute(
            task_id,
            spec.encode(),
            sandbox=RuncLikeSandbox(),
            key=executor,
            software_measurement=b"\x01" * 32,
        )
    )
    digest = report_digest(done.report)
    result_cert = chain.result_certificate(task_id, digest)
    chain.extend([chain.sign(net.users[1], TaskResult(task_id, 0, digest, result_cert))])
    assert chain.state.task(task_id).status is TaskStatus.COMPLETED
    return CompletedTask(chain, task_id, 0, spec, done.report, done.stdout, executor)


def devnet(operators: int = 4) -> DevNet:
    return DevNet.create(validators=4, operators=operators, users=2, params=PARAMS)


def data_dir(
    root: Path,
    name: str,
    identity: IdentityKey,
    net: DevNet,
    *,
    vrf_seed: bytes | None = None,
    roles: frozenset[Role] = frozenset(),
    **settings: object,
) -> NodeConfig:
    """A node data directory with its keys and the devnet's genesis; returns its config."""
    path = root / name
    path.mkdir(parents=True)
    write_key_file(path / "identity.key", identity.seed)
    if vrf_seed is not None:
        write_key_file(path / "vrf.key", vrf_seed)
    genesis = root / "genesis.json"
    if not genesis.exists():
        genesis.write_text(genesis_to_json(net.genesis))
    return NodeConfig(
        data_dir=path,
        genesis=genesis,
        listen=("/ip4/127.0.0.1/tcp/0",),
        roles=roles,
        status_interval_s=0.2,
        **settings,  # type: ignore[arg-type]
    )


def trio_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test function under trio.run (pytest-trio is not a dependency)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        trio.run(functools.partial(fn, *args, **kwargs))

    return wrapper
