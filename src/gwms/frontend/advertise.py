"""The ads a frontend group advertises, built from its :class:`~gwms.frontend.cycle.GroupPlan`.

To each WMS collector (the factories read them):

- ``glideclient``, one per entry × credential, Name
  ``<credential id>_<entry@instance@factory>@<frontend>.<group>``: the request
  (``ReqIdleGlideins``, ``ReqMaxGlideins``, ``ReqRemoveExcess`` + margin,
  ``ReqIdleLifetime``), the per-cycle session key wrapped for the factory's public key
  (``ReqEncKeyCode``), the sealed identity (``ReqEncIdentity``: the frontend's identity at
  that collector, which the factory compares with the ``AuthenticatedIdentity`` the
  collector stamps), sealed ``GlideinEncParam*`` (``SecurityName``, ``SecurityClass``,
  ``GLIDEIN_Collector``: the user pool's collector, ``GLIDEIN_Token``: the glideins' pool
  token), clear ``GlideinParam*`` (the group's attributes with ``parameter`` or
  ``glidein_publish`` set, ``type: expr`` ones evaluated for the entry, and
  ``GLIDECLIENT_Start``, the group's start_expr), ``ReqGlideinPublish`` (the names of
  those with ``glidein_publish``, which the glideins publish in their slot ads), and
  ``GlideinMonitor*`` (what the
  group saw there). The wire format is the factory's
  (:func:`gwms.factory.requests.build_request_ad`, :mod:`gwms.factory.attributes`), so the
  two sides cannot drift apart.
- ``glideclientglobal``, one per factory, Name ``<instance@factory>@<frontend>.<group>``:
  the same session key, the sealed identity and security name, and the group's
  credential ids.

To the user pool's collector:

- ``glideresource``, one per entry, Name ``<entry@instance@factory>@<frontend>.<group>``:
  the entry's published attributes (GLIDEIN_Site, ...), what the group saw
  (``GlideClientMonitor*``: matching idle jobs, running jobs, glideins) and asked for,
  the removal level and why, and the limits that fired (``GlideClientLimit<name> = true``
  and ``GlideClientLimits``, a comma-separated list).

Every ad carries ``FrontendName`` and ``GroupName`` (:func:`own_ads_constraint` finds
them again to invalidate them) and a ``ClassAdLifetime``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gwms.factory import attributes as FA
from gwms.factory.requests import build_request_ad, sealed_aad
from gwms.frontend.config import FrontendConfig
from gwms.frontend.credentials import Credential, group_credentials
from gwms.frontend.cycle import EntryPlan, FactoryKey, GroupPlan
from gwms.frontend.matchexpr import SafeExpr, compile_safe_expr
from gwms.frontend.matching import Entry
from gwms.security.hybrid import SessionKey

__all__ = [
    "GLIDECLIENT_START",
    "GLIDEIN_COLLECTOR",
    "GLIDEIN_TOKEN",
    "GROUP_NAME",
    "TYPE_GLIDECLIENT_GLOBAL",
    "TYPE_GLIDERESOURCE",
    "CycleAds",
    "build_cycle_ads",
    "glideclient_global_name",
    "glidein_params",
    "glideresource_ad",
    "glideresource_name",
    "own_ads_constraint",
]

TYPE_GLIDECLIENT_GLOBAL = "glideclientglobal"
TYPE_GLIDERESOURCE = "glideresource"
#: Every frontend ad names its frontend (FA.FRONTEND_NAME) and group.
GROUP_NAME = "GroupName"
#: Sealed parameters the factory hands to the glidein (see gwms.factory.service).
GLIDEIN_COLLECTOR = "GLIDEIN_Collector"
GLIDEIN_TOKEN = "GLIDEIN_Token"
#: Clear parameter: the group's start_expr, for the glideins' START.
GLIDECLIENT_START = "GLIDECLIENT_Start"
#: glideclientglobal: the factory it is for, and the group's credentials.
REQ_FACTORY = "ReqFactory"
CREDENTIAL_IDS = "CredentialIds"
NUMBER_OF_CREDENTIALS = "NumberOfCredentials"

# glideclient monitoring (GlideinMonitor<name>)
MON_JOBS_IDLE = "GlideinMonitorJobsIdle"
MON_JOBS_IDLE_OLD = "GlideinMonitorJobsIdleOld"
MON_JOBS_IDLE_UNIQUE = "GlideinMonitorJobsIdleUnique"
MON_JOBS_RUNNING_HERE = "GlideinMonitorJobsRunningHere"
MON_GLIDEINS_TOTAL = "GlideinMonitorGlideinsTotal"
MON_GLIDEINS_IDLE = "GlideinMonitorGlideinsIdle"
MON_GLIDEINS_RUNNING = "GlideinMonitorGlideinsRunning"
MON_LIMITS = "GlideinMonitorLimits"
MON_COMPLETE = "GlideinMonitorCycleComplete"

# glideresource
RES_CLIENT_NAME = "GlideClientName"
RES_FACTORY_ENTRY = "GlideFactoryName"
RES_WMS_COLLECTOR = "GlideFactoryCollector"
RES_LIMIT_PREFIX = "GlideClientLimit"
RES_LIMITS = "GlideClientLimits"
RES_MONITOR_PREFIX = "GlideClientMonitor"
RES_REMOVE_EXCESS = "GlideClientRemoveExcess"
RES_REMOVE_REASONS = "GlideClientRemoveReasons"
RES_IN_DOWNTIME = "GlideClientEntryInDowntime"
RES_SKIPPED = "GlideClientRequestSkipped"
RES_COMPLETE = "GlideClientCycleComplete"
#: The group's matching, so that ``gwms q -analyze`` can replay it for one job (names
#: as in the original's glideresource ads; see :mod:`gwms.frontend.explain`).
RES_MATCH_EXPR = "GlideClientMatchingInternalPythonExpr"
RES_START_EXPR = "GlideClientMatchingGlideinCondorExpr"
RES_JOB_QUERY = "GlideClientConstraintJobCondorExpr"
RES_ATTR_DICT = "GlideClientAttrDict"

#: Entry attributes not copied into glideresource ads (the collector's and the factory's own).
_NOT_COPIED = frozenset(
    name.lower() for name in (
        FA.MY_TYPE, FA.NAME, "TargetType", FA.AUTHENTICATED_IDENTITY, "LastHeardFrom",
        FA.CLASSAD_LIFETIME, FA.PUB_KEY_ID, FA.PUB_KEY_TYPE, FA.PUB_KEY_VALUE, FA.FACTORY_URL,
        FA.GLIDEIN_WEB_URL, FA.ALLOWED_FRONTENDS, FA.ENTRY_PAUSED_REASON,
    )
)
_NOT_COPIED_PREFIXES = (FA.CONFIG_PREFIX.lower(),)

Value = str | int | float | bool


@dataclass
class CycleAds:
    """One group cycle's ads: ``glideclient`` and ``glideclientglobal`` per WMS collector
    URL, ``glideresource`` for the user pool; ``errors`` lists entries whose request
    could not be built (e.g. a credential that failed), with the reason."""

    glideclient: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    glideclientglobal: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    glideresource: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def names(self) -> dict[tuple[str, str], set[str]]:
        """``{(collector URL or "", MyType): {Name, ...}}`` of every ad ("" is the user pool)."""
        out: dict[tuple[str, str], set[str]] = {}
        for url, ads in self.glideclient.items():
            out.setdefault((url, FA.TYPE_GLIDECLIENT), set()).update(a[FA.NAME] for a in ads)
        for url, ads in self.glideclientglobal.items():
            out.setdefault((url, TYPE_GLIDECLIENT_GLOBAL), set()).update(a[FA.NAME] for a in ads)
        if self.glideresource:
            out[("", TYPE_GLIDERESOURCE)] = {a[FA.NAME] for a in self.glideresource}
        return out


def glideclient_global_name(factory: str, client: str) -> str:
    """``<instance@factory>@<frontend>.<group>``."""
    return f"{factory}@{client}"


def glideresource_name(entry_name: str, client: str) -> str:
    """``<entry@instance@factory>@<frontend>.<group>``."""
    return f"{entry_name}@{client}"


def own_ads_constraint(frontend_name: str, group: str | None = None) -> str:
    """A constraint selecting this frontend's ads (of one group if given)."""
    text = f'{FA.FRONTEND_NAME} =?= "{frontend_name}"'
    if group is not None:
        text += f' && {GROUP_NAME} =?= "{group}"'
    return text


