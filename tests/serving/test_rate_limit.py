"""The per-client token buckets on a clock the test moves, and the rate setting as a deployment writes it."""

import pytest

from kitchenware.serving.rate_limit import RateLimit, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_reads_like_its_documentation():
    assert RateLimit.parse("10/s,burst=20") == RateLimit(10.0, 20)
    assert RateLimit.parse("600/min") == RateLimit(10.0, 600)
    assert RateLimit.parse(" 5000 / h , burst = 50 ") == RateLimit(5000 / 3600, 50)
    assert RateLimit.parse("") is None
    assert [str(RateLimit.parse(text)) for text in ("10/s,burst=20", "20/min,burst=2", "3/h")] == [
        "10 a second, in bursts of 20",
        "20 a minute, in bursts of 2",
        "3 an hour, in bursts of 3",
    ]
    for wrong in ("10 a second", "10/fortnight", "0/s", "10/s,burst=0"):
        with pytest.raises(ValueError, match=f"KITCHENWARE_RATE_LIMIT='{wrong}' is not a rate: write e.g."):
            RateLimit.parse(wrong)


def test_a_burst_then_one_token_per_interval_for_each_client():
    clock = Clock()
    buckets = TokenBuckets(RateLimit(2.0, 3), clock=clock)
    assert [buckets.take("a") for _ in range(5)] == [0, 0, 0, 0.5, 0.5]  # refused: the wait until the next token
    assert buckets.take("b") == 0  # a bucket of its own
    clock.now = 0.5
    assert [buckets.take("a") for _ in range(2)] == [0, 0.5]
    clock.now = 10  # idle: a full bucket again, and no more
    assert [buckets.take("a") for _ in range(4)] == [0, 0, 0, 0.5]


def test_the_table_keeps_the_clients_seen_last_and_drops_the_idle():
    clock = Clock()
    buckets = TokenBuckets(RateLimit(1.0, 2), max_clients=3, clock=clock)
    for client in "abcd":
        buckets.take(client)
    assert list(buckets.buckets) == ["b", "c", "d"]  # "a" seen least recently
    clock.now = 1.5
    buckets.take("c")
    clock.now = 2.5  # b and d idle for 2.5 s: full again (2 tokens at 1 a second), dropped
    buckets.take("e")
    assert list(buckets.buckets) == ["c", "e"]
