"""Client side of the schedd: what ``gwms submit``, ``q``, ``rm`` … send.

:func:`submit_file` does what ``condor_submit`` does: parse the submit description here
(errors never reach the schedd), reserve a cluster id, expand the jobs with it, upload
the input files the jobs name, and queue the cluster in one request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gwms.net import SyncServiceClient
from gwms.pool import jobattrs as A
from gwms.pool.schedd.sandbox import SandboxError, make_archive
from gwms.pool.schedd.submit import expand_submit, parse_submit


@dataclass(frozen=True)
class SubmitResult:
    """What a submit queued."""

    cluster_id: int
    count: int
    owner: str
    input_files: tuple[str, ...]


def split_common(jobs: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split job ads into the attributes equal in all of them and each one's own.

    ``merge`` of the two (see :func:`gwms.pool.schedd.service.merge_procs`) gives the
    jobs back; a 100,000-proc cluster then travels as one ad plus small differences.
    """
    if not jobs:
        return {}, []
    first = jobs[0]
    common = {k: v for k, v in first.items() if all(k in j and j[k] == v for j in jobs[1:])}
    procs = [{k: v for k, v in j.items() if k not in common or common[k] != v} for j in jobs]
    return common, procs


def _as_path(value: Any, iwd: Path) -> Path | None:
    if not isinstance(value, str) or not value or value.startswith("/Expr(") or value == "/dev/null":
        return None
    p = Path(value)
    return p if p.is_absolute() else iwd / p


def executable_source(path: Path) -> Path:
    """The file whose content is sent for an executable: ``path`` with every symbolic
    link resolved (``/bin/sh`` -> ``/usr/bin/dash``); a dangling link is a
    :class:`SandboxError`."""
    if not path.is_symlink() and not any(parent.is_symlink() for parent in path.parents):
        return path
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise SandboxError(f"executable {path} is a symbolic link that leads nowhere ({exc})") from None
    if not target.is_file():
        raise SandboxError(f"executable {path} is not a regular file (it leads to {target})")
    return target


def _no_link(path: Path) -> Path:
    if path.is_symlink():
        raise SandboxError(
            f"input file {path} is a symbolic link; links are not transferred (name the file it points to)"
        )
    return path


def input_files(jobs: Iterable[Mapping[str, Any]]) -> list[tuple[str, Path]]:
    """The files the jobs need in their sandbox, as ``(name in sandbox, path here)``.

    The executable (unless ``transfer_executable = false``), ``input`` and every entry of
    ``transfer_input_files``, taken relative to each job's ``Iwd``. Files land in the
    sandbox under their base name, as in HTCondor; two different files with one base
    name are an error. URLs (``scheme://``) are left for the execute side.

    An executable that is a symbolic link (``/bin/sh`` on Debian) is sent as the file it
    points to, under the link's name. Any other input named here that is a symbolic link
    is refused (:class:`SandboxError`): sandboxes hold no links.
    """
    chosen: dict[str, Path] = {}
    for job in jobs:
        iwd = Path(str(job.get(A.IWD) or os.getcwd()))
        wanted: list[tuple[str, Path]] = []
        if job.get(A.TRANSFER_EXECUTABLE, True) is not False:
            cmd = _as_path(job.get(A.CMD), iwd)
            if cmd is not None:
                wanted.append((cmd.name, executable_source(cmd)))
        stdin = _as_path(job.get(A.IN), iwd)
        if stdin is not None:
            wanted.append((stdin.name, _no_link(stdin)))
        extra = job.get(A.TRANSFER_INPUT)
        if isinstance(extra, str) and extra.strip():
            for item in extra.split(","):
                item = item.strip()
                if not item or "://" in item:
                    continue
                p = _as_path(item.rstrip("/"), iwd)
                if p is not None:
                    wanted.append((p.name, _no_link(p)))
        for name, path in wanted:
            known = chosen.get(name)
            if known is not None and known != path:
                raise SandboxError(f"two input files are both called {name!r}: {known} and {path}")
            if not path.exists():
                raise SandboxError(f"input file {path} does not exist")
            chosen[name] = path
    return sorted(chosen.items())


