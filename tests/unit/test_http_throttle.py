"""The login failure throttle: a key is held back after its limit, and a spray of keys
leaves nothing behind once it ages."""

from __future__ import annotations

import time

from bridge.http.throttle import SWEEP_AT, FailureThrottle


def test_a_key_is_held_back_after_its_limit_until_failures_age() -> None:
    throttle = FailureThrottle(limit=3, window=0.2)
    for _ in range(2):
        throttle.fail("alice\0192.0.2.1")
    assert throttle.retry_after("alice\0192.0.2.1") == 0
    throttle.fail("alice\0192.0.2.1")
    assert 0 < throttle.retry_after("alice\0192.0.2.1") <= 0.2
    assert throttle.retry_after("alice\0192.0.2.2") == 0  # another key: untouched
    time.sleep(0.25)
    assert throttle.retry_after("alice\0192.0.2.1") == 0
    throttle.fail("bob")
    throttle.succeed("bob")
    assert len(throttle) == 0


def test_a_spray_of_keys_is_swept_once_it_ages() -> None:
    throttle = FailureThrottle(limit=5, window=0.05)
    for number in range(SWEEP_AT - 1):
        throttle.fail(f"user{number}\0198.51.100.1")
    assert len(throttle) == SWEEP_AT - 1
    time.sleep(0.1)
    throttle.fail("last")
    assert len(throttle) == 1
