"""Push the glidein's logs to the log monitor while it runs, so a killed glidein leaves them.

A glidein killed by the site (walltime, preemption, ``kill -9``) never gets its ``.out``
and ``.err`` back to the factory. With ``-logurl URL`` on its command line and a push
token in ``$GLIDEIN_LOG_TOKEN`` (both from the factory, see
:mod:`gwms.security.logtoken`), the pilot starts a :class:`LogPusher`, which uploads
checkpoints of its logs with ``PUT <url>/<entry>/job.<C>.<P>/job.<C>.<P>.out|.err``:

- at start, after validation, every ``-loginterval`` seconds (default 60), and at exit;
- the ``.out`` checkpoint is the glidein's stdout so far, the ``.err`` checkpoint its
  stderr so far followed by what the end of the run would add: every daemon log and the
  structured JSON log (``GlideinLog``) as gzip | uuencode sections, each cut to its last
  ``section_bytes`` (at exit: the finished ``.err`` as it is);
- unchanged files are not sent again.

The glidein's stdout and stderr are read back from the files the batch system writes
them to (``/proc/self/fd/1`` and ``2``); when they are pipes, the ``.err`` checkpoint
holds the sections only and no ``.out`` is pushed.

Pushing never blocks or fails the glidein: it runs in a background thread, each upload
has a timeout, failures are retried a bounded number of times with back-off
(:func:`backoff_delays`) and then left to the next checkpoint; a refused token (401,
403) stops pushing; the final push at exit waits at most ``final_timeout`` seconds.
Standard library only; Python >= 3.9.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl
import stat
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gwms.glidein.pilotreport import log_sections

#: The environment variable holding the push token (removed before any child starts).
TOKEN_ENV = "GLIDEIN_LOG_TOKEN"
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 20.0
DEFAULT_RETRIES = 3
#: The end of each daemon log a running checkpoint carries.
DEFAULT_SECTION_BYTES = 2 * 1024 * 1024
#: The most of the stdout/stderr files a checkpoint reads.
MAX_STREAM_BYTES = 64 * 1024 * 1024

_JOB = re.compile(r"^[0-9]{1,18}$")

Logger = Callable[..., None]


def backoff_delays(
    retries: int, first: float = 1.0, factor: float = 2.0, cap: float = 30.0
) -> list[float]:
    """The waits before each retry: ``first``, ``first*factor``, ... capped at ``cap``."""
    out: list[float] = []
    delay = max(first, 0.0)
    for _ in range(max(retries, 0)):
        out.append(min(delay, cap))
        delay *= factor
    return out


def permanent_status(status: int) -> bool:
    """True for answers that another try would not change (4xx except 408 and 429)."""
    return 400 <= status < 500 and status not in (408, 429)


def stream_path(fd: int) -> str | None:
    """A path from which the file behind ``fd`` can be read again, if it is a regular file."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    candidate = f"/proc/self/fd/{fd}"  # opens the file anew, for reading (Linux)
    try:
        with open(candidate, "rb"):
            return candidate
    except OSError:
        return None


def _read_file(path: str | None, limit: int = MAX_STREAM_BYTES) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


