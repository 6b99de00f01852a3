"""Realistic glidein ``.out``/``.err`` files in the original's exact format, for tests and benchmarks.

Each :class:`SampleJob` is made from a seed and a shared :class:`SampleWorld` (sites,
worker nodes, users, addresses), so the same user or host appears in many jobs, which is
what consistency tests need. The job records every identifying value it planted
(:class:`Planted`) and what its ``.out`` summary must parse to (:attr:`SampleJob.expected`).

What the files hold, as the original writes them:

- ``.out``: ``Starting glidein_startup.sh at ...``, the ``key = 'value'`` header,
  ``Running on``, ``System:``, ``As:``, the markers (last script, condor start/end, stats
  blocks with ``Total ... jobs`` lines, activations, glidein ending) and the XML description.
- ``.err``: warnings, an environment dump with secrets, then every daemon log as a
  gzip | base64 section (``MasterLog``, ``StartdLog``, ``StarterLog``,
  ``StarterLog.slot1_1`` ..., the ``.monitor`` logs, ``StartdHistoryLog``, ``GlideinLog``)
  and the encoded XML summary. Options give 60- or 76-column base64, several gzip members
  per section, header prefixes, ``==== }`` trailers and truncated sections.

Typical use::

    world = make_world(7)
    job = make_job(world, seed=1, cluster=1234, proc=0)
    out_path, err_path = write_job(tmp_path, job)
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gwms.monitor.sections import (
    DEFAULT_HEADER,
    XML_END_MARKER,
    XML_START_MARKER,
    GzipHeader,
    base64_lines,
    gzip_member_bytes,
)

__all__ = [
    "ALL_SECTION_NAMES",
    "COLLECTOR_HOST",
    "FACTORY_HOST",
    "Planted",
    "SampleJob",
    "SampleSite",
    "SampleWorld",
    "job_paths",
    "make_job",
    "make_world",
    "write_job",
    "write_tree",
]

#: Every section name the generator can write (StarterLog.slot1_1/slot1_2 stand for slots).
ALL_SECTION_NAMES = (
    "MasterLog",
    "StartdLog",
    "StarterLog",
    "StarterLog.slot1_1",
    "StarterLog.slot1_2",
    "MasterLog.monitor",
    "StartdLog.monitor",
    "StarterLog.monitor",
    "StartdHistoryLog",
    "GlideinLog",
    "XML",
)

_FIRST = [
    "anna",
    "marek",
    "sheng",
    "lucia",
    "phuong",
    "ralf",
    "keiko",
    "dana",
    "emil",
    "tomas",
    "ingrid",
    "oscar",
    "priya",
    "yusuf",
    "greta",
    "hiro",
    "nadia",
    "bruno",
    "alma",
    "felix",
]
_LAST = [
    "johnson",
    "kowalski",
    "chen",
    "garcia",
    "nguyen",
    "mueller",
    "otani",
    "fischer",
    "brandt",
    "novak",
    "lindqvist",
    "moreau",
    "raman",
    "demir",
    "vogel",
    "sato",
    "haddad",
    "costa",
    "berg",
    "wagner",
]
_SITES = [
    ("Wisconsin", "chtc.wisc.edu", "OSG_US_Wisconsin_CHTC", "University of Wisconsin-Madison"),
    ("Nebraska", "unl.edu", "CMSHTPC_T2_US_Nebraska_Red", "University of Nebraska-Lincoln"),
    ("CERN", "cern.ch", "CMS_T0_CH_CERN_ce503", "CERN"),
    ("DESY", "desy.de", "CMSHTPC_T2_DE_DESY_grid", "Deutsches Elektronen-Synchrotron"),
    ("Cyfronet", "cyfronet.pl", "ATLAS_PL_Cyfronet_arc", "ACK Cyfronet AGH"),
    ("Fermilab", "fnal.gov", "CMSHTPC_T1_US_FNAL_cmsgli", "Fermi National Accelerator Laboratory"),
]
_VOS = ["cms", "atlas", "osg", "dune", "icecube"]
FACTORY_HOST = "gfactory-2.opensciencegrid.org"
COLLECTOR_HOST = "cmsgwms-collector.fnal.gov"


@dataclass
class Planted:
    """Every identifying value planted in a job: what anonymization must remove."""

    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    uids: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    ipv4: set[str] = field(default_factory=set)
    ipv6: set[str] = field(default_factory=set)
    dns: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    fqans: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    job_ids: set[str] = field(default_factory=set)

    def merge(self, other: Planted) -> None:
        """Add ``other``'s values to these."""
        for name in self.__dataclass_fields__:
            getattr(self, name).update(getattr(other, name))


@dataclass(frozen=True)
class SampleSite:
    """A site: name, DNS domain, factory entry, organisation, worker nodes and their addresses."""

    name: str
    domain: str
    entry: str
    org: str
    ce_host: str
    workers: tuple[str, ...]
    short_workers: tuple[str, ...]
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]


@dataclass(frozen=True)
class SampleUser:
    """A payload user: login, display name, DN, email, VO."""

    login: str
    name: str
    dn: str
    email: str
    vo: str
    uid: int


