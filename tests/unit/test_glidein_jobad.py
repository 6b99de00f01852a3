"""Job ads on the execute side: case-blind reading and the old ClassAd text syntax."""

from __future__ import annotations

import classad2
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.jobad import CaseBlindAd, env_value, format_value, old_syntax, quote_string

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    # the old syntax has one escape (\"): texts without backslashes and line breaks read back
    st.text(max_size=20).filter(lambda s: not s.startswith("/Expr(") and not any(c in s for c in "\\\n\r\x00")),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


def _native(value: object) -> object:
    if isinstance(value, classad2.Value):
        return None  # undefined
    if isinstance(value, list):
        return [_native(v) for v in value]
    return value


@given(st.dictionaries(names, values, max_size=6).filter(lambda d: len({k.lower() for k in d}) == len(d)))
def test_old_syntax_is_read_back_by_classad2(ad: dict) -> None:
    parsed = classad2.parseOne(old_syntax(ad))
    for name, value in ad.items():
        got = _native(parsed.eval(name))
        if isinstance(value, float):
            assert got == value or abs(got - value) <= abs(value) * 1e-12  # type: ignore[operator]
        else:
            assert got == value, (name, value, got)


def test_expressions_are_written_as_expressions() -> None:
    text = old_syntax({"Requirements": "/Expr(TARGET.Memory >= 100 && Cpus > 1)/", "Name": 'a "b"'})
    assert text == 'Requirements = TARGET.Memory >= 100 && Cpus > 1\nName = "a \\"b\\""\n'
    assert format_value({"x": 1, "y": "s"}) == '[ x = 1; y = "s" ]'
    assert format_value([]) == "{ }"
    assert quote_string("tab\there\n") == '"tab\there\\n"'
    assert classad2.parseOne(old_syntax({"A": 'say "hi"', "B": 1})).eval("A") == 'say "hi"'


def test_case_blind_view() -> None:
    ad = CaseBlindAd({"ClusterId": 3, "Owner": "alice", "Flag": "/Expr(true)/", "Cmd": "/Expr(x)/", "N": float("nan")})
    assert ad.get("clusterid") == 3 and "OWNER" in ad
    assert ad.number("ClusterID") == 3.0 and ad.number("Owner") is None and ad.number("N") is None
    assert ad.string("owner") == "alice" and ad.string("Cmd") is None
    assert ad.boolean("flag") is True and ad.boolean("Owner") is None


def test_env_values() -> None:
    assert env_value("Site A") == "Site A"
    assert env_value(True) == "true" and env_value(4) == "4" and env_value(1.5) == "1.5"
