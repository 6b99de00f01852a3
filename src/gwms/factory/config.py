"""The factory's configuration (``gwms factory run --config factory.yaml``).

A minimal file::

    name: gfactory                    # the factory's name (ads: entry@instance@name)
    instance: v1                      # the glidein (instance) name
    wms_collector: http://127.0.0.1:9618
    frontends:                        # who may ask for glideins
      vofe:                           # the frontend's security name
        identity: vofrontend@pool.example   # the AuthenticatedIdentity its ads must carry
        security_classes:             # security class -> local user (log directories)
          frontend: fe1
    entries:
      - name: local1
        backend: local
        backend_settings: {slots: 4}
        attrs: {GLIDEIN_Site: LOCAL, GLIDEIN_CPUS: 1, GLIDEIN_Supported_VOs: "osg"}

Defaults are GlideinWMS's (``spec/provisioning.md``): per entry 10000 glideins, 2000 idle,
1000 held; per frontend:security_class 5000 / 100 / 50; per cycle at most 100 submits in
clusters of 10, 5 removals, 20 releases. Relative paths are taken from the config file's
directory; ``data_dir`` (or ``--data``) holds the pilot store, keys, logs and stage area
unless they are given.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator, model_validator

from gwms.config import GwmsModel, register_config_kind

__all__ = [
    "CyclePolicy",
    "Downtime",
    "EntryConfig",
    "EntryLimits",
    "FactoryConfig",
    "FailurePolicy",
    "FrontendConfig",
    "LimitSet",
    "LogServerConfig",
    "PilotResources",
    "RemovalLevel",
    "check_name",
]

#: Names that become parts of ad names and file names: no '@', '/', '..', spaces or controls.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Parameter names (GlideinParam<name>, GlideinEncParam<name>).
PARAM_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")


def check_name(value: str) -> str:
    """``value`` if it is a safe name (letters, digits, ``_.-``, not starting with ``.``
    or ``-``, no ``..``); else ValueError."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a safe name (letters, digits, '_', '.', '-'; "
            "starting with a letter or digit; no '..')"
        )
    return value


def _check_param(value: str) -> str:
    if not PARAM_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a parameter name (letters, digits, '_')")
    return value


SafeName = Annotated[str, AfterValidator(check_name)]
Scalar = str | int | float | bool


class RemovalLevel(str, Enum):
    """How far a frontend lets the factory go removing excess glideins (``ReqRemoveExcess``).

    NO: nothing; WAIT: glideins not yet at the site; IDLE: glideins queued at the site
    too; ALL: running glideins too (only when the request says so).
    """

    NO = "NO"
    WAIT = "WAIT"
    IDLE = "IDLE"
    ALL = "ALL"

    @property
    def rank(self) -> int:
        """0 for NO up to 3 for ALL."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {RemovalLevel.NO: 0, RemovalLevel.WAIT: 1, RemovalLevel.IDLE: 2, RemovalLevel.ALL: 3}


class LimitSet(GwmsModel):
    """The most glideins in the queue (any state), idle, and held."""

    glideins: int = Field(ge=0, description="glideins in any state")
    idle: int = Field(ge=0, description="glideins not running yet")
    held: int = Field(ge=0, description="held glideins")


def _entry_limit_default() -> LimitSet:
    return LimitSet(glideins=10000, idle=2000, held=1000)


def _frontend_limit_default() -> LimitSet:
    return LimitSet(glideins=5000, idle=100, held=50)


class EntryLimits(GwmsModel):
    """Limits of one entry, and of each frontend:security_class at it."""

    entry: LimitSet = Field(default_factory=_entry_limit_default)
    per_frontend: LimitSet = Field(
        default_factory=_frontend_limit_default,
        description="each frontend:security_class not listed under 'frontends'",
    )
    frontends: dict[str, LimitSet] = Field(
        default_factory=dict, description="'frontend:security_class' -> its own limits"
    )
    num_factories: int = Field(
        default=1, ge=1, description="factories sharing this entry: every limit is divided by it"
    )

    @field_validator("frontends")
    @classmethod
    def _keys(cls, value: dict[str, LimitSet]) -> dict[str, LimitSet]:
        for key in value:
            name, sep, sclass = key.partition(":")
            if not sep:
                raise ValueError(f"{key!r}: limits are keyed 'frontend:security_class'")
            check_name(name)
            check_name(sclass)
        return value

    def for_entry(self) -> LimitSet:
        """The entry's limits, divided among ``num_factories``."""
        return _divide(self.entry, self.num_factories)

    def for_frontend(self, frontend: str, security_class: str) -> LimitSet:
        """The limits of one frontend:security_class, divided among ``num_factories``."""
        base = self.frontends.get(f"{frontend}:{security_class}", self.per_frontend)
        return _divide(base, self.num_factories)


