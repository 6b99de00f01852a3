"""Reading ``glideclient`` requests: identity checks, decryption, validation.

:class:`RequestReader` turns the ``glideclient`` ads of the WMS collector into
:class:`ValidRequest` s for this factory's entries, and a :class:`Refusal` with the
reason for every ad addressed to it that fails a check. The checks, in order:

1. ``ReqGlidein`` names an enabled entry of this factory;
2. the ad carries ``AuthenticatedIdentity`` (stamped by the collector from the token);
3. ``ReqEncKeyCode`` opens with one of the factory's keys (current, or in rotation grace);
4. decrypt(``ReqEncIdentity``) == ``AuthenticatedIdentity`` (anti-spoofing, rule 1);
5. the sealed ``SecurityName`` is a configured frontend allowed at the entry, and
   ``AuthenticatedIdentity`` is the identity configured for it (anti-spoofing, rule 2);
6. the sealed ``SecurityClass`` is one of that frontend's classes (-> the local user);
7. every other ``GlideinEncParam*`` opens (a tampered value refuses the whole request);
8. the numbers are numbers (``ReqIdleGlideins``, ``ReqMaxGlideins`` >= 0, ...) and
   ``ReqRemoveExcess`` is NO, WAIT, IDLE or ALL.

:func:`build_request_ad` is the other side: how a frontend (or a test acting as one)
makes a request the reader accepts.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gwms.factory import attributes as A
from gwms.factory.config import FactoryConfig, RemovalLevel
from gwms.security.hybrid import (
    DecryptionError,
    Decryptor,
    OpenedSession,
    SessionKey,
    open_session,
)

__all__ = [
    "Refusal",
    "RequestReader",
    "ValidRequest",
    "build_request_ad",
    "sealed_aad",
]

_CLIENT_RE = re.compile(r"[A-Za-z0-9_.@:+-]{1,200}")
_PARAM_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
_MAX_COUNT = 10**7


def sealed_aad(ad_name: str, attribute: str) -> bytes:
    """The associated data a sealed value of ``attribute`` in ad ``ad_name`` is bound to."""
    return f"{ad_name}\x00{attribute.lower()}".encode()


@dataclass(frozen=True)
class ValidRequest:
    """One accepted request: who asks, for what, with which parameters.

    ``key`` (frontend/client/credential) names the client the glideins belong to;
    ``group`` (``frontend:security_class``) is the unit of the frontend limits.
    ``secrets`` are the opened ``GlideinEncParam*`` values other than the security
    name and class (never logged or shown). ``publish`` names the ``params`` the glidein
    publishes in its slot ads (``ReqGlideinPublish``: the frontend's ``glidein_publish``).
    """

    name: str
    entry: str
    client_name: str
    credential_id: str
    identity: str
    frontend: str
    security_class: str
    user: str
    req_idle: int
    req_max: int
    remove_level: RemovalLevel
    remove_margin: int
    idle_lifetime: float
    params: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    publish: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The client key: ``frontend/client_name/credential_id``."""
        return f"{self.frontend}/{self.client_name}/{self.credential_id}"

    @property
    def group(self) -> str:
        """``frontend:security_class``."""
        return f"{self.frontend}:{self.security_class}"


@dataclass(frozen=True)
class Refusal:
    """A request addressed to this factory that was ignored, and why."""

    name: str
    entry: str | None
    identity: str | None
    reason: str

    def __str__(self) -> str:
        who = self.identity or "no identity"
        return f"refused request {self.name!r} from {who} for entry {self.entry}: {self.reason}"


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _lower(ad: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    return {k.lower(): (k, v) for k, v in ad.items()}


def _get(ad: dict[str, tuple[str, Any]], name: str, default: Any = None) -> Any:
    item = ad.get(name.lower())
    return default if item is None else item[1]


def _count(ad: dict[str, tuple[str, Any]], name: str, *, required: bool, default: int = 0) -> int:
    value = _get(ad, name)
    if value is None:
        if required:
            raise _Refused(f"{name} is missing")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(f"{name} is not a number: {value!r}")
    if math.isnan(value) or value < 0 or value > _MAX_COUNT or value != int(value):
        raise _Refused(f"{name} is not a whole number from 0 to {_MAX_COUNT}: {value!r}")
    return int(value)


def _seconds(ad: dict[str, tuple[str, Any]], name: str) -> float:
    value = _get(ad, name)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise _Refused(f"{name} is not a number of seconds: {value!r}")
    return float(value)


class RequestReader:
    """Validates ``glideclient`` ads for one factory (see the module docstring).

    Args:
        config: the factory configuration (entries, frontends).
        decryptor: the factory's private keys.
        cache_size: opened session keys kept (a frontend wraps one per cycle and uses
            it in every ad of that cycle, so each is unwrapped with RSA only once).
    """

    def __init__(self, config: FactoryConfig, decryptor: Decryptor, cache_size: int = 512) -> None:
        self.config = config
        self.decryptor = decryptor
        self._suffix = f"@{config.instance}@{config.name}"
        self._entries = {e.name: e for e in config.entries}
        self._sessions: OrderedDict[str, OpenedSession | str] = OrderedDict()
        self._cache_size = cache_size
        # Name -> (content, entry, identity, result): an ad read again unchanged is not
        # checked (nor decrypted) again
        self._results: dict[str, tuple[tuple[Any, ...], str, str | None, ValidRequest | str]] = {}

    def addressed_to_us(self, ad: Mapping[str, Any]) -> bool:
        """True if the ad's ``ReqGlidein`` names an entry of this factory (any entry)."""
        target = _get(_lower(ad), A.REQ_GLIDEIN)
        return isinstance(target, str) and target.endswith(self._suffix)

    def read(
        self, ads: Iterable[Mapping[str, Any]]
    ) -> tuple[dict[str, list[ValidRequest]], list[Refusal]]:
        """``({entry: [requests]}, refusals)`` of the ads addressed to this factory.

        Ads for other factories are skipped silently; of two requests of the same
        client at one entry the one with the smaller Name wins, the other is refused.
        """
        outcomes: list[tuple[str, str, str | None, ValidRequest | str]] = []
        results: dict[str, tuple[tuple[Any, ...], str, str | None, ValidRequest | str]] = {}
        for ad in ads:
            target = ad.get(A.REQ_GLIDEIN)
            name = ad.get(A.NAME)
            low: dict[str, tuple[str, Any]] | None = None
            if target is None or name is None:  # not the usual spelling: look case-insensitively
                low = _lower(ad)
                target = _get(low, A.REQ_GLIDEIN)
                name = _get(low, A.NAME, "")
            if not isinstance(target, str) or not target.endswith(self._suffix):
                continue
            name = str(name)
            stamp = tuple(ad.items())
            cached = self._results.get(name)
            if cached is not None and cached[0] == stamp:
                _, entry, identity, outcome = cached
            else:
                low = low if low is not None else _lower(ad)
                entry = target[: -len(self._suffix)]
                identity = _get(low, A.AUTHENTICATED_IDENTITY)
                identity = identity if isinstance(identity, str) else None
                try:
                    outcome = self._check(low, name, entry, identity)
                except _Refused as exc:
                    outcome = exc.reason
            results[name] = (stamp, entry, identity, outcome)
            outcomes.append((name, entry, identity, outcome))
        self._results = results
        outcomes.sort(key=lambda o: o[0])
        valid: dict[str, list[ValidRequest]] = {}
        refused: list[Refusal] = []
        seen: dict[tuple[str, str], str] = {}
        for name, entry, identity, outcome in outcomes:
            if isinstance(outcome, str):
                refused.append(Refusal(name, entry, identity, outcome))
                continue
            other = seen.get((entry, outcome.key))
            if other is not None:
                refused.append(
                    Refusal(name, entry, identity, f"duplicate of request {other!r} for the same client")
                )
                continue
            seen[(entry, outcome.key)] = name
            valid.setdefault(entry, []).append(outcome)
        return valid, refused

    # ------------------------------------------------------------------ checks

    def _session(self, wrapped: str) -> OpenedSession:
        cached = self._sessions.get(wrapped)
        if cached is None:
            try:
                cached = open_session(self.decryptor, wrapped)
            except DecryptionError as exc:
                cached = f"{type(exc).__name__}: {exc}"
            self._sessions[wrapped] = cached
            while len(self._sessions) > self._cache_size:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(wrapped)
        if isinstance(cached, str):
            raise _Refused(f"the session key does not open: {cached}")
        return cached

    def _open(self, session: OpenedSession, name: str, attr: str, value: Any) -> str:
        if not isinstance(value, str):
            raise _Refused(f"{attr} is not a sealed value")
        try:
            return session.open(value, sealed_aad(name, attr)).decode("utf-8")
        except DecryptionError as exc:
            raise _Refused(f"{attr} does not decrypt: {exc}") from None
        except UnicodeDecodeError:
            raise _Refused(f"{attr} is not UTF-8 text") from None

    def _check(
        self, ad: dict[str, tuple[str, Any]], name: str, entry_name: str, identity: str | None
    ) -> ValidRequest:
        entry = self._entries.get(entry_name)
        if entry is None:
            raise _Refused("no such entry")
        if not entry.enabled:
            raise _Refused("the entry is disabled")
        if not identity:
            raise _Refused("the ad has no AuthenticatedIdentity")
        wrapped = _get(ad, A.REQ_ENC_KEY_CODE)
        if not isinstance(wrapped, str):
            raise _Refused(f"{A.REQ_ENC_KEY_CODE} is missing")
        session = self._session(wrapped)
        enc_identity = _get(ad, A.REQ_ENC_IDENTITY)
        if enc_identity is None:
            raise _Refused(f"{A.REQ_ENC_IDENTITY} is missing")
        claimed = self._open(session, name, A.REQ_ENC_IDENTITY, enc_identity)
        if claimed != identity:
            raise _Refused(
                f"the encrypted identity {claimed!r} is not the authenticated identity {identity!r}"
            )
        # every sealed parameter must open, whatever it is
        opened: dict[str, str] = {}
        prefix = A.ENC_PARAM_PREFIX.lower()
        for low_key, (key, value) in ad.items():
            if low_key.startswith(prefix) and len(key) > len(prefix):
                pname = key[len(prefix):]
                if not _PARAM_RE.fullmatch(pname):
                    raise _Refused(f"{key}: not a parameter name")
                opened[pname] = self._open(session, name, key, value)
        by_lower = {k.lower(): v for k, v in opened.items()}
        frontend = by_lower.get(A.ENC_SECURITY_NAME.lower())
        sclass = by_lower.get(A.ENC_SECURITY_CLASS.lower())
        if frontend is None:
            raise _Refused(f"{A.ENC_PARAM_PREFIX}{A.ENC_SECURITY_NAME} is missing")
        if sclass is None:
            raise _Refused(f"{A.ENC_PARAM_PREFIX}{A.ENC_SECURITY_CLASS} is missing")
        fe = self.config.frontends.get(frontend)
        if fe is None:
            raise _Refused(f"unknown frontend {frontend!r}")
        if entry.allow_frontends is not None and frontend not in entry.allow_frontends:
            raise _Refused(f"frontend {frontend!r} is not allowed at this entry")
        if identity != fe.identity:
            raise _Refused(
                f"identity {identity!r} is not the one configured for frontend {frontend!r}"
            )
        user = fe.security_classes.get(sclass)
        if user is None:
            raise _Refused(f"unknown security class {sclass!r} of frontend {frontend!r}")
        client = _get(ad, A.CLIENT_NAME)
        if not isinstance(client, str) or not _CLIENT_RE.fullmatch(client):
            raise _Refused(f"{A.CLIENT_NAME} is missing or not a plain name: {client!r}")
        cred = _get(ad, A.REQ_CREDENTIAL_ID, "default")
        if not isinstance(cred, str) or not _CLIENT_RE.fullmatch(cred):
            raise _Refused(f"{A.REQ_CREDENTIAL_ID} is not a plain name: {cred!r}")
        req_idle = _count(ad, A.REQ_IDLE_GLIDEINS, required=True)
        req_max = _count(ad, A.REQ_MAX_GLIDEINS, required=True)
        margin = _count(ad, A.REQ_REMOVE_EXCESS_MARGIN, required=False)
        level_text = _get(ad, A.REQ_REMOVE_EXCESS, "NO")
        try:
            level = RemovalLevel(str(level_text).upper())
        except ValueError:
            raise _Refused(f"{A.REQ_REMOVE_EXCESS} is not NO, WAIT, IDLE or ALL: {level_text!r}") from None
        lifetime = _seconds(ad, A.REQ_IDLE_LIFETIME)
        params: dict[str, Any] = dict(entry.params)
        pprefix = A.PARAM_PREFIX.lower()
        for low_key, (key, value) in ad.items():
            if low_key.startswith(pprefix) and len(key) > len(pprefix):
                pname = key[len(pprefix):]
                if not _PARAM_RE.fullmatch(pname):
                    raise _Refused(f"{key}: not a parameter name")
                if value is not None and not isinstance(value, (str, int, float, bool)):
                    raise _Refused(f"{key}: not a plain value")
                params[pname] = value
        publish_text = _get(ad, A.REQ_GLIDEIN_PUBLISH, "")
        if not isinstance(publish_text, str):
            raise _Refused(f"{A.REQ_GLIDEIN_PUBLISH} is not a comma-separated list of names")
        publish: list[str] = []
        for pname in (p.strip() for p in publish_text.split(",")):
            if not pname:
                continue
            if not _PARAM_RE.fullmatch(pname):
                raise _Refused(f"{A.REQ_GLIDEIN_PUBLISH}: {pname!r} is not a parameter name")
            if pname in params and pname not in publish:
                publish.append(pname)
        secrets = {
            k: v for k, v in opened.items()
            if k.lower() not in (A.ENC_SECURITY_NAME.lower(), A.ENC_SECURITY_CLASS.lower())
        }
        return ValidRequest(
            name=name,
            entry=entry.name,
            client_name=client,
            credential_id=cred,
            identity=identity,
            frontend=frontend,
            security_class=sclass,
            user=user,
            req_idle=req_idle,
            req_max=req_max,
            remove_level=level,
            remove_margin=margin,
            idle_lifetime=lifetime,
            params=params,
            secrets=secrets,
            publish=tuple(publish),
        )


def build_request_ad(
    *,
    entry_ad_name: str,
    client_name: str,
    identity: str,
    security_name: str,
    security_class: str,
    factory_public_key: str | bytes,
    key_id: str,
    req_idle: int,
    req_max: int,
    remove_excess: str = "NO",
    remove_margin: int = 0,
    idle_lifetime: float = 0,
    credential_id: str = "default",
    params: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    publish: Iterable[str] = (),
    session: SessionKey | None = None,
) -> dict[str, Any]:
    """A ``glideclient`` ad the factory's :class:`RequestReader` accepts.

    ``factory_public_key`` / ``key_id`` come from the factory's ``glidefactoryglobal``
    ad (``PubKeyValue`` / ``PubKeyID``); ``identity`` must be the identity of the token
    the ad is advertised with. ``session`` reuses one session key for many ads (one
    per frontend cycle); by default each ad gets its own. ``publish`` names the
    ``params`` the glidein publishes in its slot ads (``ReqGlideinPublish``).
    """
    session = session or SessionKey(factory_public_key, key_id)
    name = f"{credential_id}_{entry_ad_name}@{client_name}"
    ad: dict[str, Any] = {
        A.MY_TYPE: A.TYPE_GLIDECLIENT,
        A.NAME: name,
        A.REQ_GLIDEIN: entry_ad_name,
        A.CLIENT_NAME: client_name,
        A.REQ_CREDENTIAL_ID: credential_id,
        A.REQ_IDLE_GLIDEINS: int(req_idle),
        A.REQ_MAX_GLIDEINS: int(req_max),
        A.REQ_REMOVE_EXCESS: remove_excess,
        A.REQ_REMOVE_EXCESS_MARGIN: int(remove_margin),
        A.REQ_IDLE_LIFETIME: idle_lifetime,
        A.REQ_PUB_KEY_ID: key_id,
        A.REQ_ENC_KEY_CODE: session.wrapped,
        A.REQ_ENC_IDENTITY: session.seal(identity, sealed_aad(name, A.REQ_ENC_IDENTITY)),
    }
    sealed = {A.ENC_SECURITY_NAME: security_name, A.ENC_SECURITY_CLASS: security_class}
    sealed.update(secrets or {})
    for pname, value in sealed.items():
        attr = f"{A.ENC_PARAM_PREFIX}{pname}"
        ad[attr] = session.seal(value, sealed_aad(name, attr))
    for pname, value in (params or {}).items():
        ad[f"{A.PARAM_PREFIX}{pname}"] = value
    names = [p for p in publish if p]
    if names:
        ad[A.REQ_GLIDEIN_PUBLISH] = ",".join(names)
    return ad