@dataclass
class SampleWorld:
    """The shared pool of sites, users and addresses that jobs draw from."""

    sites: list[SampleSite]
    users: list[SampleUser]
    pilots: list[tuple[str, int, str, int]]  # (login, uid, group, gid)
    submit_hosts: list[tuple[str, str, str]]  # (host, ipv4, ipv6)
    frontends: list[tuple[str, str]]  # (frontend user, client group)
    collector_ip: str = "131.225.188.2"


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([128, 129, 131, 137, 144, 188, 192, 141, 149, 193])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    import ipaddress

    prefix = rng.choice([0x2607F388, 0x20010DB8, 0x2A0C9A40, 0x2001067C])
    value = (prefix << 96) | rng.getrandbits(64)
    return str(ipaddress.IPv6Address(value))


def make_world(
    seed: int = 0, *, users: int = 8, sites: int = 4, workers_per_site: int = 6
) -> SampleWorld:
    """A reproducible world of ``sites`` sites and ``users`` payload users."""
    rng = random.Random(seed)
    site_list: list[SampleSite] = []
    for name, domain, entry, org in rng.sample(_SITES, min(sites, len(_SITES))):
        workers = []
        shorts = []
        for _ in range(workers_per_site):
            n = rng.randint(1, 999)
            style = rng.randrange(3)
            if style == 0:
                workers.append(f"wn{n:03d}.{domain}")
            elif style == 1:
                workers.append(f"node-{n}.grid.{domain}")
            else:
                workers.append(f"c{n:03d}-{rng.randint(1, 40):03d}.hep.{domain}")
            shorts.append(f"c{rng.randint(100, 999)}-{rng.randint(10, 99)}")
        site_list.append(
            SampleSite(
                name=name,
                domain=domain,
                entry=entry,
                org=org,
                ce_host=f"ce{rng.randint(1, 9):02d}.{domain}",
                workers=tuple(workers),
                short_workers=tuple(shorts),
                ipv4=tuple(_ipv4(rng) for _ in workers),
                ipv6=tuple(_ipv6(rng) for _ in workers),
            )
        )
    user_list: list[SampleUser] = []
    seen: set[str] = set()
    while len(user_list) < users:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        login = f"{first[0]}{last}"
        if rng.random() < 0.3:
            login += str(rng.randint(1, 9))
        if login in seen:
            continue
        seen.add(login)
        site = rng.choice(_SITES)
        display = f"{first.title()} {last.title()}"
        dn = f"/DC=org/DC=cilogon/C=US/O={site[3]}/CN={display} A{rng.randint(1000000, 9999999)}"
        user_list.append(
            SampleUser(
                login=login,
                name=display,
                dn=dn,
                email=f"{first}.{last}@{site[1]}",
                vo=rng.choice(_VOS),
                uid=rng.randint(10000, 60000),
            )
        )
    pilots = [
        (
            f"{vo}pilot{rng.randint(1, 99):02d}",
            rng.randint(5000, 9999),
            f"{vo}plt",
            rng.randint(5000, 9999),
        )
        for vo in rng.sample(_VOS, 3)
    ]
    submits = [
        (f"submit-{rng.randint(1, 9)}.{rng.choice(_SITES)[1]}", _ipv4(rng), _ipv6(rng))
        for _ in range(3)
    ]
    frontends = [("fe_cms", "main"), ("fe_osg", "opportunistic"), ("fe_atlas", "prod")]
    return SampleWorld(site_list, user_list, pilots, submits, frontends)


def _v6dash(addr: str) -> str:
    return addr.replace(":", "-")


def _sinful(ip: str, port: int, host: str, v6: str | None, sock: str) -> str:
    addrs = f"{ip}-{port}"
    if v6:
        addrs += f"+[{_v6dash(v6)}]-{port}"
    return f"<{ip}:{port}?addrs={addrs}&alias={host}&noUDP&sock={sock}>"


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def _logtime(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m/%d/%y %H:%M:%S")


def _jwt(rng: random.Random, subject: str) -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    sig = base64.urlsafe_b64encode(rng.randbytes(64)).rstrip(b"=").decode()
    return f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64({'sub': subject, 'exp': rng.randint(1, 2**31)})}.{sig}"


@dataclass
class SampleJob:
    """One generated glidein job: its files, planted values and the expected summary."""

    cluster: int
    proc: int
    frontend_user: str
    instance: str
    entry: str
    out: str
    err: str
    sections: dict[str, list[bytes]]
    truncated: set[str]
    planted: Planted
    expected: dict[str, object]
    columns: dict[str, int]

    @property
    def job_id(self) -> str:
        """The factory job id ``cluster.proc``."""
        return f"{self.cluster}.{self.proc}"

    @property
    def relative_dir(self) -> str:
        """Where the factory keeps this job's files under its log root."""
        return f"client/user_{self.frontend_user}/glidein_{self.instance}/entry_{self.entry}"

    @property
    def out_name(self) -> str:
        """``job.<cluster>.<proc>.out``."""
        return f"job.{self.cluster}.{self.proc}.out"

    @property
    def err_name(self) -> str:
        """``job.<cluster>.<proc>.err``."""
        return f"job.{self.cluster}.{self.proc}.err"


