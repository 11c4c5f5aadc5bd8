"""Attestation reports: what an executor signs about one run of one task (pure: no I/O, no clock).

Wire form: `UnverifiedReport(body, tee_quote, signature)`, canonical msgpack. The signature is the
executor's identity key over `Domain.REPORT_SIG || encode(SignedPart(body, tee_quote))`; a TEE
quote, when present, binds `digest(Domain.TEE_REPORT_DATA, encode(body))` in its report-data field.
The ledger names a report by `report_digest(report)` = `digest(Domain.REPORT, encode(report))`.

Decoding gives an `UnverifiedReport`: nothing in it is trusted until
`executor.verify.verify_report` returns a verdict carrying a `VerifiedReport`.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from typing import Annotated, ClassVar

from executor.policy import Runtime
from ledger.domains import Domain, digest
from ledger.encoding import U8, U16, U32, U64, Hash, MaxLen, PublicKeyBytes, Record, SignatureBytes
from ledger.signing import IdentityKey

REPORT_VERSION = 1
# Room for a human-readable reason (an engine error message, a spec error); longer ones are cut.
DETAIL_BYTES_MAX = 512
# An Intel TDX/SGX DCAP quote with its certification chain is 5-12 KiB; 32 KiB leaves headroom for
# other vendors without letting a report grow unboundedly.
TEE_QUOTE_BYTES_MAX = 32 * 1024
REPORT_BYTES_MAX = TEE_QUOTE_BYTES_MAX + 8 * 1024


class Outcome(enum.IntEnum):
    """How the run ended. The first four mean the container ran; the rest mean it never started."""

    EXITED = 0  # the job exited by itself; exit_code says how
    TIMEOUT = 1  # killed at the wall-time deadline
    OOM = 2  # killed by the kernel for exceeding the memory limit (engine's OOMKilled flag)
    OUTPUT_LIMIT = 3  # killed when stdout + stderr reached output_bytes_max
    SPEC_INVALID = 4  # the task's spec bytes are not a valid JobSpec
    IMAGE_MISSING = 5  # no image with the pinned digest on this node (nodes never pull)
    IMAGE_MISMATCH = 6  # the spec's image_ref resolves to another digest than it pins
    IMAGE_REJECTED = 7  # the image breaks the sandbox policy (e.g. declares VOLUMEs)
    POLICY_REFUSED = 8  # the spec asks for something this node's policy refuses (e.g. network)
    RUNTIME_UNAVAILABLE = 9  # the selected OCI runtime is not registered with the engine
    SANDBOX_ERROR = 10  # the engine failed; the job's fate is unknown

    @property
    def container_ran(self) -> bool:
        """True when a container was started (the output and usage fields are meaningful)."""
        return self <= Outcome.OUTPUT_LIMIT


@dataclasses.dataclass(frozen=True, slots=True)
class Phases(Record):
    """Host-side durations of each phase in microseconds. The job's limit applies to `run_us` only,
    which starts when the engine reports the container started: slow creates or starts never count
    against the job."""

    create_us: U32  # image checks + container create + attach
    start_us: U32  # the start API call
    run_us: U32  # started -> exit observed (or killed)
    collect_us: U32  # inspect, usage, remove


@dataclasses.dataclass(frozen=True, slots=True)
class Usage(Record):
    """Resources the job used. Cgroup figures are sampled while the container runs (the cgroup
    disappears with the container), so they are lower bounds on the true peaks; None when the
    engine's cgroups are not readable from the node (a remote engine) or nothing was sampled."""

    peak_memory_bytes: U64 | None  # memory cgroup high-water mark (includes tmpfs pages)
    cpu_time_us: U64 | None  # cpuacct usage
    pids_peak: U32 | None  # highest pids.current seen
    stdout_bytes: U64  # captured (at most output_bytes_max together with stderr)
    stderr_bytes: U64


class TeeKind(enum.IntEnum):
    """Kinds of TEE quote a report may carry."""

    TEST_DOUBLE = 0  # executor.tee.FakeTee: no hardware, proves nothing about a real machine
    INTEL_TDX = 1  # reserved: no verifier ships yet (there is no TEE hardware to test it on)
    AMD_SEV_SNP = 2  # reserved, likewise


@dataclasses.dataclass(frozen=True, slots=True)
class TeeQuote(Record):
    """An opaque quote whose report-data binds the report body."""

    kind: TeeKind
    quote: Annotated[bytes, MaxLen(TEE_QUOTE_BYTES_MAX)]


