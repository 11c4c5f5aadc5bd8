"""`posi-peer verify-proof FILE --genesis GENESIS`: check a record proof offline.

FILE holds the canonical encoding of a `ledger.proofs.RecordProof` (what `ledger.proofs.make_proof`
returns, `.encode()`d); GENESIS is the chain's genesis JSON. Exit status: 0 the record is proven
(it is printed as JSON), 1 the proof does not verify (the reason is printed), 2 a file cannot be
read or parsed.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ledger's subcommands to the `posi-peer` parser."""
    p = subparsers.add_parser(
        "verify-proof",
        help="check a ledger record proof offline against a genesis file",
        description=(
            "Check that a record (an operator's stake, a task result, an integrity report...) is "
            "in the finalised state of the chain: the header's commit certificate against the "
            "genesis validators, and the record's Merkle path to the header's state root. Prints "
            "the record as JSON. Exit 0 proven, 1 not proven, 2 unreadable input."
        ),
    )
    p.add_argument("file", help="the proof file (canonical msgpack of a RecordProof)")
    p.add_argument("--genesis", required=True, help="the chain's genesis JSON file")
    p.set_defaults(func=verify_proof_command)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def verify_proof_command(args: argparse.Namespace) -> int:
    """Run `verify-proof`; returns the exit status."""
    from ledger.errors import DecodeError, GenesisError, ProofError
    from ledger.genesis import genesis_from_json
    from ledger.proofs import RecordProof, verify_proof

    try:
        with open(args.genesis, "rb") as f:
            genesis = genesis_from_json(f.read())
    except (OSError, GenesisError) as exc:
        print(f"error: cannot use the genesis file {args.genesis}: {exc}", file=sys.stderr)
        return 2
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as exc:
        print(f"error: cannot read the proof file {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        proof = RecordProof.decode(data)
    except DecodeError as exc:
        print(f"error: {args.file} is not a record proof: {exc}", file=sys.stderr)
        return 2
    try:
        proven = verify_proof(proof, genesis)
    except ProofError as exc:
        print(f"NOT PROVEN: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "proven": True,
                "chain": genesis.chain_name,
                "height": proven.height,
                "block_hash": proven.block_hash.hex(),
                "time_ms": proven.time_ms,
                "key": proven.key.hex(),
                "type": type(proven.record).__name__,
                "record": _jsonable(proven.record),
            },
            indent=2,
        )
    )
    return 0
