"""What to do with each kind of entity: keep, pseudonymize, truncate or redact, with allow-lists.

A policy is a YAML file loaded with :func:`load_policy` (or any
:func:`gwms.config.load_config` caller)::

    # anonymization.yaml
    host:
      allow: ["*.opensciencegrid.org", "ce01.example.edu"]   # public factory and CE hosts
    ip:
      action: truncate          # irreversible: keep the /24 and /48
      ipv4_prefix: 24
      allow: ["131.225.0.0/16"]
    user:
      allow: [root, condor, nobody]
    dn:
      action: redact

An entity's ``action`` left unset takes the mode's default (:data:`DEFAULT_ACTIONS`):
the reversible mode encrypts everything (Crypto-PAn for addresses, AES-SIV tokens for the
rest); the irreversible mode truncates addresses, replaces names with keyed HMAC
pseudonyms, and redacts DNs, e-mails and secrets. Values on an ``allow`` list (shell-style
patterns, case-insensitive for hosts and e-mails; addresses or networks for ``ip``) are
kept as they are.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from enum import Enum
from functools import cached_property
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gwms.config import GwmsModel, load_config, register_config_kind
from gwms.monitor.anonymize import entities as E

__all__ = [
    "DEFAULT_ACTIONS",
    "Action",
    "AnonymizationPolicy",
    "EntityRule",
    "HostRule",
    "IpRule",
    "Mode",
    "load_policy",
]

Mode = Literal["reversible", "irreversible"]


class Action(str, Enum):
    """What happens to an entity."""

    KEEP = "keep"
    PSEUDONYMIZE = "pseudonymize"
    TRUNCATE = "truncate"
    REDACT = "redact"


#: The action each kind gets in each mode when the policy does not say.
DEFAULT_ACTIONS: dict[str, dict[str, Action]] = {
    "reversible": {
        "ip": Action.PSEUDONYMIZE,
        "host": Action.PSEUDONYMIZE,
        "user": Action.PSEUDONYMIZE,
        "group": Action.PSEUDONYMIZE,
        "uid": Action.PSEUDONYMIZE,
        "email": Action.PSEUDONYMIZE,
        "dn": Action.PSEUDONYMIZE,
        "fqan": Action.PSEUDONYMIZE,
        "secret": Action.PSEUDONYMIZE,
        "jobid": Action.PSEUDONYMIZE,
    },
    "irreversible": {
        "ip": Action.TRUNCATE,
        "host": Action.PSEUDONYMIZE,
        "user": Action.PSEUDONYMIZE,
        "group": Action.PSEUDONYMIZE,
        "uid": Action.PSEUDONYMIZE,
        "email": Action.REDACT,
        "dn": Action.REDACT,
        "fqan": Action.PSEUDONYMIZE,
        "secret": Action.REDACT,
        "jobid": Action.PSEUDONYMIZE,
    },
}

#: Which policy section governs each entity kind the scanner reports.
RULE_OF_KIND = {
    E.IPV4: "ip",
    E.IPV6: "ip",
    E.IPV6DASH: "ip",
    E.HOST: "host",
    E.USER: "user",
    E.GROUP: "group",
    E.UID: "uid",
    E.EMAIL: "email",
    E.DN: "dn",
    E.FQAN: "fqan",
    E.SECRET: "secret",
    E.JOBID: "jobid",
}

_SYSTEM_USERS = [
    "root",
    "bin",
    "daemon",
    "adm",
    "lp",
    "sync",
    "shutdown",
    "halt",
    "mail",
    "operator",
    "games",
    "ftp",
    "nobody",
    "condor",
    "glidein",
    "apache",
    "nfsnobody",
    "dbus",
    "polkitd",
    "sshd",
    "chrony",
    "postfix",
    "systemd-network",
    "users",
    "wheel",
    "tty",
    "disk",
]


class EntityRule(GwmsModel):
    """The rule for one kind of entity."""

    action: Action | None = Field(
        None, description="keep, pseudonymize, truncate or redact; unset: the mode's default"
    )
    allow: list[str] = Field(
        default_factory=list, description="values kept as they are (shell-style patterns)"
    )

    @cached_property
    def _exact(self) -> frozenset[str]:
        return frozenset(a.lower() for a in self.allow if not any(ch in a for ch in "*?["))

    @cached_property
    def _patterns(self) -> tuple[str, ...]:
        return tuple(a.lower() for a in self.allow if any(ch in a for ch in "*?["))

    def allows(self, value: str) -> bool:
        """True if ``value`` is on the allow-list (case-insensitive)."""
        low = value.lower()
        if low in self._exact:
            return True
        return any(fnmatch.fnmatchcase(low, p) for p in self._patterns)


class HostRule(EntityRule):
    """Host names; ``truncate`` keeps the last ``keep_labels`` labels (the site's domain)."""

    allow: list[str] = Field(
        default_factory=lambda: ["localhost", "localhost.localdomain", "*.anon", "*.invalid"],
        description="host names kept as they are (shell-style patterns), e.g. public factory and CE hosts",
    )
    keep_labels: int = Field(2, ge=1, le=10, description="labels kept by truncate")


class IpRule(EntityRule):
    """IP addresses; ``allow`` holds addresses or networks (CIDR)."""

    allow: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"],
        description="addresses or networks kept as they are",
    )
    ipv4_prefix: int = Field(
        24, ge=0, le=32, description="bits of an IPv4 address kept by truncate"
    )
    ipv6_prefix: int = Field(
        48, ge=0, le=128, description="bits of an IPv6 address kept by truncate"
    )

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @cached_property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The allow-list as networks."""
        return tuple(ipaddress.ip_network(a, strict=False) for a in self.allow)

    def allows(self, value: str) -> bool:
        """True if the address ``value`` (colon or dotted form) is in an allowed network."""
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)


class AnonymizationPolicy(GwmsModel):
    """Per entity kind: the action and the allow-list; plus the options of each mode."""

    ip: IpRule = Field(default_factory=IpRule)
    host: HostRule = Field(default_factory=HostRule)
    user: EntityRule = Field(default_factory=lambda: EntityRule(allow=list(_SYSTEM_USERS)))
    group: EntityRule = Field(default_factory=lambda: EntityRule(allow=list(_SYSTEM_USERS)))
    uid: EntityRule = Field(default_factory=lambda: EntityRule(allow=["0"]))
    email: EntityRule = Field(default_factory=EntityRule)
    dn: EntityRule = Field(default_factory=EntityRule)
    fqan: EntityRule = Field(default_factory=EntityRule)
    secret: EntityRule = Field(default_factory=EntityRule)
    jobid: EntityRule = Field(default_factory=EntityRule)
    audience: str = Field(
        "public",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="irreversible mode: whose pseudonyms these are (one HMAC key per audience)",
    )
    pseudonym_length: int = Field(
        16, ge=8, le=52, description="irreversible mode: base32 characters per pseudonym"
    )
    exact_sections: Literal["always", "when-needed", "never"] = Field(
        "always",
        description=(
            "reversible mode: keep an AES-SIV-encrypted copy of each original section in the "
            "first gzip member's comment (ignored by gzip readers) so de-anonymization gives back "
            "its exact bytes. 'always': every section (robust: recompressing is not byte-exact "
            "across gzip programs and zlib builds; sections grow about 2.3x); 'when-needed': only "
            "sections this machine's zlib cannot rebuild byte for byte (checked by recompressing); "
            "'never': sections come back with the same text, recompressed"
        ),
    )

    @model_validator(mode="after")
    def _truncate_only_where_it_means_something(self) -> AnonymizationPolicy:
        for name in ("user", "group", "uid", "email", "dn", "fqan", "secret", "jobid"):
            if getattr(self, name).action == Action.TRUNCATE:
                raise ValueError(f"{name}: 'truncate' applies only to ip and host")
        return self

    def rule(self, kind: str) -> EntityRule:
        """The rule governing an entity kind of :mod:`gwms.monitor.anonymize.entities`."""
        return getattr(self, RULE_OF_KIND[kind])

    def action(self, kind: str, mode: Mode) -> Action:
        """The action for ``kind`` in ``mode`` (the rule's, else the mode's default)."""
        name = RULE_OF_KIND[kind]
        rule = getattr(self, name)
        return rule.action if rule.action is not None else DEFAULT_ACTIONS[mode][name]

    def active_kinds(self, mode: Mode) -> frozenset[str]:
        """The entity kinds that are not simply kept (the scanner looks only for these)."""
        return frozenset(k for k in RULE_OF_KIND if self.action(k, mode) != Action.KEEP)


def load_policy(path: str | os.PathLike[str] | None) -> AnonymizationPolicy:
    """Load a policy file (YAML); the defaults when ``path`` is None.

    Raises:
        gwms.config.ConfigError: the file is missing, not YAML, or not a valid policy.
    """
    if path is None:
        return AnonymizationPolicy()
    return load_config(path, AnonymizationPolicy)


register_config_kind("anonymization", "gwms.monitor.anonymize.policy:AnonymizationPolicy")
