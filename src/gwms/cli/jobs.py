"""User commands on the job queue, named and shaped as in HTCondor.

``gwms submit``, ``gwms q``, ``gwms rm``, ``gwms hold``, ``gwms release``, ``gwms qedit``,
``gwms history``. They find the pool from ``--pool DIR``, ``$GWMS_POOL`` or
``./gwms-data`` (the client file that ``gwms up`` writes).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from gwms.errors import UsageError

JOB_ID_RE = re.compile(r"^\d+(\.\d+)?$")
STATUS_LETTER = {1: "I", 2: "R", 3: "X", 4: "C", 5: "H", 6: ">", 7: "S"}
STATUS_WORD = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "transferring output", 7: "suspended"}

pool_option = click.option(
    "--pool", "pool", default=None, metavar="DIR", envvar="GWMS_POOL",
    help="Pool directory with client.json (default: $GWMS_POOL, then ./gwms-data).",
)


def schedd_client(pool: str | None):  # type: ignore[no-untyped-def]
    """The schedd client for the pool the user means."""
    from gwms.pool.clientfile import load_client_file
    from gwms.pool.schedd.client import ScheddClient

    info = load_client_file(pool)
    return ScheddClient(info.require_schedd(), token=info.token, verify=info.ca_file or True)


def split_ids_and_attrs(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """``condor_q -af A B 12`` style: job ids are numbers, anything else an attribute."""
    ids = [w for w in words if JOB_ID_RE.match(w)]
    attrs = [w for w in words if not JOB_ID_RE.match(w)]
    return ids, attrs


def ids_constraint(ids: Iterable[str]) -> str | None:
    """A ClassAd constraint selecting the given ``CLUSTER`` / ``CLUSTER.PROC`` ids."""
    parts = []
    for i in ids:
        if "." in i:
            c, p = i.split(".", 1)
            parts.append(f"(ClusterId == {int(c)} && ProcId == {int(p)})")
        else:
            parts.append(f"ClusterId == {int(i)}")
    return " || ".join(parts) if parts else None


def and_constraints(*items: str | None) -> str | None:
    present = [f"({c})" for c in items if c]
    return " && ".join(present) if present else None


def format_value(value: Any) -> str:
    """An attribute value as ``condor_q -af`` prints it."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith("/Expr(") and value.endswith(")/"):
        return value[6:-2]
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def format_duration(seconds: float) -> str:
    """``D+HH:MM:SS`` as condor_q's RUN_TIME column."""
    s = max(0, int(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}+{h:02d}:{m:02d}:{s:02d}"


def print_json_or_autoformat(ads: list[dict[str, Any]], attrs: Sequence[str], as_json: bool) -> bool:
    """Print ``ads`` as JSON (``-json``) or one line of ``attrs`` per ad (``-af``); True if it did."""
    if as_json:
        click.echo(json.dumps(ads, indent=2))
        return True
    if attrs:
        for ad in ads:
            lower = {k.lower(): v for k, v in ad.items()}
            click.echo(" ".join(format_value(lower.get(a.lower())) for a in attrs))
        return True
    return False


def job_row(job: dict[str, Any], now: float) -> list[str]:
    status = int(job.get("JobStatus", 0) or 0)
    run = 0.0
    if status == 2 and job.get("JobCurrentStartDate"):
        run = now - float(job["JobCurrentStartDate"])
    run += float(job.get("RemoteWallClockTime", 0) or 0)
    cmd = Path(str(job.get("Cmd", ""))).name
    args = job.get("Arguments") or job.get("Args") or ""
    qdate = time.strftime("%m/%d %H:%M", time.localtime(float(job.get("QDate", 0) or 0)))
    return [
        f"{job.get('ClusterId')}.{job.get('ProcId')}",
        str(job.get("Owner", "?")),
        qdate,
        format_duration(run),
        STATUS_LETTER.get(status, "?"),
        str(job.get("JobPrio", 0)),
        f"{float(job.get('RequestMemory', 0) or 0):.1f}",
        f"{cmd} {args}".strip()[:40],
    ]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = [" ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += [" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def summary_line(jobs: Iterable[dict[str, Any]]) -> str:
    counts = {k: 0 for k in STATUS_WORD}
    total = 0
    for job in jobs:
        total += 1
        st = int(job.get("JobStatus", 0) or 0)
        if st in counts:
            counts[st] += 1
    return (
        f"Total for query: {total} jobs; {counts[4]} completed, {counts[3]} removed, {counts[1]} idle, "
        f"{counts[2]} running, {counts[5]} held, {counts[7]} suspended"
    )


# --------------------------------------------------------------------------- submit


@click.command("submit")
@click.argument("submit_file", type=click.Path(dir_okay=False, path_type=Path))
@pool_option
@click.option("-terse", "--terse", is_flag=True, help="Print only the job ids (CLUSTER.FIRST - CLUSTER.LAST).")
def submit(submit_file: Path, pool: str | None, terse: bool) -> None:
    """Queue the jobs of an HTCondor submit description file.

    Supports executable, arguments, environment, getenv, input/output/error/log,
    initialdir, transfer_input_files, request_cpus/memory/disk/gpus (with units),
    requirements, rank, +Attr / MY.Attr, periodic_* and on_exit_*, and every queue form
    (queue N, queue VAR in (...), from FILE, matching GLOB). Input files are uploaded to
    the schedd. A submit is all or nothing.
    """
    with schedd_client(pool) as client:
        result = client.submit_file(submit_file, progress=None if terse else (lambda m: click.echo(m, err=True)))
    if terse:
        click.echo(f"{result.cluster_id}.0 - {result.cluster_id}.{result.count - 1}")
    else:
        click.echo(f"{result.count} job(s) submitted to cluster {result.cluster_id}.")


# --------------------------------------------------------------------------- q


@click.command("q")
@click.argument("words", nargs=-1)
@pool_option
@click.option("-all", "--all", "all_users", is_flag=True, help="Jobs of every user (default: only yours).")
@click.option("-hold", "--hold", "held", is_flag=True, help="Only held jobs, with their HoldReason.")
@click.option("-run", "--run", "running", is_flag=True, help="Only running jobs, with where they run.")
@click.option("-constraint", "--constraint", default=None, metavar="EXPR", help="A ClassAd constraint.")
@click.option("-af", "--af", "autoformat", multiple=True, metavar="ATTR",
              help="Print these attributes, one job per line (condor_q -af A B C).")
@click.option("-json", "--json", "as_json", is_flag=True, help="Print the job ads as JSON.")
@click.option("-l", "--long", "long_", is_flag=True, help="Print whole job ads (ClassAd old syntax).")
@click.option("-analyze", "--analyze", "-better-analyze", "analyze", is_flag=True,
              help="Explain why the jobs named (CLUSTER.PROC) do not run: slots matching each clause.")
def q(words: tuple[str, ...], pool: str | None, all_users: bool, held: bool, running: bool,
      constraint: str | None, autoformat: tuple[str, ...], as_json: bool, long_: bool, analyze: bool) -> None:
    """List queued jobs (condor_q). WORDS are job ids (CLUSTER or CLUSTER.PROC); after
    -af, other words are more attribute names."""
    ids, extra = split_ids_and_attrs(words)
    if analyze:
        _analyze(ids, extra, pool, as_json)
        return
    attrs = list(autoformat) + extra
    if extra and not autoformat:
        raise UsageError(f"{extra[0]!r} is not a job id (CLUSTER or CLUSTER.PROC)")
    status = "JobStatus == 5" if held else ("JobStatus == 2" if running else None)
    full = and_constraints(ids_constraint(ids), constraint, status)
    with schedd_client(pool) as client:
        me = _whoami(client) if not all_users and not ids else None
        jobs = client.query(full, projection=attrs or _table_projection(as_json, long_, held, running), owner=me)
    if print_json_or_autoformat(jobs, attrs, as_json):
        return
    if long_:
        for job in jobs:
            click.echo("\n".join(f"{k} = {_old_syntax(v)}" for k, v in sorted(job.items())))
            click.echo("")
        return
    now = time.time()
    if held:
        rows = [[f"{j['ClusterId']}.{j['ProcId']}", str(j.get("Owner")),
                 str(j.get("HoldReason", ""))[:80]] for j in jobs]
        click.echo(render_table(["ID", "OWNER", "HOLD_REASON"], rows))
    elif running:
        rows = [[f"{j['ClusterId']}.{j['ProcId']}", str(j.get("Owner")),
                 format_duration(now - float(j.get("JobCurrentStartDate", now) or now)),
                 str(j.get("RemoteHost", ""))] for j in jobs]
        click.echo(render_table(["ID", "OWNER", "RUN_TIME", "HOST(S)"], rows))
    else:
        click.echo(render_table(["ID", "OWNER", "SUBMITTED", "RUN_TIME", "ST", "PRI", "SIZE", "CMD"],
                                [job_row(j, now) for j in jobs]))
    click.echo("")
    click.echo(summary_line(jobs))


def _analyze(ids: list[str], extra: list[str], pool: str | None, as_json: bool) -> None:
    """``gwms q -analyze ID...``: the job against every slot in the collector."""
    from dataclasses import asdict

    from gwms.pool.clientfile import load_client_file
    from gwms.pool.collector.client import CollectorClient
    from gwms.frontend.advertise import TYPE_GLIDERESOURCE
    from gwms.frontend.explain import explain_job, render_frontend_view
    from gwms.pool.negotiator.analyze import analyze_job, render_analysis

    if extra:
        raise UsageError(f"{extra[0]!r} is not a job id (CLUSTER.PROC)")
    if not ids:
        raise UsageError("name the job to analyze: gwms q -analyze CLUSTER.PROC")
    info = load_client_file(pool)
    verify: bool | str = info.ca_file or True
    with schedd_client(pool) as client:
        jobs = []
        for job_id in ids:
            if "." in job_id:
                c, p = job_id.split(".", 1)
                jobs.append(client.job(int(c), int(p)))
            else:
                jobs.extend(client.query(f"ClusterId == {int(job_id)}"))
    with CollectorClient(info.collector, token=info.token, verify=verify) as collector:
        slots = collector.query("Machine")
        resources = collector.query(TYPE_GLIDERESOURCE)
    results = [analyze_job(job, slots) for job in jobs]
    views = [explain_job(job, resources) for job in jobs]
    if as_json:
        click.echo(json.dumps([asdict(r) | {"worst": asdict(r.worst) if r.worst else None,
                                            "frontend": [asdict(v) for v in view]}
                               for r, view in zip(results, views)],
                              indent=2, default=str))
        return
    click.echo("\n\n".join(render_analysis(r) + "\n\n" + render_frontend_view(_job_id(job), view)
                            for r, job, view in zip(results, jobs, views)))


def _job_id(job: dict[str, Any]) -> str:
    return f"{job.get('ClusterId', '?')}.{job.get('ProcId', '?')}"


#: what the default tables show: like condor_q, ask the schedd for these attributes only
TABLE_ATTRS = ["ClusterId", "ProcId", "Owner", "QDate", "JobStatus", "JobCurrentStartDate",
               "RemoteWallClockTime", "JobPrio", "RequestMemory", "Cmd", "Arguments", "Args",
               "HoldReason", "RemoteHost"]


def _table_projection(as_json: bool, long_: bool, held: bool, running: bool) -> list[str] | None:
    """Whole ads for -json and -l; only the table's columns otherwise."""
    return None if as_json or long_ else TABLE_ATTRS


def _whoami(client: Any) -> str:
    return str(client.http.get("/v1/whoami")["name"])


def _old_syntax(value: Any) -> str:
    if isinstance(value, str):
        if value.startswith("/Expr(") and value.endswith(")/"):
            return value[6:-2]
        return json.dumps(value)
    return format_value(value)


# --------------------------------------------------------------------------- rm / hold / release


def _act(action: str, ids: tuple[str, ...], constraint: str | None, reason: str | None, pool: str | None) -> None:
    bad = [i for i in ids if not JOB_ID_RE.match(i)]
    if bad:
        raise UsageError(f"{bad[0]!r} is not a job id (CLUSTER or CLUSTER.PROC)")
    if not ids and not constraint:
        raise UsageError("name the jobs: CLUSTER, CLUSTER.PROC or -constraint EXPR")
    with schedd_client(pool) as client:
        answer = client.act(action, ids, constraint=constraint, reason=reason)
    verb = {"remove": "marked for removal", "hold": "held", "release": "released"}[action]
    for r in answer["results"]:
        if r["ok"]:
            click.echo(f"Job {r['id']} {verb}")
        else:
            click.echo(f"Job {r['id']}: {r['error']}", err=True)
    if answer["failed"] and not answer["done"]:
        raise click.exceptions.Exit(1)


def _action_command(action: str, summary: str) -> click.Command:
    @click.command(action if action != "remove" else "rm", help=summary)
    @click.argument("ids", nargs=-1)
    @click.option("-constraint", "--constraint", default=None, metavar="EXPR", help="Select jobs by a ClassAd constraint.")
    @click.option("-reason", "--reason", default=None, help="Why (kept in the job and its events).")
    @pool_option
    def command(ids: tuple[str, ...], constraint: str | None, reason: str | None, pool: str | None) -> None:
        _act(action, ids, constraint, reason, pool)

    return command


rm = _action_command("remove", "Remove jobs (condor_rm): IDS are CLUSTER or CLUSTER.PROC.")
hold = _action_command("hold", "Put jobs on hold (condor_hold): IDS are CLUSTER or CLUSTER.PROC.")
release = _action_command("release", "Release held jobs (condor_release): IDS are CLUSTER or CLUSTER.PROC.")


# --------------------------------------------------------------------------- transfer-data


@click.command("transfer-data")
@click.argument("ids", nargs=-1, required=True)
@pool_option
@click.option("-dir", "--dir", "dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Put the files here (default: each job's initial directory, Iwd).")
def transfer_data(ids: tuple[str, ...], pool: str | None, dest: Path | None) -> None:
    """Download the output files of finished jobs (condor_transfer_data).

    IDS are CLUSTER or CLUSTER.PROC. Outputs wait in the schedd's spool until fetched;
    they land in each job's submit directory (Iwd) unless -dir says otherwise.
    """
    bad = [i for i in ids if not JOB_ID_RE.match(i)]
    if bad:
        raise UsageError(f"{bad[0]!r} is not a job id (CLUSTER or CLUSTER.PROC)")
    with schedd_client(pool) as client:
        me = _whoami(client)
        jobs = client.history(ids_constraint(ids), owner=me, limit=None, projection=["ClusterId", "ProcId", "Iwd"])
        jobs += client.query(ids_constraint(ids), projection=["ClusterId", "ProcId", "Iwd", "JobStatus"], owner=me)
        if not jobs:
            raise UsageError(f"no job of yours matches {' '.join(ids)}")
        total = 0
        for job in sorted(jobs, key=lambda j: (j["ClusterId"], j["ProcId"])):
            if job.get("JobStatus") not in (None, 3, 4):
                continue  # still queued: nothing to fetch yet
            target = dest or Path(str(job.get("Iwd") or "."))
            files = client.fetch_output(job["ClusterId"], job["ProcId"], target)
            total += len(files)
            click.echo(f"Job {job['ClusterId']}.{job['ProcId']}: {len(files)} file(s) -> {target}")
    click.echo(f"Fetched {total} file(s).")


# --------------------------------------------------------------------------- qedit / history


@click.command("qedit")
@click.argument("job_id")
@click.argument("attr")
@click.argument("value")
@pool_option
def qedit(job_id: str, attr: str, value: str, pool: str | None) -> None:
    """Set ATTR of a job (or all jobs of a cluster) to VALUE (condor_qedit).

    VALUE is a ClassAd expression: numbers and true/false are literals, "quoted" text a
    string, anything else an expression (checked before it is sent)."""
    from gwms.classads import parse_expr

    if job_id.startswith("-"):
        raise UsageError("give the job id first: gwms qedit ID ATTR VALUE")
    if not JOB_ID_RE.match(job_id):
        raise UsageError(f"{job_id!r} is not a job id (CLUSTER or CLUSTER.PROC)")
    parsed = qedit_value(value, parse_expr)
    with schedd_client(pool) as client:
        answer = client.edit([job_id], attr, parsed)
    for r in answer["results"]:
        if r["ok"]:
            click.echo(f"Set attribute \"{attr}\" for job {r['id']}.")
        else:
            click.echo(f"Job {r['id']}: {r['error']}", err=True)
    if answer["failed"] and not answer["done"]:
        raise click.exceptions.Exit(1)


def qedit_value(text: str, parse_expr: Any) -> Any:
    """A command-line value in JSON form: literals as JSON values, else ``/Expr(...)/``."""
    stripped = text.strip()
    low = stripped.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "undefined":
        return None
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        pass
    if len(stripped) >= 2 and stripped[0] == '"' and stripped[-1] == '"':
        return json.loads(stripped)
    parse_expr(stripped)  # raises a clear error with the position
    return f"/Expr({stripped})/"


@click.command("history")
@click.argument("words", nargs=-1)
@pool_option
@click.option("-constraint", "--constraint", default=None, metavar="EXPR", help="A ClassAd constraint.")
@click.option("-limit", "--limit", type=click.IntRange(1), default=100, show_default=True, help="At most this many jobs.")
@click.option("-af", "--af", "autoformat", multiple=True, metavar="ATTR", help="Print these attributes.")
@click.option("-json", "--json", "as_json", is_flag=True, help="Print the job ads as JSON.")
@click.option("-all", "--all", "all_users", is_flag=True, help="Jobs of every user (default: only yours).")
def history(words: tuple[str, ...], pool: str | None, constraint: str | None, limit: int,
            autoformat: tuple[str, ...], as_json: bool, all_users: bool) -> None:
    """Completed and removed jobs, the most recent first (condor_history)."""
    ids, extra = split_ids_and_attrs(words)
    attrs = list(autoformat) + extra
    full = and_constraints(ids_constraint(ids), constraint)
    with schedd_client(pool) as client:
        me = _whoami(client) if not all_users and not ids else None
        jobs = client.history(full, owner=me, limit=limit, projection=attrs or None)
    if print_json_or_autoformat(jobs, attrs, as_json):
        return
    rows = []
    for j in jobs:
        done = float(j.get("CompletionDate") or j.get("EnteredCurrentStatus") or 0)
        rows.append([
            f"{j['ClusterId']}.{j['ProcId']}", str(j.get("Owner")),
            time.strftime("%m/%d %H:%M", time.localtime(float(j.get("QDate", 0) or 0))),
            format_duration(float(j.get("RemoteWallClockTime", 0) or 0)),
            STATUS_LETTER.get(int(j.get("JobStatus", 0) or 0), "?"),
            time.strftime("%m/%d %H:%M", time.localtime(done)),
            str(j.get("ExitCode", "")),
            Path(str(j.get("Cmd", ""))).name,
        ])
    click.echo(render_table(["ID", "OWNER", "SUBMITTED", "RUN_TIME", "ST", "COMPLETED", "EXIT", "CMD"], rows))