class LogPusher:
    """Uploads the glidein's ``.out``/``.err`` checkpoints (see the module docstring).

    Args:
        url: the monitor's upload URL (``https://monitor:8090/v1/push``).
        token: the push token.
        entry / cluster / proc: which glidein this is (``job.<cluster>.<proc>``).
        log_dir: the agent's log directory (daemon logs, ``StartdEvents.jsonl``).
        pilot_log: gives the pilot's own JSON records so far.
        out_path / err_path: where the glidein's stdout/stderr can be read (None: not readable).
        log: ``log(message, severity=..., type=...)`` for the pilot's structured log.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        entry: str,
        cluster: str,
        proc: str,
        log_dir: Path | None = None,
        pilot_log: Callable[[], bytes] | None = None,
        out_path: str | None = None,
        err_path: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 1.0,
        ca_file: str | None = None,
        section_bytes: int = DEFAULT_SECTION_BYTES,
        log: Logger | None = None,
        opener: Callable[..., Any] | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.entry = entry
        self.job = f"job.{cluster}.{proc}"
        self.log_dir = log_dir
        self.pilot_log = pilot_log or (lambda: b"")
        self.out_path = out_path
        self.err_path = err_path
        self.interval = max(float(interval), 1.0)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.section_bytes = section_bytes
        self.log = log or (lambda *a, **k: None)
        self._context = None
        if self.base.startswith("https:"):
            self._context = ssl.create_default_context(cafile=ca_file or None)
        self._opener = opener or urllib.request.urlopen
        self._sent: dict[str, str] = {}
        self._lock = threading.Lock()  # one push at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reasons: list[str] = []
        self.disabled = ""  # why pushing stopped for good (a refused token)
        self.pushes = 0
        self.failures = 0
        self._last_error = ""

    # -- what is sent ------------------------------------------------------------------
    def url_for(self, name: str) -> str:
        """The upload URL of one file of this glidein."""
        quote = urllib.parse.quote
        return f"{self.base}/{quote(self.entry, safe='')}/{quote(self.job, safe='')}/{quote(name, safe='')}"

    def _log_dir_state(self) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        try:
            for path in sorted(self.log_dir.iterdir()) if self.log_dir is not None else []:
                st = path.stat()
                out.append((path.name, st.st_size, st.st_mtime_ns))
        except OSError:
            pass
        return out

    def _checkpoint(self, final: bool) -> dict[str, tuple[str, Callable[[], bytes]]]:
        """name -> (fingerprint of what the file is made from, how to make it)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        files: dict[str, tuple[str, Callable[[], bytes]]] = {}
        out = _read_file(self.out_path)
        if out is not None:
            files[f"{self.job}.out"] = (hashlib.sha256(out).hexdigest(), lambda: out)
        err = _read_file(self.err_path)
        if final and err is not None:  # the finished .err already holds its sections
            files[f"{self.job}.err"] = (hashlib.sha256(err).hexdigest(), lambda: err)
            return files
        pilot_log = self.pilot_log()
        inputs = hashlib.sha256(err or b"")
        inputs.update(hashlib.sha256(pilot_log).digest())
        inputs.update(repr(self._log_dir_state()).encode())

        def err_checkpoint() -> bytes:
            try:
                sections = "".join(
                    log_sections(self.log_dir, pilot_log, max_bytes=self.section_bytes)
                )
            except Exception as exc:  # noqa: BLE001 - a checkpoint without sections is still one
                sections = ""
                self._note(f"cannot encode the log sections: {type(exc).__name__}: {exc}")
            return (err or b"") + sections.encode("utf-8")

        files[f"{self.job}.err"] = ("sections:" + inputs.hexdigest(), err_checkpoint)
        return files

    def checkpoint_files(self, final: bool = False) -> dict[str, bytes]:
        """The files of a checkpoint now: ``job.C.P.out`` (if readable) and ``job.C.P.err``."""
        return {name: make() for name, (_key, make) in self._checkpoint(final).items()}

    # -- sending -----------------------------------------------------------------------
    def _note(self, message: str, severity: str = "warning") -> None:
        if message != self._last_error:  # each new problem once, not every minute
            self._last_error = message
            try:
                self.log(message, severity=severity, type="log_push")
            except Exception:  # noqa: BLE001, S110 - the log is best effort
                pass

    def _put(self, name: str, data: bytes) -> int:
        """One upload; the HTTP status (0: no answer)."""
        request = urllib.request.Request(
            self.url_for(name),
            data=data,
            method="PUT",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/octet-stream",
                "User-Agent": "gwms-glidein-logpush",
            },
        )
        try:
            kwargs: dict[str, Any] = {"timeout": self.timeout}
            if self._context is not None:
                kwargs["context"] = self._context
            with self._opener(request, **kwargs) as response:
                response.read(65536)
                return int(getattr(response, "status", 200))
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read(2048).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                body = ""
            self._note(f"log push of {name} refused: HTTP {exc.code} {body[:300]}")
            return int(exc.code)
        except Exception as exc:  # noqa: BLE001 - network, TLS, timeouts: all retried later
            self._note(f"log push of {name} failed: {type(exc).__name__}: {exc}")
            return 0

    def push(
        self, reason: str = "checkpoint", *, final: bool = False, deadline: float | None = None
    ) -> bool:
        """Send what changed since the last push (with retries); True if all of it arrived.

        Never raises. ``deadline`` (a ``time.monotonic()`` value) bounds the retries.
        """
        if self.disabled:
            return False
        with self._lock:
            try:
                files = self._checkpoint(final)
            except Exception as exc:  # noqa: BLE001
                self._note(f"cannot read the logs to push: {type(exc).__name__}: {exc}")
                return False
            ok = True
            for name, (digest, make) in files.items():
                if self._sent.get(name) == digest:
                    continue  # unchanged since it was delivered
                data = make()
                # at exit one retry only: the glidein is ending and the batch slot waits
                delays = backoff_delays(
                    min(self.retries, 1) if final else self.retries, self.backoff
                )
                attempt = 0
                while True:
                    status = self._put(name, data)
                    if 200 <= status < 300:
                        self._sent[name] = digest
                        self.pushes += 1
                        break
                    if status in (401, 403):
                        self.disabled = f"the log server refused the token (HTTP {status})"
                        self._note(f"log push stopped: {self.disabled}", "error")
                        return False
                    if permanent_status(status) or attempt >= len(delays):
                        self.failures += 1
                        if status == 0:  # no server there: the other file would fare no better
                            return False
                        ok = False
                        break
                    wait = delays[attempt]
                    attempt += 1
                    if deadline is not None:
                        wait = min(wait, deadline - time.monotonic())
                        if wait <= 0:
                            self.failures += 1
                            return False
                    if final:
                        time.sleep(wait)
                    elif self._stop.wait(wait):  # closing: the final push takes over
                        return False
            if ok and self._last_error:
                self._last_error = ""
                self.log(f"log push ({reason}) delivered", severity="info", type="log_push")
            return ok

    # -- the background thread ---------------------------------------------------------
    def start(self) -> LogPusher:
        """Push at once, then every ``interval`` seconds and on :meth:`checkpoint`, from a thread."""
        self.log(
            f"pushing logs to {self.base} every {self.interval:g} s",
            severity="info",
            type="log_push",
        )
        self._reasons.append("start")
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="gwms-logpush", daemon=True)
        self._thread.start()
        return self

    def checkpoint(self, reason: str) -> None:
        """Ask for a push soon (returns at once)."""
        self._reasons.append(reason)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            if self._stop.is_set():
                return
            self._wake.clear()
            reason = self._reasons.pop(0) if self._reasons else "periodic"
            self._reasons.clear()
            self.push(reason)
            if self.disabled:
                return

    def close(self, *, final: bool = True, final_timeout: float = 30.0) -> bool:
        """Stop the thread and (``final``) push the finished logs, within ``final_timeout`` s."""
        deadline = time.monotonic() + max(final_timeout, 0.0)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.0))
            if self._thread.is_alive():  # a push is still waiting for the server
                return False
        if not final:
            return True
        old_timeout = self.timeout
        self.timeout = max(min(self.timeout, deadline - time.monotonic()), 0.5)
        try:
            return self.push("exit", final=True, deadline=deadline)
        finally:
            self.timeout = old_timeout


