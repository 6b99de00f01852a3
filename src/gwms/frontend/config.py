"""The frontend's configuration: one YAML file, validated with pydantic, defaults in one place.

A minimal file::

    frontend_name: vofrontend
    wms_collectors:
      - url: https://wms.example.org:8618
        factory_identity: factory@wms.example.org     # who factory ads must come from
        my_identity: vofrontend@wms.example.org       # who the collector says I am
    user_pool:
      collectors: [https://pool.example.org:9618]
      schedds: []                                     # empty: every schedd the pool lists
    security:
      credentials:
        - name: pool
          type: pool_token                            # glideins get tokens signed with this key
          signing_key_dir: /etc/gwms/pool-keys
          trust_domain: grid
    groups:
      main:
        match:
          match_expr: 'glidein["attrs"]["GLIDEIN_Site"] in job["DESIRED_Sites"].split(",")'
          job: {match_attrs: [DESIRED_Sites]}

Every limit has GlideinWMS's default (``frontend.xml`` of 3.10): per group
``idle_glideins_per_entry`` (max 100, reserve 5), ``idle_vms_per_entry`` (max 100,
curb 5), ``running_glideins_per_entry`` (max 10000, min 0, relative_to_queue 1.15),
``running_glideins_total`` (max 100000, curb 90000), ``idle_vms_total`` (max 1000, curb
200), ``ramp_up_attenuation`` 3, ``partitionable_glidein.min_memory`` 2500,
``idle_glideins_lifetime.max`` 0 (none), ``glideins_removal`` (type NO, wait 0, margin 0,
requests_tracking false); per frontend ``running_glideins_total``/``idle_vms_total``
and their ``_global`` twins with the same defaults.

Expressions are checked when the file loads: ``match_expr`` with
:mod:`gwms.frontend.matchexpr` (a whitelist of Python), ``start_expr`` and the
``query_expr`` of factory and job as ClassAd expressions; errors name the key path and
the line and column inside the expression.

The frontend-level ``match``, ``attrs``, credentials, WMS collectors and schedds apply
to every group, and a group's add to them, as in GlideinWMS: match and query
expressions are ANDed, match_attrs joined. The methods of :class:`FrontendConfig` give
each group's effective view: :meth:`~FrontendConfig.match_policy`,
:meth:`~FrontendConfig.request_limits`, :meth:`~FrontendConfig.removal_policy`,
:meth:`~FrontendConfig.job_query`, :meth:`~FrontendConfig.factory_query`,
:meth:`~FrontendConfig.wms_collectors_of`, :meth:`~FrontendConfig.schedds_of`,
:meth:`~FrontendConfig.credentials_of`, :meth:`~FrontendConfig.attrs_of`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gwms.classads import ClassAdSyntaxError, parse_expr
from gwms.config import GwmsModel, load_config, register_config_kind
from gwms.frontend.matchexpr import MatchExprError, compile_match_expr, compile_safe_expr
from gwms.frontend.matching import MatchPolicy
from gwms.frontend.removal import RemovalLevel, RemovalPolicy
from gwms.frontend.requests import LevelLimit, RequestLimits

__all__ = [
    "DEFAULT_JOB_QUERY",
    "AttrConfig",
    "CredentialConfig",
    "FrontendConfig",
    "FrontendLimits",
    "GroupConfig",
    "GroupLimits",
    "MatchConfig",
    "UserPoolConfig",
    "WmsCollectorConfig",
    "load_frontend_config",
]

#: The job query of the frontend level unless configured: vanilla jobs, no monitors.
DEFAULT_JOB_QUERY = "(JobUniverse==5)&&(GLIDEIN_Is_Monitor =!= TRUE)&&(JOB_Is_Monitor =!= TRUE)"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Attributes the frontend sets itself; the configuration may not.
RESERVED_ATTRS = frozenset({"GLIDEIN_Collector", "GLIDEIN_CCB"})


def _check_classad(text: str) -> str:
    try:
        parse_expr(text)
    except ClassAdSyntaxError as exc:
        raise ValueError(
            f"not a valid ClassAd expression: line {exc.line}, column {exc.column}: {exc.reason}"
        ) from None
    return text


def _check_url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"expected an http(s) URL, found {text!r}")
    return text.rstrip("/")


# ------------------------------------------------------------------------------ match


class MatchSide(GwmsModel):
    """The query (a ClassAd constraint) and the attributes fetched, for factories or jobs."""

    query_expr: str = Field("True", description="ClassAd constraint on the ads queried")
    match_attrs: list[str] = Field(default_factory=list, description="attributes the match reads")

    @field_validator("query_expr")
    @classmethod
    def _query(cls, value: str) -> str:
        return _check_classad(value)


class MatchConfig(GwmsModel):
    """How a group matches jobs to entries (see :mod:`gwms.frontend.matching`)."""

    match_expr: str = Field("True", description="Python expression over job, glidein, attr_dict")
    start_expr: str = Field("True", description="ClassAd START added to the glideins")
    factory: MatchSide = Field(default_factory=MatchSide)
    job: MatchSide = Field(default_factory=MatchSide)

    @field_validator("match_expr")
    @classmethod
    def _match(cls, value: str) -> str:
        try:
            compile_match_expr(value)
        except MatchExprError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("start_expr")
    @classmethod
    def _start(cls, value: str) -> str:
        return _check_classad(value)


class FrontendJobSide(MatchSide):
    """The frontend-level job query: vanilla jobs that are not monitors, unless set."""

    query_expr: str = Field(DEFAULT_JOB_QUERY, description="ClassAd constraint on the jobs")


class FrontendMatchConfig(MatchConfig):
    """The frontend-level match; its job query defaults to :data:`DEFAULT_JOB_QUERY`."""

    job: FrontendJobSide = Field(default_factory=FrontendJobSide)


# ------------------------------------------------------------------------------ limits


class IdleGlideinsPerEntry(GwmsModel):
    """How hard to push an entry: at most ``max`` idle glideins asked, ``reserve`` extra."""

    max: int = Field(100, ge=0)
    reserve: int = Field(5, ge=0)


class IdleVmsPerEntry(GwmsModel):
    """Idle slots at an entry: stop asking at ``max``, halve the request from ``curb``."""

    max: int = Field(100, ge=0)
    curb: int = Field(5, ge=0)


class RunningGlideinsPerEntry(GwmsModel):
    """Glideins at an entry: at most ``max``; ``min`` kept even with a small queue;
    ``relative_to_queue`` the max-run factor over the demand."""

    max: int = Field(10000, ge=0)
    min: int = Field(0, ge=0)
    relative_to_queue: float = Field(1.15, gt=0)


class RunningGlideinsTotal(GwmsModel):
    """All glideins of a level: stop asking at ``max``, halve requests from ``curb``."""

    max: int = Field(100000, ge=0)
    curb: int = Field(90000, ge=0)


class IdleVmsTotal(GwmsModel):
    """Idle slots of a level: stop asking at ``max``, halve requests from ``curb``."""

    max: int = Field(1000, ge=0)
    curb: int = Field(200, ge=0)


class PartitionableGlidein(GwmsModel):
    """A partitionable slot counts as idle only with more free memory (MB) than this."""

    min_memory: int = Field(2500, ge=0)


class IdleGlideinsLifetime(GwmsModel):
    """Seconds a glidein may wait in the site queue before the factory removes it (0: no limit)."""

    max: int = Field(0, ge=0)


class GlideinsRemoval(GwmsModel):
    """Configured removal of glideins (see :mod:`gwms.frontend.removal`)."""

    type: Literal["NO", "WAIT", "IDLE", "ALL", "DISABLE"] = "NO"
    wait: int = Field(0, ge=0, description="cycles without idle jobs before removing")
    margin: int = Field(0, ge=0, description="glideins kept above the request")
    requests_tracking: bool = Field(False, description="remove as soon as requests drop")

    @field_validator("type", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value


class GroupLimits(GwmsModel):
    """A group's limits (the ``<config>`` of a GlideinWMS group)."""

    idle_glideins_per_entry: IdleGlideinsPerEntry = Field(default_factory=IdleGlideinsPerEntry)
    idle_vms_per_entry: IdleVmsPerEntry = Field(default_factory=IdleVmsPerEntry)
    running_glideins_per_entry: RunningGlideinsPerEntry = Field(default_factory=RunningGlideinsPerEntry)
    running_glideins_total: RunningGlideinsTotal = Field(default_factory=RunningGlideinsTotal)
    idle_vms_total: IdleVmsTotal = Field(default_factory=IdleVmsTotal)
    ramp_up_attenuation: float = Field(3.0, gt=0)
    partitionable_glidein: PartitionableGlidein = Field(default_factory=PartitionableGlidein)
    idle_glideins_lifetime: IdleGlideinsLifetime = Field(default_factory=IdleGlideinsLifetime)
    glideins_removal: GlideinsRemoval = Field(default_factory=GlideinsRemoval)
    ignore_down_entries: bool = Field(False, description="entries in downtime do not count in the proportions")


