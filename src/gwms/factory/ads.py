"""The ads a factory advertises to the WMS collector (JSON ClassAd form).

- ``glidefactory`` per entry, Name ``entry@instance@factory``: the entry's published
  attributes (GLIDEIN_Site, GLIDEIN_CPUS, ...), ``GLIDEIN_In_Downtime``, its
  ``GlideinParam*`` defaults, ``GlideinConfig*`` limits, ``GlideinMonitorTotal*`` counts,
  the public key id, and whether and why it is paused;
- ``glidefactoryglobal``, Name ``instance@factory``: the public key (PEM) and its id;
- ``glidefactoryclient`` per entry x client: what the factory sees of that client's
  glideins (idle, running, held, requested) and which limits held its request back.

All carry ``FactoryName`` and ``GlideinName``, so :func:`own_ads_constraint` selects
them for invalidation on shutdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gwms
from gwms.factory import attributes as A
from gwms.factory.config import EntryConfig, FactoryConfig
from gwms.factory.limits import Counts
from gwms.factory.requests import ValidRequest

__all__ = [
    "EntryStatus",
    "client_ad",
    "client_ad_name",
    "entry_ad",
    "global_ad",
    "global_ad_name",
    "own_ads_constraint",
]


@dataclass(frozen=True)
class EntryStatus:
    """What an entry's ad says about its state."""

    paused: bool = False
    reason: str = ""
    paused_until: float | None = None
    in_downtime: bool = False
    requested_idle: int = 0
    requested_max: int = 0
    clients: int = 0


def _monitor(prefix: str, counts: Counts) -> dict[str, Any]:
    return {
        prefix + A.MON_IDLE: counts.idle,
        prefix + A.MON_UNSUBMITTED: counts.unsubmitted,
        prefix + A.MON_PENDING: counts.pending,
        prefix + A.MON_STAGING: counts.staging,
        prefix + A.MON_RUNNING: counts.running,
        prefix + A.MON_HELD: counts.held,
        prefix + A.MON_TOTAL: counts.total,
    }


def _common(config: FactoryConfig) -> dict[str, Any]:
    return {
        A.FACTORY_NAME: config.name,
        A.GLIDEIN_NAME: config.instance,
        A.GLIDEIN_WMS_VERSION: f"gwms {gwms.__version__}",
        A.CLASSAD_LIFETIME: int(config.ad_lifetime),
    }


def entry_ad(
    config: FactoryConfig,
    entry: EntryConfig,
    *,
    key_id: str,
    counts: Counts,
    status: EntryStatus,
    factory_url: str | None = None,
) -> dict[str, Any]:
    """The ``glidefactory`` ad of one entry."""
    ad: dict[str, Any] = {A.MY_TYPE: A.TYPE_GLIDEFACTORY, A.NAME: config.entry_ad_name(entry.name)}
    ad.update(_common(config))
    ad[A.ENTRY_NAME] = entry.name
    ad[A.BACKEND] = entry.backend
    for key, value in entry.attrs.items():
        ad[key] = value
    ad[A.IN_DOWNTIME] = bool(status.in_downtime)
    for key, value in entry.params.items():
        ad[f"{A.PARAM_PREFIX}{key}"] = value
    limits = entry.limits
    elim, flim = limits.for_entry(), limits.per_frontend
    ad.update({
        A.CONFIG_ENTRY_MAX_GLIDEINS: elim.glideins,
        A.CONFIG_ENTRY_MAX_IDLE: elim.idle,
        A.CONFIG_ENTRY_MAX_HELD: elim.held,
        A.CONFIG_FRONTEND_MAX_GLIDEINS: flim.glideins // limits.num_factories,
        A.CONFIG_FRONTEND_MAX_IDLE: flim.idle // limits.num_factories,
        A.CONFIG_FRONTEND_MAX_HELD: flim.held // limits.num_factories,
        A.CONFIG_MAX_SUBMITS: entry.cycle.max_submits,
        A.CONFIG_MAX_REMOVALS: entry.cycle.max_removals,
        A.CONFIG_MAX_RELEASES: entry.cycle.max_releases,
    })
    ad.update(_monitor(A.MONITOR_PREFIX + "Total", counts))
    ad[A.MONITOR_PREFIX + "Total" + A.MON_REQ_IDLE] = status.requested_idle
    ad[A.MONITOR_PREFIX + "Total" + A.MON_REQ_MAX] = status.requested_max
    ad[A.MONITOR_PREFIX + A.MON_CLIENTS] = status.clients
    ad[A.PUB_KEY_ID] = key_id
    ad[A.PUB_KEY_TYPE] = A.PUB_KEY_TYPE_VALUE
    ad[A.ENTRY_PAUSED] = bool(status.paused)
    if status.paused:
        ad[A.ENTRY_PAUSED_REASON] = status.reason
        if status.paused_until is not None:
            ad[A.ENTRY_PAUSED_UNTIL] = int(status.paused_until)
    allowed = entry.allow_frontends if entry.allow_frontends is not None else sorted(config.frontends)
    ad[A.ALLOWED_FRONTENDS] = ",".join(allowed)
    if config.stage_url:
        ad[A.GLIDEIN_WEB_URL] = config.stage_url
    if factory_url:
        ad[A.FACTORY_URL] = factory_url
    return ad


