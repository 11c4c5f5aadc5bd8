"""A writer process for the crash test: opens the store, then appends blocks forever, printing
each height once `Store.accept` returned (the block is reported finalised). The test kills it
with SIGKILL at random points.

Run: python -m tests.ledger.crash_writer DB_PATH [MAX_BLOCKS]
"""

from __future__ import annotations

import sys

from ledger.devnet import DevChain, DevNet
from ledger.genesis import ChainParams
from ledger.store import Store
from ledger.tx import PostTask, Transfer

# Short windows: tasks posted here fail (nobody joins) and refund within a few blocks, so blocks
# also delete agenda entries and rewrite tasks, not only balances.
CRASH_PARAMS = ChainParams(
    credential_window_blocks=1,
    task_timeout_blocks=6,
    dispute_window_blocks=2,
    unbonding_blocks=8,
    measurement_timeout_blocks=4,
)


def crash_net() -> DevNet:
    """The devnet both the writer and the test use."""
    return DevNet.create(validators=4, operators=2, users=6, params=CRASH_PARAMS)


def main(path: str, max_blocks: int) -> int:
    net = crash_net()
    store = Store.open(path, net.genesis)
    ch = DevChain(net)
    ch.state, ch.last_commit = store.state, store.tip_commit
    print(f"open {store.height}", flush=True)
    users = net.users
    for _ in range(max_blocks):
        h = store.height + 1
        txs = [
            ch.sign(users[(h + i) % 6], Transfer(users[(h + i + 1) % 6].public, 1 + i))
            for i in range(1 + h % 7)
        ]
        if h % 3 == 0:
            txs.append(ch.sign(users[h % 6], PostTask(b"crash-spec", 5, 2)))
        cb = ch.extend(txs)
        store.append(cb, ch.state)
        print(h, flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000))
