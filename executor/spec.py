"""The job spec: what a task asks a node to run, validated once, every bound documented.

A `JobSpec` travels inside the ledger's post-task transaction as opaque bytes (its canonical
encoding, at most `JOB_SPEC_BYTES_MAX`). Constructing one checks every invariant and raises
`SpecError` naming the field; `JobSpec.decode` raises `ledger.errors.DecodeError` for anything that
is not the canonical encoding of a valid spec (the same checks run during decoding). A `JobSpec`
value that exists is therefore valid: nothing downstream re-checks it.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Annotated, ClassVar

from executor.errors import SpecError
from ledger.domains import Domain, digest
from ledger.encoding import U8, U32, U64, MaxItems, MaxLen, Record
from ledger.errors import EncodeError

SPEC_VERSION = 1

# The ledger carries a task's spec as bytes of at most 64 KiB (cross-package agreement): a block
# holds many tasks and every validator stores them for ever.
JOB_SPEC_BYTES_MAX = 64 * 1024
# Input travels inside the spec, so it must leave room for argv and env under JOB_SPEC_BYTES_MAX.
# Larger inputs belong in the image or behind a content hash fetched out of band (a later version).
INPUT_BYTES_MAX = 32 * 1024
# "sha256:" + 64 hex digits: the engine's image ID (sha256 of the image config), see README.
IMAGE_DIGEST_LEN = 71
# Docker limits a reference's repository name to 255 characters.
IMAGE_REF_LEN_MAX = 255
# argv and env bounds keep a spec well under JOB_SPEC_BYTES_MAX per item while allowing ordinary
# command lines; the total is bounded again by JOB_SPEC_BYTES_MAX.
ARGV_ITEMS_MAX = 256
ARG_BYTES_MAX = 4096
ENV_ITEMS_MAX = 64
ENV_KEY_BYTES_MAX = 128
ENV_VALUE_BYTES_MAX = 4096

# Limits. Each has a floor (below it a container cannot even start) and a ceiling (above it a job
# would not fit in a committee round, or in the machines operators actually run).
WALL_TIME_MS_MIN = 100  # container start-up noise is tens of ms; less than this measures nothing
WALL_TIME_MS_MAX = 600_000  # 10 min: verifiers re-execute within the task's dispute window
CPU_MILLICORES_MIN = 10  # CFS quota of 1 ms per 100 ms period; less starves the process entirely
CPU_MILLICORES_MAX = 16_000  # 16 cores: the largest node class we size committees for
MEMORY_BYTES_MIN = 16 * 1024 * 1024  # runc/runsc refuse or OOM at start below a few MiB
MEMORY_BYTES_MAX = 8 * 1024 * 1024 * 1024  # 8 GiB: a node runs several jobs at once
PIDS_MAX_MIN = 4  # a shell, its child and a pipe need a few processes
PIDS_MAX_MAX = 4096  # far above any honest job; bounds the kernel objects one job may pin
OUTPUT_BYTES_MAX_MAX = 16 * 1024 * 1024  # 16 MiB: verifiers fetch and hash the output on request

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# name[:tag]: lowercase path components, an optional registry-style host and an optional tag.
_REF_RE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class NetworkPolicy(enum.IntEnum):
    """What network the job may see. The default sandbox policy allows only NONE."""

    NONE = 0  # no interface but loopback, no route: nothing leaves the container
    BRIDGE = 1  # the engine's default bridge with egress; a node must opt in (never by default)


class InputMode(enum.IntEnum):
    """How the spec's input bytes reach the job."""

    STDIN = 0  # written to the job's stdin, then stdin is closed
    # Written to INPUT_FILE_PATH (on the container's tmpfs) before argv runs, by a one-line
    # /bin/sh loader; the image must therefore provide a POSIX /bin/sh. stdin is then empty.
    FILE = 1


INPUT_FILE_PATH = "/tmp/input"  # noqa: S108 - inside the container's tmpfs, not the host's

_Arg = Annotated[str, MaxLen(ARG_BYTES_MAX)]
_EnvKey = Annotated[str, MaxLen(ENV_KEY_BYTES_MAX)]
_EnvValue = Annotated[str, MaxLen(ENV_VALUE_BYTES_MAX)]


@dataclasses.dataclass(frozen=True, slots=True)
class Limits(Record):
    """Resource limits of one job. Wall time counts from the moment the container has started, so a
    slow engine never eats into the job's time."""

    wall_time_ms: U32
    cpu_millicores: U32  # CPU bandwidth: 1000 = one full core (CFS quota)
    memory_bytes: U64  # RAM including tmpfs pages; swap is always off (memory-swap = memory)
    pids_max: U32
    output_bytes_max: U64  # stdout + stderr captured together; the job is killed past it

    def __post_init__(self) -> None:
        _in_range("limits.wall_time_ms", self.wall_time_ms, WALL_TIME_MS_MIN, WALL_TIME_MS_MAX)
        _in_range(
            "limits.cpu_millicores", self.cpu_millicores, CPU_MILLICORES_MIN, CPU_MILLICORES_MAX
        )
        _in_range("limits.memory_bytes", self.memory_bytes, MEMORY_BYTES_MIN, MEMORY_BYTES_MAX)
        _in_range("limits.pids_max", self.pids_max, PIDS_MAX_MIN, PIDS_MAX_MAX)
        _in_range("limits.output_bytes_max", self.output_bytes_max, 0, OUTPUT_BYTES_MAX_MAX)


