"""The Docker sandbox: runs one job under a `SandboxPolicy` and says what happened.

The docker SDK is blocking, so every engine call runs in a worker thread (`trio.to_thread`); the
trio task only keeps time. Per run:

1. **create**: check the image (present by digest, `image_ref` resolving to the same digest, no
   VOLUMEs), create the container from the policy record alone, attach to its stdio *before*
   starting it so no output is lost and none is logged (log driver "none");
2. **start**: the start call; the wall-time deadline starts when it returns, so a slow engine never
   eats into the job's time;
3. **run**: a reader thread streams stdout/stderr, counting bytes against `output_bytes_max` and
   stopping at the cap (the job is then killed: nothing buffers 1 GiB); a sampler reads the
   container's cgroup (memory high-water mark, CPU time, pids) while it runs; at the deadline the
   container is killed;
4. **collect**: the engine's view of the end (exit code, OOMKilled) and removal of the container.

Whatever happens (an engine error, the caller's cancellation) the container is killed and removed
in a shielded cleanup. Containers carry the `LABEL` label and a unique name, so a node that crashed
can sweep its own leftovers with `remove_stale_containers` when it starts.

`RunResult` is what the sandbox observed; `executor.run.execute` turns it into a signed report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import docker
import docker.errors
import docker.types
import requests.exceptions
import trio

from executor.engine import docker_client, engine_runtimes
from executor.errors import (
    EngineUnavailable,
    ImageMismatch,
    ImageMissing,
    ImageRejected,
    PolicyRefused,
    RuntimeUnavailable,
    SandboxError,
)
from executor.policy import Runtime, SandboxPolicy
from executor.report import Outcome, Phases, Usage
from executor.spec import InputMode, JobSpec, NetworkPolicy
from ledger.domains import Domain, hasher

# Every container this package creates carries LABEL=<owner>, so leftovers can be found.
LABEL = "org.posi-peer.executor"
NAME_PREFIX = "posi-job-"
# Cgroup sampling period while a job runs: memory.max_usage is a high-water mark, so sampling
# only needs to happen before the cgroup disappears; 5 ms costs ~1 % of a core in file reads.
SAMPLE_INTERVAL_S = 0.005
# Bounded waits in the cleanup path: after SIGKILL an engine reports the exit within a second;
# if it does not within these, we stop waiting (the container is still force-removed).
READER_JOIN_TIMEOUT_S = 5.0
EXIT_WAIT_AFTER_KILL_S = 10.0
CLEANUP_TIMEOUT_S = 30.0
# One recv from the attach socket: large enough for throughput, small enough to bound the
# overshoot past the output cap (the overshoot is dropped, never stored).
_RECV_BYTES = 256 * 1024
_FRAME_HEADER = 8
_DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
_U32_MAX = (1 << 32) - 1
_SIGKILL_EXIT = 128 + 9
# How close to the memory limit the sampled high-water mark must be to call an unexplained SIGKILL
# an OOM kill: the kernel kills when a charge would cross the limit, so the mark sits within a few
# pages of it; 1 MiB absorbs the charge granularity of gVisor's Sentry.
OOM_MARGIN_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult:
    """What the sandbox observed about one run (the container ran)."""

    outcome: Outcome  # EXITED, TIMEOUT, OOM or OUTPUT_LIMIT
    exit_code: int | None
    stdout: bytes  # captured, at most output_bytes_max together with stderr
    stderr: bytes
    image_digest: str  # the image ID the engine reports for the container
    runtime: Runtime
    phases: Phases
    usage: Usage
    detail: str

    def output_hash(self) -> bytes:
        """BLAKE3 under Domain.OUTPUT of stdout."""
        return output_hash(self.stdout)

    def stderr_hash(self) -> bytes:
        """BLAKE3 under Domain.OUTPUT of stderr."""
        return output_hash(self.stderr)


def output_hash(data: bytes) -> bytes:
    """The report's hash of captured output."""
    h = hasher(Domain.OUTPUT)
    h.update(data)
    return h.digest()


