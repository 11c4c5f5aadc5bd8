"""The hash-domain registry is prefix-free, and domain separation changes every digest."""

from __future__ import annotations

import itertools

from ledger.domains import Domain, digest, digest_parts


def test_registry_is_prefix_free() -> None:
    tags = [d.value for d in Domain]
    assert len(set(tags)) == len(tags)
    for a, b in itertools.permutations(tags, 2):
        assert not b.startswith(a), f"{a!r} is a prefix of {b!r}"


def test_tags_are_nul_terminated_names() -> None:
    for d in Domain:
        assert d.value.endswith(b"\x00")
        assert b"\x00" not in d.value[:-1]


def test_domains_separate_digests() -> None:
    digests = {digest(d, b"same payload") for d in Domain}
    assert len(digests) == len(Domain)


def test_parts_are_length_prefixed() -> None:
    assert digest_parts(Domain.TASK_ID, b"ab", b"c") != digest_parts(Domain.TASK_ID, b"a", b"bc")
