"""The startd agent's signal handlers take no lock, so a burst of signals cannot hang it.

A glidein removed from Slurm (``scancel -s TERM -f``) gets SIGTERM twice at once: from
slurmstepd and from the pilot passing its own on. The handlers used to call
``threading.Event.set``; a second signal arriving inside the first handler waited for the
Event's lock forever, and the glidein was killed later without its logs (seen in
tests/integration/test_frontend_slurm_e2e.py). The check runs in a child process, as the
agent does, with the real :func:`install_signal_handlers` and ``Agent`` methods; a hang
makes faulthandler print the stacks and exit 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SHOOTER = """
import os, signal, sys, time
pid, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
while time.monotonic() < end:
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGTERM)
"""

AGENT = textwrap.dedent("""
    import collections, faulthandler, json, os, signal, subprocess, sys, threading
    from gwms.glidein.startd import Agent, install_signal_handlers

    agent = Agent.__new__(Agent)          # only what the handlers and the main loop's wait touch
    agent._signals = collections.deque()
    agent._drain = agent._fast = False
    agent._wake = threading.Event()
    install_signal_handlers(agent)
    faulthandler.dump_traceback_later(30, exit=True)
    shooter = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), "3"])
    loops = 0
    while shooter.poll() is None:         # the agent's main loop: wait, clear, look at the flags
        agent._wake.wait(0.001)
        agent._wake.clear()
        loops += 1
    agent._wake.clear()
    os.kill(os.getpid(), signal.SIGTERM)  # one more: it still wakes the loop
    woke = agent._wake.wait(5)
    faulthandler.cancel_dump_traceback_later()
    print(json.dumps({"loops": loops, "signals": len(agent._signals), "drain": agent._drain,
                      "fast": agent._fast, "woke": woke}))
""")


def test_a_burst_of_double_sigterms_never_hangs_the_agent_and_still_wakes_it() -> None:
    done = subprocess.run([sys.executable, "-c", AGENT, SHOOTER], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, f"the agent hung in a signal handler:\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout)
    assert result["woke"] is True, result
    assert result["drain"] is True and result["fast"] is True, result  # a second SIGTERM: vacate now
    assert result["signals"] > 2 and result["loops"] > 0, result