class Sandbox(Protocol):
    """Runs jobs. The product implementation is `DockerSandbox`; `executor.fake.FakeSandbox`
    scripts outcomes for tests and the simulator."""

    @property
    def runtime(self) -> Runtime:
        """The runtime runs are made with."""
        ...

    async def run(self, spec: JobSpec, policy: SandboxPolicy) -> RunResult:
        """Run `spec` under `policy`.

        Raises ImageMissing / ImageMismatch / ImageRejected (the image is unusable: report it),
        PolicyRefused, RuntimeUnavailable, or SandboxError (the engine failed: report
        SANDBOX_ERROR). Cancellation propagates after the container has been removed."""
        ...


@dataclasses.dataclass(slots=True)
class _Capture:
    """Output gathered by the reader thread. The thread wakes the trio task through `token` when
    the cap is hit and when the stream ends; `done` is for waiting on the thread from a thread."""

    cap: int
    token: trio.lowlevel.TrioToken
    wake: trio.Event
    stdout: bytearray = dataclasses.field(default_factory=bytearray)
    stderr: bytearray = dataclasses.field(default_factory=bytearray)
    capped: bool = False
    ended: bool = False
    dropped_bytes: int = 0  # read past the cap and discarded
    error: str = ""
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def total(self) -> int:
        return len(self.stdout) + len(self.stderr)

    def notify(self) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(self.wake.set)


@dataclasses.dataclass(slots=True)
class _Samples:
    peak_memory_bytes: int | None = None
    cpu_time_us: int | None = None
    pids_peak: int | None = None