class FrontendLimits(GwmsModel):
    """Limits over every group of this frontend, and over the whole pool (``_global``)."""

    running_glideins_total: RunningGlideinsTotal = Field(default_factory=RunningGlideinsTotal)
    idle_vms_total: IdleVmsTotal = Field(default_factory=IdleVmsTotal)
    running_glideins_total_global: RunningGlideinsTotal = Field(default_factory=RunningGlideinsTotal)
    idle_vms_total_global: IdleVmsTotal = Field(default_factory=IdleVmsTotal)


# ------------------------------------------------------------------------------ attrs


class AttrConfig(GwmsModel):
    """An attribute passed to glideins.

    ``parameter``: sent to the factory with the request (``GlideinParam``);
    ``glidein_publish``: published in the glidein's slot ads; ``job_publish``: in the
    jobs' environment. ``type: expr`` values are Python expressions over ``frontend``
    (the constant attributes) and ``glidein`` (the entry), checked like match_expr.
    """

    value: str | int | float | bool
    type: Literal["string", "int", "expr"] = "string"
    parameter: bool = True
    glidein_publish: bool = False
    job_publish: bool = False

    @model_validator(mode="after")
    def _typed(self) -> AttrConfig:
        if self.type == "int":
            try:
                int(str(self.value))
            except ValueError:
                raise ValueError(f"type int needs an integer value, found {self.value!r}") from None
        elif self.type == "expr":
            try:
                compile_safe_expr(str(self.value), ("frontend", "glidein"), "expr")
            except MatchExprError as exc:
                raise ValueError(str(exc)) from None
        return self

    def typed_value(self) -> str | int:
        """The value as the glidein sees it (int for ``int``, text otherwise)."""
        if self.type == "int":
            return int(str(self.value))
        if isinstance(self.value, bool):
            return "True" if self.value else "False"
        return str(self.value)


