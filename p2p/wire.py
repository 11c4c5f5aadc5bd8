"""Wire records of the node's request/response protocols (canonical msgpack, strict decoding).

| protocol | request | response |
|---|---|---|
| PROTO_TX | `ledger.tx.Transaction` | empty (an error frame says why it was refused) |
| PROTO_CONSENSUS | `ConsensusMessage` | empty |
| PROTO_COMMITTEE | a `committee.messages` message (tag, task id, record) | empty |
| PROTO_REPORT | `TaskRequest` | `executor.report.UnverifiedReport` encoding |
| PROTO_OUTPUT | `TaskRequest` | `OutputResponse` |
| PROTO_SYNC | `ledger.sync.SyncRequest` | `ledger.sync.SyncResponse` |

Gossip: TOPIC_TASKS carries a `Transaction` of kind POST_TASK; TOPIC_BLOCKS a
`ledger.block.CertifiedBlock`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, ClassVar

from committee.messages import MESSAGE_BYTES_MAX as COMMITTEE_MESSAGE_BYTES_MAX
from executor.report import REPORT_BYTES_MAX
from executor.spec import OUTPUT_BYTES_MAX_MAX
from ledger.block import Block
from ledger.certificates import QuorumCertificate
from ledger.encoding import U8, U64, Hash, MaxLen, Record
from p2p.events import CONSENSUS_BYTES_MAX, OUTPUT_RESPONSE_BYTES_MAX, TASK_REQUEST_BYTES_MAX


@dataclasses.dataclass(frozen=True, slots=True)
class ConsensusMessage(Record):
    """A block round message for `height` (committee wire bytes). A proposal carries the block
    body whose hash it proposes, so validators check the block before they prepare it."""

    MAX_BYTES: ClassVar[int] = CONSENSUS_BYTES_MAX
    height: U64
    message: Annotated[bytes, MaxLen(COMMITTEE_MESSAGE_BYTES_MAX)]
    block: Block | None


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRequest(Record):
    """Names one attempt of one task (a report or output fetch)."""

    MAX_BYTES: ClassVar[int] = TASK_REQUEST_BYTES_MAX
    task_id: Hash
    attempt: U8


@dataclasses.dataclass(frozen=True, slots=True)
class OutputResponse(Record):
    """The executor's signed report, the output it attests, and (once known) the roster's result
    certificate, so a poster that missed the block can still check the result."""

    MAX_BYTES: ClassVar[int] = OUTPUT_RESPONSE_BYTES_MAX
    report: Annotated[bytes, MaxLen(REPORT_BYTES_MAX)]
    output: Annotated[bytes, MaxLen(OUTPUT_BYTES_MAX_MAX)]
    certificate: QuorumCertificate | None