class _Cgroup:
    """Reads one container's cgroup files (v1 or v2) on this host; silent when they are gone."""

    def __init__(self, pid: int, container_id: str) -> None:
        self.files: dict[str, pathlib.Path] = {}
        try:
            lines = pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return
        root = pathlib.Path("/sys/fs/cgroup")
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if container_id not in path:
                # An exiting task is moved to the root cgroup: never read the host's figures.
                continue
            rel = path.lstrip("/")
            names = set(controllers.split(","))
            if controllers == "":  # cgroup v2 unified hierarchy
                base = root / rel
                if (base / "memory.peak").exists():
                    self.files.setdefault("mem_peak", base / "memory.peak")
                self.files.setdefault("mem_now", base / "memory.current")
                self.files.setdefault("cpu_v2", base / "cpu.stat")
                self.files.setdefault("pids", base / "pids.current")
            if "memory" in names:
                self.files["mem_peak"] = root / "memory" / rel / "memory.max_usage_in_bytes"
                self.files.pop("mem_now", None)
            if "cpuacct" in names:
                self.files["cpu_v1"] = root / controllers / rel / "cpuacct.usage"
                self.files.pop("cpu_v2", None)
            if "pids" in names:
                self.files["pids"] = root / "pids" / rel / "pids.current"
        self.files = {k: v for k, v in self.files.items() if v.exists()}

    def sample(self, into: _Samples) -> None:
        """Fold one reading into `into` (sysfs reads are in-memory and never block)."""
        for kind, path in self.files.items():
            try:
                text = path.read_text()
            except OSError:
                continue  # the container exited and its cgroup is gone
            try:
                if kind in ("mem_peak", "mem_now"):
                    into.peak_memory_bytes = max(into.peak_memory_bytes or 0, int(text))
                elif kind == "cpu_v1":
                    into.cpu_time_us = max(into.cpu_time_us or 0, int(text) // 1000)
                elif kind == "cpu_v2":
                    usage = next(ln for ln in text.splitlines() if ln.startswith("usage_usec"))
                    into.cpu_time_us = max(into.cpu_time_us or 0, int(usage.split()[1]))
                elif kind == "pids":
                    into.pids_peak = max(into.pids_peak or 0, int(text))
            except (ValueError, StopIteration):
                continue


def _raw_socket(attached: Any) -> socket.socket:
    raw = getattr(attached, "_sock", attached)
    if not isinstance(raw, socket.socket):
        raise SandboxError(f"unexpected attach socket type {type(raw).__name__}")
    return raw


def _pump(sock: socket.socket, stdin: bytes, capture: _Capture) -> None:
    """Reader thread: send stdin, half-close, then demultiplex frames until EOF.

    Past the cap it keeps reading and discarding until the kill ends the stream: an engine cannot
    finish stopping a container whose output nobody reads (gVisor's kill then hangs)."""
    try:
        if stdin:
            sock.sendall(stdin)
        sock.shutdown(socket.SHUT_WR)  # the job sees EOF on stdin (stdin_once)
        pending = b""
        want: int | None = None  # payload bytes left in the current frame
        stream = 1
        while True:
            chunk = sock.recv(_RECV_BYTES)
            if not chunk:
                return
            if capture.capped:
                capture.dropped_bytes += len(chunk)
                continue
            pending += chunk
            while pending:
                if want is None:
                    if len(pending) < _FRAME_HEADER:
                        break
                    stream = pending[0]
                    want = int.from_bytes(pending[4:8], "big")
                    pending = pending[_FRAME_HEADER:]
                take = min(want, len(pending))
                part, pending = pending[:take], pending[take:]
                want -= take
                if want == 0:
                    want = None
                room = capture.cap - capture.total
                target = capture.stderr if stream == 2 else capture.stdout
                target += part[:room]
                if len(part) > room:
                    capture.capped = True
                    capture.dropped_bytes += len(part) - room + len(pending)
                    pending = b""
                    capture.notify()
                    break
    except OSError as exc:
        capture.error = str(exc)
    finally:
        capture.ended = True
        capture.done.set()
        capture.notify()


def _now() -> float:
    return time.monotonic()


def _us(seconds: float) -> int:
    return min(_U32_MAX, max(0, math.ceil(seconds * 1_000_000)))


class DockerSandbox:
    """The product sandbox. Build it with `await DockerSandbox.connect(...)`."""

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        runtime: Runtime = Runtime.RUNC,
        engine_runtime_names: frozenset[str] = frozenset({"runc"}),
        owner: str = "default",
        allow_network: bool = False,
        on_phase: Callable[[str, str], None] | None = None,
    ) -> None:
        """Prefer `connect`. `owner` labels this node's containers (use the node's identity);
        `on_phase(phase, container_name)` is called as "created" and "started" happen (tests use it
        to cancel at a precise point)."""
        if runtime is Runtime.FAKE:
            raise ValueError("DockerSandbox runs real runtimes only; use executor.fake.FakeSandbox")
        self._client = client
        self._runtime = runtime
        self._engine_runtimes = engine_runtime_names
        self._owner = owner
        self._allow_network = allow_network
        self._on_phase = on_phase

    @classmethod
    async def connect(
        cls,
        *,
        runtime: Runtime = Runtime.RUNC,
        owner: str = "default",
        allow_network: bool = False,
        on_phase: Callable[[str, str], None] | None = None,
    ) -> DockerSandbox:
        """Connect to the engine, check the runtime is registered, sweep this owner's leftovers.

        Raises EngineUnavailable (start the daemon) or RuntimeUnavailable (register the runtime
        or pick runc)."""
        client = await trio.to_thread.run_sync(docker_client)
        names = await trio.to_thread.run_sync(engine_runtimes, client)
        if runtime.engine_name not in names:
            raise RuntimeUnavailable(
                f"runtime {runtime.engine_name!r} is not registered with the engine "
                f"(it has {sorted(names)})"
            )
        await trio.to_thread.run_sync(remove_stale_containers, client, owner)
        return cls(
            client,
            runtime=runtime,
            engine_runtime_names=names,
            owner=owner,
            allow_network=allow_network,
            on_phase=on_phase,
        )

    @property
    def runtime(self) -> Runtime:
        """The runtime this sandbox runs jobs with."""
        return self._runtime

    @property
    def client(self) -> docker.DockerClient:
        """The engine client (for tools that share the connection)."""
        return self._client

    def close(self) -> None:
        """Close the engine connection."""
        self._client.close()

    # -- blocking helpers (worker threads) -------------------------------------------------

    def _resolve_image(self, spec: JobSpec) -> str:
        try:
            try:
                image = self._client.images.get(spec.image_digest)
            except docker.errors.ImageNotFound:
                image = None
            if spec.image_ref:
                try:
                    by_ref = self._client.images.get(spec.image_ref)
                except docker.errors.ImageNotFound:
                    by_ref = None
                if by_ref is not None and by_ref.id != spec.image_digest:
                    raise ImageMismatch(
                        f"{spec.image_ref} is {by_ref.id} on this node, the task pins "
                        f"{spec.image_digest}",
                        image_digest=by_ref.id,
                    )
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"image lookup failed: {exc}") from None
        if image is None or image.id != spec.image_digest:
            raise ImageMissing(
                f"image {spec.image_digest} is not present on this node (nodes never pull: "
                "load it first, e.g. `posi-peer images build` for the base images)"
            )
        if (image.attrs.get("Config") or {}).get("Volumes"):
            raise ImageRejected(
                f"image {image.id} declares VOLUMEs (writable storage outside the read-only "
                "root filesystem); rebuild it without VOLUME",
                image_digest=image.id,
            )
        return str(image.id)

    def _create(self, spec: JobSpec, policy: SandboxPolicy, image_id: str, name: str) -> str:
        api = self._client.api
        host_config = api.create_host_config(
            runtime=policy.runtime.engine_name,
            network_mode="none" if policy.network is NetworkPolicy.NONE else "bridge",
            read_only=policy.read_only_rootfs,
            tmpfs={policy.tmpfs_path: policy.tmpfs_options},
            cap_drop=["ALL"] if policy.cap_drop_all else None,
            security_opt=["no-new-privileges"] if policy.no_new_privileges else None,
            mem_limit=policy.memory_bytes,
            memswap_limit=policy.memory_swap_bytes,
            pids_limit=policy.pids_limit,
            nano_cpus=policy.nano_cpus,
            ipc_mode=policy.ipc_mode,
            privileged=False,
            log_config=docker.types.LogConfig(type=policy.log_driver),
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=policy.nofile_max, hard=policy.nofile_max)
            ],
            auto_remove=False,  # we remove it ourselves after reading its final state
        )
        if policy.input_mode is InputMode.FILE:
            # The loader copies stdin to the tmpfs, then execs the job with stdin from /dev/null.
            entrypoint = [
                "/bin/sh",
                "-c",
                f'cat > {policy.input_path} && exec "$@" < /dev/null',
                "posi-input",
            ]
            command = list(spec.argv)
        else:
            entrypoint = [spec.argv[0]]
            command = list(spec.argv[1:])
        # create_container_config, not create_container: the latter injects proxy variables from
        # the client's config file into the job's env. detach=False + stdin_open gives StdinOnce,
        # so closing our end of the attach stream closes the job's stdin.
        config = api.create_container_config(
            image=image_id,
            entrypoint=entrypoint,
            command=command,
            environment=dict(spec.env),
            user=policy.user,
            working_dir=policy.working_dir,
            hostname=policy.hostname,
            detach=False,
            stdin_open=True,
            tty=False,
            network_disabled=policy.network is NetworkPolicy.NONE,
            labels={LABEL: self._owner},
            host_config=host_config,
        )
        created = api.create_container_from_config(config, name=name)
        container_id = str(created["Id"])
        # Defence in depth: the engine must not have added mounts (e.g. from image VOLUMEs).
        mounts = api.inspect_container(container_id).get("Mounts") or []
        if mounts:
            raise SandboxError(f"container {name} has unexpected mounts {mounts!r}")
        return container_id

    def _attach(self, container_id: str) -> tuple[Any, socket.socket]:
        attached = self._client.api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        return attached, _raw_socket(attached)

    def _kill(self, container_id: str) -> None:
        with contextlib.suppress(*_DOCKER_ERRORS):  # already exited, or already gone
            self._client.api.kill(container_id)

    def _wait(self, container_id: str, timeout_s: float) -> int | None:
        try:
            result = self._client.api.wait(container_id, timeout=max(1, math.ceil(timeout_s)))
        except _DOCKER_ERRORS:
            return None
        code = result.get("StatusCode")
        return int(code) if isinstance(code, int) else None

    def _remove(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._client.api.remove_container(name, force=True, v=True)

    # -- the run ------------------------------------------------------------------------------

    async def run(self, spec: JobSpec, policy: SandboxPolicy) -> RunResult:
        """Run one job (see `Sandbox.run` for the errors)."""
        if policy.runtime is not self._runtime:
            raise ValueError(f"policy is for {policy.runtime.name}, sandbox runs {self._runtime}")
        if policy.runtime.engine_name not in self._engine_runtimes:
            raise RuntimeUnavailable(f"runtime {policy.runtime.engine_name!r} is not registered")
        if policy.network is not NetworkPolicy.NONE and not self._allow_network:
            raise PolicyRefused(f"network {policy.network.name} refused: this node allows none")
        name = NAME_PREFIX + secrets.token_hex(8)
        created = False
        sock: socket.socket | None = None
        attached: Any = None
        capture = _Capture(
            cap=policy.output_bytes_max,
            token=trio.lowlevel.current_trio_token(),
            wake=trio.Event(),
        )
        try:
            t0 = _now()
            image_id = await trio.to_thread.run_sync(self._resolve_image, spec)
            created = True  # from here on the container may exist on the engine: clean it up
            container_id = await trio.to_thread.run_sync(self._create, spec, policy, image_id, name)
            attached, sock = await trio.to_thread.run_sync(self._attach, container_id)
            self._phase("created", name)
            t1 = _now()
            await trio.to_thread.run_sync(self._client.api.start, container_id)
            t2 = _now()
            self._phase("started", name)
            stdin = spec.input
            result = await self._supervise(
                container_id, sock, stdin, capture, policy=policy, started_at=t2
            )
            exit_code, killed_for, samples, t3 = result
            state = await trio.to_thread.run_sync(self._inspect_state, container_id)
            await trio.to_thread.run_sync(self._remove, name)
            created = False
            t4 = _now()
        except _DOCKER_ERRORS as exc:
            raise SandboxError(f"engine call failed for {name}: {exc}") from None
        finally:
            with trio.CancelScope(shield=True):
                await self._cleanup(name if created else None, attached, sock, capture)
        if exit_code is None and isinstance(state.get("ExitCode"), int):
            exit_code = int(state["ExitCode"])
        oom = bool(state.get("OOMKilled"))
        if not oom and killed_for is None and exit_code == _SIGKILL_EXIT:
            # The engine does not always see gVisor's OOM kills: a SIGKILL we did not send while
            # the memory high-water mark sat at the limit is the kernel's OOM killer.
            peak = samples.peak_memory_bytes
            oom = peak is not None and peak >= policy.memory_bytes - OOM_MARGIN_BYTES
        if killed_for is Outcome.OUTPUT_LIMIT or killed_for is Outcome.TIMEOUT:
            outcome = killed_for
        elif oom:
            outcome = Outcome.OOM
        else:
            outcome = Outcome.EXITED
        detail = outcome.name
        if capture.error:
            detail += f"; output stream error: {capture.error}"
        if oom and outcome is not Outcome.OOM:
            detail += "; a process was OOM-killed"
        return RunResult(
            outcome=outcome,
            exit_code=exit_code,
            stdout=bytes(capture.stdout),
            stderr=bytes(capture.stderr),
            image_digest=str(state.get("_Image") or image_id),
            runtime=self._runtime,
            phases=Phases(
                create_us=_us(t1 - t0),
                start_us=_us(t2 - t1),
                run_us=_us(t3 - t2),
                collect_us=_us(t4 - t3),
            ),
            usage=Usage(
                peak_memory_bytes=samples.peak_memory_bytes,
                cpu_time_us=samples.cpu_time_us,
                pids_peak=samples.pids_peak,
                stdout_bytes=len(capture.stdout),
                stderr_bytes=len(capture.stderr),
            ),
            detail=detail,
        )

    def _phase(self, phase: str, name: str) -> None:
        if self._on_phase is not None:
            self._on_phase(phase, name)

    def _inspect_state(self, container_id: str) -> dict[str, Any]:
        info = self._client.api.inspect_container(container_id)
        state = dict(info.get("State") or {})
        state["_Image"] = info.get("Image")
        return state

    def _cgroup(self, container_id: str) -> _Cgroup | None:
        try:
            pid = int(self._client.api.inspect_container(container_id)["State"]["Pid"])
        except (*_DOCKER_ERRORS, KeyError, TypeError, ValueError):
            return None
        return _Cgroup(pid, container_id) if pid > 0 else None

    async def _supervise(
        self,
        container_id: str,
        sock: socket.socket,
        stdin: bytes,
        capture: _Capture,
        *,
        policy: SandboxPolicy,
        started_at: float,
    ) -> tuple[int | None, Outcome | None, _Samples, float]:
        """The run phase: stream output, sample the cgroup, enforce the deadline and the cap.
        Returns (exit code, why we killed it or None, samples, time the exit was observed)."""
        samples = _Samples()
        deadline = trio.current_time() + policy.wall_time_ms / 1000
        killed_for: Outcome | None = None
        exit_code: int | None = None
        cgroup = await trio.to_thread.run_sync(self._cgroup, container_id)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_stream, sock, stdin, capture)
            if cgroup is not None:
                nursery.start_soon(self._sample_loop, cgroup, samples)
            with trio.move_on_at(deadline):
                await capture.wake.wait()  # the cap was hit or the stream ended
                if not capture.capped:
                    remaining = deadline - trio.current_time()
                    exit_code = await trio.to_thread.run_sync(
                        self._wait, container_id, remaining + 1, abandon_on_cancel=True
                    )
            if capture.capped:
                killed_for = Outcome.OUTPUT_LIMIT
            elif exit_code is None:
                killed_for = Outcome.TIMEOUT
            if cgroup is not None:
                cgroup.sample(samples)
            if killed_for is not None:
                await trio.to_thread.run_sync(self._kill, container_id)
                exit_code = await trio.to_thread.run_sync(
                    self._wait, container_id, EXIT_WAIT_AFTER_KILL_S
                )
            exited_at = _now()
            # The stream ends right after the exit; bounded so a stuck engine cannot hold us.
            with trio.move_on_after(READER_JOIN_TIMEOUT_S):
                while not capture.ended:
                    capture.wake = trio.Event()
                    if not capture.ended:
                        await capture.wake.wait()
            nursery.cancel_scope.cancel()
        if killed_for is Outcome.TIMEOUT and exited_at - started_at < policy.wall_time_ms / 1000:
            # _wait failed before the deadline: the engine, not the job, is at fault.
            raise SandboxError("lost track of the container before its deadline")
        return exit_code, killed_for, samples, exited_at

    async def _read_stream(self, sock: socket.socket, stdin: bytes, capture: _Capture) -> None:
        # abandon_on_cancel: if the run is cancelled, the cleanup shuts the socket down, which
        # ends the thread; nobody waits for it meanwhile.
        await trio.to_thread.run_sync(_pump, sock, stdin, capture, abandon_on_cancel=True)

    async def _sample_loop(self, cgroup: _Cgroup, samples: _Samples) -> None:
        while True:
            cgroup.sample(samples)
            await trio.sleep(SAMPLE_INTERVAL_S)

    async def _cleanup(
        self, name: str | None, attached: Any, sock: socket.socket | None, capture: _Capture
    ) -> None:
        """Shielded: kill + remove the container, close the stream, let the reader thread end."""
        with trio.move_on_after(CLEANUP_TIMEOUT_S):
            if name is not None:
                with contextlib.suppress(*_DOCKER_ERRORS):
                    await trio.to_thread.run_sync(self._remove, name)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv
                await trio.to_thread.run_sync(capture.done.wait, READER_JOIN_TIMEOUT_S)
                # The SocketIO wrapper holds a reference on the socket: close both, or the fd
                # outlives us until garbage collection.
                with contextlib.suppress(OSError):
                    attached.close()
                sock.close()


def remove_stale_containers(client: docker.DockerClient, owner: str | None = None) -> list[str]:
    """Force-remove containers left by this package (of `owner`, or of every owner if None), e.g.
    after a crash. Returns their names. Raises EngineUnavailable if the engine stops answering."""
    label = LABEL if owner is None else f"{LABEL}={owner}"
    try:
        stale = client.api.containers(all=True, filters={"label": label})
        names = []
        for c in stale:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(c["Id"], force=True, v=True)
            names.extend(n.lstrip("/") for n in c.get("Names") or ())
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(f"listing containers failed: {exc}") from None
    return names


def list_containers(client: docker.DockerClient) -> list[str]:
    """Names of every container of this package on the engine (running or not)."""
    return [
        n.lstrip("/")
        for c in client.api.containers(all=True, filters={"label": LABEL})
        for n in c.get("Names") or ()
    ]