class _Ctx:
    """What one job's log lines draw from."""

    def __init__(self, world: SampleWorld, rng: random.Random, lines: int) -> None:
        self.rng = rng
        self.lines = lines
        self.site = rng.choice(world.sites)
        w = rng.randrange(len(self.site.workers))
        self.host = self.site.workers[w]
        self.short_host = self.site.short_workers[w] if rng.random() < 0.25 else None
        self.ip = self.site.ipv4[w]
        self.ip6 = self.site.ipv6[w] if rng.random() < 0.7 else None
        self.pilot, self.pilot_uid, self.pilot_group, self.pilot_gid = rng.choice(world.pilots)
        self.users = rng.sample(world.users, min(len(world.users), rng.randint(1, 3)))
        self.submit = rng.choice(world.submit_hosts)
        self.world = world
        self.planted = Planted()
        self.glide_dir = (
            f"/tmp/glide_{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz0123456789', k=6))}"
        )
        self.batch_id = str(rng.randint(1000000, 99999999))
        self.ce_job = f"{self.site.ce_host}#{rng.randint(100000, 999999)}.0#{rng.randint(1700000000, 1720000000)}"
        p = self.planted
        p.hosts.update({self.host, self.submit[0], self.site.ce_host})
        if self.short_host:
            p.hosts.add(self.short_host)
        p.ipv4.update({self.ip, self.submit[1]})
        if self.ip6:
            p.ipv6.add(self.ip6)
        p.ipv6.add(self.submit[2])
        p.users.add(self.pilot)
        p.groups.add(self.pilot_group)
        p.uids.update({str(self.pilot_uid), str(self.pilot_gid)})
        p.job_ids.update({self.batch_id, self.ce_job})
        for u in self.users:
            p.users.add(u.login)
            p.dns.add(u.dn)
            p.emails.add(u.email)
            p.fqans.add(f"/{u.vo}/Role=NULL/Capability=NULL")

    @property
    def node(self) -> str:
        return self.short_host or self.host

    def sinful(self, sock: str) -> str:
        return _sinful(self.ip, self.rng.randint(9600, 9700), self.host, self.ip6, sock)

    def submit_sinful(self) -> str:
        h, ip, v6 = self.submit
        return _sinful(
            ip, 9618, h, v6, f"shadow_{self.rng.randint(1000, 99999)}_{self.rng.randbytes(2).hex()}"
        )

    def secret(self) -> str:
        value = self.rng.randbytes(20).hex()
        self.planted.secrets.add(value)
        return value


