"""Item lists of ``queue ... in``, ``queue ... from`` and ``queue ... matching``.

The only I/O of the submit language lives here: reading the file named by
``queue ... from FILE`` and globbing for ``queue ... matching``, both relative to the
base directory the caller injects. Errors raise :class:`SubmitValueError`.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from gwms.pool.schedd.submit_errors import SubmitValueError

Slice = tuple[int | None, int | None, int | None]

_SLICE = re.compile(r"\[\s*([+-]?\d+)?\s*(?::\s*([+-]?\d+)?\s*(?::\s*([+-]?\d+)?\s*)?)?\]\Z")
_ROW_SEP = re.compile(r"\s*,\s*|\s+")


def parse_slice(text: str) -> Slice:
    """A Python-style slice ``[start:stop:step]`` (each part optional; step > 0)."""
    m = _SLICE.match(text.strip())
    if m is None or ":" not in text:
        raise SubmitValueError(f'bad slice "{text}" (expected [start:stop] or [start:stop:step])')
    start, stop, step = (int(g) if g is not None else None for g in m.groups())
    if step is not None and step <= 0:
        raise SubmitValueError(f'bad slice "{text}": the step must be positive')
    return (start, stop, step)


def split_in_items(text: str) -> list[str]:
    """Items of ``queue ... in``: separated by commas and/or white space."""
    return [p for p in re.split(r"[\s,]+", text) if p]


def split_row(row: str, nvars: int) -> list[str]:
    """One line of ``queue ... from`` split over ``nvars`` variables: fields separated by a
    comma and/or white space, the last variable taking the rest of the line; missing
    fields are empty."""
    fields = _ROW_SEP.split(row.strip(), maxsplit=nvars - 1) if nvars > 1 else [row.strip()]
    fields = [f.strip() for f in fields]
    fields.extend([""] * (nvars - len(fields)))
    return fields


def item_lines(text: str) -> list[str]:
    """The rows of a ``from`` list: non-blank lines not starting with ``#``."""
    rows = []
    for line in text.split("\n"):
        s = line.strip()
        if s and not s.startswith("#"):
            rows.append(s)
    return rows


def read_item_file(base_dir: Path, name: str) -> list[str]:
    """Rows of the file of ``queue ... from FILE`` (relative to ``base_dir``)."""
    path = base_dir / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SubmitValueError(f'cannot read queue items: no file "{name}"') from None
    except IsADirectoryError:
        raise SubmitValueError(f'cannot read queue items: "{name}" is a directory') from None
    except (OSError, UnicodeDecodeError) as err:
        raise SubmitValueError(f'cannot read queue items from "{name}": {err}') from None
    return item_lines(text)


def glob_items(base_dir: Path, patterns: list[str], kind: str) -> list[str]:
    """Names matching the glob ``patterns`` (relative to ``base_dir``), each pattern's
    matches sorted, duplicates dropped. ``kind`` is ``"files"``, ``"dirs"`` or ``"any"``."""
    out: list[str] = []
    seen: set[str] = set()
    root = str(base_dir)
    for pattern in patterns:
        pat = pattern.rstrip("/") or pattern
        for name in sorted(glob.glob(pat, root_dir=root)):
            full = name if os.path.isabs(name) else os.path.join(root, name)
            if kind == "files" and not os.path.isfile(full):
                continue
            if kind == "dirs" and not os.path.isdir(full):
                continue
            if name not in seen:
                seen.add(name)
                out.append(name)
    return out
