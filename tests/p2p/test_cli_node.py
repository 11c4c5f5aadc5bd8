"""The node's `posi-peer` subcommands that need no network: init, devnet init, settings
precedence, verify-result, status and why (offline, from a store), and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from executor.report import report_digest
from ledger.devnet import DevNet
from ledger.genesis import genesis_to_json
from ledger.proofs import make_proof
from ledger.state import task_key
from ledger.store import Store
from p2p.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, build_parser, main
from p2p.nodeconfig import (
    BadSetting,
    KeyFileExists,
    LogFormat,
    Role,
    UnknownSetting,
    load_node_config,
    read_key_seed,
    write_key_file,
)
from p2p.result import ResultCertificate
from tests.p2p.nodekit import CompletedTask, complete_task, devnet


@pytest.fixture(scope="module")
def done() -> CompletedTask:
    return complete_task(devnet(operators=5), b"cli input\n")


def test_help_documents_exit_codes_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for needle in ("exit codes:", "130", "POSI_DATA_DIR", "POSI_METRICS", "submit", "why"):
        assert needle in text


def test_init_creates_keys_once_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "node"
    args = ["init", "--data-dir", str(data), "--operator", "--metrics", "127.0.0.1:9100"]
    assert main(args) == EXIT_OK
    first = json.loads(capsys.readouterr().out)
    seed = read_key_seed(data / "identity.key")
    assert (data / "identity.key").stat().st_mode & 0o777 == 0o600
    assert main([*args[:3], "--log-format", "json"]) == EXIT_OK
    second = json.loads(capsys.readouterr().out)
    assert read_key_seed(data / "identity.key") == seed
    assert second["peer_id"] == first["peer_id"]
    assert second["vrf_key"] == first["vrf_key"]
    config = load_node_config(data, env={})
    assert config.roles == frozenset({Role.OPERATOR})
    assert config.metrics == ("127.0.0.1", 9100)
    assert config.log_format is LogFormat.HUMAN  # config.toml kept (no --force-config)
    with pytest.raises(KeyFileExists):
        write_key_file(data / "identity.key", b"\x00" * 32)


def test_settings_precedence_file_env_flags(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'log_format = "json"\nblock_interval_ms = 3000\nroles = ["validator"]\n'
    )
    env = {
        "POSI_BLOCK_INTERVAL_MS": "4000",
        "POSI_ROLES": "operator",
        "POSI_LOG_LEVEL": "debug",
        "POSI_OPEN_TASKS_MAX": "32",
    }
    config = load_node_config(tmp_path, flags={"block_interval_ms": 5000, "genesis": None}, env=env)
    assert config.open_tasks_max == 32  # env over the default
    assert config.log_format is LogFormat.JSON  # file
    assert config.roles == frozenset({Role.OPERATOR})  # env over file
    assert config.log_level == "debug"  # env
    assert config.block_interval_ms == 5000  # flag over env
    assert config.genesis == tmp_path / "genesis.json"


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("blok_interval_ms = 1\n", UnknownSetting, "blok_interval_ms"),
        ("block_interval_ms = 5\n", BadSetting, "block_interval_ms=5"),
        ("open_tasks_max = 0\n", BadSetting, "open_tasks_max=0"),
        ('roles = ["miner"]\n', BadSetting, "miner"),
        ('metrics = "nope"\n', BadSetting, "HOST:PORT"),
        ("listen = [\n", BadSetting, "not valid TOML"),
    ],
)
def test_broken_settings_name_the_setting(
    tmp_path: Path, text: str, error: type[Exception], message: str
) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(error, match=message):
        load_node_config(tmp_path, env={})


def test_devnet_init_writes_every_node_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "dn"
    assert main(["devnet", "init", str(root), "--validators", "2", "--operators", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("posi-peer run --data-dir") == 5
    assert "posi-peer submit --data-dir" in out
    manifest = json.loads((root / "devnet.json").read_text())
    names = [n["name"] for n in manifest["nodes"]]
    assert names == [
        "validator-0",
        "validator-1",
        "operator-0",
        "operator-1",
        "operator-2",
        "poster-0",
    ]
    genesis = json.loads((root / "genesis.json").read_text())
    assert len(genesis["validators"]) == 2
    assert len(genesis["operators"]) == 3
    ports = set()
    for entry in manifest["nodes"]:
        config = load_node_config(root / entry["data_dir"], env={})
        assert config.genesis.resolve() == (root / "genesis.json").resolve()
        assert {r.value for r in config.roles} == {entry["role"]}
        if entry["role"] != "poster":
            assert all(f"/p2p/{entry['peer_id']}" not in b for b in config.bootstrap)
            ports.add(config.listen[0])
            if entry["role"] == "operator":
                assert (root / entry["data_dir"] / "vrf.key").exists()
    assert len(ports) == 5
    assert main(["devnet", "init", str(root)]) == EXIT_USAGE
    assert "already holds a devnet" in capsys.readouterr().err


def _certificate_file(tmp_path: Path, done: CompletedTask) -> tuple[Path, Path]:
    chain = done.chain
    last = chain.blocks[-1]
    cert = ResultCertificate(
        task_id=done.task_id,
        attempt=0,
        job_spec=done.spec.encode(),
        report=done.report.encode(),
        output=done.output,
        certificate=chain.result_certificate(done.task_id, report_digest(done.report)),
        proof=make_proof(chain.state, last.block.header, last.commit, task_key(done.task_id)),
    )
    genesis = tmp_path / "genesis.json"
    genesis.write_text(genesis_to_json(chain.net.genesis))
    path = tmp_path / "result.cert"
    path.write_bytes(cert.encode())
    return path, genesis


def test_verify_result_exit_codes(
    tmp_path: Path, done: CompletedTask, capsys: pytest.CaptureFixture[str]
) -> None:
    path, genesis = _certificate_file(tmp_path, done)
    assert main(["verify-result", str(path), "--genesis", str(genesis)]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["output"] == "cli input\n"
    assert doc["executor"] == done.executor.public.hex()

    other = tmp_path / "other.json"
    other.write_text(genesis_to_json(DevNet.create(validators=4, operators=1).genesis))
    assert main(["verify-result", str(path), "--genesis", str(other)]) == EXIT_FAILED
    assert "NOT VERIFIED" in capsys.readouterr().err

    junk = tmp_path / "junk.cert"
    junk.write_bytes(b"junk")
    assert main(["verify-result", str(junk), "--genesis", str(genesis)]) == EXIT_USAGE
    assert main(["verify-result", str(tmp_path / "missing"), "--genesis", str(genesis)]) == (
        EXIT_USAGE
    )


def _node_with_store(tmp_path: Path, done: CompletedTask, member: int) -> Path:
    """A data directory of operator `member` whose store holds the whole chain."""
    net = done.chain.net
    op = net.operators[member]
    data = tmp_path / f"op{member}"
    data.mkdir()
    write_key_file(data / "identity.key", op.identity.seed)
    write_key_file(data / "vrf.key", op.vrf_key.seed)
    (data / "genesis.json").write_text(genesis_to_json(net.genesis))
    with Store.open(data / "chain.sqlite", net.genesis) as store:
        for block in done.chain.blocks:
            store.accept(block)
    return data


def test_why_explains_drawn_and_not_drawn_offline(
    tmp_path: Path, done: CompletedTask, capsys: pytest.CaptureFixture[str]
) -> None:
    task = done.task_id.hex()
    roster = {m.identity for m in done.chain.state.task(done.task_id).roster}
    executor = next(
        i for i, o in enumerate(done.chain.net.operators) if o.identity == done.executor
    )
    outsider = next(
        i for i, o in enumerate(done.chain.net.operators) if o.identity.public not in roster
    )
    data = _node_with_store(tmp_path, done, executor)
    assert main(["why", task, "--data-dir", str(data), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["drawn"] is True
    assert doc["reason"] == "executor"
    assert doc["candidates"] == 3

    data = _node_with_store(tmp_path, done, outsider)
    assert main(["why", task, "--data-dir", str(data), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["drawn"] is False
    # The devnet chain put the first three operators on the roster by hand: the fourth either
    # drew no weight, or was drawn and never sent a credential.
    assert doc["reason"] in ("weight-zero", "credential-missing")

    assert main(["why", "00" * 32, "--data-dir", str(data)]) == EXIT_FAILED
    assert "UNKNOWN" in capsys.readouterr().out
    assert main(["why", "xyz", "--data-dir", str(data)]) == EXIT_USAGE


def test_status_reads_the_store_when_no_node_runs(
    tmp_path: Path, done: CompletedTask, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _node_with_store(tmp_path, done, 0)
    assert main(["status", "--data-dir", str(data), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["running"] is False
    assert doc["height"] == done.chain.state.height
    assert doc["recent_tasks"][0] == {
        "task": done.task_id.hex(),
        "status": "completed",
        "posted_height": done.chain.state.task(done.task_id).posted_height,
    }
    # A status file left by a process that is gone does not count as running.
    (data / "status.json").write_text(json.dumps({"pid": 2**22 + 12345, "height": 99}))
    assert main(["status", "--data-dir", str(data), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["height"] == done.chain.state.height
