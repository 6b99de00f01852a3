"""The factory's stage area: the signed, content-addressed files every glidein downloads.

A stage directory, served over HTTP(S), holds:

- ``glidein_startup.<h>.sh``: the bootstrap (POSIX sh) a pilot job runs first;
- ``pilot.<h>.py``, ``pilotreport.<h>.py``, ``logsections.<h>.py``, ``stageindex.<h>.py``,
  ``logpush.<h>.py``:
  the pilot that validates the node, starts the startd agent and writes the
  ``.out``/``.err`` layout;
- ``gwms-startd.<h>.pyz``: the startd agent as a zipapp;
- ``constants.<h>.cfg`` and ``condor_vars.<h>.lst``: the factory's attributes
  (``KEY VALUE`` lines for ``glidein_config``; publish declarations);
- the validation scripts (``check_disk.<h>.sh`` ...), the factory's first;
- ``entry_<entry>/...``: an entry's own constants, publish declarations and scripts;
- ``files.<h>.lst``: the list of all of these with their sha256 (format in
  :mod:`gwms.glidein.stageindex`), and ``files.<h>.lst.sig``: its detached signature
  (RSA-PSS-SHA256 or Ed25519) with the factory key.

``<h>`` is the first 8 hex digits of the file's sha256, so files are never rewritten in
place: a rebuilt stage area adds new names, and a glidein that was given an older list
still finds every file it names. The list is written last. Glideins check the list's
sha256 against the one on their command line (``-sign``), then every file against the
list.

API::

    stage = build_stage_area(stage_dir, factory_name="gfactory", signing_key=key_pair,
                             entries={"local": EntryStage(attrs={"GLIDEIN_Site": "Local"})})
    url, stop = serve_stage(stage_dir)          # tests and the embedded deployment
    argv = glidein_argv(stage, url, entry="local", client="fe.main", glidein_name="gfactory_instance",
                        collector_url="http://127.0.0.1:9618", token_file_or_value=Path("token"),
                        attrs={"GLIDECLIENT_Name": "fe.main"}, cluster=12, proc=0)
    # argv == ["/bin/sh", ".../glidein_startup.<h>.sh", "-v", "std", "-factory", "gfactory", ...]

:func:`verify_stage_signature` checks a list against its ``.sig`` with the factory's
public key; :func:`prune_stage_area` removes files no kept list names.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from gwms.errors import GwmsError
from gwms.glidein import stageindex as SI
from gwms.glidein.stageindex import IndexLine
from gwms.security.hybrid import RsaKeyPair

__all__ = [
    "DEFAULT_VALIDATION",
    "GLIDEIN_DIR",
    "STARTUP_SCRIPT",
    "TOKEN_ENV",
    "EntryStage",
    "StageArea",
    "StageError",
    "StageSignatureError",
    "build_stage_area",
    "glidein_argv",
    "hashed_name",
    "load_stage_area",
    "prune_stage_area",
    "serve_stage",
    "verify_stage_signature",
]

#: The source directory of what runs on the worker node.
GLIDEIN_DIR = Path(__file__).resolve().parent.parent / "glidein"
#: The bootstrap script.
STARTUP_SCRIPT = GLIDEIN_DIR / "startup.sh"
#: The validation scripts every glidein runs first (``gwms/glidein/validate/``), in order.
DEFAULT_VALIDATION: tuple[Path, ...] = tuple(
    GLIDEIN_DIR / "validate" / name
    for name in ("check_python.sh", "check_workdir.sh", "check_disk.sh", "check_cvmfs.sh")
)
#: The modules of the pilot, shipped as ``lib/gwms/glidein/<name>``.
PILOT_MODULES = ("pilot.py", "pilotreport.py", "logsections.py", "stageindex.py", "logpush.py")
#: The environment variable that may carry the pool token instead of the command line.
TOKEN_ENV = "GLIDEIN_TOKEN"

SIGNATURE_MAGIC = "gwms-stage-signature 1"
_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HASHED = re.compile(r"\.[0-9a-f]{8}(?:\.|$)")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class StageError(GwmsError):
    """The stage area cannot be built or used as asked."""


class StageSignatureError(StageError):
    """A stage file list whose signature does not verify."""


AttrValue = str | int | float | bool


@dataclass(frozen=True)
class EntryStage:
    """What one entry adds to the stage area.

    Attributes:
        validation: extra validation scripts, run after the factory's, in this order
            (``.sh`` run with ``sh``, ``.py`` with the glidein's python3, others directly).
        attrs: attributes published in the slot ads (and ``glidein_config``).
        config: ``glidein_config`` values that are not published.
    """

    validation: tuple[Path, ...] = ()
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)
    config: Mapping[str, AttrValue] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: EntryStage | Mapping[str, Any] | None) -> EntryStage:
        """An :class:`EntryStage` from itself, None, or a mapping with the same keys."""
        if value is None:
            return cls()
        if isinstance(value, EntryStage):
            return value
        unknown = set(value) - {"validation", "attrs", "config"}
        if unknown:
            raise StageError(f"unknown entry stage keys: {', '.join(sorted(unknown))}")
        return cls(
            validation=tuple(Path(p) for p in value.get("validation") or ()),
            attrs=dict(value.get("attrs") or {}),
            config=dict(value.get("config") or {}),
        )


@dataclass(frozen=True)
class StageArea:
    """A built stage area: where it is and what its signed list holds.

    Attributes:
        dir: the stage directory (serve it as is).
        factory_name: the factory the list names.
        index_name: the file list's name in ``dir`` (``files.<h>.lst``).
        signature: the sha256 (hex) of the file list: what glideins get on their command line.
        signature_name: the detached signature of the list (``files.<h>.lst.sig``).
        files: every file of the list, in order.
        entries: the entries this stage area was built for.
    """

    dir: Path
    factory_name: str
    index_name: str
    signature: str
    signature_name: str
    files: tuple[IndexLine, ...]
    entries: tuple[str, ...]

    def _one(self, kind: str) -> IndexLine:
        for f in self.files:
            if f.kind == kind and f.scope == SI.MAIN_SCOPE:
                return f
        raise StageError(f"stage list {self.index_name} has no {kind} file")

    @property
    def startup_name(self) -> str:
        """The stage name of the bootstrap script."""
        return self._one("startup").stage_name

    @property
    def startup_path(self) -> Path:
        """The bootstrap script in the stage directory (what local backends run)."""
        return self.dir / self.startup_name

    @property
    def agent_name(self) -> str:
        """The stage name of the startd agent zipapp."""
        return self._one("agent").stage_name

    def files_for(self, entry: str) -> list[IndexLine]:
        """The files a glidein of ``entry`` downloads (the factory's, then the entry's)."""
        return SI.select_for_entry(self.files, entry)


# --------------------------------------------------------------------------- helpers


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_name(name: str, sha256: str) -> str:
    """``name`` with the first 8 hex digits of its content's sha256 before its suffix.

    >>> hashed_name("pilot.py", "1a2b3c4d" + "0" * 56)
    'pilot.1a2b3c4d.py'
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return f"{name}.{sha256[:8]}"
    return f"{stem}.{sha256[:8]}.{suffix}"


def _value_text(name: str, value: AttrValue) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        raise StageError(f"attribute {name}: unsupported value type {type(value).__name__}")
    if "\n" in text or "\r" in text:
        raise StageError(f"attribute {name}: values may not hold line breaks")
    return text


def _var_type(value: AttrValue) -> str:
    if isinstance(value, bool):
        return "C"
    if isinstance(value, int):
        return "I"
    if isinstance(value, float):
        return "C"
    return "S"


def _check_attr_names(names: Iterable[str], where: str) -> None:
    for name in names:
        if not _ATTR_NAME.match(name):
            raise StageError(f"{where}: {name!r} is not a usable attribute name")


def _constants_text(attrs: Mapping[str, AttrValue], config: Mapping[str, AttrValue], first: Mapping[str, str]) -> str:
    lines = [f"{k} {v}" for k, v in first.items()]
    for mapping in (config, attrs):
        lines += [f"{k} {_value_text(k, mapping[k])}" for k in sorted(mapping)]
    return "".join(line + "\n" for line in lines)


def _vars_text(attrs: Mapping[str, AttrValue]) -> str:
    # the original's condor_vars.lst columns: name type default condor_name req publish job_publish
    return "".join(f"{k} {_var_type(attrs[k])} - + N Y +\n" for k in sorted(attrs))


def _normalized_zip(raw: bytes) -> bytes:
    """A zipapp rewritten with fixed timestamps and modes, so equal sources give equal bytes."""
    prefix = b""
    if raw.startswith(b"#!"):
        prefix = raw[: raw.index(b"\n") + 1]
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    out.write(prefix)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name), compresslevel=9)
    return out.getvalue()