def _log_lines(ctx: _Ctx, daemon: str, start: int, count: int, dull: float = 0.6) -> str:
    rng = ctx.rng
    pid = rng.randint(1000, 99999)
    t = start
    out: list[str] = []
    sbin = f"{ctx.glide_dir}/main/condor/sbin"
    banner = [
        "******************************************************",
        f"** condor_{daemon.lower()} ({daemon.upper()}) STARTING UP",
        f"** {sbin}/condor_{daemon.lower()}",
        f"** SubsystemInfo: name={daemon.upper()} type={daemon.upper()}(1) class=DAEMON(1)",
        f"** Configuration: subsystem:{daemon.upper()} local:<NONE> class:DAEMON",
        "** $CondorVersion: 23.0.3 2024-01-04 BuildID: 704000 PackageID: 23.0.3-1 $",
        "** $CondorPlatform: x86_64_AlmaLinux9 $",
        f"** PID = {pid}",
        "** Log last touched time unavailable (No such file or directory)",
        "******************************************************",
        f"Using config source: {ctx.glide_dir}/condor_config",
        f"DaemonCore: command socket at {ctx.sinful(f'{daemon.lower()}_{pid}_{rng.randbytes(2).hex()}')}",
    ]
    for b in banner:
        out.append(f"{_logtime(t)} (pid:{pid}) {b}\n")
    coll_ip = ctx.world.collector_ip
    slot = f"slot1_{rng.randint(1, 4)}"

    mundane = {
        "Master": [
            "Preen pid is 12345",
            "DaemonCore: received signal SIGCHLD",
            "The STARTD (pid 23456) is alive",
            "Adding SHARED_PORT to DAEMON_LIST, because USE_SHARED_PORT=true",
            "SharedPortServer: waiting for connections to named socket master_1234_5678",
            "Setting ready state 'Ready' for STARTD",
            "Daemon Log is logging: D_ALWAYS D_ERROR D_STATUS",
        ],
        "Startd": [
            f"{slot}: Changing activity: Idle -> Busy",
            f"{slot}: Changing state and activity: Claimed/Busy -> Claimed/Idle",
            f"{slot}: State change: received RELEASE_CLAIM command",
            f"{slot}: Changing state and activity: Preempting/Vacating -> Owner/Idle",
            "Sent update to 1 collector(s)",
            f"{slot}: Computing percent CPU usage with pids: 34567 34568",
            "ProcAPI: new boottime = 1715500000; old_boottime = 1715500000",
            f"{slot}: match_info called",
            "Received DC_INVALIDATE_KEY command; invalidating session",
            f'{slot}: Got universe "VANILLA" (5) from request classad',
        ],
        "Starter": [
            "Job terminated: exited with status 0",
            "All jobs have exited",
            "JobReaper: pid 45678 exited with status 0",
            "Reporting job exit reason 100 and attempting to fetch new job.",
            "In VanillaProc::PublishUpdateAd()",
            "Inside OsProc::JobExit()",
            "ShutdownFast all jobs.",
            "Running /usr/bin/singularity exec --bind /cvmfs image.sif",
            "Got SIGQUIT.  Performing fast shutdown.",
            "Chirp config summary: IO false, Updates false, Delayed updates true.",
        ],
    }

    def pick() -> str:
        u = rng.choice(ctx.users)
        r = rng.random()
        if daemon in mundane and rng.random() < dull:
            return rng.choice(mundane[daemon])
        if daemon == "Master":
            choices = [
                (
                    f"CCBListener: registered with CCB server {COLLECTOR_HOST}:9620 as ccbid "
                    f"{coll_ip}:9620?addrs={coll_ip}-9620&alias={COLLECTOR_HOST}#{rng.randint(10000, 999999)}"
                ),
                f'Started DaemonCore process "{sbin}/condor_startd", pid and pgroup = {rng.randint(1000, 99999)}',
                "Daemons::StartAllDaemons all daemons were started",
                "Setting ready state 'Ready' for STARTD",
                f"condor_write(): Socket closed when trying to write 4096 bytes to collector {COLLECTOR_HOST}, fd is 9",
                "Buf::write(): condor_write() failed",
                f"Master restart (GRACEFUL) is watching {sbin}/condor_master (mtime:{t})",
                f"Trying to update collector <{coll_ip}:9620?alias={COLLECTOR_HOST}>",
                "Preen pid is 12345",
            ]
        elif daemon == "Startd":
            sub = ctx.submit
            choices = [
                f"{slot}: Request accepted.",
                f"{slot}: Remote owner is {u.login}@{sub[0]}",
                f"{slot}: State change: claiming protocol successful",
                f"{slot}: Changing state: Owner -> Unclaimed",
                f"{slot}: Got activate_claim request from shadow ({sub[1]})",
                f"{slot}: Got activate_claim request from shadow ([{sub[2]}]:9618)",
                f"{slot}: Remote job ID is {rng.randint(1000, 99999)}.0",
                f'{slot}: Got universe "VANILLA" (5) from request classad',
                f"Starter pid {rng.randint(1000, 99999)} exited with status 0",
                f"{slot}: Changing activity: Busy -> Idle",
                f"Received TCP command 442 (REQUEST_CLAIM) from {u.login}@{sub[0]} {ctx.submit_sinful()}",
                (
                    f"PERMISSION DENIED to unauthenticated@unmapped from host {sub[1]} for command 442 "
                    f"(REQUEST_CLAIM), access level DAEMON: reason: no matching ALLOW entry; "
                    f"identifiers used for this host: {sub[1]},{sub[0]}"
                ),
                (
                    f"CCBListener: registered with CCB server {COLLECTOR_HOST}:9620 as ccbid "
                    f"{coll_ip}:9620%3faddrs%3d{coll_ip}-9620#{rng.randint(100000, 9999999)}"
                ),
                f"Error: can't find resource with ClaimId ({ctx.sinful('startd_1')}#{t}#1#...)",
                f"{slot}@glidein_{pid}_{rng.randint(100, 999)}@{ctx.node}: Sent update to 1 collector(s)",
            ]
        elif daemon == "Starter":
            sub = ctx.submit
            proxy = f"/tmp/x509up_u{u.uid}"
            ctx.planted.uids.add(str(u.uid))
            choices = [
                f"Communicating with shadow {ctx.submit_sinful()}",
                f'Submitting machine is "{sub[0]}"',
                "setting the orig job name in starter",
                "Chirp config summary: IO false, Updates false, Delayed updates true.",
                "Initialized IO Proxy.",
                "File transfer completed successfully.",
                f"Job {rng.randint(1000, 99999)}.0 set to execute immediately",
                f"Output file: {ctx.glide_dir}/execute/dir_{pid}/_condor_stdout",
                f"Running job as user {ctx.pilot}",
                f"About to exec /home/{u.login}/analysis/run_{rng.randint(1, 9)}.sh --out {u.email}",
                f"Create_Process succeeded, pid={rng.randint(1000, 99999)}",
                f"Process exited, pid={rng.randint(1000, 99999)}, status=0",
                (
                    f"Env = HOME=/home/{u.login};X509_USER_PROXY={proxy};BEARER_TOKEN={ctx.secret()};"
                    f"SLURM_JOB_ID={ctx.batch_id}"
                ),
                f"IWD: /home/{u.login}/analysis/run{rng.randint(1, 99)}",
                f"Authenticated as {u.dn} with FQAN /{u.vo}/Role=NULL/Capability=NULL",
            ]
        else:  # monitor logs: quieter copies
            choices = [
                f"{slot}: Changing activity: Idle -> Busy",
                f"monitor slot on {ctx.node} ({ctx.ip}) alive",
                "Collector update sent",
                f"DaemonCore: command socket at {ctx.sinful('monitor_1')}",
            ]
        return choices[int(r * len(choices))]

    for _ in range(max(0, count - len(banner))):
        t += rng.randint(0, 30)
        out.append(f"{_logtime(t)} (pid:{pid}) {pick()}\n")
    return "".join(out)


