"""The ``gwms logs`` command group: index, search, show, serve; decode and anonymize glidein logs.

::

    gwms logs index [--source DIR] --data DIR [--follow] [--interval S] [--pushed/--no-pushed]
                    [--anonymize/--no-anonymize] [--key-dir DIR] [--mode M] [--policy FILE]
                    [--max-age DAYS] [--original-max-age DAYS] [--max-size SIZE]
    gwms logs search --data DIR [QUERY...] [--regex RE] [--entry E] [--job C.P] ... [--json] [--all]
    gwms logs show JOB --data DIR [--section NAME] [--original] [--from N] [--to M] [--json]
    gwms logs serve --data DIR [--port P] [--host H] [--security DIR] [--anonymous] [--users FILE]
                    [--push-key [KID=]PEM ...] [--push-url URL] [--push-max-size SIZE]
    gwms logs user add|remove|list NAME --data DIR [--scope S] [--password-stdin]
    gwms logs prune --data DIR [--max-age DAYS] [--original-max-age DAYS] [--max-size SIZE]
    gwms logs decode FILE.err [--list] [--section NAME]
    gwms logs keys init|rotate|list --key-dir DIR [--key-id KID]
    gwms logs anonymize IN... --key-dir DIR --out DIR [--mode reversible|irreversible]
                        [--policy FILE] [--verify]
    gwms logs deanonymize IN... --key-dir DIR --out DIR [--policy FILE] [--key-id KID]

``IN`` is a file or a directory (searched for files, e.g. a factory's client log tree).
A job's ``job.C.P.out`` and ``job.C.P.err`` are anonymized together, so names learned
in one are replaced in both. Output files mirror the input layout under ``--out``, next
to an ``anonymization.json`` manifest (mode, key id, policy) that ``deanonymize`` reads.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from gwms.errors import GwmsError, UsageError

MANIFEST = "anonymization.json"


@click.group(name="logs")
def logs() -> None:
    """The log monitor: index, anonymize, search glidein logs.

    Indexes and archives glidein logs, decodes their embedded daemon logs,
    anonymizes them (reversible and irreversible) and serves search and views.
    """


# ----------------------------------------------------------------------------------
# decode


@logs.command("decode")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--list", "list_only", is_flag=True, help="List the sections instead of printing one."
)
@click.option(
    "--section", "section_name", metavar="NAME", help="Print the decoded text of section NAME."
)
def decode(file: Path, list_only: bool, section_name: str | None) -> None:
    """Decode the daemon logs embedded in a glidein's FILE.err.

    Without options, lists the sections (as --list does). Damaged sections are
    reported, and whatever could be decoded is still printed.
    """
    from gwms.monitor.sections import split_err

    err = split_err(file.read_bytes())
    if section_name is not None and not list_only:
        section = err.section(section_name)
        if section is None:
            names = ", ".join(err.names()) or "none"
            raise GwmsError(f"{file} has no section {section_name!r} (sections: {names})")
        if section.problem:
            click.echo(f"warning: {section_name}: {section.problem}", err=True)
        out = sys.stdout.buffer
        out.write(section.data)
        out.flush()
        return
    if not err.sections:
        click.echo(f"{file}: no embedded sections")
        return
    width = max(len(s.name or "?") for s in err.sections)
    for s in err.sections:
        members = f"{len(s.members)} member{'s' if len(s.members) != 1 else ''}"
        state = "ok" if s.ok else f"problem: {s.problem}"
        click.echo(
            f"{(s.name or '?'):<{width}}  {len(s.data):>10} bytes  {members:<10}  base64/{s.columns:<3} {state}"
        )


# ----------------------------------------------------------------------------------
# keys


@logs.group("keys")
def keys_group() -> None:
    """Anonymization keys: create, rotate, list (files with 0600 permissions)."""


def _key_dir_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--key-dir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory holding the anonymization keys.",
    )(f)


@keys_group.command("init")
@_key_dir_option
@click.option(
    "--key-id", metavar="KID", help="Id of the first key (1-16 lowercase letters and digits)."
)
def keys_init(key_dir: Path, key_id: str | None) -> None:
    """Create a key directory with its first key."""
    from gwms.monitor.anonymize.keys import init_keys

    ring = init_keys(key_dir, key_id)
    click.echo(f"created key {ring.current.kid} in {key_dir}")


@keys_group.command("rotate")
@_key_dir_option
@click.option("--key-id", metavar="KID", help="Id of the new key.")
def keys_rotate(key_dir: Path, key_id: str | None) -> None:
    """Add a new current key; older keys stay to de-anonymize what they made."""
    from gwms.monitor.anonymize.keys import rotate_keys

    ring = rotate_keys(key_dir, key_id)
    click.echo(f"new current key {ring.current.kid} in {key_dir} (keys: {', '.join(ring.kids)})")


@keys_group.command("list")
@_key_dir_option
def keys_list(key_dir: Path) -> None:
    """List the keys, oldest first; the current one is marked."""
    from gwms.monitor.anonymize.keys import load_keys

    ring = load_keys(key_dir)
    for kid in ring.kids:
        key = ring.require(kid)
        created = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(key.created)) if key.created else "-"
        )
        mark = "  (current)" if kid == ring.current.kid else ""
        click.echo(f"{kid}  created {created}{mark}")


# ----------------------------------------------------------------------------------
# anonymize / deanonymize


@dataclass
class _Job:
    """The files of one job (or one lone file) and where their results go."""

    name: str
    out: Path | None = None
    err: Path | None = None
    other: list[Path] = field(default_factory=list)
    targets: dict[Path, Path] = field(default_factory=dict)


def _job_key(path: Path) -> tuple[Path, str] | None:
    """``(dir, 'job.C.P')`` for a job's ``.out``/``.err``; None for other files."""
    if path.suffix in (".out", ".err") and path.name.startswith("job."):
        return path.parent, path.stem
    return None


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name == MANIFEST or name.startswith("."):
                continue
            yield Path(dirpath) / name