def from_options(
    options: Mapping[str, str],
    env: dict[str, str],
    *,
    log_dir: Path,
    pilot_log: Callable[[], bytes],
    log: Logger,
) -> LogPusher | None:
    """A pusher from the pilot's options (``-logurl``, ``-loginterval``, ``-logcafile`` or
    ``-cafile``, ``-entry``, ``-cluster``, ``-subcluster``) and its token, or None when
    pushing is not configured.

    The token comes in ``-logtokenfile`` (the bootstrap writes ``$GLIDEIN_LOG_TOKEN`` to a
    0600 file), which is read and removed, or in ``$GLIDEIN_LOG_TOKEN``, which is removed
    from ``env``: no validation script, agent or job sees it."""
    token = env.pop(TOKEN_ENV, "").strip()
    os.environ.pop(TOKEN_ENV, None)
    token_file = options.get("logtokenfile", "").strip()
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip() or token
            os.unlink(token_file)
        except OSError as exc:
            log(
                f"cannot read the log token file {token_file}: {exc}",
                severity="warning",
                type="log_push",
            )
    url = options.get("logurl", "").strip()
    if not url:
        return None
    cluster, proc = options.get("cluster", ""), options.get("subcluster", "") or "0"
    if not token or not _JOB.match(cluster) or not _JOB.match(proc):
        log(
            f"not pushing logs to {url}: "
            + ("no push token" if not token else "no -cluster/-subcluster ids"),
            severity="warning",
            type="log_push",
        )
        return None
    if not url.startswith(("http://", "https://")):
        log(
            f"not pushing logs: -logurl {url!r} is not an http(s) URL",
            severity="warning",
            type="log_push",
        )
        return None
    try:
        interval = float(options.get("loginterval") or DEFAULT_INTERVAL)
    except ValueError:
        interval = DEFAULT_INTERVAL
    try:
        return LogPusher(
            url,
            token,
            entry=options.get("entry", ""),
            cluster=cluster,
            proc=proc,
            log_dir=log_dir,
            pilot_log=pilot_log,
            out_path=stream_path(1),
            err_path=stream_path(2),
            interval=interval,
            ca_file=options.get("logcafile") or options.get("cafile") or None,
            log=log,
        )
    except (OSError, ssl.SSLError, ValueError) as exc:
        log(f"not pushing logs to {url}: {exc}", severity="warning", type="log_push")
        return None
