"""The failed-authentication limiter on a manual clock."""

from __future__ import annotations

import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.errors import InvalidArgument
from shipyard.security.ratelimit import FailureLimiter


def test_blocks_after_the_limit_until_the_window_slides() -> None:
    clock = ManualClock()
    limiter = FailureLimiter(max_failures=3, window_s=10, clock=clock)
    for _ in range(2):
        limiter.failed("10.0.0.1")
        clock.advance(seconds=1)
    assert limiter.retry_after_s("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") == pytest.approx(8.0)
    assert limiter.retry_after_s("10.0.0.2") is None  # per address
    clock.advance(seconds=8)
    assert limiter.retry_after_s("10.0.0.1") is None  # the first failure left the window


def test_the_address_table_is_bounded() -> None:
    limiter = FailureLimiter(max_failures=1, window_s=60, max_clients=2, clock=ManualClock())
    for ip in ("a", "b", "c"):
        limiter.failed(ip)
    assert limiter.retry_after_s("a") is None  # forgotten: the oldest
    assert limiter.retry_after_s("b") is not None
    assert limiter.retry_after_s("c") is not None


def test_bad_settings() -> None:
    with pytest.raises(InvalidArgument):
        FailureLimiter(max_failures=0)
