"""Benchmark: sandbox overhead over a bare `docker run --rm`, and report sign/verify cost.

    python -m executor.bench [--rounds 20] [--reports 2000]

For each runtime the engine has (runc; runsc when registered) it runs the same trivial job
(`true` in posi/busybox:1) `rounds` times each way, interleaved (bare, sandbox, bare, sandbox...) so
drift in the machine's load hits both equally, and prints the medians and their ratio:

* bare CLI: `docker run --rm --runtime R posi/busybox:1 true` through the docker CLI (what an
            operator types; includes starting the CLI process);
* bare SDK: the same through the docker SDK in this process (`containers.run(..., remove=True)`,
            no policy): the like-for-like baseline, so `ratio` is the sandbox's own overhead;
* sandbox:  `DockerSandbox.run` with the full default policy (image checks, create, attach, start,
            cgroup sampling, wait, inspect, remove), wall time from call to return.

Then it signs and verifies `reports` attestation reports and prints the cost per report. Figures
go to stdout; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import docker
import trio

from executor.engine import docker_client, engine_runtimes
from executor.images import BUSYBOX_IMAGE, build_base_images
from executor.policy import Runtime, effective_policy
from executor.report import REPORT_VERSION, Outcome, Phases, ReportBody, Usage, sign_report
from executor.sandbox import DockerSandbox, output_hash
from executor.spec import make_spec
from executor.verify import TaskView, VerifyPolicy, verify_report
from ledger.signing import IdentityKey

_BARE_TIMEOUT_S = 120


def _bare_run(runtime: Runtime) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            "docker", "run", "--rm", "--network", "none",
            "--runtime", runtime.engine_name, BUSYBOX_IMAGE, "true",
        ],
        check=True,
        capture_output=True,
        timeout=_BARE_TIMEOUT_S,
    )  # fmt: skip
    return time.perf_counter() - start


def _bare_sdk_run(client: docker.DockerClient, runtime: Runtime) -> float:
    start = time.perf_counter()
    client.containers.run(
        BUSYBOX_IMAGE, ["true"], remove=True, network_mode="none", runtime=runtime.engine_name
    )
    return time.perf_counter() - start


async def _overhead(runtime: Runtime, image_id: str, rounds: int) -> dict[str, float]:
    sandbox = await DockerSandbox.connect(runtime=runtime, owner="bench")
    spec = make_spec(image_id, ["true"], wall_time_ms=60_000)
    policy = effective_policy(spec, runtime)
    bare: list[float] = []
    bare_sdk: list[float] = []
    boxed: list[float] = []
    phases: list[Phases] = []
    try:
        await trio.to_thread.run_sync(_bare_run, runtime)  # warm-up every path once
        await trio.to_thread.run_sync(_bare_sdk_run, sandbox.client, runtime)
        await sandbox.run(spec, policy)
        for _ in range(rounds):
            bare.append(await trio.to_thread.run_sync(_bare_run, runtime))
            bare_sdk.append(await trio.to_thread.run_sync(_bare_sdk_run, sandbox.client, runtime))
            start = time.perf_counter()
            result = await sandbox.run(spec, policy)
            boxed.append(time.perf_counter() - start)
            if result.outcome is not Outcome.EXITED or result.exit_code != 0:
                raise RuntimeError(f"trivial job failed: {result.detail}")
            phases.append(result.phases)
    finally:
        sandbox.close()
    bare_ms = statistics.median(bare) * 1000
    sdk_ms = statistics.median(bare_sdk) * 1000
    boxed_ms = statistics.median(boxed) * 1000
    return {
        "bare_cli_ms": round(bare_ms, 1),
        "bare_sdk_ms": round(sdk_ms, 1),
        "sandbox_ms": round(boxed_ms, 1),
        "ratio": round(boxed_ms / sdk_ms, 3),
        "ratio_vs_cli": round(boxed_ms / bare_ms, 3),
        "create_ms": round(statistics.median(p.create_us for p in phases) / 1000, 1),
        "start_ms": round(statistics.median(p.start_us for p in phases) / 1000, 1),
        "run_ms": round(statistics.median(p.run_us for p in phases) / 1000, 1),
        "collect_ms": round(statistics.median(p.collect_us for p in phases) / 1000, 1),
    }


def _report_costs(count: int) -> dict[str, float]:
    key = IdentityKey(b"\x01" * 32)
    spec = make_spec("sha256:" + "ab" * 32, ["true"])
    task = TaskView(b"\x02" * 32, spec.encode(), key.public)
    body = ReportBody(
        version=REPORT_VERSION,
        task_id=task.task_id,
        executor_key=key.public,
        spec_hash=spec.spec_hash(),
        image_digest=spec.image_digest,
        policy_digest=effective_policy(spec, Runtime.RUNC).policy_digest(),
        runtime=Runtime.RUNC,
        input_hash=spec.input_hash(),
        outcome=Outcome.EXITED,
        exit_code=0,
        output_hash=output_hash(b""),
        stderr_hash=output_hash(b""),
        phases=Phases(20_000, 100_000, 40_000, 8_000),
        usage=Usage(4 << 20, 30_000, 2, 0, 0),
        software_measurement=b"\x03" * 32,
        detail="EXITED",
    )
    start = time.perf_counter()
    reports = [sign_report(body, key).encode() for _ in range(count)]
    sign_us = (time.perf_counter() - start) / count * 1e6
    policy = VerifyPolicy()
    start = time.perf_counter()
    for data in reports:
        if not verify_report(task, data, policy).accepted:
            raise RuntimeError("benchmark report did not verify")
    verify_us = (time.perf_counter() - start) / count * 1e6
    return {
        "sign_us": round(sign_us, 1),
        "verify_us": round(verify_us, 1),
        "report_bytes": len(reports[0]),
    }


def main(rounds: int = 20, reports: int = 2000) -> int:
    """Run the benchmark; returns 0 (raises EngineUnavailable if no engine answers)."""
    client = docker_client()
    image_id = next(i.image_id for i in build_base_images(client) if i.ref == BUSYBOX_IMAGE)
    available = engine_runtimes(client)
    client.close()
    results: dict[str, object] = {"rounds": rounds}
    for runtime in (Runtime.RUNC, Runtime.RUNSC):
        if runtime.engine_name not in available:
            print(f"{runtime.engine_name}: not registered with the engine, skipped")
            results[runtime.engine_name] = None
            continue
        figures = trio.run(_overhead, runtime, image_id, rounds)
        results[runtime.engine_name] = figures
        print(
            f"{runtime.engine_name}: bare docker run --rm: CLI {figures['bare_cli_ms']} ms, SDK "
            f"{figures['bare_sdk_ms']} ms; sandbox {figures['sandbox_ms']} ms; ratio sandbox/SDK "
            f"{figures['ratio']}, sandbox/CLI {figures['ratio_vs_cli']} (medians of {rounds}, "
            f"interleaved); sandbox phases: create {figures['create_ms']} ms, start "
            f"{figures['start_ms']} ms, run {figures['run_ms']} ms, collect "
            f"{figures['collect_ms']} ms"
        )
    costs = _report_costs(reports)
    results["report"] = costs
    print(
        f"report: sign {costs['sign_us']} us, verify {costs['verify_us']} us per report "
        f"({costs['report_bytes']} bytes, {reports} reports)"
    )
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="runs of each kind (median taken)")
    parser.add_argument("--reports", type=int, default=2000, help="reports to sign and verify")
    args = parser.parse_args()
    sys.exit(main(rounds=args.rounds, reports=args.reports))
