"""The collector service's limits and timings, shared by the service and its clients."""

from __future__ import annotations

#: The most ads one ``POST /v1/ads`` may carry; clients split larger sets.
DEFAULT_MAX_ADS_PER_CALL = 10_000
#: The largest request body, in bytes (10,000 big slot ads fit).
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
#: The longest constraint accepted, in characters.
MAX_CONSTRAINT_LENGTH = 64 * 1024
#: Seconds between two sweeps of expired ads.
DEFAULT_EXPIRY_INTERVAL = 5.0
#: Constraints longer than this are sent by clients in a POST body rather than the URL.
LONG_CONSTRAINT = 1500
