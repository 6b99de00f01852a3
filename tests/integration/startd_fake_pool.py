"""A fake collector + schedd (one stdlib HTTP server) speaking the Pool II protocol.

It follows docs/contracts.md ("Pool II") from the schedd's and collector's side, just
enough to drive the startd agent in tests: slot ads are stored, one Scheduler ad points
at the same server, and a tiny built-in "negotiator" turns idle jobs into claims when
the agent polls for its slots (a static slot gets a claim when it has none; a
partitionable slot when its last advertised free resources still hold the job).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IDLE, RUNNING, REMOVED, COMPLETED, HELD = 1, 2, 3, 4, 5


@dataclass
class FakeJob:
    """One job of the fake schedd."""

    ad: dict[str, Any]
    status: int = IDLE
    accepts: Callable[[dict[str, Any]], bool] = lambda slot: True
    claim: str | None = None
    result: dict[str, Any] | None = None
    output: bytes | None = None
    hold: dict[str, Any] | None = None
    vacates: list[str] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    starts: int = 0

    @property
    def id(self) -> str:
        return f"{self.ad['ClusterId']}.{self.ad['ProcId']}"

    def output_files(self) -> dict[str, bytes]:
        """The files of the uploaded output tar."""
        if not self.output:
            return {}
        files = {}
        with tarfile.open(fileobj=io.BytesIO(self.output), mode="r:*") as tf:
            for m in tf:
                if m.isreg():
                    files[m.name] = tf.extractfile(m).read()  # type: ignore[union-attr]
        return files


@dataclass
class FakeClaim:
    id: str
    slot: str
    job: str | None
    startd: str
    renewed: float
    ended: bool = False
    stopped: bool = False  # its job was removed: told once in a poll or heartbeat answer
    released: bool = False


def make_tar(files: dict[str, bytes], *, executable: tuple[str, ...] = ()) -> bytes:
    """An input tar holding ``files`` (names in ``executable`` get mode 0755)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name in executable else 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakePool:
    """The fake services; ``url`` serves both the collector and the schedd API."""

    def __init__(self, *, token: str = "test-token", claim_timeout: float = 120.0, reuse: bool = True) -> None:
        self.token = token
        self.claim_timeout = claim_timeout
        self.reuse = reuse
        self.lock = threading.Condition()
        self.ads: dict[str, dict[str, Any]] = {}
        self.ad_posts = 0
        self.invalidations: list[dict[str, Any]] = []
        self.jobs: dict[str, FakeJob] = {}
        self.inputs: dict[int, bytes] = {}
        self.claims: dict[str, FakeClaim] = {}
        self.pslot_used: dict[str, list[int]] = {}  # p-slot -> [cpus, memory] claimed since its last ad
        self.polls: list[dict[str, Any]] = []
        self.heartbeats: list[list[str]] = []
        self.calls: list[tuple[str, str]] = []
        self.named_calls = 0
        self._next_cluster = 1
        pool = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status: int, payload: Any = None, raw: bytes | None = None, ctype: str = "application/json") -> None:
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                body = self._body()
                if self.headers.get("Authorization") != f"Bearer {pool.token}":
                    self._send(401, {"error": {"code": "unauthorized", "message": "bad token"}})
                    return
                try:
                    status, payload, raw = pool.route(method, self.path, body)
                except Exception as exc:  # noqa: BLE001 - a bug in the fake answers 500
                    status, payload, raw = 500, {"error": {"code": "bug", "message": repr(exc)}}, None
                if raw is not None:
                    self._send(status, raw=raw, ctype="application/x-tar")
                else:
                    self._send(status, payload)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._expiry = threading.Thread(target=self._expire_loop, daemon=True)
        self._stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakePool:
        self._thread.start()
        self._expiry.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- test API ----------------------------------------------------------------------
    def submit(
        self,
        ads: list[dict[str, Any]],
        *,
        inputs: dict[str, bytes] | None = None,
        executable: tuple[str, ...] = (),
        accepts: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[FakeJob]:
        """Queue a cluster of jobs (each ad gets ClusterId/ProcId/QDate/Owner)."""
        with self.lock:
            cluster = self._next_cluster
            self._next_cluster += 1
            now = int(time.time())
            jobs = []
            if inputs:
                self.inputs[cluster] = make_tar(inputs, executable=executable)
            for proc, ad in enumerate(ads):
                full = {"ClusterId": cluster, "ProcId": proc, "QDate": now, "Owner": "alice", "JobStatus": IDLE,
                        "GlobalJobId": f"fake#{cluster}.{proc}#{now}", **ad}
                if inputs:
                    full["GwmsSpooledInput"] = True
                job = FakeJob(full, accepts=accepts or (lambda slot: True))
                self.jobs[job.id] = job
                jobs.append(job)
            self.lock.notify_all()
            return jobs

    def remove(self, job_id: str, *, drop_claim: bool = False) -> None:
        """condor_rm: the job is removed; its claim stays idle (the agent hears ``stopped``)
        or, with ``drop_claim``, is forgotten (the agent hears ``unknown``)."""
        with self.lock:
            job = self.jobs[job_id]
            job.status = REMOVED
            if job.claim:
                claim = self.claims[job.claim]
                claim.job = None
                if drop_claim:
                    del self.claims[job.claim]
                else:
                    claim.stopped = True
                job.claim = None

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        """Wait until ``predicate()`` (called with the lock held) is true."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.1))
            return True

    def slot_ads(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {k: dict(v) for k, v in self.ads.items() if v.get("MyType") == "Machine"}

    # -- routing -----------------------------------------------------------------------
    def route(self, method: str, full_path: str, body: bytes) -> tuple[int, Any, bytes | None]:
        path, _, query = full_path.partition("?")
        self.calls.append((method, path))
        data = json.loads(body) if body and method == "POST" else None
        named = dict(p.partition("=")[::2] for p in query.split("&") if p).get("job")
        if isinstance(data, dict) and "job" in data:
            named = data["job"]
        if path == "/v1/ads" and method == "POST":
            return 200, self._advertise(data["ads"]), None
        if path == "/v1/ads/invalidate":
            return 200, self._invalidate(data), None
        if path == "/v1/ads/query":
            if data.get("my_type") == "Scheduler":
                return 200, {"count": 1, "ads": [{"Name": "fake-schedd", "ScheddIpAddr": self.url}]}, None
            with self.lock:
                ads = [a for a in self.ads.values() if a.get("MyType") == data.get("my_type")]
            return 200, {"count": len(ads), "ads": ads}, None
        if path == "/v1/startd/poll":
            return 200, self._poll(data), None
        if path == "/v1/claims/heartbeat":
            return 200, self._heartbeat(data["claims"]), None
        m = re.fullmatch(r"/v1/claims/([^/]+)/(input|output|complete|hold|vacate|release)", path)
        if m:
            return self._claim_call(method, m.group(1), m.group(2), data, body, named)
        return 404, {"error": {"code": "not_found", "message": path}}, None

    def _advertise(self, ads: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            self.ad_posts += 1
            for ad in ads:
                name = ad["Name"]
                self.ads[name] = {**ad, "AuthenticatedIdentity": "startd@test", "LastHeardFrom": int(time.time())}
                if ad.get("PartitionableSlot"):
                    self.pslot_used[name] = [0, 0]
            self.lock.notify_all()
        return {"accepted": len(ads), "refused": []}

    def _invalidate(self, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.invalidations.append(data)
            if "name" in data:
                removed = 1 if self.ads.pop(data["name"], None) else 0
            else:
                pairs = re.findall(r'(\w+) == "([^"]*)"', data.get("constraint", ""))
                names = [n for n, ad in self.ads.items() if any(str(ad.get(a)) == v for a, v in pairs)]
                for n in names:
                    del self.ads[n]
                removed = len(names)
            self.lock.notify_all()
        return {"removed": removed, "refused": 0}

    def _slot_free_for(self, slot: str, job: FakeJob) -> bool:
        ad = self.ads.get(slot)
        if ad is None or ad.get("State") != "Unclaimed":
            return False
        start = str(ad.get("Start", ""))
        if "false" in start.lower():
            return False
        if not job.accepts(ad):
            return False
        if ad.get("PartitionableSlot"):
            used = self.pslot_used.setdefault(slot, [0, 0])
            cpus = job.ad.get("RequestCpus", 1)
            mem = job.ad.get("RequestMemory", 128)
            return ad["Cpus"] - used[0] >= cpus and ad["Memory"] - used[1] >= mem
        return not any(c.slot == slot and not c.ended for c in self.claims.values())

    def _poll(self, data: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + float(data.get("wait", 0))
        with self.lock:
            self.polls.append(data)
            while True:
                claims = []
                for slot in data["slots"]:
                    for job in self.jobs.values():
                        if job.status == IDLE and self._slot_free_for(slot, job):
                            claims.append(self._new_claim(slot, job, data["startd"]))
                            break
                if claims or self._stop.is_set() or deadline - time.monotonic() <= 0:
                    return {"claims": claims, "claim_timeout": self.claim_timeout,
                            "stopped": self._take_stopped(data["startd"])}
                left = deadline - time.monotonic()
                self.lock.wait(min(left, 0.05))

    def _new_claim(self, slot: str, job: FakeJob, startd: str) -> dict[str, Any]:
        cid = uuid.uuid4().hex
        self.claims[cid] = FakeClaim(cid, slot, job.id, startd, time.monotonic())
        job.status, job.claim = RUNNING, cid
        job.slots.append(slot)
        job.starts += 1
        if slot in self.pslot_used:
            self.pslot_used[slot][0] += job.ad.get("RequestCpus", 1)
            self.pslot_used[slot][1] += job.ad.get("RequestMemory", 128)
        return {"claim_id": cid, "slot": slot, "job": dict(job.ad, JobStatus=RUNNING, RemoteHost=slot)}

    def _take_stopped(self, startd: str) -> list[str]:
        out = []
        for claim in self.claims.values():
            if claim.stopped and claim.startd == startd:
                claim.stopped = False
                out.append(claim.id)
        return out

    def _heartbeat(self, ids: list[str]) -> dict[str, Any]:
        with self.lock:
            self.heartbeats.append(list(ids))
            renewed, unknown, stopped = [], [], []
            for cid in ids:
                claim = self.claims.get(cid)
                if claim is None or claim.ended:
                    unknown.append(cid)
                else:
                    claim.renewed = time.monotonic()
                    renewed.append(cid)
                    if claim.stopped:
                        claim.stopped = False
                        stopped.append(cid)
        return {"renewed": renewed, "unknown": unknown, "stopped": stopped}

    def _expire_loop(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                now = time.monotonic()
                for cid, claim in list(self.claims.items()):
                    if not claim.ended and now - claim.renewed > self.claim_timeout:
                        claim.ended = True
                        job = self.jobs.get(claim.job or "")
                        if job is not None and job.status == RUNNING:
                            job.status, job.claim = IDLE, None
                            job.vacates.append("claim expired")
                        self.lock.notify_all()

    def _claim_call(
        self, method: str, cid: str, action: str, data: Any, body: bytes, named: str | None
    ) -> tuple[int, Any, bytes | None]:
        with self.lock:
            claim = self.claims.get(cid)
            if claim is None or claim.ended:
                return 404, {"error": {"code": "no_claim", "message": f"no claim {cid}"}}, None
            claim.renewed = time.monotonic()
            job = self.jobs.get(claim.job or "")
            try:
                if action == "release":
                    if claim.job is not None:
                        return 409, {"error": {"code": "busy", "message": "the claim runs a job"}}, None
                    claim.ended = claim.released = True
                    if job is not None and job.status == RUNNING and job.claim == cid:
                        job.status, job.claim = IDLE, None
                    return 200, {}, None
                if job is None or job.claim != cid or (named is not None and named != job.id):
                    return 409, {"error": {"code": "idle_claim", "message": "no such job on this claim"}}, None
                self.named_calls += named is not None
                if action == "input":
                    tar = self.inputs.get(job.ad["ClusterId"])
                    if tar is None:
                        return 404, {"error": {"code": "no_input", "message": "no input"}}, None
                    return 200, None, tar
                if action == "output":
                    job.output = body
                    return 200, {"stored": True}, None
                if action == "complete":
                    job.result = data
                    job.status, job.claim = COMPLETED, None
                    claim.job = None
                    if self.reuse:
                        for nxt in self.jobs.values():
                            if (nxt.status == IDLE and nxt.ad["ClusterId"] == job.ad["ClusterId"]):
                                claim.job = nxt.id
                                nxt.status, nxt.claim = RUNNING, cid
                                nxt.slots.append(claim.slot)
                                nxt.starts += 1
                                return 200, {"next": dict(nxt.ad, JobStatus=RUNNING)}, None
                    return 200, {}, None
                if action == "hold":
                    job.hold = data
                    job.status, job.claim = HELD, None
                    claim.job = None
                    return 200, {}, None
                if action == "vacate":
                    job.vacates.append(data.get("reason", ""))
                    job.status, job.claim = IDLE, None
                    claim.job = None
                    claim.ended = True  # as the schedd does: vacate ends the claim
                    return 200, {}, None
            finally:
                self.lock.notify_all()
        return 400, {"error": {"code": "bad", "message": action}}, None
