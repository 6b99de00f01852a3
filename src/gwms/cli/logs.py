"""The ``gwms logs`` command group: decode, anonymize and de-anonymize glidein logs.

::

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
@click.option(
    "--mode",
    type=click.Choice(["reversible", "irreversible"]),
    default="reversible",
    show_default=True,
    help="reversible: Crypto-PAn and AES-SIV tokens; irreversible: HMAC pseudonyms, truncation, redaction.",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy file (YAML): actions and allow-lists per entity kind.",
)
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
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The policy the files were anonymized with (default: from their manifest).",
)
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
