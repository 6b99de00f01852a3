"""A throw-away PostgreSQL cluster for the tests of the PostgreSQL log index.

One cluster per test session (``pg_cluster``): ``initdb`` and ``pg_ctl`` from Debian's
``/usr/lib/postgresql/<version>/bin``, a random free port on 127.0.0.1, the unix socket
in a temporary directory, trust authentication (nothing but this machine can reach it),
and durability off (a test database needs none). Run as the ``postgres`` user when the
tests run as root (``initdb`` refuses root). Each test gets a schema of its own
(:meth:`PgCluster.new_url`), dropped afterwards.

PostgreSQL not installed is a failure, not a skip: ``.ci/run`` installs it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["BACKENDS", "PgCluster", "find_pg_bin", "new_index_url", "pg_cluster"]

#: The log index backends the index and search tests run against.
BACKENDS = ["sqlite", "postgresql"]


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb):"
            " apt-get install postgresql (.ci/run does)",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A PostgreSQL server of its own in a temporary directory (start, URLs, stop)."""

    def __init__(self) -> None:
        self.bin = find_pg_bin()
        self.run_as: str | None = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="gwms-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = 0
        self.user = self.run_as or pwd.getpwuid(os.geteuid()).pw_name
        self._schemas = itertools.count()
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.run_as is not None:
            kwargs["user"] = self.run_as
            kwargs["group"] = pwd.getpwnam(self.run_as).pw_gid
            kwargs["extra_groups"] = []
        return subprocess.run(
            list(args),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            **kwargs,
        )

    def start(self) -> None:
        """initdb, then start the server on a free port (tried a few times)."""
        done = self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stdout}{done.stderr}")
        self._run("mkdir", "-p", str(self.sock))
        for _attempt in range(5):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                f" -c unix_socket_directories={self.sock}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                " -c max_connections=50 -c shared_buffers=32MB"
            )
            done = self._run(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
                timeout=90,
            )
            if done.returncode == 0:
                return
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {done.stdout}{done.stderr}\n{log}")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        """The URL of the cluster's ``postgres`` database (superuser)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def new_url(self) -> tuple[str, str]:
        """A fresh schema, and the URL of an index living in it (``search_path``)."""
        import psycopg

        schema = f"t{os.getpid()}_{next(self._schemas)}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{self.admin_url}?options=-csearch_path%3D{schema}", schema

    def drop(self, schema: str) -> None:
        """Drop a schema made by :meth:`new_url` (after its index is closed)."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's throw-away PostgreSQL (started on first use, stopped at the end)."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def new_index_url(backend: str, request: pytest.FixtureRequest, directory: Path) -> str:
    """A URL for a new, empty log index of ``backend`` (a PostgreSQL schema is dropped
    when the requesting fixture or test ends)."""
    if backend == "sqlite":
        return f"sqlite://{directory}/index.sqlite"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url, schema = cluster.new_url()
    request.addfinalizer(lambda: cluster.drop(schema))
    return url
