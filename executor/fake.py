"""A fake sandbox with scripted outcomes, for unit tests and the simulator.

NOT the product path: nothing runs. Its results carry `Runtime.FAKE`, which the default
`VerifyPolicy` rejects (RUNTIME_NOT_ALLOWED), so a report from a fake can never pass as a real
execution on a network that did not opt in (the simulator's verifiers allow FAKE explicitly).

A script maps a spec hash to a `FakeOutcome`, or is a function of the spec; the default outcome
echoes the input to stdout and exits 0, which is deterministic, so re-execution agrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import trio

from executor.errors import ExecutorError
from executor.policy import Runtime, SandboxPolicy
from executor.report import Outcome, Phases, Usage
from executor.sandbox import RunResult
from executor.spec import JobSpec


@dataclasses.dataclass(frozen=True, slots=True)
class FakeOutcome:
    """What the fake reports for one run. `raises` makes `run` raise instead (e.g. ImageMissing)."""

    outcome: Outcome = Outcome.EXITED
    exit_code: int | None = 0
    stdout: bytes | None = None  # None: echo the spec's input
    stderr: bytes = b""
    run_us: int = 1_000
    peak_memory_bytes: int | None = 1 << 20
    raises: ExecutorError | None = None


Script = Mapping[bytes, FakeOutcome] | Callable[[JobSpec], FakeOutcome]


class FakeSandbox:
    """Scripted sandbox (see the module docstring). `calls` records the specs it was given."""

    def __init__(self, script: Script | None = None, default: FakeOutcome | None = None) -> None:
        self._script = script
        self._default = default or FakeOutcome()
        self.calls: list[JobSpec] = []

    @property
    def runtime(self) -> Runtime:
        """Always Runtime.FAKE."""
        return Runtime.FAKE

    def _pick(self, spec: JobSpec) -> FakeOutcome:
        if self._script is None:
            return self._default
        if callable(self._script):
            return self._script(spec)
        return self._script.get(spec.spec_hash(), self._default)

    async def run(self, spec: JobSpec, policy: SandboxPolicy) -> RunResult:
        """Return the scripted result, shaped like a real one (output capped, limits applied)."""
        await trio.lowlevel.checkpoint()
        if policy.runtime is not Runtime.FAKE:
            raise ValueError("FakeSandbox only runs policies for Runtime.FAKE")
        self.calls.append(spec)
        scripted = self._pick(spec)
        if scripted.raises is not None:
            raise scripted.raises
        stdout = spec.input if scripted.stdout is None else scripted.stdout
        stderr = scripted.stderr
        outcome = scripted.outcome
        cap = policy.output_bytes_max
        if len(stdout) + len(stderr) > cap:
            stdout = stdout[:cap]
            stderr = stderr[: cap - len(stdout)]
            outcome = Outcome.OUTPUT_LIMIT
        run_us = scripted.run_us
        if outcome is Outcome.TIMEOUT:
            run_us = max(run_us, policy.wall_time_ms * 1000)
        peak = scripted.peak_memory_bytes
        return RunResult(
            outcome=outcome,
            exit_code=scripted.exit_code,
            stdout=stdout,
            stderr=stderr,
            image_digest=spec.image_digest,
            runtime=Runtime.FAKE,
            phases=Phases(create_us=0, start_us=0, run_us=run_us, collect_us=0),
            usage=Usage(
                peak_memory_bytes=None if peak is None else min(peak, policy.memory_bytes),
                cpu_time_us=None,
                pids_peak=1,
                stdout_bytes=len(stdout),
                stderr_bytes=len(stderr),
            ),
            detail=f"FAKE {outcome.name}",
        )