def _check_attrs(value: dict[str, AttrConfig]) -> dict[str, AttrConfig]:
    for name in value:
        if not _ATTR_NAME.match(name):
            raise ValueError(f"attribute name {name!r} is not a plain name (letters, digits, _)")
        if name in RESERVED_ATTRS:
            raise ValueError(f"attribute {name} is set by the frontend and cannot be configured")
    return value


# ------------------------------------------------------------------------------ services


class WmsCollectorConfig(GwmsModel):
    """A WMS collector where factories advertise entries and this frontend its requests."""

    url: str
    factory_identity: str = Field(description="AuthenticatedIdentity factory ads must have")
    my_identity: str = Field(description="the identity the collector stamps on my ads")
    token_file: Path | None = Field(None, description="bearer token for this collector")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class UserPoolConfig(GwmsModel):
    """The user pool: its collectors (slots, schedd ads) and the schedds to watch."""

    collectors: list[str] = Field(min_length=1)
    schedds: list[str] = Field(default_factory=list, description="schedd names; empty: all of them")
    token_file: Path | None = Field(None, description="bearer token for the pool")

    @field_validator("collectors")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        return [_check_url(v) for v in value]


CredentialSelection = Literal["all", "first", "round_robin", "per_user"]


class CredentialConfig(GwmsModel):
    """A credential given to glideins of entries in its trust domain.

    ``pool_token``: the frontend mints a short-lived token per entry, signed with the
    pool key in ``signing_key_dir`` (key id ``key_id``), scopes READ, ADVERTISE_STARTD,
    ADVERTISE_MASTER, valid ``token_lifetime`` seconds. ``token_file``: a token read
    from ``path`` each cycle and passed as it is (e.g. a SciToken for the site).
    """

    name: str = Field(pattern=_NAME)
    type: Literal["pool_token", "token_file"] = "pool_token"
    trust_domain: str = "grid"
    security_class: str = Field("frontend", pattern=_NAME)
    signing_key_dir: Path | None = None
    key_id: str = "POOL"
    token_lifetime: int = Field(86400, gt=0, description="seconds")
    path: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> CredentialConfig:
        if self.type == "pool_token" and self.signing_key_dir is None:
            raise ValueError("a pool_token credential needs signing_key_dir")
        if self.type == "token_file" and self.path is None:
            raise ValueError("a token_file credential needs path")
        return self


