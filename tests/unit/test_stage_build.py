"""The factory's stage area: content-addressed names, the signed list, rebuilds and pruning."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st

from gwms.factory.stage import (
    DEFAULT_VALIDATION,
    EntryStage,
    StageError,
    StageSignatureError,
    build_stage_area,
    glidein_argv,
    hashed_name,
    load_stage_area,
    prune_stage_area,
    serve_stage,
    verify_stage_signature,
)
from gwms.glidein import stageindex as SI
from gwms.security.hybrid import RsaKeyPair

KEY = RsaKeyPair.generate("factory-k1", 2048)
OTHER_KEY = RsaKeyPair.generate("other", 2048)


@pytest.fixture(scope="module")
def agent_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One agent zipapp for every build (building it is the slow part)."""
    from gwms.glidein.zipbuild import build_zipapp

    return build_zipapp(tmp_path_factory.mktemp("pyz") / "gwms-startd.pyz")


def build(stage_dir: Path, agent_pyz: Path, **kw):
    kw.setdefault("factory_name", "gfactory")
    kw.setdefault("signing_key", KEY)
    kw.setdefault("entries", {"site_a": EntryStage(attrs={"GLIDEIN_Site": "A", "GLIDEIN_CPUS": 4})})
    return build_stage_area(stage_dir, agent_zipapp=agent_pyz, **kw)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_names_carry_the_content_hash_and_builds_are_deterministic(tmp_path: Path, agent_pyz: Path) -> None:
    script = tmp_path / "check_site.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    entries = {"site_a": {"validation": [script], "attrs": {"GLIDEIN_Site": "A"}}, "site_b": None}
    one = build(tmp_path / "one", agent_pyz, entries=entries)
    two = build(tmp_path / "two", agent_pyz, entries=entries)
    assert one.index_name == two.index_name and one.signature == two.signature
    assert [f.stage_name for f in one.files] == [f.stage_name for f in two.files]
    assert one.entries == ("site_a", "site_b")
    for f in one.files:
        path = one.dir / f.stage_name
        assert sha(path) == f.sha256 and f.sha256[:8] in path.name
    assert sha(one.dir / one.index_name) == one.signature and one.signature[:8] in one.index_name
    kinds = [f.kind for f in one.files if f.scope == "main"]
    assert kinds[:7] == ["startup", "lib", "lib", "lib", "lib", "lib", "agent"]
    assert kinds.count("validate") == len(DEFAULT_VALIDATION)
    # the entry's own files live under entry_<name>/ and come after the factory's
    entry_files = [f for f in one.files if f.scope == "entry:site_a"]
    assert {f.kind for f in entry_files} == {"constants", "vars", "validate"}
    assert all(f.stage_name.startswith("entry_site_a/") for f in entry_files)
    assert [f.local_path for f in entry_files if f.kind == "validate"] == ["validate/entry/01_check_site.sh"]
    assert one.files_for("site_b") == [f for f in one.files if f.scope == "main"]
    assert (one.dir / one.startup_name).stat().st_mode & 0o111


def test_constants_and_publish_declarations(tmp_path: Path, agent_pyz: Path) -> None:
    area = build(tmp_path / "s", agent_pyz, attrs={"GLIDEIN_Supported_VOs": "cms,atlas"},
                 config={"GLIDEIN_MIN_DISK_MB": 10},
                 entries={"e": EntryStage(attrs={"GLIDEIN_Site": "Here", "GLIDEIN_CPUS": 8, "HAS_X": True},
                                          config={"GLIDEIN_Retire_Time": 600})})
    by = {(f.scope, f.kind): (area.dir / f.stage_name).read_text() for f in area.files if f.kind in ("constants", "vars")}
    assert by[("main", "constants")] == "GLIDEIN_Factory gfactory\nGLIDEIN_MIN_DISK_MB 10\nGLIDEIN_Supported_VOs cms,atlas\n"
    assert by[("main", "vars")] == "GLIDEIN_Supported_VOs S - + N Y +\n"
    assert by[("entry:e", "constants")] == "GLIDEIN_Retire_Time 600\nGLIDEIN_CPUS 8\nGLIDEIN_Site Here\nHAS_X true\n"
    assert by[("entry:e", "vars")] == "GLIDEIN_CPUS I - + N Y +\nGLIDEIN_Site S - + N Y +\nHAS_X C - + N Y +\n"


