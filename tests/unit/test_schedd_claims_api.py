"""The schedd's claim endpoints' request parsing and completion attributes."""

from __future__ import annotations

import pytest

from gwms.pool.resources import Resources
from gwms.pool.schedd.startd_api import BadClaimRequest, CompleteBody, completion_attrs, parse_job_id, parse_offers


def test_offers_are_checked() -> None:
    offers = parse_offers({"matches": [
        {"job": "12.3", "slot": "slot1@g", "slot_ad": {"Name": "slot1@g"}},
        {"job": "12.4", "slot": "p@g", "slot_ad": {"Name": "p@g"}, "request": {"Cpus": 2, "Memory": 100}},
    ]})
    assert [o.job for o in offers] == [(12, 3), (12, 4)]
    assert offers[0].request is None and offers[1].request == Resources(2, 100, 0, 0)
    for bad in ({}, {"matches": [1]}, {"matches": [{"job": "x", "slot": "s", "slot_ad": {}}]},
                {"matches": [{"job": "1.0", "slot": "", "slot_ad": {}}]},
                {"matches": [{"job": "1.0", "slot": "s", "slot_ad": []}]},
                {"matches": [{"job": "1.0", "slot": "s", "slot_ad": {}, "request": 3}]}):
        with pytest.raises(BadClaimRequest):
            parse_offers(bad)
    assert parse_job_id("1.0") == (1, 0)
    with pytest.raises(BadClaimRequest):
        parse_job_id("1.x")


def test_completion_attributes() -> None:
    code, attrs = completion_attrs(CompleteBody(exit_code=3, wall_seconds=2.5, cpu_seconds=1, peak_memory_mb=10.2), 7.0)
    assert code == 3
    assert attrs == {"ExitBySignal": False, "RemoteWallClockTime": 9.5, "RemoteUserCpu": 1.0, "MemoryUsage": 11}
    code, attrs = completion_attrs(CompleteBody(exit_signal=9), 0.0)
    assert code == 137 and attrs["ExitBySignal"] is True and attrs["ExitSignal"] == 9
    with pytest.raises(BadClaimRequest):
        completion_attrs(CompleteBody(), 0.0)
