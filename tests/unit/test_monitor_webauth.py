"""Local users (salted scrypt), signed sessions and the same-origin check of the monitor's pages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from gwms.monitor.webauth import (
    UserError,
    UserStore,
    check_password,
    hash_password,
    load_or_create_session_key,
    make_session,
    read_session,
    same_origin,
)

FAST = {"n": 2**4, "r": 1, "p": 1}  # cheap cost for property tests; the default is checked once
KEY = b"k" * 32


def test_password_hash_is_salted_scrypt() -> None:
    a = hash_password("correct horse")
    b = hash_password("correct horse")
    assert a["alg"] == "scrypt" and a["n"] >= 2**14
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]
    assert check_password(a, "correct horse") and check_password(b, "correct horse")
    assert not check_password(a, "correct horsE")


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_only_the_right_password_checks(password: str, other: str) -> None:
    record = hash_password(password, **FAST)
    assert check_password(record, password)
    assert check_password(record, other) == (other == password)


def test_damaged_records_never_check() -> None:
    record = hash_password("pw", **FAST)
    assert not check_password({**record, "alg": "md5"}, "pw")
    assert not check_password({**record, "salt": "%%%"}, "pw")
    assert not check_password({"alg": "scrypt"}, "pw")
    with pytest.raises(UserError):
        hash_password("")


def test_user_store(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    assert not store and store.list() == {}
    store.add("alice", "s3cret", ["READ", "LOGS_ORIGINAL"])
    store.add("bob", "pw")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert "s3cret" not in store.path.read_text()
    assert store.list() == {"alice": ["LOGS_ORIGINAL", "READ"], "bob": ["READ"]}
    assert store.authenticate("alice", "s3cret") == frozenset({"READ", "LOGS_ORIGINAL"})
    assert store.authenticate("alice", "wrong") is None
    assert store.authenticate("carol", "s3cret") is None
    store.remove("bob")
    assert list(store.list()) == ["alice"]
    with pytest.raises(UserError, match="no user"):
        store.remove("bob")
    for bad in ("", "a b", "x/y", "n" * 65):
        with pytest.raises(UserError):
            store.add(bad, "pw")
    with pytest.raises(UserError):
        store.add("dave", "pw", [])


@given(
    st.from_regex(r"[a-z][a-z0-9._-]{0,20}", fullmatch=True),
    st.sets(st.sampled_from(["READ", "LOGS_ORIGINAL", "ADMINISTRATOR"]), min_size=1),
)
def test_sessions_round_trip(name: str, scopes: set[str]) -> None:
    value = make_session(KEY, name, scopes, expires=2000)
    who = read_session(KEY, value, now=1000)
    assert who is not None and who.name == f"local:{name}" and who.scopes == frozenset(scopes)
    assert read_session(KEY, value, now=2000) is None  # expired
    assert read_session(b"x" * 32, value, now=1000) is None  # another key


@given(st.integers(2, 200), st.characters(codec="ascii"))
def test_tampered_sessions_are_refused(position: int, char: str) -> None:
    value = make_session(KEY, "alice", ["READ"], expires=2000)
    i = position % len(value)
    if value[i] == char:
        return
    tampered = value[:i] + char + value[i + 1 :]
    who = read_session(KEY, tampered, now=1000)
    # a changed character may only be one base64 can't see (padding bits), never a new identity
    assert who is None or (who.name == "local:alice" and who.scopes == frozenset({"READ"}))


def test_session_key_file(tmp_path: Path) -> None:
    path = tmp_path / "web-session.key"
    key = load_or_create_session_key(path)
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_session_key(path) == key


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/login", "headers": raw})


def test_same_origin() -> None:
    assert same_origin(_request({"host": "127.0.0.1:8090"}))
    assert same_origin(_request({"host": "127.0.0.1:8090", "origin": "http://127.0.0.1:8090"}))
    assert not same_origin(_request({"host": "127.0.0.1:8090", "origin": "http://evil.example"}))
    assert not same_origin(_request({"host": "127.0.0.1:8090", "origin": "null"}))
    assert not same_origin(_request({"host": "h", "sec-fetch-site": "cross-site"}))
    assert same_origin(
        _request({"host": "h", "sec-fetch-site": "same-origin", "origin": "http://h"})
    )
