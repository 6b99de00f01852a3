"""Where the web UI reads its numbers: the services' URLs, a token, and their clients.

:class:`WebSources` names the services (explicit URLs, or those of a ``gwms up`` data
directory via :func:`sources_from_data`); schedds and the negotiator not named are
found through the user collector's ``Scheduler`` and ``Negotiator`` ads.
:class:`ServiceReader` fetches the JSON documents the pages are made of, with the
services' own clients (:class:`~gwms.net.SyncServiceClient`,
:class:`~gwms.pool.collector.client.CollectorClient`,
:class:`~gwms.pool.schedd.client.ScheddClient`), one short-lived client per call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gwms.errors import GwmsError
from gwms.net import SyncServiceClient

__all__ = ["ServiceReader", "SourcesError", "WebSources", "sources_from_data"]


class SourcesError(GwmsError):
    """The web UI was not told where the services are."""


@dataclass(frozen=True)
class WebSources:
    """The services the web UI reads (URLs) and how it proves who it is."""

    collector: str | None = None
    wms: str | None = None
    schedds: tuple[str, ...] = ()
    negotiator: str | None = None
    factories: tuple[str, ...] = ()
    frontends: tuple[str, ...] = ()
    token: str | None = None
    verify: bool | str = True
    timeout: float = 10.0
    #: the log monitor's data directory, mounted at /logs (None: not mounted)
    monitor_data: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def merged(self, other: WebSources) -> WebSources:
        """These sources with every field ``other`` sets taking precedence."""
        changes: dict[str, Any] = {}
        for name in ("collector", "wms", "negotiator", "token", "monitor_data"):
            value = getattr(other, name)
            if value:
                changes[name] = value
        for name in ("schedds", "factories", "frontends"):
            value = getattr(other, name)
            if value:
                changes[name] = tuple(value)
        if other.verify is not True:
            changes["verify"] = other.verify
        return replace(self, **changes)


def sources_from_data(data: Path) -> WebSources:
    """The sources of the ``gwms up`` on ``data``: URLs from ``DIR/up.json`` (none while
    ``gwms up`` is still starting: then they must be given explicitly), the
    administrator token from ``DIR/tokens/admin.token``, the pool's CA, and the monitor's
    data in ``DIR/monitor``."""
    from gwms.embedded.up import read_urls
    from gwms.security.layout import SecurityLayout

    layout = SecurityLayout(data)
    if not layout.admin_token_path.exists():
        raise SourcesError(f"no `gwms up` data in {data} (no {layout.admin_token_path})",
                           hint=f"start it with `gwms up --data {data}`, or give the URLs and --token-file")
    try:
        token = layout.admin_token()
    except (OSError, GwmsError) as exc:
        raise SourcesError(f"cannot read the administrator token of {data}: {exc}") from None
    urls = read_urls(data)
    ca = layout.ca_cert_path
    return WebSources(
        collector=urls.get("collector"),
        wms=urls.get("wms"),
        schedds=(urls["schedd"],) if urls.get("schedd") else (),
        negotiator=urls.get("negotiator"),
        factories=(urls["factory"],) if urls.get("factory") else (),
        frontends=(urls["frontend"],) if urls.get("frontend") else (),
        token=token,
        verify=str(ca) if ca.exists() else True,
        monitor_data=data / "monitor",
    )


class ServiceReader:
    """Reads the services' JSON documents for the pages (blocking calls)."""

    def __init__(self, sources: WebSources) -> None:
        self.sources = sources

    @contextmanager
    def client(self, url: str, service: str) -> Iterator[SyncServiceClient]:
        """A client of one service (closed after use)."""
        s = self.sources
        with SyncServiceClient(url, token=s.token, verify=s.verify, timeout=s.timeout, retries=1,
                               service=service) as c:
            yield c

    def get(self, url: str, path: str, service: str, params: dict[str, Any] | None = None) -> Any:
        """``GET path`` of the service at ``url``."""
        with self.client(url, service) as c:
            return c.get(path, params=params)

    def collector_ads(self, my_type: str, constraint: str | None = None,
                      projection: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Ads of the user collector."""
        from gwms.pool.collector.client import CollectorClient

        s = self.sources
        if not s.collector:
            return []
        with CollectorClient(s.collector, token=s.token, verify=s.verify, timeout=s.timeout,
                             retries=1) as c:
            return c.query(my_type, constraint=constraint, projection=projection)

    def schedd_urls(self) -> list[str]:
        """The schedds: those named, else those advertised to the user collector."""
        if self.sources.schedds:
            return list(self.sources.schedds)
        ads = self.collector_ads("Scheduler", projection=["Name", "ScheddIpAddr"])
        return sorted({a["ScheddIpAddr"] for a in ads if isinstance(a.get("ScheddIpAddr"), str)})

    def negotiator_url(self) -> str | None:
        """The negotiator: the one named, else the one advertised to the user collector."""
        if self.sources.negotiator:
            return self.sources.negotiator
        ads = self.collector_ads("Negotiator", projection=["Name", "NegotiatorIpAddr"])
        urls = sorted(a["NegotiatorIpAddr"] for a in ads if isinstance(a.get("NegotiatorIpAddr"), str))
        return urls[0] if urls else None

    def schedd(self, url: str) -> Any:
        """A :class:`~gwms.pool.schedd.client.ScheddClient` of one schedd."""
        from gwms.pool.schedd.client import ScheddClient

        s = self.sources
        return ScheddClient(url, token=s.token, verify=s.verify, timeout=s.timeout)
