"""``gwms collector``: where the collector's token verifier comes from, and its help."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from gwms.cli.collector import collector, load_verifier
from gwms.security.layout import SecurityLayout, init_security
from gwms.security.tokens import issue_token, load_signing_key, load_trust_domain


def test_uses_the_keys_of_gwms_security_init(tmp_path: Path) -> None:
    layout, _ = init_security(tmp_path / "data", trust_domain="pool.example")
    verifier = load_verifier(tmp_path / "data")
    claims = verifier.verify(layout.admin_token())
    assert claims.subject == "admin@pool.example"


def test_creates_a_signing_key_and_trust_domain_when_missing(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    verifier = load_verifier(data)
    keys = SecurityLayout(data).keys_dir
    assert (keys / "POOL.key").stat().st_mode & 0o077 == 0
    issuer = load_trust_domain(keys)
    assert issuer
    token = issue_token(
        load_signing_key(keys, "POOL"), issuer=issuer, subject=f"x@{issuer}", scopes=["READ"]
    )
    assert verifier.verify(token).scopes == frozenset({"READ"})
    # A second start keeps the same key.
    again = load_verifier(data)
    assert again.verify(token).subject == f"x@{issuer}"


def test_run_help_documents_soft_state() -> None:
    result = CliRunner().invoke(collector, ["run", "--help"])
    assert result.exit_code == 0
    assert "--data" in result.output and "--port" in result.output
    assert "memory only" in result.output
