"""The contract between the pure `PeerCore` and whatever drives it (the trio shell, the simulator).

Events go in (`PeerCore.handle(event) -> list[Action]`), actions come out; the driver executes the
actions of one batch in order. Everything here is plain data. Rules of the contract:

* The core is pure: no clock, sockets, threads, global random, Docker or SQLite. Every event
  carries `now_ms` (the driver's clock, milliseconds, never decreasing).
* Peers are named by their 32-byte Ed25519 identity public key; the shell converts to and from
  libp2p peer ids (`p2p.identity`).
* Timers are actions (`StartTimer(key, delay_ms)`), never cancelled; when one expires the driver
  delivers `TimerFired(key)`. The core drops the ones that no longer matter.
* Requests: an inbound request is `RequestReceived` with a driver-chosen `request_id`; the core
  answers it with exactly one `Respond` (data, or an error reason and a penalty), possibly in a
  later batch. Outbound: `Request` carries a core-chosen `request_id`, answered later by exactly
  one `ResponseReceived` or `RequestFailed`.
* `StoreBlock` must be executed synchronously and durably before any later action of the same
  batch (a finalised block a node has acted on is never lost). On restart, build the core from the
  store's state and tip commit (`PeerCore(config, state=store.state, tip_commit=store.tip_commit,
  archive=store)`), then it catches up by sync on its own.
* Gossip: `PeerCore.validate_gossip(topic, sender, data)` is the quick validator the shell passes
  to `host.subscribe` (translate `Accept`/`Ignore`/`Reject` below to `p2p.host`'s verdicts, same
  fields); accepted messages enter `handle` as `GossipReceived`.
* Invalid input from a peer never raises: it produces `Respond(error=...)`, a `Penalise` or a
  gossip `Reject`, with a reason. Local misuse (an event the core cannot accept) raises
  `CoreMisuse`.

Topics and protocols (network budget, shared/DESIGN.md): only tasks and blocks are gossiped
network-wide; everything else is request/response over direct streams. `TOPICS` and `PROTOCOLS`
give each a size bound; the shell builds its `HostConfig` from them.

Changes (newest last; keep this list):
- v1: first version.
- v1.1: `SubmitTask` waits for the node to reach the chain's tip before signing (no new types).
- v1.2: `ProtocolSpec.timeout_ms` of PROTO_CONSENSUS/PROTO_COMMITTEE 3 s (the core retries failed
  round messages), PROTO_SYNC 10 s. No type changed.
- v1.3: `StoreBlock.via` (how the block came, for metrics). `SyncRequest.wait_ms`: a sync request
  may be answered up to that long after it arrived (the core holds it until it has the block).
- v1.4: `TaskPhase.REDRAWN`: a task whose credential window closed empty is drawn again on a new
  seed (ledger/README.md, "Tasks on the ledger").
- v1.5: `TaskPhase.VIEW_CHANGED`: one of this node's agreements of the task moved to a later view
  (it asked for view V, or entered it; detail: `agreement I: view V`; committee/README.md).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Hashable
from typing import Final

from committee.messages import MESSAGE_BYTES_MAX as COMMITTEE_MESSAGE_BYTES_MAX
from executor.report import REPORT_BYTES_MAX
from executor.spec import OUTPUT_BYTES_MAX_MAX
from ledger.block import Block, CertifiedBlock
from ledger.certificates import Membership, QuorumCertificate
from ledger.state import State
from ledger.sync import SYNC_BYTES_MAX, SyncRequest
from ledger.tx import TX_BYTES_MAX
from p2p.errors import P2PError

# ------------------------------------------------------------------------ topics and protocols

TOPIC_TASKS: Final = "posi/tasks/1"  # signed POST_TASK transactions from posters
TOPIC_BLOCKS: Final = "posi/blocks/1"  # a finalised block with its commit certificate

PROTO_TX: Final = "/posi/tx/1"  # a transaction to a validator's mempool
PROTO_CONSENSUS: Final = "/posi/consensus/1"  # block rounds (and block bodies) among validators
PROTO_COMMITTEE: Final = "/posi/committee/1"  # task round messages among roster members
PROTO_REPORT: Final = "/posi/report/1"  # a verifier fetches the executor's signed report
PROTO_OUTPUT: Final = "/posi/output/1"  # the poster fetches the report and the output
PROTO_SYNC: Final = "/posi/sync/1"  # blocks by height range

# An acknowledgement carries nothing; a few bytes of slack for future flags.
ACK_BYTES_MAX: Final = 16
# A request naming a (task id, attempt): 32 + 1 bytes and the msgpack framing.
TASK_REQUEST_BYTES_MAX: Final = 64
# A certified block as gossip or in a consensus message: the ledger's hard ceiling on a block
# (16 MiB of transactions + header) plus its commit certificate. Chains normally set
# max_block_bytes lower (8 MiB by default); the bound is the ceiling no genesis may exceed.
BLOCK_MESSAGE_BYTES_MAX: Final = CertifiedBlock.MAX_BYTES + 64
# A consensus message: one committee round message, optionally with the proposed block body.
CONSENSUS_BYTES_MAX: Final = COMMITTEE_MESSAGE_BYTES_MAX + Block.MAX_BYTES + 64
# The report and the output it attests (the output is capped by the job spec, at most 16 MiB).
OUTPUT_RESPONSE_BYTES_MAX: Final = REPORT_BYTES_MAX + OUTPUT_BYTES_MAX_MAX + 64
# One signed transaction (the largest is a task result with a full certificate, ~96 KiB).
TX_MESSAGE_BYTES_MAX: Final = TX_BYTES_MAX


@dataclasses.dataclass(frozen=True, slots=True)
class TopicSpec:
    """A gossip topic and the largest message it carries."""

    name: str
    max_message_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """A request/response protocol and its bounds (both sides apply them)."""

    protocol_id: str
    max_request_bytes: int
    max_response_bytes: int
    timeout_ms: int  # what the core puts in its `Request`s on this protocol (the shell may cap it)


TOPICS: Final = (
    TopicSpec(TOPIC_TASKS, TX_MESSAGE_BYTES_MAX),
    TopicSpec(TOPIC_BLOCKS, BLOCK_MESSAGE_BYTES_MAX),
)
PROTOCOLS: Final = (
    ProtocolSpec(PROTO_TX, TX_MESSAGE_BYTES_MAX, ACK_BYTES_MAX, 5_000),
    # Round messages are retried when their request fails: a short deadline lets a retry land
    # well within the round's own timeouts.
    ProtocolSpec(PROTO_CONSENSUS, CONSENSUS_BYTES_MAX, ACK_BYTES_MAX, 3_000),
    ProtocolSpec(PROTO_COMMITTEE, COMMITTEE_MESSAGE_BYTES_MAX, ACK_BYTES_MAX, 3_000),
    ProtocolSpec(PROTO_REPORT, TASK_REQUEST_BYTES_MAX, REPORT_BYTES_MAX, 10_000),
    ProtocolSpec(PROTO_OUTPUT, TASK_REQUEST_BYTES_MAX, OUTPUT_RESPONSE_BYTES_MAX, 30_000),
    ProtocolSpec(PROTO_SYNC, SyncRequest.MAX_BYTES, SYNC_BYTES_MAX, 10_000),
)
PROTOCOL_SPECS: Final = {p.protocol_id: p for p in PROTOCOLS}
TOPIC_SPECS: Final = {t.name: t for t in TOPICS}


# ------------------------------------------------------------------------------------- errors


class CoreMisuse(P2PError):
    """The driver broke the contract (an event the core cannot accept: a response to a request it
    never made, an execution it never asked for, a misconfigured role). Fix the driver."""


# --------------------------------------------------------------------------- gossip verdicts


@dataclasses.dataclass(frozen=True, slots=True)
class Accept:
    """Deliver the message to the core (as `GossipReceived`) and forward it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Ignore:
    """Drop the message without blaming the sender (old, duplicate, not for us yet)."""

    reason: str = "ignored"


