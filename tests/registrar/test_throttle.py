"""Auth-failure throttling per source address, with explicit time."""

from __future__ import annotations

from dialtone.registrar.throttle import AuthThrottle


def test_blocks_after_the_limit_within_the_window_only_that_source() -> None:
    throttle = AuthThrottle(limit=3, window=10, block=30)
    for t in range(3):
        assert not throttle.failure("10.0.0.1", now=t)
    assert throttle.failure("10.0.0.1", now=3)
    assert throttle.blocked("10.0.0.1", now=4)
    assert not throttle.blocked("10.0.0.2", now=4)
    assert throttle.blocked("10.0.0.1", now=32.9)
    assert not throttle.blocked("10.0.0.1", now=33)


def test_failures_outside_the_window_do_not_count() -> None:
    throttle = AuthThrottle(limit=2, window=10, block=30)
    assert not throttle.failure("h", 0)
    assert not throttle.failure("h", 5)
    assert not throttle.failure("h", 11)  # the one at 0 left the window
    assert throttle.failure("h", 12)


def test_memory_is_bounded() -> None:
    throttle = AuthThrottle(limit=100, window=10, block=30, max_sources=100)
    for i in range(1000):
        throttle.failure(f"h{i}", now=0)
    assert len(throttle._failures) <= 100
