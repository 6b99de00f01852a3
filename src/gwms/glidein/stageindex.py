"""The stage area's file list: one format for the factory that writes it and the glidein that reads it.

A factory's stage directory holds content-addressed files (``pilot.1a2b3c4d.py``) and a
list of them, ``files.<sha8>.lst``, one line per file::

    # gwms stage index 1
    # factory gfactory_main
    <sha256> <stage name> <local path> <kind> <scope>

- *stage name*: the file's path under the stage URL (``entry_<entry>/...`` for an
  entry's own files);
- *local path*: where the glidein puts it in its work directory;
- *kind*: ``startup`` (the bootstrap script, already running on the node), ``lib`` (a
  module of the pilot), ``agent`` (the startd agent zipapp), ``constants``
  (``KEY VALUE`` lines merged into ``glidein_config``), ``vars`` (publish declarations,
  the original's ``condor_vars.lst`` format) or ``validate`` (a validation script, run
  in the order of the list);
- *scope*: ``main`` for every glidein of the factory, ``entry:<name>`` for one entry's.

The glidein takes the lines of scope ``main`` and of its own entry. The list's own
sha256 comes on the glidein's command line (``-sign``); the factory also signs it
(a detached ``.sig`` file for anyone holding the factory's public key). Both
``glidein_startup.sh`` (with ``read``) and :func:`parse_index` read this format: fields
are separated by single spaces and never contain whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAGIC = "# gwms stage index 1"
KINDS = ("startup", "lib", "agent", "constants", "vars", "validate")
MAIN_SCOPE = "main"

#: A path component of a stage name or local path: no leading dot, no separators.
_COMPONENT = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"
PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
#: An entry name usable in a stage path and a scope.
ENTRY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class IndexFormatError(ValueError):
    """A stage index line that does not follow the format."""


@dataclass(frozen=True)
class IndexLine:
    """One file of the stage area."""

    sha256: str
    stage_name: str
    local_path: str
    kind: str
    scope: str = MAIN_SCOPE

    @property
    def entry(self) -> str | None:
        """The entry this file belongs to, or None for the factory's files."""
        return self.scope[len("entry:"):] if self.scope.startswith("entry:") else None

    def line(self) -> str:
        """The line of the index (without newline)."""
        return f"{self.sha256} {self.stage_name} {self.local_path} {self.kind} {self.scope}"


def entry_scope(entry: str) -> str:
    """The scope of an entry's own files."""
    return f"entry:{entry}"


def check_path(path: str, what: str) -> str:
    """``path`` if it is a safe relative path (no ``..``, no leading dot or slash), else raise."""
    if not PATH_RE.match(path) or ".." in path:
        raise IndexFormatError(f"{what} {path!r} is not a safe relative path")
    return path


def check_entry_name(entry: str) -> str:
    """``entry`` if it can name an entry in the stage area, else raise."""
    if not ENTRY_RE.match(entry) or ".." in entry:
        raise IndexFormatError(f"entry name {entry!r} may only hold letters, digits, '_', '.', '-' (no '..')")
    return entry


def validate_line(item: IndexLine) -> IndexLine:
    """Check every field of ``item``; return it."""
    if not SHA256_RE.match(item.sha256):
        raise IndexFormatError(f"{item.stage_name}: {item.sha256!r} is not a sha256 in hex")
    check_path(item.stage_name, "stage name")
    check_path(item.local_path, "local path")
    if item.kind not in KINDS:
        raise IndexFormatError(f"{item.stage_name}: unknown kind {item.kind!r}")
    if item.scope != MAIN_SCOPE:
        if not item.scope.startswith("entry:"):
            raise IndexFormatError(f"{item.stage_name}: unknown scope {item.scope!r}")
        check_entry_name(item.scope[len("entry:"):])
    return item


def format_index(lines: Iterable[IndexLine], *, factory: str) -> str:
    """The text of an index holding ``lines`` (in that order)."""
    if not factory or any(c.isspace() for c in factory):
        raise IndexFormatError(f"factory name {factory!r} must be non-empty without whitespace")
    body = "".join(validate_line(item).line() + "\n" for item in lines)
    return f"{MAGIC}\n# factory {factory}\n{body}"


def parse_index(text: str) -> list[IndexLine]:
    """The lines of an index (comments and empty lines skipped); raise on anything malformed."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != MAGIC:
        raise IndexFormatError("not a gwms stage index (first line)")
    out: list[IndexLine] = []
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip() or raw.startswith("#"):
            continue
        fields = raw.split(" ")
        if len(fields) != 5:
            raise IndexFormatError(f"line {number}: expected 5 fields, got {len(fields)}")
        out.append(validate_line(IndexLine(*fields)))
    return out


def factory_of(text: str) -> str | None:
    """The factory named in an index's header, or None."""
    for raw in text.splitlines()[1:3]:
        if raw.startswith("# factory "):
            return raw[len("# factory "):].strip() or None
    return None


def select_for_entry(lines: Iterable[IndexLine], entry: str) -> list[IndexLine]:
    """The files a glidein of ``entry`` uses: the factory's, then the entry's, in list order."""
    scope = entry_scope(entry)
    items = list(lines)
    return [i for i in items if i.scope == MAIN_SCOPE] + [i for i in items if i.scope == scope]
