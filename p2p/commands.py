"""The node's subcommands of `posi-peer` (the parsers live in `p2p.cli`).

Every command returns an exit code from `p2p.cli` (EXIT_*) and prints errors as one line on
stderr that names the thing, the value and the fix.
"""

# This is command-line code, like p2p/cli.py (pyproject exempts **/cli.py): it prints for the
# user, and imports heavy packages inside each command so `posi-peer --help` stays fast.
# ruff: noqa: T201, PLC0415

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import trio

from ledger.errors import LedgerError, StoreError
from p2p import events as ev
from p2p.cli import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from p2p.errors import ConfigError
from p2p.nodeconfig import (
    CONFIG_FILE,
    GENESIS_FILE,
    IDENTITY_FILE,
    STATUS_FILE,
    VRF_FILE,
    LogFormat,
    NodeConfig,
    NodeConfigError,
    Role,
    data_dir_from,
    load_genesis,
    load_identity,
    load_node_config,
    load_vrf_key,
    read_key_seed,
    render_config_file,
    write_key_file,
)

# A devnet larger than this is a simulator's job (simnet), not one machine's processes.
DEVNET_NODES_MAX: Final = 64
# Devnet money: operators stake this (and hold as much again); posters hold the balance.
DEVNET_STAKE: Final = 1_000_000
DEVNET_BALANCE: Final = 1_000_000_000_000
# A status file older than this many status intervals (plus slack) belongs to a stopped node.
STATUS_STALE_INTERVALS: Final = 5
STATUS_STALE_SLACK_S: Final = 5.0
# The metrics port of devnet node i is base + METRICS_PORT_OFFSET + i.
METRICS_PORT_OFFSET: Final = 100


class _Fail(Exception):
    """A command failed with a message for the user and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn known errors into a message and a `_Fail` with the right exit code."""
    from executor.errors import ExecutorError, SandboxError, SpecError
    from p2p.node import NodeStartError
    from p2p.roles.base import CoreConfigError

    try:
        yield
    except _Fail:
        raise
    except (NodeConfigError, ConfigError, SpecError, NodeStartError, CoreConfigError) as exc:
        raise _Fail(EXIT_USAGE, str(exc)) from None
    except StoreError as exc:
        raise _Fail(EXIT_UNAVAILABLE, f"block store: {exc}") from None
    except SandboxError as exc:
        raise _Fail(EXIT_UNAVAILABLE, str(exc)) from None
    except ExecutorError as exc:
        raise _Fail(EXIT_FAILED, str(exc)) from None
    except OSError as exc:
        raise _Fail(
            EXIT_UNAVAILABLE, f"{exc.strerror or exc} ({exc.filename or 'network'})"
        ) from None