def test_the_signed_list_verifies_and_tampering_does_not(tmp_path: Path, agent_pyz: Path) -> None:
    area = build(tmp_path / "s", agent_pyz)
    index = (area.dir / area.index_name).read_bytes()
    sig = (area.dir / area.signature_name).read_text()
    assert "algorithm rsa-pss-sha256" in sig and "key-id factory-k1" in sig
    verify_stage_signature(index, sig, KEY)
    verify_stage_signature(index, sig, KEY.public_pem)  # as advertised
    with pytest.raises(StageSignatureError, match="does not verify"):
        verify_stage_signature(index, sig, OTHER_KEY)
    with pytest.raises(StageSignatureError, match="another file list"):
        verify_stage_signature(index.replace(b"gfactory", b"gfactorx"), sig, KEY)
    forged = sig.replace(hashlib.sha256(index).hexdigest(), hashlib.sha256(index + b"#\n").hexdigest())
    with pytest.raises(StageSignatureError, match="does not verify"):
        verify_stage_signature(index + b"#\n", forged, KEY)
    with pytest.raises(StageSignatureError, match="not a gwms stage signature"):
        verify_stage_signature(index, "garbage", KEY)


def test_ed25519_keys_sign_too(tmp_path: Path, agent_pyz: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    area = build(tmp_path / "s", agent_pyz, signing_key=key)
    index = (area.dir / area.index_name).read_bytes()
    sig = (area.dir / area.signature_name).read_text()
    assert "algorithm ed25519" in sig
    verify_stage_signature(index, sig, key.public_key())
    with pytest.raises(StageSignatureError, match="does not fit"):
        verify_stage_signature(index, sig, KEY)
    with pytest.raises(StageError, match="RSA or Ed25519"):
        build(tmp_path / "t", agent_pyz, signing_key="not a key")


def test_a_rebuild_adds_files_and_keeps_the_old_set_whole(tmp_path: Path, agent_pyz: Path) -> None:
    stage = tmp_path / "s"
    old = build(stage, agent_pyz, entries={"e": {"attrs": {"GLIDEIN_Site": "Old"}}})
    new = build(stage, agent_pyz, entries={"e": {"attrs": {"GLIDEIN_Site": "New"}}})
    assert old.index_name != new.index_name
    # unchanged files are shared; the old list still names only files that are there, unchanged
    assert load_stage_area(stage, old.index_name).files == old.files
    assert load_stage_area(stage, new.index_name).files == new.files
    shared = {f.stage_name for f in old.files} & {f.stage_name for f in new.files}
    assert any(n.startswith("pilot.") for n in shared)
    removed = prune_stage_area(stage, [new])
    assert {p.relative_to(stage).as_posix() for p in removed} == (
        {f.stage_name for f in old.files} - shared | {old.index_name, old.signature_name}
    )
    assert load_stage_area(stage, new.index_name).files == new.files
    with pytest.raises(StageError, match="cannot read stage list"):
        load_stage_area(stage, old.index_name)


def test_rebuilding_the_same_area_changes_nothing(tmp_path: Path, agent_pyz: Path) -> None:
    first = build(tmp_path / "s", agent_pyz)
    before = {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    second = build(tmp_path / "s", agent_pyz)
    assert second == first
    assert {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()} == before
    # a signature by another key is replaced by a valid one
    third = build(tmp_path / "s", agent_pyz, signing_key=OTHER_KEY)
    assert third.index_name == first.index_name
    verify_stage_signature((third.dir / third.index_name).read_bytes(),
                           (third.dir / third.signature_name).read_text(), OTHER_KEY)


def test_load_notices_a_changed_file(tmp_path: Path, agent_pyz: Path) -> None:
    area = build(tmp_path / "s", agent_pyz)
    victim = area.dir / next(f.stage_name for f in area.files if f.kind == "lib")
    victim.write_text(victim.read_text() + "# changed\n")
    with pytest.raises(StageError, match="does not match its sha256"):
        load_stage_area(area.dir, area.index_name)
    # a rebuild refuses to overwrite a content-addressed name holding other bytes
    with pytest.raises(StageError, match="exists with other content"):
        build(area.dir, agent_pyz)


@pytest.mark.parametrize("entries, message", [
    ({"../evil": None}, "entry name"),
    ({"a b": None}, "entry name"),
    ({"ok": {"attrs": {"bad name": 1}}}, "not a usable attribute name"),
    ({"ok": {"attrs": {"X": "two\nlines"}}}, "line breaks"),
    ({"ok": {"validation": ["/nonexistent/check.sh"]}}, "cannot read validation script"),
    ({"ok": {"surprise": 1}}, "unknown entry stage keys"),
])
def test_bad_input_is_refused(tmp_path: Path, agent_pyz: Path, entries: dict, message: str) -> None:
    with pytest.raises(StageError, match=message):
        build(tmp_path / "s", agent_pyz, entries=entries)


def test_factory_name_must_be_one_word(tmp_path: Path, agent_pyz: Path) -> None:
    with pytest.raises(StageError, match="factory name"):
        build(tmp_path / "s", agent_pyz, factory_name="two words")


def test_without_a_prebuilt_zipapp_the_agent_is_built(tmp_path: Path) -> None:
    one = build_stage_area(tmp_path / "a", factory_name="f", signing_key=KEY, entries={"e": None})
    two = build_stage_area(tmp_path / "b", factory_name="f", signing_key=KEY, entries={"e": None})
    assert one.agent_name == two.agent_name  # normalised: no timestamps in the zip
    import zipfile

    with zipfile.ZipFile(one.dir / one.agent_name) as z:
        names = z.namelist()
    assert "__main__.py" in names and "gwms/glidein/startd.py" in names and "gwms/glidein/pilot.py" in names


@given(st.from_regex(r"[a-z][a-z0-9_-]{0,10}(\.[a-z]{1,4}){0,2}", fullmatch=True),
       st.binary(min_size=32, max_size=32).map(bytes.hex))
def test_hashed_names_keep_the_suffix(name: str, digest: str) -> None:
    out = hashed_name(name, digest)
    assert f".{digest[:8]}" in out
    if "." in name:
        assert out.endswith("." + name.rsplit(".", 1)[1]) and out.startswith(name.rsplit(".", 1)[0] + ".")
    assert out.replace(f".{digest[:8]}", "", 1) == name


def test_glidein_argv(tmp_path: Path, agent_pyz: Path) -> None:
    area = build(tmp_path / "s", agent_pyz)
    argv = glidein_argv(area, "http://h:1/stage/", entry="site_a", client="fe1.main", glidein_name="inst",
                        collector_url="http://pool:9618", token_file_or_value=Path("/tok"),
                        attrs={"GLIDECLIENT_Rank": 2, "Note": 'say "hi"'}, params={"GLIDECLIENT_Start": "Owner == 1"},
                        cluster=7, proc=1, schedd="sch", max_idle=30, retire_time=600.5, partitionable=True,
                        hold_seconds=0.5, work_dir="TMPDIR")
    assert argv[:2] == ["/bin/sh", str(area.startup_path)]
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs["-web"] == "http://h:1/stage" and pairs["-descript"] == area.index_name
    assert pairs["-sign"] == area.signature and pairs["-entry"] == "site_a" and pairs["-clientgroup"] == "main"
    assert pairs["-cluster"] == "7" and pairs["-subcluster"] == "1" and pairs["-tokenfile"] == "/tok"
    assert pairs["-hold"] == "0.5" and pairs["-dir"] == "TMPDIR" and "-token" not in pairs
    assert pairs["-param_GLIDEIN_Max_Idle"] == "30" and pairs["-param_GLIDEIN_Retire_Time"] == "600.5"
    assert pairs["-param_SLOTS_LAYOUT"] == "partitionable" and pairs["-param_GLIDECLIENT_Start"] == "Owner == 1"
    attrs = [argv[i + 1] for i, a in enumerate(argv) if a == "-attr"]
    assert attrs == ["GLIDECLIENT_Rank=2", 'Note="say \\"hi\\""']
    value = glidein_argv(area, "http://h", entry="site_a", client="c", glidein_name="i",
                         collector_url="http://p", token_file_or_value="secret")
    assert value[value.index("-token") + 1] == "secret"
    assert "-token" not in glidein_argv(area, "http://h", entry="site_a", client="c", glidein_name="i",
                                        collector_url="http://p")
    with pytest.raises(StageError, match="not in stage list"):
        glidein_argv(area, "http://h", entry="nope", client="c", glidein_name="i", collector_url="http://p")


def test_serve_stage_serves_files_but_no_listings(tmp_path: Path, agent_pyz: Path) -> None:
    area = build(tmp_path / "s", agent_pyz)
    url, stop = serve_stage(area.dir)
    try:
        with urllib.request.urlopen(f"{url}/{area.index_name}", timeout=10) as r:
            assert r.read() == (area.dir / area.index_name).read_bytes()
            assert "immutable" in r.headers.get("Cache-Control", "")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{url}/", timeout=10)
        assert info.value.code == 404
    finally:
        stop()
    stop()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/{area.index_name}", timeout=2)


# ------------------------------------------------------------------ the index format

_FIRST = "abcXYZ019_"
_name = st.builds(
    lambda first, rest, suffix: first + rest + suffix,
    st.sampled_from(_FIRST), st.text(_FIRST + "+-", max_size=6), st.sampled_from(["", ".sh", ".py", ".tar.gz"]),
)
_path = st.lists(_name, min_size=1, max_size=3).map("/".join)
_entry = st.builds(lambda first, rest: first + rest, st.sampled_from(_FIRST), st.text(_FIRST + "-.", max_size=8)).filter(
    lambda e: ".." not in e)
_line = st.builds(
    SI.IndexLine,
    sha256=st.binary(min_size=32, max_size=32).map(bytes.hex),
    stage_name=_path,
    local_path=_path,
    kind=st.sampled_from(SI.KINDS),
    scope=st.one_of(st.just("main"), _entry.map(SI.entry_scope)),
)


@given(st.lists(_line, max_size=20))
def test_index_round_trips(lines: list[SI.IndexLine]) -> None:
    text = SI.format_index(lines, factory="f1")
    assert SI.parse_index(text) == lines
    assert SI.factory_of(text) == "f1"


@given(st.lists(_line, max_size=20), _entry)
def test_select_for_entry_keeps_order_factory_first(lines: list[SI.IndexLine], entry: str) -> None:
    chosen = SI.select_for_entry(lines, entry)
    assert chosen == [x for x in lines if x.scope == "main"] + [x for x in lines if x.scope == f"entry:{entry}"]


@pytest.mark.parametrize("text, message", [
    ("hello\n", "first line"),
    (SI.MAGIC + "\nabc def\n", "expected 5 fields"),
    (SI.MAGIC + "\n" + "0" * 64 + " ../x y lib main\n", "safe relative path"),
    (SI.MAGIC + "\n" + "0" * 64 + " x /etc/passwd lib main\n", "safe relative path"),
    (SI.MAGIC + "\n" + "0" * 64 + " x y weird main\n", "unknown kind"),
    (SI.MAGIC + "\n" + "0" * 63 + "g x y lib main\n", "not a sha256"),
    (SI.MAGIC + "\n" + "0" * 64 + " x y lib other\n", "unknown scope"),
])
def test_malformed_indexes_are_refused(text: str, message: str) -> None:
    with pytest.raises(SI.IndexFormatError, match=message):
        SI.parse_index(text)


def test_stage_files_are_world_readable(tmp_path: Path, agent_pyz: Path) -> None:
    old = os.umask(0o077)
    try:
        area = build(tmp_path / "s", agent_pyz)
    finally:
        os.umask(old)
    for f in area.files:
        assert (area.dir / f.stage_name).stat().st_mode & 0o044 == 0o044