def global_ad_name(config: FactoryConfig) -> str:
    """``instance@factory``."""
    return f"{config.instance}@{config.name}"


def global_ad(
    config: FactoryConfig,
    *,
    key_id: str,
    public_pem: str,
    factory_url: str | None = None,
    entries: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``glidefactoryglobal`` ad: the public key frontends encrypt for."""
    ad: dict[str, Any] = {A.MY_TYPE: A.TYPE_GLIDEFACTORY_GLOBAL, A.NAME: global_ad_name(config)}
    ad.update(_common(config))
    ad[A.PUB_KEY_ID] = key_id
    ad[A.PUB_KEY_TYPE] = A.PUB_KEY_TYPE_VALUE
    ad[A.PUB_KEY_VALUE] = public_pem
    ad["GlideinEntries"] = ",".join(entries)
    if factory_url:
        ad[A.FACTORY_URL] = factory_url
    if config.stage_url:
        ad[A.GLIDEIN_WEB_URL] = config.stage_url
    return ad


def client_ad_name(config: FactoryConfig, entry: str, request_name: str) -> str:
    """The Name of the request it describes: a ``glideclient`` Name already names the
    entry (``<credential>_<entry@instance@factory>@<client>``) and the collector keeps it
    unique, so the ``glidefactoryclient`` ad reuses it."""
    del config, entry
    return request_name


def client_ad(
    config: FactoryConfig,
    entry: str,
    request: ValidRequest,
    counts: Counts,
    limited_by: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``glidefactoryclient`` ad of one entry x client."""
    ad: dict[str, Any] = {
        A.MY_TYPE: A.TYPE_GLIDEFACTORY_CLIENT,
        A.NAME: client_ad_name(config, entry, request.name),
    }
    ad.update(_common(config))
    ad[A.ENTRY_NAME] = entry
    ad[A.REQ_GLIDEIN] = config.entry_ad_name(entry)
    ad[A.REQ_CLIENT_NAME] = request.client_name
    ad[A.REQ_CLIENT_REQ_NAME] = request.name
    ad[A.REQ_CREDENTIAL_ID] = request.credential_id
    ad[A.FRONTEND_NAME] = request.frontend
    ad[A.SECURITY_CLASS] = request.security_class
    ad.update(_monitor(A.MONITOR_PREFIX, counts))
    ad[A.MONITOR_PREFIX + A.MON_REQ_IDLE] = request.req_idle
    ad[A.MONITOR_PREFIX + A.MON_REQ_MAX] = request.req_max
    ad[A.MONITOR_PREFIX + A.MON_LIMITED_BY] = ",".join(limited_by)
    if extra:
        ad.update(extra)
    return ad


def own_ads_constraint(config: FactoryConfig) -> str:
    """A constraint selecting this factory instance's ads (names are quote-free)."""
    return f'FactoryName =?= "{config.name}" && GlideinName =?= "{config.instance}"'
