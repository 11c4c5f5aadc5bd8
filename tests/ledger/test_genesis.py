"""Genesis: JSON round trip, a canonical hash, and a named error for each broken rule."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ledger.devnet import DevNet
from ledger.errors import GenesisError
from ledger.genesis import ChainParams, Genesis, genesis_from_json, genesis_to_json
from ledger.state import check_invariants, genesis_state


def test_json_round_trip_keeps_the_hash(net: DevNet) -> None:
    text = genesis_to_json(net.genesis)
    parsed = genesis_from_json(text)
    assert parsed == net.genesis
    assert parsed.hash() == net.genesis.hash()
    assert Genesis.decode(net.genesis.encode()) == net.genesis


def test_hash_ignores_formatting_and_list_order(net: DevNet) -> None:
    doc = json.loads(genesis_to_json(net.genesis))
    doc["accounts"].reverse()
    doc["operators"].reverse()
    doc["params"] = {"min_stake": doc["params"]["min_stake"]} | {
        k: v for k, v in reversed(doc["params"].items())
    }
    assert genesis_from_json(json.dumps(doc, indent=None)).hash() == net.genesis.hash()


def test_validator_order_and_every_field_change_the_hash(net: DevNet) -> None:
    doc = json.loads(genesis_to_json(net.genesis))
    doc["validators"].reverse()
    assert genesis_from_json(json.dumps(doc)).hash() != net.genesis.hash()
    doc = json.loads(genesis_to_json(net.genesis))
    doc["params"]["dispute_window_blocks"] += 1
    assert genesis_from_json(json.dumps(doc)).hash() != net.genesis.hash()


def test_omitted_params_take_defaults(net: DevNet) -> None:
    doc = json.loads(genesis_to_json(net.genesis))
    del doc["params"]
    assert genesis_from_json(json.dumps(doc)).params == ChainParams()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other/1"), "format"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d.pop("validators"), "missing field"),
        (lambda d: d.update(validators=[]), "at least one validator"),
        (lambda d: d["validators"].append(dict(d["validators"][0])), "appears twice"),
        (lambda d: d["validators"][0].update(weight=0), "weight must be at least 1"),
        (lambda d: d["validators"][0].update(identity="zz"), "not hex"),
        (lambda d: d["validators"][0].update(identity="00"), "expected 32 bytes"),
        (lambda d: d["accounts"][0].update(balance=-1), "non-negative integer"),
        (lambda d: d["accounts"][0].update(balance=1.5), "non-negative integer"),
        (lambda d: d["operators"][0].update(stake=1), "below params.min_stake"),
        (lambda d: d["operators"][0].update(capacity=0), "capacity"),
        (lambda d: d["operators"][0].update(vrf_key="00" * 32), "not a valid ECVRF key"),
        (lambda d: d["params"].update(unbonding_blocks=1), "unbonding_blocks"),
        (lambda d: d["params"].update(executor_share_bps=10_001), "executor_share_bps"),
        (lambda d: d["params"].update(min_roster_share_bps=10_001), "min_roster_share_bps"),
        (lambda d: d["params"].update(tau_max=0), "tau_max"),
        (lambda d: d["params"].update(task_timeout_blocks=2), "task_timeout_blocks"),
        (lambda d: d["params"].update(nonsense=2), "unknown field"),
        (lambda d: d["accounts"].append(dict(d["accounts"][0])), "appears twice"),
    ],
)
def test_broken_files_name_the_field(net: DevNet, edit: object, message: str) -> None:
    doc = json.loads(genesis_to_json(net.genesis))
    edit(doc)  # type: ignore[operator]
    with pytest.raises(GenesisError, match=message):
        genesis_from_json(json.dumps(doc))


def test_not_json() -> None:
    with pytest.raises(GenesisError, match="not JSON"):
        genesis_from_json(b"\xff{")


def test_genesis_state_holds_the_allocation(net: DevNet) -> None:
    state = genesis_state(net.genesis)
    check_invariants(state)
    g = net.genesis
    assert state.globals.supply == sum(a.balance for a in g.accounts) + sum(
        o.stake for o in g.operators
    )
    assert state.height == 0
    assert state.tip_hash == g.hash()
    unsorted = dataclasses.replace(g, accounts=tuple(reversed(g.accounts)))
    with pytest.raises(GenesisError, match="sorted"):
        genesis_state(unsorted)