class ScheddClient:
    """A blocking client of one schedd."""

    def __init__(self, base_url: str, *, token: str | None, verify: bool | str = True, timeout: float = 120.0) -> None:
        self.http = SyncServiceClient(base_url, token=token, verify=verify, timeout=timeout, service="schedd")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ScheddClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submit --------------------------------------------------------------------------
    def submit_text(
        self,
        text: str,
        *,
        source: str = "<submit>",
        base_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> SubmitResult:
        """Parse, expand and queue a submit description; all of it or nothing."""
        say = progress or (lambda _msg: None)
        desc = parse_submit(text, source=source)  # parse errors: nothing was sent
        base = (base_dir or Path.cwd()).resolve()
        reserved = self.http.post("/v1/clusters", {})
        cluster, owner = int(reserved["cluster_id"]), str(reserved["owner"])
        jobs = expand_submit(desc, cluster_id=cluster, owner=owner, now=time.time(), base_dir=base, env=env or os.environ)
        if not jobs:
            from gwms.pool.schedd.submit_errors import SubmitError

            raise SubmitError(f"{source}: no queue statement, so no jobs")
        files = input_files(jobs)
        if files:
            blob = make_archive(files)
            say(f"uploading {len(files)} input file(s), {len(blob)} bytes")
            self.http.request(
                "PUT", f"/v1/clusters/{cluster}/input", content=blob,
                headers={"Content-Type": "application/x-tar"},
            )
        common, procs = split_common(jobs)
        say(f"queueing {len(jobs)} job(s) in cluster {cluster}")
        answer = self.http.post(f"/v1/clusters/{cluster}/jobs", {"common": common, "procs": procs})
        return SubmitResult(cluster, int(answer["count"]), owner, tuple(name for name, _ in files))

    def submit_file(self, path: Path, **kwargs: Any) -> SubmitResult:
        """Submit the description in ``path`` (relative paths are taken from its directory)."""
        try:
            text = path.read_text()
        except OSError as exc:
            from gwms.pool.schedd.submit_errors import SubmitError

            raise SubmitError(f"cannot read submit file {path}: {exc.strerror or exc}") from exc
        kwargs.setdefault("base_dir", Path.cwd())
        return self.submit_text(text, source=str(path), **kwargs)

    # -- queries and actions -------------------------------------------------------------
    def query(
        self, constraint: str | None = None, projection: Sequence[str] | None = None,
        owner: str | None = None, limit: int | None = None,
    ) -> list[dict[str, Any]]:
        body = {"constraint": constraint, "projection": list(projection) if projection else None, "owner": owner, "limit": limit}
        return list(self.http.post("/v1/jobs/query", body, retry_unsafe=True)["jobs"])

    def history(self, constraint: str | None = None, owner: str | None = None, limit: int | None = 1000,
                projection: Sequence[str] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {k: v for k, v in {"constraint": constraint, "owner": owner, "limit": limit}.items() if v is not None}
        if projection:
            params["projection"] = ",".join(projection)
        return list(self.http.get("/v1/history", params=params)["jobs"])

    def job(self, cluster: int, proc: int) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/jobs/{cluster}.{proc}"))

    def events(self, cluster: int, proc: int) -> list[dict[str, Any]]:
        return list(self.http.get(f"/v1/jobs/{cluster}.{proc}/events")["events"])

    def act(self, action: str, ids: Sequence[str] = (), constraint: str | None = None, reason: str | None = None) -> dict[str, Any]:
        return dict(self.http.post("/v1/jobs/action", {"action": action, "ids": list(ids), "constraint": constraint, "reason": reason}))

    def edit(self, ids: Sequence[str], attr: str, value: Any, constraint: str | None = None) -> dict[str, Any]:
        return dict(self.http.post("/v1/jobs/edit", {"ids": list(ids), "constraint": constraint, "attr": attr, "value": value}))

    def summary(self) -> dict[str, Any]:
        return dict(self.http.get("/v1/summary"))

    def inspect(self, cluster: int, proc: int, what: str, path: str | None = None, *,
                lines: int | None = None, wait: float = 20.0) -> dict[str, Any]:
        """Run a read-only inspection (ps, top, ls, cat, tail, bt) in a running job's sandbox
        through its startd agent (see :mod:`gwms.pool.schedd.inspect`); the answer with its
        ``text``. Refusals and timeouts raise :class:`gwms.net.ServiceError`."""
        body: dict[str, Any] = {"what": what, "path": path, "lines": lines, "wait": wait}
        return dict(self.http.post(f"/v1/jobs/{cluster}.{proc}/inspect", body, retry_unsafe=True))

    def output_files(self, cluster: int, proc: int) -> list[str]:
        return list(self.http.get(f"/v1/jobs/{cluster}.{proc}/output")["files"])

    def fetch_output(self, cluster: int, proc: int, dest: Path) -> list[str]:
        """Download a finished job's output files into ``dest`` (condor_transfer_data).

        Files land under their sandbox names; an archive that tries to leave ``dest`` is
        refused (see :func:`gwms.pool.schedd.sandbox.extract_archive`).
        """
        import io

        from gwms.pool.schedd.sandbox import extract_archive

        blob = self.http.request("GET", f"/v1/jobs/{cluster}.{proc}/output.tar.gz", raw=True)
        return extract_archive(io.BytesIO(blob), dest, max_bytes=1 << 34, clean_on_error=False)
