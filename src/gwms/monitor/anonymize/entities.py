"""Finding the identifying values in glidein logs: addresses, hosts, users, DNs, secrets ...

Two steps, both over plain text (``.out``, the plain part of ``.err``, and every decoded
section):

1. :func:`discover` learns the values that only context reveals: the user and groups of
   the ``As:`` line, job owners (``Owner = "alice"``, ``User = "alice@..."``), home
   directories (``/home/alice``), unqualified host names (``Running on c705-23``,
   ``alias=...``, ``slot1@host``, ``HOSTNAME=...``). :class:`Discovered` collects them.
2. :class:`EntityScanner` finds every entity in a text, as :class:`Span` ``(start, end,
   kind)`` triples that do not overlap, in order. Kinds are the constants below.

Speed matters (tens of MB/s per core, in pure Python). Python's regex engine is fast
only when a pattern starts with one literal character or string (it then skips to the
candidates with a fast search); an alternation of many words is several times slower.
So every finder here is its own small expression with a literal start (``.`` then a
top-level domain, ``@``, ``::``, ``[``, ``/Role=``, ``id=``, ``token`` in the lower-cased
text ...), and a little code around each match checks boundaries and values (with
caches, since logs repeat the same few hosts and addresses).

What each kind covers:

- ``ipv4``: dotted quads, also after a percent-escape (``%3d128.104.100.30``).
- ``ipv6``: colon form (validated; a ``%zone`` stays outside), also with a dotted IPv4
  tail (``::ffff:110.1.2.3`` is one IPv6 address, never an IPv6 prefix and an IPv4
  address; see :func:`address_run` for why neighbours matter); ``ipv6dash``: the
  ``[2607-f388-...-c57b]`` form of sinful strings' ``addrs=`` (also ``%5B...%5D``).
- ``host``: FQDNs whose last label is a known top-level domain, and learned names.
- ``email``: ``local@domain`` (but not HTCondor names such as ``slot1@host``).
- ``user``, ``group``: learned names; ``uid``: numbers of ``uid=``/``gid=``/``groups=``
  and ``x509up_u<uid>``.
- ``dn``: ``/DC=.../CN=...`` and ``CN=...,O=...,C=..`` forms; ``fqan``: ``/vo/Role=.../Capability=...``.
- ``secret``: values of ``*TOKEN*``, ``*PASSWORD*``, ``*SECRET*``, ``*CREDENTIAL*``,
  ``API_KEY``-like assignments, ``Bearer`` tokens, JWT-shaped strings, PEM blocks
  (X.509 proxies, keys), passwords in URLs.
- ``jobid``: foreign job ids (``SLURM_JOB_ID=``, ``PBS_JOBID=``, ``GlobalJobId = "..."``, ...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "COUNTRY_TLDS",
    "DN",
    "EMAIL",
    "ENTITY_KINDS",
    "FQAN",
    "GENERIC_TLDS",
    "GROUP",
    "HOST",
    "IPV4",
    "IPV6",
    "IPV6DASH",
    "JOBID",
    "SECRET",
    "UID",
    "USER",
    "Discovered",
    "EntityScanner",
    "Span",
    "address_run",
    "discover",
    "is_host_name",
]

IPV4 = "ipv4"
IPV6 = "ipv6"
IPV6DASH = "ipv6dash"
HOST = "host"
EMAIL = "email"
USER = "user"
GROUP = "group"
UID = "uid"
DN = "dn"
FQAN = "fqan"
SECRET = "secret"
JOBID = "jobid"
#: Every kind of entity the scanner reports.
ENTITY_KINDS = (IPV4, IPV6, IPV6DASH, HOST, EMAIL, USER, GROUP, UID, DN, FQAN, SECRET, JOBID)

GENERIC_TLDS = frozenset(
    [
        "com",
        "org",
        "net",
        "edu",
        "gov",
        "mil",
        "int",
        "info",
        "biz",
        "name",
        "pro",
        "aero",
        "coop",
        "museum",
        "mobi",
        "asia",
        "tel",
        "travel",
        "jobs",
        "cat",
        "arpa",
        "io",
        "app",
        "dev",
        "cloud",
        "online",
        "site",
        "tech",
        "xyz",
        "top",
        "club",
        "global",
        "science",
        "local",
        "localdomain",
        "lan",
        "internal",
        "intranet",
        "corp",
        "home",
        "priv",
        "private",
        "novalocal",
        "cluster",
        "grid",
    ]
)
COUNTRY_TLDS = frozenset(
    [
        "ac",
        "ad",
        "ae",
        "af",
        "ag",
        "ai",
        "al",
        "am",
        "ao",
        "ar",
        "at",
        "au",
        "az",
        "ba",
        "bb",
        "bd",
        "be",
        "bf",
        "bg",
        "bh",
        "bi",
        "bj",
        "bm",
        "bn",
        "bo",
        "br",
        "bs",
        "bt",
        "bw",
        "by",
        "bz",
        "ca",
        "cc",
        "cd",
        "cf",
        "cg",
        "ch",
        "ci",
        "cl",
        "cm",
        "cn",
        "co",
        "cr",
        "cu",
        "cv",
        "cy",
        "cz",
        "de",
        "dj",
        "dk",
        "dm",
        "do",
        "dz",
        "ec",
        "ee",
        "eg",
        "er",
        "es",
        "et",
        "eu",
        "fi",
        "fj",
        "fo",
        "fr",
        "ga",
        "gd",
        "ge",
        "gh",
        "gi",
        "gl",
        "gm",
        "gn",
        "gr",
        "gt",
        "gy",
        "hk",
        "hn",
        "hr",
        "ht",
        "hu",
        "id",
        "ie",
        "il",
        "im",
        "in",
        "iq",
        "ir",
        "is",
        "it",
        "je",
        "jm",
        "jo",
        "jp",
        "ke",
        "kg",
        "kh",
        "kr",
        "kw",
        "kz",
        "la",
        "lb",
        "lc",
        "li",
        "lk",
        "lr",
        "ls",
        "lt",
        "lu",
        "lv",
        "ly",
        "ma",
        "mc",
        "md",
        "me",
        "mg",
        "mk",
        "ml",
        "mm",
        "mn",
        "mo",
        "mt",
        "mu",
        "mv",
        "mw",
        "mx",
        "my",
        "mz",
        "na",
        "ne",
        "ng",
        "ni",
        "nl",
        "no",
        "np",
        "nz",
        "om",
        "pa",
        "pe",
        "pg",
        "ph",
        "pk",
        "pl",
        "pm",
        "pr",
        "ps",
        "pt",
        "py",
        "qa",
        "re",
        "ro",
        "rs",
        "ru",
        "rw",
        "sa",
        "sc",
        "sd",
        "se",
        "sg",
        "sh",
        "si",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sr",
        "st",
        "sv",
        "sy",
        "sz",
        "td",
        "tg",
        "th",
        "tj",
        "tm",
        "tn",
        "to",
        "tr",
        "tt",
        "tv",
        "tw",
        "tz",
        "ua",
        "ug",
        "uk",
        "us",
        "uy",
        "uz",
        "va",
        "ve",
        "vn",
        "ws",
        "ye",
        "za",
        "zm",
        "zw",
    ]
)
#: Country codes that are also common file extensions: such names need three labels.
_AMBIGUOUS_TLDS = frozenset(
    [
        "ac",
        "ai",
        "am",
        "cc",
        "cf",
        "in",
        "is",
        "md",
        "me",
        "mk",
        "ml",
        "mo",
        "pl",
        "pm",
        "ps",
        "py",
        "rs",
        "sc",
        "sh",
        "so",
        "st",
        "to",
        "tv",
        "ws",
    ]
)
_TLDS = GENERIC_TLDS | COUNTRY_TLDS

_HOSTCHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_WORDCHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_V6CHARS = _HEX | frozenset(":.")
_LOCALCHARS = _ALNUM | frozenset("._%+-")
_FQANCHARS = _WORDCHARS | frozenset("./-")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")

#: Local parts of ``x@host`` that are HTCondor daemon or slot names, not people.
_DAEMON_LOCAL = re.compile(
    r"(?:slot\d+(?:_\d+)*|glidein_\d+(?:_\d+)*|schedd\w*|startd\w*|master\w*|collector\w*|"
    r"negotiator\w*|condor\w*|unauthenticated|unmapped|glidein\w*|monitor\w*|ccb\w*)$",
    re.IGNORECASE,
)
_SLOTISH = re.compile(r"(?:slot\d+(?:_\d+)*|glidein_\d+(?:_\d+)*)$")


class Span(NamedTuple):
    """One entity: ``text[start:end]`` is its value, ``kind`` one of :data:`ENTITY_KINDS`.

    :meth:`EntityScanner.scan` returns plain ``(start, end, kind)`` tuples for speed;
    this type documents their shape (and ``Span(*t)`` names the fields).
    """

    start: int
    end: int
    kind: str


def _valid_ipv4(s: str) -> bool:
    """True for a canonical dotted quad (no leading zeros, each part at most 255)."""
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isdigit() or len(p) > 3 or (len(p) > 1 and p[0] == "0") or int(p) > 255:
            return False
    return True


_V6_OK: dict[str, bool] = {}


def _valid_ipv6(value: str) -> bool:
    """True if ``value`` is an IPv6 address (cached: logs repeat the same few)."""
    ok = _V6_OK.get(value)
    if ok is None:
        try:
            ipaddress.IPv6Address(value)
            ok = True
        except ValueError:
            ok = False
        if len(_V6_OK) > 50_000:
            _V6_OK.clear()
        _V6_OK[value] = ok
    return ok


def address_run(text: str, start: int, end: int) -> tuple[int, int]:
    """The run of address characters (hex digits, ``:`` and ``.``) around ``text[start:end]``.

    Whether the scanners find an address, and where it starts and ends, depends only on
    this run and the one character on each side of it (``2001:db8::110.1.2.3`` is one
    IPv6 address; after a word character it is none, and its dotted tail is then an
    IPv4 address). So a replacement that touches the run (within one character) can
    change what is found there: the anonymizer makes such addresses tokens, and the
    de-anonymizer leaves addresses whose run touches a token alone.
    """
    chars = _V6CHARS
    s = start
    while s > 0 and text[s - 1] in chars:
        s -= 1
    e = end
    n = len(text)
    while e < n and text[e] in chars:
        e += 1
    return s, e


def is_host_name(name: str) -> bool:
    """True if ``name`` looks like a fully qualified host name (labels and a known TLD)."""
    labels = name.split(".")
    if len(labels) < 2:
        return False
    tld = labels[-1].lower()
    if tld not in _TLDS or (tld in _AMBIGUOUS_TLDS and len(labels) < 3):
        return False
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
    return True


# ---------------------------------------------------------------------------------
# Discovery


@dataclass
class Discovered:
    """Values learned from context: user and group names and unqualified host names.

    :attr:`version` grows whenever something new is learned, so whoever builds a scanner
    from these values knows when to rebuild it.
    """

    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    version: int = 0

    def add(self, kind: str, value: str) -> None:
        """Record ``value`` as a ``user``, ``group`` or ``host``."""
        target = {USER: self.users, GROUP: self.groups, HOST: self.hosts}[kind]
        if value and value not in target:
            target.add(value)
            self.version += 1

    def update(self, other: Discovered) -> None:
        """Add everything ``other`` learned."""
        for kind, values in ((USER, other.users), (GROUP, other.groups), (HOST, other.hosts)):
            for v in values:
                self.add(kind, v)

    def literals(self) -> dict[str, str]:
        """Every learned value mapped to its kind (host over user over group).

        Fully qualified host names are left out: the scanner finds those anyway.
        """
        out: dict[str, str] = {}
        for v in self.groups:
            out[v] = GROUP
        for v in self.users:
            out[v] = USER
        for v in self.hosts:
            if not is_host_name(v):
                out[v] = HOST
        return out


_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
_HOSTV = r"[A-Za-z0-9][A-Za-z0-9.-]*"
# Discovery runs a few "hub" expressions, each starting with one literal character the
# regex engine skips to fast ('=', '/', a line start), then looking back for the key.
# That is much cheaper than searching the text once per key.
_DISCOVER_EQ = re.compile(
    "=(?:"
    + "|".join(
        [
            r"(?<=HOSTNAME=)(?P<hn>" + _HOSTV + ")",
            r"(?<=alias=)(?P<alias>" + _HOSTV + ")",
            r"(?<=USER=)(?P<envuser>[A-Za-z_][A-Za-z0-9_.-]*)",
            r"(?<=LOGNAME=)(?P<logname>[A-Za-z_][A-Za-z0-9_.-]*)",
            r"(?<=Owner =) \"(?P<owner>[^\"@\s]+)\"",
            r"(?<=User =) \"(?P<user>[^\"@\s]+)[\"@]",
            r"(?<=Submitter =) \"(?P<submitter>[^\"@\s]+)[\"@]",
            r"(?<=AccountingGroup =) \"[^\"\s.]*\.(?P<acct>[^\"\s]+)\"",
            r"(?<=Machine =) \"(?P<machine>[^\"@\s]+)\"",
            r"(?<=RemoteHost =) \"(?:[^\"@]*@)*(?P<rhost>[^\"@\s]+)\"",
        ]
    )
    + ")"
)
_DISCOVER_EQ_KINDS = (HOST, HOST, USER, USER, USER, USER, USER, USER, HOST, HOST)
_DISCOVER_SLASH = re.compile(
    r"/(?:home/(?P<home>"
    + _NAME
    + r")|users/(?P<users>"
    + _NAME
    + r")|user/[a-z]/(?P<afs>"
    + _NAME
    + "))"
)
_DISCOVER_LINE = re.compile(
    r"\n(?:As: (?P<as>[^\r\n]*)|Running on (?P<run>[^\s]+)|System: \S+ (?P<sys>[^\s]+))"
)
#: (literal, pattern with one group, kind): the remaining keys, each its own search.
_DISCOVERY_RULES: list[tuple[str, str, str]] = [
    ("Running job as user ", r"Running job as user (" + _NAME + ")", USER),
    ("Remote owner is ", r"Remote owner is ([^@\s]+)", USER),
    ("slot", r"slot\d+(?:_\d+)*@(?:glidein_\d+(?:_\d+)*@)?(" + _HOSTV + r")(?![\w@])", HOST),
    ("glidein_", r"glidein_\d+(?:_\d+)*@(" + _HOSTV + r")(?![\w@])", HOST),
]
_DISCOVERY = [(lit, re.compile(p), kind) for lit, p, kind in _DISCOVERY_RULES]
_ID_NAMES = re.compile(
    r"(?P<kind>uid|gid|euid|egid|groups)=[^\s(]*\((?P<name>[^)]+)\)|,[^,(\s]*\((?P<more>[^)]+)\)"
)
#: Learned values that are our own tokens (anonymizing twice) are not learned again.
_TOKENISH = re.compile(r"[hugnedfsjix]-[a-z0-9]{1,16}-[a-z2-7]{20,}")


def _learn_identity(found: Discovered, line: str) -> None:
    for idm in _ID_NAMES.finditer(line):
        if idm.group("more"):
            found.add(GROUP, idm.group("more"))
        elif idm.group("kind") in ("uid", "euid"):
            found.add(USER, idm.group("name"))
        else:
            found.add(GROUP, idm.group("name"))


def discover(text: str, into: Discovered | None = None) -> Discovered:
    """Learn user, group and host names from ``text``'s context (see the module doc)."""
    found = into if into is not None else Discovered()
    add = found.add

    def learn(kind: str, v: str) -> None:
        if v and not _TOKENISH.match(v):
            add(kind, v.rstrip(".-") if kind == HOST else v)

    # many repeats of few values: findall (no match objects) and a set first
    for groups in set(_DISCOVER_EQ.findall(text)):
        for kind, v in zip(_DISCOVER_EQ_KINDS, groups):
            if v:
                learn(kind, v)
    if "/" in text:
        for groups in set(_DISCOVER_SLASH.findall(text)):
            for v in groups:
                if v:
                    learn(USER, v)
    lines = _DISCOVER_LINE.findall("\n" + text[:200]) if not text.startswith("\n") else []
    for as_line, run, sys_host in set(_DISCOVER_LINE.findall(text)) | set(lines):
        if as_line:
            _learn_identity(found, as_line)
        for v in (run, sys_host):
            if v:
                learn(HOST, v)
    for literal, rx, kind in _DISCOVERY:
        if literal in text:
            for v in set(rx.findall(text)):
                learn(kind, v)
    return found