_FILLER = [
    ("JobStatus", "4"),
    ("JobUniverse", "5"),
    ("RequestCpus", "1"),
    ("RequestDisk", "DiskUsage"),
    ("RequestMemory", "2048"),
    (
        "Requirements",
        (
            '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && '
            "(TARGET.Disk >= RequestDisk) && (TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)"
        ),
    ),
    ("Rank", "0.0"),
    ("ShouldTransferFiles", '"YES"'),
    ("WhenToTransferOutput", '"ON_EXIT"'),
    ("TransferInput", '"input.tar.gz,config.json"'),
    ("TransferOutput", '"output.root"'),
    ("NumJobStarts", "1"),
    ("NumShadowStarts", "1"),
    ("JobRunCount", "1"),
    ("JobPrio", "0"),
    ("ImageSize", "125000"),
    ("ImageSize_RAW", "124532"),
    ("MemoryUsage", "((ResidentSetSize + 1023) / 1024)"),
    ("ResidentSetSize", "98304"),
    ("ResidentSetSize_RAW", "97012"),
    ("DiskUsage", "2750000"),
    ("DiskUsage_RAW", "2744321"),
    ("CumulativeSlotTime", "3412.0"),
    ("CommittedTime", "3412"),
    ("RemoteWallClockTime", "3412.0"),
    ("RemoteUserCpu", "3301.0"),
    ("RemoteSysCpu", "22.0"),
    ("NumCkpts", "0"),
    ("MaxHosts", "1"),
    ("MinHosts", "1"),
    ("CurrentHosts", "0"),
    ("OnExitRemove", "true"),
    ("PeriodicHold", "false"),
    ("PeriodicRelease", "false"),
    ("PeriodicRemove", "(JobStatus == 5 && (CurrentTime - EnteredCurrentStatus) > 86400)"),
    ("LeaveJobInQueue", "false"),
    ("StreamOut", "false"),
    ("StreamErr", "false"),
    ("BufferSize", "524288"),
    ("BufferBlockSize", "32768"),
    ("CondorPlatform", '"$CondorPlatform: X86_64-Rocky_9 $"'),
    ("CondorVersion", '"$CondorVersion: 23.0.3 2024-01-04 BuildID: 704000 $"'),
    ("JobNotification", "0"),
    ("LastSuspensionTime", "0"),
    ("TotalSuspensions", "0"),
    ("CumulativeSuspensionTime", "0"),
    ("WantRemoteIO", "true"),
    ("WantCheckpoint", "false"),
    ("ExitBySignal", "false"),
]


def _filler_attributes(rng: random.Random, start: int, done: int) -> list[str]:
    """Attributes of a job ad that hold nothing identifying (most of a real ad)."""
    out = [f"{k} = {v}" for k, v in _FILLER]
    out += [
        f"QDate = {start - rng.randint(100, 10000)}",
        f"JobStartDate = {start + rng.randint(0, 100)}",
        f"JobCurrentStartDate = {start + rng.randint(0, 100)}",
        f"EnteredCurrentStatus = {done}",
        f"LastMatchTime = {start}",
        f"NumJobMatches = {rng.randint(1, 3)}",
    ]
    return out


def _history_log(ctx: _Ctx, start: int, jobs: int) -> str:
    rng = ctx.rng
    ads: list[str] = []
    for _ in range(jobs):
        u = rng.choice(ctx.users)
        cluster, proc = rng.randint(1000, 999999), rng.randint(0, 9)
        sub = ctx.submit
        tok = ctx.secret()
        done = start + rng.randint(100, 5000)
        attrs = [
            f'AccountingGroup = "group_{u.vo}.{u.login}"',
            f"ClusterId = {cluster}",
            f'Cmd = "/home/{u.login}/analysis/run.sh"',
            f"CompletionDate = {done}",
            f'Environment = "HOME=/home/{u.login} {u.vo.upper()}_TOKEN={tok} OMP_NUM_THREADS=1"',
            f'GlobalJobId = "{sub[0]}#{cluster}.{proc}#{start}"',
            f'Iwd = "/home/{u.login}/analysis"',
            f'LastRemoteHost = "slot1_1@glidein_{rng.randint(1000, 9999)}_{rng.randint(100, 999)}@{ctx.node}"',
            f'Owner = "{u.login}"',
            f"ProcId = {proc}",
            f'RemoteHost = "slot1_1@{ctx.node}"',
            f'RemoteUser = "{u.login}@{sub[0]}"',
            f'StartdIpAddr = "{ctx.sinful("startd_1")}"',
            f'User = "{u.login}@{sub[0]}"',
            f'x509userproxysubject = "{u.dn}"',
            f'x509UserProxyEmail = "{u.email}"',
            f'x509UserProxyFirstFQAN = "/{u.vo}/Role=NULL/Capability=NULL"',
            f'x509UserProxyFQAN = "{u.dn},/{u.vo}/Role=NULL/Capability=NULL"',
            f'x509UserProxyVOName = "{u.vo}"',
            f'RoutedFromJobId = "{ctx.ce_job}"',
            f"ExitCode = {rng.choice([0, 0, 0, 1, 2])}",
            *_filler_attributes(rng, start, done),
        ]
        rng.shuffle(attrs)
        ads.append("\n".join(attrs) + "\n")
        ads.append(
            f"*** Offset = {rng.randint(0, 10**6)} ClusterId = {cluster} ProcId = {proc} "
            f'Owner = "{u.login}" CompletionDate = {done}\n'
        )
    return "".join(ads)


