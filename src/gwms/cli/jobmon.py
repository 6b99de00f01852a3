"""``gwms job ps|top|ls|cat|tail|bt ID [PATH]``: look into a running job.

The request goes to the schedd, which passes it to the startd agent running the job on
the agent's own outbound channel; the agent runs one of a fixed set of read-only
inspections in the job's sandbox and the answer comes back the same way (see
:mod:`gwms.pool.schedd.inspect` and :mod:`gwms.glidein.inspect`). Only the job's owner
or an administrator may ask; paths are relative to the sandbox and cannot leave it;
outputs are cut at 1 MiB.
"""

from __future__ import annotations

import json

import click

from gwms.cli.jobs import pool_option, schedd_client
from gwms.errors import UsageError

DEFAULT_WAIT = 20.0


def parse_job(text: str) -> tuple[int, int]:
    """``"12.3"`` -> ``(12, 3)``; ``"12"`` is the cluster's first job, ``12.0``."""
    cluster, dot, proc = text.strip().partition(".")
    if not cluster.isdigit() or (dot and not proc.isdigit()) or int(cluster) < 1:
        raise UsageError(f"{text!r} is not a job id (CLUSTER.PROC or CLUSTER)")
    return int(cluster), int(proc) if dot else 0


def _options(func):  # type: ignore[no-untyped-def]
    func = click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")(func)
    func = click.option("--wait", type=click.FloatRange(min=1.0, max=60.0), default=DEFAULT_WAIT, show_default=True,
                        metavar="SECONDS", help="How long to wait for the job's startd to answer (at most 60).")(func)
    return pool_option(func)


def _inspect(pool: str | None, job: str, what: str, path: str | None, *, lines: int | None = None,
             wait: float = DEFAULT_WAIT, as_json: bool = False) -> None:
    cluster, proc = parse_job(job)
    with schedd_client(pool) as client:
        answer = client.inspect(cluster, proc, what, path, lines=lines, wait=wait)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    text = str(answer.get("text") or "")
    click.echo(text, nl=not text.endswith("\n"))


@click.group("job", context_settings={"help_option_names": ["-h", "--help"]})
def job() -> None:
    """Look into your running job: ps, top, ls, cat, tail, bt.

    Each command runs one fixed, read-only inspection in the sandbox of a running job,
    through the schedd and the startd agent that runs it (the worker node needs no
    inbound port). Only the job's owner or an administrator may ask. PATH is relative
    to the job's sandbox: absolute paths, '..' and symbolic links that lead outside are
    refused. Outputs are cut at 1 MiB. ID is CLUSTER.PROC (CLUSTER means CLUSTER.0).

    \b
    gwms job ps 12.0              the job's processes as a tree
    gwms job top 12.0             cpu % and memory over one second
    gwms job ls 12.0 [DIR]        a directory of the sandbox
    gwms job cat 12.0 out.log     a file of the sandbox
    gwms job tail 12.0 out.log -n 50
    gwms job bt 12.0              stacks (py-spy for Python, else gdb, when installed)
    """


@job.command("ps")
@click.argument("job_id", metavar="ID")
@_options
def ps(job_id: str, pool: str | None, wait: float, as_json: bool) -> None:
    """The job's processes as a tree: pid, ppid, state, cpu, rss, command."""
    _inspect(pool, job_id, "ps", None, wait=wait, as_json=as_json)


@job.command("top")
@click.argument("job_id", metavar="ID")
@_options
def top(job_id: str, pool: str | None, wait: float, as_json: bool) -> None:
    """CPU % and memory of the job's processes over one second."""
    _inspect(pool, job_id, "top", None, wait=wait, as_json=as_json)


@job.command("ls")
@click.argument("job_id", metavar="ID")
@click.argument("path", required=False, metavar="[PATH]")
@_options
def ls(job_id: str, path: str | None, pool: str | None, wait: float, as_json: bool) -> None:
    """A directory of the job's sandbox (default: its top).

    Symbolic links are shown with their target, never followed."""
    _inspect(pool, job_id, "ls", path, wait=wait, as_json=as_json)


@job.command("cat")
@click.argument("job_id", metavar="ID")
@click.argument("path", metavar="PATH")
@_options
def cat(job_id: str, path: str, pool: str | None, wait: float, as_json: bool) -> None:
    """A file of the job's sandbox (at most 1 MiB of it)."""
    _inspect(pool, job_id, "cat", path, wait=wait, as_json=as_json)


@job.command("tail")
@click.argument("job_id", metavar="ID")
@click.argument("path", metavar="PATH")
@click.option("-n", "--lines", type=click.IntRange(min=1, max=100_000), default=10, show_default=True,
              help="How many lines.")
@_options
def tail(job_id: str, path: str, lines: int, pool: str | None, wait: float, as_json: bool) -> None:
    """The last lines of a file of the job's sandbox."""
    _inspect(pool, job_id, "tail", path, lines=lines, wait=wait, as_json=as_json)


@job.command("bt")
@click.argument("job_id", metavar="ID")
@_options
def bt(job_id: str, pool: str | None, wait: float, as_json: bool) -> None:
    """Stacks of the job's processes (py-spy for Python, else gdb).

    Shows what the node's tools allow: without py-spy and gdb it says so."""
    _inspect(pool, job_id, "bt", None, wait=wait, as_json=as_json)
