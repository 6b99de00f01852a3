"""Parse a glidein's ``.out`` file: the header and the markers, into a typed summary.

The ``.out`` of a glidein starts with ``Starting glidein_startup.sh at <date> (<epoch>)``,
a header of ``key = 'value'`` lines, ``Running on <host>``, ``System:`` and ``As:`` lines,
and then the markers the original's statistics parser relies on::

    === Last script starting <date> (<epoch>) after validating for <secs> ===
    === Condor starting <date> (<epoch>) ===
    === Condor ended <date> (<epoch>) after <secs> ===
    === Stats of <slot> === ... Total<name>jobs <n> ... utilization <secs> ... === End Stats of <slot> ===
    Total number of activations/claims: <n>
    === Glidein ending <date> (<epoch>) with code <rc> after <secs> ===
    === XML description of glidein activity === ... === End XML description of glidein activity ===

:func:`parse_out` finds whatever is there (a glidein killed mid-way has only the first
part) and never raises on odd content; what it could not read is listed in
:attr:`OutSummary.problems`. It also parses anonymized files: user names, hosts and ids
may then be tokens such as ``u-k1a2b3c4-...`` rather than names and numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from gwms.monitor.sections import text_of

__all__ = ["OutSummary", "StatsBlock", "parse_identity", "parse_out"]

_STARTING = re.compile(
    r"^Starting glidein_startup\.sh at (?P<date>.*?)(?: \((?P<epoch>\d+)\))?[ \t]*\r?$",
    re.MULTILINE,
)
_HEADER = re.compile(
    r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*'(?P<value>[^\n]*)'[ \t]*\r?$", re.MULTILINE
)
_RUNNING = re.compile(r"^Running on (?P<host>\S*)[ \t]*\r?$", re.MULTILINE)
_SYSTEM = re.compile(r"^System: (?P<v>[^\r\n]*)", re.MULTILINE)
_RELEASE = re.compile(r"^Release: (?P<v>[^\r\n]*)", re.MULTILINE)
_AS = re.compile(r"^As: (?P<v>[^\r\n]*)", re.MULTILINE)
_PID = re.compile(r"^PID: (?P<v>\d+)", re.MULTILINE)
_EPOCH = r"(?P<date>[^()\n]*?) \((?P<epoch>\d+)\)"
_LAST_SCRIPT = re.compile(
    r"^=== Last script starting " + _EPOCH + r" after validating for (?P<secs>\d+) ===",
    re.MULTILINE,
)
_CONDOR_START = re.compile(r"^=== Condor starting " + _EPOCH + r" ===", re.MULTILINE)
_CONDOR_END = re.compile(r"^=== Condor ended " + _EPOCH + r" after (?P<secs>\d+) ===", re.MULTILINE)
_STATS = re.compile(
    r"^=== Stats of (?P<slot>[^\n]*?) ===[ \t]*\r?\n(?P<body>.*?)^=== End Stats of (?P=slot) ===",
    re.MULTILINE | re.DOTALL,
)
_TOTAL = re.compile(
    r"^Total[ \t]*(?P<name>[A-Za-z]*)[ \t]+jobs[ \t]+(?P<jobs>\d+)[^\n]*?utilization[ \t]+(?P<util>\d+)",
    re.MULTILINE,
)
_ACTIVATIONS = re.compile(r"^Total number of activations/claims: *(?P<n>\d+)", re.MULTILINE)
_ENDING = re.compile(
    r"^=== Glidein ending " + _EPOCH + r" with code (?P<code>-?\d+) after (?P<secs>\d+) ===",
    re.MULTILINE,
)
_XML = re.compile(
    r"^=== XML description of glidein activity ===[ \t]*\r?\n(?P<xml>.*?)"
    r"^=== End XML description of glidein activity ===",
    re.MULTILINE | re.DOTALL,
)
_ID_PART = re.compile(r"(?P<kind>uid|gid|euid|egid)=(?P<id>[^\s(]+)(?:\((?P<name>[^)]*)\))?")
_GROUPS = re.compile(r"groups=(?P<list>\S*)")
_GROUP_ITEM = re.compile(r"(?P<id>[^,(]+)(?:\((?P<name>[^)]*)\))?")


@dataclass
class StatsBlock:
    """One ``=== Stats of <slot> ===`` block.

    ``totals`` maps the kind of job (``""`` for all jobs, ``goodZ``, ``goodNZ``,
    ``badSignal``, ``badOther``) to ``(jobs, utilization seconds)``.
    """

    slot: str
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    activations: int | None = None

    @property
    def jobs(self) -> int | None:
        """The number of jobs the slot ran (the plain ``Total jobs`` line)."""
        total = self.totals.get("")
        return total[0] if total else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_identity(text: str) -> dict[str, Any]:
    """Parse the output of ``id`` (``uid=1000(alice) gid=1000(alice) groups=...``).

    Returns ``uid``, ``user``, ``gid``, ``group`` and ``groups`` (a list of
    ``(id, name)``); ids are ints when numeric, strings otherwise (anonymized).
    """
    result: dict[str, Any] = {"uid": None, "user": None, "gid": None, "group": None, "groups": []}
    for m in _ID_PART.finditer(text):
        ident = m.group("id")
        value: int | str = int(ident) if ident.isdigit() else ident
        if m.group("kind") in ("uid", "euid") and result["uid"] is None:
            result["uid"], result["user"] = value, m.group("name")
        elif m.group("kind") in ("gid", "egid") and result["gid"] is None:
            result["gid"], result["group"] = value, m.group("name")
    g = _GROUPS.search(text)
    if g:
        for item in _GROUP_ITEM.finditer(g.group("list")):
            ident = item.group("id")
            result["groups"].append((int(ident) if ident.isdigit() else ident, item.group("name")))
    return result


@dataclass
class OutSummary:
    """What a glidein's ``.out`` says about it. Every field is None when the file lacks it.

    Times are Unix epochs (seconds) as printed in the markers' parentheses; the
    original date strings are kept in ``*_date``.
    """

    header: dict[str, str] = field(default_factory=dict)
    start_epoch: int | None = None
    start_date: str | None = None
    host: str | None = None
    system: str | None = None
    release: str | None = None
    identity: str | None = None
    user: str | None = None
    uid: int | str | None = None
    group: str | None = None
    gid: int | str | None = None
    pid: int | None = None
    last_script_epoch: int | None = None
    validation_seconds: int | None = None
    condor_start_epoch: int | None = None
    condor_end_epoch: int | None = None
    condor_seconds: int | None = None
    stats: list[StatsBlock] = field(default_factory=list)
    jobs_run: int | None = None
    activations: int | None = None
    end_epoch: int | None = None
    end_date: str | None = None
    exit_code: int | None = None
    total_seconds: int | None = None
    xml: str | None = None
    problems: list[str] = field(default_factory=list)

    # --- the header fields the index keys on ---------------------------------------
    @property
    def glidein_uuid(self) -> str | None:
        """``glidein_uuid`` from the header."""
        return self.header.get("glidein_uuid") or None

    @property
    def condorg_cluster(self) -> int | None:
        """The factory's cluster id of the pilot job."""
        return _int(self.header.get("condorg_cluster"))

    @property
    def condorg_subcluster(self) -> int | None:
        """The factory's proc id of the pilot job."""
        return _int(self.header.get("condorg_subcluster"))

    @property
    def factory_job_id(self) -> str | None:
        """``<cluster>.<subcluster>``: the factory job id (the ``job.C.P`` of the file names)."""
        c, p = self.condorg_cluster, self.condorg_subcluster
        if c is None:
            return None
        return f"{c}.{p if p is not None else 0}"

    @property
    def factory_schedd(self) -> str | None:
        """``condorg_schedd``: the factory schedd that submitted the pilot."""
        return self.header.get("condorg_schedd") or None

    @property
    def factory(self) -> str | None:
        """``glidein_factory``."""
        return self.header.get("glidein_factory") or None

    @property
    def glidein_name(self) -> str | None:
        """``glidein_name`` (the factory instance)."""
        return self.header.get("glidein_name") or None

    @property
    def entry(self) -> str | None:
        """``glidein_entry``: the factory entry (site gateway) the pilot ran at."""
        return self.header.get("glidein_entry") or None

    @property
    def client_name(self) -> str | None:
        """``client_name``: ``<frontend>.<group>`` that asked for the pilot."""
        return self.header.get("client_name") or None

    @property
    def client_group(self) -> str | None:
        """``client_group``: the frontend group."""
        return self.header.get("client_group") or None

    @property
    def frontend_name(self) -> str | None:
        """The frontend part of ``client_name`` (before the group)."""
        name = self.client_name
        if not name:
            return None
        group = self.client_group
        if group and name.endswith("." + group):
            return name[: -len(group) - 1]
        return name.rsplit(".", 1)[0] if "." in name else name

    @property
    def finished(self) -> bool:
        """True when the ``Glidein ending`` marker is present."""
        return self.end_epoch is not None or self.exit_code is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field and header-derived property."""
        data = asdict(self)
        data["stats"] = [
            {
                "slot": s.slot,
                "totals": {k: list(v) for k, v in s.totals.items()},
                "activations": s.activations,
            }
            for s in self.stats
        ]
        for name in (
            "glidein_uuid",
            "factory_job_id",
            "condorg_cluster",
            "condorg_subcluster",
            "factory_schedd",
            "factory",
            "glidein_name",
            "entry",
            "client_name",
            "client_group",
            "frontend_name",
            "finished",
        ):
            data[name] = getattr(self, name)
        return data


def _at_line_starts(pattern: re.Pattern[str], text: str, needle: str) -> Iterator[re.Match[str]]:
    """The matches of ``pattern`` in ``text``, in order, for a MULTILINE pattern that is
    ``^`` + ``needle`` + more of one line: what ``pattern.finditer(text)`` gives, found by
    ``str.find`` (the regex engine tries every position of the text for a ``^``)."""
    i = text.find(needle)
    while i >= 0:
        if i == 0 or text[i - 1] == "\n":
            m = pattern.match(text, i)
            if m is not None:
                yield m
        i = text.find(needle, i + 1)


def _first(pattern: re.Pattern[str], text: str, needle: str) -> re.Match[str] | None:
    """``pattern.search(text)`` for a pattern :func:`_at_line_starts` takes."""
    return next(_at_line_starts(pattern, text, needle), None)


def parse_out(text: str | bytes) -> OutSummary:
    """Parse an ``.out`` file's text (or bytes) into an :class:`OutSummary`; never raises on content."""
    if isinstance(text, (bytes, bytearray)):
        text = text_of(bytes(text))
    s = OutSummary()
    m = _first(_STARTING, text, "Starting glidein_startup.sh at ")
    if m:
        s.start_date = m.group("date")
        s.start_epoch = _int(m.group("epoch"))
    else:
        s.problems.append("no 'Starting glidein_startup.sh' line")
    # The header: key = 'value' lines before the first marker.
    head_end = text.find("\n=== ")
    head = text if head_end < 0 else text[: head_end + 1]
    head_start = m.end() if m else 0
    for h in _HEADER.finditer(head, head_start):
        s.header.setdefault(h.group("key"), h.group("value"))
    if not s.header:
        s.problems.append("no header lines")
    r = _first(_RUNNING, head, "Running on ")
    if r:
        s.host = r.group("host")
    for pattern, attr, needle in (
        (_SYSTEM, "system", "System: "),
        (_RELEASE, "release", "Release: "),
        (_AS, "identity", "As: "),
    ):
        found = _first(pattern, head, needle)
        if found:
            setattr(s, attr, found.group("v").rstrip("\r"))
    pid = _first(_PID, head, "PID: ")
    if pid:
        s.pid = int(pid.group("v"))
    if s.identity is not None:
        ident = parse_identity(s.identity)
        s.uid, s.user, s.gid, s.group = ident["uid"], ident["user"], ident["gid"], ident["group"]
    m = _first(_LAST_SCRIPT, text, "=== Last script starting ")
    if m:
        s.last_script_epoch = int(m.group("epoch"))
        s.validation_seconds = int(m.group("secs"))
    m = _first(_CONDOR_START, text, "=== Condor starting ")
    if m:
        s.condor_start_epoch = int(m.group("epoch"))
    m = _first(_CONDOR_END, text, "=== Condor ended ")
    if m:
        s.condor_end_epoch = int(m.group("epoch"))
        s.condor_seconds = int(m.group("secs"))
    elif s.condor_start_epoch is not None:
        s.problems.append("condor started but no 'Condor ended' marker")
    for block in _STATS.finditer(text):
        stats = StatsBlock(slot=block.group("slot"))
        body = block.group("body")
        for t in _TOTAL.finditer(body):
            stats.totals.setdefault(t.group("name"), (int(t.group("jobs")), int(t.group("util"))))
        a = _ACTIVATIONS.search(body)
        if a:
            stats.activations = int(a.group("n"))
        s.stats.append(stats)
    jobs = [b.jobs for b in s.stats if b.jobs is not None]
    if jobs:
        s.jobs_run = sum(jobs)
    acts = [b.activations for b in s.stats if b.activations is not None]
    if not acts:  # the line may also appear outside a stats block
        acts = [int(a.group("n")) for a in _ACTIVATIONS.finditer(text)]
    if acts:
        s.activations = sum(acts)
    ends = list(_at_line_starts(_ENDING, text, "=== Glidein ending "))
    if ends:
        e = ends[-1]
        s.end_epoch = int(e.group("epoch"))
        s.end_date = e.group("date")
        s.exit_code = int(e.group("code"))
        s.total_seconds = int(e.group("secs"))
    else:
        s.problems.append("no 'Glidein ending' marker (the glidein did not finish)")
    x = _first(_XML, text, "=== XML description of glidein activity ===")
    if x:
        s.xml = x.group("xml")
    return s