def _glidein_log(ctx: _Ctx, start: int, count: int) -> str:
    rng = ctx.rng
    lines = []
    t = start
    events = ["start", "download", "validate", "condor_start", "heartbeat", "condor_end", "exit"]
    for i in range(count):
        t += rng.randint(0, 60)
        if i >= len(events) and rng.random() < 0.8:
            rec: dict[str, object] = {
                "ts": datetime.fromtimestamp(t, UTC).isoformat(),
                "level": "info",
                "event": "heartbeat",
                "slots": rng.randint(1, 8),
                "load": round(rng.random() * 8, 2),
                "msg": "startd alive, claims active",
            }
        else:
            rec = {
                "ts": datetime.fromtimestamp(t, UTC).isoformat(),
                "level": "info",
                "event": events[min(i, len(events) - 1)],
                "host": ctx.node,
                "ip": ctx.ip,
                "user": ctx.pilot,
                "msg": f"fetched {ctx.glide_dir}/main/constants.cfg from http://{FACTORY_HOST}/factory/stage",
            }
        lines.append(json.dumps(rec) + "\n")
    return "".join(lines)


def _xml(ctx: _Ctx, start: int, end: int, code: int) -> str:
    status = "OK" if code == 0 else "ERROR"
    iso_s = datetime.fromtimestamp(start, UTC).isoformat()
    iso_e = datetime.fromtimestamp(end, UTC).isoformat()
    return (
        '<?xml version="1.0"?>\n'
        '<OSGTestResult id="glidein_startup.sh" version="4.3.1">\n'
        "  <operatingenvironment>\n"
        f'    <env name="cwd">{ctx.glide_dir}</env>\n'
        f'    <env name="hostname">{ctx.node}</env>\n'
        "  </operatingenvironment>\n"
        "  <test>\n"
        f"    <cmd>{ctx.glide_dir}/main/condor_startup.sh glidein_config</cmd>\n"
        f"    <tStart>{iso_s}</tStart>\n"
        f"    <tEnd>{iso_e}</tEnd>\n"
        "  </test>\n"
        "  <result>\n"
        f"    <status>{status}</status>\n"
        f'    <metric name="TestID" ts="{iso_e}" uri="local">main/condor_startup.sh</metric>\n'
        "  </result>\n"
        "</OSGTestResult>\n"
    )


