"""Reading glideclient requests: both anti-spoofing checks, decryption, validation."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gwms.factory import attributes as A
from gwms.factory.config import FactoryConfig, RemovalLevel
from gwms.factory.requests import RequestReader, build_request_ad, sealed_aad
from gwms.security.hybrid import Decryptor, RsaKeyPair, SessionKey

IDENTITY = "vofrontend@pool.test"


@pytest.fixture(scope="module")
def pair() -> RsaKeyPair:
    return RsaKeyPair.generate("gf-v1", bits=2048)


@pytest.fixture(scope="module")
def config() -> FactoryConfig:
    return FactoryConfig.model_validate({
        "name": "gf",
        "instance": "v1",
        "wms_collector": "http://127.0.0.1:1",
        "frontends": {
            "vofe": {"identity": IDENTITY, "security_classes": {"main": "fe1", "pilot": "fe2"}},
            "other": {"identity": "other@pool.test", "security_classes": {"main": "o1"}},
        },
        "entries": [
            {"name": "e1", "params": {"GLIDEIN_Max_Walltime": 3600, "CONDOR_ARCH": "default"}},
            {"name": "e2", "allow_frontends": ["other"]},
            {"name": "off", "enabled": False},
        ],
    })


@pytest.fixture(scope="module")
def reader(config: FactoryConfig, pair: RsaKeyPair) -> RequestReader:
    return RequestReader(config, Decryptor(pair))


def make(pair: RsaKeyPair, *, entry: str = "e1", identity: str = IDENTITY, stamped: str | None = IDENTITY,
         security_name: str = "vofe", security_class: str = "main", **kw) -> dict:
    base = {"req_idle": 5, "req_max": 20, "client_name": "vofe.main"}
    base.update(kw)
    ad = build_request_ad(
        entry_ad_name=f"{entry}@v1@gf", identity=identity, security_name=security_name,
        security_class=security_class, factory_public_key=pair.public_pem, key_id=pair.kid, **base,
    )
    if stamped is not None:
        ad[A.AUTHENTICATED_IDENTITY] = stamped
    return ad


def test_a_valid_request_is_read_with_its_parameters(reader, pair):
    ad = make(pair, params={"GLIDEIN_Max_Walltime": 7200, "Extra": "x"},
              secrets={"GLIDEIN_Token": "tok", "GLIDEIN_Collector": "http://c"},
              remove_excess="idle", remove_margin=2, idle_lifetime=600)
    valid, refused = reader.read([ad])
    assert refused == []
    (req,) = valid["e1"]
    assert (req.frontend, req.security_class, req.user) == ("vofe", "main", "fe1")
    assert (req.req_idle, req.req_max, req.remove_level, req.remove_margin) == (5, 20, RemovalLevel.IDLE, 2)
    assert req.idle_lifetime == 600
    assert req.params == {"GLIDEIN_Max_Walltime": 7200, "CONDOR_ARCH": "default", "Extra": "x"}
    assert req.secrets == {"GLIDEIN_Token": "tok", "GLIDEIN_Collector": "http://c"}
    assert "tok" not in repr(req)
    assert req.key == "vofe/vofe.main/default" and req.group == "vofe:main"


def test_published_parameters_are_named_in_the_request(reader, pair):
    ad = make(pair, params={"GLIDECLIENT_Group_Tag": "blue", "FE_Priority": 5, "Plain": "x"},
              publish=["GLIDECLIENT_Group_Tag", "FE_Priority", "NotAParam", "FE_Priority"])
    assert ad[A.REQ_GLIDEIN_PUBLISH] == "GLIDECLIENT_Group_Tag,FE_Priority,NotAParam,FE_Priority"
    valid, refused = reader.read([ad])
    assert refused == []
    # names that are not parameters of the request are ignored, duplicates dropped
    assert valid["e1"][0].publish == ("GLIDECLIENT_Group_Tag", "FE_Priority")
    assert make(pair).get(A.REQ_GLIDEIN_PUBLISH) is None  # nothing published: no attribute
    bad = make(pair, params={"A": 1})
    bad[A.REQ_GLIDEIN_PUBLISH] = "A,no-dash"
    valid, refused = reader.read([bad])
    assert valid == {} and "ReqGlideinPublish: 'no-dash' is not a parameter name" in refused[0].reason


def test_attribute_names_are_case_insensitive(reader, pair):
    ad = {k.lower(): v for k, v in make(pair).items()}
    valid, refused = reader.read([ad])
    assert refused == [] and len(valid["e1"]) == 1


def test_ads_for_other_factories_are_ignored_silently(reader, pair):
    ad = make(pair)
    ad[A.REQ_GLIDEIN] = "e1@v1@otherfactory"
    assert reader.read([ad]) == ({}, [])


def _refusal(reader, ad) -> str:
    valid, refused = reader.read([ad])
    assert valid == {}
    assert len(refused) == 1
    return refused[0].reason


def test_forged_identity_is_refused(reader, pair):
    # the ad was sent with another token than the identity it encrypted
    reason = _refusal(reader, make(pair, stamped="mallory@pool.test"))
    assert "is not the authenticated identity" in reason


def test_identity_not_configured_for_the_frontend_is_refused(reader, pair):
    # a genuine identity, consistent with itself, claiming to be another frontend
    reason = _refusal(reader, make(pair, identity="other@pool.test", stamped="other@pool.test"))
    assert "is not the one configured for frontend 'vofe'" in reason


def test_unknown_security_class_and_frontend_are_refused(reader, pair):
    assert "unknown security class 'admin'" in _refusal(reader, make(pair, security_class="admin"))
    assert "unknown frontend 'nobody'" in _refusal(reader, make(pair, security_name="nobody"))


def test_missing_authenticated_identity_is_refused(reader, pair):
    assert "no AuthenticatedIdentity" in _refusal(reader, make(pair, stamped=None))


def test_frontend_not_allowed_at_the_entry(reader, pair):
    assert "not allowed at this entry" in _refusal(reader, make(pair, entry="e2"))
    assert "disabled" in _refusal(reader, make(pair, entry="off"))
    assert "no such entry" in _refusal(reader, make(pair, entry="nope"))


def _flip(text: str, at: int) -> str:
    ch = text[at]
    return text[:at] + ("A" if ch != "A" else "B") + text[at + 1:]


@pytest.mark.parametrize("attr", [A.REQ_ENC_IDENTITY, "GlideinEncParamSecurityClass", "GlideinEncParamGLIDEIN_Token",
                                  A.REQ_ENC_KEY_CODE])
def test_tampered_ciphertext_is_refused(reader, pair, attr):
    ad = make(pair, secrets={"GLIDEIN_Token": "tok"})
    ad[attr] = _flip(ad[attr], len(ad[attr]) - 5)
    reason = _refusal(reader, ad)
    assert "decrypt" in reason or "does not open" in reason


def test_a_value_moved_from_another_ad_is_refused(reader, pair):
    session = SessionKey(pair.public_pem, pair.kid)
    a = make(pair, session=session, client_name="vofe.main")
    b = make(pair, session=session, client_name="vofe.other", security_class="pilot")
    a["GlideinEncParamSecurityClass"] = b["GlideinEncParamSecurityClass"]
    assert "does not decrypt" in _refusal(reader, a)


def test_a_value_sealed_for_another_attribute_is_refused(reader, pair):
    session = SessionKey(pair.public_pem, pair.kid)
    ad = make(pair, session=session)
    ad[A.REQ_ENC_IDENTITY] = session.seal(IDENTITY, sealed_aad(ad[A.NAME], "GlideinEncParamSecurityName"))
    assert "does not decrypt" in _refusal(reader, ad)


def test_wrong_key_is_refused(reader):
    other = RsaKeyPair.generate("gf-v1", bits=2048)
    assert "does not open" in _refusal(reader, make(other))


@pytest.mark.parametrize("attr,value,words", [
    (A.REQ_IDLE_GLIDEINS, -1, "whole number"),
    (A.REQ_IDLE_GLIDEINS, "5", "not a number"),
    (A.REQ_MAX_GLIDEINS, 2.5, "whole number"),
    (A.REQ_MAX_GLIDEINS, None, "missing"),
    (A.REQ_REMOVE_EXCESS, "SOME", "NO, WAIT, IDLE or ALL"),
    (A.REQ_IDLE_LIFETIME, "x", "seconds"),
    (A.CLIENT_NAME, "a b", "plain name"),
])
def test_bad_values_are_refused(reader, pair, attr, value, words):
    ad = make(pair)
    if value is None:
        del ad[attr]
    else:
        ad[attr] = value
    assert words in _refusal(reader, ad)


def test_duplicate_client_requests_keep_the_first(reader, pair):
    a = make(pair)
    b = make(pair, credential_id="default")
    b[A.NAME] = "zzz"  # another ad for the same client and credential (its sealed values then fail too)
    valid, refused = reader.read([a, a])
    assert len(valid["e1"]) == 1 and "duplicate" in refused[0].reason
    valid, refused = reader.read([a, b])
    assert len(valid["e1"]) == 1 and len(refused) == 1


def test_one_unwrap_per_session(config, pair, monkeypatch):
    reader = RequestReader(config, Decryptor(pair))
    calls = []
    real = reader.decryptor.unwrap

    def counting(kid, wrapped):
        calls.append(kid)
        return real(kid, wrapped)

    monkeypatch.setattr(reader.decryptor, "unwrap", counting)
    session = SessionKey(pair.public_pem, pair.kid)
    ads = [make(pair, session=session, client_name=f"vofe.g{i}") for i in range(20)]
    valid, refused = reader.read(ads)
    assert len(valid["e1"]) == 20 and refused == []
    reader.read(ads)
    assert len(calls) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_requests_are_refused_or_valid_never_crash(reader, pair, data):
    ad = make(pair, secrets={"GLIDEIN_Token": "t"}, params={"P": 1})
    keys = sorted(ad)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(keys))
        ad[key] = data.draw(st.one_of(
            st.none(), st.integers(-5, 10**8), st.floats(allow_nan=True), st.text(max_size=30),
            st.booleans(), st.lists(st.integers(), max_size=2),
            st.just(_flip(str(ad[key]) or "x", 0)),
        ))
    valid, refused = reader.read([ad])
    assert len(refused) + sum(len(v) for v in valid.values()) <= 1
    for reqs in valid.values():
        for req in reqs:
            assert req.identity == IDENTITY and req.req_idle >= 0 and req.req_max >= 0
