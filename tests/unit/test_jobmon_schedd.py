"""The schedd side of ``gwms job ...``: request checks, answer checks, and the desk that
joins a waiting user to the agent's long poll (gwms.pool.schedd.inspect)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.cli.jobmon import parse_job
from gwms.errors import UsageError
from gwms.pool.schedd import inspect as S


def body(**kw: Any) -> S.InspectBody:
    return S.InspectBody(**kw)


def test_requests_are_checked() -> None:
    assert S.check_request(body(what="PS")) == S.InspectRequest("ps", None, None, 20.0)
    assert S.check_request(body(what="tail", path="log", lines=5, wait=500)) == S.InspectRequest("tail", "log", 5, 60.0)
    assert S.check_request(body(what="ls", path="")).path is None
    for bad in ({"what": "rm"}, {"what": "sh", "path": "x"}, {"what": "ps", "path": "x"}, {"what": "cat"},
                {"what": "tail", "path": "x", "lines": 0}, {"what": "cat", "path": "x", "lines": 3},
                {"what": "cat", "path": "a\x00b"}, {"what": "cat", "path": "a" * 5000}):
        with pytest.raises(S.InspectionError) as info:
            S.check_request(body(**bad))
        assert info.value.http_status == 400, bad


@given(st.text(max_size=10), st.one_of(st.none(), st.text(max_size=10)))
def test_only_known_inspections_pass(what: str, path: str | None) -> None:
    try:
        req = S.check_request(body(what=what, path=path))
    except S.InspectionError:
        return
    assert req.what in S.KINDS
    assert req.path is None or req.what in S.PATH_KINDS
    assert req.what not in S.NEEDS_PATH or req.path


@given(st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.sampled_from(["ok", "text", "code", "error", "truncated"]),
                                                                      st.one_of(st.booleans(), st.text(max_size=5), st.integers()))))
def test_answers_are_normalized(data: Any) -> None:
    out = S.check_answer(data)
    assert isinstance(out["ok"], bool)
    if out["ok"]:
        assert isinstance(out["text"], str) and isinstance(out["truncated"], bool)
        assert S.refusal_of(out, "1.0") is None
    else:
        assert out["code"] in S.AGENT_ERROR_STATUS
        err = S.refusal_of(out, "1.0")
        assert err is not None and err.http_status == S.AGENT_ERROR_STATUS[out["code"]]


def test_big_answers_are_cut_by_the_schedd_too() -> None:
    out = S.check_answer({"ok": True, "text": "x" * (S.MAX_TEXT_CHARS + 10)})
    assert out["truncated"] and out["text"].endswith("[output truncated by the schedd]\n")
    refusal = S.refusal_of({"ok": False, "code": "refused", "error": "'..' is refused"}, "4.2")
    assert refusal is not None and refusal.http_status == 403 and refusal.error_code == "inspection_refused"
    assert str(refusal) == "job 4.2: '..' is refused"


def test_cli_job_ids() -> None:
    assert parse_job("12.3") == (12, 3) and parse_job("12") == (12, 0)
    for bad in ("0", "x", "1.", "1.x", "-1.0", ""):
        with pytest.raises(UsageError):
            parse_job(bad)


# --------------------------------------------------------------------------- the desk


def ask(desk: S.InspectionDesk, *, who: str = "glidein-a", startd: str = "A", wait: float = 2.0, what: str = "ps"):  # type: ignore[no-untyped-def]
    return desk.ask(claim_id="c1", job="1.0", what=what, path=None, lines=None, identity=who, startd=startd,
                    asked_by="alice", wait=wait)


def test_the_agent_gets_the_request_and_the_user_the_answer() -> None:
    async def main() -> None:
        desk = S.InspectionDesk()
        user = asyncio.create_task(ask(desk))
        other = await desk.collect("glidein-b", "B", 0.05)  # another agent gets nothing
        requests = await desk.collect("glidein-a", "A", 2.0)
        assert other == [] and len(requests) == 1
        req = requests[0]
        assert {k: req[k] for k in ("claim_id", "job", "what", "path")} == {"claim_id": "c1", "job": "1.0", "what": "ps", "path": None}
        with pytest.raises(S.InspectionError) as info:
            desk.answer("glidein-b", req["id"], {"ok": True, "text": "forged"})
        assert info.value.http_status == 403
        desk.answer("glidein-a", req["id"], {"ok": True, "text": "PID ...\n"})
        assert (await user)["text"] == "PID ...\n"
        with pytest.raises(S.InspectionError) as info:  # nobody waits any more
            desk.answer("glidein-a", req["id"], {"ok": True, "text": "late"})
        assert info.value.http_status == 404
        assert desk.open_count("glidein-a", "A") == 0

    asyncio.run(main())


def test_a_waiting_agent_is_woken_at_once() -> None:
    async def main() -> None:
        desk = S.InspectionDesk()
        loop = asyncio.get_running_loop()
        began = loop.time()
        poll = asyncio.create_task(desk.collect("glidein-a", "A", 10.0))
        await asyncio.sleep(0.05)
        user = asyncio.create_task(ask(desk))
        requests = await poll
        assert len(requests) == 1 and loop.time() - began < 2.0
        desk.answer("glidein-a", requests[0]["id"], {"ok": False, "code": "refused", "error": "outside"})
        assert (await user) == {"ok": False, "code": "refused", "error": "outside"}

    asyncio.run(main())


def test_no_answer_is_a_timeout_and_the_request_is_dropped() -> None:
    async def main() -> None:
        desk = S.InspectionDesk()
        with pytest.raises(S.InspectionError) as info:
            await ask(desk, wait=0.1)
        assert info.value.http_status == 504 and "did not pick up the request within 0.1 s" in str(info.value)
        assert await desk.collect("glidein-a", "A", 0.0) == []  # nothing left for the agent
        user = asyncio.create_task(ask(desk, wait=0.2))
        assert len(await desk.collect("glidein-a", "A", 1.0)) == 1
        with pytest.raises(S.InspectionError) as info:
            await user
        assert "did not answer within" in str(info.value)
        assert desk.timed_out == 2

    asyncio.run(main())


def test_too_many_open_requests_per_agent_are_refused() -> None:
    async def main() -> None:
        desk = S.InspectionDesk(max_open_per_agent=2)
        waiting = [asyncio.create_task(ask(desk, wait=1.0)) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(S.InspectionError) as info:
            await ask(desk)
        assert info.value.http_status == 429
        other = asyncio.create_task(ask(desk, who="glidein-b", startd="B", wait=1.0))  # another agent is not held up
        got = await desk.collect("glidein-b", "B", 1.0)
        desk.answer("glidein-b", got[0]["id"], {"ok": True, "text": "b"})
        assert (await other)["text"] == "b"
        for request in await desk.collect("glidein-a", "A", 0.0):
            desk.answer("glidein-a", request["id"], {"ok": True, "text": "a"})
        assert [(await w)["text"] for w in waiting] == ["a", "a"]

    asyncio.run(main())


class GoneAfter:
    """A request whose client disconnects after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def receive(self) -> dict[str, Any]:
        await asyncio.sleep(self.seconds)
        return {"type": "http.disconnect"}


def test_a_client_that_goes_away_is_not_waited_for() -> None:
    async def main() -> None:
        desk = S.InspectionDesk()
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await S.unless_disconnected(GoneAfter(0.05), desk.collect("glidein-a", "A", 10.0)) is None  # type: ignore[arg-type]
        assert await S.unless_disconnected(GoneAfter(0.05), ask(desk, wait=10.0)) is None  # type: ignore[arg-type]
        assert loop.time() - began < 2.0
        assert desk.open_count("glidein-a", "A") == 0  # the user's request was dropped with it
        assert await desk.collect("glidein-a", "A", 0.0) == []
        assert await S.unless_disconnected(GoneAfter(5.0), desk.collect("glidein-a", "A", 0.01)) == []

    asyncio.run(main())