def _first_error(exc: BaseException) -> BaseException:
    """The first non-cancellation leaf of an exception group (trio wraps task errors)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            leaf = _first_error(inner)
            if not isinstance(leaf, trio.Cancelled):
                return leaf
        return _first_error(exc.exceptions[0])
    return exc


def _run_trio(main: Any, *args: Any) -> int:
    """trio.run(main, *args) with errors turned into exit codes."""
    try:
        with _errors():
            try:
                code: int = trio.run(main, *args)
            except BaseExceptionGroup as group:
                raise _first_error(group) from None
    except _Fail as fail:
        _err(str(fail))
        return fail.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except LedgerError as exc:
        _err(str(exc))
        return EXIT_UNAVAILABLE
    return code


def _config(args: argparse.Namespace, **extra: Any) -> NodeConfig:
    data_dir = data_dir_from(getattr(args, "data_dir", None))
    flags: dict[str, Any] = {
        "genesis": getattr(args, "genesis", None),
        "listen": getattr(args, "listen", None),
        "bootstrap": getattr(args, "bootstrap", None),
        "log_format": getattr(args, "log_format", None),
        "log_level": getattr(args, "log_level", None),
        "metrics": getattr(args, "metrics", None),
        "block_interval_ms": getattr(args, "block_interval_ms", None),
        "runtime": getattr(args, "runtime", None),
        "execute_timeout_ms": getattr(args, "execute_timeout_ms", None),
        "open_tasks_max": getattr(args, "open_tasks_max", None),
    }
    roles = getattr(args, "roles", None)
    if roles is not None:
        flags["roles"] = roles
    flags.update(extra)
    config = load_node_config(data_dir, flags=flags)
    added = {Role.VALIDATOR} if getattr(args, "validator", False) else set()
    if getattr(args, "operator", False):
        added.add(Role.OPERATOR)
    if added:
        config = dataclasses.replace(config, roles=config.roles | added)
    return config


# --- init ---------------------------------------------------------------------------------------


def init(args: argparse.Namespace) -> int:
    """`posi-peer init`: keys and config.toml in a data directory."""
    import vrf
    from ledger.signing import IdentityKey
    from p2p.identity import peer_id_of

    data_dir = data_dir_from(args.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for name, make in (
            (IDENTITY_FILE, lambda: IdentityKey.generate().seed),
            (VRF_FILE, lambda: bytes(vrf.SecretKey.generate())),
        ):
            path = data_dir / name
            if path.exists():
                read_key_seed(path)  # an existing key must at least be readable
                print(f"kept existing {path}", file=sys.stderr)
            else:
                write_key_file(path, make())
                print(f"created {path}", file=sys.stderr)
        settings: dict[str, Any] = {}
        for name in (
            "genesis",
            "log_format",
            "log_level",
            "metrics",
            "block_interval_ms",
            "runtime",
            "roles",
        ):
            value = getattr(args, name, None)
            if value is not None:
                settings[name] = value
        for name in ("listen", "bootstrap"):
            value = getattr(args, name, None)
            if value:
                settings[name] = list(value)
        roles = [r for r in (settings.pop("roles", "") or "").split(",") if r]
        if args.validator:
            roles.append(Role.VALIDATOR.value)
        if args.operator:
            roles.append(Role.OPERATOR.value)
        if roles:
            settings["roles"] = sorted(set(roles))
        config_path = data_dir / CONFIG_FILE
        if config_path.exists() and not args.force_config:
            print(f"kept existing {config_path} (--force-config rewrites it)", file=sys.stderr)
        else:
            config_path.write_text(render_config_file(settings))
            print(f"wrote {config_path}", file=sys.stderr)
        config = load_node_config(data_dir)  # checks what was written
        identity = load_identity(config.identity_path)
        vrf_key = load_vrf_key(config.vrf_path)
    except (NodeConfigError, OSError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    print(
        json.dumps(
            {
                "data_dir": str(data_dir),
                "peer_id": peer_id_of(identity.public),
                "identity": identity.public.hex(),
                "vrf_key": vrf_key.public_key.key.hex(),
                "genesis": str(config.genesis),
                "roles": sorted(r.value for r in config.roles),
            },
            indent=2,
        )
    )
    if not config.genesis.exists():
        print(
            f"next: put the network's genesis file at {config.genesis}, then "
            f"`posi-peer run --data-dir {data_dir}`",
            file=sys.stderr,
        )
    return EXIT_OK


# --- devnet init --------------------------------------------------------------------------------


def _free_ports(count: int, host: str) -> list[int]:
    """`count` distinct ports that were free a moment ago (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def devnet_init(args: argparse.Namespace) -> int:
    """`posi-peer devnet init DIR`: a genesis and one data directory per node."""
    import vrf
    from ledger.genesis import ChainParams, GenesisOperator, build_genesis, genesis_to_json
    from ledger.signing import IdentityKey
    from p2p.identity import peer_id_of

    root = Path(args.dir)
    counts = (args.validators, args.operators, args.posters)
    if args.validators < 1 or min(counts) < 0 or sum(counts) > DEVNET_NODES_MAX:
        _err(
            f"--validators must be >= 1, the others >= 0, and at most {DEVNET_NODES_MAX} nodes "
            "in all (use the simulator for more)"
        )
        return EXIT_USAGE
    if (root / "devnet.json").exists() or (root / GENESIS_FILE).exists():
        _err(f"{root} already holds a devnet: pick a new directory (keys are never overwritten)")
        return EXIT_USAGE
    names = (
        [f"validator-{i}" for i in range(args.validators)]
        + [f"operator-{j}" for j in range(args.operators)]
        + [f"poster-{k}" for k in range(args.posters)]
    )
    nodes = len(names) - args.posters  # posters listen on port 0 (short-lived)
    if args.base_port == 0:
        ports = _free_ports(2 * nodes, args.host)
        listen_ports, metrics_ports = ports[:nodes], ports[nodes:]
    elif 1024 <= args.base_port <= 65535 - METRICS_PORT_OFFSET - nodes:
        listen_ports = [args.base_port + i for i in range(nodes)]
        metrics_ports = [args.base_port + METRICS_PORT_OFFSET + i for i in range(nodes)]
    else:
        _err(f"--base-port {args.base_port}: use 0 (pick free ports) or a port in [1024, 65000]")
        return EXIT_USAGE
    identities = {name: IdentityKey.generate() for name in names}
    vrf_keys = {name: vrf.SecretKey.generate() for name in names if name.startswith("operator")}
    validators = [identities[n] for n in names if n.startswith("validator")]
    operators = [n for n in names if n.startswith("operator")]
    posters = [n for n in names if n.startswith("poster")]
    try:
        genesis = build_genesis(
            chain_name=args.chain_name,
            time_ms=int(time.time() * 1000),
            validators=[(k.public, 1) for k in validators],
            accounts={identities[n].public: DEVNET_BALANCE for n in operators + posters},
            operators=[
                GenesisOperator(
                    identities[n].public,
                    vrf_keys[n].public_key.key,
                    DEVNET_STAKE,
                    args.capacity,
                )
                for n in operators
            ],
            params=ChainParams(),
        )
    except LedgerError as exc:
        _err(f"cannot build the genesis: {exc}")
        return EXIT_USAGE
    bootstrap = [
        f"/ip4/{args.host}/tcp/{listen_ports[i]}/p2p/{peer_id_of(validators[i].public)}"
        for i in range(len(validators))
    ]
    manifest: dict[str, Any] = {"format": "posi-devnet/1", "genesis": GENESIS_FILE, "nodes": []}
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / GENESIS_FILE).write_text(genesis_to_json(genesis))
        for index, name in enumerate(names):
            node_dir = root / name
            node_dir.mkdir(exist_ok=False)
            write_key_file(node_dir / IDENTITY_FILE, identities[name].seed)
            if name in vrf_keys:
                write_key_file(node_dir / VRF_FILE, bytes(vrf_keys[name]))
            role = name.split("-")[0]
            settings: dict[str, Any] = {
                "genesis": f"../{GENESIS_FILE}",
                "log_format": args.log_format,
                "block_interval_ms": args.block_interval_ms,
                "execute_timeout_ms": args.execute_timeout_ms,
            }
            entry: dict[str, Any] = {
                "name": name,
                "role": role,
                "data_dir": name,
                "peer_id": peer_id_of(identities[name].public),
                "identity": identities[name].public.hex(),
            }
            if role == "poster":
                settings["listen"] = [f"/ip4/{args.host}/tcp/0"]
                settings["bootstrap"] = bootstrap
                settings["roles"] = [Role.POSTER.value]
            else:
                port = listen_ports[index]
                settings["listen"] = [f"/ip4/{args.host}/tcp/{port}"]
                own = f"/p2p/{entry['peer_id']}"
                settings["bootstrap"] = [b for b in bootstrap if not b.endswith(own)]
                settings["roles"] = [role]
                settings["metrics"] = f"{args.host}:{metrics_ports[index]}"
                entry["listen"] = settings["listen"][0]
                entry["metrics"] = settings["metrics"]
            (node_dir / CONFIG_FILE).write_text(
                render_config_file(settings, comment=f"devnet node {name}")
            )
            manifest["nodes"].append(entry)
        (root / "devnet.json").write_text(json.dumps(manifest, indent=2) + "\n")
    except (OSError, NodeConfigError) as exc:
        _err(f"cannot write the devnet: {exc}")
        return EXIT_UNAVAILABLE
    print(
        f"devnet '{args.chain_name}' in {root}: {len(validators)} validators, "
        f"{len(operators)} operators, {len(posters)} posters; genesis {genesis.hash().hex()}"
    )
    print("start each node in its own terminal (or append & to run them in the background):")
    for name in names:
        if not name.startswith("poster"):
            print(f"  posi-peer run --data-dir {root / name}")
    if posters:
        print("then submit a job (operators need the image: `posi-peer images build`):")
        print(
            f"  posi-peer submit --data-dir {root / posters[0]} --image posi/busybox:1 "
            "-- /bin/echo hello"
        )
    return EXIT_OK


