"""Reading /proc and signalling job sessions (gwms.glidein.procwatch)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from gwms.glidein.procwatch import (
    Watched,
    Watcher,
    parse_stat,
    processes_in_sessions,
    read_proc,
    signal_session,
)


def test_parse_stat_with_a_nasty_command_name() -> None:
    fields = ["S", "1", "200", "300"] + ["0"] * 7 + ["150", "50"] + ["0"] * 8 + ["1000"] + ["0"] * 20
    text = "123 (my (odd) prog) " + " ".join(fields)
    info = parse_stat(text, page_kb=4, ticks=100)
    assert info is not None
    assert (info.pid, info.ppid, info.pgrp, info.session) == (123, 1, 200, 300)
    assert info.rss_kb == 4000 and info.cpu_seconds == 2.0
    assert parse_stat("garbage") is None and parse_stat("1 (x) S") is None


def test_own_process_and_a_child_session() -> None:
    me = read_proc(os.getpid())
    assert me is not None and me.pid == os.getpid() and me.rss_kb > 0
    child = subprocess.Popen([sys.executable, "-c", "import os,time; os.fork() or None; time.sleep(30)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            members = processes_in_sessions([child.pid])[child.pid]
            if len(members) == 2:
                break
            time.sleep(0.05)
        assert len(members) == 2 and all(p.session == child.pid for p in members)
        assert signal_session(child.pid, 9) >= 0
        assert child.wait(5) == -9
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_watcher_samples_memory_and_escalates_to_sigkill() -> None:
    # a process that ignores SIGTERM: the watcher must send SIGKILL after the grace
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(30)"],
        start_new_session=True, stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdout.readline() == b"ok\n"
    seen: list[float] = []
    watcher = Watcher(0.05)
    job = Watched(child.pid, lambda w, now: seen.append(w.rss_mb))
    watcher.start()
    try:
        watcher.add(job)
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert seen and job.peak_rss_mb > 1
        began = time.monotonic()
        job.terminate(0.3, time.monotonic())
        assert child.wait(5) == -9
        assert time.monotonic() - began >= 0.25
    finally:
        watcher.stop()
        if child.poll() is None:
            child.kill()
            child.wait()
