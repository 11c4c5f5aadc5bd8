"""The node's configuration: a data directory, its key files, and settings from three layers.

A node lives in one data directory:

    DATA/config.toml     settings (written by `posi-peer init` / `devnet init`; edit by hand)
    DATA/identity.key    Ed25519 identity seed, hex (the libp2p peer id; signs everything)
    DATA/vrf.key         ECVRF seed, hex (operators: registered on the ledger with the operator)
    DATA/genesis.json    the chain's genesis (or `genesis = "/elsewhere.json"` in config.toml)
    DATA/chain.sqlite    the block store (created on first run)
    DATA/status.json     written by a running node every few seconds (`posi-peer status` reads it)
    DATA/results/        result certificates saved by `posi-peer submit`

Settings come from, lowest precedence first: built-in defaults, `config.toml`, environment
variables (`POSI_*`, see `ENV_VARS`), command-line flags. `load_node_config` merges them once and
returns a frozen, validated `NodeConfig`; every broken rule raises one named `NodeConfigError`
subclass whose message names the setting, the value, where it came from and the fix.

Key files are never overwritten: `write_key_file` refuses an existing path (`KeyFileExists`).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import vrf
from ledger.errors import GenesisError
from ledger.genesis import Genesis, genesis_from_json
from ledger.signing import IDENTITY_SEED_LEN, IdentityKey
from p2p.errors import P2PError
from p2p.roles.base import OPEN_TASKS_MAX, OPEN_TASKS_MAX_LIMIT

CONFIG_FILE: Final = "config.toml"
IDENTITY_FILE: Final = "identity.key"
VRF_FILE: Final = "vrf.key"
GENESIS_FILE: Final = "genesis.json"
STORE_FILE: Final = "chain.sqlite"
STATUS_FILE: Final = "status.json"
RESULTS_DIR: Final = "results"

# A key file is 64 hex digits and a newline; anything much larger is not a key file.
KEY_FILE_BYTES_MAX: Final = 256
# config.toml is a handful of lines; a megabyte is a mistake (or the wrong file).
CONFIG_FILE_BYTES_MAX: Final = 1024 * 1024
# Genesis JSON files: the ledger's own bound.
GENESIS_FILE_BYTES_MAX: Final = 16 * 1024 * 1024
# Listen and bootstrap lists: a node listens on a few interfaces and knows a few dozen
# bootstrap peers; more belongs to peer exchange.
ADDRS_MAX: Final = 64
# A block every 100 ms would burn the 2-core machines this runs on; one per 10 minutes stalls
# every task past its timeout. The default (2 s) keeps a 12-process devnet under one core.
BLOCK_INTERVAL_MS_MIN: Final = 100
BLOCK_INTERVAL_MS_MAX: Final = 600_000
DEFAULT_BLOCK_INTERVAL_MS: Final = 2000
# status.json refresh: often enough for a human watching, rarely enough to cost nothing.
STATUS_INTERVAL_S_MIN: Final = 0.1
STATUS_INTERVAL_S_MAX: Final = 3600.0
DEFAULT_STATUS_INTERVAL_S: Final = 1.0
DEFAULT_LISTEN: Final = ("/ip4/0.0.0.0/tcp/4001",)
# The executor's deadline to propose its report (committee Timing.execute_ms): it must cover the
# job's wall time plus container start and the report round trip. 60 s suits jobs of up to ~45 s;
# a devnet of short jobs lowers it so a dead executor is replaced sooner.
EXECUTE_TIMEOUT_MS_MIN: Final = 1000
EXECUTE_TIMEOUT_MS_MAX: Final = 600_000
DEFAULT_EXECUTE_TIMEOUT_MS: Final = 60_000


class NodeConfigError(P2PError, ValueError):
    """A node setting or file is unusable. The message names the setting (or file), the value,
    where it came from and what to do."""


class KeyFileExists(NodeConfigError):
    """A key file already exists: keys are never overwritten (move it away yourself if you really
    mean to replace this node's identity)."""


class KeyFileError(NodeConfigError):
    """A key file is missing, unreadable or malformed: run `posi-peer init` or restore it."""


class UnknownSetting(NodeConfigError):
    """config.toml names a setting this version does not know (typo?)."""


class BadSetting(NodeConfigError):
    """A setting has the wrong type or is out of range."""


class GenesisFileError(NodeConfigError):
    """The genesis file is missing, unreadable or invalid."""


class Role(enum.StrEnum):
    """What a node does besides following the chain (every node follows it and serves sync)."""

    VALIDATOR = "validator"  # builds, proposes and finalises blocks (must be in the genesis set)
    OPERATOR = "operator"  # drawn into task committees; executes and verifies jobs in Docker
    POSTER = "poster"  # posts tasks and follows them to their result (`posi-peer submit`)


class LogFormat(enum.StrEnum):
    """Log line format on stdout."""

    JSON = "json"  # one JSON object per line: for machines (tests, log shippers)
    HUMAN = "human"  # aligned text: for people


# Environment variables (documented in --help and the README). Lists are comma separated.
ENV_VARS: Final[Mapping[str, str]] = {
    "POSI_DATA_DIR": "data_dir",
    "POSI_GENESIS": "genesis",
    "POSI_LISTEN": "listen",
    "POSI_BOOTSTRAP": "bootstrap",
    "POSI_ROLES": "roles",
    "POSI_METRICS": "metrics",
    "POSI_LOG_FORMAT": "log_format",
    "POSI_LOG_LEVEL": "log_level",
    "POSI_BLOCK_INTERVAL_MS": "block_interval_ms",
    "POSI_RUNTIME": "runtime",
    "POSI_STATUS_INTERVAL_S": "status_interval_s",
    "POSI_EXECUTE_TIMEOUT_MS": "execute_timeout_ms",
    "POSI_OPEN_TASKS_MAX": "open_tasks_max",
}

_LIST_SETTINGS: Final = frozenset({"listen", "bootstrap", "roles"})
_INT_SETTINGS: Final = frozenset({"block_interval_ms", "execute_timeout_ms", "open_tasks_max"})
_FLOAT_SETTINGS: Final = frozenset({"status_interval_s"})
_STR_SETTINGS: Final = frozenset({"genesis", "metrics", "log_format", "log_level", "runtime"})
SETTINGS: Final = _LIST_SETTINGS | _INT_SETTINGS | _FLOAT_SETTINGS | _STR_SETTINGS
_LOG_LEVELS: Final = ("debug", "info", "warning", "error")
_RUNTIMES: Final = ("runc", "runsc")


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything `run_node` needs besides its keys and genesis (which live in files the config
    names). Frozen and valid: build it with `load_node_config` (or the constructor, which
    validates)."""

    data_dir: Path
    genesis: Path
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    roles: frozenset[Role] = frozenset()
    # "HOST:PORT" of the Prometheus endpoint, or None for none.
    metrics: tuple[str, int] | None = None
    log_format: LogFormat = LogFormat.HUMAN
    log_level: str = "info"
    block_interval_ms: int = DEFAULT_BLOCK_INTERVAL_MS
    runtime: str = "runc"
    status_interval_s: float = DEFAULT_STATUS_INTERVAL_S
    execute_timeout_ms: int = DEFAULT_EXECUTE_TIMEOUT_MS
    open_tasks_max: int = OPEN_TASKS_MAX

    def __post_init__(self) -> None:
        if not self.listen:
            raise BadSetting("listen: give at least one address (e.g. /ip4/0.0.0.0/tcp/4001)")
        for name in ("listen", "bootstrap"):
            value = getattr(self, name)
            if len(value) > ADDRS_MAX:
                raise BadSetting(f"{name}: {len(value)} addresses, at most {ADDRS_MAX}")
        if not BLOCK_INTERVAL_MS_MIN <= self.block_interval_ms <= BLOCK_INTERVAL_MS_MAX:
            raise BadSetting(
                f"block_interval_ms={self.block_interval_ms}: must be in "
                f"[{BLOCK_INTERVAL_MS_MIN}, {BLOCK_INTERVAL_MS_MAX}]"
            )
        if not EXECUTE_TIMEOUT_MS_MIN <= self.execute_timeout_ms <= EXECUTE_TIMEOUT_MS_MAX:
            raise BadSetting(
                f"execute_timeout_ms={self.execute_timeout_ms}: must be in "
                f"[{EXECUTE_TIMEOUT_MS_MIN}, {EXECUTE_TIMEOUT_MS_MAX}]"
            )
        if not 1 <= self.open_tasks_max <= OPEN_TASKS_MAX_LIMIT:
            raise BadSetting(
                f"open_tasks_max={self.open_tasks_max}: must be in [1, {OPEN_TASKS_MAX_LIMIT}]"
            )
        if not STATUS_INTERVAL_S_MIN <= self.status_interval_s <= STATUS_INTERVAL_S_MAX:
            raise BadSetting(
                f"status_interval_s={self.status_interval_s}: must be in "
                f"[{STATUS_INTERVAL_S_MIN}, {STATUS_INTERVAL_S_MAX}]"
            )
        if self.log_level not in _LOG_LEVELS:
            raise BadSetting(f"log_level={self.log_level!r}: one of {', '.join(_LOG_LEVELS)}")
        if self.runtime not in _RUNTIMES:
            raise BadSetting(f"runtime={self.runtime!r}: one of {', '.join(_RUNTIMES)}")

    # --- paths ----------------------------------------------------------------------------------

    @property
    def identity_path(self) -> Path:
        """The identity key file."""
        return self.data_dir / IDENTITY_FILE

    @property
    def vrf_path(self) -> Path:
        """The VRF key file."""
        return self.data_dir / VRF_FILE

    @property
    def store_path(self) -> Path:
        """The SQLite block store."""
        return self.data_dir / STORE_FILE

    @property
    def status_path(self) -> Path:
        """The status file a running node keeps fresh."""
        return self.data_dir / STATUS_FILE

    @property
    def results_dir(self) -> Path:
        """Where `submit` saves result certificates."""
        return self.data_dir / RESULTS_DIR


# --- key files ------------------------------------------------------------------------------------


def write_key_file(path: Path, seed: bytes) -> None:
    """Write a 32-byte seed as hex to a new file readable only by its owner.

    Raises KeyFileExists if `path` exists (never overwrite a key: move it away first if you mean
    it); OSError if the directory is not writable (fix its permissions)."""
    if len(seed) != IDENTITY_SEED_LEN:
        raise ValueError("a key seed is 32 bytes")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileExists(
            f"{path} already exists: keys are never overwritten (move it away first if you "
            "really want a new identity)"
        ) from None
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_key_seed(path: Path) -> bytes:
    """Read a 32-byte seed written by `write_key_file`.

    Raises KeyFileError if the file is missing, unreadable or not 64 hex digits (run
    `posi-peer init` for a new node, or restore the file from a backup)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(KEY_FILE_BYTES_MAX + 1)
    except FileNotFoundError:
        raise KeyFileError(
            f"{path} does not exist: run `posi-peer init --data-dir {path.parent}` first"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc}") from None
    if len(raw) > KEY_FILE_BYTES_MAX:
        raise KeyFileError(f"{path} is too large to be a key file")
    try:
        seed = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise KeyFileError(f"{path} is not a hex key file") from None
    if len(seed) != IDENTITY_SEED_LEN:
        raise KeyFileError(f"{path} holds {len(seed)} bytes, a key seed is {IDENTITY_SEED_LEN}")
    return seed


def load_identity(path: Path) -> IdentityKey:
    """The node's identity key. Raises KeyFileError (see `read_key_seed`)."""
    return IdentityKey(read_key_seed(path))


def load_vrf_key(path: Path) -> vrf.SecretKey:
    """The node's VRF key. Raises KeyFileError (see `read_key_seed`)."""
    return vrf.SecretKey.from_seed(read_key_seed(path))


def load_genesis(path: Path) -> Genesis:
    """Parse and check the genesis file. Raises GenesisFileError naming the file and the broken
    field (get the right file from the network's operators)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(GENESIS_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise GenesisFileError(
            f"cannot read the genesis file {path}: {exc} (set `genesis` in config.toml, "
            "POSI_GENESIS or --genesis)"
        ) from None
    if len(raw) > GENESIS_FILE_BYTES_MAX:
        raise GenesisFileError(f"{path}: larger than {GENESIS_FILE_BYTES_MAX} bytes")
    try:
        return genesis_from_json(raw)
    except GenesisError as exc:
        raise GenesisFileError(f"{path}: {exc}") from None


# --- config file ----------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def render_config_file(settings: Mapping[str, Any], comment: str = "") -> str:
    """The text of a config.toml holding `settings` (names from `SETTINGS`)."""
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines.append("# posi-peer node settings; environment (POSI_*) and flags override them.")
    for name in sorted(settings):
        if name not in SETTINGS:
            raise UnknownSetting(
                f"{name}: not a node setting (known: {', '.join(sorted(SETTINGS))})"
            )
        lines.append(f"{name} = {_toml_value(settings[name])}")
    return "\n".join(lines) + "\n"


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a config.toml ({} if the file does not exist).

    Raises UnknownSetting for a name this version does not know, BadSetting for a file that is
    not TOML or too large (fix the file: the message names the line)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(CONFIG_FILE_BYTES_MAX + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadSetting(f"cannot read {path}: {exc}") from None
    if len(raw) > CONFIG_FILE_BYTES_MAX:
        raise BadSetting(f"{path}: larger than {CONFIG_FILE_BYTES_MAX} bytes")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadSetting(f"{path}: not valid TOML: {exc}") from None
    unknown = set(doc) - SETTINGS
    if unknown:
        raise UnknownSetting(
            f"{path}: unknown setting(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(SETTINGS))})"
        )
    return doc


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, name in ENV_VARS.items():
        if var in env and name != "data_dir":
            out[name] = env[var]
    return out


def _coerce(name: str, value: Any, source: str) -> Any:
    """One setting from a file (typed), the environment or a flag (text) to its Python type."""
    where = f"{name} (from {source})"
    if name in _LIST_SETTINGS:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            items = [v.strip() for v in value]
        else:
            raise BadSetting(f"{where}: expected a list of strings, got {value!r}")
        return tuple(dict.fromkeys(items))
    if name in _INT_SETTINGS:
        if isinstance(value, bool):
            raise BadSetting(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BadSetting(f"{where}: expected an integer, got {value!r}") from None
    if name in _FLOAT_SETTINGS:
        if isinstance(value, bool):
            raise BadSetting(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise BadSetting(f"{where}: expected a number, got {value!r}") from None
    if not isinstance(value, str):
        raise BadSetting(f"{where}: expected a string, got {value!r}")
    return value.strip()


def parse_metrics_addr(text: str) -> tuple[str, int] | None:
    """ "HOST:PORT" -> (host, port); "" or "off" -> None. Raises BadSetting for anything else."""
    text = text.strip()
    if text in ("", "off", "none"):
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise BadSetting(f"metrics={text!r}: expected HOST:PORT (e.g. 127.0.0.1:9100) or off")
    return host.strip("[]"), int(port_text)


def _parse_roles(items: tuple[str, ...], source: str) -> frozenset[Role]:
    roles = set()
    for item in items:
        try:
            roles.add(Role(item.lower()))
        except ValueError:
            raise BadSetting(
                f"roles (from {source}): {item!r} is not one of {', '.join(r.value for r in Role)}"
            ) from None
    return frozenset(roles)


def load_node_config(
    data_dir: Path,
    *,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Merge defaults < DATA/config.toml < environment < flags into a valid NodeConfig.

    `flags` maps setting names to values given on the command line (None = not given). Raises a
    NodeConfigError subclass naming the setting, its value and its source."""
    env = os.environ if env is None else env
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (str(data_dir / CONFIG_FILE), read_config_file(data_dir / CONFIG_FILE)),
        ("environment", _from_env(env)),
        ("flags", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    merged: dict[str, tuple[Any, str]] = {}
    for source, layer in layers:
        for name, value in layer.items():
            if name not in SETTINGS:
                raise UnknownSetting(f"{name} (from {source}): not a node setting")
            merged[name] = (_coerce(name, value, source), source)

    def get(name: str, default: Any) -> Any:
        return merged[name][0] if name in merged else default

    genesis_text = get("genesis", GENESIS_FILE)
    genesis = Path(genesis_text)
    if not genesis.is_absolute():
        genesis = data_dir / genesis
    metrics = None
    if "metrics" in merged:
        try:
            metrics = parse_metrics_addr(merged["metrics"][0])
        except BadSetting as exc:
            raise BadSetting(f"{exc} (from {merged['metrics'][1]})") from None
    roles: frozenset[Role] = frozenset()
    if "roles" in merged:
        roles = _parse_roles(merged["roles"][0], merged["roles"][1])
    log_format_text = get("log_format", LogFormat.HUMAN.value)
    try:
        log_format = LogFormat(log_format_text)
    except ValueError:
        raise BadSetting(
            f"log_format={log_format_text!r} (from {merged['log_format'][1]}): json or human"
        ) from None
    try:
        return NodeConfig(
            data_dir=data_dir,
            genesis=genesis,
            listen=get("listen", DEFAULT_LISTEN),
            bootstrap=get("bootstrap", ()),
            roles=roles,
            metrics=metrics,
            log_format=log_format,
            log_level=get("log_level", "info").lower(),
            block_interval_ms=get("block_interval_ms", DEFAULT_BLOCK_INTERVAL_MS),
            runtime=get("runtime", "runc"),
            status_interval_s=get("status_interval_s", DEFAULT_STATUS_INTERVAL_S),
            execute_timeout_ms=get("execute_timeout_ms", DEFAULT_EXECUTE_TIMEOUT_MS),
            open_tasks_max=get("open_tasks_max", OPEN_TASKS_MAX),
        )
    except BadSetting as exc:
        sources = ", ".join(f"{k} from {s}" for k, (_, s) in sorted(merged.items()))
        raise BadSetting(f"{exc} [{sources or 'defaults'}]") from None


def data_dir_from(flag: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The data directory: the flag, else POSI_DATA_DIR, else ~/.posi-peer."""
    env = os.environ if env is None else env
    if flag:
        return Path(flag).expanduser()
    if env.get("POSI_DATA_DIR"):
        return Path(env["POSI_DATA_DIR"]).expanduser()
    return Path("~/.posi-peer").expanduser()
