"""init_security: what it makes, that it keeps what exists, and that the pieces fit together."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import pytest

from gwms.errors import UsageError
from gwms.security import scopes as S
from gwms.security.layout import SecurityLayout, default_trust_domain, init_security
from gwms.security.tokens import TokenExpired, issue_token, load_signing_key


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_init_makes_everything(tmp_path):
    layout, steps = init_security(
        tmp_path / "sec", hosts=["ce.example.org"], trust_domain="pool.test"
    )
    assert [s.action for s in steps] == ["created"] * 5
    assert [s.what for s in steps] == [
        "pool signing key",
        "trust domain",
        "CA",
        "service certificate",
        "admin token",
    ]
    for p in (
        layout.signing_key_path,
        layout.admin_token_path,
        layout.ca_dir / "ca.key",
        layout.ca_dir / "service.key",
    ):
        assert mode(p) == 0o600, p
    for d in (layout.root, layout.keys_dir, layout.tokens_dir):
        assert mode(d) == 0o700
    assert layout.trust_domain() == "pool.test"
    claims = layout.verifier().verify(layout.admin_token(), [S.ADMINISTRATOR, S.WRITE])
    assert claims.subject == "admin@pool.test" and claims.scopes == {S.ADMINISTRATOR}
    assert claims.expires_at - claims.issued_at == timedelta(days=365)
    cert = layout.service_cert()
    assert cert.hosts == ("127.0.0.1", "localhost", "ce.example.org")
    assert cert.ca_cert_path == layout.ca_cert_path


def test_init_is_idempotent_and_never_overwrites(tmp_path):
    layout, _ = init_security(tmp_path, trust_domain="pool.test")
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    _, steps = init_security(tmp_path, hosts=["new.example.org"])
    assert [s.action for s in steps] == ["kept"] * 5
    assert {p: p.read_bytes() for p in files} == before
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files
    cert_step = next(s for s in steps if s.what == "service certificate")
    assert "does not cover new.example.org" in cert_step.note
    assert "admin@pool.test" in next(s for s in steps if s.what == "admin token").note


def test_init_fills_in_what_is_missing(tmp_path):
    layout, _ = init_security(tmp_path, trust_domain="pool.test")
    key_before = layout.signing_key_path.read_bytes()
    layout.admin_token_path.unlink()
    (layout.ca_dir / "service.pem").unlink()
    (layout.ca_dir / "service.key").unlink()
    _, steps = init_security(tmp_path, hosts=["extra.example"])
    actions = {s.what: s.action for s in steps}
    assert actions == {
        "pool signing key": "kept",
        "trust domain": "kept",
        "CA": "kept",
        "service certificate": "created",
        "admin token": "created",
    }
    assert layout.signing_key_path.read_bytes() == key_before
    assert "extra.example" in layout.service_cert().hosts
    layout.verifier().verify(layout.admin_token(), [S.ADMINISTRATOR])


def test_init_reports_an_admin_token_that_no_longer_verifies(tmp_path):
    layout, _ = init_security(tmp_path, trust_domain="pool.test")
    key = load_signing_key(layout.keys_dir)
    old = issue_token(
        key,
        issuer="pool.test",
        subject="admin@pool.test",
        scopes=[S.ADMINISTRATOR],
        lifetime=10,
        now=1_000_000,
    )
    layout.admin_token_path.write_text(old + "\n")
    with pytest.raises(TokenExpired):
        layout.verifier().verify(layout.admin_token())
    _, steps = init_security(tmp_path)
    note = next(s for s in steps if s.what == "admin token").note
    assert "does not verify" in note and "expired" in note
    assert layout.admin_token_path.read_text().strip() == old  # still not overwritten


def test_trust_domain_rules(tmp_path):
    init_security(tmp_path / "a", trust_domain="pool.test")
    with pytest.raises(UsageError, match="already uses trust domain 'pool.test'"):
        init_security(tmp_path / "a", trust_domain="other.test")
    init_security(tmp_path / "a", trust_domain="pool.test")  # the same one is fine
    with pytest.raises(UsageError, match="invalid trust domain"):
        init_security(tmp_path / "b", trust_domain="bad/domain")
    layout, _ = init_security(tmp_path / "c")
    assert layout.trust_domain() == default_trust_domain()


def test_layout_of_an_uninitialized_directory(tmp_path):
    from gwms.errors import GwmsError

    with pytest.raises(GwmsError, match="gwms security init"):
        SecurityLayout(tmp_path).trust_domain()
