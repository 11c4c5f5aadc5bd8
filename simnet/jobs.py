"""The workload's jobs: specs drawn from the scenario's mix, and what they print.

Every job runs in the busybox base image (`executor.images`): `cat`, `sha256sum`, `wc -c`, `sleep`.
The fake sandbox (`executor.fake.FakeSandbox`, deterministic mode and `--sandbox fake`) is scripted
with `fake_outcome`, which prints what busybox prints for that job, so a run's outputs look the same
whichever sandbox ran them and the checkers know the right answer either way.
"""

from __future__ import annotations

import hashlib
import random
from typing import Final

from executor.fake import FakeOutcome
from executor.spec import JobSpec, make_spec
from simnet.scenario import JOB_KINDS, JobKind

# The image digest the fake sandbox pretends to run (no engine is asked). With Docker, the real
# busybox image ID replaces it (`executor.images.build_base_images`).
FAKE_IMAGE_DIGEST: Final = "sha256:" + "5e" * 32
# What the sandbox costs around the job itself (create, start, collect): the executor README
# measures about 200 ms for a trivial job with runc on this machine class.
SANDBOX_OVERHEAD_MS: Final = 200
# Limits of every workload job: small, so a real run fits on one machine.
JOB_MEMORY_BYTES: Final = 64 * 1024 * 1024
JOB_PIDS_MAX: Final = 16
JOB_OUTPUT_BYTES_MAX: Final = 64 * 1024


def make_job(kind: JobKind, index: int, rng: random.Random, image_digest: str) -> JobSpec:
    """The spec of task `index`: the kind's command on seeded input (unique per task, so every
    task id differs even for the same kind)."""
    tag = f"task {index}\n".encode()
    body = rng.randbytes(max(0, kind.input_bytes - len(tag)))
    data = tag + body if kind.input_bytes else b""
    return make_spec(
        image_digest,
        kind.argv,
        env={"POSI_TASK": str(index)},
        input=data,
        wall_time_ms=kind.wall_time_ms,
        cpu_millicores=500,
        memory_bytes=JOB_MEMORY_BYTES,
        pids_max=JOB_PIDS_MAX,
        output_bytes_max=JOB_OUTPUT_BYTES_MAX,
        deterministic=kind.deterministic,
    )


def kind_of(spec: JobSpec) -> JobKind:
    """The workload kind whose command `spec` runs. Raises KeyError for a foreign spec."""
    for kind in JOB_KINDS.values():
        if kind.argv == spec.argv:
            return kind
    raise KeyError(f"no workload job runs {spec.argv!r}")


def expected_output(spec: JobSpec) -> bytes:
    """What busybox prints for a workload job."""
    argv = spec.argv
    if argv == ("cat",):
        return spec.input
    if argv == ("sha256sum",):
        return f"{hashlib.sha256(spec.input).hexdigest()}  -\n".encode()
    if argv == ("wc", "-c"):
        return f"{len(spec.input)}\n".encode()
    return b""


def fake_outcome(spec: JobSpec) -> FakeOutcome:
    """The fake sandbox's script: busybox's output, the kind's run time."""
    try:
        kind = kind_of(spec)
    except KeyError:
        return FakeOutcome()
    return FakeOutcome(stdout=expected_output(spec), run_us=kind.run_ms * 1000)


def run_ms(spec: JobSpec) -> int:
    """How long a fake execution of `spec` takes, in simulated milliseconds."""
    try:
        return kind_of(spec).run_ms + SANDBOX_OVERHEAD_MS
    except KeyError:
        return SANDBOX_OVERHEAD_MS
