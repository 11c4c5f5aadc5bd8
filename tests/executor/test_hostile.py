"""Hostile jobs and bad input against the real Docker Engine, for every runtime the engine has.

Each case runs through `execute` (the product path), then checks: the report says what happened
and verifies offline, the limits held (figures asserted and printed in the run's summary), the node
keeps working (a healthy job runs right after), and nothing is left behind (no container with our
label, no temp files).
"""

from __future__ import annotations

import dataclasses
import pathlib
import socket
import tempfile

import docker
import msgpack
import pytest
import trio

from executor.images import BUSYBOX_IMAGE
from executor.policy import Runtime, effective_policy
from executor.report import Outcome, UnverifiedReport
from executor.run import Execution, execute
from executor.sandbox import DockerSandbox, list_containers
from executor.spec import InputMode, JobSpec, make_spec
from executor.verify import KILL_SLACK_US, TaskView, VerdictReason, VerifyPolicy, verify_report
from ledger.signing import IdentityKey

pytestmark = pytest.mark.docker

KEY = IdentityKey(b"\x11" * 32)
TASK_ID = b"\x22" * 32
SOFTWARE = b"\x33" * 32
MIB = 1024 * 1024
WALL_MS = 2_000  # short deadlines keep the suite fast; the kill path is the same at any length


def _temp_entries() -> set[str]:
    return {p.name for p in pathlib.Path(tempfile.gettempdir()).iterdir() if "posi" in p.name}


def run_case(
    runtime: Runtime, spec_bytes: bytes, docker_engine: docker.DockerClient, busybox: str
) -> Execution:
    """Execute one job, then a healthy job on the same sandbox; assert the cleanup invariants."""
    temp_before = _temp_entries()

    async def main() -> tuple[Execution, Execution]:
        sandbox = await DockerSandbox.connect(runtime=runtime, owner="hostile-suite")
        try:
            done = await execute(
                TASK_ID, spec_bytes, sandbox=sandbox, key=KEY, software_measurement=SOFTWARE
            )
            healthy = make_spec(busybox, ["sh", "-c", "echo alive"], wall_time_ms=20_000)
            after = await execute(
                TASK_ID, healthy.encode(), sandbox=sandbox, key=KEY, software_measurement=SOFTWARE
            )
        finally:
            sandbox.close()
        return done, after

    done, after = trio.run(main)
    assert after.report.body.outcome is Outcome.EXITED, after.report.body.detail
    assert after.stdout == b"alive\n"
    assert list_containers(docker_engine) == []
    assert _temp_entries() == temp_before
    # Every report is honest, so it verifies offline against the task.
    verdict = verify_report(
        TaskView(TASK_ID, spec_bytes, KEY.public), done.report.encode(), VerifyPolicy()
    )
    assert verdict.accepted, (verdict.reason, verdict.detail)
    return done


def _figures(figures: list[str], runtime: Runtime, case: str, report: UnverifiedReport) -> None:
    b = report.body
    u = b.usage
    figures.append(
        f"{runtime.engine_name:5} {case:16} {b.outcome.name:14} exit={b.exit_code} "
        f"run={b.phases.run_us / 1000:.0f}ms create={b.phases.create_us / 1000:.0f}ms "
        f"start={b.phases.start_us / 1000:.0f}ms peak_mem={u.peak_memory_bytes} "
        f"cpu={u.cpu_time_us}us pids_peak={u.pids_peak} out={u.stdout_bytes}+{u.stderr_bytes}B"
    )


