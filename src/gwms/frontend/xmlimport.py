"""Convert GlideinWMS XML configurations (3.10) into gwms YAML.

``frontend.xml`` (root ``<frontend>``) becomes a :class:`gwms.frontend.config.FrontendConfig`
document; ``glideinWMS.xml`` (root ``<glidein>``, the factory's) a
:class:`gwms.factory.config.FactoryConfig` document. :func:`import_xml` detects which
from the root element, converts every setting gwms supports, validates the result with
the model (so the YAML loads), and lists by XML path every setting it did not convert:
an attribute no rule consumed is, by construction, in that list, so nothing is dropped
silently. ``comment`` attributes are documentation and are not listed.

Paths read like XPath: ``frontend/groups/group[@name="main"]/config/processing_workers/@matchmakers``;
elements are told apart by their ``name`` attribute, else by position (``collector[2]``).

What converts (frontend):

- ``frontend_name``, ``loop_delay``; ``work/@base_dir`` -> ``work_dir``;
- ``match`` (frontend and group): ``match_expr``, ``start_expr``, ``factory``/``job``
  ``query_expr`` and ``match_attrs`` (names; the types are not needed with JSON ads);
  ``factory/collectors/collector`` -> ``wms_collectors`` (``node`` becomes
  ``https://node``: check the port, gwms collectors speak HTTPS) with ``factory_identity``
  and ``my_identity``; ``job/schedds/schedd/@fullname`` -> schedds;
- ``collectors/collector`` (not ``secondary``) -> ``user_pool.collectors``;
- ``config``: the frontend's ``idle_vms_total``, ``running_glideins_total`` and their
  ``_global`` twins; the group's limits (``idle_glideins_per_entry``, ``idle_vms_per_entry``,
  ``running_glideins_per_entry``, ``running_glideins_total``, ``idle_vms_total``,
  ``partitionable_glidein``, ``idle_glideins_lifetime``, ``glideins_removal``,
  ``ramp_up_attenuation``, ``ignore_down_entries``; the frontend-level
  ``ramp_up_attenuation`` and ``ignore_down_entries`` are copied into groups that do not
  set them);
- ``attrs/attr`` (frontend and group) with ``value``, ``type`` (string, int, expr),
  ``parameter``, ``glidein_publish``, ``job_publish``;
- ``security``: ``security_name``, ``proxy_selection_plugin`` (ProxyAll -> all,
  ProxyFirst -> first, ProxyUserRR -> round_robin, ProxyUserCardinality and
  ProxyUserMapWRecycling -> per_user), ``scitoken``/``idtoken`` credentials -> ``token_file``
  credentials. X.509 proxies, key pairs and cloud credentials are not supported. Since
  GlideinWMS 3.10 glideins join the pool with IDTOKENs the frontend signs; the gwms
  equivalent is a ``pool_token`` credential, added with a placeholder key directory
  (``idtoken_lifetime`` hours -> its ``token_lifetime``).

An expression gwms cannot evaluate (a ``match_expr`` outside the whitelist, a ClassAd
it cannot parse) is listed, replaced by ``False`` and its group disabled: the group asks
for nothing rather than for the wrong thing.

What converts (factory): ``factory_name`` -> ``name``, ``glidein_name`` -> ``instance``,
``loop_delay``, ``restart_attempts``, ``restart_interval``; ``security/frontends`` ->
``frontends`` (identity, security class -> user); ``stage/@base_dir``/``@web_base_url``,
``submit/@base_client_log_dir``; per entry ``name``, ``enabled``, ``gridtype`` ->
``backend`` (``condor`` -> htcondor-ce, ``batch X`` -> ssh with ``batch: X``,
``nordugrid``/``arc`` -> arc; others keep their name and the entry is disabled),
``gatekeeper`` -> ``backend_settings``, ``trust_domain``/``auth_method`` -> the published
``GLIDEIN_TrustDomain``/``GLIDEIN_SupportedAuthenticationMethod``, ``max_jobs`` ->
``limits``, ``submit``/``remove``/``release`` per-cycle numbers -> ``cycle``,
``allow_frontends``, and attributes (factory-wide ones merged into every entry):
``const="False"`` -> ``params`` (a frontend may override), published constants -> ``attrs``.
The WMS collector is not part of ``glideinWMS.xml``: ``wms_collector`` gets a
placeholder to set.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gwms.classads import ClassAdSyntaxError, parse_expr
from gwms.errors import GwmsError
from gwms.frontend.matchexpr import MatchExprError, compile_match_expr, compile_safe_expr

__all__ = [
    "ImportResult",
    "XmlImportError",
    "convert_factory",
    "convert_frontend",
    "detect_kind",
    "import_xml",
    "parse_xml",
]

#: Placeholder the factory import puts where glideinWMS.xml has no equivalent.
WMS_COLLECTOR_PLACEHOLDER = "https://CHANGE-ME-wms-collector:9618"
#: Placeholder key directory of the pool_token credential the frontend import adds.
POOL_KEY_PLACEHOLDER = "/var/lib/gwms-frontend/pool-keys"

_SELECTION_PLUGINS = {
    "proxyall": "all",
    "proxyfirst": "first",
    "proxyuserrr": "round_robin",
    "proxyusercardinality": "per_user",
    "proxyusermapwrecycling": "per_user",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


class XmlImportError(GwmsError):
    """An XML file that cannot be converted (not XML, unknown root, a bad value)."""


@dataclass
class ImportResult:
    """A converted configuration.

    ``data`` is the YAML document (as Python data); ``unsupported`` lists the settings
    not converted (``path = "value"``, with a reason for some); ``notes`` what to check
    by hand (placeholders, guessed URLs).
    """

    kind: str
    data: dict[str, Any]
    unsupported: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_yaml(self, source: str = "the XML file") -> str:
        """The YAML text, with the unsupported settings and notes in a comment block."""
        lines = [f"# gwms {self.kind} configuration converted by `gwms config import` from {source}."]
        if self.notes:
            lines.append("#")
            lines.append("# Check by hand:")
            lines.extend(f"#   - {note}" for note in self.notes)
        lines.append("#")
        if self.unsupported:
            lines.append(f"# Settings not converted (gwms does not support them): {len(self.unsupported)}")
            lines.extend(f"#   {item}" for item in self.unsupported)
        else:
            lines.append("# Every setting was converted.")
        body = yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
        return "\n".join(line.replace("\n", " ") for line in lines) + "\n\n" + body


# ------------------------------------------------------------------------------ reading


def parse_xml(text: str, source: str = "<xml>") -> ET.Element:
    """Parse XML text; DTDs and entities are refused (GlideinWMS configs have none)."""
    if re.search(r"<!(DOCTYPE|ENTITY)", text):
        raise XmlImportError(f"{source}: DTDs and entity declarations are not accepted")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise XmlImportError(f"{source}:{line}:{column + 1}: not well-formed XML: {exc}") from None


def detect_kind(root: ET.Element) -> str:
    """``frontend`` for a ``<frontend>`` root, ``factory`` for ``<glidein>``."""
    if root.tag == "frontend":
        return "frontend"
    if root.tag == "glidein":
        return "factory"
    raise XmlImportError(
        f"root element <{root.tag}> is neither <frontend> (frontend.xml) nor <glidein> (glideinWMS.xml)"
    )


class _Reader:
    """Reads elements and attributes, remembering which it consumed, so that every
    attribute left over can be listed as not converted."""

    def __init__(self, root: ET.Element) -> None:
        self.root = root
        self.used: set[tuple[int, str]] = set()
        self.reasons: dict[tuple[int, str], str] = {}
        self.paths: dict[int, str] = {}
        self._index_paths(root, root.tag)

    def _index_paths(self, element: ET.Element, path: str) -> None:
        self.paths[id(element)] = path
        by_tag: dict[str, list[ET.Element]] = {}
        for child in element:
            if isinstance(child.tag, str):
                by_tag.setdefault(child.tag, []).append(child)
        for tag, children in by_tag.items():
            for position, child in enumerate(children, 1):
                name = child.get("name")
                if name is not None:
                    step = f'{tag}[@name="{name}"]'
                elif len(children) > 1:
                    step = f"{tag}[{position}]"
                else:
                    step = tag
                self._index_paths(child, f"{path}/{step}")

    def path(self, element: ET.Element, attr: str | None = None) -> str:
        """The element's path (and ``/@attr``)."""
        base = self.paths.get(id(element), element.tag)
        return f"{base}/@{attr}" if attr else base

    def get(self, element: ET.Element, attr: str) -> str | None:
        """An attribute's value, marked as converted (None if absent)."""
        self.used.add((id(element), attr))
        return element.get(attr)

    def skip(self, element: ET.Element, attr: str, reason: str) -> None:
        """Leave an attribute unconverted, with a reason shown in the list."""
        self.reasons[(id(element), attr)] = reason

    def children(self, element: ET.Element | None, tag: str) -> list[ET.Element]:
        """Direct children with that tag."""
        return [] if element is None else [c for c in element if c.tag == tag]

    def child(self, element: ET.Element | None, tag: str) -> ET.Element | None:
        """The first direct child with that tag."""
        found = self.children(element, tag)
        return found[0] if found else None

    def leftovers(self) -> list[str]:
        """Every attribute (and text) of the document not converted, by path."""
        out: list[str] = []
        for element in self.root.iter():
            if not isinstance(element.tag, str):
                continue
            for attr, value in element.attrib.items():
                if attr == "comment" or (id(element), attr) in self.used:
                    continue
                reason = self.reasons.get((id(element), attr))
                item = f"{self.path(element, attr)} = {_quote(value)}"
                out.append(f"{item}  ({reason})" if reason else item)
            text = (element.text or "").strip()
            if text:
                out.append(f"{self.path(element)} (text) = {_quote(text)}")
        return out