@lru_cache(maxsize=256)
def _expr(source: str) -> SafeExpr:
    return compile_safe_expr(source, ("frontend", "glidein"), "expr")


def glidein_params(config: FrontendConfig, group: str, entry: Entry) -> dict[str, Value]:
    """The clear ``GlideinParam*`` values of a group's request to ``entry``.

    Attributes with ``parameter`` or ``glidein_publish`` set (the group's override the
    frontend's); ``type: expr`` values are evaluated with ``frontend`` (the constant
    attributes) and ``glidein`` (the entry) and left out when they raise or give
    something other than a string, number or boolean; and ``GLIDECLIENT_Start``, the
    group's start_expr, unless it is just true.
    """
    out: dict[str, Value] = {}
    constants = config.attr_dict(group)
    for name, attr in config.attrs_of(group).items():
        if not (attr.parameter or attr.glidein_publish):
            continue
        if attr.type == "expr":
            try:
                value = _expr(str(attr.value)).evaluate(frontend=constants, glidein=entry.glidein)
            except Exception:  # noqa: BLE001, S112 - a user expression that fails: no value
                continue
            if isinstance(value, (str, int, float, bool)):
                out[name] = value
        else:
            out[name] = attr.typed_value()
    start = " ".join(config.start_expr(group).split())
    if start.lower() != "true":
        out[GLIDECLIENT_START] = start
    return out


