"""When and how long a service client waits before trying a request again (pure functions).

Delays use "full jitter": before retry ``i`` (0-based) the client sleeps a uniformly
random time in ``[0, min(cap, backoff * 2**i)]``, so many clients that failed together
do not come back together.
"""

from __future__ import annotations

import random

#: Methods whose repetition has the same effect as one call (RFC 9110, section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Statuses that say "not now" rather than "no": worth another try.
RETRY_STATUSES = frozenset({502, 503, 504})

DEFAULT_MAX_DELAY = 5.0


def retry_delays(
    retries: int,
    backoff: float,
    rng: random.Random | None = None,
    *,
    cap: float = DEFAULT_MAX_DELAY,
) -> list[float]:
    """The sleeps before each of ``retries`` retries: full jitter on exponential backoff.

    Delay ``i`` is uniform in ``[0, min(cap, backoff * 2**i)]``; every delay is
    non-negative and at most ``cap``, and there are exactly ``max(retries, 0)`` of them.
    """
    if backoff < 0 or cap < 0:
        raise ValueError("backoff and cap must not be negative")
    rng = rng if rng is not None else random.Random()
    delays = []
    for attempt in range(max(retries, 0)):
        ceiling = min(cap, backoff * 2.0 ** min(attempt, 64))
        delays.append(min(ceiling, max(0.0, rng.uniform(0.0, ceiling))))
    return delays


def may_retry(method: str, *, retry_unsafe: bool = False) -> bool:
    """True if a request with ``method`` may be sent again after a failure."""
    return retry_unsafe or method.upper() in IDEMPOTENT_METHODS