class SecurityConfig(GwmsModel):
    """The name factories know this frontend by, and the credentials for glideins."""

    security_name: str | None = Field(None, description="default: frontend_name")
    credentials: list[CredentialConfig] = Field(default_factory=list)
    credential_selection: CredentialSelection = "all"


# ------------------------------------------------------------------------------ groups


class GroupConfig(GwmsModel):
    """One group: its match, limits, attributes, and extra credentials and services."""

    enabled: bool = True
    match: MatchConfig = Field(default_factory=MatchConfig)
    limits: GroupLimits = Field(default_factory=GroupLimits)
    attrs: dict[str, AttrConfig] = Field(default_factory=dict)
    credentials: list[CredentialConfig] = Field(default_factory=list)
    credential_selection: CredentialSelection | None = Field(None, description="default: the frontend's")
    wms_collectors: list[WmsCollectorConfig] = Field(default_factory=list)
    schedds: list[str] = Field(default_factory=list)

    @field_validator("attrs")
    @classmethod
    def _attr_names(cls, value: dict[str, AttrConfig]) -> dict[str, AttrConfig]:
        return _check_attrs(value)


class FrontendConfig(GwmsModel):
    """The whole frontend configuration (registered as config kind ``frontend``)."""

    frontend_name: str = Field(pattern=_NAME, description="no dots or spaces")
    loop_delay: float = Field(60, gt=0, description="seconds between cycles")
    work_dir: Path | None = Field(None, description="state directory (default: the data dir)")
    wms_collectors: list[WmsCollectorConfig] = Field(default_factory=list)
    user_pool: UserPoolConfig
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    match: FrontendMatchConfig = Field(default_factory=FrontendMatchConfig)
    limits: FrontendLimits = Field(default_factory=FrontendLimits)
    attrs: dict[str, AttrConfig] = Field(default_factory=dict)
    groups: dict[str, GroupConfig] = Field(min_length=1)

    @field_validator("attrs")
    @classmethod
    def _attr_names(cls, value: dict[str, AttrConfig]) -> dict[str, AttrConfig]:
        return _check_attrs(value)

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: dict[str, GroupConfig]) -> dict[str, GroupConfig]:
        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"group name {name!r} may hold only letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _collectors(self) -> FrontendConfig:
        for name, group in self.groups.items():
            if group.enabled and not (self.wms_collectors or group.wms_collectors):
                raise ValueError(f"group {name!r} has no WMS collector (set wms_collectors)")
        names = [c.name for c in self.security.credentials]
        for group in self.groups.values():
            names += [c.name for c in group.credentials]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"credential names must be unique: {', '.join(duplicates)}")
        return self

    # -- each group's effective view ---------------------------------------------------

    @property
    def security_name(self) -> str:
        """The name this frontend is known by at factories."""
        return self.security.security_name or self.frontend_name

    def group(self, name: str) -> GroupConfig:
        """The group called ``name`` (KeyError if there is none)."""
        return self.groups[name]

    def enabled_groups(self) -> list[str]:
        """Names of the enabled groups, in file order."""
        return [name for name, group in self.groups.items() if group.enabled]

    def attrs_of(self, group: str) -> dict[str, AttrConfig]:
        """Frontend attributes overridden by the group's."""
        return {**self.attrs, **self.group(group).attrs}

    def attr_dict(self, group: str) -> dict[str, Any]:
        """The constant attributes as match_expr sees them (``attr_dict``)."""
        return {k: a.typed_value() for k, a in self.attrs_of(group).items() if a.type != "expr"}

    def match_policy(self, group: str) -> MatchPolicy:
        """The group's :class:`~gwms.frontend.matching.MatchPolicy` (frontend AND group)."""
        g = self.group(group).match
        return MatchPolicy.from_texts(
            [self.match.match_expr, g.match_expr],
            [self.match.start_expr, g.start_expr],
            [*self.match.job.match_attrs, *g.job.match_attrs],
            self.attr_dict(group),
        )

    def start_expr(self, group: str) -> str:
        """The ClassAd START the group's glideins get (frontend AND group)."""
        return _and_classad(self.match.start_expr, self.group(group).match.start_expr)

    def job_query(self, group: str) -> str:
        """The constraint on the jobs the group considers (frontend AND group)."""
        return _and_classad(self.match.job.query_expr, self.group(group).match.job.query_expr)

    def factory_query(self, group: str) -> str:
        """The constraint on the factory entries the group considers (frontend AND group)."""
        return _and_classad(self.match.factory.query_expr, self.group(group).match.factory.query_expr)

    def factory_match_attrs(self, group: str) -> list[str]:
        """Entry attributes the group reads (frontend's then group's, no repeats)."""
        return _union(self.match.factory.match_attrs, self.group(group).match.factory.match_attrs)

    def job_match_attrs(self, group: str) -> list[str]:
        """Job attributes the group reads (frontend's then group's, no repeats)."""
        return _union(self.match.job.match_attrs, self.group(group).match.job.match_attrs)

    def wms_collectors_of(self, group: str) -> list[WmsCollectorConfig]:
        """WMS collectors of the frontend, then of the group (no repeated URL)."""
        seen: set[str] = set()
        out: list[WmsCollectorConfig] = []
        for collector in [*self.wms_collectors, *self.group(group).wms_collectors]:
            if collector.url not in seen:
                seen.add(collector.url)
                out.append(collector)
        return out

    def schedds_of(self, group: str) -> list[str]:
        """Schedd names to watch (empty: every schedd the user pool lists)."""
        return _union(self.user_pool.schedds, self.group(group).schedds)

    def credentials_of(self, group: str) -> list[CredentialConfig]:
        """The frontend's credentials and the group's."""
        return [*self.security.credentials, *self.group(group).credentials]

    def credential_selection_of(self, group: str) -> str:
        """How the group splits its requests over credentials."""
        return self.group(group).credential_selection or self.security.credential_selection

    def request_limits(self, group: str) -> RequestLimits:
        """The :class:`~gwms.frontend.requests.RequestLimits` of a group."""
        g = self.group(group).limits
        f = self.limits
        return RequestLimits(
            entry_max_glideins=g.running_glideins_per_entry.max,
            entry_min_running=g.running_glideins_per_entry.min,
            relative_to_queue=g.running_glideins_per_entry.relative_to_queue,
            entry_max_idle_slots=g.idle_vms_per_entry.max,
            entry_curb_idle_slots=g.idle_vms_per_entry.curb,
            max_idle_request=g.idle_glideins_per_entry.max,
            reserve_idle=g.idle_glideins_per_entry.reserve,
            ramp_up_attenuation=g.ramp_up_attenuation,
            group_total=LevelLimit(g.running_glideins_total.max, g.running_glideins_total.curb),
            group_idle=LevelLimit(g.idle_vms_total.max, g.idle_vms_total.curb),
            frontend_total=LevelLimit(f.running_glideins_total.max, f.running_glideins_total.curb),
            frontend_idle=LevelLimit(f.idle_vms_total.max, f.idle_vms_total.curb),
            global_total=LevelLimit(f.running_glideins_total_global.max, f.running_glideins_total_global.curb),
            global_idle=LevelLimit(f.idle_vms_total_global.max, f.idle_vms_total_global.curb),
        )

    def removal_policy(self, group: str) -> RemovalPolicy:
        """The :class:`~gwms.frontend.removal.RemovalPolicy` of a group."""
        r = self.group(group).limits.glideins_removal
        disabled = r.type == "DISABLE"
        return RemovalPolicy(
            configured=RemovalLevel.NO if disabled else RemovalLevel.parse(r.type),
            disabled=disabled,
            wait_cycles=r.wait,
            margin=r.margin,
            requests_tracking=r.requests_tracking,
        )


def _and_classad(*parts: str) -> str:
    useful = [p for p in parts if p.strip().lower() != "true"]
    if not useful:
        return "True"
    if len(useful) == 1:
        return useful[0]
    return " && ".join(f"({p})" for p in useful)


def _union(*lists: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for items in lists:
        for item in items:
            if item.lower() not in seen:
                seen.add(item.lower())
                out.append(item)
    return out


def load_frontend_config(path: str | os.PathLike[str]) -> FrontendConfig:
    """Load and validate a frontend configuration file.

    Raises:
        gwms.config.ConfigError: missing file, bad YAML, or invalid settings (each
        named by key path and line).
    """
    return load_config(path, FrontendConfig)


register_config_kind("frontend", "gwms.frontend.config:FrontendConfig")