@dataclasses.dataclass(frozen=True, slots=True)
class Reject:
    """Drop the message and penalise the peer that forwarded it by `penalty` points."""

    reason: str
    penalty: int
    detail: str = ""


ACCEPT: Final = Accept()
GossipVerdict = Accept | Ignore | Reject


# ------------------------------------------------------------------------------------- events


class FailureKind(enum.Enum):
    """Why an outbound request got no answer."""

    UNREACHABLE = "unreachable"  # no stream could be opened (no address, dial failed, banned)
    TIMEOUT = "timeout"
    REJECTED = "rejected"  # the peer answered with an error frame
    PROTOCOL_ERROR = "protocol-error"  # the answer broke the protocol (the host penalised it)
    TOO_LARGE = "too-large"  # our request was above the protocol's bound (a local bug)


class Purpose(enum.Enum):
    """Why the core asks for an execution."""

    EXECUTE = "execute"  # this node is the chosen executor: run the job, sign the report
    REEXECUTE = "reexecute"  # this node verifies: run the same job to compare outputs


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    """Deliver once, first: the node is listening. The core starts its timers and its sync."""

    now_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection to `peer` opened (the core picks sync partners among connected peers)."""

    now_ms: int
    peer: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """The last connection to `peer` closed."""

    now_ms: int
    peer: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class GossipReceived:
    """A gossip message that `validate_gossip` accepted. `sender` forwarded it to us; `origin`
    published it (None if unknown)."""

    now_ms: int
    topic: str
    sender: bytes
    data: bytes
    origin: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RequestReceived:
    """An inbound request on `protocol` from `peer`. Answer: one `Respond(request_id, ...)`."""

    now_ms: int
    request_id: int
    peer: bytes
    protocol: str
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The answer to the core's `Request(request_id, ...)`."""

    now_ms: int
    request_id: int
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class RequestFailed:
    """The core's `Request(request_id, ...)` got no usable answer."""

    now_ms: int
    request_id: int
    kind: FailureKind
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core started with `StartTimer(key, ...)` expired."""

    now_ms: int
    key: Hashable


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionFinished:
    """The answer to `Execute`: the signed report (`executor.report.UnverifiedReport` encoding)
    and the captured stdout it attests. An execution that could not run still has a signed report
    (its outcome says why)."""

    now_ms: int
    task_id: bytes
    attempt: int
    purpose: Purpose
    report: bytes
    output: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitTask:
    """Local command (poster role): sign and post a task. `job_spec` is the canonical encoding of
    an `executor.spec.JobSpec`; `ref` is the driver's handle, echoed in `TaskSubmitted`. Raises
    CoreMisuse if the spec does not decode or the fee/tau/balance break the chain's rules. The
    core signs only once it reached the chain's tip (`PeerCore.caught_up`: a stale state gives a
    stale nonce); until then the submission waits, and `TaskSubmitted` comes later."""

    now_ms: int
    ref: int
    job_spec: bytes
    fee: int
    tau: int


@dataclasses.dataclass(frozen=True, slots=True)
class FollowTask:
    """Local command (poster role): follow a task posted elsewhere (e.g. by an earlier run) to its
    result and fetch the output (`posi-peer result TASK`)."""

    now_ms: int
    task_id: bytes


Event = (
    Started
    | PeerConnected
    | PeerDisconnected
    | GossipReceived
    | RequestReceived
    | ResponseReceived
    | RequestFailed
    | TimerFired
    | ExecutionFinished
    | SubmitTask
    | FollowTask
)


# ------------------------------------------------------------------------------------ actions


@dataclasses.dataclass(frozen=True, slots=True)
class Publish:
    """Publish `data` on gossip topic `topic` (only TOPIC_TASKS and TOPIC_BLOCKS)."""

    topic: str
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """Send a request to `peer` on `protocol`; deliver exactly one `ResponseReceived` or
    `RequestFailed` with the same `request_id` later."""

    request_id: int
    peer: bytes
    protocol: str
    data: bytes
    timeout_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Connect:
    """Requests to `peer` will follow soon (it was drawn into a committee with this node): have a
    connection ready, so the round does not wait for a dial. A hint, nothing comes back; a shell
    may ignore it (the network host dials only when its peer id sorts below `peer`'s: each pair
    dials once)."""

    peer: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Respond:
    """Answer inbound request `request_id`: `data` when `error` is None; else an error frame with
    `error` as its reason, and the caller loses `penalty` points (0: no blame, e.g. busy)."""

    request_id: int
    data: bytes = b""
    error: str | None = None
    penalty: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class StartTimer:
    """Deliver `TimerFired(key)` after `delay_ms`. Never cancelled."""

    key: Hashable
    delay_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Execute:
    """Run task `task_id`'s job (`job_spec` bytes, exactly as the task carries them) with
    `executor.run.execute` and deliver `ExecutionFinished` with the same task, attempt, purpose."""

    task_id: bytes
    attempt: int
    job_spec: bytes
    purpose: Purpose


@dataclasses.dataclass(frozen=True, slots=True)
class StoreBlock:
    """Persist `block` and the state after it (`Store.append(block, state)`), synchronously and
    durably, before executing the next action of this batch. `via` says how the block came (for
    metrics only): "gossip", "sync", "poll" (a sync request the peer held until it had the
    block), or "round" (this validator's own round)."""

    block: CertifiedBlock
    state: State
    via: str = "round"


class TaskPhase(enum.Enum):
    """Points of a task's timeline (logs and metrics)."""

    POSTED = "posted"  # this node signed and gossiped it
    INCLUDED = "included"  # a finalised block holds it
    SEED = "seed"  # its sortition seed is known
    REDRAWN = "redrawn"  # no credential reached the window: the ledger draws it again (new seed)
    DRAWN = "drawn"  # this node was drawn (detail: weight) and sent its credential
    NOT_DRAWN = "not-drawn"  # this node was not drawn (detail: why)
    ROSTER = "roster"  # the ledger fixed the roster (detail: members, weight)
    EXECUTOR_CONFIRMED = "executor-confirmed"  # the roster certified the executor (detail: who)
    STARTED = "started"  # this node started executing or re-executing it
    FINISHED = "finished"  # this node's execution finished (detail: outcome)
    VIEW_CHANGED = "view-changed"  # an agreement moved to a later view (detail: which, view)
    CERTIFIED = "certified"  # the result certificate formed (detail: report digest)
    REJECTED = "rejected"  # the roster rejected an executor; the next candidate takes over
    PAID = "paid"  # the ledger accepted the result and paid the escrow
    OUTPUT_FETCHED = "output-fetched"  # the poster holds the output and the certificate
    FAILED = "failed"  # the task ended without a result (detail: why)
    EXPIRED = "expired"  # the ledger expired it and refunded the poster


@dataclasses.dataclass(frozen=True, slots=True)
class TaskEvent:
    """A point of task `task_id`'s timeline, seen by this node at `now_ms`."""

    task_id: bytes
    phase: TaskPhase
    now_ms: int
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Penalise:
    """`peer` misbehaved: lower its score by `penalty` (the shell's peer scores ban at -100)."""

    peer: bytes
    reason: str
    penalty: int
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class TaskSubmitted:
    """The answer to `SubmitTask(ref)`: the task id and the signed transaction (also published)."""

    ref: int
    task_id: bytes
    tx: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ResultReady:
    """Poster role: a followed task completed and its output was fetched and checked against the
    certified report. `certificate` is the RESULT_ACCEPT certificate of `roster` over
    `report_digest` (round `result_round_id(task_id, attempt)`); `height` is the block that
    recorded it (the shell can add a state proof from its store)."""

    task_id: bytes
    attempt: int
    report: bytes
    report_digest: bytes
    output: bytes
    certificate: QuorumCertificate
    roster: Membership
    height: int


class LogLevel(enum.IntEnum):
    """Severity of a `Log` action (same numbers as the `logging` module)."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


@dataclasses.dataclass(frozen=True, slots=True)
class Log:
    """Something the operator may want in the log (`what` is a short stable code)."""

    level: LogLevel
    what: str
    detail: str = ""


Action = (
    Publish
    | Request
    | Connect
    | Respond
    | StartTimer
    | Execute
    | StoreBlock
    | TaskEvent
    | Penalise
    | TaskSubmitted
    | ResultReady
    | Log
)

__all__ = [
    "ACCEPT",
    "ACK_BYTES_MAX",
    "BLOCK_MESSAGE_BYTES_MAX",
    "CONSENSUS_BYTES_MAX",
    "OUTPUT_RESPONSE_BYTES_MAX",
    "PROTOCOLS",
    "PROTOCOL_SPECS",
    "PROTO_COMMITTEE",
    "PROTO_CONSENSUS",
    "PROTO_OUTPUT",
    "PROTO_REPORT",
    "PROTO_SYNC",
    "PROTO_TX",
    "TASK_REQUEST_BYTES_MAX",
    "TOPICS",
    "TOPIC_BLOCKS",
    "TOPIC_SPECS",
    "TOPIC_TASKS",
    "TX_MESSAGE_BYTES_MAX",
    "Accept",
    "Action",
    "Connect",
    "CoreMisuse",
    "Event",
    "Execute",
    "ExecutionFinished",
    "FailureKind",
    "FollowTask",
    "GossipReceived",
    "GossipVerdict",
    "Ignore",
    "Log",
    "LogLevel",
    "PeerConnected",
    "PeerDisconnected",
    "Penalise",
    "ProtocolSpec",
    "Publish",
    "Purpose",
    "Reject",
    "Request",
    "RequestFailed",
    "RequestReceived",
    "Respond",
    "ResponseReceived",
    "ResultReady",
    "StartTimer",
    "Started",
    "StoreBlock",
    "SubmitTask",
    "TaskEvent",
    "TaskPhase",
    "TaskSubmitted",
    "TimerFired",
    "TopicSpec",
]
