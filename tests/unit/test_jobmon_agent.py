"""The agent side of ``gwms job ...``: path confinement, output limits, and the inspections
on a real sandbox with a real process (gwms.glidein.inspect)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein import inspect as I

# --------------------------------------------------------------------------- pure: paths

segment = st.one_of(st.sampled_from(["..", ".", "", "a", "b", "sub", "x y", "é"]),
                    st.text(alphabet="abc./-_", min_size=1, max_size=6))
user_paths = st.lists(segment, max_size=8).map("/".join) | st.text(max_size=30)


@given(user_paths)
def test_relative_parts_never_leave_the_sandbox(path: str) -> None:
    try:
        parts = I.relative_parts(path)
    except I.InspectionError as exc:
        assert exc.code in ("refused", "bad_request")
        assert path.startswith("/") or ".." in path.split("/") or "\x00" in path
        return
    assert ".." not in parts and "" not in parts and "." not in parts
    joined = os.path.normpath(os.path.join("/sandbox", *parts))
    assert I.is_within("/sandbox", joined)


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=5))
def test_relative_parts_keeps_plain_paths(parts: list[str]) -> None:
    assert I.relative_parts("/".join(parts)) == parts
    assert I.relative_parts("./" + "//".join(parts) + "/") == parts


@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", "a/../../b", "..", "a/..", "x\x00y", "a" * 5000])
def test_leaving_paths_are_refused(path: str) -> None:
    with pytest.raises(I.InspectionError) as info:
        I.relative_parts(path)
    assert info.value.code == "refused"


@given(st.sampled_from(["/s", "/s/", "/a/b"]), st.text(alphabet="ab/", max_size=8))
def test_is_within_is_about_whole_components(root: str, rest: str) -> None:
    base = root.rstrip("/")
    assert I.is_within(base, base + "/" + rest)
    assert not I.is_within(base, base + "x" + rest.replace("/", ""))


# --------------------------------------------------------------------------- pure: output limits


@given(st.text(max_size=300), st.integers(min_value=0, max_value=400))
def test_cut_utf8_is_a_valid_prefix_within_the_limit(text: str, limit: int) -> None:
    data = text.encode()
    cut = I.cut_utf8(data, limit)
    assert data.startswith(cut)
    assert len(cut) <= max(limit, 0) or cut == data
    cut.decode("utf-8")  # valid UTF-8 in, valid UTF-8 out
    if len(data) <= limit:
        assert cut == data
    else:
        assert len(cut) >= limit - 3


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400))
def test_cut_utf8_of_any_bytes_stays_within_the_limit(data: bytes, limit: int) -> None:
    cut = I.cut_utf8(data, limit)
    assert data.startswith(cut) and (len(cut) <= limit or cut == data)


@given(st.text(max_size=300), st.integers(min_value=0, max_value=400))
def test_keep_utf8_tail_is_a_valid_suffix(text: str, limit: int) -> None:
    data = text.encode()
    kept = I.keep_utf8_tail(data, limit)
    assert data.endswith(kept) and (len(kept) <= limit or kept == data)
    kept.decode("utf-8")


@given(st.binary(max_size=500), st.integers(min_value=1, max_value=600))
def test_limit_output_cuts_and_says_so(data: bytes, limit: int) -> None:
    text, cut = I.limit_output(data, limit, total=len(data))
    assert cut == (len(data) > limit)
    if cut:
        _body, _, note = text.rpartition("\n[output truncated: ")
        assert note.startswith(f"{len(I.cut_utf8(data, limit))} of {len(data)} bytes shown]")
        assert len(I.cut_utf8(data, limit)) <= limit
    else:
        assert text == data.decode("utf-8", "replace")


@given(st.lists(st.text(alphabet="abc \t", max_size=5), max_size=20), st.booleans(), st.integers(0, 25))
def test_last_lines_are_the_last_n_lines(lines: list[str], final_newline: bool, n: int) -> None:
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    each = re.findall(r"[^\n]*\n|[^\n]+$", text)  # every line with its newline
    assert I.last_lines(text.encode(), n).decode() == ("".join(each[-n:]) if n else "")


def test_last_lines_examples() -> None:
    assert I.last_lines(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert I.last_lines(b"a\nb\nc", 2) == b"b\nc"
    assert I.last_lines(b"a\nb\nc", 10) == b"a\nb\nc"
    assert I.last_lines(b"a\nb\nc", 0) == b""


# --------------------------------------------------------------------------- pure: processes


def test_parse_proc_stat_with_odd_command_names() -> None:
    line = "4242 (my (odd) prog) S 4200 4242 4242 0 -1 4194560 10 0 0 0 150 50 0 0 20 0 1 0 100 1000 250 18446744073709551615"
    p = I.parse_proc_stat(line, page_kb=4, ticks=100)
    assert p is not None
    assert (p.pid, p.ppid, p.session, p.state, p.cpu_seconds, p.rss_kb) == (4242, 4200, 4242, "S", 2.0, 1000)
    assert p.command == "[my (odd) prog]"
    assert I.parse_proc_stat("garbage") is None


def _proc(pid: int, ppid: int) -> I.ProcessStat:
    return I.ProcessStat(pid, ppid, 1, "S", 0.0, 0, f"cmd{pid}")


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30)), max_size=25, unique_by=lambda t: t[0]))
def test_process_tree_lists_each_process_once_after_its_parent(pairs: list[tuple[int, int]]) -> None:
    procs = [_proc(pid, ppid) for pid, ppid in pairs]
    tree = I.process_tree(procs)
    order = [p.pid for _, p in tree]
    assert len(order) == len(set(order))
    pos = {pid: i for i, pid in enumerate(order)}
    for depth, p in tree:
        if depth:
            assert pos[p.ppid] < pos[p.pid]
    # cycles (impossible in /proc, possible in random data) may drop processes; trees do not
    acyclic = all(ppid not in dict(pairs) or ppid < pid for pid, ppid in pairs)
    if acyclic:
        assert set(order) == {pid for pid, _ in pairs}


def test_command_line_and_cpu_percent() -> None:
    assert I.command_line(b"python3\x00job.py\x00-v\x00", "[python3]") == "python3 job.py -v"
    assert I.command_line(b"", "[kworker]") == "[kworker]"
    assert I.command_line(b"x" * 500, "[x]", limit=20) == "x" * 17 + "..."
    assert I.cpu_percent(1.0, 1.5, 1.0) == 50.0 and I.cpu_percent(2.0, 1.0, 1.0) == 0.0


# --------------------------------------------------------------------------- real sandbox


@pytest.fixture()
def job(tmp_path: Path) -> Iterator[I.Target]:
    sandbox = tmp_path / "execute" / "dir_1"
    (sandbox / "sub").mkdir(parents=True)
    (sandbox / "progress.txt").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    (sandbox / "sub" / "inner.txt").write_text("inside\n")
    (tmp_path / "secret.txt").write_text("not yours\n")
    (sandbox / "passwd").symlink_to("/etc/passwd")
    (sandbox / "up").symlink_to("../../secret.txt")
    (sandbox / "ok-link").symlink_to("sub/inner.txt")
    (sandbox / "escape-dir").symlink_to(str(tmp_path))
    os.mkfifo(sandbox / "pipe")
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & wait"], cwd=sandbox, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(I.session_processes(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        yield I.Target(str(sandbox), proc.pid, "7.0")
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_ps_shows_the_job_tree(job: I.Target) -> None:
    out = I.run_inspection("ps", job)
    rows = out["data"]
    assert [r["depth"] for r in rows][:2] == [0, 1]
    assert rows[0]["pid"] == job.session and "sleep 30" in rows[1]["command"]
    assert "PID" in out["text"] and "\\_ sleep 30" in out["text"]


def test_top_samples_cpu_and_memory(job: I.Target) -> None:
    out = I.run_inspection("top", job, sample=0.1)
    assert out["data"]["rss_kb"] > 0 and len(out["data"]["processes"]) == 2
    assert "%CPU" in out["text"]


def test_ls_lists_without_following_links(job: I.Target) -> None:
    out = I.run_inspection("ls", job)
    names = {r["name"]: r for r in out["data"]}
    assert {"progress.txt", "sub", "passwd", "pipe"} <= set(names)
    assert names["passwd"]["link"] == "/etc/passwd"
    assert "passwd -> /etc/passwd" in out["text"]
    assert [r["name"] for r in I.run_inspection("ls", job, "sub")["data"]] == ["inner.txt"]


def test_cat_and_tail_read_inside_the_sandbox(job: I.Target) -> None:
    assert I.run_inspection("cat", job, "progress.txt")["text"].startswith("line 1\nline 2\n")
    assert I.run_inspection("cat", job, "./sub//inner.txt")["text"] == "inside\n"
    assert I.run_inspection("cat", job, "ok-link")["text"] == "inside\n"  # a link that stays inside
    assert I.run_inspection("tail", job, "progress.txt", 3)["text"] == "line 18\nline 19\nline 20\n"
    assert I.run_inspection("tail", job, "progress.txt")["text"].count("\n") == 10


@pytest.mark.parametrize("kind,path", [
    ("cat", "../../secret.txt"), ("cat", "/etc/passwd"), ("cat", "passwd"), ("tail", "up"),
    ("ls", "escape-dir"), ("cat", "escape-dir/secret.txt"), ("ls", ".."), ("cat", "pipe"), ("cat", "sub"),
])
def test_paths_leaving_the_sandbox_or_odd_files_are_refused(job: I.Target, kind: str, path: str) -> None:
    with pytest.raises(I.InspectionError) as info:
        I.run_inspection(kind, job, path)
    assert info.value.code == "refused", info.value


def test_missing_files_and_bad_requests(job: I.Target) -> None:
    for kind, path, lines, code in [("cat", "nope.txt", None, "not_found"), ("cat", None, None, "bad_request"),
                                    ("ps", "x", None, "bad_request"), ("rm", None, None, "bad_request"),
                                    ("tail", "progress.txt", 0, "bad_request"), ("ls", "progress.txt", None, "bad_request")]:
        with pytest.raises(I.InspectionError) as info:
            I.run_inspection(kind, job, path, lines)
        assert info.value.code == code, (kind, path, info.value)


def test_big_files_are_cut_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 5000 + b"\nlast line\n")
    target = I.Target(str(tmp_path), None, "1.0")
    out = I.run_inspection("cat", target, "big", limit=1000)
    assert out["truncated"] and out["text"].startswith("x" * 1000)
    assert "[output truncated: 1000 of 5011 bytes shown]" in out["text"]
    out = I.run_inspection("tail", target, "big", 5, limit=1000)
    assert out["text"].endswith("last line\n")


def test_answers_never_raise(job: I.Target) -> None:
    def find(claim: str, label: str) -> I.Target | None:
        return job if (claim, label) == ("c1", "7.0") else None

    ok = I.answer({"id": "r", "claim_id": "c1", "job": "7.0", "what": "cat", "path": "sub/inner.txt"}, find)
    assert ok == {"ok": True, "text": "inside\n", "truncated": False, "data": {"size": 7}}
    gone = I.answer({"id": "r", "claim_id": "c2", "job": "7.0", "what": "ps"}, find)
    assert gone["ok"] is False and gone["code"] == "not_running"
    out = I.answer({"id": "r", "claim_id": "c1", "job": "7.0", "what": "cat", "path": "../../etc/passwd"}, find)
    assert out["ok"] is False and out["code"] == "refused" and "'..'" in out["error"]
    assert I.answer("junk", find)["code"] == "bad_request"
    assert I.answer({"claim_id": "c1", "job": "7.0", "what": "tail", "path": "x", "lines": "9"}, find)["code"] == "bad_request"


def test_not_started_jobs_have_no_processes(tmp_path: Path) -> None:
    with pytest.raises(I.InspectionError) as info:
        I.run_inspection("ps", I.Target(str(tmp_path), None, "3.1"))
    assert info.value.code == "not_running" and "3.1" in str(info.value)


def test_bt_says_what_it_can(job: I.Target) -> None:
    none = I.inspect_bt(job, which=lambda name: None)
    assert none["text"].startswith("bt is not available") and none["data"]["available"] is False
    assert I.dumper_for(I.ProcessStat(5, 1, 5, "S", 0, 0, "python3 job.py"), "/x/py-spy", None) == \
        ["/x/py-spy", "dump", "--pid", "5"]
    assert I.dumper_for(I.ProcessStat(5, 1, 5, "S", 0, 0, "sleep 30"), "/x/py-spy", None) is None
    assert I.dumper_for(I.ProcessStat(5, 1, 5, "S", 0, 0, "sleep 30"), None, "/x/gdb")[:2] == ["/x/gdb", "-batch"]
    # with the tools this machine has: one section per process, whatever the dumper said
    out = I.run_inspection("bt", job)
    if out["data"]["available"]:
        assert f"=== pid {job.session}:" in out["text"]


def test_the_module_is_standard_library_only() -> None:
    # it ships with the agent; the portability test covers the rule, this checks the import
    code = "import gwms.glidein.inspect, sys; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the poller


class FakeSchedd:
    """The schedd's two inspection endpoints, in memory."""

    def __init__(self, requests: list[list[dict[str, object]]], *, fail: Exception | None = None) -> None:
        self.requests = requests
        self.fail = fail
        self.polls: list[object] = []
        self.answers: dict[str, object] = {}
        self.lock = threading.Lock()

    def poll(self, path: str, body: object, timeout: float) -> object:
        assert path == "/v1/startd/inspections" and timeout > 20
        with self.lock:
            self.polls.append(body)
        if self.fail is not None:
            raise self.fail
        time.sleep(0.01)
        with self.lock:
            return {"requests": self.requests.pop(0) if self.requests else []}

    def post(self, path: str, body: object) -> object:
        with self.lock:
            self.answers[path.rsplit("/", 1)[1]] = body
        return {"accepted": True}


