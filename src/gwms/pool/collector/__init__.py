"""The collector: the pool's ad store and message board.

- :mod:`.store`: the pure in-memory soft-state ad store (:class:`AdStore`).
- :mod:`.policy`: which token scopes may advertise which ad types.
- :mod:`.service`: the HTTP service (:func:`create_collector_app`).
- :mod:`.client`: :class:`CollectorClient` / :class:`AsyncCollectorClient` for other services.

Soft state: ads live in memory only and expire unless refreshed; a restarted collector
starts empty and is refilled as services re-advertise.
"""

from gwms.pool.collector.store import DEFAULT_LIFETIME, AdStore, AdvertiseReport, InvalidateReport

__all__ = ["DEFAULT_LIFETIME", "AdStore", "AdvertiseReport", "InvalidateReport"]
