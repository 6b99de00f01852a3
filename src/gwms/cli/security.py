"""The ``gwms security`` command group: set up keys, the CA and tokens; issue and inspect tokens.

::

    gwms security init DIR [--host NAME ...] [--trust-domain NAME]
    gwms security token issue --keys DIR --subject ID --scope S [--scope S ...]
                              [--lifetime 1h] [--out FILE]
    gwms security token inspect TOKEN_OR_FILE [--keys DIR]
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from gwms.errors import GwmsError, UsageError

_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``90``, ``45s``, ``30m``, ``1h30m``, ``7d`` or ``2w``.

    A bare number is seconds. The result must be positive.

    Raises:
        UsageError: the text is not such a duration.
    """
    s = text.strip().lower()
    if s.isdigit():
        seconds = int(s)
    else:
        pos, seconds = 0, 0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            seconds += int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(s) or not s:
            raise UsageError(f"invalid duration {text!r}", hint="e.g. 90, 30m, 1h30m, 7d")
    if seconds <= 0:
        raise UsageError(f"invalid duration {text!r}: must be positive")
    return timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """Format seconds as a short duration such as ``1d 2h`` or ``5m 3s``."""
    seconds = int(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


@click.group(name="security")
def security() -> None:
    """Keys, certificates and tokens."""


@security.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="NAME",
    help="Host name or IP for the service certificate (besides 127.0.0.1 and localhost).",
)
@click.option(
    "--trust-domain",
    metavar="NAME",
    help="The pool's trust domain (token issuer). Default: this host's name.",
)
@click.option(
    "--admin-lifetime",
    default="365d",
    show_default=True,
    metavar="DURATION",
    help="Lifetime of the administrator token.",
)
def init_cmd(
    directory: Path, hosts: tuple[str, ...], trust_domain: str | None, admin_lifetime: str
) -> None:
    """Create DIR/keys, DIR/ca and DIR/tokens/admin.token; keep whatever already exists."""
    from gwms.security.layout import init_security

    lifetime = parse_duration(admin_lifetime)
    layout, steps = init_security(
        directory, hosts=hosts, trust_domain=trust_domain, admin_lifetime=lifetime
    )
    for step in steps:
        note = f"  ({step.note})" if step.note else ""
        label = "created" if step.action == "created" else "kept existing"
        click.echo(f"{label:<14} {step.what:<20} {step.path}{note}")
    click.echo(f"security directory {layout.root} ready; trust domain {layout.trust_domain()}")


@security.group("token")
def token() -> None:
    """Issue and inspect pool tokens."""


def _known_scope(value: str) -> str:
    from gwms.security.scopes import ALL_SCOPES

    name = value.strip().upper()
    if name not in ALL_SCOPES:
        raise UsageError(f"unknown scope {value!r}", hint="one of " + ", ".join(sorted(ALL_SCOPES)))
    return name


@token.command("issue")
@click.option(
    "--keys",
    "keys_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory of signing keys (DIR/keys of 'gwms security init').",
)
@click.option("--subject", required=True, metavar="ID", help="The holder's identity, user@domain.")
@click.option(
    "--scope", "scope_names", multiple=True, required=True, metavar="S", help="A scope; repeat."
)
@click.option("--lifetime", default="24h", show_default=True, metavar="DURATION")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (0600)."
)
@click.option("--issuer", metavar="NAME", help="Issuer. Default: the trust domain of --keys.")
@click.option("--kid", metavar="ID", help="Key id. Default: POOL, or the only key.")
@click.option("--audience", metavar="NAME", help="Service the token is for (aud claim).")
def issue_cmd(
    keys_dir: Path,
    subject: str,
    scope_names: tuple[str, ...],
    lifetime: str,
    out: Path | None,
    issuer: str | None,
    kid: str | None,
    audience: str | None,
) -> None:
    """Issue a token. Prints it, or writes it to --out."""
    from gwms.security.tokens import issue_token, load_signing_keys, load_trust_domain

    scope_set = sorted({_known_scope(s) for s in scope_names})
    duration = parse_duration(lifetime)
    keys = load_signing_keys(keys_dir)
    if not keys:
        raise GwmsError(f"no signing keys (*.key) in {keys_dir}")
    if kid is None:
        kid = "POOL" if "POOL" in keys or len(keys) != 1 else next(iter(keys))
    key = keys.get(kid)
    if key is None:
        raise GwmsError(f"no key {kid!r} in {keys_dir}", hint="keys: " + ", ".join(sorted(keys)))
    issuer = issuer or load_trust_domain(keys_dir)
    if issuer is None:
        raise UsageError(f"{keys_dir} records no trust domain", hint="pass --issuer NAME")
    tok = issue_token(
        key,
        issuer=issuer,
        subject=subject,
        scopes=scope_set,
        lifetime=duration,
        audience=audience,
    )
    if out is None:
        click.echo(tok)
        return
    from gwms.security.tokens import write_token_file

    write_token_file(out, tok)
    click.echo(
        f"wrote {out}: {subject} [{' '.join(scope_set)}] issuer {issuer}, "
        f"expires in {format_duration(duration.total_seconds())}",
        err=True,
    )