def _glideclient_monitor(plan: EntryPlan, complete: bool) -> dict[str, Any]:
    return {
        MON_JOBS_IDLE: plan.idle_jobs,
        MON_JOBS_IDLE_OLD: plan.old_idle_jobs,
        MON_JOBS_IDLE_UNIQUE: plan.unique_idle_jobs,
        MON_JOBS_RUNNING_HERE: plan.running_jobs,
        MON_GLIDEINS_TOTAL: plan.slots.total,
        MON_GLIDEINS_IDLE: plan.slots.idle,
        MON_GLIDEINS_RUNNING: plan.slots.running,
        MON_LIMITS: ",".join(plan.limits),
        MON_COMPLETE: complete,
    }


def _copyable(name: str) -> bool:
    low = name.lower()
    return low not in _NOT_COPIED and not low.startswith(_NOT_COPIED_PREFIXES)


@lru_cache(maxsize=64)
def _matching_texts(match_exprs: tuple[str, ...], start: str, job_query: str, attr_dict: str) -> dict[str, str]:
    useful = [e for e in match_exprs if e.strip() != "True"]
    match = "True" if not useful else useful[0] if len(useful) == 1 else " and ".join(f"({e})" for e in useful)
    return {RES_MATCH_EXPR: match, RES_START_EXPR: start, RES_JOB_QUERY: job_query, RES_ATTR_DICT: attr_dict}


def _matching_attrs(config: FrontendConfig, group: str) -> dict[str, str]:
    """The group's match_expr (frontend AND group), start_expr, job query and constant
    attributes (JSON), as published in ``glideresource`` ads."""
    import json

    g = config.group(group).match
    attr_dict = json.dumps(config.attr_dict(group), sort_keys=True, default=str)
    return _matching_texts((config.match.match_expr, g.match_expr), config.start_expr(group),
                           config.job_query(group), attr_dict)


def glideresource_ad(
    config: FrontendConfig, group_plan: GroupPlan, plan: EntryPlan, lifetime: int
) -> dict[str, Any]:
    """The ``glideresource`` ad of one entry (see the module docstring)."""
    ad: dict[str, Any] = {
        k: v for k, v in plan.entry.attrs.items()
        if _copyable(k) and isinstance(v, (str, int, float, bool))
    }
    request = plan.request
    ad.update({
        FA.MY_TYPE: TYPE_GLIDERESOURCE,
        FA.NAME: glideresource_name(plan.name, group_plan.client),
        FA.FRONTEND_NAME: config.frontend_name,
        GROUP_NAME: group_plan.group,
        RES_CLIENT_NAME: group_plan.client,
        RES_FACTORY_ENTRY: plan.name,
        RES_WMS_COLLECTOR: plan.wms_url,
        FA.CLASSAD_LIFETIME: lifetime,
        RES_MONITOR_PREFIX + "JobsIdle": plan.idle_jobs,
        RES_MONITOR_PREFIX + "JobsIdleOld": plan.old_idle_jobs,
        RES_MONITOR_PREFIX + "JobsIdleUnique": plan.unique_idle_jobs,
        RES_MONITOR_PREFIX + "JobsIdleGlideins": plan.demand.prop_idle,
        RES_MONITOR_PREFIX + "JobsIdleEffective": request.effective_idle,
        RES_MONITOR_PREFIX + "JobsRunningHere": plan.running_jobs,
        RES_MONITOR_PREFIX + "GlideinsTotal": plan.slots.total,
        RES_MONITOR_PREFIX + "GlideinsIdle": plan.slots.idle,
        RES_MONITOR_PREFIX + "GlideinsRunning": plan.slots.running,
        RES_MONITOR_PREFIX + "GlideinsFailed": plan.slots.failed,
        RES_MONITOR_PREFIX + "GlideinsRunningReal": plan.demand.real_running,
        RES_MONITOR_PREFIX + "GlideinsRequestIdle": request.min_idle,
        RES_MONITOR_PREFIX + "GlideinsRequestMaxRun": request.max_run,
        RES_REMOVE_EXCESS: plan.removal.level.name,
        RES_REMOVE_REASONS: "; ".join(plan.removal.reasons),
        RES_IN_DOWNTIME: plan.in_downtime,
        RES_LIMITS: ",".join(request.limits),
        RES_COMPLETE: group_plan.complete,
    })
    ad.update(_matching_attrs(config, group_plan.group))
    for name in request.limits:
        ad[RES_LIMIT_PREFIX + name] = True
    if plan.skipped:
        ad[RES_SKIPPED] = plan.skipped
    return ad