# --- run ----------------------------------------------------------------------------------------


async def _run_until_signal(config: NodeConfig) -> int:
    from p2p.node import run_node

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def node() -> None:
                await run_node(config)
                nursery.cancel_scope.cancel()

            nursery.start_soon(node)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """`posi-peer run`: a node until SIGINT/SIGTERM."""
    from p2p.nodelog import configure_logging

    try:
        config = _config(args)
    except NodeConfigError as exc:
        _err(str(exc))
        return EXIT_USAGE
    configure_logging(config.log_format, config.log_level)
    return _run_trio(_run_until_signal, config)


# --- submit / result ----------------------------------------------------------------------------


class _Progress:
    """Prints a task's phases on stderr as they arrive and collects the outcome."""

    def __init__(self, quiet: bool = False) -> None:
        self.task_id: bytes | None = None
        self.first_ms: int | None = None
        self.result: Any = None
        self.failed: str | None = None
        self.done = trio.Event()
        self.quiet = quiet
        self.phases: dict[str, int] = {}

    def observe(self, action: ev.Action, extra: Any) -> None:
        if isinstance(action, ev.TaskSubmitted) and self.task_id is None:
            self.task_id = action.task_id
            if not self.quiet:
                print(f"task {action.task_id.hex()}", file=sys.stderr)
        elif isinstance(action, ev.TaskEvent) and action.task_id == self.task_id:
            if self.first_ms is None:
                self.first_ms = action.now_ms
            self.phases.setdefault(action.phase.value, action.now_ms)
            if not self.quiet:
                since = (action.now_ms - self.first_ms) / 1000
                detail = f"  {action.detail}" if action.detail else ""
                print(f"  +{since:6.1f} s  {action.phase.value:<19}{detail}", file=sys.stderr)
            if action.phase in (ev.TaskPhase.FAILED, ev.TaskPhase.EXPIRED):
                self.failed = f"{action.phase.value}: {action.detail}"
                self.done.set()
        elif isinstance(action, ev.ResultReady) and action.task_id == self.task_id:
            self.result = extra
            if extra is None:
                self.failed = "the result arrived but no certificate could be built from the store"
            self.done.set()


