"""The pilot's decisions: arguments, glidein_config, publishing, START, lifetime, statistics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gwms.glidein import pilot as P
from gwms.glidein import pilotreport as R
from gwms.monitor.outfile import parse_out


def test_parse_args_options_params_attrs() -> None:
    args = P.parse_args([
        "-glide-dir", "/g", "-startup-time", "100", "-collector", "http://c", "-entry", "e", "-agent", "/a.pyz",
        "-param_GLIDEIN_Max_Idle", "30", "-attr", 'GLIDEIN_Site="S"', "-attr", "X=1", "-entry", "e2",
    ])
    assert args.get("entry") == "e2" and args.get("agent") == "/a.pyz"
    assert args.params == {"GLIDEIN_Max_Idle": "30"} and args.attrs == ['GLIDEIN_Site="S"', "X=1"]


@pytest.mark.parametrize("argv, message", [
    (["oops"], "unexpected argument"),
    (["-entry"], "needs a value"),
    (["-param_bad-name", "1"], "parameter name"),
    (["-attr", "novalue"], "NAME=VALUE"),
    (["-entry", "e"], "-glide-dir is required"),
])
def test_parse_args_errors(argv: list[str], message: str) -> None:
    with pytest.raises(P.PilotError, match=message):
        P.parse_args(argv)


def test_config_last_line_wins_and_comments_are_skipped() -> None:
    text = "A 1\n# A 9\nB two words\nA 2\nC\n\nbad-key 3\n"
    assert P.parse_config(text) == {"A": "2", "B": "two words", "C": ""}


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)))
def test_config_lines_round_trip(values: dict[str, str]) -> None:
    text = "".join(P.config_line(k, v) for k, v in values.items())
    parsed = P.parse_config(text)
    for k, v in values.items():
        # line breaks become spaces; every key comes back
        expected = v.replace("\r", " ").replace("\n", " ")
        assert parsed[k] == expected or (not expected.strip() and parsed[k].strip() == "")


def test_parse_vars() -> None:
    text = "# comment\nGLIDEIN_Site S - + N Y +\nMEM I 100 Memory_Mb y y -\nshort line\nBAD! S - + N Y +\n"
    assert P.parse_vars(text) == [
        P.VarLine("GLIDEIN_Site", "S", "-", "+", False, True, "+"),
        P.VarLine("MEM", "I", "100", "Memory_Mb", True, True, "-"),
    ]


def test_published_attrs_types_defaults_and_overrides() -> None:
    variables = P.parse_vars(
        "GLIDEIN_Site S - + N Y +\n"       # from config
        "CPUS I - + N Y +\n"               # integer
        "BAD_INT I - + N Y +\n"            # not an integer, not required: skipped
        "HAS_X C - + N Y +\n"              # expression/constant as is
        "DEF I 7 Renamed N Y +\n"          # default, renamed in the ad
        "HIDDEN S - + N N +\n"             # not published
        "ABSENT S - + N Y +\n"             # no value, not required
        "OVERRIDE S - + N Y +\n"
    )
    config = {"GLIDEIN_Site": 'My "Site"', "CPUS": " 4 ", "BAD_INT": "four", "HAS_X": "true", "HIDDEN": "h",
              "OVERRIDE": "from config"}
    attrs = P.published_attrs(config, variables, ['OVERRIDE="from argv"'])
    assert attrs == ['GLIDEIN_Site="My \\"Site\\""', "CPUS=4", "HAS_X=true", "Renamed=7", 'OVERRIDE="from argv"']
    with pytest.raises(P.PilotError, match="required variable NEED has no value"):
        P.published_attrs({}, P.parse_vars("NEED S - + Y Y +\n"))


def test_start_expression_ands_every_level() -> None:
    assert P.start_expression({}) == "true"
    assert P.start_expression({"GLIDECLIENT_Start": "Owner == \"a\""}) == 'Owner == "a"'
    expr = P.start_expression({"GLIDEIN_Start": "A", "GLIDEIN_Entry_Start": " ", "GLIDECLIENT_Start": "B",
                               "GLIDECLIENT_Group_Start": "C || D"})
    assert expr == "(A) && (B) && (C || D)"


def test_lifetime_options() -> None:
    config = {"GLIDEIN_Retire_Time": "600", "GLIDEIN_Retire_Time_Spread": "60", "GLIDEIN_Max_Idle": "30",
              "GLIDEIN_Max_Tail": "x", "GLIDEIN_Max_Walltime": "3600", "GLIDEIN_CPUS": "4", "GLIDEIN_MaxMemMBs": "2.5",
              "GLIDEIN_Slots": "2", "GLIDEIN_BLACKHOLE_NUMJOBS": "5", "GLIDEIN_BLACKHOLE_RATE": "0.5"}
    opts = P.lifetime_options(config, elapsed=100)
    pairs = dict(zip(opts[::2], opts[1::2]))
    assert pairs == {"--retire-time": "600", "--max-idle": "30", "--retire-spread": "0.1",
                     "--die-time": str(3600 - 100 - 60), "--cpus": "4", "--blackhole-numjobs": "5",
                     "--blackhole-rate": "0.5", "--slots": "2"}
    part = P.lifetime_options({"SLOTS_LAYOUT": "Partitionable", "GLIDEIN_Slots": "2"})
    assert part == ["--partitionable"]


@given(st.floats(1, 1e6), st.floats(0, 2e6))
def test_die_time_is_positive_and_leaves_a_margin(walltime: float, elapsed: float) -> None:
    opts = P.lifetime_options({"GLIDEIN_Max_Walltime": repr(walltime)}, elapsed=elapsed)
    die = float(opts[opts.index("--die-time") + 1])
    assert die >= 1
    assert die <= max(walltime - elapsed, 1) + 0.5


def test_agent_argv_carries_everything() -> None:
    argv = P.agent_argv("/usr/bin/python3", "/g/agent.pyz", {"GLIDEIN_Max_Idle": "5", P.AGENT_OPTIONS: "--poll-wait 1"},
                        collector="http://c", token_file="/g/token", name="glidein_1@h", log_dir="/g/log",
                        workdir="/g/execute", attrs=["A=1", 'B="x y"'], start="true", ca_file="/ca.pem")
    assert argv[:3] == ["/usr/bin/python3", "/g/agent.pyz", "run"]
    pairs = list(zip(argv[3::2], argv[4::2]))
    assert ("--collector", "http://c") in pairs and ("--token", "/g/token") in pairs
    assert ("--max-idle", "5") in pairs and ("--ca-file", "/ca.pem") in pairs
    assert ("--attr", 'B="x y"') in pairs and argv[-2:] == ["--poll-wait", "1"]


EVENTS = [
    {"type": "claim"}, {"type": "job_start"}, {"type": "job_exit", "exit_code": 0, "wall_seconds": 10.4},
    {"type": "job_start"}, {"type": "job_exit", "exit_code": 3, "wall_seconds": 5},
    {"type": "claim"}, {"type": "job_start"}, {"type": "job_exit", "exit_code": None, "exit_signal": 9, "wall_seconds": "2"},
    {"type": "job_start"}, {"type": "other"},
]


def test_job_stats() -> None:
    stats = R.job_stats(EVENTS)
    assert stats.claims == 2 and stats.started == 4 and stats.total == 4 and stats.bad_other == 1
    assert stats.good_zero == (1, 10.4) and stats.good_nonzero == (1, 5.0) and stats.bad_signal == (1, 2.0)


def test_stats_block_parses_like_the_original() -> None:
    block = R.format_stats(R.job_stats(EVENTS))
    assert block.splitlines()[0] == "=== Stats of main ===" and block.splitlines()[-1] == "=== End Stats of main ==="
    summary = parse_out("Starting glidein_startup.sh at x (1)\nk = 'v'\n" + block)
    [stats] = summary.stats
    assert stats.activations == 2 and stats.jobs == 4
    assert stats.totals["goodZ"] == (1, 10) and stats.totals["goodNZ"] == (1, 5)
    assert stats.totals["badSignal"] == (1, 2) and stats.totals["badOther"] == (1, 0)


@given(st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["claim", "job_start", "job_exit", "x"]),
    "exit_code": st.one_of(st.none(), st.integers(0, 3)),
    "exit_signal": st.one_of(st.none(), st.integers(1, 15)),
    "wall_seconds": st.floats(0, 1e5),
}), max_size=30))
def test_stats_are_consistent(events: list[dict]) -> None:
    stats = R.job_stats(events)
    exits = sum(1 for e in events if e["type"] == "job_exit")
    assert stats.finished == exits and stats.total >= stats.finished and stats.bad_other >= 0
    assert stats.claims == sum(1 for e in events if e["type"] == "claim")
    summary = parse_out(R.format_stats(stats))
    assert summary.stats[0].jobs == stats.total


def test_xml_description_escapes_and_reports_failures() -> None:
    ok = R.xml_description(cwd="/w<1>", host="h&h", start=0, end=60, cmd="gwms-startd.pyz")
    assert "<status>OK</status>" in ok and "/w&lt;1&gt;" in ok and "h&amp;h" in ok
    assert "<tStart>1970-01-01T00:00:00+00:00</tStart>" in ok and "<tEnd>1970-01-01T00:01:00+00:00</tEnd>" in ok
    bad = R.xml_description(cwd="/w", host="h", start=0, end=1, cmd="c", failure=("WN_Resource", "disk < 1 MB"))
    assert "<status>ERROR</status>" in bad and "<detail>disk &lt; 1 MB</detail>" in bad and ">WN_Resource<" in bad
    import xml.dom.minidom

    xml.dom.minidom.parseString(bad)


def test_merge_json_logs_orders_by_timestamp_stably() -> None:
    a = b'{"timestamp":"2024-01-01T00:00:01.000+00:00","n":1}\n{"timestamp":"2024-01-01T00:00:05.000+00:00","n":4}\n'
    b = (b'{"timestamp":"2024-01-01T00:00:02.000+00:00","n":2}\nnot json\n'
         b'{"timestamp":"2024-01-01T00:00:05.000+00:00","n":5}')
    merged = R.merge_json_logs(a, b).splitlines()
    assert merged == [a.splitlines()[0], b.splitlines()[0], b"not json", a.splitlines()[1], b.splitlines()[2]]


@given(st.lists(st.lists(st.integers(0, 50), max_size=10), max_size=4))
def test_merge_keeps_every_line_in_time_order(logs: list[list[int]]) -> None:
    datas = [b"".join(b'{"timestamp":"%05d"}\n' % t for t in sorted(log)) for log in logs]
    merged = R.merge_json_logs(*datas).splitlines()
    assert sorted(merged) == sorted(line for d in datas for line in d.splitlines())
    assert merged == sorted(merged)