def test_the_poller_answers_while_claims_run_then_stops(job: I.Target) -> None:
    schedd = FakeSchedd([[{"id": "r1", "claim_id": "c1", "job": "7.0", "what": "cat", "path": "sub/inner.txt"},
                          {"id": "r2", "claim_id": "c1", "job": "7.0", "what": "cat", "path": "../x"}]])
    claims = {"c1"}
    stopping = threading.Event()
    poller = I.InspectionPoller("agent-1", schedd.poll, schedd.post,
                                lambda claim, label: job if claim in claims else None,
                                lambda: bool(claims), stopping, lambda line: None)
    poller.ensure_running()
    poller.ensure_running()  # one thread, however often a claim starts
    deadline = time.monotonic() + 5
    while len(schedd.answers) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert schedd.answers["r1"] == {"ok": True, "text": "inside\n", "truncated": False, "data": {"size": 7}}
    assert schedd.answers["r2"]["ok"] is False and schedd.answers["r2"]["code"] == "refused"
    assert schedd.polls[0] == {"startd": "agent-1", "wait": I.POLL_WAIT}
    claims.clear()  # the last claim ended: the poller stops by itself
    deadline = time.monotonic() + 5
    while poller._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert poller._thread is None
    polls = len(schedd.polls)
    time.sleep(0.1)
    assert len(schedd.polls) == polls
    stopping.set()


def test_the_poller_backs_off_when_the_schedd_has_no_inspections() -> None:
    class NotFound(Exception):
        status = 404

    schedd = FakeSchedd([], fail=NotFound("no such path"))
    said: list[str] = []
    stopping = threading.Event()
    poller = I.InspectionPoller("a", schedd.poll, schedd.post, lambda c, j: None, lambda: True, stopping, said.append)
    poller.ensure_running()
    time.sleep(0.3)
    stopping.set()
    assert len(schedd.polls) == 1 and "retry in 300 s" in said[0]