async def _light_node(
    config: NodeConfig, command: ev.Event, progress: _Progress, timeout_s: float
) -> bool:
    """Run a poster node, send `command`, wait for `progress.done`; False on timeout."""
    from p2p.node import NodeDeps, run_node

    send, recv = trio.open_memory_channel[ev.Event](4)
    deps = NodeDeps(commands=recv, observe=progress.observe)
    finished = False
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                async for _ in signals:
                    raise KeyboardInterrupt

            nursery.start_soon(interrupt)
            await nursery.start(functools.partial(run_node, config, deps=deps))
            await send.send(command)
            with trio.move_on_after(timeout_s):
                await progress.done.wait()
                finished = True
            nursery.cancel_scope.cancel()
    return finished


def _poster_config(args: argparse.Namespace) -> NodeConfig:
    config = _config(args)
    # A light node: it follows the chain and posts; it never validates or executes, whatever
    # config.toml says, and its log stays quiet on stdout (stdout carries the job's output).
    return dataclasses.replace(config, roles=frozenset({Role.POSTER}))


def _resolve_image(ref: str) -> str:
    if ref.startswith("sha256:") and len(ref) == 71:
        return ref
    from executor.engine import docker_client

    try:
        client = docker_client()
        image = client.images.get(ref)
    except Exception as exc:  # noqa: BLE001 - any engine answer means the same to the user
        raise _Fail(
            EXIT_USAGE,
            f"--image {ref}: not an image id (sha256:<64 hex>) and the local engine cannot "
            f"resolve it ({exc}); pass the id `posi-peer images build` printed",
        ) from None
    return str(image.id)