def _collect(inputs: tuple[Path, ...], out_dir: Path) -> list[_Job]:
    """Group the input files into jobs and decide each output path (refusing clashes)."""
    out_dir = out_dir.resolve()
    jobs: dict[tuple[Path, str], _Job] = {}
    targets: dict[Path, Path] = {}
    several = len(inputs) > 1
    for item in inputs:
        src = item.resolve()
        if src.is_dir():
            if out_dir == src or out_dir.is_relative_to(src):
                raise UsageError(f"--out {out_dir} is inside the input directory {src}")
            base = out_dir / src.name if several else out_dir
            files = [(p, base / p.relative_to(src)) for p in _walk(src)]
        else:
            files = [(src, out_dir / src.name)]
        for path, target in files:
            if target.resolve() == path:
                raise UsageError(f"the output for {path} would overwrite it")
            if target in targets and targets[target] != path:
                raise UsageError(f"{targets[target]} and {path} would both be written to {target}")
            targets[target] = path
            key = _job_key(path) or (path.parent, path.name)
            job = jobs.setdefault(key, _Job(name=str(path.parent / key[1])))
            if path.suffix == ".out" and _job_key(path):
                job.out = path
            elif path.suffix == ".err":
                job.err = path
            else:
                job.other.append(path)
            job.targets[path] = target
    return list(jobs.values())


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _progress(jobs: list[_Job], label: str):  # type: ignore[no-untyped-def]
    show = len(jobs) > 1 and sys.stderr.isatty()
    return (
        click.progressbar(jobs, label=label, file=sys.stderr, show_pos=True)
        if show
        else _Plain(jobs)
    )


class _Plain:
    """A stand-in for click's progress bar when there is nothing to show."""

    def __init__(self, items: list[_Job]) -> None:
        self.items = items

    def __enter__(self) -> list[_Job]:
        return self.items

    def __exit__(self, *exc: object) -> None:
        return None


def _read_manifest(path: Path) -> dict | None:
    """The manifest of an anonymized tree: in ``path`` (a directory) or the closest parent."""
    path = path.resolve()
    start = [path] if path.is_dir() else []
    for candidate in [*start, *path.parents]:
        m = candidate / MANIFEST
        if m.is_file():
            try:
                return json.loads(m.read_text())
            except (OSError, ValueError) as exc:
                raise GwmsError(f"{m} is not a readable manifest: {exc}") from None
    return None


def _mode_option(help_text: str) -> Any:
    """``--mode reversible|irreversible`` (anonymization)."""
    return click.option("--mode", type=click.Choice(["reversible", "irreversible"]), default="reversible",
                        show_default=True, help=help_text)


