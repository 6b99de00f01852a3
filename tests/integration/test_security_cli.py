"""`gwms security ...` run as a real command: files, permissions, idempotence, tokens."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gwms.security import scopes as S
from gwms.security.tokens import (
    TokenMissingScope,
    TokenVerifier,
    load_signing_keys,
    read_token_file,
)

pytestmark = pytest.mark.integration

GWMS = Path(sys.executable).with_name("gwms")
if not GWMS.exists():  # pragma: no cover - the documented location
    GWMS = Path("/work/main/.venv/bin/gwms")


def gwms(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(GWMS), *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"gwms {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stderr.startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def secdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "sec"
    proc = gwms(
        "security", "init", str(d), "--host", "node1.example.org", "--trust-domain", "pool.test"
    )
    assert proc.stdout.count("created") == 5
    return d


def test_init_files_and_permissions(secdir):
    expected_0600 = ["keys/POOL.key", "ca/ca.key", "ca/service.key", "tokens/admin.token"]
    for rel in expected_0600:
        assert mode(secdir / rel) == 0o600, rel
    for rel in ("ca/ca.pem", "ca/service.pem"):
        assert mode(secdir / rel) == 0o644, rel
    for rel in ("keys", "tokens"):
        assert mode(secdir / rel) == 0o700
    keys = load_signing_keys(secdir / "keys")
    claims = TokenVerifier(keys, "pool.test").verify(
        read_token_file(secdir / "tokens/admin.token"), [S.ADMINISTRATOR]
    )
    assert claims.subject == "admin@pool.test"


def test_init_again_keeps_everything(secdir):
    before = {p: p.read_bytes() for p in secdir.rglob("*") if p.is_file()}
    proc = gwms("security", "init", str(secdir))
    assert "created" not in proc.stdout
    assert proc.stdout.count("kept existing") == 5
    assert "pool signing key" in proc.stdout and "trust domain pool.test" in proc.stdout
    assert {p: p.read_bytes() for p in secdir.rglob("*") if p.is_file()} == before


def test_init_refuses_another_trust_domain(secdir):
    proc = gwms("security", "init", str(secdir), "--trust-domain", "other.test", check=False)
    assert_clean_error(proc, "already uses trust domain")
    assert proc.returncode == 2


def test_issue_to_stdout_verifies(secdir):
    proc = gwms(
        "security",
        "token",
        "issue",
        "--keys",
        str(secdir / "keys"),
        "--subject",
        "glidein@entry1",
        "--scope",
        "READ",
        "--scope",
        "advertise_startd",
        "--lifetime",
        "1h",
    )
    token = proc.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    verifier = TokenVerifier(load_signing_keys(secdir / "keys"), "pool.test")
    claims = verifier.verify(token, [S.READ, S.ADVERTISE_STARTD])
    assert claims.subject == "glidein@entry1"
    assert (claims.expires_at - claims.issued_at).total_seconds() == 3600
    with pytest.raises(TokenMissingScope):
        verifier.verify(token, [S.WRITE])


def test_issue_to_file_and_inspect(secdir):
    out = secdir / "tokens" / "fe.token"
    proc = gwms(
        "security",
        "token",
        "issue",
        "--keys",
        str(secdir / "keys"),
        "--subject",
        "frontend@pool.test",
        "--scope",
        "ADVERTISE_FRONTEND",
        "--out",
        str(out),
    )
    assert proc.stdout == ""  # the token is in the file, not on the screen
    assert "wrote" in proc.stderr
    assert mode(out) == 0o600
    shown = gwms("security", "token", "inspect", str(out), "--keys", str(secdir / "keys"))
    assert "frontend@pool.test" in shown.stdout
    assert "ADVERTISE_FRONTEND" in shown.stdout
    assert "verified with key POOL, issuer pool.test" in shown.stdout
    unverified = gwms("security", "token", "inspect", read_token_file(out))
    assert "frontend@pool.test" in unverified.stdout and "not checked" in unverified.stdout


def test_inspect_refuses_a_tampered_token(secdir):
    token = read_token_file(secdir / "tokens/admin.token")
    head, body, sig = token.split(".")
    forged = f"{head}.{body}.{sig[:-2]}{'A' if sig[-2] != 'A' else 'B'}{sig[-1]}"
    proc = gwms("security", "token", "inspect", forged, "--keys", str(secdir / "keys"), check=False)
    assert_clean_error(proc, "signature does not match")


def test_inspect_with_the_wrong_issuer(secdir):
    token = read_token_file(secdir / "tokens/admin.token")
    proc = gwms(
        "security",
        "token",
        "inspect",
        token,
        "--keys",
        str(secdir / "keys"),
        "--issuer",
        "elsewhere",
        check=False,
    )
    assert_clean_error(proc, "issued by 'pool.test'")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--subject", "alice", "--scope", "READ"], ["invalid identity"]),
        (["--subject", "a@b", "--scope", "NOPE"], ["unknown scope 'NOPE'"]),
        (["--subject", "a@b", "--scope", "READ", "--lifetime", "soon"], ["invalid duration"]),
        (["--subject", "a@b", "--scope", "READ", "--kid", "OTHER"], ["no key 'OTHER'"]),
    ],
)
def test_issue_errors_are_one_line(secdir, args, needles):
    proc = gwms("security", "token", "issue", "--keys", str(secdir / "keys"), *args, check=False)
    assert_clean_error(proc, *needles)


def test_missing_key_directory_and_open_key_file(tmp_path, secdir):
    proc = gwms(
        "security",
        "token",
        "issue",
        "--keys",
        str(tmp_path / "nope"),
        "--subject",
        "a@b",
        "--scope",
        "READ",
        check=False,
    )
    assert_clean_error(proc, "does not exist")
    d = tmp_path / "sec"
    gwms("security", "init", str(d), "--trust-domain", "t.test")
    os.chmod(d / "keys" / "POOL.key", 0o644)
    proc = gwms(
        "security",
        "token",
        "issue",
        "--keys",
        str(d / "keys"),
        "--subject",
        "a@b",
        "--scope",
        "READ",
        check=False,
    )
    assert_clean_error(proc, "chmod 600")
    proc = gwms("security", "init", str(d), check=False)
    assert_clean_error(proc, "group or others")


def test_inspect_of_nonsense(tmp_path):
    assert_clean_error(gwms("security", "token", "inspect", "nonsense", check=False), "neither")
    assert_clean_error(gwms("security", "token", "inspect", "a.b.c", check=False), "malformed")
    assert_clean_error(
        gwms("security", "token", "inspect", "x" * 5000 + ".b.c", check=False), "malformed"
    )
