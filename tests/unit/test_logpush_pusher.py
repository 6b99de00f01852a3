"""The glidein's log pusher against a small HTTP server on 127.0.0.1: what it sends,
retries, back-off, refusals, and that a server that is down never holds the glidein."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein.logpush import LogPusher, backoff_delays, from_options, permanent_status
from gwms.monitor.sections import split_err


class Recorder:
    """A PUT sink: records (path, headers, body); answers with the next queued status."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                recorder.puts.append((self.path, dict(self.headers), body))
                time.sleep(recorder.delay)
                status = recorder.statuses.pop(0) if recorder.statuses else 201
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/push"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.stop()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/push"


def make(tmp: Path, url: str, **kw) -> LogPusher:
    log_dir = tmp / "log"
    log_dir.mkdir(exist_ok=True)
    (log_dir / "StartdLog").write_text("11/22/26 04:00:00 (pid:1) startd started\n")
    out, err = tmp / "job.out", tmp / "job.err"
    if not out.exists():
        out.write_text("Starting glidein_startup.sh at Sun Nov 22 04:00:00 UTC 2026 (1795320000)\n")
        err.write_text("a warning on stderr\n")
    records: list[tuple[str, dict]] = kw.pop("records", [])
    kw.setdefault("backoff", 0.05)
    return LogPusher(url, "the-token", entry="CE_1", cluster="12", proc="3", log_dir=log_dir,
                     pilot_log=lambda: b'{"timestamp":"2026-11-22T04:00:00.000+00:00","content":"pilot"}\n',
                     out_path=str(out), err_path=str(err), log=lambda m, **k: records.append((m, k)), **kw)


def test_a_checkpoint_sends_out_and_err_with_the_sections(sink: Recorder, tmp_path: Path) -> None:
    pusher = make(tmp_path, sink.url)
    assert pusher.push("start")
    paths = {p: (h, b) for p, h, b in sink.puts}
    assert set(paths) == {"/v1/push/CE_1/job.12.3/job.12.3.out", "/v1/push/CE_1/job.12.3/job.12.3.err"}
    headers, err = paths["/v1/push/CE_1/job.12.3/job.12.3.err"]
    assert headers["Authorization"] == "Bearer the-token"
    decoded = split_err(err)
    assert decoded.plain_text.startswith("a warning on stderr")
    assert decoded.names() == ["StartdLog", "GlideinLog"] and all(s.ok for s in decoded.sections)
    assert b"startd started" in decoded.section("StartdLog").data
    # nothing changed: nothing is sent again; the .out grows: only it goes
    assert pusher.push("periodic") and len(sink.puts) == 2
    with open(tmp_path / "job.out", "a") as f:
        f.write("=== Last script starting ... ===\n")
    assert pusher.push("validated")
    assert [p for p, _h, _b in sink.puts[2:]] == ["/v1/push/CE_1/job.12.3/job.12.3.out"]


def test_the_final_push_sends_the_finished_err_as_it_is(sink: Recorder, tmp_path: Path) -> None:
    pusher = make(tmp_path, sink.url)
    assert pusher.close(final=True, final_timeout=10)
    err = next(b for p, _h, b in sink.puts if p.endswith(".err"))
    assert err == b"a warning on stderr\n"


def test_server_errors_are_retried_with_backoff_then_left_to_the_next_checkpoint(sink: Recorder, tmp_path: Path) -> None:
    sink.statuses = [503, 500, 201, 503, 503, 503, 503]
    pusher = make(tmp_path, sink.url, retries=3)
    pusher.out_path = None  # only the .err
    assert pusher.push("start")  # two failures, then through
    assert len(sink.puts) == 3
    (tmp_path / "job.err").write_text("more\n")
    assert not pusher.push("periodic")  # 1 try + 3 retries, all 503
    assert len(sink.puts) == 7 and pusher.failures == 1 and not pusher.disabled


