"""A devnet of real `posi-peer run` processes on 127.0.0.1, driven the way an operator would.

`Devnet.create(root)` runs `posi-peer devnet init`; `start()` launches one process per node with
JSON logs on stdout. A reader thread per process parses every line into `records` and wakes the
waiters; `wait_for(predicate, timeout_s)` blocks on a condition variable until a record matches or
the deadline passes (it never sleeps to poll). Raw lines also go to ROOT/logs/NAME.log, which the
failure messages point at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# What one command may take on the 2-core machines this runs on (12 node processes plus Docker).
COMMAND_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0

Record = dict[str, Any]


def cli(*args: str) -> list[str]:
    """The argv of `posi-peer ARGS` from this checkout."""
    return [sys.executable, "-m", "p2p.cli", *args]


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(REPO) + os.pathsep + out.get("PYTHONPATH", "")
    out.pop("POSI_DATA_DIR", None)
    return out


class NodeProcess:
    """One `posi-peer run` process and the JSON records of its stdout."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        entry: dict[str, Any],
        log_dir: Path,
        cond: threading.Condition,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.entry = entry
        self.identity = bytes.fromhex(entry["identity"])
        self.peer_id: str = entry["peer_id"]
        self.log_path = log_dir / f"{name}.log"
        self.records: list[Record] = []
        # Shared by every process of a devnet: a waiter on several nodes wakes on any new record.
        self.cond = cond
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.starts = 0
        self._terminated = False

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already runs"
        self.starts += 1
        self._terminated = False
        self.proc = subprocess.Popen(
            cli("run", "--data-dir", str(self.data_dir)),
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(
            target=self._read, args=(self.proc, self.starts), daemon=True
        )
        self._reader.start()

    def _read(self, proc: subprocess.Popen[bytes], start: int) -> None:
        assert proc.stdout is not None
        with proc.stdout, open(self.log_path, "ab") as log:
            log.write(f"--- start {start} pid {proc.pid}\n".encode())
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = {"msg": raw.decode(errors="replace").rstrip(), "level": "raw"}
                if not isinstance(record, dict):
                    continue
                record["_start"] = start
                with self.cond:
                    self.records.append(record)
                    self.cond.notify_all()
        with self.cond:
            self.records.append({"event": "_exited", "_start": start, "code": proc.wait()})
            self.cond.notify_all()

    def kill9(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT_S)

    def terminate(self) -> None:
        """SIGTERM once (a second SIGTERM during the shutdown would force it, as in any daemon)."""
        assert self.proc is not None
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """SIGTERM; returns the exit code (it must stop within STOP_TIMEOUT_S)."""
        assert self.proc is not None
        self.terminate()
        code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT_S)
        return code

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # --- records ---------------------------------------------------------------------------------

    def mark(self) -> int:
        """An index into `records`: wait for records after this point."""
        with self.cond:
            return len(self.records)

    def wait_for(
        self, predicate: Callable[[Record], bool], timeout_s: float, *, since: int = 0
    ) -> Record:
        """The first record from index `since` on that matches; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            index = since
            while True:
                while index < len(self.records):
                    record = self.records[index]
                    index += 1
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name}: no matching log record within {timeout_s:g} s "
                        f"(see {self.log_path})"
                    )
                self.cond.wait(remaining)

    def matching(self, predicate: Callable[[Record], bool], *, since: int = 0) -> list[Record]:
        with self.cond:
            return [r for r in self.records[since:] if predicate(r)]

    def height(self) -> int:
        """The highest block this process (any of its runs) reported stored."""
        blocks = self.matching(lambda r: r.get("event") == "block")
        listening = self.matching(lambda r: r.get("event") == "listening")
        heights = [int(r["height"]) for r in blocks + listening]
        return max(heights, default=0)

    def wait_height(self, height: int, timeout_s: float, *, since: int = 0) -> Record:
        return self.wait_for(
            lambda r: r.get("event") == "block" and int(r["height"]) >= height,
            timeout_s,
            since=since,
        )


class Devnet:
    """The devnet's directory, manifest and processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = json.loads((root / "devnet.json").read_text())
        self.log_dir = root / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.cond = threading.Condition()
        self.nodes: dict[str, NodeProcess] = {}
        for entry in self.manifest["nodes"]:
            if entry["role"] != "poster":
                name = entry["name"]
                self.nodes[name] = NodeProcess(
                    name, root / entry["data_dir"], entry, self.log_dir, self.cond
                )

    @classmethod
    def create(cls, root: Path, *extra: str) -> Devnet:
        subprocess.run(
            cli("devnet", "init", str(root), "--log-format", "json", *extra),
            cwd=REPO,
            env=env(),
            check=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return cls(root)

    def wait_any(
        self,
        nodes: list[NodeProcess],
        predicate: Callable[[Record], bool],
        timeout_s: float,
        marks: dict[str, int],
    ) -> tuple[NodeProcess, Record]:
        """The first record (after each node's mark) that matches, on any of `nodes`."""
        deadline = time.monotonic() + timeout_s
        seen = dict(marks)
        with self.cond:
            while True:
                for node in nodes:
                    records = node.records
                    while seen[node.name] < len(records):
                        record = records[seen[node.name]]
                        seen[node.name] += 1
                        if predicate(record):
                            return node, record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no node logged a matching record within {timeout_s:g} s "
                        f"(logs in {self.log_dir})"
                    )
                self.cond.wait(remaining)

    def node(self, name: str) -> NodeProcess:
        return self.nodes[name]

    def by_identity(self, identity: bytes) -> NodeProcess:
        for node in self.nodes.values():
            if node.identity == identity:
                return node
        raise KeyError(identity.hex())

    def validators(self) -> list[NodeProcess]:
        return [n for n in self.nodes.values() if n.entry["role"] == "validator"]

    def operators(self) -> list[NodeProcess]:
        return [n for n in self.nodes.values() if n.entry["role"] == "operator"]

    def running(self) -> Iterator[NodeProcess]:
        return (n for n in self.nodes.values() if n.alive)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    def stop(self) -> dict[str, int]:
        """SIGTERM every process at once, then collect the exit codes."""
        for node in self.nodes.values():
            if node.proc is not None:
                node.terminate()
        return {n.name: n.stop() for n in self.nodes.values() if n.proc is not None}

    def tip(self) -> int:
        """The highest height any running node stored."""
        return max((n.height() for n in self.running()), default=0)

    def poster(self, index: int) -> Path:
        return self.root / f"poster-{index}"

    def run_cli(
        self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a posi-peer command to completion (stdout and stderr captured)."""
        return subprocess.run(
            cli(*args), cwd=REPO, env=env(), capture_output=True, timeout=timeout_s, check=False
        )

    def popen_cli(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cli(*args), cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
