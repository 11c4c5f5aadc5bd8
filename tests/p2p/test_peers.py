from __future__ import annotations

import random

import pytest

from p2p.config import BackoffConfig, ScoreConfig
from p2p.peers import PeerBook, PeerScores, PeerSource, backoff_delay_s

SCORE = ScoreConfig(ban_threshold=-100, recovery_per_s=2.0, ban_duration_s=60.0, max_peers=16)


def test_backoff_doubles_up_to_the_cap_with_jitter_below() -> None:
    cfg = BackoffConfig(base_s=1.0, cap_s=30.0, jitter=0.5)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (4, 16.0), (5, 30.0), (500, 30.0)]:
        for _ in range(50):
            delay = backoff_delay_s(attempt, cfg, rng)
            assert ceiling * 0.5 <= delay <= ceiling


def test_backoff_without_jitter_is_exact_and_reproducible() -> None:
    cfg = BackoffConfig(base_s=0.5, cap_s=4.0, jitter=0.0)
    assert [backoff_delay_s(a, cfg, random.Random(0)) for a in range(5)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
    ]
    jittered = BackoffConfig(base_s=0.5, cap_s=4.0, jitter=0.5)
    first = [backoff_delay_s(3, jittered, random.Random(7)) for _ in range(3)]
    second = [backoff_delay_s(3, jittered, random.Random(7)) for _ in range(3)]
    assert first == second


def test_score_drops_recovers_and_forgets() -> None:
    scores = PeerScores(SCORE)
    assert scores.score("a", 0.0) == 0.0
    out = scores.penalise("a", 30, now_s=0.0)
    assert out.score == -30
    assert not out.banned_now
    assert scores.score("a", 5.0) == pytest.approx(-20.0)
    assert scores.score("a", 100.0) == 0.0
    assert len(scores) == 0  # neutral peers are not stored


def test_ban_below_threshold_then_expiry_resets() -> None:
    scores = PeerScores(SCORE)
    outcomes = [scores.penalise("a", 40, now_s=0.0) for _ in range(3)]
    assert [o.banned_now for o in outcomes] == [False, False, True]
    assert scores.is_banned("a", 1.0)
    assert scores.banned(1.0) == ["a"]
    # A ban is a fixed sentence: further penalties neither extend nor re-announce it.
    assert not scores.penalise("a", 40, now_s=30.0).banned_now
    assert scores.banned_until_s("a", 30.0) == 60.0
    assert not scores.is_banned("a", 60.0)
    assert scores.score("a", 60.0) == 0.0


def test_negative_penalty_is_misuse() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        PeerScores(SCORE).penalise("a", -1, 0.0)


def test_score_table_is_bounded_and_evicts_the_mildest() -> None:
    scores = PeerScores(SCORE)
    for i in range(16):
        scores.penalise(f"p{i}", 50 + i, now_s=0.0)
    scores.penalise("new", 10, now_s=0.0)
    assert len(scores) == 16
    assert scores.score("p0", 0.0) == 0.0  # the mildest (-50) made room
    assert scores.score("new", 0.0) == -10
    assert all(scores.score(f"p{i}", 0.0) == -(50 + i) for i in range(1, 16))


def test_score_table_full_of_bans_evicts_the_earliest_expiry() -> None:
    scores = PeerScores(SCORE)
    for i in range(16):
        scores.penalise(f"p{i}", 200, now_s=float(i))
    assert len(scores.banned(15.0)) == 16
    scores.penalise("late", 200, now_s=16.0)
    assert not scores.is_banned("p0", 16.0)
    assert scores.is_banned("late", 16.0)
    assert scores.is_banned("p1", 16.0)


def test_book_keeps_bootstrap_and_evicts_less_trusted() -> None:
    book = PeerBook(max_peers=3)
    assert book.add("boot", ("/ip4/127.0.0.1/tcp/1",), PeerSource.BOOTSTRAP)
    assert book.add("c", ("/ip4/127.0.0.1/tcp/2",), PeerSource.CONNECTED)
    assert book.add("x1", ("/ip4/127.0.0.1/tcp/3",), PeerSource.EXCHANGE)
    assert book.add("x2", ("/ip4/127.0.0.1/tcp/4",), PeerSource.EXCHANGE)  # evicts x1
    assert "x1" not in book
    assert "x2" in book
    assert book.add("c2", ("/ip4/127.0.0.1/tcp/5",), PeerSource.CONNECTED)  # evicts x2
    assert "x2" not in book
    assert not book.add("x3", ("/ip4/127.0.0.1/tcp/6",), PeerSource.EXCHANGE)  # nothing weaker
    assert len(book) == 3
    assert "boot" in book
    assert not book.add("noaddr", (), PeerSource.EXCHANGE)


def test_book_backoff_forgets_failing_peers_but_not_bootstrap() -> None:
    book = PeerBook(max_peers=8)
    rng = random.Random(0)
    cfg = BackoffConfig(base_s=1.0, cap_s=8.0, jitter=0.0)
    book.add("boot", ("/ip4/127.0.0.1/tcp/1",), PeerSource.BOOTSTRAP)
    book.add("x", ("/ip4/127.0.0.1/tcp/2",), PeerSource.EXCHANGE)
    assert [e.peer_id for e in book.due(0.0, exclude=set())] == ["boot", "x"]
    for i in range(3):
        book.record_failure("boot", 0.0, cfg, rng, max_failures=3)
        book.record_failure("x", 0.0, cfg, rng, max_failures=3)
        if i < 2:
            assert "x" in book
    assert "x" not in book
    entry = book.get("boot")
    assert entry is not None
    assert entry.failures == 3
    assert entry.next_dial_s == 4.0
    assert book.due(3.9, exclude=set()) == []
    assert [e.peer_id for e in book.due(4.0, exclude=set())] == ["boot"]
    assert book.due(4.0, exclude={"boot"}) == []
    book.record_success("boot")
    assert book.due(0.0, exclude=set())[0].failures == 0
    book.defer("boot", 10.0)
    assert book.due(9.0, exclude=set()) == []


def test_book_refreshes_addresses_from_a_trusted_source() -> None:
    book = PeerBook(max_peers=8)
    book.add("p", ("/ip4/127.0.0.1/tcp/1",), PeerSource.CONNECTED)
    book.add("p", ("/ip4/10.0.0.1/tcp/1",), PeerSource.EXCHANGE)  # hearsay does not overwrite
    assert book.get("p").addrs == ("/ip4/127.0.0.1/tcp/1",)  # type: ignore[union-attr]
    book.add("p", ("/ip4/127.0.0.1/tcp/9",) * 9, PeerSource.CONNECTED)
    assert book.get("p").addrs == ("/ip4/127.0.0.1/tcp/9",)  # type: ignore[union-attr]