# ---------------------------------------------------------------------------------
# The scanner


def _trie(words: Iterable[str]) -> str:
    """A regex alternation of ``words`` shaped as a trie (shared prefixes factored out)."""
    root: dict = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict) -> str:
        alts = [re.escape(ch) + render(node[ch]) for ch in sorted(k for k in node if k)]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return render(root)


_DOT = re.compile(
    r"\.(?:(?P<tld>"
    + "|".join(_trie(sorted(f(t) for t in _TLDS)) for f in (str.lower, str.upper, str.title))
    + r")"
    r"(?![\w-]|\.[A-Za-z0-9])|(?P<ip>\d{1,3}\.\d{1,3}\.\d{1,3})(?![\w]|\.\d))"
)
_AT = re.compile(r"@(?=[A-Za-z0-9])")
# Matched on the reversed text: how far a host name or an octet reaches to the left.
_BACK_HOST = re.compile(r"[A-Za-z0-9.-]*")
_BACK_DIGITS = re.compile(r"[0-9]{0,3}")
_COLON = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_V6DASH_BODY = r"[0-9A-Fa-f]{0,4}(?:-[0-9A-Fa-f]{0,4}){2,7}"
_V6DASH_BRACKET = re.compile(r"\[(?P<v>" + _V6DASH_BODY + r")(?=\]|%5[dD])")
_V6DASH_ESCAPED = re.compile(r"%5[bB](?P<v>" + _V6DASH_BODY + r")(?=\]|%5[dD])")
# A DN value runs to the next '/', a quote, a line end or a ', ' (a list or a sentence).
_DNVAL = r"(?:[^/\"\n\r,<>=]|,(?![/ ]))*"
_DN_SLASH_TRIGGER = re.compile(r"/(?:DC|CN|C|OU|O|L|ST|UID)=")
# '=' first (a literal), then look back for the key of a comma-form DN
_DN_COMMA_TRIGGER = re.compile(r"=(?:(?<=CN=)|(?<=OU=)|(?<=DC=))")
_DN_SLASH = re.compile(
    r"/(?:DC|C|O|OU|CN|L|ST|UID)=" + _DNVAL + r"(?:/[A-Za-z][A-Za-z0-9.]*=" + _DNVAL + r")+"
)
_DN_COMMA = re.compile(
    r"(?:CN|OU|O|DC|C|L|ST|UID)=[^,=\n\r\"<>/]+"
    # country and domain components never hold spaces: they end at one
    r"(?:,[ ]?(?:C|DC)=[A-Za-z0-9.-]+|,[ ]?(?:CN|OU|O|L|ST|UID|E|emailAddress)=[^,=\n\r\"<>/]+)+"
)
_FQAN_TRIGGER = re.compile(r"/Role=[\w.-]+(?:/Capability=[\w.-]+)?")
_SECRET_VALUE = r"[ \t]*(?P<v>\"[^\"\n]*\"|'[^'\n]*'|[^\s\"';,&<>)]+)"
_SECRET_TAIL = r"[a-z0-9_]*\"?[ \t]*[=:]" + _SECRET_VALUE
#: Scanned over the lower-cased text; each starts with a literal word.
_SECRET_RULES = [
    re.compile(r"token" + _SECRET_TAIL),
    re.compile(r"pass(?:w|phrase)" + _SECRET_TAIL),
    re.compile(r"secret" + _SECRET_TAIL),
    re.compile(r"credential" + _SECRET_TAIL),
    re.compile(
        r"key(?:(?<=api_key)|(?<=apikey)|(?<=access_key)|(?<=accesskey)|(?<=private_key))"
        + _SECRET_TAIL
    ),
]
_SECRET_RULES_ANYCASE = [re.compile(rx.pattern, re.IGNORECASE) for rx in _SECRET_RULES]
#: Key suffixes that name a file, directory or id rather than hold a secret.
_NOT_SECRET_SUFFIX = re.compile(
    r"(?i)(?:id|file|dir|directory|path|location|name|url|type|s|size|len|length)$"
)
_BEARER = re.compile(r"Bearer[ \t]+(?P<v>[A-Za-z0-9\-._~+/]{8,}=*)")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]{1,40}-----.*?-----END [A-Z0-9 ]{1,40}-----", re.DOTALL)
_USERINFO = re.compile(r"[^/\s:@\"'<>]+:[^/\s@\"'<>]+")
_X509UP = re.compile(r"x509up_u(?P<v>\d+)")
# One pass over the '=' signs: uid=/gid= numbers, groups= lists, and job id assignments
# (SLURM_JOB_ID=..., PBS_JOBID=..., GlobalJobId = "...").
_EQ_HUB = re.compile(
    r"=(?:(?<=[ug]id=)(?P<idv>\d+)|(?<=groups=)(?P<gl>[^\s]+)"
    r"|(?:(?<=JOB_ID=)|(?<=JOBID=)|(?<=JobId=)|(?<=JobID=)|(?<=JobId =)|(?<=JobID =))(?P<jq>[ \t]*\"?))"
)
_GROUP_ITEM = re.compile(r"(?P<id>\d+)(?:\((?P<name>[^)]*)\))?")
_JOB_KEYS = frozenset(
    [
        "SLURM_JOB_ID",
        "SLURM_JOBID",
        "SLURM_ARRAY_JOB_ID",
        "PBS_JOBID",
        "LSB_JOBID",
        "JOB_ID",
        "SGE_JOB_ID",
        "GRID_JOBID",
        "GLOBUS_JOBID",
        "GlobalJobId",
        "RoutedFromJobId",
        "RoutedToJobId",
        "GridJobId",
        "GridJobID",
        "RemoteJobId",
        "CEJobId",
        "BatchJobId",
    ]
)

