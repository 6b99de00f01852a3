"""The log monitor's JSON API on loopback: search, job views, sections, downloads, roles, audit."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_procs import logs_serve, run_logs_index

from gwms.monitor.anonymize import Anonymizer, KeyRing
from gwms.monitor.api import create_monitor_app
from gwms.monitor.archive import Archive
from gwms.monitor.audit import AuditLog
from gwms.monitor.compression import codec_named
from gwms.monitor.index import open_index
from gwms.monitor.indexer import Indexer
from gwms.monitor.samples import Planted, make_job, make_world, write_job
from gwms.monitor.sections import split_err
from gwms.net import ServiceServer
from gwms.security import scopes as s
from gwms.security.tokens import TokenVerifier, generate_signing_key, issue_token

pytestmark = pytest.mark.integration

ISSUER = "pool.test"
KEY = generate_signing_key("POOL")
WORLD = make_world(33)
# anonymized jobs (one twin id in another entry, one with a script in its log), and one
# job indexed as originals
JOBS = [
    make_job(
        WORLD,
        300 + i,
        cluster=4000 + i,
        proc=0,
        lines=20,
        columns=60 if i % 2 else 76,
        truncate={"StarterLog"} if i == 1 else set(),
        multi_member=i % 2 == 0,
    )
    for i in range(5)
]
XSS = "<script>alert('owned')</script>"
JOBS[2].err = f"WARNING: {XSS} in the environment\n" + JOBS[2].err
PLAIN = make_job(WORLD, 999, cluster=4100, proc=0, lines=20)


def token(subject: str, *granted: str) -> str:
    return issue_token(KEY, issuer=ISSUER, subject=subject, scopes=granted)


VIEWER = {"Authorization": f"Bearer {token('viewer@pool.test', s.READ)}"}
SECURITY = {"Authorization": f"Bearer {token('sec@pool.test', s.READ, s.LOGS_ORIGINAL)}"}
ADMIN = {"Authorization": f"Bearer {token('admin@pool.test', s.ADMINISTRATOR)}"}


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("monitor")
    for job in JOBS:
        write_job(root / "src", job)
    write_job(root / "plain", PLAIN)
    index = open_index(root / "data" / "index.sqlite")
    archive = Archive(root / "data" / "archive")
    report = Indexer(
        index, root / "src", archive=archive, anonymizer=Anonymizer(KeyRing.generate("k7"))
    ).run_pass()
    assert report.errors == [] and report.indexed == len(JOBS)
    assert Indexer(index, root / "plain", archive=archive).run_pass().indexed == 1
    audit = AuditLog(root / "data" / "audit.log")
    app = create_monitor_app(
        index, verifier=TokenVerifier(KEY, ISSUER), audit=audit, archive=archive
    )
    with ServiceServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield {"client": client, "index": index, "audit": audit, "root": root, "app": app}
    index.close()


def get(
    m: dict[str, Any], path: str, headers: dict[str, str] | None = VIEWER, **params: Any
) -> httpx.Response:
    return m["client"].get(path, headers=headers, params=params)


def job_id(m: dict[str, Any], job) -> str:  # type: ignore[no-untyped-def]
    r = get(m, "/v1/search", job=f"job.{job.cluster}.{job.proc}", entry=job.entry)
    (result,) = r.json()["results"]
    return result["job"]["id"]


def planted_of(jobs) -> Planted:  # type: ignore[no-untyped-def]
    p = Planted()
    for j in jobs:
        p.merge(j.planted)
    return p


def no_planted_values(text: str, p: Planted) -> None:
    low = text.lower()
    for host in p.hosts:
        assert host.lower() not in low, host
    for ip in p.ipv4:
        assert not re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d])", text), ip
    for value in p.dns | p.emails | p.secrets | p.ipv6:
        assert value not in text, value
    for user in p.users:
        assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(user)}(?![A-Za-z0-9])", text), user


def test_tokens_are_required(monitor: dict[str, Any]) -> None:
    r = get(monitor, "/v1/search", headers=None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    nothing = {"Authorization": f"Bearer {token('x@pool.test', s.ADVERTISE_STARTD)}"}
    assert get(monitor, "/v1/search", headers=nothing).status_code == 403


def test_openapi_documents_the_api(monitor: dict[str, Any]) -> None:
    spec = monitor["client"].get("/openapi.json").json()
    for path in (
        "/v1/search",
        "/v1/jobs/{ref}",
        "/v1/jobs/{ref}/sections/{name}",
        "/v1/jobs/{ref}/sections/{name}/text",
        "/v1/jobs/{ref}/archive",
        "/v1/jobs/{ref}/bundle",
    ):
        assert path in spec["paths"], path
    assert "SearchResponse" in spec["components"]["schemas"]


def test_search_pages_hits_and_histogram(monitor: dict[str, Any]) -> None:
    r = get(monitor, "/v1/search", q="condor", limit=4, histogram="true", context=1)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["unit"] == "sections" and len(body["results"]) == 4 and body["next_cursor"]
    assert sum(b["count"] for b in body["histogram"]["buckets"]) == body["total"]
    first = body["results"][0]
    assert first["hits"] and first["hits"][0]["spans"] and first["job"]["anonymized"] is True
    keys = [x["key"] for x in body["results"]]
    cursor = body["next_cursor"]
    while cursor:
        page = get(monitor, "/v1/search", q="condor", limit=4, cursor=cursor, total="false").json()
        assert page["total"] is None
        keys.extend(x["key"] for x in page["results"])
        cursor = page["next_cursor"]
    assert len(keys) == len(set(keys)) == body["total"]
    # the job indexed without anonymization is not shown to viewers
    assert all(
        x["job"]["anonymized"]
        for x in get(monitor, "/v1/search", q="condor", limit=1000).json()["results"]
    )
    bad = get(monitor, "/v1/search", q="job:x.y")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_query"
    assert get(monitor, "/v1/search", regex="(").status_code == 400
    assert get(monitor, "/v1/search", limit=0).status_code == 422


def test_search_by_fields_and_regex(monitor: dict[str, Any]) -> None:
    job = JOBS[3]
    by_uuid = get(monitor, "/v1/search", uuid=job.expected["glidein_uuid"]).json()
    assert [x["job"]["ref"] for x in by_uuid["results"]] == [f"job.{job.cluster}.0"]
    body = get(
        monitor, "/v1/search", regex=r"Changing activity: \w+ -> Busy", job=f"{job.cluster}.0"
    ).json()
    assert body["complete"] and body["total"] == len(body["results"]) > 0
    assert all(
        h["text"][sl[0] : sl[1]].startswith("Changing activity")
        for x in body["results"]
        for h in x["hits"]
        for sl in h["spans"]
    )


def test_job_view_timeline_and_sections(monitor: dict[str, Any]) -> None:
    job = JOBS[1]
    jid = job_id(monitor, job)
    view = get(monitor, f"/v1/jobs/{jid}").json()
    assert view["job"]["exit_code"] == job.expected["exit_code"]
    assert [e["event"] for e in view["timeline"]] == [
        "started",
        "validated",
        "condor_started",
        "condor_ended",
        "ended",
    ]
    assert view["timeline"][-1]["offset_seconds"] == job.expected["total_seconds"]
    names = [x["name"] for x in view["sections"]]
    assert names[:2] == ["out", "err"] and "StartdHistoryLog" in names and "XML" in names
    starter = next(x for x in view["sections"] if x["name"] == "StarterLog")
    assert starter["truncated"] and "truncated" in starter["problem"]
    assert view["archive"]["original"] and view["archive"]["anonymized"]
    # by factory job id and by uuid too; unknown -> 404
    assert get(monitor, f"/v1/jobs/job.{job.cluster}.0").json()["job"]["id"] == jid
    assert get(monitor, f"/v1/jobs/{job.expected['glidein_uuid']}").json()["job"]["id"] == jid
    r = get(monitor, "/v1/jobs/123456.7")
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"


def test_sections_by_lines_and_downloads(monitor: dict[str, Any]) -> None:
    job = JOBS[0]
    jid = job_id(monitor, job)
    r = get(monitor, f"/v1/jobs/{jid}/sections/StartdLog", **{"from": 3, "to": 5})
    body = r.json()
    expected = b"".join(job.sections["StartdLog"]).decode().splitlines()
    assert [x["n"] for x in body["lines"]] == [3, 4, 5] and body["total_lines"] == len(expected)
    assert body["next_from"] == 6 and body["original"] is False
    # the anonymized lines differ from the originals only where values were replaced
    assert body["lines"][0]["text"][:17] == expected[2][:17]
    whole = get(monitor, f"/v1/jobs/{jid}/sections/StartdLog").json()
    assert len(whole["lines"]) == len(expected) and whole["next_from"] is None
    assert get(monitor, f"/v1/jobs/{jid}/sections/NoSuchLog").status_code == 404
    text = get(monitor, f"/v1/jobs/{jid}/sections/StartdLog/text")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.headers["x-content-type-options"] == "nosniff"
    assert (
        "attachment" in text.headers["content-disposition"]
        and "StartdLog" in text.headers["content-disposition"]
    )
    assert text.text.splitlines()[2] == body["lines"][0]["text"]


def test_viewers_get_anonymized_archives_and_bundles_and_never_originals(
    monitor: dict[str, Any],
) -> None:
    job = JOBS[0]
    jid = job_id(monitor, job)
    before = list(monitor["audit"].records())
    for path in (
        f"/v1/jobs/{jid}/archive",
        f"/v1/jobs/{jid}/bundle",
        f"/v1/jobs/{jid}/sections/out",
        f"/v1/jobs/{jid}/sections/out/text",
    ):
        r = get(monitor, path, original="true")
        assert r.status_code == 403 and r.json()["error"]["code"] == "original_forbidden", path
    assert list(monitor["audit"].records()) == before  # refusals are not accesses
    r = get(monitor, f"/v1/jobs/{jid}/archive")
    assert r.status_code == 200 and r.headers["content-type"] in (
        "application/zstd",
        "application/gzip",
    )
    codec = codec_named("zstd" if r.headers["content-type"] == "application/zstd" else "gzip")
    with tarfile.open(fileobj=io.BytesIO(codec.decompress(r.content))) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(files) == {job.out_name, job.err_name}
    err = split_err(files[job.err_name])
    all_text = "\n".join(
        [files[job.out_name].decode(), err.plain_text, *(x.text() for x in err.sections)]
    )
    no_planted_values(all_text, planted_of(JOBS))
    bundle = get(monitor, f"/v1/jobs/{jid}/bundle").json()
    assert bundle["original"] is False and bundle["view"]["job"]["id"] == jid
    no_planted_values(json.dumps(bundle), planted_of(JOBS))
    assert [x["name"] for x in bundle["sections"]] == [
        x["name"] for x in bundle["view"]["sections"]
    ]


def test_privileged_access_to_originals_is_audited(monitor: dict[str, Any]) -> None:
    job = JOBS[4]
    jid = job_id(monitor, job)
    n = len(list(monitor["audit"].records()))
    r = get(monitor, f"/v1/jobs/{jid}/sections/StartdHistoryLog", headers=SECURITY, original="true")
    assert r.status_code == 200 and r.json()["original"] is True
    original = b"".join(job.sections["StartdHistoryLog"]).decode().splitlines()
    assert [x["text"] for x in r.json()["lines"]] == original
    bundle = get(monitor, f"/v1/jobs/{jid}/bundle", headers=ADMIN, original="true").json()
    assert next(x for x in bundle["sections"] if x["name"] == "out")["text"] == job.out
    archive = get(monitor, f"/v1/jobs/{jid}/archive", headers=SECURITY, original="true")
    codec = codec_named("zstd" if archive.headers["content-type"] == "application/zstd" else "gzip")
    with tarfile.open(fileobj=io.BytesIO(codec.decompress(archive.content))) as tar:
        assert tar.extractfile(job.err_name).read() == job.err.encode()  # type: ignore[union-attr]
    records = list(monitor["audit"].records())[n:]
    assert [(x["who"], x["action"], x["section"]) for x in records] == [
        ("sec@pool.test", "section", "StartdHistoryLog"),
        ("admin@pool.test", "download-bundle", None),
        ("sec@pool.test", "download-archive", None),
    ]
    assert all(
        x["job"] == jid
        and x["path"].endswith(f"job.{job.cluster}.0")
        and x["client"] == "127.0.0.1"
        and x["time"]
        for x in records
    )
    assert os.stat(monitor["audit"].path).st_mode & 0o077 == 0
    # the audit log itself is for administrators
    assert get(monitor, "/v1/audit", headers=SECURITY).status_code == 403
    assert get(monitor, "/v1/audit", headers=ADMIN, limit=3).json()["records"] == records


def test_a_job_indexed_without_anonymization_is_for_privileged_eyes(
    monitor: dict[str, Any],
) -> None:
    r = get(monitor, "/v1/search", headers=SECURITY, job=PLAIN.job_id)
    (result,) = r.json()["results"]
    jid = result["job"]["id"]
    assert result["job"]["anonymized"] is False and result["job"]["host"] == PLAIN.expected["host"]
    viewer_view = get(monitor, f"/v1/jobs/{jid}").json()
    assert viewer_view["job"]["host"] is None and "header" not in viewer_view["summary"]
    assert get(monitor, f"/v1/jobs/{jid}/sections/out").status_code == 403
    assert get(monitor, f"/v1/jobs/{jid}/archive").status_code == 403
    n = len(list(monitor["audit"].records()))
    lines = get(monitor, f"/v1/jobs/{jid}/sections/out", headers=SECURITY).json()
    assert lines["original"] is True and lines["lines"][0]["text"].startswith(
        "Starting glidein_startup.sh"
    )
    # a privileged search showing its lines is audited as well
    hits = get(
        monitor, "/v1/search", headers=SECURITY, q="glidein_startup", job=PLAIN.job_id
    ).json()
    assert hits["results"]
    actions = [x["action"] for x in list(monitor["audit"].records())[n:]]
    assert actions == ["section", "search"]


def test_log_text_is_never_served_as_html(monitor: dict[str, Any]) -> None:
    jid = job_id(monitor, JOBS[2])
    r = get(monitor, "/v1/search", q="alert owned", job=f"{JOBS[2].cluster}")
    assert r.headers["content-type"] == "application/json"
    hit = r.json()["results"][0]["hits"][0]
    assert XSS in hit["text"]  # as JSON data, for a page to escape
    err = get(monitor, f"/v1/jobs/{jid}/sections/err/text")
    assert (
        err.headers["content-type"].startswith("text/plain")
        and err.headers["x-content-type-options"] == "nosniff"
    )
    assert XSS in err.text


def test_an_access_that_cannot_be_audited_is_refused(
    monitor: dict[str, Any], tmp_path: Path
) -> None:
    jid = job_id(monitor, JOBS[0])
    m = monitor["app"].state.monitor
    saved = m.audit
    blocked = tmp_path / "audit-is-a-directory"
    blocked.mkdir()
    m.audit = AuditLog(blocked)
    try:
        r = get(monitor, f"/v1/jobs/{jid}/sections/out", headers=SECURITY, original="true")
        assert r.status_code == 503 and "audit" in r.json()["error"]["message"]
        assert "lines" not in r.json()
    finally:
        m.audit = saved


def test_gwms_logs_index_and_serve_commands(tmp_path: Path) -> None:
    """The commands end to end: index a tree, serve it, search with a pool token, stop."""
    from gwms.security.layout import SecurityLayout

    src = tmp_path / "factory"
    for job in JOBS[:2]:
        write_job(src, job)
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = run_logs_index(src, data, env)
    assert done.returncode == 0, done.stderr
    assert "indexed 2 job(s)" in done.stdout and "created anonymization key" in done.stderr
    with logs_serve(data, env=env) as url:
        viewer = SecurityLayout(data).mint_token("viewer", [s.READ])
        r = httpx.get(
            f"{url}/v1/search",
            params={"q": "condor"},
            headers={"Authorization": f"Bearer {viewer}"},
        )
        assert r.status_code == 200 and r.json()["total"] > 0
