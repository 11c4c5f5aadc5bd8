"""The hash-chained ledger: canonical encoding and hash domains, blocks and transactions, the
state machine (a pure fold), the SQLite store, record proofs and sync payloads. See README.md."""
