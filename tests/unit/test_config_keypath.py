"""Key paths: how a setting's place is written in error messages, and read back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.config.keypath import (
    KeyPathError,
    describe_key_path,
    format_key_path,
    parse_key_path,
)

key_parts = st.one_of(st.text(max_size=12), st.integers(min_value=-5, max_value=10_000))


def test_examples_read_like_a_person_points_at_a_setting() -> None:
    assert format_key_path(["entries", 2, "limits", "max_idle"]) == "entries[2].limits.max_idle"
    assert format_key_path([0, "name"]) == "[0].name"
    assert format_key_path(["sites", "a.b", "name"]) == 'sites["a.b"].name'
    assert format_key_path(["x", "", "y z"]) == 'x[""]["y z"]'
    assert format_key_path(["9lives"]) == '["9lives"]'
    assert format_key_path(["max-idle"]) == "max-idle"
    assert format_key_path([]) == ""
    assert describe_key_path([]) == "(top level)"


@given(st.lists(key_parts, max_size=8))
def test_format_then_parse_round_trips(parts: list[str | int]) -> None:
    assert parse_key_path(format_key_path(parts)) == tuple(parts)


@given(st.lists(key_parts, min_size=1, max_size=8))
def test_different_paths_never_share_a_text(parts: list[str | int]) -> None:
    # an int index and a key that looks like the same number must stay distinct
    twisted = [str(p) if isinstance(p, int) else p for p in parts]
    if twisted != parts:
        assert format_key_path(twisted) != format_key_path(parts)


@given(st.lists(st.text(alphabet="abcxyz_", min_size=1, max_size=5), min_size=1, max_size=5))
def test_plain_names_are_joined_with_dots(names: list[str]) -> None:
    assert format_key_path(names) == ".".join(names)


@pytest.mark.parametrize("text", ["a..b", ".a", "a[", "a[x]", 'a["unterminated]', "a b", "a]"])
def test_malformed_text_is_a_clear_error(text: str) -> None:
    with pytest.raises(KeyPathError, match="key path"):
        parse_key_path(text)


def test_non_key_parts_are_refused() -> None:
    with pytest.raises(TypeError):
        format_key_path(["a", True])  # type: ignore[list-item]