def _section_text(
    name: str,
    members: Sequence[bytes],
    columns: int,
    *,
    header: str,
    truncate: bool,
    rng: random.Random,
    mtime: int,
    xml: bool = False,
    trailer: str = "====",
    foreign: bool = False,
) -> str:
    header_obj = GzipHeader(mtime=mtime, os=3, fname=None if xml else name.encode())
    # "foreign" members are compressed at level 4 under a header that implies 6, like a
    # gzip program other than zlib: decodable, but not rebuilt byte for byte by re-encoding.
    gz = b"".join(gzip_member_bytes(m, header_obj, 4 if foreign else None) for m in members)
    body = base64_lines(gz, columns)
    if truncate:
        # cut somewhere in the second half of the base64, possibly mid-line
        cut = rng.randint(len(body) // 2, max(len(body) // 2, len(body) - 2))
        body = body[:cut]
        if not body.endswith("\n"):
            body += "\n"
        head = f"{XML_START_MARKER}\n" if xml else f"{name}\n{header}\n"
        return f"{head}begin-base64 644 -\n{body}"
    if xml:
        return f"{XML_START_MARKER}\nbegin-base64 644 -\n{body}{trailer}\n{XML_END_MARKER}\n"
    return f"{name}\n{header}\nbegin-base64 644 -\n{body}{trailer}\n"


def make_job(
    world: SampleWorld,
    seed: int,
    *,
    cluster: int | None = None,
    proc: int = 0,
    lines: int = 80,
    columns: int | None = None,
    sections: Iterable[str] = ALL_SECTION_NAMES,
    multi_member: bool | None = None,
    truncate: Iterable[str] = (),
    header_prefix: bool | None = None,
    exit_code: int | None = None,
    foreign_gzip: bool | None = None,
    dull: float = 0.6,
) -> SampleJob:
    """Generate one job. ``lines`` is the number of lines per daemon log.

    Args:
        columns: base64 width (60 or 76); random per section when None.
        multi_member: write StarterLog-family and monitor logs as several gzip members
            (random when None).
        truncate: names of sections to cut off mid-way (no trailer, partial gzip).
        header_prefix: use ``======== tail -c 100000 | gzip | uuencode ===`` headers
            (random when None).
        foreign_gzip: compress sections like another gzip program would (decodable, but
            not reproduced byte for byte by zlib); random per section when None.
        dull: the share of daemon log lines that hold no identifying value.
    """
    rng = random.Random(seed)
    ctx = _Ctx(world, rng, lines)
    cluster = cluster if cluster is not None else rng.randint(1000, 999999)
    truncate = set(truncate)
    fe_user, group = rng.choice(world.frontends)
    instance = rng.choice(["v3_11", "osg", "cms_itb"])
    start = rng.randint(1_700_000_000, 1_720_000_000)
    validation = rng.randint(20, 600)
    last_script = start + validation
    condor_start = last_script + rng.randint(0, 5)
    condor_dur = rng.randint(300, 86_000)
    condor_end = condor_start + condor_dur
    end = condor_end + rng.randint(1, 30)
    code = exit_code if exit_code is not None else rng.choice([0, 0, 0, 0, 1, 2, 137])
    jobs = rng.randint(0, 12)
    good = rng.randint(0, jobs)
    activations = jobs + rng.randint(0, 2)
    util = rng.randint(0, condor_dur)
    glidein_uuid = str(uuid.UUID(int=rng.getrandbits(128)))
    site = ctx.site
    factory_schedd = f"schedd_glideins{rng.randint(1, 9)}@{FACTORY_HOST}"
    hdr = [
        ("script_checksum", f"{rng.randbytes(16).hex()}  glidein_startup.sh"),
        ("debug_mode", "0"),
        ("condorg_cluster", str(cluster)),
        ("condorg_subcluster", str(proc)),
        ("condorg_schedd", factory_schedd),
        ("glidein_uuid", glidein_uuid),
        ("glidein_credential_id", f"cred_{rng.randint(10**6, 10**7)}"),
        ("glidein_factory", "OSG"),
        ("glidein_name", f"gfactory_instance_{instance}"),
        ("glidein_entry", site.entry),
        ("client_name", f"{fe_user}.{group}"),
        ("client_group", group),
        ("multi_glidein", ""),
        ("work_dir", "TMPDIR" if rng.random() < 0.5 else f"/home/{ctx.pilot}/glidein"),
        ("web_dir", f"http://{FACTORY_HOST}/factory/stage/glidein_gfactory_instance"),
        ("sign_type", "sha1"),
        ("proxy_url", f"http://squid.{site.domain}:3128"),
        ("descript_fname", "description.e5cc3a.cfg"),
        ("descript_entry_fname", f"entry_{site.entry}/description.e5cc3a.cfg"),
        ("sign_id", rng.randbytes(20).hex()),
    ]
    ctx.planted.hosts.add(f"squid.{site.domain}")
    out = [f"Starting glidein_startup.sh at {_date(start)} ({start})\n"]
    for k, v in hdr:
        out.append(f"{k:<18}= '{v}'\n" if k != "condorg_subcluster" else f"{k}= '{v}'\n")
    kernel = rng.choice(["5.14.0-362.24.1.el9_3.x86_64", "4.18.0-513.5.1.el8_9.x86_64"])
    out.append("\n")
    out.append(f"Running on {ctx.node}\n")
    out.append(
        f"System: Linux {ctx.node} {kernel} #1 SMP PREEMPT_DYNAMIC x86_64 x86_64 x86_64 GNU/Linux\n"
    )
    out.append("Release: AlmaLinux release 9.3 (Shamrock Pampas Cat)\n")
    out.append(
        f"As: uid={ctx.pilot_uid}({ctx.pilot}) gid={ctx.pilot_gid}({ctx.pilot_group}) "
        f"groups={ctx.pilot_gid}({ctx.pilot_group})\n"
    )
    out.append(f"PID: {rng.randint(1000, 99999)}\n\n")
    out.append("------- Initial environment ---------------\n")
    out.append(f"HOME=/home/{ctx.pilot}\nUSER={ctx.pilot}\nHOSTNAME={ctx.host}\n")
    out.append(f"_CONDOR_SLURM_JOB_ID={ctx.batch_id}\n")
    out.append("------- =+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+= ---------------\n\n")
    out.append(
        f"=== Last script starting {_date(last_script)} ({last_script}) after validating for {validation} ===\n\n"
    )
    out.append(f"=== Condor starting {_date(condor_start)} ({condor_start}) ===\n")
    out.append(f"=== Condor ended {_date(condor_end)} ({condor_end}) after {condor_dur} ===\n\n")
    out.append("=== Stats of main ===\n")
    out.append(f"Total number of activations/claims: {activations}\n")
    out.append(f"Total     jobs {jobs:4d} utilization {util:6d}\n")
    pct = (good * 100 // jobs) if jobs else 0
    out.append(f"Total goodZ jobs {good:4d} ({pct:3d}%) utilization {util:6d} (100%)\n")
    out.append(f"Total goodNZ jobs {0:4d} (  0%) utilization {0:6d} (  0%)\n")
    out.append(f"Total badSignal jobs {0:4d} (  0%) utilization {0:6d} (  0%)\n")
    out.append(
        f"Total badOther jobs {jobs - good:4d} ({100 - pct if jobs else 0:3d}%) utilization {0:6d} (  0%)\n"
    )
    out.append("=== End Stats of main ===\n")
    out.append(
        f"=== Glidein ending {_date(end)} ({end}) with code {code} after {end - start} ===\n\n"
    )
    xml = _xml(ctx, start, end, code)
    out.append("=== XML description of glidein activity ===\n")
    out.append(xml)
    out.append("=== End XML description of glidein activity ===\n")

    # .err
    err = [
        f"{_date(start)} Validation script check_proxy.sh: passed\n",
        "WARNING: setup_x509.sh: X509_CERT_DIR not set, using /etc/grid-security/certificates\n",
        "=== Environment dump (debug) ===\n",
        f"HOME=/home/{ctx.pilot}\n",
        f"USER={ctx.pilot}\n",
        f"HOSTNAME={ctx.host}\n",
        f"SLURM_JOB_ID={ctx.batch_id}\n",
        f"BEARER_TOKEN={_jwt(rng, ctx.pilot)}\n",
        f"GLIDEIN_PASSWORD={ctx.secret()}\n",
        f"export CMS_ACCESS_TOKEN={ctx.secret()}\n",
        f"X509_USER_PROXY=/tmp/x509up_u{ctx.pilot_uid}\n",
        f"SSH_CONNECTION={ctx.submit[1]} 52345 {ctx.ip} 22\n",
        "=== End environment dump ===\n",
        f"Authorization: Bearer {ctx.secret()}\n",
        f"curl: (7) Failed to connect to squid.{site.domain} port 3128: Connection refused\n",
    ]
    names = [n for n in ALL_SECTION_NAMES if n in set(sections)]
    contents: dict[str, list[bytes]] = {}
    cols: dict[str, int] = {}
    for name in names:
        if name == "XML":
            continue
        base = name.split(".")[0]
        if name == "StartdHistoryLog":
            text = _history_log(ctx, start, max(1, lines // 20))
        elif name == "GlideinLog":
            text = _glidein_log(ctx, start, max(1, lines // 4))
        elif name.endswith(".monitor"):
            text = _log_lines(ctx, "Monitor", condor_start, max(5, lines // 4), dull)
        else:
            text = _log_lines(ctx, base.replace("Log", ""), condor_start, lines, dull)
        mm = multi_member if multi_member is not None else rng.random() < 0.4
        if mm and (
            name.startswith("StarterLog") or name.endswith(".monitor") or name == "MasterLog"
        ):
            cut = text.find("\n", len(text) // 2) + 1
            parts = [text[:cut].encode(), text[cut:].encode()]
        else:
            parts = [text.encode()]
        contents[name] = parts
    for name in names:
        col = columns if columns is not None else rng.choice([60, 76])
        cols[name] = col
        foreign = foreign_gzip if foreign_gzip is not None else rng.random() < 0.3
        if name == "XML":
            contents["XML"] = [xml.encode()]
            trailer = "==== }" if rng.random() < 0.3 else "===="
            err.append(
                _section_text(
                    "XML",
                    contents["XML"],
                    col,
                    header="",
                    truncate="XML" in truncate,
                    rng=rng,
                    mtime=end,
                    xml=True,
                    trailer=trailer,
                    foreign=foreign,
                )
            )
            continue
        use_prefix = header_prefix if header_prefix is not None else rng.random() < 0.3
        header = (
            "======== tail -c 100000 | gzip | uuencode ============="
            if use_prefix
            else DEFAULT_HEADER
        )
        err.append(
            _section_text(
                name,
                contents[name],
                col,
                header=header,
                truncate=name in truncate,
                rng=rng,
                mtime=condor_end,
                foreign=foreign,
            )
        )
        if name not in truncate:
            err.append("\n")
    expected: dict[str, object] = {
        "glidein_uuid": glidein_uuid,
        "factory_job_id": f"{cluster}.{proc}",
        "entry": site.entry,
        "client_name": f"{fe_user}.{group}",
        "client_group": group,
        "factory_schedd": factory_schedd,
        "host": ctx.node,
        "user": ctx.pilot,
        "uid": ctx.pilot_uid,
        "start_epoch": start,
        "end_epoch": end,
        "validation_seconds": validation,
        "last_script_epoch": last_script,
        "condor_start_epoch": condor_start,
        "condor_end_epoch": condor_end,
        "condor_seconds": condor_dur,
        "exit_code": code,
        "total_seconds": end - start,
        "jobs_run": jobs,
        "activations": activations,
    }
    return SampleJob(
        cluster=cluster,
        proc=proc,
        frontend_user=fe_user,
        instance=instance,
        entry=site.entry,
        out="".join(out),
        err="".join(err),
        sections=contents,
        truncated=truncate & set(names),
        planted=ctx.planted,
        expected=expected,
        columns=cols,
    )


def job_paths(root: str | Path, job: SampleJob) -> tuple[Path, Path]:
    """Where :func:`write_job` puts the job's ``.out`` and ``.err`` under ``root``."""
    d = Path(root) / job.relative_dir
    return d / job.out_name, d / job.err_name


def write_job(root: str | Path, job: SampleJob) -> tuple[Path, Path]:
    """Write the job's files in the factory's layout under ``root``; their paths."""
    out_path, err_path = job_paths(root, job)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(job.out.encode())
    err_path.write_bytes(job.err.encode())
    return out_path, err_path


def write_tree(
    root: str | Path,
    jobs: int,
    *,
    seed: int = 0,
    world: SampleWorld | None = None,
    **kwargs: object,
) -> list[SampleJob]:
    """Write ``jobs`` generated jobs under ``root`` (``kwargs`` go to :func:`make_job`)."""
    world = world or make_world(seed)
    made = []
    for i in range(jobs):
        job = make_job(world, seed * 1_000_003 + i, cluster=1000 + i, proc=i % 3, **kwargs)  # type: ignore[arg-type]
        write_job(root, job)
        made.append(job)
    return made
