"""Docker jobs of a real-mode worker, run by a process that does nothing else.

A worker process runs a hundred or more peers on one trio loop that keeps a core busy. The
sandbox talks to the engine through the docker SDK in threads, and every step of those threads
needs the GIL, which a thread gets back from a busy loop only in slices (the interpreter's switch
interval, 5 ms). A job that takes 0.2 s on an idle machine took 4-9 s in the workers of a
300-peer run (p50; README, "Docker jobs"), and verifiers' votes waited for it.

`serve` (the child process) owns the `DockerSandbox`; the worker's `RemoteSandbox` implements the
sandbox protocol (`executor.sandbox.Sandbox`) by sending each run to it over a pipe. Everything
else stays in the worker: `executor.run.execute` validates the spec, computes the policy, and signs
the report with the peer's key there, so the report is the one the product path makes.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing.connection
import os
from typing import Any, Final

import trio

from executor.errors import (
    EngineUnavailable,
    ExecutorError,
    ImageError,
    ImageMismatch,
    ImageMissing,
    ImageRejected,
    PolicyRefused,
    RuntimeUnavailable,
    SandboxError,
)
from executor.policy import Runtime, SandboxPolicy
from executor.sandbox import RunResult
from executor.spec import JobSpec

# The sandbox errors that cross the pipe by name (anything else arrives as SandboxError).
_ERRORS: Final[dict[str, type[ExecutorError]]] = {
    cls.__name__: cls
    for cls in (
        ImageMissing,
        ImageMismatch,
        ImageRejected,
        PolicyRefused,
        RuntimeUnavailable,
        EngineUnavailable,
        SandboxError,
    )
}


def serve(conn: multiprocessing.connection.Connection) -> None:
    """The jobs process: connect to the engine, then run each job the worker sends, several at
    once (the worker bounds how many), until the worker's end of the pipe closes."""
    trio.run(_serve, conn)


async def _serve(conn: multiprocessing.connection.Connection) -> None:
    from executor.sandbox import DockerSandbox  # noqa: PLC0415

    try:
        sandbox = await DockerSandbox.connect(owner=f"simnet-{os.getpid()}")
    except ExecutorError as exc:
        conn.send(("failed", str(exc)))
        return
    conn.send(("ready", sandbox.runtime))
    async with trio.open_nursery() as nursery:
        while True:
            await trio.lowlevel.wait_readable(conn.fileno())
            try:
                request_id, spec, policy = conn.recv()
            except (EOFError, OSError):
                nursery.cancel_scope.cancel()  # running containers are removed on the way out
                return
            nursery.start_soon(_run, sandbox, conn, request_id, spec, policy)


async def _run(
    sandbox: Any,
    conn: multiprocessing.connection.Connection,
    request_id: int,
    spec: JobSpec,
    policy: SandboxPolicy,
) -> None:
    answer: tuple[Any, ...]
    try:
        answer = ("ok", await sandbox.run(spec, policy))
    except ExecutorError as exc:
        answer = ("error", type(exc).__name__, str(exc), getattr(exc, "image_digest", None))
    with contextlib.suppress(OSError):  # the worker is gone
        conn.send((request_id, answer))


class RemoteSandbox:
    """The sandbox protocol over a pipe to `serve`. Build it with `connect`, and run
    `read_answers` in the worker's nursery for as long as jobs may run."""

    def __init__(self, conn: multiprocessing.connection.Connection, runtime: Runtime) -> None:
        self._conn = conn
        self._runtime = runtime
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.Event] = {}
        self._answers: dict[int, tuple[Any, ...]] = {}

    @classmethod
    async def connect(cls, conn: multiprocessing.connection.Connection) -> RemoteSandbox:
        """Wait for the jobs process to reach the engine. Raises EngineUnavailable (with the
        engine's message) when it could not: start Docker, or run with `--sandbox fake`."""
        await trio.lowlevel.wait_readable(conn.fileno())
        try:
            kind, detail = conn.recv()
        except (EOFError, OSError):
            raise EngineUnavailable("the jobs process ended before it reached the engine") from None
        if kind != "ready":
            raise EngineUnavailable(detail)
        return cls(conn, detail)

    @property
    def runtime(self) -> Runtime:
        """The runtime the jobs process runs containers with."""
        return self._runtime

    async def run(self, spec: JobSpec, policy: SandboxPolicy) -> RunResult:
        """Run `spec` under `policy` in the jobs process. Raises what `DockerSandbox.run` raises
        (ImageMissing, ImageMismatch, ImageRejected, PolicyRefused, RuntimeUnavailable,
        SandboxError); SandboxError also when the jobs process is gone."""
        request_id = next(self._ids)
        done = self._waiting[request_id] = trio.Event()
        try:
            self._conn.send((request_id, spec, policy))
        except OSError as exc:
            del self._waiting[request_id]
            raise SandboxError(f"the jobs process is gone: {exc}") from None
        try:
            await done.wait()
        finally:
            self._waiting.pop(request_id, None)
        answer = self._answers.pop(request_id)
        if answer[0] == "ok":
            result: RunResult = answer[1]
            return result
        _, name, message, image_digest = answer
        cls = _ERRORS.get(name, SandboxError)
        if issubclass(cls, ImageError):
            raise cls(message, image_digest=image_digest)
        raise cls(message)

    async def read_answers(self) -> None:
        """Hand each answer of the jobs process to the run waiting for it. If the process ends,
        every waiting run fails with SandboxError (and so does every later one)."""
        while True:
            await trio.lowlevel.wait_readable(self._conn.fileno())
            try:
                request_id, answer = self._conn.recv()
            except (EOFError, OSError):
                break
            if request_id in self._waiting:
                self._answers[request_id] = answer
                self._waiting[request_id].set()
        gone = ("error", "SandboxError", "the jobs process ended", None)
        for request_id, done in list(self._waiting.items()):
            self._answers[request_id] = gone
            done.set()
