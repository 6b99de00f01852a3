"""Bounded waits for integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError):
    """What :func:`wait_until` raises when the condition did not come true in time."""


def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    """Call ``check`` every ``interval`` s until it gives something true and return that;
    after ``timeout`` s fail with :class:`WaitTimeout` ("timed out waiting for <what>")."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out waiting for {what or check}")
        time.sleep(interval)