def _policy_option(help_text: str) -> Any:
    """``--policy FILE`` (an anonymization policy, YAML)."""
    return click.option("--policy", "policy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help=help_text)


@logs.command("anonymize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_key_dir_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the anonymized files (the input layout is kept).",
)
@_mode_option("reversible: Crypto-PAn and AES-SIV tokens; irreversible: HMAC pseudonyms, truncation, redaction.")
@_policy_option("Policy file (YAML): actions and allow-lists per entity kind.")
@click.option(
    "--verify",
    is_flag=True,
    help="Reversible mode: check that each job de-anonymizes back exactly.",
)
def anonymize(
    inputs: tuple[Path, ...],
    key_dir: Path,
    out_dir: Path,
    mode: str,
    policy_file: Path | None,
    verify: bool,
) -> None:
    """Anonymize glidein logs (files or directories) into --out.

    A job's .out and .err are done together; every embedded section of an .err is
    decoded, anonymized and re-encoded in its own format.
    """
    from gwms.monitor.anonymize.engine import Anonymizer
    from gwms.monitor.anonymize.keys import load_keys
    from gwms.monitor.anonymize.policy import load_policy

    keys = load_keys(key_dir)
    policy = load_policy(policy_file)
    anon = Anonymizer(keys, policy, mode=mode)  # type: ignore[arg-type]
    jobs = _collect(inputs, out_dir)
    started = time.monotonic()
    total_bytes = 0
    problems: list[str] = []
    with _progress(jobs, "anonymizing") as bar:
        for job in bar:
            others = [p.read_bytes() for p in job.other]
            out = job.out.read_bytes() if job.out else None
            err = job.err.read_bytes() if job.err else None
            result = anon.anonymize_job(out, err, others=others, verify=verify)
            if job.out is not None:
                _write(job.targets[job.out], result.out)  # type: ignore[arg-type]
                total_bytes += len(out or b"")
            if job.err is not None:
                _write(job.targets[job.err], result.err)  # type: ignore[arg-type]
                total_bytes += len(err or b"")
            for path, original, data in zip(job.other, others, result.others, strict=True):
                _write(job.targets[path], data)  # type: ignore[arg-type]
                total_bytes += len(original)
            problems.extend(f"{job.name}: {p}" for p in result.problems)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": 1,
        "mode": mode,
        "key_id": keys.current.kid,
        "created": time.time(),
        "policy": policy.model_dump(mode="json"),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    counts: Counter[str] = anon.replaced
    summary = ", ".join(f"{n} {k}" for k, n in counts.most_common()) or "nothing"
    elapsed = time.monotonic() - started
    click.echo(
        f"anonymized {len(jobs)} job(s), {total_bytes / 1e6:.1f} MB in {elapsed:.1f}s "
        f"({mode}, key {keys.current.kid}) into {out_dir}: replaced {summary}"
    )
    if verify and any("de-anonymize" in p for p in problems):
        raise GwmsError("some files do not de-anonymize exactly (see the warnings above)")


@logs.command("deanonymize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_key_dir_option
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the restored files.",
)
@_policy_option("The policy the files were anonymized with (default: from their manifest).")
@click.option(
    "--key-id",
    metavar="KID",
    help="Key of the addresses (default: from the manifest or the tokens).",
)
def deanonymize(
    inputs: tuple[Path, ...],
    key_dir: Path,
    out_dir: Path,
    policy_file: Path | None,
    key_id: str | None,
) -> None:
    """Restore logs anonymized in the reversible mode, byte for byte, into --out."""
    from gwms.monitor.anonymize.engine import Deanonymizer
    from gwms.monitor.anonymize.keys import load_keys
    from gwms.monitor.anonymize.policy import AnonymizationPolicy, load_policy

    keys = load_keys(key_dir)
    manifest = _read_manifest(inputs[0])
    if manifest is not None and manifest.get("mode") == "irreversible":
        raise GwmsError(
            "these files were anonymized irreversibly: there is nothing to de-anonymize"
        )
    if policy_file is not None:
        policy = load_policy(policy_file)
    elif manifest is not None and isinstance(manifest.get("policy"), dict):
        try:
            policy = AnonymizationPolicy.model_validate(manifest["policy"])
        except ValueError as exc:
            raise GwmsError(f"the manifest's policy is not valid: {exc}") from None
    else:
        policy = AnonymizationPolicy()
    ip_kid = key_id or (manifest.get("key_id") if manifest else None)
    if ip_kid is not None:
        keys.require(ip_kid)
    de = Deanonymizer(keys, policy)
    jobs = _collect(inputs, out_dir)
    with _progress(jobs, "restoring") as bar:
        for job in bar:
            out = job.out.read_bytes() if job.out else None
            err = job.err.read_bytes() if job.err else None
            others = [p.read_bytes() for p in job.other]
            result = de.deanonymize_job(out, err, others=others, ip_key_id=ip_kid)
            if job.out is not None:
                _write(job.targets[job.out], result.out)  # type: ignore[arg-type]
            if job.err is not None:
                _write(job.targets[job.err], result.err)  # type: ignore[arg-type]
            for path, data in zip(job.other, result.others, strict=True):
                _write(job.targets[path], data)  # type: ignore[arg-type]
    click.echo(
        f"restored {len(jobs)} job(s) into {out_dir}: {de.restored['token']} tokens, {de.restored['ip']} addresses"
    )


# ----------------------------------------------------------------------------------
# index / search / show / serve / prune: the monitor proper


def _data_option(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--index",
        "index_url",
        metavar="URL",
        envvar="GWMS_LOG_INDEX",
        expose_value=False,
        callback=lambda ctx, _p, value: ctx.meta.__setitem__("gwms.log_index", value),
        help="The index: postgresql://user@host/db, sqlite:///path or a file"
        " (default: 'index:' of DATA/monitor.yaml, else DATA/index.sqlite).",
    )(f)
    return click.option(
        "--data",
        "data_dir",
        required=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="The monitor's data directory (index, archive, audit log).",
    )(f)


def _layout(data_dir: Path):  # type: ignore[no-untyped-def]
    """The data directory's layout, with the index ``--index`` named."""
    from gwms.monitor.layout import MonitorLayout

    return MonitorLayout.at(data_dir, click.get_current_context().meta.get("gwms.log_index"))


def _retention_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--max-size",
        metavar="SIZE",
        help="Then drop the oldest jobs until archives and texts fit SIZE (e.g. 50G).",
    )(f)
    f = click.option(
        "--original-max-age",
        type=click.FloatRange(min=0),
        metavar="DAYS",
        help="Drop originals older than DAYS (the anonymized copy stays).",
    )(f)
    return click.option(
        "--max-age",
        type=click.FloatRange(min=0),
        metavar="DAYS",
        help="Drop jobs (archives and texts) older than DAYS.",
    )(f)