def _divide(limits: LimitSet, n: int) -> LimitSet:
    if n <= 1:
        return limits
    return LimitSet(glideins=limits.glideins // n, idle=limits.idle // n, held=limits.held // n)


def _recoverable_default() -> list[str]:
    return [
        r"(?i)temporar",
        r"(?i)timed? ?out",
        r"(?i)connection",
        r"(?i)unavailable",
        r"(?i)held by (user|admin)",
    ]


class CyclePolicy(GwmsModel):
    """What one entry may do per cycle, and when held or stale glideins go."""

    max_submits: int = Field(default=100, ge=0, description="submissions per cycle")
    cluster_size: int = Field(default=10, ge=1, description="pilots per submit call")
    max_removals: int = Field(default=5, ge=0, description="excess removals per cycle")
    max_releases: int = Field(default=20, ge=0, description="releases of held pilots per cycle")
    max_cleanup_removals: int = Field(
        default=20, ge=0, description="removals of stale, too long idle or unrecoverable pilots"
    )
    release_backoff_s: float = Field(default=300.0, ge=0, description="x number of holds")
    max_releases_per_pilot: int = Field(default=10, ge=0, description="then unrecoverable")
    max_holds: int = Field(default=20, ge=1, description="force removal after this many holds")
    recoverable_holds: list[str] = Field(
        default_factory=_recoverable_default,
        description="regular expressions over the hold reason; other holds are unrecoverable",
    )
    stale_idle_s: float = Field(default=7 * 86400.0, gt=0, description="StaleAgeIdle")
    stale_running_s: float = Field(default=31 * 86400.0, gt=0, description="StaleAgeRunning")
    stale_unclaimed_s: float = Field(
        default=2 * 3600.0, gt=0,
        description="StaleAgeUnclaimed: a running glidein whose slots all sat unclaimed this long goes",
    )
    slot_check_s: float = Field(
        default=300.0, gt=0, description="how often the user pool is asked for the glideins' slots",
    )
    unknown_grace_s: float = Field(
        default=600.0, ge=0, description="a pilot the site no longer knows is lost after this"
    )

    @field_validator("recoverable_holds")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value


class FailurePolicy(GwmsModel):
    """When a failing entry is paused, and for how long (doubling up to ``pause_max_s``)."""

    max_submit_failures: int = Field(default=3, ge=1, description="refused submissions in a row")
    max_early_deaths: int = Field(default=3, ge=1, description="pilots dying early in a row")
    early_death_s: float = Field(
        default=120.0, ge=0, description="a pilot that fails within this of starting died early"
    )
    pause_s: float = Field(default=300.0, ge=0, description="first pause")
    pause_max_s: float = Field(default=3600.0, ge=0, description="longest pause")


class Downtime(GwmsModel):
    """A period in which an entry (or one frontend / security class at it) gets no new
    glideins; running ones are kept. ``start``/``end`` default to open."""

    start: datetime | float | None = None
    end: datetime | float | None = None
    frontend: SafeName | None = None
    security_class: SafeName | None = None
    comment: str = ""

    def start_epoch(self) -> float:
        """The start as epoch seconds (-inf when open)."""
        return _epoch(self.start, -math.inf)

    def end_epoch(self) -> float:
        """The end as epoch seconds (+inf when open)."""
        return _epoch(self.end, math.inf)

    def covers(self, now: float, frontend: str | None = None, security_class: str | None = None) -> bool:
        """True if this downtime applies at ``now`` to that frontend / security class
        (a downtime naming none applies to the whole entry)."""
        if not self.start_epoch() <= now < self.end_epoch():
            return False
        if self.frontend is not None and self.frontend != frontend:
            return False
        return self.security_class is None or self.security_class == security_class

    @model_validator(mode="after")
    def _order(self) -> Downtime:
        if self.end_epoch() <= self.start_epoch():
            raise ValueError("a downtime must end after it starts")
        return self


def _epoch(value: datetime | float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


class PilotResources(GwmsModel):
    """What each pilot asks the site for (defaults from GLIDEIN_CPUS / GLIDEIN_MaxMemMBs)."""

    cpus: int | None = Field(default=None, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)
    walltime_s: int = Field(default=86400, ge=0, description="0: no limit")


class EntryConfig(GwmsModel):
    """One entry: a site (queue) the factory submits glideins to."""

    name: SafeName
    enabled: bool = True
    backend: str = "local"
    backend_settings: dict[str, Any] = Field(default_factory=dict)
    attrs: dict[str, Scalar] = Field(
        default_factory=dict, description="published in the entry's ad (GLIDEIN_Site, ...)"
    )
    params: dict[str, Scalar] = Field(
        default_factory=dict, description="GlideinParam defaults a frontend may override"
    )
    limits: EntryLimits = Field(default_factory=EntryLimits)
    cycle: CyclePolicy = Field(default_factory=CyclePolicy)
    failure: FailurePolicy = Field(default_factory=FailurePolicy)
    downtimes: list[Downtime] = Field(default_factory=list)
    allow_frontends: list[SafeName] | None = Field(
        default=None, description="frontends served here (default: every configured one)"
    )
    pilot: PilotResources = Field(default_factory=PilotResources)
    pilot_command: list[str] | None = Field(
        default=None,
        description="run this instead of the stage area's glidein (tests, development)",
    )

    @field_validator("attrs", "params")
    @classmethod
    def _attr_names(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for key in value:
            _check_param(key)
        return value

    @field_validator("pilot_command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("pilot_command needs at least the program")
        return value

    def cpus(self) -> int:
        """CPUs per pilot: ``pilot.cpus``, else GLIDEIN_CPUS, else 1."""
        if self.pilot.cpus:
            return self.pilot.cpus
        return _int_attr(self.attrs.get("GLIDEIN_CPUS"), 1)

    def memory_mb(self) -> int:
        """Memory per pilot: ``pilot.memory_mb``, else GLIDEIN_MaxMemMBs, else 2048."""
        if self.pilot.memory_mb:
            return self.pilot.memory_mb
        return _int_attr(self.attrs.get("GLIDEIN_MaxMemMBs"), 2048)


def _int_attr(value: Scalar | None, default: int) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


class FrontendConfig(GwmsModel):
    """A frontend the factory serves: the identity its ads must carry, and its security
    classes with the local user each maps to."""

    identity: str = Field(min_length=1, description="the AuthenticatedIdentity of its ads")
    security_classes: dict[str, SafeName] = Field(
        min_length=1, description="security class -> local user"
    )

    @field_validator("security_classes")
    @classmethod
    def _class_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            check_name(key)
        return value


class LogServerConfig(GwmsModel):
    """Where glideins push their logs while they run (the log monitor's push endpoint;
    see :mod:`gwms.security.logtoken`)."""

    url: str = Field(
        min_length=1,
        description="the monitor's upload URL, e.g. https://monitor.example:8090/v1/push (the tokens' audience)",
    )
    token_lifetime_s: float | None = Field(
        default=None, gt=0, description="token lifetime (default: the entry's pilot walltime + 2 days)"
    )
    interval_s: float = Field(default=60.0, ge=1, description="seconds between a glidein's pushes")
    ca_file: str | None = Field(
        default=None, description="CA bundle on the worker node that signs the monitor's certificate"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.strip().rstrip("/")


class FactoryConfig(GwmsModel):
    """The whole factory configuration (see the module docstring)."""

    name: SafeName
    instance: SafeName = "v1"
    wms_collector: str = Field(min_length=1, description="URL of the WMS collector")
    token_file: Path | None = Field(
        default=None, description="token for the WMS collector (default: minted from the data dir)"
    )
    data_dir: Path | None = Field(default=None, description="state; overridden by --data")
    key_dir: Path | None = Field(default=None, description="the factory's RSA key pair")
    key_id: str | None = Field(default=None, description="its key id (default name-instance)")
    stage_dir: Path | None = None
    stage_url: str | None = None
    log_dir: Path | None = Field(default=None, description="client/user_*/glidein_*/entry_* logs")
    loop_delay: float = Field(default=60.0, gt=0, description="seconds between entry cycles")
    request_poll_s: float = Field(
        default=1.0, gt=0, description="seconds between looks for changed requests"
    )
    followup_s: float = Field(
        default=1.0, gt=0, description="after a cycle that submitted or removed, the next comes this soon"
    )
    advertise_interval: float = Field(default=60.0, gt=0)
    ad_lifetime: float = Field(default=900.0, gt=0, description="ClassAdLifetime of the ads")
    request_max_age_s: float = Field(
        default=300.0, gt=0, description="act on requests read at most this long ago"
    )
    orphan_grace_s: float = Field(
        default=900.0, ge=0, description="how long a vanished request's glideins are left alone"
    )
    orphan_removal: RemovalLevel = Field(
        default=RemovalLevel.IDLE, description="what goes once that grace is over (never ALL)"
    )
    restart_attempts: int = Field(default=3, ge=0)
    restart_interval: float = Field(default=1800.0, gt=0)
    workers: int = Field(default=4, ge=1, description="entry cycles run at once")
    frontends: dict[str, FrontendConfig] = Field(default_factory=dict)
    entries: list[EntryConfig] = Field(min_length=1)
    log_server: LogServerConfig | None = Field(
        default=None, description="glideins push their logs here while they run (none: no pushes)"
    )

    @field_validator("frontends")
    @classmethod
    def _frontend_names(cls, value: dict[str, FrontendConfig]) -> dict[str, FrontendConfig]:
        for key in value:
            check_name(key)
        return value

    @field_validator("orphan_removal")
    @classmethod
    def _never_all(cls, value: RemovalLevel) -> RemovalLevel:
        if value is RemovalLevel.ALL:
            raise ValueError("ALL would kill running glideins of a vanished request; use IDLE")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> FactoryConfig:
        seen: set[str] = set()
        for entry in self.entries:
            if entry.name in seen:
                raise ValueError(f"entry {entry.name!r} is configured twice")
            seen.add(entry.name)
            for fe in entry.allow_frontends or ():
                if fe not in self.frontends:
                    raise ValueError(
                        f"entry {entry.name!r} allows frontend {fe!r}, which is not configured"
                    )
        if self.key_id is not None:
            from gwms.security.keyfiles import KEY_ID_PATTERN

            if not KEY_ID_PATTERN.fullmatch(self.key_id):
                raise ValueError(f"key_id {self.key_id!r}: letters, digits, '_' and '-' only")
        return self

    # ------------------------------------------------------------------ derived

    def entry(self, name: str) -> EntryConfig | None:
        """The entry called ``name``, or None."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def entry_ad_name(self, entry: str) -> str:
        """``entry@instance@factory``, the Name of the entry's ``glidefactory`` ad."""
        return f"{entry}@{self.instance}@{self.name}"

    def default_key_id(self) -> str:
        """The RSA key's id: ``key_id``, else ``<name>-<instance>`` made key-id safe."""
        if self.key_id:
            return self.key_id
        kid = re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.name}-{self.instance}")[:64]
        return kid if kid[:1].isalnum() else f"f{kid}"[:64]

    def resolved(self, base_dir: Path, data_dir: Path | None = None) -> FactoryConfig:
        """A copy with every path absolute: relative ones from ``base_dir`` (the config
        file's directory), missing ones under the data directory (``data_dir`` argument,
        then the config's ``data_dir``, then ``base_dir/factory-data``)."""

        def absolute(p: Path | None) -> Path | None:
            if p is None:
                return None
            p = p.expanduser()
            return p if p.is_absolute() else (base_dir / p).resolve()

        data = absolute(data_dir) if data_dir is not None else absolute(self.data_dir)
        data = data or (base_dir / "factory-data").resolve()
        fdir = data / "factory"
        return self.model_copy(
            update={
                "data_dir": data,
                "token_file": absolute(self.token_file),
                "key_dir": absolute(self.key_dir) or fdir / "keys",
                "stage_dir": absolute(self.stage_dir) or fdir / "stage",
                "log_dir": absolute(self.log_dir) or fdir / "logs",
            }
        )

    def state_dir(self) -> Path:
        """Where the pilot store and backend state live (``<data_dir>/factory``)."""
        if self.data_dir is None:
            raise ValueError("call resolved() first")
        return self.data_dir / "factory"


register_config_kind("factory", FactoryConfig)
