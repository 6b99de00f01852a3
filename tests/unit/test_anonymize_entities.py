"""The finders: each kind of entity in the spellings glidein logs use, and what is not one."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gwms.monitor.anonymize import entities as E
from gwms.monitor.anonymize.entities import Discovered, EntityScanner, discover, is_host_name

SCANNER = EntityScanner({"c705-23": E.HOST, "alice": E.USER, "cmsplt": E.GROUP})


def found(text: str, scanner: EntityScanner = SCANNER) -> list[tuple[str, str]]:
    return [(kind, text[s:e]) for s, e, kind in scanner.scan(text)]


SINFUL = (
    "<128.105.68.214:9618?addrs=128.105.68.214-9618+[2607-f388-2200-100-1e6a-7aff-fe26-c57b]-9618"
    "&alias=e301.example.edu&noUDP&sock=startd_7430_f0c2>"
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            SINFUL,
            [
                (E.IPV4, "128.105.68.214"),
                (E.IPV4, "128.105.68.214"),
                (E.IPV6DASH, "2607-f388-2200-100-1e6a-7aff-fe26-c57b"),
                (E.HOST, "e301.example.edu"),
            ],
        ),
        (
            "CCBID=128.104.100.30:9640%3faddrs%3d128.104.100.30-9640#2895865",
            [(E.IPV4, "128.104.100.30"), (E.IPV4, "128.104.100.30")],
        ),
        ("addrs%3d%5B2001-db8--1%5D-9618", [(E.IPV6DASH, "2001-db8--1")]),
        (
            "fe80::1%eth0 and [2001:db8::1]:9618 and ::ffff:10.1.2.3",
            [(E.IPV6, "fe80::1"), (E.IPV6, "2001:db8::1"), (E.IPV6, "::ffff:10.1.2.3")],
        ),
        ("Remote owner is alice@submit.example.edu", [(E.EMAIL, "alice@submit.example.edu")]),
        ("slot1_1@glidein_1234_567@c705-23: update", [(E.HOST, "c705-23")]),
        (
            "schedd_glideins5@gfactory-2.opensciencegrid.org",
            [(E.HOST, "gfactory-2.opensciencegrid.org")],
        ),
        (
            "subject /DC=org/DC=cilogon/C=US/O=Univ of X/CN=Alice Smith A123, issued",
            [(E.DN, "/DC=org/DC=cilogon/C=US/O=Univ of X/CN=Alice Smith A123")],
        ),
        (
            "issuer: CN=Alice Smith,OU=People,O=CERN,C=CH today",
            [(E.DN, "CN=Alice Smith,OU=People,O=CERN,C=CH")],
        ),
        (
            'x509UserProxyFQAN = "/DC=ch/CN=Bob,/cms/Role=NULL/Capability=NULL"',
            [(E.DN, "/DC=ch/CN=Bob"), (E.FQAN, "/cms/Role=NULL/Capability=NULL")],
        ),
        ("FQAN /atlas/usatlas/Role=production ok", [(E.FQAN, "/atlas/usatlas/Role=production")]),
        ("BEARER_TOKEN=abc123def", [(E.SECRET, "abc123def")]),
        ('{"access_token": "s3cr3t-value"}', [(E.SECRET, "s3cr3t-value")]),
        ("export GLIDEIN_PASSWORD='p w d'", [(E.SECRET, "p w d")]),
        ("Authorization: Bearer AbC.dEf-GhI_123", [(E.SECRET, "AbC.dEf-GhI_123")]),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end",
            [(E.SECRET, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")],
        ),
        (
            "proxy:\n-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
            [(E.SECRET, "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----")],
        ),
        (
            "https://bob:hunter2@host.example.org/x",
            [(E.SECRET, "bob:hunter2"), (E.HOST, "host.example.org")],
        ),
        ("owner:carol@example.edu", [(E.EMAIL, "carol@example.edu")]),
        (
            "_CONDOR_SLURM_JOB_ID=4711 PBS_JOBID=55.server",
            [(E.JOBID, "4711"), (E.JOBID, "55.server")],
        ),
        (
            'GlobalJobId = "ce.example.org#12.0#1700000000"',
            [(E.JOBID, "ce.example.org#12.0#1700000000")],
        ),
        (
            "As: uid=1000(alice) gid=2000(cmsplt) groups=2000(cmsplt),10(wheel)",
            [
                (E.UID, "1000"),
                (E.USER, "alice"),
                (E.UID, "2000"),
                (E.GROUP, "cmsplt"),
                (E.UID, "2000"),
                (E.GROUP, "cmsplt"),
                (E.UID, "10"),
            ],
        ),
        ("X509_USER_PROXY=/tmp/x509up_u1000", [(E.UID, "1000")]),
        ("HOME=/home/alice/work", [(E.USER, "alice")]),
        (
            "WN01.EXAMPLE.EDU and Wn02.Example.Edu",
            [(E.HOST, "WN01.EXAMPLE.EDU"), (E.HOST, "Wn02.Example.Edu")],
        ),
        (
            "squid.cyfronet.pl:3128 ip-10-0-0-1.ec2.internal",
            [(E.HOST, "squid.cyfronet.pl"), (E.HOST, "ip-10-0-0-1.ec2.internal")],
        ),
    ],
)
def test_finds(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "05/12/24 10:23:45 (pid:1234) Daemons::StartAllDaemons all daemons were started",
        "glidein_startup.sh condor_config.local README.md run.py lib.so.1 setup.sh job.1234.0.out",
        "HTCondor 23.0.3 kernel 4.18.0-513.5.1.el8_9.x86_64 v1.2.3.4 010.1.2.3 256.1.1.1",
        "std::string a::b::c 12:34:56",
        "glidein_credential_id = 'cred_1' TOKEN_FILE=/tmp/tok PASSED=1 tokens=5",
        "pid=123 uuid=5 MY_JOB_ID=3 unauthenticated@unmapped alicex xalice",
        "glidein_uuid      = '8a6e5a4e-2a4b-4b52-9e51-0c7b8e1f2d3c'",
        "=== Glidein ending Sun May 12 11:00:05 UTC 2024 (1715511605) with code 0 after 3605 ===",
    ],
)
def test_does_not_find(text: str) -> None:
    assert found(text) == []


def test_kinds_can_be_restricted() -> None:
    only_ips = EntityScanner(kinds={E.IPV4, E.IPV6, E.IPV6DASH})
    assert {k for k, _ in found(SINFUL + " alice@x.org", only_ips)} == {E.IPV4, E.IPV6DASH}


def test_host_names() -> None:
    assert is_host_name("wn01.example.edu") and is_host_name("ce.cyfronet.pl")
    assert not is_host_name("cyfronet.pl")  # a file-extension-like TLD needs three labels
    assert not is_host_name("run.sh") and not is_host_name("MasterLog.monitor")


def test_discover_learns_context_values() -> None:
    text = (
        "Running on c705-23\n"
        "As: uid=1000(alice) gid=1001(cmsplt) groups=1001(cmsplt),10(wheel)\n"
        "05/12/24 (pid:1) slot1@glidein_1_2@wnshort: alive\n"
        'Owner = "carol"\nUser = "dave@submit.example.edu"\nAccountingGroup = "group_cms.erin"\n'
        "HOME=/home/frank\nalias=shorty&noUDP\nRunning job as user gina\n"
        "not at line start: Running on fakehost\n"
    )
    d = discover(text)
    assert d.users == {"alice", "carol", "dave", "erin", "frank", "gina"}
    assert d.groups == {"cmsplt", "wheel"}
    assert d.hosts == {"c705-23", "wnshort", "shorty"}
    lits = d.literals()
    assert lits["c705-23"] == E.HOST and lits["alice"] == E.USER
    before = d.version
    discover(text, d)
    assert d.version == before  # nothing new


def test_many_learned_values_use_one_expression() -> None:
    d = Discovered()
    for i in range(40):
        d.add(E.USER, f"user{i:02d}")
    scanner = EntityScanner(d.literals())
    assert found("user07 and user39, not user40 nor xuser01", scanner) == [
        (E.USER, "user07"),
        (E.USER, "user39"),
    ]


@settings(max_examples=100, deadline=None)
@given(
    a=st.ip_addresses(v=4),
    b=st.ip_addresses(v=6),
    sep=st.sampled_from([" ", ",", "(", "<", "=", "\n"]),
)
def test_any_address_is_found(a: ipaddress.IPv4Address, b: ipaddress.IPv6Address, sep: str) -> None:
    text = f"x{sep}{a}{sep}[{b}]:9618 addrs={a}-9618+[{str(b).replace(':', '-')}]-9618"
    got = found(text, EntityScanner(kinds={E.IPV4, E.IPV6, E.IPV6DASH}))
    assert (E.IPV4, str(a)) in got
    assert (E.IPV6DASH, str(b).replace(":", "-")) in got
    assert (E.IPV6, str(b)) in got


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_spans_are_ordered_and_disjoint(text: str) -> None:
    spans = SCANNER.scan(text)
    for (s1, e1, _), (s2, e2, _) in itertools.pairwise(spans):
        assert s1 < e1 <= s2 < e2