def _read_token_arg(value: str) -> str:
    """A token given inline, or read from a file (warning if the file is too open)."""
    try:
        st = os.stat(value)
    except (OSError, ValueError):
        st = None
    if st is None:
        if value.strip().count(".") == 2:
            return value.strip()
        raise UsageError(f"{value!r} is neither a file nor a token")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{value} is not a regular file")
    if st.st_mode & 0o077:
        click.echo(
            f"warning: {value} is readable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {value}",
            err=True,
        )
    try:
        return Path(value).read_text(encoding="ascii").strip()
    except (UnicodeDecodeError, OSError) as exc:
        raise GwmsError(f"cannot read token file {value}: {exc}") from None


def _when(epoch: object, now: float) -> str:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        return repr(epoch)
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    delta = epoch - now
    rel = f"in {format_duration(delta)}" if delta >= 0 else f"{format_duration(delta)} ago"
    return f"{stamp} ({rel})"


@token.command("inspect")
@click.argument("token_or_file", metavar="TOKEN_OR_FILE")
@click.option(
    "--keys",
    "keys_dir",
    type=click.Path(path_type=Path),
    help="Verify with the signing keys of this directory.",
)
@click.option(
    "--issuer", metavar="NAME", help="Accepted issuer. Default: the trust domain of --keys."
)
@click.option("--json", "as_json", is_flag=True, help="Print header and claims as JSON.")
def inspect_cmd(
    token_or_file: str, keys_dir: Path | None, issuer: str | None, as_json: bool
) -> None:
    """Show a token's claims; verify it too if --keys is given."""
    from gwms.security.tokens import (
        TokenVerifier,
        decode_unverified,
        load_signing_keys,
        load_trust_domain,
    )

    tok = _read_token_arg(token_or_file)
    header, claims = decode_unverified(tok)
    now = time.time()
    if as_json:
        click.echo(json.dumps({"header": header, "claims": claims}, indent=2, sort_keys=True))
    else:
        known = {"sub", "iss", "scope", "iat", "nbf", "exp", "jti", "aud"}
        rows = [
            ("key id", str(header.get("kid", "-"))),
            ("algorithm", str(header.get("alg", "-"))),
            ("subject", str(claims.get("sub", "-"))),
            ("issuer", str(claims.get("iss", "-"))),
            ("scopes", str(claims.get("scope", "") or "-")),
            ("issued", _when(claims.get("iat"), now)),
            ("not before", _when(claims.get("nbf"), now)),
            ("expires", _when(claims.get("exp"), now)),
            ("token id", str(claims.get("jti", "-"))),
        ]
        if "aud" in claims:
            rows.append(("audience", str(claims["aud"])))
        rows += [(name, json.dumps(value)) for name, value in claims.items() if name not in known]
        for label, value in rows:
            click.echo(f"{label + ':':<12} {value}")
    if keys_dir is None:
        click.echo("signature:   not checked (give --keys DIR to verify)", err=as_json)
        return
    keys = load_signing_keys(keys_dir)
    if not keys:
        raise GwmsError(f"no signing keys (*.key) in {keys_dir}")
    accepted = issuer or load_trust_domain(keys_dir)
    issuer_note = ""
    if accepted is None:
        accepted = str(claims.get("iss") or "-")
        issuer_note = " (issuer not checked: no trust domain recorded, no --issuer)"
    aud = claims.get("aud")  # shown above; which service it is for is the service's check
    audience = aud if isinstance(aud, (str, list)) and aud else None
    verified = TokenVerifier(keys, accepted, audience=audience).verify(tok)
    click.echo(
        f"signature:   verified with key {verified.key_id}, issuer {verified.issuer}{issuer_note}",
        err=as_json,
    )