def build_cycle_ads(
    config: FrontendConfig,
    plan: GroupPlan,
    *,
    collector_url: str,
    token_for: Callable[[Credential, str], str | None],
    lifetime: int,
    new_session: Callable[[str, str], SessionKey] = SessionKey,
) -> CycleAds:
    """Every ad of one group cycle (see the module docstring).

    Args:
        config: the frontend configuration.
        plan: the group's plan for this cycle.
        collector_url: the user pool's collector, given to the glideins.
        token_for: (credential, entry request name) -> the glideins' token, or None.
            A raise (:class:`gwms.errors.GwmsError`) leaves that request out and is
            reported in :attr:`CycleAds.errors`.
        lifetime: ``ClassAdLifetime`` of the ads (seconds).
        new_session: makes a session key for (public key PEM, key id); one per WMS
            collector and factory per cycle, as GlideinWMS does.
    """
    out = CycleAds()
    sessions: dict[tuple[str, str, str], SessionKey] = {}
    factories: dict[tuple[str, str], tuple[FactoryKey, str]] = {}
    security_name = config.security_name

    def session(url: str, key: FactoryKey) -> SessionKey:
        skey = (url, key.factory, key.key_id)
        found = sessions.get(skey)
        if found is None:
            found = sessions[skey] = new_session(key.public_pem, key.key_id)
        return found

    params_cache: dict[str, dict[str, Value]] = {}
    published = sorted(n for n, a in config.attrs_of(plan.group).items() if a.glidein_publish)
    for entry_plan in plan.entries:
        out.glideresource.append(glideresource_ad(config, plan, entry_plan, lifetime))
        key = entry_plan.key
        if entry_plan.skipped or key is None:
            continue
        params = params_cache.get(entry_plan.entry.key)
        if params is None:
            params = params_cache[entry_plan.entry.key] = glidein_params(config, plan.group, entry_plan.entry)
        sess = session(entry_plan.wms_url, key)
        factories[(entry_plan.wms_url, key.factory)] = (key, entry_plan.my_identity)
        for share in entry_plan.shares:
            secrets: dict[str, str] = {GLIDEIN_COLLECTOR: collector_url}
            try:
                token = token_for(share.credential, entry_plan.name)
            except Exception as exc:  # noqa: BLE001 - reported, the other requests go on
                out.errors.append(f"{entry_plan.name} ({share.credential.id}): {exc}")
                continue
            if token:
                secrets[GLIDEIN_TOKEN] = token
            ad = build_request_ad(
                entry_ad_name=entry_plan.name,
                client_name=plan.client,
                identity=entry_plan.my_identity,
                security_name=security_name,
                security_class=share.credential.security_class,
                factory_public_key=key.public_pem,
                key_id=key.key_id,
                req_idle=share.min_idle,
                req_max=share.max_run,
                remove_excess=entry_plan.removal.level.name,
                remove_margin=entry_plan.removal.margin,
                idle_lifetime=config.group(plan.group).limits.idle_glideins_lifetime.max,
                credential_id=share.credential.id,
                params=params,
                secrets=secrets,
                publish=[n for n in published if n in params],
                session=sess,
            )
            ad[FA.FRONTEND_NAME] = config.frontend_name
            ad[GROUP_NAME] = plan.group
            ad[FA.CLASSAD_LIFETIME] = lifetime
            ad.update(_glideclient_monitor(entry_plan, plan.complete))
            out.glideclient.setdefault(entry_plan.wms_url, []).append(ad)

    credentials = group_credentials(config, plan.group)
    for (url, factory), (key, identity) in sorted(factories.items()):
        sess = session(url, key)
        name = glideclient_global_name(factory, plan.client)
        ad = {
            FA.MY_TYPE: TYPE_GLIDECLIENT_GLOBAL,
            FA.NAME: name,
            FA.CLIENT_NAME: plan.client,
            FA.FRONTEND_NAME: config.frontend_name,
            GROUP_NAME: plan.group,
            REQ_FACTORY: factory,
            FA.REQ_PUB_KEY_ID: key.key_id,
            FA.REQ_ENC_KEY_CODE: sess.wrapped,
            FA.REQ_ENC_IDENTITY: sess.seal(identity, sealed_aad(name, FA.REQ_ENC_IDENTITY)),
            NUMBER_OF_CREDENTIALS: len(credentials),
            CREDENTIAL_IDS: ",".join(c.id for c in credentials),
            FA.CLASSAD_LIFETIME: lifetime,
        }
        attr = FA.ENC_PARAM_PREFIX + FA.ENC_SECURITY_NAME
        ad[attr] = sess.seal(security_name, sealed_aad(name, attr))
        out.glideclientglobal.setdefault(url, []).append(ad)
    return out

