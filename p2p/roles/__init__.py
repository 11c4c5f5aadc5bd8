"""The roles a `PeerCore` composes: chain follower, validator, operator (committee member,
executor, verifier) and poster. Each is pure; `p2p.core` wires them."""
