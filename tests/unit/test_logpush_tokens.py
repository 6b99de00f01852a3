"""Log-push tokens: minting by the factory, verification by the monitor, the push decision."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.errors import GwmsError
from gwms.factory.config import FactoryConfig
from gwms.security.logtoken import (
    LOG_PUSH_SCOPE,
    LogTokenMinter,
    LogTokenVerifier,
    load_public_keys,
    mint_log_token,
    public_key_path,
    write_public_key,
)
from gwms.monitor.push import push_target
from gwms.net.errors import ApiError
from gwms.security.hybrid import RsaKeyPair
from gwms.security.keyfiles import KeyFileError
from gwms.security.tokens import (
    TokenBadSignature,
    TokenError,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenUnknownKey,
    TokenWrongAudience,
)

URL = "https://monitor.example:8090/v1/push"
NOW = 1_800_000_000.0
KEY = RsaKeyPair.generate("gfactory-v1", 2048)
OTHER = RsaKeyPair.generate("gfactory-v1", 2048)  # same id, another key
ED = ed25519.Ed25519PrivateKey.generate()


def token(key=KEY, *, entry: str = "CE_1", cluster: int = 12, lifetime: float = 3600, now: float = NOW,
          audience: str = URL, kid: str | None = None) -> str:
    return mint_log_token(key, factory="gfactory", instance="v1", entry=entry, user="fe1", cluster=cluster,
                          audience=audience, lifetime_s=lifetime, now=now, kid=kid)


def verifier(now: float = NOW, **keys) -> LogTokenVerifier:
    return LogTokenVerifier(keys or {"gfactory-v1": KEY.public_key}, URL, clock=lambda: now, leeway_seconds=60)


def test_a_minted_token_verifies_and_names_the_batch_directory() -> None:
    grant = verifier().verify(token())
    assert (grant.factory, grant.instance, grant.entry, grant.user, grant.cluster) == ("gfactory", "v1", "CE_1", "fe1", 12)
    assert grant.directory == "user_fe1/glidein_v1/entry_CE_1" and grant.key_id == "gfactory-v1"
    assert grant.expires == NOW + 3600
    header = jwt.get_unverified_header(token())
    claims = jwt.decode(token(), options={"verify_signature": False})
    assert header["alg"] == "RS256" and header["kid"] == "gfactory-v1"
    assert claims["aud"] == URL and claims["scope"] == LOG_PUSH_SCOPE and claims["iss"] == "gfactory"
    assert claims["sub"] == "user_fe1/glidein_v1/entry_CE_1/job.12"


def test_ed25519_tokens_verify_with_eddsa() -> None:
    t = token(ED, kid="ed1")
    assert jwt.get_unverified_header(t)["alg"] == "EdDSA"
    assert verifier(ed1=ED.public_key()).verify(t).entry == "CE_1"
    with pytest.raises(TokenMalformed, match="does not fit"):  # an RS256 token for an Ed25519 key id
        verifier(ed1=ED.public_key()).verify(token(kid="ed1"))


@pytest.mark.parametrize("make, check, error", [
    (lambda: token(lifetime=60), NOW + 121, TokenExpired),
    (lambda: token(now=NOW + 600), NOW, TokenNotYetValid),
    (lambda: token(audience="https://other-monitor:8090/v1/push"), NOW, TokenWrongAudience),
    (lambda: token(OTHER), NOW, TokenBadSignature),
    (lambda: token(kid="nobody"), NOW, TokenUnknownKey),
    (lambda: "not.a.token", NOW, TokenMalformed),
    (lambda: "", NOW, TokenMalformed),
])
def test_refused_tokens_say_why(make, check, error) -> None:
    with pytest.raises(error):
        verifier(now=check).verify(make())


def test_within_the_leeway_an_expired_token_still_passes() -> None:
    assert verifier(now=NOW + 3600 + 30).verify(token()).cluster == 12


def test_a_token_signed_with_the_public_key_as_hmac_secret_is_refused() -> None:
    """The algorithm confusion attack: HS256 with the PEM public key as the secret."""
    claims = jwt.decode(token(), options={"verify_signature": False})
    forged = jwt.encode(claims, "x" * 64, algorithm="HS256", headers={"kid": "gfactory-v1"})
    with pytest.raises(TokenMalformed):
        verifier().verify(forged)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "gfactory-v1"})
    with pytest.raises(TokenMalformed):
        verifier().verify(unsigned)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_pool_style_token_without_the_push_scope_is_refused() -> None:
    claims = jwt.decode(token(), options={"verify_signature": False})
    claims["scope"] = "READ"
    other = jwt.encode(claims, KEY.private_key, algorithm="RS256", headers={"kid": "gfactory-v1"})
    with pytest.raises(TokenMalformed, match="not a log-push token"):
        verifier().verify(other)


@settings(max_examples=150, deadline=None)
@given(part=st.integers(0, 2), position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_any_tampering_is_refused(part: int, position: int, flip: int) -> None:
    """Changing any byte of the header, the claims or the signature makes the token fail."""
    pieces = token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(pieces[part] + "=" * (-len(pieces[part]) % 4)))
    raw[position % len(raw)] ^= flip
    pieces[part] = _b64(bytes(raw))
    with pytest.raises(TokenError):
        verifier().verify(".".join(pieces))


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(["entry", "user", "instance", "cluster", "factory", "aud", "exp", "sub"]),
       value=st.one_of(st.text(max_size=20), st.integers(-5, 10**12)))
def test_changed_claims_with_the_old_signature_are_refused(field: str, value: object) -> None:
    header_b64, claims_b64, sig = token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    if claims.get(field) == value:
        return
    claims[field] = value
    forged = ".".join([header_b64, _b64(json.dumps(claims).encode()), sig])
    with pytest.raises(TokenError):
        verifier().verify(forged)


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", ".hidden", "a b", "x" * 101])
def test_unsafe_names_cannot_be_minted(bad: str) -> None:
    with pytest.raises(GwmsError):
        token(entry=bad)


def test_the_minter_caches_per_batch_and_sets_the_lifetime_from_the_walltime() -> None:
    clock = [NOW]
    minter = LogTokenMinter(KEY, factory="gfactory", instance="v1", url=URL + "/", interval_s=30,
                            clock=lambda: clock[0])
    a = minter.token(entry="CE_1", user="fe1", cluster=7, walltime_s=3600)
    assert minter.token(entry="CE_1", user="fe1", cluster=7, walltime_s=3600) == a
    assert minter.token(entry="CE_1", user="fe1", cluster=8, walltime_s=3600) != a
    grant = verifier().verify(a)
    assert grant.cluster == 7 and grant.expires == NOW + 3600 + 2 * 86400
    clock[0] += 0.2 * (3600 + 2 * 86400)  # most of its life gone: a fresh one
    assert minter.token(entry="CE_1", user="fe1", cluster=7, walltime_s=3600) != a
    settings_ = minter.settings(entry="CE_1", user="fe1", cluster=7)
    assert settings_.url == URL and settings_.interval_s == 30
    fixed = LogTokenMinter(KEY, factory="gfactory", instance="v1", url=URL, lifetime_s=600, clock=lambda: NOW)
    assert verifier().verify(fixed.token(entry="CE_1", user="fe1", cluster=1)).expires == NOW + 600


def test_public_keys_are_written_by_the_factory_and_loaded_by_the_monitor(tmp_path: Path) -> None:
    path = write_public_key(KEY, tmp_path / "keys")
    assert path == public_key_path(tmp_path / "keys", "gfactory-v1") and b"PUBLIC KEY" in path.read_bytes()
    assert write_public_key(KEY, tmp_path / "keys") == path
    by_file = load_public_keys([path])
    by_dir = load_public_keys([tmp_path / "keys"])
    named = load_public_keys([f"other={path}"])
    assert set(by_file) == set(by_dir) == {"gfactory-v1"} and set(named) == {"other"}
    assert LogTokenVerifier(by_dir, URL, clock=lambda: NOW).verify(token()).entry == "CE_1"
    (tmp_path / "private.pem").write_bytes(KEY.private_pem())
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_keys([tmp_path / "private.pem"])
    with pytest.raises(KeyFileError, match="no \\*.pub.pem"):
        load_public_keys([tmp_path])


def test_the_factory_config_takes_a_log_server_section() -> None:
    base = {"name": "gf", "wms_collector": "http://c", "entries": [{"name": "e"}]}
    assert FactoryConfig.model_validate(base).log_server is None
    cfg = FactoryConfig.model_validate({**base, "log_server": {"url": URL + "/", "interval_s": 30}})
    assert cfg.log_server is not None and cfg.log_server.url == URL and cfg.log_server.interval_s == 30
    with pytest.raises(ValueError):
        FactoryConfig.model_validate({**base, "log_server": {"url": "ftp://x"}})


# --------------------------------------------------------------------------- the push decision


def test_push_targets_stay_in_the_batch_directory() -> None:
    grant = verifier().verify(token())
    t = push_target(grant, "CE_1", "job.12.3", "job.12.3.err")
    assert t.relative == "user_fe1/glidein_v1/entry_CE_1/job.12.3.err"
    for entry, glidein, name, status in [
        ("CE_2", "job.12.3", "job.12.3.out", 403),      # another entry
        ("CE_1", "job.13.0", "job.13.0.out", 403),      # another batch
        ("CE_1", "job.12.3", "../job.12.3.out", 400),
        ("CE_1", "job.12.3", "job.12.4.out", 400),      # another glidein's file
        ("CE_1", "job.12.3", "job.12.3.sh", 400),
        ("CE_1", "..", "job.12.3.out", 400),
    ]:
        with pytest.raises(ApiError) as info:
            push_target(grant, entry, glidein, name)
        assert info.value.status_code == status, (entry, glidein, name)
    bounded = verifier().verify(mint_log_token(KEY, factory="gfactory", instance="v1", entry="CE_1", user="fe1",
                                               cluster=12, audience=URL, lifetime_s=60, now=NOW, procs=4))
    assert bounded.procs == 4 and push_target(bounded, "CE_1", "job.12.3", "job.12.3.out").name == "job.12.3.out"
    with pytest.raises(ApiError) as info:
        push_target(bounded, "CE_1", "job.12.4", "job.12.4.out")  # not a pilot of that batch
    assert info.value.status_code == 403


@settings(max_examples=300, deadline=None)
@given(entry=st.text(max_size=12), glidein=st.text(max_size=14), name=st.text(max_size=20))
def test_accepted_names_are_always_plain_files_of_the_glidein(entry: str, glidein: str, name: str) -> None:
    grant = verifier().verify(token())
    try:
        t = push_target(grant, entry, glidein, name)
    except ApiError:
        return
    assert entry == "CE_1" and "/" not in t.name and ".." not in t.name
    assert t.name in (f"{glidein}.out", f"{glidein}.err") and glidein.startswith("job.12.")
    assert not t.name.startswith(".") and t.relative.startswith(grant.directory + "/")


# --------------------------------------------------------------------------- the factory's glidein command


def test_the_glidein_command_carries_the_url_and_the_token_only_in_the_environment(tmp_path: Path) -> None:
    import zipfile

    from gwms.factory.config import EntryConfig
    from gwms.factory.entry import PilotContext
    from gwms.factory.requests import ValidRequest
    from gwms.factory.service import stage_command
    from gwms.factory.stage import build_stage_area

    pyz = tmp_path / "agent.pyz"
    with zipfile.ZipFile(pyz, "w") as z:
        z.writestr("__main__.py", "print('agent')\n")
    area = build_stage_area(tmp_path / "stage", factory_name="gfactory", signing_key=KEY, agent_zipapp=pyz,
                            entries={"CE_1": None})
    assert any(f.local_path == "lib/gwms/glidein/logpush.py" for f in area.files)
    minter = LogTokenMinter(KEY, factory="gfactory", instance="v1", url=URL, interval_s=45, ca_file="/etc/ca.pem")
    entry = EntryConfig(name="CE_1")
    request = ValidRequest(
        name="r", entry="CE_1", client_name="fe.main", credential_id="c1", identity="fe@pool", frontend="fe",
        security_class="main", user="fe1", req_idle=1, req_max=1, remove_level="NO", remove_margin=0,  # type: ignore[arg-type]
        idle_lifetime=0, params={"GLIDEIN_Collector": "http://pool:9618"},
    )
    ctx = PilotContext(factory="gfactory", instance="v1", entry=entry, request=request, pilot_id="p", cluster=12,
                       proc=3)
    cmd = stage_command(area, "http://stage", minter)(ctx)
    argv = cmd.argv
    assert argv[argv.index("-logurl") + 1] == URL and argv[argv.index("-loginterval") + 1] == "45"
    assert argv[argv.index("-logcafile") + 1] == "/etc/ca.pem"
    token = cmd.env["GLIDEIN_LOG_TOKEN"]
    assert token not in " ".join(argv)
    grant = LogTokenVerifier({"gfactory-v1": KEY.public_key}, URL).verify(token)
    assert (grant.entry, grant.user, grant.cluster, grant.instance) == ("CE_1", "fe1", 12, "v1")
    assert grant.procs == 10  # the entry's cluster size: pilots 0-9 of cluster 12
    plain = stage_command(area, "http://stage")(ctx)
    assert "-logurl" not in plain.argv and "GLIDEIN_LOG_TOKEN" not in plain.env


def test_a_factory_with_a_log_server_section_gives_its_glideins_tokens(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from gwms.factory.entry import PilotContext
    from gwms.factory.requests import ValidRequest
    from gwms.factory.service import FactoryService

    cfg = FactoryConfig.model_validate({
        "name": "gf", "wms_collector": "http://127.0.0.1:1",
        "frontends": {"fe": {"identity": "fe@pool", "security_classes": {"main": "u1"}}},
        "entries": [{"name": "e1", "backend": "local", "backend_settings": {"slots": 0},
                     "cycle": {"cluster_size": 3}}],
        "log_server": {"url": URL, "interval_s": 20},
    }).resolved(tmp_path, tmp_path / "data")
    svc = FactoryService(cfg, collector=SimpleNamespace(close=lambda: None))  # type: ignore[arg-type]
    try:
        pub = public_key_path(cfg.key_dir, svc.key_pair.kid)
        keys = load_public_keys([pub])
        request = ValidRequest(
            name="r", entry="e1", client_name="fe.main", credential_id="c1", identity="fe@pool", frontend="fe",
            security_class="main", user="u1", req_idle=1, req_max=1, remove_level="NO", remove_margin=0,  # type: ignore[arg-type]
            idle_lifetime=0, params={"GLIDEIN_Collector": "http://pool:9618"},
        )
        ctx = PilotContext(factory="gf", instance=cfg.instance, entry=cfg.entries[0], request=request,
                           pilot_id="p", cluster=7, proc=1)
        cmd = svc.commands["e1"](ctx)
        assert cmd.argv[cmd.argv.index("-logurl") + 1] == URL
        assert cmd.argv[cmd.argv.index("-loginterval") + 1] == "20"
        grant = LogTokenVerifier(keys, URL).verify(cmd.env["GLIDEIN_LOG_TOKEN"])
        assert (grant.factory, grant.entry, grant.user, grant.cluster, grant.procs) == ("gf", "e1", "u1", 7, 3)
    finally:
        svc.stop()
