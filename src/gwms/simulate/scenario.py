"""The scenario file of ``gwms simulate``: sites, workload, and the configs to drive.

A scenario names the frontend and factory configuration files (the same files
``gwms frontend run`` and ``gwms factory run`` accept; relative paths are taken from
the scenario's directory), describes one simulated site per factory entry and the
jobs users submit::

    name: burst
    seed: 1
    duration: 12h                 # simulated time; numbers are seconds, or 90s / 30m / 6h / 1d
    frontend: burst-frontend.yaml
    factory: burst-factory.yaml
    pool: {negotiation_interval: 60, max_jobs_running: 10000}
    site_defaults:                # for entries not listed under sites
      capacity: 200
      queue_delay: {dist: exponential, mean: 300}
    sites:
      site_b: {capacity: 50, failure_rate: 1.0}
    workload:
      - {name: analysis, pattern: burst, start: 10m, count: 2000,
         runtime: {dist: lognormal, median: 1h, sigma: 0.5}, sites: [SITE_A]}

Distributions (:mod:`gwms.simulate.distributions`): a number (fixed), or
``{dist: fixed|uniform|exponential|lognormal|normal, ...}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gwms.config import GwmsModel, load_config, register_config_kind
from gwms.errors import GwmsError
from gwms.simulate.distributions import Distribution, seconds

__all__ = [
    "PoolSpec",
    "Scenario",
    "ScenarioError",
    "SiteSpec",
    "WorkloadSpec",
    "load_scenario",
    "seconds",
]

class ScenarioError(GwmsError):
    """A scenario that cannot be simulated (the message says why)."""


def _seconds_field(value: Any) -> Any:
    return seconds(value) if value is not None else None


class SiteSpec(GwmsModel):
    """One simulated site (batch queue) behind a factory entry.

    Pilots wait ``queue_delay`` after submission, then for a free batch slot (at most
    ``capacity`` pilots run at once). ``submit_refusal_rate``: submissions the site
    refuses; ``failure_rate``: pilots that die as they start (they never run);
    ``black_hole_fraction``: pilots that land on black-hole nodes (they start, join the
    pool, accept jobs and fail each in ``black_hole_job_runtime``). A glidein needs
    ``startup`` (download, validation) before its slots join the pool.
    """

    capacity: int = Field(1000, ge=0, description="pilots running at once")
    queue_delay: Distribution = Field(default_factory=lambda: Distribution(dist="exponential", mean=120.0))
    startup: Distribution = Field(default_factory=lambda: Distribution(dist="uniform", low=20.0, high=60.0))
    submit_refusal_rate: float = Field(0.0, ge=0, le=1)
    failure_rate: float = Field(0.0, ge=0, le=1)
    black_hole_fraction: float = Field(0.0, ge=0, le=1)
    black_hole_job_runtime: float = Field(5.0, ge=0)
    failing_from: float | None = Field(None, description="failure_rate applies from this time (default: always)")
    failing_until: float | None = Field(None, description="... until this time (default: the end)")

    @field_validator("black_hole_job_runtime", "failing_from", "failing_until", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds_field(value)

    def failure_rate_at(self, now: float) -> float:
        """The failure rate in force at ``now``."""
        if self.failing_from is not None and now < self.failing_from:
            return 0.0
        if self.failing_until is not None and now >= self.failing_until:
            return 0.0
        return self.failure_rate


class WorkloadSpec(GwmsModel):
    """Jobs of one kind: ``burst`` (``count`` jobs at ``start``) or ``steady`` (``rate``
    jobs per hour, Poisson arrivals, from ``start`` to ``end``, at most ``count``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    pattern: Literal["burst", "steady"] = "burst"
    start: float = 0.0
    end: float | None = None
    count: int | None = Field(None, ge=0)
    rate: float | None = Field(None, ge=0, description="jobs per hour (steady)")
    runtime: Distribution = Field(default_factory=lambda: Distribution(dist="fixed", value=3600.0))
    cpus: int = Field(1, ge=1)
    memory: int = Field(1000, ge=1, description="MB")
    sites: list[str] = Field(default_factory=list, description="DESIRED_Sites (empty: anywhere)")
    owner: str = Field("user", pattern=r"^[A-Za-z0-9_.-]+$")
    attrs: dict[str, str | int | float | bool] = Field(default_factory=dict, description="more job attributes")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds_field(value)

    @model_validator(mode="after")
    def _complete(self) -> WorkloadSpec:
        if self.pattern == "burst" and self.count is None:
            raise ValueError("a burst needs count")
        if self.pattern == "steady" and self.rate is None:
            raise ValueError("steady arrivals need rate (jobs per hour)")
        return self


class PoolSpec(GwmsModel):
    """The user pool: one schedd (named after the frontend's first watched schedd, or
    ``schedd``) and the negotiator."""

    schedd: str | None = None
    max_jobs_running: int = Field(10000, ge=1, description="the schedd's MaxJobsRunning")
    negotiation_interval: float = Field(60.0, gt=0)

    @field_validator("negotiation_interval", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds_field(value)


class Scenario(GwmsModel):
    """A whole scenario (see the module docstring)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 1
    duration: float = 86400.0
    sample_interval: float = Field(60.0, gt=0)
    frontend: Path
    factory: Path
    frontend_watch_interval: float = Field(
        0.0, ge=0, description="seconds between the frontend's looks at idle counts (0: cycles on loop_delay only)"
    )
    frontend_min_gap: float = Field(1.0, ge=0)
    pool: PoolSpec = Field(default_factory=PoolSpec)
    site_defaults: SiteSpec = Field(default_factory=SiteSpec)
    sites: dict[str, dict[str, Any]] = Field(default_factory=dict, description="entry name -> site settings")
    workload: list[WorkloadSpec] = Field(min_length=1)

    @field_validator("duration", "sample_interval", "frontend_watch_interval", "frontend_min_gap", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _seconds_field(value)

    @model_validator(mode="after")
    def _sites(self) -> Scenario:
        for entry, settings in self.sites.items():
            if not isinstance(settings, dict):
                raise ValueError(f"sites.{entry}: expected a mapping of site settings")  # noqa: TRY004 - a config error
            self.site_for(entry)
        names = [w.name for w in self.workload]
        if len(set(names)) != len(names):
            raise ValueError("workload names must be unique")
        return self

    def site_for(self, entry: str) -> SiteSpec:
        """The site behind ``entry``: ``site_defaults`` overridden by ``sites[entry]``."""
        data = self.site_defaults.model_dump()
        data.update(self.sites.get(entry, {}))
        try:
            return SiteSpec.model_validate(data)
        except ValueError as exc:
            raise ValueError(f"sites.{entry}: {exc}") from None


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Load a scenario file; ``frontend``/``factory`` paths become absolute (relative to
    the scenario's directory).

    Raises:
        gwms.config.ConfigError: the file is missing or invalid.
    """
    p = Path(path)
    scenario = load_config(p, Scenario)
    base = p.resolve().parent

    def absolute(q: Path) -> Path:
        q = q.expanduser()
        return q if q.is_absolute() else (base / q).resolve()

    return scenario.model_copy(update={"frontend": absolute(scenario.frontend), "factory": absolute(scenario.factory)})


register_config_kind("simulate", "gwms.simulate.scenario:Scenario")