def _quote(value: str) -> str:
    text = value if len(value) <= 200 else value[:197] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Values:
    """Typed reads of attribute values with errors that name the path."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader

    def text(self, element: ET.Element | None, attr: str) -> str | None:
        return None if element is None else self.r.get(element, attr)

    def integer(self, element: ET.Element | None, attr: str) -> int | None:
        raw = self.text(element, attr)
        if raw is None or raw.strip() == "":
            return None
        try:
            return int(float(raw)) if re.fullmatch(r"\s*-?\d+(\.0*)?\s*", raw) else int(raw)
        except ValueError:
            raise XmlImportError(f"{self.r.path(element, attr)}: expected an integer, found {raw!r}") from None  # type: ignore[arg-type]

    def number(self, element: ET.Element | None, attr: str) -> float | None:
        raw = self.text(element, attr)
        if raw is None or raw.strip() == "":
            return None
        try:
            return float(raw)
        except ValueError:
            raise XmlImportError(f"{self.r.path(element, attr)}: expected a number, found {raw!r}") from None  # type: ignore[arg-type]

    def boolean(self, element: ET.Element | None, attr: str) -> bool | None:
        raw = self.text(element, attr)
        if raw is None or raw.strip() == "":
            return None
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise XmlImportError(f"{self.r.path(element, attr)}: expected True or False, found {raw!r}")  # type: ignore[arg-type]


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


def _node_url(node: str) -> str:
    node = node.strip()
    return node if re.match(r"^https?://", node) else f"https://{node}"


# ------------------------------------------------------------------------------ frontend


class _FrontendConverter:
    def __init__(self, root: ET.Element) -> None:
        self.r = _Reader(root)
        self.v = _Values(self.r)
        self.root = root
        self.notes: list[str] = []
        self.extra_unsupported: list[str] = []

    def convert(self) -> ImportResult:
        r, v, root = self.r, self.v, self.root
        data: dict[str, Any] = {}
        name = v.text(root, "frontend_name")
        if not name:
            raise XmlImportError("frontend/@frontend_name is missing")
        data["frontend_name"] = self._safe_name(name, r.path(root, "frontend_name"))
        _put(data, "loop_delay", v.number(root, "loop_delay"))
        work = r.child(root, "work")
        _put(data, "work_dir", v.text(work, "base_dir"))

        match = r.child(root, "match")
        collectors = self._wms_collectors(match)
        if collectors:
            data["wms_collectors"] = collectors
        pool: dict[str, Any] = {"collectors": self._pool_collectors()}
        schedds = self._schedds(match)
        if schedds:
            pool["schedds"] = schedds
        data["user_pool"] = pool

        security = self._security(r.child(root, "security"), frontend_level=True)
        if security:
            data["security"] = security
        match_data, bad = self._match(match)
        if match_data:
            data["match"] = match_data
        limits, group_defaults = self._frontend_config(r.child(root, "config"))
        if limits:
            data["limits"] = limits
        attrs = self._attrs(r.child(root, "attrs"))
        if attrs:
            data["attrs"] = attrs

        groups: dict[str, Any] = {}
        for element in r.children(r.child(root, "groups"), "group"):
            group_name = v.text(element, "name") or f"group{len(groups) + 1}"
            group_name = self._safe_name(group_name, r.path(element, "name"))
            groups[group_name] = self._group(element, group_defaults, frontend_match_bad=bad)
        if not groups:
            raise XmlImportError("frontend/groups has no <group>: gwms needs at least one")
        data["groups"] = groups
        if not data.get("wms_collectors") and not any(g.get("wms_collectors") for g in groups.values()):
            raise XmlImportError("no factory collector (match/factory/collectors/collector) is configured")
        return ImportResult("frontend", data, self.extra_unsupported + r.leftovers(), self.notes)

    # -- pieces ---------------------------------------------------------------------

    def _safe_name(self, name: str, path: str) -> str:
        safe = _SAFE_NAME.sub("_", name.strip()) or "frontend"
        if not safe[0].isalnum():
            safe = "x" + safe
        if safe != name:
            self.notes.append(f"{path}: {name!r} renamed {safe!r} (letters, digits, '_' and '-' only)")
        return safe

    def _wms_collectors(self, match: ET.Element | None) -> list[dict[str, Any]]:
        r, v = self.r, self.v
        out: list[dict[str, Any]] = []
        factory = r.child(match, "factory")
        for element in r.children(r.child(factory, "collectors"), "collector"):
            node = v.text(element, "node")
            if not node:
                continue
            collector: dict[str, Any] = {"url": _node_url(node)}
            _put(collector, "factory_identity", v.text(element, "factory_identity") or "factory@fake.org")
            _put(collector, "my_identity", v.text(element, "my_identity") or "me@fake.org")
            r.skip(element, "DN", "gwms authenticates with tokens, not certificate DNs")
            out.append(collector)
            self.notes.append(
                f"{r.path(element, 'node')}: WMS collector {node!r} became {collector['url']!r}; check scheme and port"
            )
        return out

    def _pool_collectors(self) -> list[str]:
        r, v = self.r, self.v
        out: list[str] = []
        for element in r.children(r.child(self.root, "collectors"), "collector"):
            secondary = element.get("secondary", "False").strip().lower() == "true"
            if secondary:
                for attr in element.attrib:
                    r.skip(element, attr, "secondary collectors are not used by gwms glideins")
                continue
            r.get(element, "secondary")
            node = v.text(element, "node")
            if not node:
                continue
            r.skip(element, "DN", "gwms authenticates with tokens, not certificate DNs")
            r.skip(element, "group", "collector HA groups are not supported")
            out.append(_node_url(node))
            self.notes.append(f"{r.path(element, 'node')}: user pool collector {node!r} became {_node_url(node)!r}")
        if not out:
            raise XmlImportError("frontend/collectors has no primary <collector>: gwms needs the user pool collector")
        return out

    def _schedds(self, match: ET.Element | None) -> list[str]:
        r, v = self.r, self.v
        out: list[str] = []
        job = r.child(match, "job")
        for element in r.children(r.child(job, "schedds"), "schedd"):
            fullname = v.text(element, "fullname")
            r.skip(element, "DN", "gwms authenticates with tokens, not certificate DNs")
            if fullname:
                out.append(fullname)
        return out

    def _checked_match_expr(self, element: ET.Element, attr: str) -> tuple[str | None, bool]:
        text = self.v.text(element, attr)
        if text is None:
            return None, False
        try:
            compile_match_expr(text)
        except MatchExprError as exc:
            self.extra_unsupported.append(
                f"{self.r.path(element, attr)} = {_quote(text)}  (gwms cannot evaluate it: {exc.reason}; "
                "replaced by False and the group disabled)"
            )
            return "False", True
        return text, False

    def _checked_classad(self, element: ET.Element | None, attr: str) -> tuple[str | None, bool]:
        text = self.v.text(element, attr)
        if text is None:
            return None, False
        try:
            parse_expr(text)
        except ClassAdSyntaxError as exc:
            self.extra_unsupported.append(
                f"{self.r.path(element, attr)} = {_quote(text)}  (not a ClassAd expression gwms parses: "
                f"{exc.reason}; replaced by False and the group disabled)"
            )
            return "False", True
        return text, False

    def _match(self, match: ET.Element | None) -> tuple[dict[str, Any], bool]:
        """The match section; the flag says an expression had to be replaced."""
        r = self.r
        out: dict[str, Any] = {}
        if match is None:
            return out, False
        bad = False
        expr, failed = self._checked_match_expr(match, "match_expr")
        bad |= failed
        _put(out, "match_expr", expr)
        start, failed = self._checked_classad(match, "start_expr")
        bad |= failed
        _put(out, "start_expr", start)
        r.skip(match, "policy_file", "external Python policy files are not supported")
        for side in ("factory", "job"):
            element = r.child(match, side)
            if element is None:
                continue
            side_data: dict[str, Any] = {}
            query, failed = self._checked_classad(element, "query_expr")
            bad |= failed
            _put(side_data, "query_expr", query)
            names = []
            for attr_element in r.children(r.child(element, "match_attrs"), "match_attr"):
                attr_name = self.v.text(attr_element, "name")
                r.get(attr_element, "type")  # JSON ads carry their types
                if attr_name:
                    names.append(attr_name)
            if names:
                side_data["match_attrs"] = names
            if side_data:
                out[side] = side_data
        return out, bad

    def _limit(self, element: ET.Element | None, *attrs: str) -> dict[str, Any] | None:
        if element is None:
            return None
        out: dict[str, Any] = {}
        for attr in attrs:
            if attr == "relative_to_queue":
                _put(out, attr, self.v.number(element, attr))
            else:
                _put(out, attr, self.v.integer(element, attr))
        return out or None

    def _frontend_config(self, config: ET.Element | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The frontend limits, and the group defaults the global config sets."""
        r, v = self.r, self.v
        limits: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        if config is None:
            return limits, defaults
        for tag in ("running_glideins_total", "idle_vms_total", "running_glideins_total_global", "idle_vms_total_global"):
            _put(limits, tag, self._limit(r.child(config, tag), "max", "curb"))
        _put(defaults, "ramp_up_attenuation", v.number(config, "ramp_up_attenuation"))
        _put(defaults, "ignore_down_entries", v.boolean(config, "ignore_down_entries"))
        return limits, defaults

    def _group_config(self, config: ET.Element | None, defaults: dict[str, Any]) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {}
        if config is not None:
            _put(out, "idle_glideins_per_entry", self._limit(r.child(config, "idle_glideins_per_entry"), "max", "reserve"))
            _put(out, "idle_vms_per_entry", self._limit(r.child(config, "idle_vms_per_entry"), "max", "curb"))
            _put(
                out,
                "running_glideins_per_entry",
                self._limit(r.child(config, "running_glideins_per_entry"), "max", "min", "relative_to_queue"),
            )
            _put(out, "running_glideins_total", self._limit(r.child(config, "running_glideins_total"), "max", "curb"))
            _put(out, "idle_vms_total", self._limit(r.child(config, "idle_vms_total"), "max", "curb"))
            _put(out, "partitionable_glidein", self._limit(r.child(config, "partitionable_glidein"), "min_memory"))
            _put(out, "idle_glideins_lifetime", self._limit(r.child(config, "idle_glideins_lifetime"), "max"))
            removal = r.child(config, "glideins_removal")
            if removal is not None:
                rem: dict[str, Any] = {}
                kind = v.text(removal, "type")
                if kind:
                    rem["type"] = kind.strip().upper()
                _put(rem, "wait", v.integer(removal, "wait"))
                _put(rem, "margin", v.integer(removal, "margin"))
                _put(rem, "requests_tracking", v.boolean(removal, "requests_tracking"))
                if rem:
                    out["glideins_removal"] = rem
            workers = r.child(config, "processing_workers")
            if workers is not None:
                for attr in workers.attrib:
                    r.skip(workers, attr, "gwms matches in one process, fast enough without workers")
            _put(out, "ramp_up_attenuation", v.number(config, "ramp_up_attenuation"))
            _put(out, "ignore_down_entries", v.boolean(config, "ignore_down_entries"))
        for key, value in defaults.items():
            out.setdefault(key, value)
        return out

    def _attrs(self, attrs: ET.Element | None) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {}
        for element in r.children(attrs, "attr"):
            name = v.text(element, "name")
            if not name:
                continue
            if name in ("GLIDEIN_Collector", "GLIDEIN_CCB"):
                for attr in list(element.attrib):
                    self.r.used.discard((id(element), attr))
                    r.skip(element, attr, "set by the frontend itself")
                continue
            kind = (v.text(element, "type") or "string").strip().lower()
            value = v.text(element, "value")
            item: dict[str, Any] = {}
            if kind == "int":
                try:
                    item["value"] = int(value or "0")
                except ValueError:
                    raise XmlImportError(f"{r.path(element, 'value')}: type int needs an integer, found {value!r}") from None
                item["type"] = "int"
            elif kind == "expr":
                try:
                    compile_safe_expr(value or "", ("frontend", "glidein"), "expr")
                except MatchExprError as exc:
                    self.extra_unsupported.append(
                        f"{r.path(element, 'value')} = {_quote(value or '')}  (gwms cannot evaluate it: {exc.reason}; attribute dropped)"
                    )
                    continue
                item["value"] = value
                item["type"] = "expr"
            else:
                item["value"] = value if value is not None else ""
            for flag in ("parameter", "glidein_publish", "job_publish"):
                _put(item, flag, v.boolean(element, flag))
            out[name] = item
        return out

    def _credentials(self, security: ET.Element | None, group: str | None) -> list[dict[str, Any]]:
        r, v = self.r, self.v
        out: list[dict[str, Any]] = []
        for position, element in enumerate(r.children(r.child(security, "credentials"), "credential"), 1):
            kind = (element.get("type") or "grid_proxy").strip()
            base_kinds = set(kind.split("+"))
            if base_kinds & {"scitoken", "idtoken"}:
                r.get(element, "type")
                credential: dict[str, Any] = {
                    "name": _SAFE_NAME.sub("_", v.text(element, "name") or f"{group or 'frontend'}_token{position}"),
                    "type": "token_file",
                    "path": v.text(element, "absfname"),
                }
                _put(credential, "trust_domain", v.text(element, "trust_domain"))
                sclass = v.text(element, "security_class")
                if sclass:
                    credential["security_class"] = _SAFE_NAME.sub("_", sclass)
                if credential["path"] is None:
                    raise XmlImportError(f"{r.path(element)}: a token credential needs absfname")
                out.append(credential)
            else:
                for attr in element.attrib:
                    r.skip(element, attr, f"{kind} credentials are not supported; gwms uses tokens")
        return out

    def _security(self, security: ET.Element | None, *, frontend_level: bool, group: str | None = None) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {}
        if frontend_level and security is not None:
            _put(out, "security_name", v.text(security, "security_name"))
        credentials = [] if security is None else self._credentials(security, group)
        if security is not None:
            plugin = v.text(security, "proxy_selection_plugin")
            if plugin:
                selection = _SELECTION_PLUGINS.get(plugin.strip().lower())
                if selection is None:
                    r.used.discard((id(security), "proxy_selection_plugin"))
                    r.skip(security, "proxy_selection_plugin", "unknown credential selection plugin")
                else:
                    out["credential_selection"] = selection
            for attr in ("classad_proxy", "proxy_DN", "sym_key"):
                r.skip(security, attr, "gwms uses tokens and AES-GCM, not proxies")
            r.skip(security, "idtoken_keyname", "gwms signs glidein tokens with the pool key")
        if frontend_level:
            lifetime_hours = v.integer(security, "idtoken_lifetime") if security is not None else None
            pool: dict[str, Any] = {"name": "pool", "type": "pool_token", "signing_key_dir": POOL_KEY_PLACEHOLDER}
            if lifetime_hours:
                pool["token_lifetime"] = lifetime_hours * 3600
            credentials.insert(0, pool)
            self.notes.append(
                f"security.credentials[0] (pool): glideins get pool tokens signed with the key in "
                f"{POOL_KEY_PLACEHOLDER!r}; point signing_key_dir at the pool's signing key"
            )
        elif security is not None:
            r.skip(security, "security_name", "one security name per frontend in gwms")
            if security.get("idtoken_lifetime") is not None:
                r.skip(security, "idtoken_lifetime", "set token_lifetime on the frontend's pool credential")
        if credentials:
            out["credentials"] = credentials
        return out

    def _group(self, element: ET.Element, defaults: dict[str, Any], *, frontend_match_bad: bool) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {}
        enabled = v.boolean(element, "enabled")
        match = r.child(element, "match")
        match_data, bad = self._match(match)
        collectors = self._wms_collectors(match)
        schedds = self._schedds(match)
        if bad or frontend_match_bad:
            enabled = False
        _put(out, "enabled", enabled)
        if match_data:
            out["match"] = match_data
        limits = self._group_config(r.child(element, "config"), defaults)
        if limits:
            out["limits"] = limits
        attrs = self._attrs(r.child(element, "attrs"))
        if attrs:
            out["attrs"] = attrs
        security = self._security(r.child(element, "security"), frontend_level=False, group=v.text(element, "name"))
        if security.get("credentials"):
            out["credentials"] = security["credentials"]
        if security.get("credential_selection"):
            out["credential_selection"] = security["credential_selection"]
        if collectors:
            out["wms_collectors"] = collectors
        if schedds:
            out["schedds"] = schedds
        return out


