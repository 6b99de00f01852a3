"""A job whose executable is a symbolic link runs to completion on a real pool.

Regression: ``executable = /bin/sh`` (a link on Debian: /bin -> usr/bin, sh -> dash) with
the default ``transfer_executable = true`` was held with "No such file": the client packed
the link, the archive builder dropped it, and the sandbox had no ``sh``. The link is now
resolved on the submit side and the file's content travels under the link's name.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pool_fixtures import NegotiatedPool, start_negotiated_pool
from waiting import wait_until

from gwms.pool.schedd.sandbox import SandboxError

pytestmark = pytest.mark.integration


@pytest.fixture()
def pool(tmp_path: Path) -> Iterator[NegotiatedPool]:
    yield from start_negotiated_pool(tmp_path / "pool", match_timeout=3.0, claim_timeout=3.0)


def submit(pool: NegotiatedPool, tmp: Path, text: str) -> int:
    with pool.schedd() as s:
        return s.submit_text(textwrap.dedent(text), base_dir=tmp).cluster_id


def test_linked_executables_are_transferred_and_run(pool: NegotiatedPool, tmp_path: Path) -> None:
    pool.start_agent("linky", "--slots", "2", "--cpus", "2", "--memory", "2000", "--disk", "2000000")
    (tmp_path / "script.sh").write_text('echo "ran by $0 with $1"\necho done > result.txt\n')
    (tmp_path / "my-shell").symlink_to("/bin/sh")  # a link whatever /bin/sh is on this machine
    system_sh = submit(pool, tmp_path, """
        executable = /bin/sh
        arguments = script.sh one
        transfer_input_files = script.sh
        output = out.txt
        error = err.txt
        queue
    """)
    own_link = submit(pool, tmp_path, """
        executable = my-shell
        arguments = script.sh two
        transfer_input_files = script.sh
        output = out.txt
        queue
    """)
    with pool.schedd() as s:
        hist = wait_until(lambda: (h := s.history()) and len(h) == 2 and h, timeout=60)
        by_cluster = {j["ClusterId"]: j for j in hist}
        for cluster, word in ((system_sh, "one"), (own_link, "two")):
            job = by_cluster[cluster]
            assert job["JobStatus"] == 4 and job["ExitCode"] == 0, job
            out = s.http.request("GET", f"/v1/jobs/{cluster}.0/output/out.txt", raw=True).decode()
            assert out.startswith("ran by script.sh with " + word), out
            assert s.http.request("GET", f"/v1/jobs/{cluster}.0/output/result.txt", raw=True) == b"done\n"


def test_a_linked_user_input_is_refused_at_submit(pool: NegotiatedPool, tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("data")
    os.symlink(tmp_path / "real.txt", tmp_path / "data.txt")
    with pytest.raises(SandboxError, match="symbolic link"):
        submit(pool, tmp_path, """
            executable = /bin/cat
            arguments = data.txt
            transfer_input_files = data.txt
            queue
        """)
