"""Read-only inspections of a running job, for ``gwms job ps|top|ls|cat|tail|bt``.

The user's request reaches the agent through the schedd (the agent long-polls
``POST /v1/startd/inspections`` while it runs claims of that schedd, and posts each answer
to ``POST /v1/startd/inspections/{id}``): no inbound connection to the worker node. The
agent runs only this FIXED set of inspections, never a command a user chose:

``ps``    the job's processes (its session) as a tree: pid, ppid, state, cpu time, rss, command
``top``   one sample of cpu % and rss per process over about a second
``ls``    a directory inside the sandbox (default: the sandbox itself)
``cat``   a file inside the sandbox
``tail``  the last N lines of a file inside the sandbox
``bt``    stacks: ``py-spy dump`` for Python processes, else ``gdb -batch`` (if installed)

Paths are relative to the job's sandbox: absolute paths, ``..`` and symbolic links that
lead outside are refused (:func:`relative_parts`, :func:`confine`, and after opening,
the file descriptor's real path is checked again). Only regular files are read (a FIFO
would block) and every output is cut at :data:`MAX_OUTPUT_BYTES` with a note
(:func:`limit_output`). Standard library only (this module ships with the agent).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gwms.glidein.procwatch import CLOCK_TICKS, PAGE_KB

#: The inspections there are; nothing else is ever run.
KINDS = ("ps", "top", "ls", "cat", "tail", "bt")
#: Inspections that take a path (for ``ls`` it is optional).
PATH_KINDS = ("ls", "cat", "tail")
#: The most bytes of output an inspection returns (then a note says it was cut).
MAX_OUTPUT_BYTES = 1 << 20
#: The longest path a request may name.
MAX_PATH_CHARS = 4096
DEFAULT_TAIL_LINES = 10
MAX_TAIL_LINES = 100_000
#: The most processes listed (a fork bomb does not make a huge answer).
MAX_PROCESSES = 2000
#: The most directory entries listed by ``ls``.
MAX_ENTRIES = 5000
TOP_SAMPLE_SECONDS = 1.0
#: Seconds a stack dumper may take per process, and how many processes get one.
BT_TIMEOUT = 15.0
BT_MAX_PROCESSES = 4
#: How long the agent's inspection poll waits at the schedd.
POLL_WAIT = 20.0
#: Inspections the agent runs at once; more wait their turn.
MAX_CONCURRENT = 4

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class InspectionError(Exception):
    """An inspection that cannot be done; ``code`` says why for the schedd: ``refused``
    (the path leaves the sandbox, not a regular file), ``not_found``, ``not_running``,
    ``bad_request`` or ``failed``."""

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


def refused(message: str) -> InspectionError:
    """An :class:`InspectionError` for a request the confinement rules forbid."""
    return InspectionError(message, "refused")


# --------------------------------------------------------------------------- confinement (pure)


def relative_parts(path: str | None) -> list[str]:
    """The components of a user's path inside the sandbox (``[]``: the sandbox itself).

    Lexical rules only: absolute paths, ``..`` components, NUL characters and paths longer
    than :data:`MAX_PATH_CHARS` are refused; empty and ``.`` components are dropped.
    """
    if path is None:
        return []
    if not isinstance(path, str):
        raise InspectionError("a path must be a string", "bad_request")
    if len(path) > MAX_PATH_CHARS:
        raise refused(f"the path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise refused("the path holds a NUL character")
    if path.startswith("/"):
        raise refused(f"{path!r} is absolute; give a path relative to the job's sandbox")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refused(f"{path!r} contains '..'; paths stay inside the job's sandbox")
    return parts


def is_within(root: str, path: str) -> bool:
    """True if ``path`` is ``root`` or below it (both absolute and normalized)."""
    if path == root:
        return True
    base = root if root.endswith("/") else root + "/"
    return path.startswith(base)


def confine(sandbox: str, path: str | None) -> str:
    """The real path of ``path`` inside ``sandbox``; :class:`InspectionError` (``refused``)
    when it is not allowed or leads outside, e.g. through a symbolic link."""
    root = os.path.realpath(sandbox)
    parts = relative_parts(path)
    real = os.path.realpath(os.path.join(root, *parts))
    if not is_within(root, real):
        raise refused(f"{path!r} leads outside the job's sandbox (through a symbolic link)")
    return real


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def open_confined(sandbox: str, path: str | None, *, directory: bool = False) -> int:
    """A read-only descriptor of ``path`` inside ``sandbox``: a regular file, or with
    ``directory`` a directory. Refused when it leads outside, even if a symbolic link
    was swapped in after the check (the opened descriptor's own path is checked too)."""
    real = confine(sandbox, path)
    shown = path or "."
    flags = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | (_O_DIRECTORY if directory else 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise InspectionError(f"{shown!r}: no such file or directory in the job's sandbox", "not_found") from None
    except NotADirectoryError:
        raise InspectionError(f"{shown!r} is not a directory", "bad_request") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link swapped in after the check
            raise refused(f"{shown!r} is a symbolic link that changed while being opened") from None
        raise InspectionError(f"{shown!r}: {exc.strerror}", "failed") from None
    try:
        opened = _fd_path(fd)
        if opened is not None and not is_within(os.path.realpath(sandbox), opened):
            raise refused(f"{shown!r} leads outside the job's sandbox")
        mode = os.fstat(fd).st_mode
        if directory and not stat.S_ISDIR(mode):
            raise InspectionError(f"{shown!r} is not a directory", "bad_request")
        if not directory and not stat.S_ISREG(mode):
            what = "a directory (use ls)" if stat.S_ISDIR(mode) else "not a regular file"
            raise refused(f"{shown!r} is {what}")
    except BaseException:
        os.close(fd)
        raise
    return fd


# --------------------------------------------------------------------------- output limits (pure)


def cut_utf8(data: bytes, limit: int) -> bytes:
    """The longest prefix of ``data`` of at most ``limit`` bytes that does not end inside a
    UTF-8 sequence (so valid UTF-8 stays valid)."""
    if len(data) <= limit:
        return data
    end = max(limit, 0)
    # a character starts where the byte is not a continuation byte (10xxxxxx)
    while end > 0 and end > limit - 4 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end]


def keep_utf8_tail(data: bytes, limit: int) -> bytes:
    """The longest suffix of ``data`` of at most ``limit`` bytes that does not start inside
    a UTF-8 sequence."""
    if len(data) <= limit:
        return data
    begin = len(data) - max(limit, 0)
    for _ in range(3):
        if begin < len(data) and (data[begin] & 0xC0) == 0x80:
            begin += 1
    return data[begin:]


def truncation_note(shown: int, total: int | None) -> str:
    """The line that says an output was cut."""
    of = f" of {total}" if total is not None else ""
    return f"\n[output truncated: {shown}{of} bytes shown]\n"


def limit_output(data: bytes, limit: int = MAX_OUTPUT_BYTES, *, total: int | None = None) -> tuple[str, bool]:
    """``data`` as text of at most ``limit`` bytes (invalid UTF-8 replaced), and whether it
    was cut; a cut output ends with :func:`truncation_note` (``total``: the size of what
    ``data`` was read from, for the note)."""
    if len(data) <= limit:
        return data.decode("utf-8", "replace"), False
    shown = cut_utf8(data, limit)
    return shown.decode("utf-8", "replace") + truncation_note(len(shown), total), True


def last_lines(data: bytes, n: int) -> bytes:
    """The last ``n`` lines of ``data`` (a final newline ends the last line, it does not
    start an empty one)."""
    if n <= 0 or not data:
        return b""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    pos = end
    for _ in range(n):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return data
    return data[pos + 1:]


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class ProcessStat:
    """One process as ``/proc/<pid>/stat`` and ``cmdline`` describe it."""

    pid: int
    ppid: int
    session: int
    state: str
    cpu_seconds: float
    rss_kb: int
    command: str


def parse_proc_stat(text: str, *, page_kb: int = PAGE_KB, ticks: int = CLOCK_TICKS) -> ProcessStat | None:
    """The fields of ``/proc/<pid>/stat`` text (command: the name in parentheses)."""
    head, sep, rest = text.rpartition(")")
    if not sep or "(" not in head:
        return None
    pid_text, _, comm = head.partition("(")
    f = rest.split()
    try:
        return ProcessStat(
            pid=int(pid_text), ppid=int(f[1]), session=int(f[3]), state=f[0],
            cpu_seconds=(int(f[11]) + int(f[12])) / ticks, rss_kb=int(f[21]) * page_kb, command=f"[{comm}]",
        )
    except (ValueError, IndexError):
        return None


def command_line(raw: bytes, fallback: str, limit: int = 300) -> str:
    """A process's command line from ``/proc/<pid>/cmdline`` (NUL-separated), shortened."""
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\x00") if w]
    text = " ".join(words) if words else fallback
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_process(pid: int) -> ProcessStat | None:
    """The :class:`ProcessStat` of a live process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            info = parse_proc_stat(f.read().decode("utf-8", "replace"))
    except OSError:
        return None
    if info is None:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        raw = b""
    return ProcessStat(info.pid, info.ppid, info.session, info.state, info.cpu_seconds, info.rss_kb,
                       command_line(raw, info.command))


def session_processes(session: int) -> list[ProcessStat]:
    """The live processes of session ``session`` (the job's), at most :data:`MAX_PROCESSES`."""
    out: list[ProcessStat] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                info = parse_proc_stat(f.read().decode("utf-8", "replace"))
        except OSError:
            continue
        if info is None or info.session != session:
            continue
        full = read_process(info.pid)
        if full is not None:
            out.append(full)
            if len(out) >= MAX_PROCESSES:
                break
    return out


def process_tree(procs: Sequence[ProcessStat]) -> list[tuple[int, ProcessStat]]:
    """``(depth, process)`` in tree order: each process after its parent, children by pid;
    processes whose parent is not listed are roots."""
    by_pid = {p.pid: p for p in procs}
    children: dict[int, list[ProcessStat]] = {}
    roots: list[ProcessStat] = []
    for p in procs:
        if p.ppid in by_pid and p.ppid != p.pid:
            children.setdefault(p.ppid, []).append(p)
        else:
            roots.append(p)
    out: list[tuple[int, ProcessStat]] = []
    seen: set[int] = set()
    stack = [(0, p) for p in sorted(roots, key=lambda p: p.pid, reverse=True)]
    while stack:
        depth, p = stack.pop()
        if p.pid in seen:
            continue
        seen.add(p.pid)
        out.append((depth, p))
        for child in sorted(children.get(p.pid, ()), key=lambda c: c.pid, reverse=True):
            stack.append((depth + 1, child))
    return out


def format_cpu(seconds: float) -> str:
    """CPU time as ``H:MM:SS``."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_kb(kb: int) -> str:
    """A memory size for people (``512K``, ``12.5M``, ``1.2G``)."""
    if kb < 1024:
        return f"{kb}K"
    if kb < 1024 * 1024:
        return f"{kb / 1024:.1f}M"
    return f"{kb / 1024 / 1024:.1f}G"


def render_ps(tree: Iterable[tuple[int, ProcessStat]]) -> str:
    """The ``ps`` table of a process tree."""
    lines = [f"{'PID':>7} {'PPID':>7} S {'TIME':>9} {'RSS':>7} COMMAND"]
    for depth, p in tree:
        lead = "  " * (depth - 1) + " \\_ " if depth else ""
        lines.append(f"{p.pid:>7} {p.ppid:>7} {p.state} {format_cpu(p.cpu_seconds):>9} {format_kb(p.rss_kb):>7} "
                     f"{lead}{p.command}")
    return "\n".join(lines) + "\n"


def cpu_percent(before: float, after: float, seconds: float) -> float:
    """CPU use in percent of one core between two cpu-time samples ``seconds`` apart."""
    if seconds <= 0:
        return 0.0
    return max(after - before, 0.0) / seconds * 100.0


# --------------------------------------------------------------------------- the inspections


@dataclass(frozen=True)
class Target:
    """The job an inspection looks at: its sandbox, session id (the job's pid, None
    before it started) and ``C.P``."""

    sandbox: str
    session: int | None
    job: str


def _require_running(target: Target) -> int:
    if target.session is None:
        raise InspectionError(f"job {target.job} has not started its program yet", "not_running")
    return target.session


def inspect_ps(target: Target) -> dict[str, Any]:
    """The job's process tree."""
    procs = session_processes(_require_running(target))
    if not procs:
        return {"text": f"job {target.job}: no processes (the job is ending)\n", "data": []}
    tree = process_tree(procs)
    data = [{"pid": p.pid, "ppid": p.ppid, "state": p.state, "cpu_seconds": round(p.cpu_seconds, 2),
             "rss_kb": p.rss_kb, "command": p.command, "depth": d} for d, p in tree]
    return {"text": render_ps(tree), "data": data}


def inspect_top(target: Target, *, sample: float = TOP_SAMPLE_SECONDS,
                sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """One sample of cpu % and rss per process over ``sample`` seconds."""
    session = _require_running(target)
    first = {p.pid: p for p in session_processes(session)}
    began = time.monotonic()
    sleep(sample)
    elapsed = time.monotonic() - began
    second = session_processes(session)
    rows = []
    for p in second:
        before = first.get(p.pid)
        pct = cpu_percent(before.cpu_seconds if before else 0.0, p.cpu_seconds, elapsed) if before else 0.0
        rows.append((pct, p))
    rows.sort(key=lambda r: (-r[0], -r[1].rss_kb, r[1].pid))
    total_cpu = sum(r[0] for r in rows)
    total_rss = sum(r[1].rss_kb for r in rows)
    lines = [(f"job {target.job}: {len(rows)} process(es), cpu {total_cpu:.1f}%, rss {format_kb(total_rss)} "
             f"(sampled over {elapsed:.1f} s)"),
             f"{'PID':>7} {'%CPU':>6} {'RSS':>7} S {'TIME':>9} COMMAND"]
    for pct, p in rows:
        lines.append(f"{p.pid:>7} {pct:>6.1f} {format_kb(p.rss_kb):>7} {p.state} {format_cpu(p.cpu_seconds):>9} {p.command}")
    data = {"cpu_percent": round(total_cpu, 1), "rss_kb": total_rss, "seconds": round(elapsed, 3),
            "processes": [{"pid": p.pid, "cpu_percent": round(pct, 1), "rss_kb": p.rss_kb, "state": p.state,
                           "command": p.command} for pct, p in rows]}
    return {"text": "\n".join(lines) + "\n", "data": data}


def inspect_ls(target: Target, path: str | None) -> dict[str, Any]:
    """A directory of the sandbox: mode, size, modification time, name (``-> target`` for
    symbolic links, which are listed, never followed)."""
    fd = open_confined(target.sandbox, path, directory=True)
    try:
        names = sorted(os.listdir(fd))
        rows = []
        for name in names[:MAX_ENTRIES]:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            link = ""
            if stat.S_ISLNK(st.st_mode):
                try:
                    link = os.readlink(name, dir_fd=fd)
                except OSError:
                    link = "?"
            rows.append({"name": name, "mode": stat.filemode(st.st_mode), "size": st.st_size,
                         "mtime": int(st.st_mtime), "link": link or None})
    finally:
        os.close(fd)
    width = max([len(str(r["size"])) for r in rows] + [4])
    lines = []
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["mtime"]))
        shown = f"{r['name']} -> {r['link']}" if r["link"] else r["name"]
        lines.append(f"{r['mode']} {r['size']:>{width}} {when} {shown}")
    if len(names) > MAX_ENTRIES:
        lines.append(f"[{len(names) - MAX_ENTRIES} more entries not shown]")
    text = "\n".join(lines) + "\n" if lines else "(empty directory)\n"
    return {"text": text, "data": rows}


def inspect_cat(target: Target, path: str | None, *, limit: int = MAX_OUTPUT_BYTES) -> dict[str, Any]:
    """A file of the sandbox, at most ``limit`` bytes of it."""
    if not path:
        raise InspectionError("cat needs a file (a path relative to the job's sandbox)", "bad_request")
    fd = open_confined(target.sandbox, path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(limit + 1)
    text, cut = limit_output(data, limit, total=max(size, len(data)))
    return {"text": text, "truncated": cut, "data": {"size": size}}


def inspect_tail(target: Target, path: str | None, lines: int | None, *,
                 limit: int = MAX_OUTPUT_BYTES) -> dict[str, Any]:
    """The last ``lines`` lines of a file of the sandbox (within its last ``limit`` bytes)."""
    if not path:
        raise InspectionError("tail needs a file (a path relative to the job's sandbox)", "bad_request")
    n = DEFAULT_TAIL_LINES if lines is None else int(lines)
    if n < 1 or n > MAX_TAIL_LINES:
        raise InspectionError(f"tail shows 1 to {MAX_TAIL_LINES} lines, not {n}", "bad_request")
    fd = open_confined(target.sandbox, path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(size - limit, 0)
        f.seek(start)
        window = f.read(limit)
    cut = False
    if start > 0:  # the window may begin inside a line: drop that partial line
        first_nl = window.find(b"\n")
        window = window[first_nl + 1:] if 0 <= first_nl < len(window) - 1 else window
    chosen = last_lines(window, n)
    if start > 0 and chosen is window:
        cut = True
    chosen = keep_utf8_tail(chosen, limit)
    text = chosen.decode("utf-8", "replace")
    if cut:
        text = f"[only the last {len(chosen)} of {size} bytes were read]\n" + text
    return {"text": text, "truncated": cut, "data": {"size": size}}


def _is_python(p: ProcessStat) -> bool:
    first = p.command.split(" ", 1)[0]
    base = os.path.basename(first.strip("[]"))
    return base.startswith(("python", "pypy"))


def _run_dumper(argv: list[str], limit: int) -> str:
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=BT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return f"({argv[0]} did not finish within {BT_TIMEOUT:g} s)\n"
    except OSError as exc:
        return f"({argv[0]} could not run: {exc.strerror})\n"
    text, _ = limit_output(proc.stdout, limit)
    if proc.returncode != 0:
        text += f"({os.path.basename(argv[0])} exited with status {proc.returncode})\n"
    return text


def dumper_for(p: ProcessStat, py_spy: str | None, gdb: str | None) -> list[str] | None:
    """The fixed command that dumps the stacks of ``p`` (py-spy for Python, else gdb), or None."""
    if py_spy and _is_python(p):
        return [py_spy, "dump", "--pid", str(p.pid)]
    if gdb:
        return [gdb, "-batch", "-nx", "-p", str(p.pid), "-ex", "thread apply all bt"]
    return None


def inspect_bt(target: Target, *, limit: int = MAX_OUTPUT_BYTES,
               which: Callable[[str], str | None] = shutil.which) -> dict[str, Any]:
    """Stacks of the job's processes (Python ones first), as far as the node's tools allow."""
    session = _require_running(target)
    py_spy, gdb = which("py-spy"), which("gdb")
    if not py_spy and not gdb:
        return {"text": "bt is not available on this worker node: neither py-spy nor gdb is installed\n",
                "data": {"available": False}}
    procs = [p for _, p in process_tree(session_processes(session))]
    if not procs:
        return {"text": f"job {target.job}: no processes (the job is ending)\n", "data": {"available": True}}
    procs.sort(key=lambda p: (not _is_python(p), p.pid))
    parts = []
    share = max(limit // max(min(len(procs), BT_MAX_PROCESSES), 1), 1024)
    for p in procs[:BT_MAX_PROCESSES]:
        argv = dumper_for(p, py_spy, gdb)
        head = f"=== pid {p.pid}: {p.command}\n"
        if argv is None:
            parts.append(head + "(not a Python process and gdb is not installed)\n")
            continue
        parts.append(head + _run_dumper(argv, share))
    if len(procs) > BT_MAX_PROCESSES:
        parts.append(f"[{len(procs) - BT_MAX_PROCESSES} more process(es) not shown]\n")
    return {"text": "".join(parts), "data": {"available": True}}


def run_inspection(kind: str, target: Target, path: str | None = None, lines: int | None = None, *,
                   limit: int = MAX_OUTPUT_BYTES, sample: float = TOP_SAMPLE_SECONDS) -> dict[str, Any]:
    """Run one inspection; ``{"text", "truncated", "data"?}``. Raises :class:`InspectionError`."""
    if kind not in KINDS:
        raise InspectionError(f"unknown inspection {kind!r} (one of {', '.join(KINDS)})", "bad_request")
    if path is not None and kind not in PATH_KINDS:
        raise InspectionError(f"{kind} takes no path", "bad_request")
    if kind == "ps":
        out = inspect_ps(target)
    elif kind == "top":
        out = inspect_top(target, sample=sample)
    elif kind == "ls":
        out = inspect_ls(target, path)
    elif kind == "cat":
        out = inspect_cat(target, path, limit=limit)
    elif kind == "tail":
        out = inspect_tail(target, path, lines, limit=limit)
    else:
        out = inspect_bt(target, limit=limit)
    text, cut = limit_output(out["text"].encode("utf-8", "replace"), limit + 200)
    out["text"] = text
    out["truncated"] = bool(out.get("truncated")) or cut
    return out


def answer(request: Any, find_target: Callable[[str, str], Target | None]) -> dict[str, Any]:
    """The answer to one request from the schedd (``{"id", "claim_id", "job", "what",
    "path"?, "lines"?}``): ``{"ok": true, "text", "truncated", "data"?}`` or ``{"ok":
    false, "code", "error"}``. Never raises. ``find_target(claim_id, job)`` gives the job
    the claim runs here, None when it runs none (or another job)."""
    if not isinstance(request, dict):
        return {"ok": False, "code": "bad_request", "error": "malformed inspection request"}
    claim_id, job, kind = request.get("claim_id"), request.get("job"), request.get("what")
    path, lines = request.get("path"), request.get("lines")
    if not isinstance(claim_id, str) or not isinstance(job, str) or not isinstance(kind, str):
        return {"ok": False, "code": "bad_request", "error": "malformed inspection request"}
    if lines is not None and (not isinstance(lines, int) or isinstance(lines, bool)):
        return {"ok": False, "code": "bad_request", "error": "'lines' must be a number"}
    try:
        target = find_target(claim_id, job)
        if target is None:
            raise InspectionError(f"job {job} no longer runs here", "not_running")
        result = run_inspection(kind, target, path, lines)
    except InspectionError as exc:
        return {"ok": False, "code": exc.code, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a bug must not kill the poller: report it
        return {"ok": False, "code": "failed", "error": f"inspection failed: {type(exc).__name__}: {exc}"}
    return {"ok": True, **result}


# --------------------------------------------------------------------------- the agent's poller


class InspectionPoller:
    """The agent's inspection channel to one schedd: a thread that long-polls
    ``POST /v1/startd/inspections`` while ``keep_going()`` (the agent runs claims of that
    schedd), runs each request in a short thread, and posts the answer back.

    ``poll_call(path, body, timeout)`` and ``post_call(path, body)`` make the requests
    (they raise on errors); ``find_target`` is as in :func:`answer`.
    """

    def __init__(
        self,
        startd_id: str,
        poll_call: Callable[[str, Any, float], Any],
        post_call: Callable[[str, Any], Any],
        find_target: Callable[[str, str], Target | None],
        keep_going: Callable[[], bool],
        stopping: threading.Event,
        log: Callable[[str], None],
        *,
        wait: float = POLL_WAIT,
    ) -> None:
        self.startd_id = startd_id
        self.poll_call = poll_call
        self.post_call = post_call
        self.find_target = find_target
        self.keep_going = keep_going
        self.stopping = stopping
        self.log = log
        self.wait = wait
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self.answered = 0

    def ensure_running(self) -> None:
        """Start the poll thread unless it runs (call when a claim starts)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="inspections", daemon=True)
            self._thread.start()

    def _should_stop(self) -> bool:
        if self.stopping.is_set():
            with self._lock:
                self._thread = None
            return True
        if self.keep_going():
            return False
        with self._lock:  # re-check under the lock: ensure_running may be starting a claim
            if self.keep_going():
                return False
            self._thread = None
            return True

    def _loop(self) -> None:
        backoff = 0.0
        while not self._should_stop():
            if backoff and self.stopping.wait(backoff):
                continue
            try:
                got = self.poll_call("/v1/startd/inspections", {"startd": self.startd_id, "wait": self.wait},
                                     self.wait + 30.0)
            except Exception as exc:  # noqa: BLE001 - HttpError / TransportError: wait and retry
                if self.stopping.is_set():
                    continue
                status = getattr(exc, "status", None)
                # a schedd without inspections (404) is asked again rarely
                backoff = 300.0 if status in (404, 405) else min(max(backoff * 2, 1.0), 30.0)
                self.log(f"inspection poll failed (retry in {backoff:g} s): {exc}")
                continue
            backoff = 0.0
            requests = got.get("requests") if isinstance(got, dict) else None
            for request in requests or []:
                self._slots.acquire()
                threading.Thread(target=self._serve, args=(request,), name="inspection", daemon=True).start()

    def _serve(self, request: Any) -> None:
        try:
            result = answer(request, self.find_target)
            rid = request.get("id") if isinstance(request, dict) else None
            if not isinstance(rid, str) or not rid:
                return
            try:
                self.post_call(f"/v1/startd/inspections/{rid}", result)
                self.answered += 1
            except Exception as exc:  # noqa: BLE001 - the user's wait may have ended
                self.log(f"cannot post the answer to inspection {rid[:8]}: {exc}")
        finally:
            self._slots.release()
