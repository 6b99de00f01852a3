"""The indexer's fast paths give exactly what the general code they replace gives.

``sections._header_matches`` stands for ``_START.finditer`` and ``archive._plain_tar``
for ``tarfile`` (PAX format) on the archives' plain files.
"""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.monitor import archive, outfile, sections
from gwms.monitor.archive import pack, unpack
from gwms.monitor.compression import GzipCodec
from gwms.monitor.samples import make_job, make_world

_PIECES = st.sampled_from(
    [
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "x",
        "=",
        "===",
        "====",
        "=====",
        "gzip | uuencode",
        "gzip | uuencode ",
        "tail -c 100 | ",
        sections.XML_START_MARKER,
        sections.XML_END_MARKER,
        "begin-base64 644 -",
        "AAAA",
    ]
)


def _spans(matches: object) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in matches]  # type: ignore[attr-defined]


@settings(max_examples=400)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_header_matches_are_the_regex_matches(text: str) -> None:
    assert _spans(sections._header_matches(text)) == _spans(sections._START.finditer(text))


def test_header_matches_on_real_err_files() -> None:
    world = make_world(5, users=3, sites=2, workers_per_site=3)
    for i in range(6):
        err = make_job(world, 500 + i, cluster=10 + i, proc=0).err
        found = _spans(sections._header_matches(err))
        assert found and found == _spans(sections._START.finditer(err))


def _tarfile_bytes(entries: list[tuple[str, bytes, int]], mode: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mtime in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_NAMES = st.one_of(
    st.from_regex(r"job\.[0-9]{1,18}\.[0-9]{1,9}\.(out|err)", fullmatch=True),
    st.text(min_size=1, max_size=120).filter(lambda n: "/" not in n and "\0" not in n),
)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(_NAMES, st.binary(max_size=2000), st.integers(-3, 2**37)),
        max_size=3,
    ),
    st.sampled_from([0o600, 0o644]),
)
def test_plain_tar_is_what_tarfile_writes(entries: list[tuple[str, bytes, int]], mode: int) -> None:
    fast = archive._plain_tar(entries, mode)
    if fast is not None:
        assert fast == _tarfile_bytes(entries, mode)


def test_plain_tar_takes_job_files_and_leaves_odd_ones_to_tarfile() -> None:
    job = [("job.12.3.out", b"out\n" * 300, 1_763_780_000), ("job.12.3.err", b"e" * 513, 7)]
    assert archive._plain_tar(job, 0o600) == _tarfile_bytes(job, 0o600)
    assert archive._plain_tar([("x" * 101, b"", 0)], 0o644) is None
    assert archive._plain_tar([("caf\u00e9", b"", 0)], 0o644) is None
    assert archive._plain_tar([("a", b"", -1)], 0o644) is None
    files = {"caf\u00e9.out": b"x", "job.1.2.err": b"y" * 600}  # the fallback packs it
    item = pack("u/g/e/job.1.2", "original", files, {"job.1.2.err": 5.0}, GzipCodec())
    assert unpack(item) == files


_OUT_PIECES = st.sampled_from(
    [
        "\n",
        "\r\n",
        " ",
        "x",
        "(",
        ")",
        "12",
        "=== ",
        " ===",
        "Starting glidein_startup.sh at ",
        "Running on ",
        "System: ",
        "Release: ",
        "As: ",
        "PID: ",
        "=== Last script starting ",
        " after validating for ",
        "=== Condor starting ",
        "=== Condor ended ",
        "=== Glidein ending ",
        " with code ",
        " after ",
        "=== XML description of glidein activity ===",
        "=== End XML description of glidein activity ===",
    ]
)

_OUT_PATTERNS = [
    (outfile._STARTING, "Starting glidein_startup.sh at "),
    (outfile._RUNNING, "Running on "),
    (outfile._SYSTEM, "System: "),
    (outfile._RELEASE, "Release: "),
    (outfile._AS, "As: "),
    (outfile._PID, "PID: "),
    (outfile._LAST_SCRIPT, "=== Last script starting "),
    (outfile._CONDOR_START, "=== Condor starting "),
    (outfile._CONDOR_END, "=== Condor ended "),
    (outfile._ENDING, "=== Glidein ending "),
    (outfile._XML, "=== XML description of glidein activity ==="),
]


@settings(max_examples=400)
@given(st.lists(_OUT_PIECES, max_size=40).map("".join))
def test_out_markers_found_by_find_are_the_regex_matches(text: str) -> None:
    for pattern, needle in _OUT_PATTERNS:
        assert _spans(outfile._at_line_starts(pattern, text, needle)) == _spans(
            pattern.finditer(text)
        )
        first = outfile._first(pattern, text, needle)
        expected = pattern.search(text)
        assert (first and first.span()) == (expected and expected.span())