def test_a_refused_token_stops_pushing(sink: Recorder, tmp_path: Path) -> None:
    records: list = []
    sink.statuses = [401]
    pusher = make(tmp_path, sink.url, records=records)
    assert not pusher.push("start")
    assert "refused the token" in pusher.disabled and len(sink.puts) == 1
    assert not pusher.push("periodic") and len(sink.puts) == 1
    assert any(k.get("severity") == "error" for _m, k in records)


def test_a_413_is_not_retried(sink: Recorder, tmp_path: Path) -> None:
    sink.statuses = [413, 201]
    pusher = make(tmp_path, sink.url, retries=5)
    assert not pusher.push("start")
    assert len(sink.puts) == 2 and not pusher.disabled  # the .out refused, the .err sent


def test_a_server_that_is_down_never_holds_the_glidein(tmp_path: Path) -> None:
    pusher = make(tmp_path, dead_url(), retries=2, backoff=0.2, interval=1)
    t = time.monotonic()
    pusher.start()
    pusher.checkpoint("validated")
    started = time.monotonic() - t
    assert started < 0.5  # start and checkpoint return at once
    time.sleep(0.3)
    t = time.monotonic()
    assert not pusher.close(final=True, final_timeout=1.5)
    assert time.monotonic() - t < 3.0  # bounded by final_timeout (plus one connect)


def test_a_slow_server_is_cut_off_by_the_final_timeout(sink: Recorder, tmp_path: Path) -> None:
    sink.delay = 3.0
    pusher = make(tmp_path, sink.url, timeout=10)
    t = time.monotonic()
    pusher.close(final=True, final_timeout=1.0)
    assert time.monotonic() - t < 2.5


def test_the_thread_pushes_at_start_and_periodically(sink: Recorder, tmp_path: Path) -> None:
    pusher = make(tmp_path, sink.url, interval=1).start()
    deadline = time.monotonic() + 5
    while len(sink.puts) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sink.puts) == 2
    with open(tmp_path / "job.out", "a") as f:
        f.write("later\n")
    deadline = time.monotonic() + 5
    while len(sink.puts) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.puts[-1][2].endswith(b"later\n")
    assert pusher.close(final=True, final_timeout=5)


def test_options_and_the_token_environment(tmp_path: Path) -> None:
    env = {"GLIDEIN_LOG_TOKEN": "tok", "PATH": "/bin"}
    logged: list = []
    opts = {"logurl": "http://m:1/v1/push", "entry": "CE_1", "cluster": "12", "subcluster": "3", "loginterval": "30"}
    pusher = from_options(opts, env, log_dir=tmp_path, pilot_log=lambda: b"", log=lambda m, **k: logged.append(m))
    assert pusher is not None and pusher.interval == 30 and pusher.job == "job.12.3" and pusher.token == "tok"
    assert "GLIDEIN_LOG_TOKEN" not in env  # children never see it
    assert from_options({"entry": "e"}, {"GLIDEIN_LOG_TOKEN": "t"}, log_dir=tmp_path, pilot_log=lambda: b"",
                        log=lambda m, **k: None) is None
    assert from_options(opts, {}, log_dir=tmp_path, pilot_log=lambda: b"", log=lambda m, **k: logged.append(m)) is None
    assert any("no push token" in m for m in logged)
    token_file = tmp_path / "log_token"
    token_file.write_text("from-file\n")
    pusher = from_options({**opts, "logtokenfile": str(token_file)}, {}, log_dir=tmp_path, pilot_log=lambda: b"",
                          log=lambda m, **k: logged.append(m))
    assert pusher is not None and pusher.token == "from-file" and not token_file.exists()


@given(st.integers(0, 12), st.floats(0.01, 5), st.floats(1, 4), st.floats(0.1, 60))
def test_backoff_is_bounded(retries: int, first: float, factor: float, cap: float) -> None:
    delays = backoff_delays(retries, first, factor, cap)
    assert len(delays) == retries
    assert all(0 <= d <= cap for d in delays) and delays == sorted(delays)


@given(st.integers(100, 599))
def test_only_client_errors_other_than_timeouts_are_permanent(status: int) -> None:
    assert permanent_status(status) == (400 <= status < 500 and status not in (408, 429))