def _save_certificate(cert: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(cert.encode())
    os.replace(tmp, path)


def _print_result(cert: Any, path: Path | None, as_json: bool, phases: dict[str, int]) -> None:
    from executor.report import UnverifiedReport

    report = UnverifiedReport.decode(cert.report)
    body = report.body
    if as_json:
        print(
            json.dumps(
                {
                    "task": cert.task_id.hex(),
                    "attempt": cert.attempt,
                    "executor": body.executor_key.hex(),
                    "outcome": body.outcome.name,
                    "exit_code": body.exit_code,
                    "output": cert.output.decode("utf-8", errors="replace"),
                    "output_hex": cert.output.hex() if len(cert.output) <= 4096 else None,
                    "certificate": None if path is None else str(path),
                    "height": cert.proof.header.height,
                    "phases_ms": phases,
                },
                indent=2,
            )
        )
    else:
        sys.stdout.buffer.write(cert.output)
        sys.stdout.flush()
    print(
        f"executor {body.executor_key.hex()[:16]}  outcome {body.outcome.name} "
        f"exit {body.exit_code}" + (f"  certificate {path}" if path else ""),
        file=sys.stderr,
    )


def submit(args: argparse.Namespace) -> int:
    """`posi-peer submit`: post a job and follow it to its certified result."""
    from executor.spec import make_spec
    from p2p.nodelog import configure_logging

    try:
        with _errors():
            config = _poster_config(args)
            env = {}
            for item in args.env or ():
                key, sep, value = item.partition("=")
                if not sep:
                    raise _Fail(EXIT_USAGE, f"--env {item!r}: expected KEY=VALUE")
                env[key] = value
            data = b""
            if args.input:
                try:
                    data = Path(args.input).read_bytes()
                except OSError as exc:
                    raise _Fail(EXIT_USAGE, f"--input {args.input}: {exc.strerror}") from None
            spec = make_spec(
                _resolve_image(args.image),
                args.argv,
                env=env,
                input=data,
                wall_time_ms=args.wall_time_ms,
                cpu_millicores=args.cpu_millicores,
                memory_bytes=args.memory_mib * 1024 * 1024,
                pids_max=args.pids,
                output_bytes_max=args.output_bytes_max,
                deterministic=not args.nondeterministic,
            )
    except _Fail as fail:
        _err(str(fail))
        return fail.code
    configure_logging(config.log_format, config.log_level or "warning", stream=sys.stderr)
    if args.log_level is None:
        import logging

        logging.getLogger().setLevel(logging.WARNING)
    progress = _Progress(quiet=args.json)
    command = ev.SubmitTask(0, 1, spec.encode(), args.fee, args.tau)
    return _run_trio(_follow_main, config, command, progress, args, None)


async def _follow_main(
    config: NodeConfig,
    command: ev.Event,
    progress: _Progress,
    args: argparse.Namespace,
    task_id: bytes | None,
) -> int:
    progress.task_id = task_id if task_id is not None else progress.task_id
    if not await _light_node(config, command, progress, args.timeout_s):
        what = progress.task_id.hex() if progress.task_id else "the task"
        last = max(progress.phases, key=progress.phases.__getitem__) if progress.phases else None
        _err(
            f"{what}: no result within {args.timeout_s:g} s (last phase: {last or 'none'}); "
            "check `posi-peer status` on the network's nodes, or raise --timeout-s"
        )
        return EXIT_TIMEOUT
    if progress.failed is not None:
        _err(f"task {progress.task_id.hex() if progress.task_id else '?'} {progress.failed}")
        return EXIT_FAILED
    cert = progress.result
    out = getattr(args, "out", None)
    path = Path(out) if out else config.results_dir / f"{cert.task_id.hex()}.cert"
    await trio.to_thread.run_sync(_save_certificate, cert, path)
    _print_result(cert, path, args.json, progress.phases)
    return EXIT_OK


def _task_id_arg(text: str) -> bytes:
    try:
        task_id = bytes.fromhex(text)
    except ValueError:
        task_id = b""
    if len(task_id) != 32:
        raise _Fail(EXIT_USAGE, f"task {text!r}: expected 64 hex digits")
    return task_id


def result(args: argparse.Namespace) -> int:
    """`posi-peer result TASK`: from the saved certificate, or by following it."""
    from p2p.nodelog import configure_logging
    from p2p.result import ResultInvalid, decode_result, verify_result

    try:
        with _errors():
            task_id = _task_id_arg(args.task)
            config = _poster_config(args)
            saved = config.results_dir / f"{task_id.hex()}.cert"
            if saved.exists():
                genesis = load_genesis(config.genesis)
                try:
                    cert = decode_result(saved.read_bytes())
                    verify_result(cert, genesis)
                except ResultInvalid as exc:
                    raise _Fail(EXIT_FAILED, f"{saved}: {exc}") from None
                _print_result(cert, saved, args.json, {})
                return EXIT_OK
    except _Fail as fail:
        _err(str(fail))
        return fail.code
    configure_logging(config.log_format, "warning", stream=sys.stderr)
    progress = _Progress(quiet=args.json)
    return _run_trio(_follow_main, config, ev.FollowTask(0, task_id), progress, args, task_id)


def verify_result(args: argparse.Namespace) -> int:
    """`posi-peer verify-result FILE`: offline check against the genesis."""
    from p2p.result import ResultInvalid, decode_result
    from p2p.result import verify_result as check

    try:
        if args.genesis:
            genesis_path = Path(args.genesis)
        else:
            genesis_path = load_node_config(data_dir_from(args.data_dir)).genesis
        genesis = load_genesis(genesis_path)
    except NodeConfigError as exc:
        _err(f"{exc} (pass --genesis FILE)")
        return EXIT_USAGE
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        _err(f"cannot read {args.file}: {exc.strerror}")
        return EXIT_USAGE
    try:
        cert = decode_result(raw)
    except ResultInvalid as exc:
        _err(f"{args.file}: {exc}")
        return EXIT_USAGE
    try:
        verified = check(cert, genesis)
    except ResultInvalid as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    body = verified.report.body
    if args.output:
        Path(args.output).write_bytes(verified.output)
    print(
        json.dumps(
            {
                "verified": True,
                "chain": genesis.chain_name,
                "task": verified.task_id.hex(),
                "attempt": verified.attempt,
                "height": verified.height,
                "executor": body.executor_key.hex(),
                "roster": [m.identity.hex() for m in verified.task.roster],
                "outcome": body.outcome.name,
                "exit_code": body.exit_code,
                "output_bytes": len(verified.output),
                "output": verified.output.decode("utf-8", errors="replace")[:4096],
            },
            indent=2,
        )
    )
    return EXIT_OK


# --- status -------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(data_dir: Path) -> dict[str, Any] | None:
    """The status document of a running node in `data_dir`, or None if none runs there."""
    path = data_dir / STATUS_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    pid = doc.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return None
    return doc


def status(args: argparse.Namespace) -> int:
    """`posi-peer status`: the running node's status, else the stored chain."""
    data_dir = data_dir_from(args.data_dir)
    doc = read_status(data_dir)
    running = doc is not None
    if doc is None:
        try:
            config = load_node_config(data_dir)
            doc = _offline_status(config)
        except (NodeConfigError, LedgerError) as exc:
            _err(f"no node runs in {data_dir} and its store cannot be read: {exc}")
            return EXIT_UNAVAILABLE
    doc["running"] = running
    if args.json:
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"node      {doc.get('peer_id')}  ({'running' if running else 'stopped'})")
    tip = str(doc.get("tip_hash", ""))[:16]
    print(f"chain     {doc.get('chain')}  height {doc.get('height')}  tip {tip}")
    print(f"roles     {', '.join(doc.get('roles') or []) or 'follower'}")
    if running:
        peers = doc.get("peers") or []
        print(f"peers     {len(peers)}")
        for peer in peers:
            print(f"          {peer}")
        print(f"listen    {' '.join(doc.get('listen') or [])}")
        if doc.get("metrics"):
            print(f"metrics   http://{doc['metrics']}/metrics")
    tasks = doc.get("recent_tasks") or []
    print(f"tasks     {len(tasks)} recent")
    for task in tasks[:20]:
        print(f"          {task.get('task', '')[:16]}  {task.get('last', task.get('status', ''))}")
    return EXIT_OK


