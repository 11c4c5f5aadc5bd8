"""Ledger benchmark: `python -m ledger.bench [--quick]`.

Figures:

1. blocks applied per second with 1,000 transactions per block (80 % transfers, 20 % task posts,
   on a state of ~10,000 accounts), cold (the fold checks every signature) and warm (signatures
   already checked when the transactions entered the mempool, `VerifiedTxCache`); plus the time
   to check one transaction on mempool entry and to build a proposal;
2. the size of a record proof (a task result, an operator's stake) and the time to verify one;
3. the SQLite store's size per 10,000 tasks, each with its whole lifecycle on the ledger (post, 3
   credentials, executor certificate, result certificate).

Prints one line per figure; the last line is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ledger.block import CertifiedBlock
from ledger.chain import accept_block, round_seed
from ledger.devnet import DevChain, DevNet
from ledger.domains import Domain
from ledger.genesis import CAPACITY_MAX, ChainParams
from ledger.proofs import ChainAnchor, make_proof, verify_proof
from ledger.state import TaskStatus, genesis_state, operator_key, task_key
from ledger.store import Store
from ledger.tx import (
    PostTask,
    RoundKind,
    TaskCertificate,
    TaskResult,
    Transaction,
    Transfer,
    VerifiedTxCache,
    derived_id,
    verify_transaction,
)

TXS_PER_BLOCK = 1000
REPORT = b"\x42" * 32
JOB_SPEC = b'{"image": "sha256:...", "argv": ["python", "job.py"], "limits": {"cpu_ms": 1000}}'


def _apply_throughput(blocks: int, users: int) -> dict[str, float]:
    net = DevNet.create(validators=4, operators=8, users=users)
    cache = VerifiedTxCache()
    ch = DevChain(net, cache=cache)  # a proposer builds from its (already checked) mempool
    made: list[CertifiedBlock] = []
    build_s: list[float] = []
    txs_all: list[Transaction] = []
    for b in range(blocks):
        txs = []
        for i in range(TXS_PER_BLOCK):
            k = (b * TXS_PER_BLOCK + i) % users
            sender = net.users[k]
            if i % 5 == 4:
                txs.append(ch.sign(sender, PostTask(JOB_SPEC, 100, 5)))
            else:
                txs.append(ch.sign(sender, Transfer(net.users[(k * 7 + 1) % users].public, 3)))
        txs_all.extend(txs)
        for tx in txs:
            cache.add(verify_transaction(tx, ch.chain))
        t0 = time.perf_counter()
        built = ch.propose(txs)
        build_s.append(time.perf_counter() - t0)
        if len(built.block.txs) != TXS_PER_BLOCK:
            raise RuntimeError(f"the benchmark block lost transactions: {built.rejected[:1]}")
        certified = CertifiedBlock(built.block, ch.commit(built.block.header))
        ch.state, ch.last_commit = built.state, certified.commit
        made.append(certified)
    # mempool entry: decode + signature check, once per transaction
    sample = txs_all[: min(len(txs_all), 2000)]
    t0 = time.perf_counter()
    for tx in sample:
        verify_transaction(tx, ch.chain)
    verify_us = (time.perf_counter() - t0) / len(sample) * 1e6
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    for mode in ("cold", "warm"):
        state = genesis_state(net.genesis)
        for cb in made:
            t0 = time.perf_counter()
            state = accept_block(state, cb, cache=cache if mode == "warm" else None)
            timings[mode].append(time.perf_counter() - t0)
        if state.state_root != ch.state.state_root:
            raise RuntimeError("replay disagrees with the builder")
    cold = statistics.median(timings["cold"])
    warm = statistics.median(timings["warm"])
    return {
        "txs_per_block": TXS_PER_BLOCK,
        "blocks_per_s_cold": 1 / cold,
        "blocks_per_s_warm": 1 / warm,
        "tx_per_s_cold": TXS_PER_BLOCK / cold,
        "tx_per_s_warm": TXS_PER_BLOCK / warm,
        "block_apply_ms_cold": cold * 1e3,
        "block_apply_ms_warm": warm * 1e3,
        "proposal_build_ms": statistics.median(build_s) * 1e3,
        "mempool_check_us_per_tx": verify_us,
        "state_entries": len(ch.state.entries),
    }


def _lifecycle(tasks: int, path: Path) -> tuple[dict[str, float], DevChain, Store, bytes]:
    """Run `tasks` tasks through their whole ledger lifecycle into a store."""
    params = ChainParams(credential_window_blocks=1, max_txs_per_block=8192)
    net = DevNet.create(
        validators=4, operators=8, users=50, params=params, operator_capacity=CAPACITY_MAX
    )
    ch = DevChain(net, cache=VerifiedTxCache(200_000))
    store = Store.open(path, net.genesis)
    wave = min(1000, tasks)
    last_tid = b""
    t_start = time.perf_counter()

    def block(txs: Sequence[Transaction]) -> None:
        for tx in txs:
            ch.cache.add(verify_transaction(tx, ch.chain))  # type: ignore[union-attr]
        built = ch.propose(txs)
        if built.rejected:
            raise RuntimeError(f"lifecycle transaction rejected: {built.rejected[0][1]!r}")
        certified = CertifiedBlock(built.block, ch.commit(built.block.header))
        store.append(certified, built.state)
        ch.state, ch.last_commit = built.state, certified.commit
        ch.blocks.append(certified)

    done = 0
    while done < tasks:
        n = min(wave, tasks - done)
        posts = [ch.sign(net.users[i % 50], PostTask(JOB_SPEC, 1000, 3)) for i in range(n)]
        block(posts)
        tids = [derived_id(Domain.TASK_ID, tx, ch.chain) for tx in posts]
        block([])  # the block whose hash seeds the draw
        creds = []
        for tid in tids:
            seed = round_seed(ch.state, RoundKind.TASK, tid)
            if seed is None:
                raise RuntimeError("the seed should be known")
            k = int.from_bytes(tid[:2], "big")
            for j in range(3):
                creds.append(ch.credential(net.operators[(k + j) % 8], RoundKind.TASK, tid, seed))
        block(creds)  # the seed is fixed at the start of this block
        block([])  # the credential window closes
        certs = []
        for tid in tids:
            executor = ch.state.task(tid).roster[0].identity  # type: ignore[union-attr]
            cert = ch.executor_certificate(tid, executor)
            certs.append(ch.sign(net.users[0], TaskCertificate(tid, 0, executor, cert)))
        block(certs)
        results = [
            ch.sign(net.users[1], TaskResult(tid, 0, REPORT, ch.result_certificate(tid, REPORT)))
            for tid in tids
        ]
        block(results)
        for tid in tids:
            if ch.state.task(tid).status != TaskStatus.COMPLETED:  # type: ignore[union-attr]
                raise RuntimeError("a benchmark task did not complete")
        last_tid = tids[-1]
        done += n
    elapsed = time.perf_counter() - t_start
    store.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    store = Store.open(path, net.genesis, cache=ch.cache)
    figures = {
        "lifecycle_tasks": tasks,
        "lifecycle_blocks": store.height,
        "lifecycle_s": elapsed,
        "store_bytes": size,
        "store_bytes_per_10k_tasks": size * 10_000 / tasks,
        "store_bytes_per_task": size / tasks,
    }
    return figures, ch, store, last_tid


def _proofs(ch: DevChain, store: Store, tid: bytes, rounds: int) -> dict[str, float]:
    header = store.header(store.height)
    commit = store.tip_commit
    if commit is None:
        raise RuntimeError("no commit")
    out: dict[str, float] = {}
    for name, key in (
        ("task_result", task_key(tid)),
        ("operator_stake", operator_key(ch.net.operators[0].identity.public)),
    ):
        proof = make_proof(store.state, header, commit, key)
        data = proof.encode()
        anchor = ChainAnchor.of(ch.net.genesis)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            verify_proof(type(proof).decode(data), anchor)
            times.append(time.perf_counter() - t0)
        out[f"proof_bytes_{name}"] = len(data)
        out[f"proof_path_siblings_{name}"] = len(proof.path.siblings)
        out[f"proof_verify_us_{name}"] = statistics.median(times) * 1e6
    out["proof_state_entries"] = len(store.state.entries)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures (last line JSON). Returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m ledger.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--blocks", type=int, default=6, help="1,000-transaction blocks applied")
    parser.add_argument("--users", type=int, default=10_000, help="accounts in the state")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks for the store figure")
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.users, args.tasks = 2, 2_000, 300
    figures: dict[str, float] = {}
    f = _apply_throughput(args.blocks, args.users)
    figures.update(f)
    print(
        f"apply, {f['txs_per_block']} tx/block on {f['state_entries']} entries: "
        f"{f['blocks_per_s_cold']:.1f} blocks/s cold ({f['block_apply_ms_cold']:.0f} ms/block, "
        f"signatures checked in the fold), {f['blocks_per_s_warm']:.1f} blocks/s warm "
        f"({f['block_apply_ms_warm']:.0f} ms/block, signatures checked at mempool entry)"
    )
    print(
        f"mempool entry check: {f['mempool_check_us_per_tx']:.0f} us/tx; "
        f"proposal build: {f['proposal_build_ms']:.0f} ms/block (warm)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        life, ch, store, tid = _lifecycle(args.tasks, Path(tmp) / "bench.db")
        try:
            figures.update(life)
            print(
                f"store: {life['store_bytes'] / 1e6:.1f} MB for {args.tasks} tasks with their "
                f"whole lifecycle ({life['lifecycle_blocks']} blocks, "
                f"{life['lifecycle_s']:.0f} s) = {life['store_bytes_per_10k_tasks'] / 1e6:.1f} MB "
                f"per 10,000 tasks ({life['store_bytes_per_task']:.0f} B/task)"
            )
            p = _proofs(ch, store, tid, 50 if args.quick else 300)
        finally:
            store.close()
    figures.update(p)
    print(
        f"proof of a task result: {p['proof_bytes_task_result']} B "
        f"({p['proof_path_siblings_task_result']} siblings over {p['proof_state_entries']} "
        f"entries), verify {p['proof_verify_us_task_result']:.0f} us; operator stake: "
        f"{p['proof_bytes_operator_stake']} B, verify {p['proof_verify_us_operator_stake']:.0f} us"
    )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