def _agent_zipapp_bytes(prebuilt: Path | None) -> bytes:
    if prebuilt is not None:
        try:
            return _normalized_zip(Path(prebuilt).read_bytes())
        except (OSError, zipfile.BadZipFile) as exc:
            raise StageError(f"cannot use agent zipapp {prebuilt}: {exc}") from None
    try:
        from gwms.glidein.zipbuild import build_zipapp
    except ImportError:  # no builder: zip the glidein package ourselves
        build_zipapp = None
    with tempfile.TemporaryDirectory(prefix="gwms-stage-") as tmp:
        out = Path(tmp) / "gwms-startd.pyz"
        if build_zipapp is not None:
            build_zipapp(out)
        else:
            _zip_glidein_package(out)
        return _normalized_zip(out.read_bytes())


def _zip_glidein_package(out: Path) -> None:
    """Zip ``gwms/glidein/*.py`` as a zipapp running ``gwms.glidein.startd:main_exit``."""
    import zipapp

    root = out.parent / "app"
    pkg = root / "gwms" / "glidein"
    pkg.mkdir(parents=True)
    (root / "gwms" / "__init__.py").write_text('"""gwms as shipped to worker nodes."""\n')
    for src in sorted(GLIDEIN_DIR.glob("*.py")):
        (pkg / src.name).write_bytes(src.read_bytes())
    zipapp.create_archive(root, target=out, interpreter="/usr/bin/env python3",
                          main="gwms.glidein.startd:main_exit", compressed=True)


