"""Pool tokens: issuing, verifying, each distinct failure, leeway, signing key files."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.errors import GwmsError
from gwms.security import scopes as S
from gwms.security.keyfiles import KeyFileError
from gwms.security.tokens import (
    SigningKey,
    TokenBadSignature,
    TokenClaims,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenMissingScope,
    TokenNotYetValid,
    TokenUnknownKey,
    TokenVerifier,
    TokenWrongAudience,
    TokenWrongIssuer,
    decode_unverified,
    generate_signing_key,
    issue_token,
    load_or_create_signing_key,
    load_signing_key,
    load_signing_keys,
    load_trust_domain,
    read_token_file,
    save_signing_key,
    save_trust_domain,
    write_token_file,
)

T0 = 1_800_000_000  # a fixed "now" for deterministic tests
KEY = SigningKey("POOL", b"k" * 32)
OTHER = SigningKey("POOL", b"o" * 32)
ISSUER = "pool.example"


def clock_at(t: float):
    return lambda: t


def verifier(**kw) -> TokenVerifier:
    kw.setdefault("clock", clock_at(T0))
    return TokenVerifier(KEY, ISSUER, **kw)


def token(**kw) -> str:
    kw.setdefault("issuer", ISSUER)
    kw.setdefault("subject", "alice@pool.example")
    kw.setdefault("scopes", [S.READ])
    kw.setdefault("now", T0)
    key = kw.pop("key", KEY)
    return issue_token(key, **kw)


def b64url_json(obj: dict) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --------------------------------------------------------------------------- happy path


def test_issued_token_has_the_documented_claims_and_header():
    tok = token(scopes=[S.WRITE, S.READ], lifetime=timedelta(hours=2))
    header, claims = decode_unverified(tok)
    assert header["alg"] == "HS256" and header["kid"] == "POOL"
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "alice@pool.example"
    assert claims["scope"] == "READ WRITE"
    assert claims["iat"] == claims["nbf"] == T0
    assert claims["exp"] == T0 + 7200
    assert len(claims["jti"]) == 32
    assert "aud" not in claims


def test_verify_returns_claims():
    tok = token(scopes=[S.READ, S.ADVERTISE_STARTD], extra_claims={"entry": "e1"})
    claims = verifier().verify(tok, [S.READ])
    assert isinstance(claims, TokenClaims)
    assert claims.subject == "alice@pool.example"
    assert claims.issuer == ISSUER
    assert claims.scopes == frozenset({S.READ, S.ADVERTISE_STARTD})
    assert claims.issued_at == datetime.fromtimestamp(T0, timezone.utc)
    assert claims.expires_at == datetime.fromtimestamp(T0 + 86400, timezone.utc)
    assert claims.key_id == "POOL"
    assert claims.audience == ()
    assert claims.extra == {"entry": "e1"}


def test_each_token_gets_a_unique_id():
    ids = {verifier().verify(token()).token_id for _ in range(20)}
    assert len(ids) == 20


def test_lifetime_accepts_seconds_and_datetime_now():
    now = datetime.fromtimestamp(T0, timezone.utc)
    claims = verifier().verify(token(lifetime=60, now=now))
    assert claims.expires_at - claims.issued_at == timedelta(seconds=60)


def test_verifier_accepts_several_issuers_and_keys():
    k2 = SigningKey("NEW", b"n" * 32)
    v = TokenVerifier({"POOL": KEY, "NEW": k2}, ["a.example", "b.example"], clock=clock_at(T0))
    assert v.verify(token(issuer="a.example")).issuer == "a.example"
    assert v.verify(token(key=k2, issuer="b.example")).key_id == "NEW"
    assert v.issuers == {"a.example", "b.example"} and v.key_ids == {"POOL", "NEW"}


def test_verify_tolerates_surrounding_whitespace():
    assert verifier().verify("  " + token() + "\n").subject == "alice@pool.example"


# --------------------------------------------------------------------------- each distinct error


def test_every_error_is_a_token_error_and_a_gwms_error():
    for cls in (
        TokenMalformed,
        TokenExpired,
        TokenNotYetValid,
        TokenWrongIssuer,
        TokenUnknownKey,
        TokenBadSignature,
        TokenWrongAudience,
        TokenMissingScope,
    ):
        assert issubclass(cls, TokenError) and issubclass(cls, GwmsError)


@pytest.mark.parametrize(
    "text",
    ["", "not a token", "a.b.c", "a.b", "x" * 9000, "eyJhbGciOiJIUzI1NiJ9.e30"],
)
def test_malformed(text):
    with pytest.raises(TokenMalformed):
        verifier().verify(text)


def test_malformed_algorithm_none_is_refused():
    header = b64url_json({"alg": "none", "kid": "POOL"})
    body = b64url_json({"iss": ISSUER, "sub": "a@b", "scope": "ADMINISTRATOR"})
    with pytest.raises(TokenMalformed, match="algorithm"):
        verifier().verify(f"{header}.{body}.")


def test_malformed_missing_kid():
    tok = jwt.encode({"iss": ISSUER}, KEY.secret, algorithm="HS256")
    with pytest.raises(TokenMalformed, match="kid"):
        verifier().verify(tok)


@pytest.mark.parametrize(
    "drop_or_change",
    [
        {"iss": None},
        {"sub": None},
        {"exp": None},
        {"iat": None},
        {"jti": None},
        {"exp": "tomorrow"},
        {"iat": True},
        {"scope": ["READ"]},
        {"scope": "READ\x00"},
        {"sub": "no-at-sign"},
        {"sub": "../etc@x"},
        {"aud": 5},
    ],
)
def test_malformed_claims_signed_with_the_right_key(drop_or_change):
    claims = {
        "iss": ISSUER,
        "sub": "a@b",
        "scope": "READ",
        "iat": T0,
        "nbf": T0,
        "exp": T0 + 60,
        "jti": "x",
    }
    for name, value in drop_or_change.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    tok = jwt.encode(claims, KEY.secret, algorithm="HS256", headers={"kid": "POOL"})
    with pytest.raises(TokenMalformed):
        verifier().verify(tok)


def test_expired():
    tok = token(lifetime=100)
    with pytest.raises(TokenExpired, match="expired"):
        verifier(clock=clock_at(T0 + 100 + 60), leeway_seconds=60).verify(tok)


def test_not_yet_valid_nbf():
    tok = token(extra_claims={}, now=T0 + 1000)
    with pytest.raises(TokenNotYetValid):
        verifier().verify(tok)


def test_not_yet_valid_by_nbf_alone():
    claims = {
        "iss": ISSUER,
        "sub": "a@b",
        "scope": "READ",
        "iat": T0,
        "nbf": T0 + 500,
        "exp": T0 + 1000,
        "jti": "j",
    }
    tok = jwt.encode(claims, KEY.secret, algorithm="HS256", headers={"kid": "POOL"})
    with pytest.raises(TokenNotYetValid, match="not valid before"):
        verifier().verify(tok)
    assert verifier(clock=clock_at(T0 + 500)).verify(tok).subject == "a@b"


def test_wrong_issuer():
    with pytest.raises(TokenWrongIssuer, match="other.example"):
        verifier().verify(token(issuer="other.example"))


def test_unknown_key():
    with pytest.raises(TokenUnknownKey, match="NEW"):
        verifier().verify(token(key=SigningKey("NEW", b"n" * 32)))


def test_bad_signature_other_secret_same_kid():
    with pytest.raises(TokenBadSignature):
        verifier().verify(token(key=OTHER))


def test_bad_signature_altered_payload():
    head, _body, sig = token(scopes=[S.READ]).split(".")
    _, claims = decode_unverified(token(scopes=[S.READ]))
    claims["scope"] = "ADMINISTRATOR"
    with pytest.raises(TokenBadSignature):
        verifier().verify(f"{head}.{b64url_json(claims)}.{sig}")


def test_bad_signature_is_checked_before_expiry():
    # an attacker learns nothing about claim checks from a forged token
    with pytest.raises(TokenBadSignature):
        verifier(clock=clock_at(T0 + 10**7)).verify(token(key=OTHER))


def test_wrong_audience():
    tok = token(audience="collector")
    assert verifier(audience="collector").verify(tok).audience == ("collector",)
    assert verifier(audience=["schedd", "collector"]).verify(tok).audience == ("collector",)
    with pytest.raises(TokenWrongAudience):
        verifier(audience="schedd").verify(tok)
    with pytest.raises(TokenWrongAudience):
        verifier().verify(tok)  # meant for a service; this one accepts no audience
    with pytest.raises(TokenWrongAudience):
        verifier(audience="schedd").verify(token())  # no aud where one is required


def test_missing_scope_lists_the_missing_ones():
    tok = token(scopes=[S.READ])
    with pytest.raises(TokenMissingScope) as info:
        verifier().verify(tok, [S.READ, S.WRITE, S.DAEMON])
    assert info.value.missing == {S.WRITE, S.DAEMON}
    assert "DAEMON WRITE" in str(info.value)


def test_administrator_implies_every_scope():
    tok = token(scopes=[S.ADMINISTRATOR])
    assert verifier().verify(tok, S.ALL_SCOPES | {"CUSTOM"}).scopes == {S.ADMINISTRATOR}


# --------------------------------------------------------------------------- leeway


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-60, True), (-61, False), (99, True), (100 + 59, True), (100 + 60, False)],
)
def test_leeway_on_both_ends(offset, ok):
    """Issued at T0, valid 100 s, leeway 60 s: accepted from T0-60 up to (not at) T0+160."""
    tok = token(lifetime=100)
    v = verifier(clock=clock_at(T0 + offset), leeway_seconds=60)
    if ok:
        assert v.verify(tok).subject == "alice@pool.example"
    else:
        with pytest.raises((TokenExpired, TokenNotYetValid)):
            v.verify(tok)


def test_zero_leeway_is_exact():
    tok = token(lifetime=100)
    assert verifier(clock=clock_at(T0 + 99.9), leeway_seconds=0).verify(tok)
    with pytest.raises(TokenExpired):
        verifier(clock=clock_at(T0 + 100), leeway_seconds=0).verify(tok)
    with pytest.raises(TokenNotYetValid):
        verifier(clock=clock_at(T0 - 0.1), leeway_seconds=0).verify(tok)


# --------------------------------------------------------------------------- issuing refuses


@pytest.mark.parametrize(
    "kw",
    [
        {"subject": "alice"},
        {"subject": "a/b@c"},
        {"issuer": ""},
        {"issuer": "has space"},
        {"scopes": ["BAD SCOPE"]},
        {"lifetime": 0},
        {"lifetime": timedelta(seconds=-5)},
        {"extra_claims": {"exp": 1}},
        {"extra_claims": {"scope": "ADMINISTRATOR"}},
    ],
)
def test_issue_refuses_bad_input(kw):
    with pytest.raises(GwmsError):
        token(**kw)


def test_issue_refuses_naive_datetime():
    with pytest.raises(ValueError):
        token(now=datetime(2030, 1, 1))


def test_verifier_refuses_no_keys_or_no_issuer():
    with pytest.raises(GwmsError):
        TokenVerifier({}, ISSUER)
    with pytest.raises(GwmsError):
        TokenVerifier(KEY, [])


# --------------------------------------------------------------------------- the scope property

custom_scope = st.from_regex(r"[A-Z][A-Z_]{0,10}", fullmatch=True)
scope_pool = st.sampled_from(sorted(S.ALL_SCOPES)) | custom_scope


@settings(max_examples=150, deadline=None)
@given(granted=st.frozensets(scope_pool, max_size=6), data=st.data())
def test_scope_property(granted, data):
    """Any subset of the granted scopes verifies; any scope outside fails unless ADMINISTRATOR."""
    tok = token(scopes=granted)
    v = verifier()
    subset = data.draw(
        st.frozensets(st.sampled_from(sorted(granted))) if granted else st.just(frozenset())
    )
    assert v.verify(tok, subset).scopes == granted
    outside = data.draw(scope_pool.filter(lambda s: s not in granted))
    required = subset | {outside}
    if S.ADMINISTRATOR in granted:
        assert v.verify(tok, required).scopes == granted
    else:
        with pytest.raises(TokenMissingScope) as info:
            v.verify(tok, required)
        assert info.value.missing == required - granted


@settings(max_examples=100, deadline=None)
@given(
    lifetime=st.integers(1, 10**7), leeway=st.integers(0, 600), at=st.integers(-(10**7), 2 * 10**7)
)
def test_validity_window_property(lifetime, leeway, at):
    """A token verifies exactly when iat - leeway <= now < exp + leeway."""
    tok = token(lifetime=lifetime)
    v = verifier(clock=clock_at(T0 + at), leeway_seconds=leeway)
    if -leeway <= at < lifetime + leeway:
        v.verify(tok)
    elif at < -leeway:
        with pytest.raises(TokenNotYetValid):
            v.verify(tok)
    else:
        with pytest.raises(TokenExpired):
            v.verify(tok)


# --------------------------------------------------------------------------- key files


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_load_or_create_makes_a_0600_key_and_reloads_it(tmp_path):
    d = tmp_path / "keys"
    key = load_or_create_signing_key(d)
    assert key.kid == "POOL" and len(key.secret) == 64
    assert mode(d / "POOL.key") == 0o600
    assert mode(d) == 0o700
    again = load_or_create_signing_key(d)
    assert again == key
    assert load_signing_key(d, "POOL") == key


def test_key_is_created_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        load_or_create_signing_key(tmp_path, "K1")
    finally:
        os.umask(old)
    assert mode(tmp_path / "K1.key") == 0o600


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o620, 0o644, 0o666])
def test_a_key_file_readable_by_others_is_refused(tmp_path, bad_mode):
    load_or_create_signing_key(tmp_path)
    os.chmod(tmp_path / "POOL.key", bad_mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_signing_key(tmp_path)
    with pytest.raises(KeyFileError, match="group or others"):
        load_signing_keys(tmp_path)


def test_load_signing_keys_finds_every_key(tmp_path):
    a = load_or_create_signing_key(tmp_path, "POOL")
    b = load_or_create_signing_key(tmp_path, "NEXT")
    (tmp_path / "trust-domain").write_text("x\n")
    (tmp_path / "README").write_text("not a key")
    assert load_signing_keys(tmp_path) == {"POOL": a, "NEXT": b}


def test_load_signing_keys_errors(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_signing_keys(tmp_path / "missing")
    fd = os.open(tmp_path / "SHORT.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, base64.urlsafe_b64encode(b"short"))
    os.close(fd)
    with pytest.raises(KeyFileError, match="at least 32"):
        load_signing_keys(tmp_path)


def test_save_signing_key_never_overwrites(tmp_path):
    key = generate_signing_key("POOL")
    save_signing_key(tmp_path, key)
    assert load_signing_key(tmp_path) == key
    with pytest.raises(KeyFileError, match="already exists"):
        save_signing_key(tmp_path, generate_signing_key("POOL"))
    assert load_signing_key(tmp_path) == key


def test_signing_key_validation_and_secret_hidden():
    with pytest.raises(GwmsError):
        SigningKey("../x", b"k" * 32)
    with pytest.raises(KeyFileError):
        SigningKey("POOL", b"short")
    assert "kkkk" not in repr(KEY)


def test_token_files(tmp_path):
    tok = token()
    path = write_token_file(tmp_path / "t.token", tok)
    assert mode(path) == 0o600
    assert read_token_file(path) == tok
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError):
        read_token_file(path)


def test_trust_domain_file(tmp_path):
    assert load_trust_domain(tmp_path) is None
    save_trust_domain(tmp_path, "pool.example")
    assert load_trust_domain(tmp_path) == "pool.example"
    with pytest.raises(GwmsError):
        save_trust_domain(tmp_path, "bad name")


def test_a_key_from_disk_verifies_a_token_end_to_end(tmp_path):
    key = load_or_create_signing_key(tmp_path)
    tok = issue_token(key, issuer=ISSUER, subject="fe@host", scopes=[S.ADVERTISE_FRONTEND])
    v = TokenVerifier(load_signing_keys(tmp_path), ISSUER)
    assert v.verify(tok, [S.ADVERTISE_FRONTEND]).subject == "fe@host"


def test_http_status_of_token_errors():
    """A refused token is 401, a missing scope 403, if a service lets the error through."""
    assert TokenExpired("x").http_status == 401
    assert TokenBadSignature("x").http_status == 401
    assert TokenMissingScope({"READ"}).http_status == 403


def test_cached_tokens_are_still_checked_for_expiry_and_scope() -> None:
    """The signature cache skips only the signature: expiry and scopes are checked each time."""
    from gwms.security.tokens import TokenExpired, TokenMissingScope, TokenVerifier, generate_signing_key, issue_token

    now = [1_000_000.0]
    key = generate_signing_key("K1")
    token = issue_token(key, issuer="pool.test", subject="alice@pool.test", scopes=["READ"], lifetime=100, now=now[0])
    verifier = TokenVerifier(key, "pool.test", leeway_seconds=0, clock=lambda: now[0])
    assert verifier.verify(token, ["READ"]).subject == "alice@pool.test"
    with pytest.raises(TokenMissingScope):
        verifier.verify(token, ["WRITE"])
    now[0] += 101
    with pytest.raises(TokenExpired):
        verifier.verify(token, ["READ"])
