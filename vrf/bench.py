"""ECVRF prove/verify per backend against PyNaCl's Ed25519 sign/verify, in one process.

`posi-peer vrf-bench` or `python -m vrf.bench [--rounds N] [--ops M]`. Each round runs every
operation once, round-robin (so drift in CPU frequency or load hits all of them alike), timing
`ops` calls with time.perf_counter_ns; the figure per operation is the median over rounds of the
microseconds per call. The pure-Python backend runs fewer calls per round (it is ~100x slower;
the count is printed). The last line of output is one JSON object with every figure.

This module is an edge (it reads the clock) and the only one in vrf/ that imports PyNaCl; nothing
imports it from `vrf/__init__.py`, so `import vrf` stays stdlib-only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections.abc import Callable, Sequence
from types import ModuleType

from nacl.signing import SigningKey

import vrf

# Targets for the C backend, as ratios to PyNaCl (libsodium) Ed25519 in the same process.
# Verify does ~2 double-scalar multiplications and a hash-to-curve where Ed25519 does one
# double-scalar multiplication: 2.5x leaves room for the extra hashing and decoding.
VERIFY_TARGET_RATIO = 2.5
# Prove does 2 fixed-base and 2 variable-base multiplications where Ed25519 signing does one
# fixed-base multiplication: 8x accounts for the variable-base ones being ~3x a fixed-base one.
PROVE_TARGET_RATIO = 8.0
# The pure-Python backend runs ops // PYTHON_OPS_DIVISOR calls per round: it is ~100-200x slower
# than C, so this keeps its share of the run comparable to the C backend's.
PYTHON_OPS_DIVISOR = 40
# ...but never fewer than this many calls (unless --ops is smaller), so one call's jitter does not
# make the round's figure.
PYTHON_OPS_MIN = 3
# Distinct (key, message) pairs cycled through, so no single input dominates the timings.
INPUT_POOL = 8
ALPHA_LEN = 32  # sortition hashes a 32-byte seed
SUITE_NAMES = {vrf.SUITE_TAI: "tai", vrf.SUITE_ELL2: "ell2"}


def _inputs() -> list[tuple[bytes, bytes]]:
    """Deterministic (seed, alpha) pairs: the bench needs variety, not secrecy."""
    out = []
    for i in range(INPUT_POOL):
        digest = hashlib.sha512(b"posi-peer vrf-bench %d" % i).digest()
        out.append((digest[:32], digest[32 : 32 + ALPHA_LEN]))
    return out


def _timer(fn: Callable[[int], object], n: int) -> Callable[[], float]:
    """A callable that runs fn(0..n-1) and returns microseconds per call."""

    def run() -> float:
        start = time.perf_counter_ns()
        for i in range(n):
            fn(i)
        return (time.perf_counter_ns() - start) / n / 1000.0

    return run


def _vrf_ops(name: str, backend: ModuleType, n: int) -> dict[str, Callable[[], float]]:
    pool = _inputs()
    ops: dict[str, Callable[[], float]] = {}
    for suite, suite_name in SUITE_NAMES.items():
        pks = [backend.public_key(seed) for seed, _ in pool]
        proofs = [backend.prove(suite, seed, alpha) for seed, alpha in pool]
        for pk, pi, (_, alpha) in zip(pks, proofs, pool, strict=True):
            backend.verify(suite, pk, pi, alpha)  # fail before timing if anything is wrong

        def prove(i: int, suite: int = suite) -> bytes:
            seed, alpha = pool[i % INPUT_POOL]
            return backend.prove(suite, seed, alpha)

        def verify(
            i: int, suite: int = suite, pks: list[bytes] = pks, proofs: list[bytes] = proofs
        ) -> bytes:
            j = i % INPUT_POOL
            return backend.verify(suite, pks[j], proofs[j], pool[j][1])

        ops[f"{name}.{suite_name}.prove"] = _timer(prove, n)
        ops[f"{name}.{suite_name}.verify"] = _timer(verify, n)
    return ops


def _ed25519_ops(n: int) -> dict[str, Callable[[], float]]:
    pool = _inputs()
    keys = [SigningKey(seed) for seed, _ in pool]
    signed = [key.sign(alpha) for key, (_, alpha) in zip(keys, pool, strict=True)]
    verify_keys = [key.verify_key for key in keys]

    def sign(i: int) -> bytes:
        j = i % INPUT_POOL
        return keys[j].sign(pool[j][1])

    def verify(i: int) -> bytes:
        j = i % INPUT_POOL
        return verify_keys[j].verify(signed[j])

    return {"ed25519.sign": _timer(sign, n), "ed25519.verify": _timer(verify, n)}


def main(rounds: int, ops: int) -> int:
    """Run the benchmark, print a table and a final JSON line; 0 on success, 2 on bad arguments.

    A missing backend is reported (with the reason) and skipped, not an error: the figures of
    the backends that exist are still worth having.
    """
    if rounds < 1 or ops < 1:
        print(f"error: --rounds and --ops must be >= 1 (got rounds={rounds}, ops={ops})")
        return 2
    python_ops = min(ops, max(PYTHON_OPS_MIN, ops // PYTHON_OPS_DIVISOR))
    op_counts = {"c": ops, "python": python_ops}

    available: list[str] = []
    missing: dict[str, str] = {}
    timers: dict[str, Callable[[], float]] = _ed25519_ops(ops)
    for name in ("c", "python"):
        try:
            backend = vrf.backend_module(name)
        except vrf.BackendUnavailable as exc:
            missing[name] = str(exc)
            continue
        available.append(name)
        timers.update(_vrf_ops(name, backend, op_counts[name]))

    samples: dict[str, list[float]] = {key: [] for key in timers}
    for _ in range(rounds):
        for key, run in timers.items():  # round-robin: every op once per round
            samples[key].append(run())
    median_us = {key: statistics.median(values) for key, values in samples.items()}

    print(f"vrf-bench: {rounds} rounds, median microseconds per op (vrf.BACKEND={vrf.BACKEND})")
    print(f"  calls per round: {ops} for C and Ed25519, {python_ops} for pure Python")
    for name, reason in missing.items():
        print(f"  backend {name!r} MISSING: {reason}")
    print(f"  {'operation':<22}{'us/op':>12}")
    for key in timers:
        print(f"  {key:<22}{median_us[key]:>12.1f}")

    ratios: dict[str, float] = {}
    verdicts: dict[str, str] = {}
    print(f"  {'ratio':<38}{'value':>8}  target")
    for name in available:
        for suite_name in SUITE_NAMES.values():
            rows = (
                ("verify", "ed25519.verify", VERIFY_TARGET_RATIO),
                ("prove", "ed25519.sign", PROVE_TARGET_RATIO),
            )
            for op, reference, target in rows:
                key = f"{name}.{suite_name}.{op}"
                ratio = median_us[key] / median_us[reference]
                ratios[f"{key}/{reference}"] = ratio
                label = f"{key} / {reference}"
                if name == "c":
                    verdict = "PASS" if ratio <= target else "MISS"
                    verdicts[f"{key}/{reference}"] = verdict
                    print(f"  {label:<38}{ratio:>8.2f}  <= {target} {verdict}")
                else:
                    print(f"  {label:<38}{ratio:>8.2f}  (no target)")

    summary = {
        "rounds": rounds,
        "ops": op_counts,
        "selected_backend": vrf.BACKEND,
        "available": available,
        "missing": missing,
        "median_us": median_us,
        "ratios": ratios,
        "targets": {"verify": VERIFY_TARGET_RATIO, "prove": PROVE_TARGET_RATIO},
        "verdicts": verdicts,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


def _cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vrf.bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per op (median taken)")
    parser.add_argument("--ops", type=int, default=200, help="operations per round")
    args = parser.parse_args(argv)
    return main(rounds=args.rounds, ops=args.ops)


if __name__ == "__main__":
    raise SystemExit(_cli())