def test_fork_bomb(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    spec = make_spec(
        busybox_id, ["sh", "-c", "f(){ f | f & }; f; sleep 60"], pids_max=16, wall_time_ms=WALL_MS
    )
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    _figures(figures, runtime, "fork bomb", done.report)
    pids_limit = effective_policy(spec, runtime).pids_limit
    assert body.usage.pids_peak is not None
    assert body.usage.pids_peak <= pids_limit
    assert body.phases.run_us <= WALL_MS * 1000 + KILL_SLACK_US
    if runtime is Runtime.RUNC:
        # fork() fails with EAGAIN at the limit; the bomb spins until the deadline kill.
        assert body.outcome is Outcome.TIMEOUT
        assert body.usage.pids_peak >= 8
        assert b"can't fork" in done.stderr
    else:
        # gVisor: the pids cgroup bounds the sandbox's host threads; at the limit the sandbox
        # itself stops (measured: exit 2), or the deadline kill comes first.
        assert body.outcome in (Outcome.TIMEOUT, Outcome.EXITED)


def test_memory_bomb(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    limit = 64 * MIB
    spec = make_spec(
        busybox_id,
        ["sh", "-c", "x=a; while :; do x=$x$x; done"],
        memory_bytes=limit,
        wall_time_ms=10_000,
    )
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    _figures(figures, runtime, "memory bomb", done.report)
    assert body.outcome is Outcome.OOM
    assert body.exit_code == 137
    peak = body.usage.peak_memory_bytes
    assert peak is not None
    assert limit // 2 <= peak <= limit  # it really grew, and never past the limit (no swap)
    assert body.phases.run_us < 10_000_000


def test_infinite_loop_is_throttled_and_killed(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    spec = make_spec(
        busybox_id, ["sh", "-c", "while :; do :; done"], cpu_millicores=500, wall_time_ms=WALL_MS
    )
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    _figures(figures, runtime, "infinite loop", done.report)
    assert body.outcome is Outcome.TIMEOUT
    assert WALL_MS * 1000 <= body.phases.run_us <= WALL_MS * 1000 + KILL_SLACK_US
    cpu = body.usage.cpu_time_us
    assert cpu is not None
    # Half a core for ~2 s: about 1 s of CPU, never the 2 s an unthrottled loop would burn.
    assert 0.3 * body.phases.run_us * 0.5 <= cpu <= 0.5 * body.phases.run_us * 1.2 + 200_000


def test_one_gib_on_stdout_is_cut_at_the_cap(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    cap = 1 * MIB
    spec = make_spec(
        busybox_id,
        ["head", "-c", str(1024 * MIB), "/dev/zero"],
        output_bytes_max=cap,
        wall_time_ms=20_000,
    )
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    _figures(figures, runtime, "1 GiB stdout", done.report)
    assert body.outcome is Outcome.OUTPUT_LIMIT
    assert len(done.stdout) + len(done.stderr) == cap
    assert body.usage.stdout_bytes + body.usage.stderr_bytes == cap
    assert done.stdout == bytes(len(done.stdout))
    # Killed at the cap, long before the deadline; and no log driver stored the stream.
    assert body.phases.run_us < 10_000_000
    assert effective_policy(spec, runtime).log_driver == "none"


def test_network_is_unreachable(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    # A listener on the host's loopback: the job tries to reach it. In its own network namespace
    # 127.0.0.1 is the job's private loopback, and there is no other interface or route.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    script = (
        "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '; echo routes=$(tail -n +2 "
        f"/proc/net/route | wc -l); nc -w 1 127.0.0.1 {port} </dev/null; echo nc=$?"
    )
    spec = make_spec(busybox_id, ["sh", "-c", script], wall_time_ms=10_000)
    try:
        done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected to the host
    finally:
        listener.close()
    _figures(figures, runtime, "network", done.report)
    lines = done.stdout.decode().split()
    interfaces = [ln for ln in lines if not ln.startswith(("routes=", "nc="))]
    assert set(interfaces) <= {"lo"}
    assert "routes=0" in lines
    assert "nc=0" not in lines
    assert any(ln.startswith("nc=") for ln in lines)
    assert done.report.body.outcome is Outcome.EXITED


def test_root_filesystem_is_read_only_and_tmp_is_noexec(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    script = (
        "echo x > /etc/pwned; echo root=$?; echo y > /tmp/y && echo tmp=ok; "
        "cp /bin/busybox /tmp/bb; /tmp/bb true; echo exec=$?; id -u"
    )
    spec = make_spec(busybox_id, ["sh", "-c", script])
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    _figures(figures, runtime, "write rootfs", done.report)
    lines = done.stdout.decode().split()
    assert "root=0" not in lines
    assert any(ln.startswith("root=") for ln in lines)
    assert "tmp=ok" in lines
    assert "exec=0" not in lines
    assert any(ln.startswith("exec=") for ln in lines)
    assert lines[-1] == "65534"


def test_sleep_past_the_deadline(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str, figures: list[str]
) -> None:
    spec = make_spec(busybox_id, ["sleep", "60"], wall_time_ms=WALL_MS)
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    _figures(figures, runtime, "sleep past", done.report)
    assert body.outcome is Outcome.TIMEOUT
    assert body.exit_code == 137
    assert WALL_MS * 1000 <= body.phases.run_us <= WALL_MS * 1000 + KILL_SLACK_US


def test_image_digest_mismatch(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    spec = make_spec("sha256:" + "0" * 64, ["true"], image_ref=BUSYBOX_IMAGE)
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    assert body.outcome is Outcome.IMAGE_MISMATCH
    assert body.image_digest == busybox_id
    assert BUSYBOX_IMAGE in body.detail


def test_absent_image(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    spec = make_spec("sha256:" + "ab" * 32, ["true"])
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    body = done.report.body
    assert body.outcome is Outcome.IMAGE_MISSING
    assert body.image_digest is None
    assert "never pull" in body.detail


@pytest.mark.parametrize(
    "spec_bytes",
    [
        b"\x93garbage",
        b"",
        # Canonical msgpack, but wall_time_ms = 0 breaks a bound.
        msgpack.packb(
            [1, "sha256:" + "ab" * 32, "", ["true"], {}, b"", 0, [0, 1000, 64 << 20, 8, 0], True, 0]
        ),
    ],
    ids=["garbage", "empty", "bound"],
)
def test_malformed_spec(
    runtime: Runtime, spec_bytes: bytes, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    done = run_case(runtime, spec_bytes, docker_engine, busybox_id)
    body = done.report.body
    assert body.outcome is Outcome.SPEC_INVALID
    assert body.policy_digest is None
    assert body.input_hash is None
    assert body.detail


def test_input_on_stdin_and_as_file(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    data = bytes(range(256)) * 64
    on_stdin = make_spec(busybox_id, ["sha256sum"], input=data)
    as_file = make_spec(
        busybox_id, ["sh", "-c", "sha256sum < /tmp/input"], input=data, input_mode=InputMode.FILE
    )
    import hashlib

    expected = hashlib.sha256(data).hexdigest().encode()
    for spec in (on_stdin, as_file):
        done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
        assert done.report.body.outcome is Outcome.EXITED
        assert done.stdout.startswith(expected)


def test_deterministic_job_reexecutes_to_the_same_hash(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    spec = make_spec(busybox_id, ["sh", "-c", "cat; hostname; id; ls /"], input=b"abc")
    first = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    second = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    assert first.report.body.output_hash == second.report.body.output_hash
    assert first.stdout == second.stdout


def test_cancellation_removes_the_container(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    spec = make_spec(busybox_id, ["sleep", "60"], wall_time_ms=60_000)
    seen: list[str] = []

    async def main() -> None:
        with trio.CancelScope() as scope:

            def on_phase(phase: str, name: str) -> None:
                seen.append(f"{phase}:{name}")
                if phase == "started":
                    # The node is shutting down while the job runs.
                    assert name in list_containers(docker_engine)
                    scope.cancel()

            sandbox = await DockerSandbox.connect(runtime=runtime, on_phase=on_phase)
            await execute(
                TASK_ID, spec.encode(), sandbox=sandbox, key=KEY, software_measurement=SOFTWARE
            )
        assert scope.cancelled_caught
        sandbox.close()

    trio.run(main)
    assert [s.split(":")[0] for s in seen] == ["created", "started"]
    assert list_containers(docker_engine) == []


def test_network_policy_refused_unless_the_node_opts_in(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    from executor.spec import NetworkPolicy

    spec = make_spec(busybox_id, ["true"], deterministic=False, network=NetworkPolicy.BRIDGE)
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    assert done.report.body.outcome is Outcome.POLICY_REFUSED


def test_tampered_real_report_fails(
    runtime: Runtime, docker_engine: docker.DockerClient, busybox_id: str
) -> None:
    spec = make_spec(busybox_id, ["echo", "result"])
    done = run_case(runtime, spec.encode(), docker_engine, busybox_id)
    task = TaskView(TASK_ID, spec.encode(), KEY.public)
    body = done.report.body
    forged = dataclasses.replace(done.report, body=dataclasses.replace(body, output_hash=bytes(32)))
    assert verify_report(task, forged, VerifyPolicy()).reason is VerdictReason.BAD_SIGNATURE
    other_task = TaskView(TASK_ID, make_spec(busybox_id, ["echo", "x"]).encode(), KEY.public)
    assert (
        verify_report(other_task, done.report, VerifyPolicy()).reason is VerdictReason.SPEC_MISMATCH
    )


def test_spec_type_is_what_runs(busybox_id: str) -> None:
    assert JobSpec.decode(make_spec(busybox_id, ["true"]).encode()).image_digest == busybox_id