def _offline_status(config: NodeConfig) -> dict[str, Any]:
    from p2p.identity import peer_id_of

    genesis = load_genesis(config.genesis)
    identity = load_identity(config.identity_path)
    if not config.store_path.exists():
        height, tip = 0, b""
        tasks: list[dict[str, Any]] = []
    else:
        with _store_snapshot(config, genesis) as store:
            height, tip = store.height, store.state.tip_hash
            tasks = _stored_tasks(store)
    return {
        "format": "posi-status/1",
        "peer_id": peer_id_of(identity.public),
        "identity": identity.public.hex(),
        "chain": genesis.chain_name,
        "height": height,
        "tip_hash": tip.hex(),
        "roles": sorted(r.value for r in config.roles),
        "recent_tasks": tasks,
    }


@contextlib.contextmanager
def _store_snapshot(config: NodeConfig, genesis: Any) -> Iterator[Any]:
    """The node's store, read from a consistent copy (SQLite's online backup).

    A running node is the store's one writer; opening its file directly could rewrite the state
    table under it (`Store.open` rebuilds a state it finds behind the tip), so commands that only
    read take a snapshot first."""
    import sqlite3
    import tempfile

    from ledger.store import Store

    with tempfile.TemporaryDirectory(prefix="posi-snapshot-") as tmp:
        copy = Path(tmp) / "chain.sqlite"
        source = sqlite3.connect(f"file:{config.store_path}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        with Store.open(copy, genesis) as store:
            yield store


def _stored_tasks(store: Any, limit: int = 20) -> list[dict[str, Any]]:
    from ledger.state import KeyKind

    out = []
    for key, record in store.state.entries.items():
        if key[0] == KeyKind.TASK:
            out.append(
                {
                    "task": key[1:].hex(),
                    "status": record.status.name.lower(),
                    "posted_height": record.posted_height,
                }
            )
    out.sort(key=lambda t: -t["posted_height"])
    return out[:limit]


# --- why ----------------------------------------------------------------------------------------


def why(args: argparse.Namespace) -> int:
    """`posi-peer why TASK`: offline explanation of this node's draw."""
    from p2p.explain import explain_draw

    try:
        with _errors():
            task_id = _task_id_arg(args.task)
            data_dir = data_dir_from(args.data_dir)
            config = load_node_config(data_dir, flags={"genesis": args.genesis})
            genesis = load_genesis(config.genesis)
            identity = load_identity(config.identity_path)
            vrf_key = load_vrf_key(config.vrf_path) if config.vrf_path.exists() else None
            if not config.store_path.exists():
                raise _Fail(EXIT_USAGE, f"{config.store_path} does not exist: run the node first")
            with _store_snapshot(config, genesis) as store:
                explanation = explain_draw(store, task_id, identity.public, vrf_key)
    except _Fail as fail:
        _err(str(fail))
        return fail.code
    if args.json:
        print(json.dumps(explanation.as_json(), indent=2))
    else:
        print(explanation.text())
    return EXIT_OK if explanation.known else EXIT_FAILED


__all__ = [
    "EXIT_OK",
    "LogFormat",
    "devnet_init",
    "init",
    "read_status",
    "result",
    "run",
    "status",
    "submit",
    "verify_result",
    "why",
]
