"""Logging of a node: one line per record on stdout, JSON (for machines) or human (for people).

Structured fields travel in `extra={"fields": {...}}`: the JSON format puts them at the top level of
the object, the human format appends them as `key=value`. Every JSON line has `ts` (Unix seconds),
`level`, `logger` and `msg`, plus an `event` field for the records a tool may wait on:

| event | fields | when |
|---|---|---|
| `listening` | `peer_id`, `addrs`, `metrics` | the node accepts connections |
| `block` | `height`, `hash`, `txs` | a block was stored durably |
| `task` | `task`, `phase`, `detail`, `since_posted_ms` | a task reached a phase of its timeline |
| `penalty` | `peer`, `reason`, `penalty` | the core penalised a peer |
| `execution` | `task`, `attempt`, `purpose`, `outcome`, `ms` | a sandbox run ended |
| `sync` | `from_height`, `to_height`, `peer` | blocks caught up from a peer |
| `stopped` | `height` | clean shutdown finished |
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, TextIO

from p2p.nodeconfig import LogFormat

# Detail strings from the core or peers are clipped: a log line is not a data channel.
FIELD_CHARS_MAX: Final = 512
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _clip(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str) and len(value) > FIELD_CHARS_MAX:
        return value[:FIELD_CHARS_MAX] + "..."
    if isinstance(value, list | tuple):
        return [_clip(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _clip(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in doc:
                    doc[key] = _clip(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"), default=str)


class HumanFormatter(logging.Formatter):
    """`HH:MM:SS.mmm LEVEL logger: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: "
            f"{record.getMessage()}"
        )
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            extras = " ".join(
                f"{k}={_clip(v)}" for k, v in fields.items() if k != "event" and v is not None
            )
            if extras:
                line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(
    log_format: LogFormat, level: str = "info", stream: TextIO | None = None
) -> logging.Handler:
    """Send every record at `level` and above to `stream` (stdout) in `log_format`; replaces the
    root logger's handlers. Returns the handler (for tests that want to remove it)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format is LogFormat.JSON else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    return handler


def log_event(logger: logging.Logger, event: str, msg: str, /, **fields: Any) -> None:
    """Log an INFO record carrying `event` and `fields` (see the table in the module doc)."""
    logger.info(msg, extra={"fields": {"event": event, **fields}})