Add = Callable[[tuple[int, int, str]], None]
#: Verdicts on candidate host names and dotted quads, shared by all scanners (capped).
_HOST_OK: dict[str, bool] = {}
_IP_OK: dict[str, bool] = {}


def _after_escape(text: str, start: int) -> bool:
    """True if ``text[start]`` follows a ``%XX`` escape (``%3d128.104.100.30``)."""
    return start >= 3 and text[start - 3] == "%" and _PCT.match(text, start - 3) is not None


def _is_not_secret_key(key: str) -> bool:
    """True when a key such as ``TOKEN_FILE`` or ``credential_id`` names a file, dir or id."""
    low = key.lower()
    if low.endswith(("token", "password", "passwd", "secret", "passphrase", "credential", "key")):
        return False
    return _NOT_SECRET_SUFFIX.search(key) is not None


class EntityScanner:
    """Finds the entities in a text. Build one per set of learned values (cheap to rebuild).

    Args:
        literals: learned values mapped to their kind (see :meth:`Discovered.literals`).
        kinds: the kinds to report (default: all). Kinds left out are not searched for.
    """

    #: With more learned values than this, one alternation is faster than a scan each.
    MAX_SEPARATE_LITERALS = 10

    def __init__(
        self, literals: dict[str, str] | None = None, kinds: Iterable[str] | None = None
    ) -> None:
        self.kinds = frozenset(kinds) if kinds is not None else frozenset(ENTITY_KINDS)
        self.literals = {
            k: v for k, v in (literals or {}).items() if len(k) >= 2 and v in self.kinds
        }
        self._literal_rx: list[re.Pattern[str]] = []
        if self.literals:
            if len(self.literals) <= self.MAX_SEPARATE_LITERALS:
                self._literal_rx = [
                    re.compile(re.escape(v) + r"(?![A-Za-z0-9])")
                    for v in sorted(self.literals, key=len, reverse=True)
                ]
            else:
                self._literal_rx = [re.compile(_literal_alternatives(self.literals))]

    def scan(self, text: str) -> list[tuple[int, int, str]]:
        """Every entity in ``text`` as ``(start, end, kind)``, in order, without overlaps.

        Where entities overlap, the one starting first wins, and of two starting at the
        same place the longer.
        """
        spans: list[tuple[int, int, str]] = []
        add = spans.append
        kinds = self.kinds
        if "." in text and (HOST in kinds or IPV4 in kinds):
            self._scan_dots(text, add)
        if (EMAIL in kinds or SECRET in kinds) and "@" in text:
            self._scan_at(text, add, EMAIL in kinds)
        if IPV6 in kinds and ":" in text:
            self._scan_colons(text, add)
        if IPV6DASH in kinds:
            self._scan_v6dash(text, add)
        if DN in kinds:
            self._scan_dns(text, add)
        if FQAN in kinds and "/Role=" in text:
            self._scan_fqans(text, add)
        if SECRET in kinds:
            self._scan_secrets(text, add)  # (passwords in URLs: in the '@' pass)
        if UID in kinds or GROUP in kinds or JOBID in kinds:
            self._scan_ids(text, add)
        if self._literal_rx:
            self._scan_literals(text, add)
        if not spans:
            return spans
        spans.sort()
        out: list[tuple[int, int, str]] = []
        last_start = last_end = -1
        for sp in spans:
            s, e = sp[0], sp[1]
            if s >= last_end:
                out.append(sp)
                last_start, last_end = s, e
            elif s == last_start and e > last_end:  # same start: the longer one wins
                out[-1] = sp
                last_end = e
        return out

    # -- the passes ----------------------------------------------------------------
    def _scan_dots(self, text: str, add: Add) -> None:
        search = _DOT.search
        words = _WORDCHARS
        host_ok = _HOST_OK
        ip_ok = _IP_OK
        want_host = HOST in self.kinds
        want_ip = IPV4 in self.kinds
        rev = text[::-1]
        n = len(text)
        back_host = _BACK_HOST.match
        back_digits = _BACK_DIGITS.match
        pos = 0
        while True:
            m = search(text, pos)
            if m is None:
                return
            dot = m.start()
            pos = m.end()
            if m.lastgroup == "ip":
                if not want_ip:
                    continue
                s = n - back_digits(rev, n - dot).end()
                if s == dot:
                    continue
                if (
                    s > 0
                    and (text[s - 1] in words or text[s - 1] == ".")
                    and not _after_escape(text, s)
                ):
                    continue
                value = text[s:pos]
                ok = ip_ok.get(value)
                if ok is None:
                    if len(ip_ok) > 100_000:
                        ip_ok.clear()
                    ok = ip_ok[value] = _valid_ipv4(value)
                if ok:
                    add((s, pos, IPV4))
                continue
            if not want_host:
                continue
            s = n - back_host(rev, n - dot).end()
            while s < dot and (text[s] == "." or text[s] == "-"):
                s += 1
            if s >= dot or (s > 0 and text[s - 1] in words and not _after_escape(text, s)):
                continue
            value = text[s:pos]
            ok = host_ok.get(value)
            if ok is None:
                if len(host_ok) > 100_000:
                    host_ok.clear()
                ok = host_ok[value] = is_host_name(value)
            if ok:
                add((s, pos, HOST))

    @staticmethod
    def _scan_at(text: str, add: Add, emails: bool = True) -> None:
        localchars = _LOCALCHARS
        hostchars = _HOSTCHARS
        words = _WORDCHARS
        n = len(text)
        for m in _AT.finditer(text):
            at = m.start()
            s = at
            while s > 0 and at - s < 64 and text[s - 1] in localchars:
                s -= 1
            while s < at and (text[s] == "." or text[s] == "-"):
                s += 1
            if s == at or (s > 0 and text[s - 1] in words and not _after_escape(text, s)):
                continue
            if s > 0 and text[s - 1] == ":":
                # scheme://user:password@host: the user and password are a secret
                scheme = text.rfind("://", max(0, s - 256), s)
                if scheme >= 0 and _USERINFO.fullmatch(text, scheme + 3, at):
                    add((scheme + 3, at, SECRET))
                    continue
            if not emails or _DAEMON_LOCAL.match(text, s, at):
                continue
            e = at + 1
            while e < n and text[e] in hostchars:
                e += 1
            while e > at + 1 and (text[e - 1] == "." or text[e - 1] == "-"):
                e -= 1
            if e < n and text[e] in words:
                continue
            dot = text.rfind(".", at + 1, e)
            if dot < 0:
                continue
            tld = text[dot + 1 : e]
            if 2 <= len(tld) <= 24 and tld.isalpha():
                add((s, e, EMAIL))

    @staticmethod
    def _scan_colons(text: str, add: Add) -> None:
        search = _COLON.search
        hexch = _HEX
        words = _WORDCHARS
        v6chars = _V6CHARS
        n = len(text)
        pos = 0
        while True:
            m = search(text, pos)
            if m is None:
                return
            c = m.start()
            s = c
            while s > 0 and (text[s - 1] in hexch or text[s - 1] == ":"):
                s -= 1
            if s > 0 and text[s - 1] == "%" and c - s >= 2:
                s += 2  # the hex digits of a %XX escape are not part of an address
            if text[s] == ":" and text[s + 1] != ":":
                s += 1  # a lone ':' before the address separates it from a word
            e = m.end()
            while e < n and text[e] in v6chars:
                e += 1
            pos = e
            if (
                s > 0
                and (text[s - 1] in words or text[s - 1] == ".")
                and not _after_escape(text, s)
            ):
                continue
            while e > s and text[e - 1] == ".":
                e -= 1
            if text[e - 1] == ":" and text[e - 2 : e] != "::":
                e -= 1
            if e < n and text[e] in words:
                continue
            value = text[s:e]
            colons = value.count(":")
            if colons < 2 or (colons < 7 and "::" not in value) or not _valid_ipv6(value):
                continue
            add((s, e, IPV6))

    @staticmethod
    def _scan_v6dash(text: str, add: Add) -> None:
        for rx, literal in ((_V6DASH_BRACKET, "["), (_V6DASH_ESCAPED, "%5")):
            if literal not in text:
                continue
            for m in rx.finditer(text):
                v = m.group("v").replace("-", ":")
                if (v.count(":") == 7 or "::" in v) and _valid_ipv6(v):
                    add((m.start("v"), m.end("v"), IPV6DASH))

    @staticmethod
    def _scan_dns(text: str, add: Add) -> None:
        words = _WORDCHARS
        # Both triggers start with one literal character ('/' and '='), which the regex
        # engine skips to fast: cheaper than asking for each DN key in turn.
        for trigger, full, back in (
            (_DN_SLASH_TRIGGER, _DN_SLASH, 0),
            (_DN_COMMA_TRIGGER, _DN_COMMA, 2),
        ):
            pos = 0
            search = trigger.search
            while True:
                m = search(text, pos)
                if m is None:
                    break
                s = m.start() - back  # the comma form's trigger is the '=' after the key
                pos = m.end()
                if s > 0 and (text[s - 1] in words or (full is _DN_COMMA and text[s - 1] == "/")):
                    continue
                d = full.match(text, s)
                if d is None:
                    continue
                e = d.end()
                while e > s and text[e - 1] in " \t":
                    e -= 1
                add((s, e, DN))
                pos = e

    @staticmethod
    def _scan_fqans(text: str, add: Add) -> None:
        fq = _FQANCHARS
        for m in _FQAN_TRIGGER.finditer(text):
            s = m.start()
            while s > 0 and text[s - 1] in fq:
                s -= 1
            while s < m.start() and text[s] != "/":
                s += 1
            if s < m.start():  # there is a VO before /Role=
                add((s, m.end(), FQAN))

    @staticmethod
    def _scan_secrets(text: str, add: Add) -> None:
        words = _WORDCHARS
        if text.isascii():
            low = text.lower()
            rules = _SECRET_RULES
        else:
            low = text
            rules = _SECRET_RULES_ANYCASE
        for rx in rules:
            for m in rx.finditer(low):
                ks = m.start()
                while ks > 0 and text[ks - 1] in words:
                    ks -= 1
                ke = m.start()
                while text[ke] in words:
                    ke += 1
                if _is_not_secret_key(text[ks:ke]):
                    continue
                s, e = m.start("v"), m.end("v")
                if e - s >= 2 and text[s] in "\"'" and text[e - 1] == text[s]:
                    s, e = s + 1, e - 1
                if e > s:
                    add((s, e, SECRET))
        if "Bearer" in text:
            for m in _BEARER.finditer(text):
                add((m.start("v"), m.end("v"), SECRET))
        if "eyJ" in text:
            for m in _JWT.finditer(text):
                add((m.start(), m.end(), SECRET))
        if "-----BEGIN" in text:
            for m in _PEM.finditer(text):
                add((m.start(), m.end(), SECRET))

    def _scan_ids(self, text: str, add: Add) -> None:
        """uid/gid numbers, ``groups=`` lists and foreign job ids: one pass over the '=' signs."""
        kinds = self.kinds
        want_uid = UID in kinds
        want_job = JOBID in kinds
        literals = self.literals
        words = _WORDCHARS
        if want_uid and "x509up_u" in text:
            for m in _X509UP.finditer(text):
                add((m.start("v"), m.end("v"), UID))
        n = len(text)
        for m in _EQ_HUB.finditer(text):
            g = m.lastgroup
            if g == "idv":
                if not want_uid:
                    continue
                st = m.start() - 3  # the 'u' or 'g' of uid=/gid=
                if (
                    st > 0
                    and text[st - 1] in words
                    and not (text[st - 1] == "e" and (st < 2 or text[st - 2] not in words))
                ):
                    continue
                add((m.start(g), m.end(g), UID))
            elif g == "gl":
                base = m.start(g)
                for item in _GROUP_ITEM.finditer(m.group(g)):
                    if want_uid:
                        add((base + item.start("id"), base + item.end("id"), UID))
                    name = item.group("name")
                    kind = literals.get(name) if name else None
                    if kind is not None:
                        add((base + item.start("name"), base + item.end("name"), kind))
            elif g == "jq" and want_job:
                # the key: the identifier before the '=' (and the spaces of `Key = "value"`)
                k = m.start()
                while k > 0 and text[k - 1] in " \t":
                    k -= 1
                ks = k
                while ks > 0 and text[ks - 1] in words:
                    ks -= 1
                key = text[ks:k]
                if key not in _JOB_KEYS and not key.endswith("SLURM_JOB_ID"):
                    continue
                vs = m.end(g)
                if m.group(g).endswith('"'):
                    e = text.find('"', vs)
                    if e < 0:
                        continue
                else:
                    e = vs
                    while e < n and text[e] not in " \t\r\n\"';,&":
                        e += 1
                if e > vs:
                    add((vs, e, JOBID))

    def _scan_literals(self, text: str, add: Add) -> None:
        literals = self.literals
        alnum = _ALNUM
        for rx in self._literal_rx:
            for m in rx.finditer(text):
                s = m.start()
                if s > 0 and text[s - 1] in alnum:
                    continue
                kind = literals.get(m.group())
                if kind is not None:
                    add((s, m.end(), kind))


def _literal_alternatives(values: Iterable[str]) -> str:
    """One regex matching any of ``values`` (a trie per first character)."""
    by_first: dict[str, list[str]] = {}
    for v in values:
        if v:
            by_first.setdefault(v[0], []).append(v[1:])
    parts = []
    for ch in sorted(by_first):
        rests = by_first[ch]
        rest = _trie(r for r in rests if r)
        if "" in rests and rest:
            rest = f"(?:{rest})?"
        parts.append(re.escape(ch) + rest + r"(?![A-Za-z0-9])")
    return "|".join(parts)
