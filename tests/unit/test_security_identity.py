"""Identities user@domain: parsing, validation, the rules names that become paths need."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.security.identity import Identity, InvalidIdentity


@pytest.mark.parametrize(
    "text",
    [
        "alice@pool.example",
        "frontend@fermicloud.fnal.gov",
        "glidein_1@entry-A",
        "a+b@c",
        "x@127.0.0.1",
    ],
)
def test_valid(text):
    ident = Identity.parse(text)
    assert str(ident) == text
    assert Identity.is_valid(text)
    assert ident == Identity(*text.split("@"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("alice", "one '@'"),
        ("a@b@c", "one '@'"),
        ("@host", "empty user"),
        ("alice@", "empty domain"),
        ("a/b@c", "slashes"),
        ("a@c/d", "slashes"),
        ("a\\b@c", "slashes"),
        ("..@c", r"'\.\.'"),
        ("a@..", r"'\.\.'"),
        ("a@x..y", r"'\.\.'"),
        ("a\n@c", "control"),
        ("a@c\x00", "control"),
        ("a b@c", "only letters"),
        ("a@c d", "only letters"),
        ("-a@c", "only letters"),
        ("a@" + "x" * 300, "longer"),
    ],
)
def test_invalid(text, why):
    with pytest.raises(InvalidIdentity, match=why):
        Identity.parse(text)
    assert not Identity.is_valid(text)


def test_constructor_validates_too():
    with pytest.raises(InvalidIdentity):
        Identity("a/b", "c")
    with pytest.raises(InvalidIdentity):
        Identity("a", "")


@given(st.text(max_size=40))
def test_valid_identities_are_safe_path_components(text):
    """Whatever parses has no control characters, slashes, or '..' and splits into two names."""
    try:
        ident = Identity.parse(text)
    except InvalidIdentity:
        return
    for part in (ident.user, ident.domain):
        assert part and "/" not in part and "\\" not in part and ".." not in part
        assert part not in (".", "..")
        assert all(0x20 < ord(c) < 0x7F for c in part)
    assert Identity.parse(str(ident)) == ident