def _retention(max_age: float | None, original_max_age: float | None, max_size: str | None):  # type: ignore[no-untyped-def]
    from gwms.monitor.archive import RetentionPolicy, parse_size

    return RetentionPolicy(
        max_age_seconds=max_age * 86400 if max_age is not None else None,
        original_max_age_seconds=original_max_age * 86400 if original_max_age is not None else None,
        max_bytes=parse_size(max_size) if max_size is not None else None,
    )


class _StopOnSignal:
    """SIGINT/SIGTERM set an event (the work stops at the next job) instead of killing."""

    def __init__(self) -> None:
        import threading

        self.event = threading.Event()
        self._old: dict[int, object] = {}

    def __enter__(self):  # type: ignore[no-untyped-def]
        import signal

        def handler(signum: int, frame: object) -> None:
            if self.event.is_set():  # a second signal: give up at once
                raise KeyboardInterrupt
            self.event.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


class _PassProgress:
    """Progress of a pass: a rich bar on a terminal, else a line every ``every`` seconds."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.tty = sys.stderr.isatty()
        self._bar = None
        self._task = None
        self._last = time.monotonic()
        self._started = time.monotonic()

    def __call__(self, done: int, total: int, errors: int) -> None:
        if self.tty:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )

                self._bar = Progress(
                    TextColumn("indexing"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[errors]} error(s)"),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                    transient=True,
                )
                self._bar.start()
                self._task = self._bar.add_task("index", total=total, errors=0)
            self._bar.update(self._task, completed=done, errors=errors)
            if done >= total:
                self.close()
            return
        now = time.monotonic()
        if now - self._last >= self.every and done < total:
            self._last = now
            rate = done / max(now - self._started, 1e-9)
            click.echo(
                f"indexing: {done}/{total} jobs, {errors} error(s), {rate:.0f} jobs/s", err=True
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._started = self._last = time.monotonic()


def _anonymizer(
    data_dir: Path, anonymize: bool, key_dir: Path | None, mode: str, policy_file: Path | None
):  # type: ignore[no-untyped-def]
    if not anonymize:
        if key_dir is not None or policy_file is not None:
            raise UsageError("--key-dir and --policy are for --anonymize")
        return None
    from gwms.monitor.anonymize.engine import Anonymizer
    from gwms.monitor.anonymize.keys import init_keys, load_keys
    from gwms.monitor.anonymize.policy import load_policy
    from gwms.monitor.layout import MonitorLayout

    if key_dir is None:
        key_dir = MonitorLayout.at(data_dir).key_dir
        if not (key_dir / "keyring.json").exists():
            ring = init_keys(key_dir)
            click.echo(f"created anonymization key {ring.current.kid} in {key_dir}", err=True)
    keys = load_keys(key_dir)
    return Anonymizer(keys, load_policy(policy_file), mode=mode)  # type: ignore[arg-type]


@logs.command("index")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The factory's log directory (holding client/), or its client/ directory"
    " (without it: only the pushed logs).",
)
@_data_option
@click.option(
    "--pushed/--no-pushed",
    default=True,
    show_default=True,
    help="Also index the logs glideins pushed to `gwms logs serve` (DATA/push); the factory's copy of a job wins.",
)
@click.option(
    "--follow", is_flag=True, help="Keep watching: a pass every --interval seconds, until Ctrl-C."
)
@click.option(
    "--interval",
    type=click.FloatRange(1, 3600),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between passes with --follow.",
)
@click.option(
    "--anonymize/--no-anonymize",
    default=True,
    show_default=True,
    help="Index and archive anonymized texts (viewers see only these); originals are archived either way.",
)
@click.option(
    "--key-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Anonymization keys (default: DATA/anon-keys, created on first use).",
)
@_mode_option("Anonymization mode.")
@_policy_option("Anonymization policy (YAML).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    metavar="N",
    help="Processes that parse big passes (default: 2 for 400 jobs or more; 1: this process only).",
)
@_retention_options
def index_cmd(
    source: Path | None,
    data_dir: Path,
    pushed: bool,
    follow: bool,
    interval: float,
    anonymize: bool,
    key_dir: Path | None,
    mode: str,
    policy_file: Path | None,
    workers: int | None,
    max_age: float | None,
    original_max_age: float | None,
    max_size: str | None,
) -> None:
    """Index and archive a factory's glidein logs (new and grown jobs only).

    Each pass compares every job's .out/.err size and mtime with the index and reads
    only what is new or changed. Errors in one job are reported and the job skipped
    (it is tried again on the next pass).
    """
    from gwms.monitor.indexer import Indexer, find_client_dir

    if source is not None:
        find_client_dir(source)
    elif not pushed:
        raise UsageError("give --source, or index the pushed logs (--pushed)")
    layout = _layout(data_dir)
    anon = _anonymizer(data_dir, anonymize, key_dir, mode, policy_file)
    retention = _retention(max_age, original_max_age, max_size)
    index = layout.open_index()
    archive = layout.archive()
    indexer = Indexer(
        index,
        source,
        push_source=layout.push_dir if pushed else None,
        archive=archive,
        anonymizer=anon,
        retention=retention,
        workers=workers,
    )
    progress = _PassProgress()

    def report(r) -> None:  # type: ignore[no-untyped-def]
        progress.close()
        for path, message in r.errors[:20]:
            click.echo(f"error: {path}: {message}", err=True)
        if len(r.errors) > 20:
            click.echo(f"error: ... and {len(r.errors) - 20} more", err=True)
        if not follow or r.changed or r.errors or r.indexed:  # following: quiet when nothing changed
            click.echo(r.line())
        if pushed:  # pushed files superseded by the factory's finished copy, or too old
            from gwms.monitor.push import prune_pushed

            dropped = prune_pushed(
                layout.push_dir, index, now=time.time(), max_age_seconds=retention.max_age_seconds
            )
            if dropped:
                click.echo(f"removed the pushed files of {dropped} job(s)")

    try:
        with _StopOnSignal() as stop:
            if follow:
                click.echo(
                    f"gwms logs index following {source or layout.push_dir} every {interval:g}s"
                    " (Ctrl-C stops)",
                    err=True,
                )
                indexer.follow(interval, stop.event, on_pass=report, progress=progress)
            else:
                report(indexer.run_pass(progress=progress, stop=stop.event))
    finally:
        progress.close()
        archive.close()
        index.close()


@logs.command("prune")
@_data_option
@_retention_options
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
def prune_cmd(
    data_dir: Path,
    max_age: float | None,
    original_max_age: float | None,
    max_size: str | None,
    dry_run: bool,
) -> None:
    """Apply retention: drop old jobs, old originals, then the oldest until the size fits.

    Pruned jobs stay in the index as summaries without texts (still found by their
    columns), so their unchanged source files are not indexed again.
    """
    from gwms.monitor.archive import plan_prune, prune

    policy = _retention(max_age, original_max_age, max_size)
    if not policy.active:
        raise UsageError("give --max-age, --original-max-age or --max-size")
    layout = _layout(data_dir)
    index = layout.open_index(create=False)
    try:
        if dry_run:
            plan = plan_prune(list(index.retention_entries()), policy, time.time())
            click.echo(
                f"would drop {len(plan.drop)} job(s) and {len(plan.drop_original)} original(s):"
                f" {plan.bytes_before / 1e6:.1f} MB -> {plan.bytes_after / 1e6:.1f} MB"
            )
            return
        archive = layout.archive()
        try:
            r = prune(index, archive, policy)
        finally:
            archive.close()
        for e in r.errors:
            click.echo(f"error: {e}", err=True)
        click.echo(
            f"dropped {r.jobs_dropped} job(s) and {r.originals_dropped} original(s),"
            f" freed {r.bytes_freed / 1e6:.1f} MB"
        )
    finally:
        index.close()


def _local_user() -> str:
    import getpass

    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"local:uid={os.getuid()}"


def _styled(text: str, spans: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> str:
    out: list[str] = []
    pos = 0
    for start, end in spans:
        if end <= start or start < pos:
            continue
        out.append(text[pos:start])
        out.append(click.style(text[start:end], fg="red", bold=True))
        pos = end
    out.append(text[pos:])
    return "".join(out)


@logs.command("search")
@click.argument("query", nargs=-1)
@_data_option
@click.option("--regex", metavar="RE", help="A Python regular expression, matched per line.")
@click.option("-i", "--ignore-case", is_flag=True, help="Case-insensitive --regex.")
@click.option("--entry", multiple=True, help="Factory entry (repeatable).")
@click.option("--site", multiple=True, help="Site (repeatable).")
@click.option("--user", multiple=True, help="Frontend user (repeatable).")
@click.option("--group", multiple=True, help="Frontend group (repeatable).")
@click.option("--job", multiple=True, help="Factory job id: job.C.P, C.P or C (repeatable).")
@click.option("--uuid", multiple=True, help="Glidein uuid (repeatable).")
@click.option("--exit", "exit_", metavar="CODES", help="Exit code filter: 0, 1,2 or !0.")
@click.option("--section", multiple=True, help="Section name or glob, e.g. 'StarterLog*'.")
@click.option(
    "--time", "time_range", metavar="RANGE", help="Start time range: A..B, 24h, 2024-05-01."
)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--cursor", help="Go on from a previous page's cursor.")
@click.option("--order", type=click.Choice(["desc", "asc"]), default="desc", show_default=True)
@click.option(
    "--context", type=click.IntRange(0, 50), default=1, show_default=True, help="Context lines."
)
@click.option(
    "--hits",
    type=click.IntRange(0, 100),
    default=3,
    show_default=True,
    help="Hit lines per result.",
)
@click.option("--all", "all_pages", is_flag=True, help="Follow the cursors to the last page.")
@click.option("--histogram", is_flag=True, help="Show the results over time.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the API's JSON (one document per page)."
)
def search_cmd(
    query: tuple[str, ...],
    data_dir: Path,
    regex: str | None,
    ignore_case: bool,
    entry: tuple[str, ...],
    site: tuple[str, ...],
    user: tuple[str, ...],
    group: tuple[str, ...],
    job: tuple[str, ...],
    uuid: tuple[str, ...],
    exit_: str | None,
    section: tuple[str, ...],
    time_range: str | None,
    limit: int,
    cursor: str | None,
    order: str,
    context: int,
    hits: int,
    all_pages: bool,
    histogram: bool,
    as_json: bool,
) -> None:
    """Search indexed glidein logs.

    QUERY takes field:value filters (entry:, site:, user:, group:, job:, uuid:, exit:,
    section:, time:, host:) and full text: words (all must appear), "a phrase", OR,
    -excluded, prefix*. Options add filters the same way.
    """
    from gwms.monitor.search import parse_query
    from gwms.monitor.searcher import Searcher
    from gwms.monitor.views import iso, page_json

    params = {
        "entry": list(entry),
        "site": list(site),
        "user": list(user),
        "group": list(group),
        "job": list(job),
        "uuid": list(uuid),
        "exit": exit_,
        "section": list(section),
        "time": time_range,
    }
    q = parse_query(
        " ".join(query), now=time.time(), regex=regex, ignore_case=ignore_case, params=params
    )
    layout = _layout(data_dir)
    index = layout.open_index(create=False)
    searcher = Searcher(index)
    first = True
    try:
        while True:
            page = searcher.search(
                q,
                limit=limit,
                cursor=cursor,
                order=order,
                context=context,
                max_hits=hits,  # type: ignore[arg-type]
                with_total=first,
                with_histogram=histogram and first,
            )
            originals = [r.job for r in page.rows if r.hits and not r.job.info.anonymized]
            if originals:
                layout.audit().record(
                    who=_local_user(),
                    action="search",
                    jobs=[str(j.id) for j in originals],
                    query=q.to_json(),
                )
            if as_json:
                click.echo(json.dumps(page_json(page, privileged=True)))
            else:
                if first and page.total is not None:
                    more = "+" if page.total_capped else ""
                    click.echo(f"{page.total}{more} {page.unit} match")
                if first and page.histogram is not None and page.histogram.buckets:
                    peak = max(n for _s, n in page.histogram.buckets) or 1
                    for start, n in page.histogram.buckets:
                        click.echo(f"  {iso(start)}  {n:>7}  {'#' * max(0, round(40 * n / peak))}")
                for r in page.rows:
                    info = r.job.info
                    where = f" [{r.section.name}]" if r.section is not None else ""
                    code = f" exit={info.exit_code}" if info.exit_code is not None else ""
                    click.echo(
                        f"{iso(info.sort_epoch)}  {info.name}  {info.entry}  {info.site or '-'}"
                        f"{code}{where}  id={r.job.id}"
                    )
                    for h in r.hits:
                        for line in h.before:
                            click.echo(f"  {line.number:>7}- {line.text}")
                        click.echo(f"  {h.number:>7}: {_styled(h.text, h.spans)}")
                        for line in h.after:
                            click.echo(f"  {line.number:>7}- {line.text}")
                    if r.hit_lines > len(r.hits):
                        click.echo(f"          ... {r.hit_lines - len(r.hits)} more line(s) match")
                if not page.complete:
                    click.echo(
                        f"(the regex scan stopped after {page.scanned} sections; --cursor goes on)"
                    )
            first = False
            cursor = page.next_cursor
            if cursor is None or not all_pages:
                break
        if cursor is not None and not as_json:
            click.echo(f"next page: --cursor {cursor}")
    finally:
        index.close()


@logs.command("show")
@click.argument("job_ref", metavar="JOB")
@_data_option
@click.option(
    "--section",
    "section_name",
    metavar="NAME",
    help="Print this section's text (out, err, MasterLog ...).",
)
@click.option(
    "--original",
    is_flag=True,
    help="The original text, from the archive (recorded in the audit log).",
)
@click.option("--from", "first", type=click.IntRange(min=1), default=1, help="First line to print.")
@click.option("--to", "last", type=click.IntRange(min=1), help="Last line to print.")
@click.option("-n", "--numbers", is_flag=True, help="Number the lines.")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON view of the job.")
def show_cmd(
    job_ref: str,
    data_dir: Path,
    section_name: str | None,
    original: bool,
    first: int,
    last: int | None,
    numbers: bool,
    as_json: bool,
) -> None:
    """Show an indexed job: its summary, timeline and sections, or one section's text.

    JOB is an id (from search results), job.C.P / C.P, or a glidein uuid.
    """
    from gwms.monitor.indexer import job_texts
    from gwms.monitor.search import slice_lines
    from gwms.monitor.searcher import resolve_job
    from gwms.monitor.sections import split_err
    from gwms.monitor.views import job_json

    layout = _layout(data_dir)
    index = layout.open_index(create=False)
    try:
        job = resolve_job(index, job_ref)
        sections = index.sections(job.id)
        if section_name is None:
            view = job_json(job, sections, privileged=True)
            if as_json:
                click.echo(json.dumps(view, indent=2))
                return
            info = job.info
            click.echo(f"{info.name}  id={job.id}  {info.path}")
            for label, value in (
                ("entry", info.entry),
                ("site", info.site),
                ("host", info.host),
                ("frontend", f"{info.frontend_user} ({info.client_name})"),
                ("glidein uuid", info.glidein_uuid),
                ("exit code", info.exit_code),
                ("jobs run", info.jobs_run),
                ("activations", info.activations),
                ("anonymized", info.anon_mode or "no"),
            ):
                click.echo(f"  {label:<13} {value if value is not None else '-'}")
            click.echo("timeline:")
            for ev in view["timeline"]:
                off = f"+{ev['offset_seconds']}s" if ev["offset_seconds"] is not None else ""
                click.echo(f"  {ev['time']}  {off:>9}  {ev['detail']}")
            click.echo("sections:")
            for s in sections:
                note = f"  PROBLEM: {s.problem}" if s.problem else ""
                click.echo(f"  {s.name:<24} {s.lines:>8} lines {s.bytes:>10} chars{note}")
            for p in job.problems:
                click.echo(f"problem: {p}", err=True)
            return
        if original and job.info.anonymized:
            files = layout.archive().read(job.info.path, "original")
            err = files.get(f"{job.info.name}.err")
            found = {
                name: text
                for name, _k, text, _s in job_texts(
                    files.get(f"{job.info.name}.out"), split_err(err) if err is not None else None
                )
            }
            if section_name not in found:
                raise GwmsError(f"{job.info.name} has no section {section_name!r}")
            layout.audit().record(
                who=_local_user(),
                action="section",
                job=str(job.id),
                path=job.info.path,
                section=section_name,
            )
            text = found[section_name]
        else:
            info_s = next((s for s in sections if s.name == section_name), None)
            if info_s is None:
                names = ", ".join(s.name for s in sections) or "none"
                raise GwmsError(
                    f"{job.info.name} has no section {section_name!r} (sections: {names})"
                )
            if not job.info.anonymized:
                layout.audit().record(
                    who=_local_user(),
                    action="section",
                    job=str(job.id),
                    path=job.info.path,
                    section=section_name,
                )
            text = index.section_texts([info_s.id]).get(info_s.id, "")
        lines, _total = slice_lines(text, first, last)
        for line in lines:
            click.echo(f"{line.number:>7}  {line.text}" if numbers else line.text)
    finally:
        index.close()


@logs.command("serve")
@_data_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8090,
    show_default=True,
    help="Port (0: a free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--security",
    "security_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The pool directory whose keys/ verify tokens (default: --data; made if missing).",
)
@click.option(
    "--tls/--no-tls",
    default=False,
    show_default=True,
    help="HTTPS with the security directory's service certificate.",
)
@click.option(
    "--anonymous/--no-anonymous",
    default=False,
    show_default=True,
    help="Let visitors without a token read anonymized logs (never originals).",
)
@click.option(
    "--users",
    "users_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Local password users (default: DATA/users.json; see 'gwms logs user').",
)
@click.option(
    "--push-key",
    "push_keys",
    multiple=True,
    metavar="[KID=]PEM",
    help="A factory's public key for log-push tokens (repeatable; a directory gives every "
    "*.pub.pem): enables PUT /v1/push for glideins' logs.",
)
@click.option(
    "--push-url",
    metavar="URL",
    help="The upload URL log-push tokens must name (default: this server's URL + /v1/push).",
)
@click.option(
    "--push-max-size", metavar="SIZE", default="64M", show_default=True, help="The largest pushed file."
)
def serve_cmd(
    data_dir: Path,
    port: int,
    host: str,
    security_dir: Path | None,
    tls: bool,
    anonymous: bool,
    users_file: Path | None,
    push_keys: tuple[str, ...],
    push_url: str | None,
    push_max_size: str,
) -> None:
    """Serve the web pages and the JSON API (search, jobs, sections, downloads) until interrupted.

    Pages at /, the API at /v1 (OpenAPI at /docs). Browsers sign in with a pool
    token or a local user (gwms logs user add). Tokens with READ see anonymized
    texts; originals need LOGS_ORIGINAL (or ADMINISTRATOR) and every access to one
    is appended to DATA/audit.log. --anonymous lets anyone read anonymized logs.
    """
    from gwms.monitor.pages import create_monitor_site
    from gwms.monitor.webauth import UserStore, WebAccess, load_or_create_session_key
    from gwms.net import ServiceServer
    from gwms.security.layout import SecurityLayout, ensure_pool_keys

    layout = _layout(data_dir)
    index = layout.open_index()
    secdir = security_dir or data_dir
    verifier = ensure_pool_keys(secdir).verifier()
    access = WebAccess(
        anonymous=anonymous,
        users=UserStore(users_file or data_dir / USERS_FILE),
        session_key=load_or_create_session_key(data_dir / SESSION_KEY_FILE),
    )
    push = None
    if push_keys:
        from gwms.monitor.archive import parse_size
        from gwms.monitor.push import PUSH_PREFIX, PushReceiver
        from gwms.security.logtoken import LogTokenVerifier, load_public_keys, normalize_url

        push_verifier = LogTokenVerifier(
            load_public_keys(push_keys), push_url or f"http://{host}:{port}{PUSH_PREFIX}"
        )
        push = PushReceiver(layout.push_dir, push_verifier, max_bytes=parse_size(push_max_size))
    app = create_monitor_site(
        index,
        verifier=verifier,
        audit=layout.audit(),
        archive=layout.archive(),
        access=access,
        close_index=True,
        push=push,
    )
    ssl_options: dict[str, str] = {}
    if tls:
        cert = SecurityLayout(secdir).service_cert()
        ssl_options = {"ssl_certfile": str(cert.cert_path), "ssl_keyfile": str(cert.key_path)}
    server = ServiceServer(app, host=host, port=port, service="monitor", **ssl_options)
    if push is not None and push_url is None:
        # the audience is the URL the server really listens on (port 0 picks one)
        push.verifier.audiences = frozenset({normalize_url(server.url + PUSH_PREFIX)})
    server.serve_forever(announce=lambda line: click.echo(line))


# ----------------------------------------------------------------------------------
# local users of the web pages

#: The local users file in a data directory.
USERS_FILE = "users.json"
#: The key signing local users' browser sessions.
SESSION_KEY_FILE = "web-session.key"


def _users_option(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--users",
        "users_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The users file (default: DATA/users.json).",
    )(f)
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="The monitor's data directory.",
    )(f)


def _user_store(data_dir: Path | None, users_file: Path | None):  # type: ignore[no-untyped-def]
    from gwms.monitor.webauth import UserStore

    if users_file is None and data_dir is None:
        raise UsageError("give --data DIR or --users FILE")
    return UserStore(users_file or data_dir / USERS_FILE)  # type: ignore[operator]


@logs.group("user")
def user_group() -> None:
    """Local password users of the monitor's web pages.

    Passwords are stored as salted scrypt hashes in DATA/users.json (0600). A user
    has scopes like a token: READ for anonymized logs, LOGS_ORIGINAL (or
    ADMINISTRATOR) for originals.
    """


@user_group.command("add")
@click.argument("name")
@_users_option
@click.option(
    "--scope",
    "scope_names",
    multiple=True,
    default=("READ",),
    show_default=True,
    help="A scope to grant (repeatable): READ, LOGS_ORIGINAL, ADMINISTRATOR.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
def user_add(
    name: str,
    data_dir: Path | None,
    users_file: Path | None,
    scope_names: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Add a local user (or set a user's password and scopes)."""
    store = _user_store(data_dir, users_file)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store.add(name, password, scope_names)
    click.echo(f"user {name} ({' '.join(sorted(set(scope_names)))}) saved in {store.path}")


@user_group.command("remove")
@click.argument("name")
@_users_option
def user_remove(name: str, data_dir: Path | None, users_file: Path | None) -> None:
    """Remove a local user."""
    store = _user_store(data_dir, users_file)
    store.remove(name)
    click.echo(f"user {name} removed from {store.path}")


@user_group.command("list")
@_users_option
def user_list(data_dir: Path | None, users_file: Path | None) -> None:
    """List the local users and their scopes."""
    store = _user_store(data_dir, users_file)
    for name, granted in store.list().items():
        click.echo(f"{name}\t{' '.join(granted)}")