@dataclasses.dataclass(frozen=True, slots=True)
class JobSpec(Record):
    """One job: an image pinned by digest, the exact argv and env, the input, the limits."""

    MAX_BYTES: ClassVar[int] = JOB_SPEC_BYTES_MAX

    version: U8
    image_digest: Annotated[str, MaxLen(IMAGE_DIGEST_LEN)]
    # Optional human reference (e.g. "posi/busybox:1"); "" for none. When set, it must resolve on
    # the node to exactly image_digest. The container always runs the digest, never the name.
    image_ref: Annotated[str, MaxLen(IMAGE_REF_LEN_MAX)]
    argv: Annotated[tuple[_Arg, ...], MaxItems(ARGV_ITEMS_MAX)]
    env: Annotated[dict[_EnvKey, _EnvValue], MaxItems(ENV_ITEMS_MAX)]
    input: Annotated[bytes, MaxLen(INPUT_BYTES_MAX)]
    input_mode: InputMode
    limits: Limits
    # True when the same spec must always give the same output: verifiers may then re-execute and
    # compare output hashes. A deterministic job may not use the network.
    deterministic: bool
    network: NetworkPolicy

    def __post_init__(self) -> None:
        if self.version != SPEC_VERSION:
            raise SpecError(f"version: {self.version!r} is not supported (expected {SPEC_VERSION})")
        if type(self.image_digest) is not str or not _DIGEST_RE.fullmatch(self.image_digest):
            raise SpecError(
                f"image_digest: {self.image_digest!r} is not 'sha256:' followed by 64 lowercase "
                "hex digits (use the image ID that `docker image inspect` reports)"
            )
        if type(self.image_ref) is not str or (
            self.image_ref and not _REF_RE.fullmatch(self.image_ref)
        ):
            raise SpecError(f"image_ref: {self.image_ref!r} is not a name[:tag] reference or ''")
        if type(self.argv) is not tuple or not self.argv:
            raise SpecError("argv: must be a non-empty tuple (argv[0] is the program to run)")
        for i, arg in enumerate(self.argv):
            if type(arg) is not str or "\x00" in arg:
                raise SpecError(f"argv[{i}]: must be a str without NUL")
        if not self.argv[0]:
            raise SpecError("argv[0]: must name a program")
        if type(self.env) is not dict:
            raise SpecError("env: must be a dict of str to str")
        for key, value in self.env.items():
            if type(key) is not str or not _ENV_KEY_RE.fullmatch(key):
                raise SpecError(f"env: key {key!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            if type(value) is not str or "\x00" in value:
                raise SpecError(f"env[{key!r}]: must be a str without NUL")
        if type(self.input) is not bytes or len(self.input) > INPUT_BYTES_MAX:
            raise SpecError(f"input: must be bytes of at most {INPUT_BYTES_MAX}")
        if not isinstance(self.input_mode, InputMode):
            raise SpecError(f"input_mode: {self.input_mode!r} is not an InputMode")
        if type(self.limits) is not Limits:
            raise SpecError("limits: must be a Limits record")
        if type(self.deterministic) is not bool:
            raise SpecError("deterministic: must be a bool")
        if not isinstance(self.network, NetworkPolicy):
            raise SpecError(f"network: {self.network!r} is not a NetworkPolicy")
        if self.deterministic and self.network is not NetworkPolicy.NONE:
            raise SpecError("network: a deterministic job must use NetworkPolicy.NONE")
        try:
            self.encode()
        except EncodeError as exc:
            raise SpecError(str(exc)) from None

    def spec_hash(self) -> bytes:
        """The digest that reports and tasks use to name this spec."""
        return self.digest(Domain.JOB_SPEC)

    def input_hash(self) -> bytes:
        """BLAKE3 of the input under Domain.INPUT (the report's input hash)."""
        return digest(Domain.INPUT, self.input)


def spec_hash_of(spec_bytes: bytes) -> bytes:
    """The spec hash of raw spec bytes, valid or not (a report on a malformed spec names it too)."""
    return digest(Domain.JOB_SPEC, spec_bytes)


def make_spec(
    image_digest: str,
    argv: tuple[str, ...] | list[str],
    *,
    image_ref: str = "",
    env: dict[str, str] | None = None,
    input: bytes = b"",
    input_mode: InputMode = InputMode.STDIN,
    wall_time_ms: int = 10_000,
    cpu_millicores: int = 1000,
    memory_bytes: int = 128 * 1024 * 1024,
    pids_max: int = 64,
    output_bytes_max: int = 1024 * 1024,
    deterministic: bool = True,
    network: NetworkPolicy = NetworkPolicy.NONE,
) -> JobSpec:
    """Build a valid `JobSpec` with the defaults a small batch job wants.

    Raises SpecError naming the field that breaks a bound; fix the argument."""
    return JobSpec(
        version=SPEC_VERSION,
        image_digest=image_digest,
        image_ref=image_ref,
        argv=tuple(argv),
        env=dict(env or {}),
        input=input,
        input_mode=input_mode,
        limits=Limits(
            wall_time_ms=wall_time_ms,
            cpu_millicores=cpu_millicores,
            memory_bytes=memory_bytes,
            pids_max=pids_max,
            output_bytes_max=output_bytes_max,
        ),
        deterministic=deterministic,
        network=network,
    )


def _in_range(name: str, value: object, lo: int, hi: int) -> None:
    if type(value) is not int or not lo <= value <= hi:
        raise SpecError(f"{name}: {value!r} is outside [{lo}, {hi}]")