@dataclasses.dataclass(frozen=True, slots=True)
class ReportBody(Record):
    """Everything the executor attests to, except the TEE quote and the signature."""

    version: U8
    task_id: Hash
    executor_key: PublicKeyBytes
    spec_hash: Hash  # digest(Domain.JOB_SPEC, the task's spec bytes)
    # The image ID as the engine reports it ("sha256:..."); None if no image was resolved.
    image_digest: Annotated[str, MaxLen(71)] | None
    policy_digest: Hash | None  # of effective_policy(spec, runtime); None if the spec is invalid
    runtime: Runtime
    input_hash: Hash | None  # digest(Domain.INPUT, spec.input); None if the spec is invalid
    outcome: Outcome
    exit_code: U16 | None  # the container's exit status (128 + signal when killed)
    output_hash: Hash  # BLAKE3 under Domain.OUTPUT of the captured stdout
    stderr_hash: Hash  # same for the captured stderr (diagnostics; never compared)
    phases: Phases
    usage: Usage
    software_measurement: Hash  # executor.measure.software_measurement() of the signing node
    detail: Annotated[str, MaxLen(DETAIL_BYTES_MAX)]


@dataclasses.dataclass(frozen=True, slots=True)
class SignedPart(Record):
    """What the signature covers: the body and the quote (so neither can be swapped)."""

    MAX_BYTES: ClassVar[int] = REPORT_BYTES_MAX
    body: ReportBody
    tee_quote: TeeQuote | None


@dataclasses.dataclass(frozen=True, slots=True)
class UnverifiedReport(Record):
    """A signed attestation report as it travels. Trust nothing in it before verification."""

    MAX_BYTES: ClassVar[int] = REPORT_BYTES_MAX
    body: ReportBody
    tee_quote: TeeQuote | None
    signature: SignatureBytes

    def signed_message(self) -> bytes:
        """The bytes the signature must cover (prefixed with Domain.REPORT_SIG when signing)."""
        return SignedPart(self.body, self.tee_quote).encode()


def tee_report_data(body: ReportBody) -> bytes:
    """The 32 bytes a TEE quote must carry in its report-data field to bind this body."""
    return body.digest(Domain.TEE_REPORT_DATA)


def sign_report(
    body: ReportBody, key: IdentityKey, tee_quote: TeeQuote | None = None
) -> UnverifiedReport:
    """Sign a body with the node's identity key.

    Raises ValueError if `body.executor_key` is not `key`'s public key (a caller bug: a report
    must name its signer), and ledger EncodeError if a field is out of bounds (a caller bug too).
    """
    if body.executor_key != key.public:
        raise ValueError("report body names another executor key than the signing key")
    signature = key.sign(Domain.REPORT_SIG, SignedPart(body, tee_quote).encode())
    return UnverifiedReport(body=body, tee_quote=tee_quote, signature=signature)


def report_digest(report: UnverifiedReport) -> bytes:
    """How the ledger names a report: digest(Domain.REPORT, canonical encoding)."""
    return digest(Domain.REPORT, report.encode())


def clip_detail(text: str) -> str:
    """Cut a message to DETAIL_BYTES_MAX UTF-8 bytes without splitting a character."""
    data = text.encode()[:DETAIL_BYTES_MAX]
    return data.decode(errors="ignore")


def to_json(report: UnverifiedReport) -> dict[str, object]:
    """A JSON-friendly view for humans and logs (bytes as hex, enums by name); not canonical."""

    def conv(value: object) -> object:
        if isinstance(value, Record):
            return {
                f.name: conv(getattr(value, f.name))
                for f in dataclasses.fields(value)  # type: ignore[arg-type]
            }
        if isinstance(value, enum.Enum):
            return value.name
        if isinstance(value, bytes):
            return value.hex()
        return value

    out = typing.cast(dict[str, object], conv(report))
    out["report_digest"] = report_digest(report).hex()
    return out


__all__ = [
    "REPORT_VERSION",
    "Outcome",
    "Phases",
    "ReportBody",
    "SignedPart",
    "TeeKind",
    "TeeQuote",
    "UnverifiedReport",
    "Usage",
    "clip_detail",
    "report_digest",
    "sign_report",
    "tee_report_data",
    "to_json",
]
