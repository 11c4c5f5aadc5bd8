"""Log formats and metric label bounds of the node."""

from __future__ import annotations

import io
import json
import logging

from p2p.metrics_export import OTHER, REASONS_MAX, NodeMetrics
from p2p.nodeconfig import LogFormat
from p2p.nodelog import FIELD_CHARS_MAX, configure_logging, log_event


def _logged(fmt: LogFormat) -> str:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging(fmt, "info", stream=stream)
    try:
        log_event(
            logging.getLogger("posi.test"),
            "task",
            "task abc posted",
            task=b"\x01" * 4,
            phase="posted",
            detail="x" * (FIELD_CHARS_MAX + 10),
        )
        logging.getLogger("posi.test").debug("not shown at info")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    return stream.getvalue()


def test_json_lines_carry_the_event_and_its_fields() -> None:
    (line,) = _logged(LogFormat.JSON).splitlines()
    doc = json.loads(line)
    assert doc["event"] == "task"
    assert doc["phase"] == "posted"
    assert doc["task"] == "01010101"  # bytes as hex
    assert doc["level"] == "info"
    assert doc["logger"] == "posi.test"
    assert doc["msg"] == "task abc posted"
    assert len(doc["detail"]) == FIELD_CHARS_MAX + 3  # clipped, with "..."


def test_human_lines_append_fields() -> None:
    (line,) = _logged(LogFormat.HUMAN).splitlines()
    assert " INFO    posi.test: task abc posted  task=01010101 phase=posted detail=xxx" in line
    assert "event=" not in line


def test_reason_labels_are_bounded() -> None:
    metrics = NodeMetrics()
    for n in range(REASONS_MAX + 5):
        metrics.rejected(f"reason-{n}")
    assert metrics.rejections.labels("reason-0")._value.get() == 1
    assert metrics.rejections.labels(OTHER)._value.get() == 5
    names = {s.labels["reason"] for m in metrics.rejections.collect() for s in m.samples}
    assert len(names) == REASONS_MAX + 1


def test_phase_latency_is_observed_per_phase() -> None:
    metrics = NodeMetrics()
    metrics.phase("posted", 0.0)
    metrics.phase("paid", 17.5)
    metrics.phase("paid", None)  # seen without a first sighting: counted, no latency
    assert metrics.task_phases.labels("paid")._value.get() == 2
    samples = {
        (s.name, s.labels.get("phase"), s.labels.get("le")): s.value
        for m in metrics.phase_latency.collect()
        for s in m.samples
    }
    assert samples[("posi_phase_latency_seconds_count", "paid", None)] == 1
    assert samples[("posi_phase_latency_seconds_bucket", "paid", "15.0")] == 0
    assert samples[("posi_phase_latency_seconds_bucket", "paid", "20.0")] == 1