def _put(stage_dir: Path, rel: str, data: bytes, mode: int = 0o644, *, replace: bool = False) -> None:
    """Write ``data`` at ``stage_dir/rel`` atomically, unless that exact file is there.

    A different file already there is an error (a content-addressed name must never
    change), unless ``replace``.
    """
    path = stage_dir / rel
    if path.exists() and not replace:
        try:
            if path.read_bytes() == data:
                return
        except OSError as exc:
            raise StageError(f"cannot read {path}: {exc.strerror}") from None
        raise StageError(f"{path} exists with other content (hash prefix collision); remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _read_source(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- signing


def _signer(key: Any) -> tuple[str, Callable[[bytes], bytes], str, Any]:
    """(algorithm, sign function, key id, public key) for a supported private key."""
    kid = ""
    if isinstance(key, RsaKeyPair):
        kid, key = key.kid, key.private_key
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        return "rsa-pss-sha256", lambda data: key.sign(data, pss, hashes.SHA256()), kid, key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519", key.sign, kid, key.public_key()
    raise StageError(f"cannot sign the stage list with a {type(key).__name__}: use an RSA or Ed25519 key")


def _public_sha256(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _sha256(der)


def _signature_text(index_name: str, index_bytes: bytes, key: Any) -> str:
    algorithm, sign, kid, public = _signer(key)
    sig = base64.b64encode(sign(index_bytes)).decode("ascii")
    return (
        f"{SIGNATURE_MAGIC}\nalgorithm {algorithm}\nkey-id {kid or '-'}\nkey-sha256 {_public_sha256(public)}\n"
        f"index {index_name}\nindex-sha256 {_sha256(index_bytes)}\nsignature {sig}\n"
    )


def _load_public(public_key: Any) -> Any:
    if isinstance(public_key, RsaKeyPair):
        return public_key.public_key
    if isinstance(public_key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        return public_key.public_key()
    if isinstance(public_key, (str, bytes)):
        data = public_key.encode() if isinstance(public_key, str) else public_key
        try:
            return serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise StageSignatureError(f"not a PEM public key: {exc}") from None
    return public_key


def _signature_still_good(path: Path, index_bytes: bytes, key: Any) -> bool:
    try:
        verify_stage_signature(index_bytes, path.read_text(), key)
    except (OSError, UnicodeDecodeError, StageSignatureError):
        return False
    return True


def verify_stage_signature(index_bytes: bytes, signature_text: str, public_key: Any) -> None:
    """Check a stage list against its detached signature; raise :class:`StageSignatureError`.

    ``public_key``: the factory's :class:`RsaKeyPair`, an RSA or Ed25519 public (or
    private) key, or a public key PEM.
    """
    fields: dict[str, str] = {}
    lines = signature_text.splitlines()
    if not lines or lines[0].strip() != SIGNATURE_MAGIC:
        raise StageSignatureError("not a gwms stage signature file")
    for line in lines[1:]:
        k, _, v = line.partition(" ")
        fields[k] = v.strip()
    if fields.get("index-sha256") != _sha256(index_bytes):
        raise StageSignatureError("the signature is for another file list (index-sha256 differs)")
    try:
        sig = base64.b64decode(fields.get("signature", ""), validate=True)
    except ValueError:
        raise StageSignatureError("the signature is not valid base64") from None
    public = _load_public(public_key)
    algorithm = fields.get("algorithm")
    try:
        if algorithm == "rsa-pss-sha256" and isinstance(public, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            public.verify(sig, index_bytes, pss, hashes.SHA256())
        elif algorithm == "ed25519" and isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(sig, index_bytes)
        else:
            raise StageSignatureError(f"signature algorithm {algorithm!r} does not fit the given key")
    except InvalidSignature:
        raise StageSignatureError("the stage file list's signature does not verify") from None


# --------------------------------------------------------------------------- building


@dataclass
class _Plan:
    stage_dir: Path
    lines: list[IndexLine] = field(default_factory=list)
    data: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)

    def add(
        self, name: str, data: bytes, local: str, kind: str, scope: str, *, folder: str = "", mode: int = 0o644
    ) -> None:
        sha = _sha256(data)
        stage_name = (folder + "/" if folder else "") + hashed_name(name, sha)
        old = self.data.get(stage_name)
        if old is not None and old != data:
            raise StageError(f"two different files would be staged as {stage_name}")
        self.data[stage_name] = data
        self.modes[stage_name] = mode
        self.lines.append(IndexLine(sha, stage_name, local, kind, scope))


def _add_scripts(plan: _Plan, scripts: Sequence[Path], scope: str, local_dir: str, folder: str) -> None:
    for number, script in enumerate(scripts, start=1):
        script = Path(script)
        name = script.name
        try:
            SI.check_path(name, "validation script name")
        except SI.IndexFormatError as exc:
            raise StageError(str(exc)) from None
        plan.add(name, _read_source(script, "validation script"), f"{local_dir}/{number:02d}_{name}",
                 "validate", scope, folder=folder, mode=0o755)


def build_stage_area(
    stage_dir: str | os.PathLike[str],
    *,
    factory_name: str,
    signing_key: Any,
    entries: Mapping[str, EntryStage | Mapping[str, Any] | None],
    factory_validation: Sequence[str | os.PathLike[str]] = (),
    attrs: Mapping[str, AttrValue] | None = None,
    config: Mapping[str, AttrValue] | None = None,
    default_validation: bool = True,
    agent_zipapp: str | os.PathLike[str] | None = None,
) -> StageArea:
    """Build (or add to) the stage area in ``stage_dir`` and return what it holds.

    Args:
        factory_name: the factory's name (written in ``constants.cfg`` as GLIDEIN_Factory).
        signing_key: the factory key (:class:`RsaKeyPair`, RSA or Ed25519 private key).
        entries: entry name -> :class:`EntryStage` (or a mapping with ``validation``,
            ``attrs``, ``config``; None for nothing extra).
        factory_validation: scripts every glidein runs after the default ones.
        attrs / config: the factory's published attributes / other ``glidein_config`` values.
        default_validation: include :data:`DEFAULT_VALIDATION`.
        agent_zipapp: a prebuilt agent zipapp (default: built from ``gwms.glidein``).

    Files already present with the same content are left alone; the list and its
    signature are written last, so a concurrent reader sees the old set or the new one.
    """
    stage = Path(stage_dir)
    if not factory_name or any(c.isspace() for c in factory_name):
        raise StageError(f"factory name {factory_name!r} must be non-empty without whitespace")
    attrs = dict(attrs or {})
    config = dict(config or {})
    _check_attr_names(list(attrs) + list(config), "factory attributes")
    entry_stages: dict[str, EntryStage] = {}
    for name in sorted(entries):
        try:
            SI.check_entry_name(name)
        except SI.IndexFormatError as exc:
            raise StageError(str(exc)) from None
        entry_stages[name] = EntryStage.coerce(entries[name])
        _check_attr_names(list(entry_stages[name].attrs) + list(entry_stages[name].config), f"entry {name}")

    plan = _Plan(stage)
    main = SI.MAIN_SCOPE
    plan.add("glidein_startup.sh", _read_source(STARTUP_SCRIPT, "bootstrap script"), "glidein_startup.sh",
             "startup", main, mode=0o755)
    for module in PILOT_MODULES:
        plan.add(module, _read_source(GLIDEIN_DIR / module, "pilot module"), f"lib/gwms/glidein/{module}", "lib", main)
    plan.add("gwms-startd.pyz", _agent_zipapp_bytes(Path(agent_zipapp) if agent_zipapp else None),
             "gwms-startd.pyz", "agent", main)
    plan.add("constants.cfg", _constants_text(attrs, config, {"GLIDEIN_Factory": factory_name}).encode(),
             "constants.cfg", "constants", main)
    if attrs:
        plan.add("condor_vars.lst", _vars_text(attrs).encode(), "condor_vars.lst", "vars", main)
    scripts = list(DEFAULT_VALIDATION) if default_validation else []
    scripts += [Path(p) for p in factory_validation]
    _add_scripts(plan, scripts, main, "validate/factory", "")

    for name, es in entry_stages.items():
        scope, folder = SI.entry_scope(name), f"entry_{name}"
        if es.attrs or es.config:
            plan.add("constants.cfg", _constants_text(es.attrs, es.config, {}).encode(), "entry_constants.cfg",
                     "constants", scope, folder=folder)
        if es.attrs:
            plan.add("condor_vars.lst", _vars_text(es.attrs).encode(), "entry_condor_vars.lst", "vars", scope,
                     folder=folder)
        _add_scripts(plan, es.validation, scope, "validate/entry", folder)

    try:
        index_text = SI.format_index(plan.lines, factory=factory_name)
    except SI.IndexFormatError as exc:
        raise StageError(str(exc)) from None
    index_bytes = index_text.encode()
    index_sha = _sha256(index_bytes)
    index_name = hashed_name("files.lst", index_sha)
    signature_name = index_name + ".sig"
    signature = _signature_text(index_name, index_bytes, signing_key).encode()
    try:
        stage.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StageError(f"cannot create stage directory {stage}: {exc.strerror or exc}") from None
    for rel, data in plan.data.items():
        _put(stage, rel, data, plan.modes[rel])
    if not _signature_still_good(stage / signature_name, index_bytes, signing_key):
        # RSA-PSS signatures are randomised: a rebuild keeps a valid one rather than churn
        _put(stage, signature_name, signature, replace=True)
    _put(stage, index_name, index_bytes)
    return StageArea(stage, factory_name, index_name, index_sha, signature_name, tuple(plan.lines),
                     tuple(entry_stages))


def load_stage_area(stage_dir: str | os.PathLike[str], index_name: str) -> StageArea:
    """A :class:`StageArea` for an existing list in ``stage_dir`` (checks every file's sha256)."""
    stage = Path(stage_dir)
    try:
        SI.check_path(index_name, "index name")
        data = (stage / index_name).read_bytes()
        lines = SI.parse_index(data.decode())
    except (OSError, UnicodeDecodeError, SI.IndexFormatError) as exc:
        raise StageError(f"cannot read stage list {stage / index_name}: {exc}") from None
    for line in lines:
        try:
            actual = _sha256((stage / line.stage_name).read_bytes())
        except OSError as exc:
            raise StageError(f"stage file {line.stage_name} is missing: {exc.strerror}") from None
        if actual != line.sha256:
            raise StageError(f"stage file {line.stage_name} does not match its sha256 in {index_name}")
    entries = tuple(sorted({line.entry for line in lines if line.entry}))
    return StageArea(stage, SI.factory_of(data.decode()) or "", index_name, _sha256(data), index_name + ".sig",
                     tuple(lines), entries)


def prune_stage_area(stage_dir: str | os.PathLike[str], keep: Iterable[StageArea | str]) -> list[Path]:
    """Remove the stage files that no kept list names (lists given by area or index name).

    Only content-addressed names (``*.<8 hex>.*``) and lists' signatures are candidates;
    returns what was removed.
    """
    stage = Path(stage_dir)
    wanted: set[str] = set()
    for item in keep:
        name = item.index_name if isinstance(item, StageArea) else item
        area = item if isinstance(item, StageArea) else load_stage_area(stage, name)
        wanted.update({name, name + ".sig"})
        wanted.update(line.stage_name for line in area.files)
    removed: list[Path] = []
    for path in sorted(stage.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(stage).as_posix()
        if rel in wanted or not _HASHED.search(path.name):
            continue
        path.unlink()
        removed.append(path)
    for folder in sorted((p for p in stage.glob("entry_*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


# --------------------------------------------------------------------------- the glidein's command line


def _attr_arg(name: str, value: AttrValue) -> str:
    if isinstance(value, str):
        text = _value_text(name, value)
        return f'{name}="' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}={_value_text(name, value)}"


def glidein_argv(
    stage: StageArea,
    stage_url: str,
    *,
    entry: str,
    client: str,
    glidein_name: str,
    collector_url: str,
    token_file_or_value: str | os.PathLike[str] | None = None,
    attrs: Mapping[str, AttrValue] | None = None,
    params: Mapping[str, AttrValue] | None = None,
    client_group: str | None = None,
    cluster: int | str | None = None,
    proc: int = 0,
    schedd: str = "",
    credential_id: str = "",
    glidein_uuid: str | None = None,
    retire_time: float | None = None,
    retire_spread: float | None = None,
    job_max_time: float | None = None,
    max_idle: float | None = None,
    max_tail: float | None = None,
    die_time: float | None = None,
    cpus: int | None = None,
    memory_mb: int | None = None,
    slots: int | None = None,
    partitionable: bool = False,
    hold_seconds: float | None = None,
    work_dir: str | None = None,
    ca_file: str | None = None,
    proxy_url: str | None = None,
    startup: str | os.PathLike[str] | None = None,
    shell: str = "/bin/sh",
    debug: bool = False,
    log_url: str | None = None,
    log_interval: float | None = None,
    log_ca_file: str | None = None,
) -> list[str]:
    """The command line that runs the glidein bootstrap for one pilot.

    Args:
        stage / stage_url: the built stage area and the URL it is served at.
        entry, client, glidein_name: the entry, ``<frontend>.<group>`` that asked, and
            the factory instance name (``glidein_name`` in the ``.out`` header).
        collector_url: the user pool's collector the startd agent joins.
        token_file_or_value: an :class:`os.PathLike` is a token file on the worker node;
            a ``str`` is the token itself (the bootstrap writes it to a 0600 file and
            drops it from the command line before starting Python); None: the token
            comes in the :data:`TOKEN_ENV` environment variable.
        attrs: attributes published in the slot ads (strings stay strings).
        params: other ``glidein_config`` values (``-param_NAME VALUE``).
        cluster, proc, schedd, credential_id: the factory's ids for the ``.out`` header.
        retire_time ... die_time: the agent's lifetime (seconds; ``GLIDEIN_Retire_Time`` ...).
        cpus, memory_mb, slots, partitionable: the glidein's resources and slot layout.
        hold_seconds: how long a glidein that failed validation keeps the slot (default 1200).
        work_dir: ``auto`` (default), ``TMPDIR``, ``CONDOR``, ``.`` or a directory.
        startup: the bootstrap's path on the worker node (default: in the stage directory).
        log_url, log_interval, log_ca_file: where the glidein pushes its logs while it
            runs, how often (seconds) and the CA bundle for an ``https`` URL
            (:mod:`gwms.glidein.logpush`); the push token goes in the environment
            (:data:`gwms.security.logtoken.LOG_TOKEN_ENV`), never on the command line.
    """
    if entry not in stage.entries:
        raise StageError(f"entry {entry!r} is not in stage list {stage.index_name}")
    if not client:
        raise StageError("client name must not be empty")
    group = client_group if client_group is not None else (client.rsplit(".", 1)[1] if "." in client else "")
    argv = [
        shell, str(startup) if startup is not None else str(stage.startup_path),
        "-v", "dbg" if debug else "std",
        "-factory", stage.factory_name, "-name", glidein_name, "-entry", entry,
        "-clientname", client, "-clientgroup", group,
        "-web", stage_url.rstrip("/"), "-descript", stage.index_name, "-sign", stage.signature,
        "-signtype", "sha256", "-collector", collector_url,
    ]
    if cluster is not None:
        argv += ["-cluster", str(cluster), "-subcluster", str(proc)]
    for flag, value in (("-schedd", schedd), ("-credid", credential_id), ("-uuid", glidein_uuid),
                        ("-dir", work_dir), ("-cafile", ca_file), ("-proxy", proxy_url),
                        ("-logurl", log_url), ("-logcafile", log_ca_file)):
        if value:
            argv += [flag, str(value)]
    if log_url and log_interval is not None:
        argv += ["-loginterval", f"{log_interval:g}"]
    if hold_seconds is not None:
        if hold_seconds < 0:
            raise StageError(f"hold_seconds must be >= 0, not {hold_seconds}")
        argv += ["-hold", f"{hold_seconds:.3f}".rstrip("0").rstrip(".")]
    if isinstance(token_file_or_value, os.PathLike):
        argv += ["-tokenfile", os.fspath(token_file_or_value)]
    elif isinstance(token_file_or_value, str):
        argv += ["-token", token_file_or_value]
    config: dict[str, AttrValue] = {}
    for key, value in (
        ("GLIDEIN_Retire_Time", retire_time), ("GLIDEIN_Retire_Time_Spread", retire_spread),
        ("GLIDEIN_Job_Max_Time", job_max_time), ("GLIDEIN_Max_Idle", max_idle), ("GLIDEIN_Max_Tail", max_tail),
        ("GLIDEIN_Max_Walltime", die_time), ("GLIDEIN_CPUS", cpus), ("GLIDEIN_MaxMemMBs", memory_mb),
        ("GLIDEIN_Slots", slots),
    ):
        if value is not None:
            config[key] = value
    if partitionable:
        config["SLOTS_LAYOUT"] = "partitionable"
    config.update(params or {})
    _check_attr_names(config, "params")
    for key in sorted(config):
        argv += [f"-param_{key}", _value_text(key, config[key])]
    attrs = dict(attrs or {})
    _check_attr_names(attrs, "attrs")
    for key in sorted(attrs):
        argv += ["-attr", _attr_arg(key, attrs[key])]
    return argv


# --------------------------------------------------------------------------- serving


class _StageHandler(SimpleHTTPRequestHandler):
    """Serves files only (no directory listings), quietly; content-addressed files are immutable."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def list_directory(self, path: str | os.PathLike[str]) -> None:  # type: ignore[override]
        self.send_error(404, "No directory listings")

    def end_headers(self) -> None:
        if _HASHED.search(self.path.rsplit("/", 1)[-1]):
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        super().end_headers()


def serve_stage(
    stage_dir: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0, ssl_context: Any = None
) -> tuple[str, Callable[[], None]]:
    """Serve ``stage_dir`` over HTTP (HTTPS with ``ssl_context``) from a thread.

    Returns the base URL and a function that stops the server. Port 0 picks a free port.
    """
    handler = functools.partial(_StageHandler, directory=str(Path(stage_dir).resolve()))
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise StageError(f"cannot serve the stage area on {host}:{port}: {exc.strerror or exc}") from None
    server.daemon_threads = True
    scheme = "http"
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, name="stage-http", kwargs={"poll_interval": 0.2},
                              daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    url = f"{scheme}://{bound_host}:{bound_port}"
    stopped = threading.Event()

    def stop() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(5)

    return url, stop
