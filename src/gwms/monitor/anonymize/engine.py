"""Anonymize and de-anonymize glidein logs: ``.out``, ``.err`` and every embedded section.

:class:`Anonymizer` replaces every entity the policy does not keep (see
:mod:`~gwms.monitor.anonymize.entities` for what is found and
:mod:`~gwms.monitor.anonymize.policy` for what happens to it):

- in the **reversible** mode with Crypto-PAn for addresses (the same spelling, prefix
  preserved) and AES-SIV tokens for everything else
  (:mod:`~gwms.monitor.anonymize.tokens`); :class:`Deanonymizer` with the key gives back
  the original bytes, byte for byte;
- in the **irreversible** mode with keyed HMAC pseudonyms, truncated addresses and
  redaction.

A job is anonymized as a whole (:meth:`Anonymizer.anonymize_job`): names learned from
any of its texts (the ``As:`` line, job owners, home directories, short host names) are
replaced in all of them. Each ``.err`` section is decoded, its every gzip member
anonymized as text, and re-encoded in the section's own format (name, header, begin and
trailer lines, base64 width, gzip header fields, compression level), so the result
decodes with the original's tools, and the markers and header of the ``.out`` still
parse. Values are deterministic under one key: the same host or user gets the same
replacement in every file and job.

Byte-exact reversal of sections: re-encoding a section's text does not in general give
back its original bytes (GNU gzip and zlib, or two zlib builds, compress differently; a
cut-off section cannot be rebuilt at all). So by default the reversible mode keeps an
AES-SIV-encrypted copy of the original section in the first gzip member's comment, which
gzip readers ignore and :class:`Deanonymizer` uses (policy ``exact_sections``:
``always``, ``when-needed`` or ``never``).

Speed: replacements are cached per value, so the cryptography runs once per distinct
value; the scanning passes are the cost (see ``benchmarks/bench_anonymize.py``).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from gwms.monitor.anonymize import entities as E
from gwms.monitor.anonymize.cryptopan import CryptoPAn
from gwms.monitor.anonymize.entities import Discovered, EntityScanner, discover
from gwms.monitor.anonymize.keys import KeyRing
from gwms.monitor.anonymize.policy import Action, AnonymizationPolicy, Mode
from gwms.monitor.anonymize.pseudonym import Pseudonymizer
from gwms.monitor.anonymize.tokens import TokenCodec
from gwms.monitor.sections import (
    ErrFile,
    GzipHeader,
    Section,
    bytes_of,
    reencode_section,
    section_reproducible,
    split_err,
    text_of,
)

__all__ = ["REDACTED", "Anonymizer", "Deanonymizer", "JobResult"]

T = TypeVar("T", str, bytes)

#: What a redacted value of each kind becomes (shaped to keep parsers working).
REDACTED = {
    E.IPV4: "0.0.0.0",
    E.IPV6: "::",
    E.IPV6DASH: "--",
    E.HOST: "redacted.invalid",
    E.USER: "redacted",
    E.GROUP: "redacted",
    E.UID: "65534",
    E.EMAIL: "redacted@redacted.invalid",
    E.DN: "/CN=redacted",
    E.FQAN: "/redacted",
    E.SECRET: "[REDACTED]",
    E.JOBID: "redacted",
}
_IP_KINDS = frozenset({E.IPV4, E.IPV6, E.IPV6DASH})
_CACHE_LIMIT = 200_000


@dataclass
class JobResult:
    """The anonymized (or de-anonymized) files of one job and what was done to them.

    ``out`` and ``err`` have the type they were given in (text or bytes), or are None.
    ``replaced`` counts the values replaced per entity kind; ``problems`` lists sections
    that were damaged, and anything that keeps the result from being exactly reversible.
    """

    out: str | bytes | None
    err: str | bytes | None
    replaced: Counter[str] = field(default_factory=Counter)
    #: The job's other files (given as ``others``), in order and type.
    others: list[str | bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    key_id: str | None = None


def _to_text(data: str | bytes) -> str:
    return data if isinstance(data, str) else text_of(bytes(data))


def _like(original: str | bytes, text: str) -> str | bytes:
    return text if isinstance(original, str) else bytes_of(text)


def _ip_text(kind: str, value: str) -> str:
    return value.replace("-", ":") if kind == E.IPV6DASH else value


def _after_percent(text: str, start: int) -> bool:
    """True if ``text[start]`` follows a ``%`` or a ``%XX`` escape (where addresses get tokens)."""
    return (start >= 1 and text[start - 1] == "%") or (start >= 3 and text[start - 3] == "%")


def _ip_render(kind: str, address: str) -> str:
    return address.replace(":", "-") if kind == E.IPV6DASH else address


class Anonymizer:
    """Anonymizes texts, ``.err`` files and whole jobs under one key ring and policy.

    Args:
        keys: the key ring (its current key makes new tokens).
        policy: what to do with each kind of entity (defaults: :class:`AnonymizationPolicy`).
        mode: ``"reversible"`` or ``"irreversible"``.
        output_level: the zlib level re-encoded sections are compressed at (``None``: the
            level the original's gzip header implies). The gzip headers stay the
            originals' either way, so de-anonymization recompresses as the original was;
            level 3 is about 2.5x faster than 6 for 15% more bytes.

    An instance keeps caches of replacements; use one per run (it is not thread-safe).
    """

    def __init__(
        self,
        keys: KeyRing,
        policy: AnonymizationPolicy | None = None,
        mode: Mode = "reversible",
        *,
        output_level: int | None = 3,
    ) -> None:
        if mode not in ("reversible", "irreversible"):
            raise ValueError(f"mode must be 'reversible' or 'irreversible', not {mode!r}")
        self.keys = keys
        self.policy = policy or AnonymizationPolicy()
        self.mode: Mode = mode
        self.output_level = output_level
        self.kinds = self.policy.active_kinds(mode)
        key = keys.current
        self._codec = TokenCodec(keys)
        if mode == "reversible":
            self._cpan = CryptoPAn(key.cryptopan_key)
            self._pseudo: Pseudonymizer | None = None
        else:
            self._cpan = CryptoPAn(key.audience_cryptopan_key(self.policy.audience))
            self._pseudo = Pseudonymizer(
                key.hmac_key(self.policy.audience), self.policy.pseudonym_length
            )
        self._actions = {k: self.policy.action(k, mode) for k in E.ENTITY_KINDS}
        #: addresses become Crypto-PAn addresses that the de-anonymizer must find again
        self._reversible_ips = mode == "reversible" and self._actions[E.IPV4] == Action.PSEUDONYMIZE
        #: kind -> value -> replacement
        self._by_kind: dict[str, dict[str, str]] = {k: {} for k in E.ENTITY_KINDS}
        self._ip_scanner = EntityScanner(kinds=_IP_KINDS & self.kinds)
        self.replaced: Counter[str] = Counter()

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickled as its settings (for worker processes); caches start empty there."""
        return _rebuild_anonymizer, (self.keys, self.policy, self.mode, self.output_level)

    @property
    def key_id(self) -> str:
        """The id of the key new tokens are made with."""
        return self.keys.current.kid

    # -- learning ------------------------------------------------------------------
    def scanner_for(self, discovered: Discovered) -> EntityScanner:
        """A scanner for the learned values (minus those the allow-lists keep)."""
        literals = {}
        for value, kind in discovered.literals().items():
            if kind in self.kinds and not self.policy.rule(kind).allows(value):
                literals[value] = kind
        return EntityScanner(literals, kinds=self.kinds)

    def learn(self, texts: Sequence[str], into: Discovered | None = None) -> Discovered:
        """Learn names from every text in ``texts`` (see :func:`~gwms.monitor.anonymize.entities.discover`)."""
        found = into if into is not None else Discovered()
        for t in texts:
            discover(t, found)
        return found

    # -- values --------------------------------------------------------------------
    def replacement(self, kind: str, value: str) -> str:
        """What ``value`` (an entity of ``kind``) becomes; ``value`` itself when kept."""
        cache = self._by_kind[kind]
        hit = cache.get(value)
        if hit is not None:
            return hit
        out = self._replace(kind, value)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[value] = out
        return out

    def _replace(self, kind: str, value: str) -> str:
        action = self._actions[kind]
        if action == Action.KEEP:
            return value
        if kind in _IP_KINDS:
            return self._ip(kind, value, action)
        rule = self.policy.rule(kind)
        if rule.allows(value):
            return self._ips_within(value)
        if action == Action.REDACT:
            if kind == E.DN and not value.startswith("/"):
                return "CN=redacted"
            return REDACTED[kind]
        if action == Action.TRUNCATE:  # hosts only (the policy refuses it elsewhere)
            labels = value.split(".")
            keep = self.policy.host.keep_labels
            if len(labels) > keep:
                return "anon." + ".".join(labels[-keep:])
        if self._pseudo is not None:
            return self._pseudo.pseudonym(kind, value)
        return self._codec.seal(kind, value)

    def _ips_within(self, value: str) -> str:
        """A kept value with the addresses inside it still replaced.

        In the reversible mode they become tokens: they were found in the value alone,
        and in the whole text the de-anonymizer may read the characters around them
        differently (``::`` + ``192.0.2.33.gfactory.opensciencegrid.org``).
        """
        if not (_IP_KINDS & self.kinds) or ("." not in value and ":" not in value):
            return value
        spans = self._ip_scanner.scan(value)
        if not spans or not self._reversible_ips:
            return self._apply(value, spans)
        pieces: list[str] = []
        pos = 0
        for s, e, kind in spans:
            ip = value[s:e]
            if self.replacement(kind, ip) == ip:
                continue
            pieces.append(value[pos:s])
            pieces.append(self._codec.seal("ip", ip))
            pos = e
            self.replaced[kind] += 1
        pieces.append(value[pos:])
        return "".join(pieces)

    def _ip(self, kind: str, value: str, action: Action) -> str:
        text = _ip_text(kind, value)
        rule = self.policy.ip
        if rule.allows(text):
            return value
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return value
        if action == Action.REDACT:
            return REDACTED[kind]
        if action == Action.TRUNCATE:
            prefix = rule.ipv4_prefix if ip.version == 4 else rule.ipv6_prefix
            net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
            return _ip_render(kind, str(net.network_address))
        bits = 32 if ip.version == 4 else 128
        anon_int = self._cpan.encrypt_int(int(ip), bits)
        out = str(
            ipaddress.IPv4Address(anon_int) if bits == 32 else ipaddress.IPv6Address(anon_int)
        )
        if self.mode == "irreversible":
            return _ip_render(kind, out)
        # Reversible: the de-anonymizer must find this address and turn it back into the
        # very same spelling. Canonical spellings (all lower or all upper case) can be;
        # anything else, or a result that lands on the allow-list, becomes a token.
        canonical = str(ip)
        upper = text != text.lower()
        if text.lower() != canonical or (upper and text != text.upper()):
            return self._codec.seal("ip", value)
        if upper:
            if out == out.upper():  # no letters: the case could not be told back
                return self._codec.seal("ip", value)
            out = out.upper()
        if rule.allows(out):
            return self._codec.seal("ip", value)
        return _ip_render(kind, out)

    # -- texts ---------------------------------------------------------------------
    def _apply(self, text: str, spans: list[tuple[int, int, str]]) -> str:
        if not spans:
            return text
        caches = self._by_kind
        reps: list[str] = []
        changed_ips = False
        ip_kinds = _IP_KINDS
        for s, e, kind in spans:
            value = text[s:e]
            rep = caches[kind].get(value)
            if rep is None:
                rep = self.replacement(kind, value)
            reps.append(rep)
            if kind in ip_kinds and rep != value:
                changed_ips = True
        if changed_ips and self._reversible_ips:
            self._tokenize_crowded_ips(text, spans, reps)
        pieces: list[str] = []
        append = pieces.append
        done: list[str] = []
        count = done.append
        pos = 0
        for (s, e, kind), rep in zip(spans, reps, strict=True):
            if rep != text[s:e]:
                append(text[pos:s])
                append(rep)
                pos = e
                count(kind)
        if not done:
            return text
        self.replaced.update(done)
        append(text[pos:])
        return "".join(pieces)

    def _tokenize_crowded_ips(
        self, text: str, spans: list[tuple[int, int, str]], reps: list[str]
    ) -> None:
        """Turn the addresses the de-anonymizer could not find back as they are into tokens.

        What the scanner finds at a place depends on the run of address characters there
        (:func:`~gwms.monitor.anonymize.entities.address_run`) and one character on each
        side. So an address becomes a token when its run holds another entity (the
        replacement of one changes how the other reads: ``2001:db8::1`` glued to
        ``10.1.2.3``), when a token lies within one character of its run (the token's
        characters are not the original's: ``CN=...,C=US`` + ``2001:db8::110.1.2.3``),
        or when it follows a ``%`` or a ``%XX`` escape (the address's first digits can
        read as an escape). :class:`Deanonymizer` leaves addresses whose run touches a
        token alone. Repeated until nothing changes, since a new token can crowd the
        next address of a chain.
        """
        n = len(spans)
        runs: dict[int, tuple[int, int]] = {}
        for j, (s, e, kind) in enumerate(spans):
            if kind not in _IP_KINDS or reps[j] == text[s:e]:
                continue
            if _after_percent(text, s):
                reps[j] = self._codec.seal("ip", text[s:e])
            else:
                runs[j] = E.address_run(text, s, e)
        if not runs:
            return

        def is_token(k: int) -> bool:
            s, e, kind = spans[k]
            rep = reps[k]
            if rep == text[s:e]:
                return False
            return kind not in _IP_KINDS or rep.startswith("i-")

        changed = True
        while changed:
            changed = False
            for j, (rs, re_) in list(runs.items()):
                crowded = False
                k = j - 1
                while not crowded and k >= 0 and spans[k][1] >= rs - 1:
                    crowded = spans[k][1] > rs or is_token(k)
                    k -= 1
                k = j + 1
                while not crowded and k < n and spans[k][0] <= re_ + 1:
                    crowded = spans[k][0] < re_ or is_token(k)
                    k += 1
                if crowded:
                    s, e, _ = spans[j]
                    reps[j] = self._codec.seal("ip", text[s:e])
                    del runs[j]
                    changed = True

    def anonymize_text(self, text: str, scanner: EntityScanner | None = None) -> str:
        """Anonymize one plain text. Without a ``scanner``, names are learned from ``text`` alone."""
        if scanner is None:
            scanner = self.scanner_for(discover(text))
        return self._apply(text, scanner.scan(text))

    def _anonymize_header(self, header: GzipHeader, scanner: EntityScanner) -> GzipHeader:
        changes: dict[str, bytes] = {}
        for name in ("fname", "comment"):
            raw = getattr(header, name)
            if raw:
                text = raw.decode("latin-1")
                new = self.anonymize_text(text, scanner)
                if new != text:
                    changes[name] = new.encode("latin-1", "replace")
        return replace(header, **changes) if changes else header

    def anonymize_section(
        self, section: Section, scanner: EntityScanner, problems: list[str] | None = None
    ) -> str:
        """The anonymized text of one ``.err`` section, in the section's own format."""
        if section.begin_line is None:  # a header with no data: nothing to hide
            return section.raw
        members = section.members
        data = [bytes_of(self.anonymize_text(text_of(m.data), scanner)) for m in members] or [b""]
        headers = [self._anonymize_header(m.header, scanner) for m in members] or [GzipHeader(os=3)]
        if section.problem and problems is not None:
            problems.append(f"section {section.name or '?'}: {section.problem}")
        if self.mode == "reversible":
            exact = self.policy.exact_sections
            if exact == "always" or (exact == "when-needed" and not section_reproducible(section)):
                headers[0] = replace(
                    headers[0], comment=self._codec.seal_blob(bytes_of(section.raw))
                )
            elif exact == "never" and problems is not None and not section_reproducible(section):
                problems.append(
                    f"section {section.name or '?'}: its gzip bytes will not be restored exactly"
                )
        return reencode_section(section, data, headers=headers, level=self.output_level)

    def anonymize_err(self, err: str | bytes, scanner: EntityScanner | None = None) -> str:
        """Anonymize an ``.err`` file (plain text and every section). Returns text."""
        parsed = split_err(_to_text(err))
        if scanner is None:
            scanner = self.scanner_for(self.learn(self._err_texts(parsed)))
        return self._anonymize_err_file(parsed, scanner, [])

    @staticmethod
    def _err_texts(parsed: ErrFile) -> list[str]:
        texts = list(parsed.parts)
        for s in parsed.sections:
            texts.extend(text_of(m.data) for m in s.members)
        return texts

    def _anonymize_err_file(
        self, parsed: ErrFile, scanner: EntityScanner, problems: list[str]
    ) -> str:
        out: list[str] = []
        for i, section in enumerate(parsed.sections):
            out.append(self.anonymize_text(parsed.parts[i], scanner))
            out.append(self.anonymize_section(section, scanner, problems))
        out.append(self.anonymize_text(parsed.parts[-1], scanner))
        return "".join(out)

    def anonymize_job(
        self,
        out: str | bytes | None = None,
        err: str | bytes | None = None,
        *,
        others: Sequence[str | bytes] = (),
        verify: bool = False,
    ) -> JobResult:
        """Anonymize a job's ``.out``, ``.err`` and ``others`` (plain files) together.

        Names learned in any of them are replaced in all. With ``verify`` (reversible
        mode), the result is de-anonymized again and any difference from the input is
        reported in :attr:`JobResult.problems`.
        """
        before = self.replaced.copy()
        out_text = _to_text(out) if out is not None else None
        parsed = split_err(_to_text(err)) if err is not None else None
        other_texts = [_to_text(o) for o in others]
        texts: list[str] = list(other_texts)
        if out_text is not None:
            texts.append(out_text)
        if parsed is not None:
            texts.extend(self._err_texts(parsed))
        scanner = self.scanner_for(self.learn(texts))
        problems: list[str] = []
        new_out = self.anonymize_text(out_text, scanner) if out_text is not None else None
        new_err = (
            self._anonymize_err_file(parsed, scanner, problems) if parsed is not None else None
        )
        result = JobResult(
            out=_like(out, new_out) if out is not None and new_out is not None else None,
            err=_like(err, new_err) if err is not None and new_err is not None else None,
            replaced=Counter(),
            problems=problems,
            key_id=self.key_id,
            others=[
                _like(o, self.anonymize_text(t, scanner))
                for o, t in zip(others, other_texts, strict=True)
            ],
        )
        result.replaced = self.replaced - before
        if verify and self.mode == "reversible":
            back = Deanonymizer(self.keys, self.policy).deanonymize_job(
                new_out, new_err, others=[_to_text(o) for o in result.others], ip_key_id=self.key_id
            )
            if out_text is not None and back.out != out_text:
                result.problems.append("the .out does not de-anonymize to the original exactly")
            if err is not None and back.err != _to_text(err):
                result.problems.append("the .err does not de-anonymize to the original exactly")
            if back.others != other_texts:
                result.problems.append("another file does not de-anonymize to the original exactly")
        return result


def _rebuild_anonymizer(
    keys: KeyRing, policy: AnonymizationPolicy, mode: Mode, output_level: int | None
) -> Anonymizer:
    return Anonymizer(keys, policy, mode, output_level=output_level)


class Deanonymizer:
    """Restores files anonymized in the reversible mode, with the key ring that made them.

    Tokens carry their key id, so files made under rotated keys come back as long as the
    ring still holds those keys. Addresses carry none: they are decrypted with the key
    the job's tokens name (or ``ip_key_id``, or the current key).

    Args:
        keys: the key ring.
        policy: the policy the files were anonymized with (which addresses were kept).
    """

    def __init__(self, keys: KeyRing, policy: AnonymizationPolicy | None = None) -> None:
        self.keys = keys
        self.policy = policy or AnonymizationPolicy()
        self._codec = TokenCodec(keys)
        self._restore_ips = self.policy.action(E.IPV4, "reversible") == Action.PSEUDONYMIZE
        self._ip_scanner = EntityScanner(kinds=_IP_KINDS)
        self._cpans: dict[str, CryptoPAn] = {}
        self._ip_cache: dict[tuple[str, str, str], str] = {}
        self.restored: Counter[str] = Counter()
        self.unknown_keys: set[str] = set()

    def _cpan(self, kid: str) -> CryptoPAn:
        c = self._cpans.get(kid)
        if c is None:
            c = self._cpans[kid] = CryptoPAn(self.keys.require(kid).cryptopan_key)
        return c

    def _ip_back(self, kind: str, value: str, kid: str) -> str:
        key = (kind, value, kid)
        hit = self._ip_cache.get(key)
        if hit is not None:
            return hit
        out = value
        text = _ip_text(kind, value)
        if not self.policy.ip.allows(text):
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                ip = None
            if ip is not None and text.lower() == str(ip):
                bits = 32 if ip.version == 4 else 128
                orig_int = self._cpan(kid).decrypt_int(int(ip), bits)
                orig = str(
                    ipaddress.IPv4Address(orig_int)
                    if bits == 32
                    else ipaddress.IPv6Address(orig_int)
                )
                if text != text.lower():
                    orig = orig.upper()
                out = _ip_render(kind, orig)
        self._ip_cache[key] = out
        return out

    def tokens_in(self, text: str) -> list[tuple[int, int, str, str]]:
        """The tokens in ``text`` that open: ``(start, end, original value, key id)``."""
        return [(t.start, t.end, t.value, t.kid) for t in self._codec.find(text)]

    def deanonymize_text(self, text: str, ip_key_id: str | None = None) -> str:
        """Restore one plain text. Addresses use ``ip_key_id`` (default: the first token's key, else the current)."""
        tokens = self.tokens_in(text)
        if ip_key_id is None:
            ip_key_id = tokens[0][3] if tokens else self.keys.current.kid
        return self._restore(text, tokens, ip_key_id)

    def _restore(self, text: str, tokens: list[tuple[int, int, str, str]], kid: str) -> str:
        spans: list[tuple[int, int, str, str]] = [(s, e, "t", v) for s, e, v, _ in tokens]
        if self._restore_ips and ("." in text or ":" in text or "-" in text):
            # A token is certain (it opened); an address next to one may be an artefact of
            # the new neighbour (``2001:db8::`` + ``e-k1-...``): addresses give way.
            taken = sorted((s, e) for s, e, _, _ in spans)
            for s, e, kind in self._ip_scanner.scan(text):
                # (the anonymizer made every address whose run of address characters
                # comes within one character of a token a token)
                rs, re_ = E.address_run(text, s, e)
                i = bisect.bisect_right(taken, (rs, len(text) + 1))
                if (i > 0 and taken[i - 1][1] >= rs - 1) or (
                    i < len(taken) and taken[i][0] <= re_ + 1
                ):
                    continue
                if _after_percent(text, s):
                    continue
                spans.append((s, e, kind, ""))
        if not spans:
            return text
        spans.sort()
        pieces: list[str] = []
        pos = 0
        last_end = -1
        for s, e, kind, value in spans:
            if s < last_end:
                continue
            last_end = e
            if kind == "t":
                rep = value
                self.restored["token"] += 1
            else:
                rep = self._ip_back(kind, text[s:e], kid)
                if rep == text[s:e]:
                    continue
                self.restored["ip"] += 1
            pieces.append(text[pos:s])
            pieces.append(rep)
            pos = e
        pieces.append(text[pos:])
        return "".join(pieces)

    def _restore_header(self, header: GzipHeader, kid: str) -> GzipHeader:
        changes: dict[str, bytes] = {}
        for name in ("fname", "comment"):
            raw = getattr(header, name)
            if raw:
                text = raw.decode("latin-1")
                new = self.deanonymize_text(text, kid)
                if new != text:
                    changes[name] = new.encode("latin-1", "replace")
        return replace(header, **changes) if changes else header

    def deanonymize_section(self, section: Section, kid: str) -> str:
        """The original text of one anonymized section."""
        if section.members and section.members[0].header.comment:
            original = self._codec.open_blob(section.members[0].header.comment)
            if original is not None:
                return text_of(original)
        if section.begin_line is None or not section.members:
            return section.raw
        data = [bytes_of(self.deanonymize_text(text_of(m.data), kid)) for m in section.members]
        headers = [self._restore_header(m.header, kid) for m in section.members]
        return reencode_section(section, data, headers=headers)

    def deanonymize_err(self, err: str | bytes, ip_key_id: str | None = None) -> str:
        """Restore an anonymized ``.err`` file. Returns text."""
        return self.deanonymize_job(None, err, ip_key_id=ip_key_id).err  # type: ignore[return-value]

    def deanonymize_job(
        self,
        out: str | bytes | None = None,
        err: str | bytes | None = None,
        *,
        others: Sequence[str | bytes] = (),
        ip_key_id: str | None = None,
    ) -> JobResult:
        """Restore a job's anonymized ``.out``, ``.err`` and ``others`` (each in the type given)."""
        out_text = _to_text(out) if out is not None else None
        parsed = split_err(_to_text(err)) if err is not None else None
        other_texts = [_to_text(o) for o in others]
        other_tokens = [self.tokens_in(t) for t in other_texts]
        out_tokens = self.tokens_in(out_text) if out_text is not None else []
        part_tokens = [self.tokens_in(p) for p in parsed.parts] if parsed is not None else []
        kid = ip_key_id
        if kid is None:
            for found in [out_tokens, *part_tokens, *other_tokens]:
                if found:
                    kid = found[0][3]
                    break
        if kid is None and parsed is not None:
            for s in parsed.sections:
                for m in s.members:
                    found = self.tokens_in(text_of(m.data))
                    if found:
                        kid = found[0][3]
                        break
                if kid is not None:
                    break
        kid = kid or self.keys.current.kid
        new_out = self._restore(out_text, out_tokens, kid) if out_text is not None else None
        new_err = None
        if parsed is not None:
            pieces: list[str] = []
            for i, section in enumerate(parsed.sections):
                pieces.append(self._restore(parsed.parts[i], part_tokens[i], kid))
                pieces.append(self.deanonymize_section(section, kid))
            pieces.append(self._restore(parsed.parts[-1], part_tokens[-1], kid))
            new_err = "".join(pieces)
        return JobResult(
            out=_like(out, new_out) if out is not None and new_out is not None else None,
            err=_like(err, new_err) if err is not None and new_err is not None else None,
            key_id=kid,
            others=[
                _like(o, self._restore(t, found, kid))
                for o, t, found in zip(others, other_texts, other_tokens, strict=True)
            ],
        )
