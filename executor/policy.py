"""The sandbox policy: every setting a container runs under, as one record with one digest.

`effective_policy(spec, runtime)` is a pure function of the spec and the runtime, so an executor and
every verifier compute the same `SandboxPolicy` and the same digest; the report carries the digest,
and the Docker sandbox builds its container configuration from this record alone (one source of
truth: a setting that is not here is not applied). Why each setting: see executor/README.md.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated

from executor.spec import INPUT_FILE_PATH, InputMode, JobSpec, NetworkPolicy
from ledger.domains import Domain
from ledger.encoding import U8, U32, U64, MaxLen, Record

POLICY_VERSION = 1

# The job's user: "nobody" on Debian-style systems. Not root, and owns nothing in the image.
SANDBOX_USER = "65534:65534"
# /tmp (inside the container) is the only writable place. noexec: a job cannot drop and run a
# binary; 16 MiB: enough for scratch files and the FILE input (INPUT_BYTES_MAX); tmpfs pages count
# against the memory limit.
TMPFS_PATH = "/tmp"  # noqa: S108 - a path inside the container's own tmpfs, not the host's
TMPFS_BYTES = 16 * 1024 * 1024
TMPFS_OPTIONS = f"rw,noexec,nosuid,nodev,size={TMPFS_BYTES}"
# Output reaches the node only through the attach stream, which the sandbox caps; no log driver
# means a job writing 1 GiB cannot fill the engine's disk through json-file logs.
LOG_DRIVER = "none"
# File descriptors per process: enough for any batch job, bounds kernel memory a job can pin.
NOFILE_MAX = 1024
# A fixed hostname: the engine's default (the container id) would make `hostname` output differ
# between an executor and a verifier re-running a deterministic job.
SANDBOX_HOSTNAME = "posi-job"
CFS_PERIOD_US = 100_000
# Under gVisor the pids cgroup counts the sandbox's own host threads (the Sentry and Gofer: ~30-60
# measured with runsc 2022-12 on ptrace), not the job's tasks, which gVisor schedules internally.
# Without headroom a small pids limit stops the sandbox from starting at all; the job's own task
# count is then bounded by the memory limit instead.
RUNSC_PIDS_OVERHEAD = 128  # the kernel default; nano_cpus maps onto quota/period


class Runtime(enum.IntEnum):
    """Which OCI runtime ran the job; the report records it."""

    RUNC = 1  # the engine's default: namespaces + cgroups + seccomp
    RUNSC = 2  # gVisor: a user-space kernel between the job and the host kernel
    FAKE = 255  # scripted outcomes for tests and the simulator; never a real execution

    @property
    def engine_name(self) -> str:
        """The name the Docker Engine registers this runtime under."""
        return {Runtime.RUNC: "runc", Runtime.RUNSC: "runsc", Runtime.FAKE: "fake"}[self]


@dataclasses.dataclass(frozen=True, slots=True)
class SandboxPolicy(Record):
    """The effective policy of one run. Field order is the schema; append only in a new version."""

    version: U8
    runtime: Runtime
    user: Annotated[str, MaxLen(32)]
    read_only_rootfs: bool
    tmpfs_path: Annotated[str, MaxLen(64)]
    tmpfs_options: Annotated[str, MaxLen(128)]
    cap_drop_all: bool
    no_new_privileges: bool
    network: NetworkPolicy
    ipc_mode: Annotated[str, MaxLen(16)]
    working_dir: Annotated[str, MaxLen(64)]
    hostname: Annotated[str, MaxLen(64)]
    log_driver: Annotated[str, MaxLen(16)]
    nofile_max: U32
    memory_bytes: U64
    memory_swap_bytes: U64  # equal to memory_bytes: no swap
    pids_limit: U32
    nano_cpus: U64
    wall_time_ms: U32
    output_bytes_max: U64
    input_mode: InputMode
    input_path: Annotated[str, MaxLen(64)]  # "" unless input_mode is FILE

    def policy_digest(self) -> bytes:
        """BLAKE3 of the canonical encoding under Domain.SANDBOX_POLICY (the report's digest)."""
        return self.digest(Domain.SANDBOX_POLICY)


def effective_policy(spec: JobSpec, runtime: Runtime) -> SandboxPolicy:
    """The policy a job runs under: the fixed hardening settings plus the spec's limits."""
    limits = spec.limits
    return SandboxPolicy(
        version=POLICY_VERSION,
        runtime=runtime,
        user=SANDBOX_USER,
        read_only_rootfs=True,
        tmpfs_path=TMPFS_PATH,
        tmpfs_options=TMPFS_OPTIONS,
        cap_drop_all=True,
        no_new_privileges=True,
        network=spec.network,
        ipc_mode="private",
        working_dir=TMPFS_PATH,
        hostname=SANDBOX_HOSTNAME,
        log_driver=LOG_DRIVER,
        nofile_max=NOFILE_MAX,
        memory_bytes=limits.memory_bytes,
        memory_swap_bytes=limits.memory_bytes,
        pids_limit=limits.pids_max + (RUNSC_PIDS_OVERHEAD if runtime is Runtime.RUNSC else 0),
        nano_cpus=limits.cpu_millicores * 1_000_000,
        wall_time_ms=limits.wall_time_ms,
        output_bytes_max=limits.output_bytes_max,
        input_mode=spec.input_mode,
        input_path=INPUT_FILE_PATH if spec.input_mode is InputMode.FILE else "",
    )
