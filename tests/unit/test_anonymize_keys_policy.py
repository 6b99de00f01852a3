"""Key directories (0600 files, ids, rotation) and policies (YAML, defaults, allow-lists)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gwms.config import ConfigError
from gwms.monitor.anonymize import entities as E
from gwms.monitor.anonymize.keys import AnonKeyError, KeyRing, init_keys, load_keys, rotate_keys
from gwms.monitor.anonymize.policy import Action, AnonymizationPolicy, load_policy
from gwms.security.keyfiles import KeyFileError


def test_init_writes_private_files_and_loads_back(tmp_path: Path) -> None:
    ring = init_keys(tmp_path / "keys", "k1")
    d = tmp_path / "keys"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in d.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    again = load_keys(d)
    assert again.current.kid == "k1" and again.current.secret == ring.current.secret
    assert len(again.current.siv_key) == 64 and len(again.current.cryptopan_key) == 32
    assert again.current.hmac_key("public") != again.current.hmac_key("vo-cms")
    with pytest.raises(AnonKeyError, match="already holds"):
        init_keys(d)


def test_rotation_keeps_old_keys(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    init_keys(d, "k1")
    ring = rotate_keys(d, "k2")
    assert ring.current.kid == "k2" and ring.kids == ["k1", "k2"]
    assert ring.require("k1").secret != ring.require("k2").secret
    ring = rotate_keys(d)
    assert len(ring) == 3 and ring.current.kid not in ("k1", "k2")
    with pytest.raises(AnonKeyError, match="already holds a key"):
        rotate_keys(d, "k1")
    with pytest.raises(AnonKeyError, match="no anonymization key"):
        ring.require("nope")


def test_too_open_key_files_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    init_keys(d, "k1")
    os.chmod(d / "k1.key", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_keys(d)


def test_missing_or_bad_key_dirs(tmp_path: Path) -> None:
    with pytest.raises(AnonKeyError, match="not a key directory"):
        load_keys(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnonKeyError, match="keyring.json"):
        load_keys(tmp_path / "empty")
    with pytest.raises(AnonKeyError, match="invalid anonymization key id"):
        init_keys(tmp_path / "k", "Has_Upper")
    with pytest.raises(AnonKeyError):
        KeyRing.from_secret(b"short")


def test_default_actions_per_mode() -> None:
    p = AnonymizationPolicy()
    assert p.action(E.IPV4, "reversible") == Action.PSEUDONYMIZE
    assert p.action(E.IPV6DASH, "irreversible") == Action.TRUNCATE
    assert p.action(E.DN, "irreversible") == Action.REDACT
    assert p.action(E.EMAIL, "irreversible") == Action.REDACT
    assert p.action(E.SECRET, "irreversible") == Action.REDACT
    assert p.action(E.USER, "irreversible") == Action.PSEUDONYMIZE
    assert p.active_kinds("reversible") == frozenset(E.ENTITY_KINDS)


def test_policy_from_yaml_with_allow_lists(tmp_path: Path) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(
        "host:\n  allow: ['*.opensciencegrid.org', ce01.example.edu]\n"
        "ip:\n  action: truncate\n  ipv4_prefix: 16\n  allow: ['131.225.0.0/16']\n"
        "user:\n  action: keep\n"
        "dn:\n  action: redact\n"
    )
    p = load_policy(f)
    assert p.host.allows("GFACTORY-2.opensciencegrid.org") and p.host.allows("ce01.example.edu")
    assert not p.host.allows("wn01.example.edu")
    assert p.ip.allows("131.225.1.2") and not p.ip.allows("131.226.1.2")
    assert p.ip.ipv4_prefix == 16
    assert p.action(E.USER, "reversible") == Action.KEEP
    assert E.USER not in p.active_kinds("reversible")
    assert p.action(E.DN, "reversible") == Action.REDACT


@pytest.mark.parametrize(
    "text, message",
    [
        ("user:\n  action: truncate\n", "truncate"),
        ("ip:\n  allow: [not-an-ip]\n", "not an IP"),
        ("hots:\n  allow: []\n", "hots"),
        ("ip:\n  ipv4_prefix: 40\n", "ipv4_prefix"),
    ],
)
def test_bad_policies_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_policy(f)