def convert_frontend(root: ET.Element) -> ImportResult:
    """Convert a parsed ``frontend.xml`` (see the module docstring)."""
    return _FrontendConverter(root).convert()


# ------------------------------------------------------------------------------ factory


_GRIDTYPES = {"condor": "htcondor-ce", "nordugrid": "arc", "arc": "arc"}


class _FactoryConverter:
    def __init__(self, root: ET.Element) -> None:
        self.r = _Reader(root)
        self.v = _Values(self.r)
        self.root = root
        self.notes: list[str] = []

    def convert(self) -> ImportResult:
        r, v, root = self.r, self.v, self.root
        data: dict[str, Any] = {}
        name = v.text(root, "factory_name")
        if not name:
            raise XmlImportError("glidein/@factory_name is missing")
        data["name"] = name
        _put(data, "instance", v.text(root, "glidein_name"))
        data["wms_collector"] = WMS_COLLECTOR_PLACEHOLDER
        self.notes.append(
            f"wms_collector: glideinWMS.xml does not name the WMS collector (condor_config does); "
            f"replace {WMS_COLLECTOR_PLACEHOLDER!r}"
        )
        _put(data, "loop_delay", v.number(root, "loop_delay"))
        _put(data, "restart_attempts", v.integer(root, "restart_attempts"))
        _put(data, "restart_interval", v.number(root, "restart_interval"))
        stage = r.child(root, "stage")
        _put(data, "stage_dir", v.text(stage, "base_dir"))
        _put(data, "stage_url", v.text(stage, "web_base_url"))
        submit = r.child(root, "submit")
        _put(data, "log_dir", v.text(submit, "base_client_log_dir"))
        frontends = self._frontends(r.child(root, "security"))
        if frontends:
            data["frontends"] = frontends
        global_attrs, global_params = self._attrs(r.child(root, "attrs"))
        entries = [
            self._entry(e, global_attrs, global_params, set(frontends))
            for e in r.children(r.child(root, "entries"), "entry")
        ]
        if not entries:
            raise XmlImportError("glidein/entries has no <entry>: gwms needs at least one")
        data["entries"] = entries
        return ImportResult("factory", data, r.leftovers(), self.notes)

    def _frontends(self, security: ET.Element | None) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {}
        for element in r.children(r.child(security, "frontends"), "frontend"):
            name = v.text(element, "name")
            identity = v.text(element, "identity")
            classes: dict[str, str] = {}
            for sclass in r.children(r.child(element, "security_classes"), "security_class"):
                class_name = v.text(sclass, "name")
                user = v.text(sclass, "username")
                if class_name and user:
                    classes[class_name] = user
            if name and identity and classes:
                out[name] = {"identity": identity, "security_classes": classes}
        return out

    def _attrs(self, attrs: ET.Element | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(published constant attributes, parameters a frontend may override)."""
        r, v = self.r, self.v
        published: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for element in r.children(attrs, "attr"):
            name = v.text(element, "name")
            if not name:
                continue
            kind = (v.text(element, "type") or "string").strip().lower()
            raw = v.text(element, "value") or ""
            value: Any = raw
            if kind == "int":
                try:
                    value = int(raw)
                except ValueError:
                    raise XmlImportError(f"{r.path(element, 'value')}: type int needs an integer, found {raw!r}") from None
            const = v.boolean(element, "const")
            publish = v.boolean(element, "publish")
            v.boolean(element, "parameter")
            for flag in ("glidein_publish", "job_publish"):
                if (element.get(flag) or "False").strip().lower() == "true":
                    r.skip(element, flag, "the gwms factory does not pass attributes to slot ads or jobs")
                else:
                    r.get(element, flag)
            if const is False:
                params[name] = value
            elif publish is False:
                r.used.discard((id(element), "publish"))
                r.skip(element, "publish", "unpublished factory attributes are not supported")
            else:
                published[name] = value
        return published, params

    def _entry(
        self, element: ET.Element, global_attrs: dict[str, Any], global_params: dict[str, Any], frontends: set[str]
    ) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {"name": v.text(element, "name")}
        enabled = v.boolean(element, "enabled")
        gridtype = (v.text(element, "gridtype") or "").strip()
        gatekeeper = v.text(element, "gatekeeper")
        settings: dict[str, Any] = {}
        if gridtype.startswith("batch "):
            backend = "ssh"
            settings["batch"] = gridtype.split(None, 1)[1]
        elif gridtype in _GRIDTYPES:
            backend = _GRIDTYPES[gridtype]
        else:
            backend = gridtype or "local"
            if gridtype:
                enabled = False
                self.notes.append(
                    f"{r.path(element, 'gridtype')}: gwms has no {gridtype!r} backend; the entry is disabled"
                )
        if gatekeeper:
            settings["gatekeeper"] = gatekeeper
        out["enabled"] = enabled if enabled is not None else True
        out["backend"] = backend
        if settings:
            out["backend_settings"] = settings
        for attr, reason in (
            ("rsl", "Globus RSL is not used by gwms backends"),
            ("schedd_name", "gwms submits pilots itself, without a factory schedd"),
            ("work_dir", "gwms glideins choose their work directory"),
            ("verbosity", "not supported"),
        ):
            r.skip(element, attr, reason)
        attrs, params = self._attrs(r.child(element, "attrs"))
        merged_attrs = {**global_attrs, **attrs}
        trust = v.text(element, "trust_domain")
        auth = v.text(element, "auth_method")
        if trust:
            merged_attrs.setdefault("GLIDEIN_TrustDomain", trust)
        if auth:
            merged_attrs.setdefault("GLIDEIN_SupportedAuthenticationMethod", auth)
        if merged_attrs:
            out["attrs"] = merged_attrs
        merged_params = {**global_params, **params}
        if merged_params:
            out["params"] = merged_params
        config = r.child(element, "config")
        limits = self._limits(r.child(config, "max_jobs"))
        if limits:
            out["limits"] = limits
        cycle: dict[str, Any] = {}
        submit = r.child(config, "submit")
        _put(cycle, "max_submits", v.integer(submit, "max_per_cycle"))
        _put(cycle, "cluster_size", v.integer(submit, "cluster_size"))
        _put(cycle, "max_removals", v.integer(r.child(config, "remove"), "max_per_cycle"))
        _put(cycle, "max_releases", v.integer(r.child(config, "release"), "max_per_cycle"))
        if cycle:
            out["cycle"] = cycle
        allowed: list[str] = []
        for allow in r.children(r.child(element, "allow_frontends"), "allow_frontend"):
            name = allow.get("name")
            if name and name in frontends:
                r.get(allow, "name")
                if allow.get("security_class"):
                    r.skip(allow, "security_class", "gwms allows whole frontends")
                if name not in allowed:
                    allowed.append(name)
            else:
                for attr in allow.attrib:
                    r.skip(allow, attr, "frontend not configured under security/frontends")
        if allowed:
            out["allow_frontends"] = allowed
        return out

    def _limits(self, max_jobs: ET.Element | None) -> dict[str, Any]:
        r, v = self.r, self.v
        out: dict[str, Any] = {}
        if max_jobs is None:
            return out

        def limit_set(element: ET.Element | None, defaults: dict[str, int]) -> dict[str, int] | None:
            if element is None:
                return None
            values = {k: v.integer(element, k) for k in ("glideins", "idle", "held")}
            if all(x is None for x in values.values()):
                return None
            return {k: (values[k] if values[k] is not None else defaults[k]) for k in values}

        _put(out, "entry", limit_set(r.child(max_jobs, "per_entry"), {"glideins": 10000, "idle": 2000, "held": 1000}))
        _put(
            out,
            "per_frontend",
            limit_set(r.child(max_jobs, "default_per_frontend"), {"glideins": 5000, "idle": 100, "held": 50}),
        )
        per: dict[str, Any] = {}
        for element in r.children(r.child(max_jobs, "per_frontends"), "per_frontend"):
            name = v.text(element, "name")
            values = limit_set(element, {"glideins": 5000, "idle": 100, "held": 50})
            if name and values:
                per[name] = values
        if per:
            out["frontends"] = per
        _put(out, "num_factories", v.integer(max_jobs, "num_factories"))
        return out


def convert_factory(root: ET.Element) -> ImportResult:
    """Convert a parsed ``glideinWMS.xml`` (see the module docstring)."""
    return _FactoryConverter(root).convert()


# ------------------------------------------------------------------------------ all of it


def _model_for(kind: str) -> type[BaseModel]:
    if kind == "frontend":
        from gwms.frontend.config import FrontendConfig

        return FrontendConfig
    from gwms.factory.config import FactoryConfig

    return FactoryConfig


def import_xml(source: str | os.PathLike[str], *, kind: str | None = None, text: str | None = None) -> ImportResult:
    """Convert the GlideinWMS XML file ``source`` (or ``text``, named ``source``).

    ``kind`` ("frontend" or "factory") must agree with the root element when given.
    The result is validated with the gwms model of that kind.

    Raises:
        XmlImportError: unreadable or malformed XML, an unknown root, a value of the
        wrong type, or a result the model refuses (the message says why).
    """
    name = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise XmlImportError(f"{name}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise XmlImportError(f"{name}: cannot read: {exc}") from None
    root = parse_xml(text, name)
    found = detect_kind(root)
    if kind is not None and kind != found:
        raise XmlImportError(f"{name}: --kind {kind} given, but the file is a {found} configuration (<{root.tag}>)")
    result = convert_frontend(root) if found == "frontend" else convert_factory(root)
    try:
        _model_for(found).model_validate(result.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise XmlImportError(f"{name}: the converted configuration is not valid at {where}: {first['msg']}") from None
    return result
