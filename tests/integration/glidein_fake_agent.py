"""A stand-in for the startd agent zipapp in glidein tests (``GWMS_GLIDEIN_AGENT``).

Called as ``python3 glidein_fake_agent.py run --collector URL --token FILE ... --log-dir DIR``,
it records its command line as JSON in ``$GWMS_FAKE_AGENT_RECORD`` (if set), writes daemon
logs like the agent's into ``--log-dir`` (StartdLog and its rotated ``.old``, StarterLog,
StarterLog.slot1, StartdEvents.jsonl with claims, job starts and exits), waits
``$GWMS_FAKE_AGENT_SLEEP`` seconds (SIGTERM ends the wait; the signal is logged) and exits
with ``$GWMS_FAKE_AGENT_EXIT`` (default 0). Standard library only.
"""

import json
import os
import signal
import sys
import time
from datetime import datetime, timezone


def stamp(t):
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")  # noqa: UP017 - runs on 3.9


def option(argv, name):
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]
    return values[-1] if values else None


def main():
    argv = sys.argv[1:]
    token = option(argv, "--token")
    with open(token) as f:
        token_text = f.read().strip()
    record = os.environ.get("GWMS_FAKE_AGENT_RECORD")
    if record:
        with open(record, "a") as f:
            f.write(json.dumps({"argv": argv, "token": token_text, "cwd": os.getcwd(),
                                "env": {k: v for k, v in os.environ.items() if k.startswith("GLIDEIN")}}) + "\n")
    log_dir = option(argv, "--log-dir")
    os.makedirs(log_dir, exist_ok=True)
    now = time.time()
    day = time.strftime("%m/%d/%y %H:%M:%S", time.localtime(now))
    with open(os.path.join(log_dir, "StartdLog.old"), "w") as f:
        f.write(f"{day} (pid:{os.getpid()}) rotated part of the startd log\n")
    with open(os.path.join(log_dir, "StartdLog"), "w") as f:
        f.write(f"{day} gwms startd fake {option(argv, '--name')} starting, collector {option(argv, '--collector')}\n")
        f.write(f"{day} START is {option(argv, '--start')}; token has {len(token_text)} characters\n")
    with open(os.path.join(log_dir, "StarterLog"), "w") as f:
        f.write(f"{day} Job 1.0 started on slot1\n")
    with open(os.path.join(log_dir, "StarterLog.slot1"), "w") as f:
        f.write("".join(f"{day} Starter line {i} for slot1 <10.0.0.{i}:9618>\n" for i in range(200)))
    events = [
        {"type": "start", "content": "starting"},
        {"type": "claim", "content": "claimed slot1"},
        {"type": "job_start", "content": "Starting job 1.0", "filename": "StarterLog.slot1"},
        {"type": "job_exit", "content": "Job 1.0 exited", "exit_code": 0, "exit_signal": None, "wall_seconds": 3.5},
        {"type": "claim", "content": "claimed slot1 again"},
        {"type": "job_start", "content": "Starting job 1.1"},
        {"type": "job_exit", "content": "Job 1.1 exited", "exit_code": 2, "exit_signal": None, "wall_seconds": 1.5},
        {"type": "job_start", "content": "Starting job 1.2"},
        {"type": "job_exit", "content": "Job 1.2 exited", "exit_code": None, "exit_signal": 9, "wall_seconds": 1.0},
        {"type": "job_start", "content": "Starting job 1.3 (vacated)"},
    ]
    with open(os.path.join(log_dir, "StartdEvents.jsonl"), "w") as f:
        for i, ev in enumerate(events):
            rec = {"invoker": "startd", "pid": os.getpid(), "timestamp": stamp(now + i * 0.001), "severity": "info",
                   "filename": "StartdLog"}
            rec.update(ev)
            f.write(json.dumps(rec) + "\n")
    got = []
    signal.signal(signal.SIGTERM, lambda s, fr: got.append(s))
    deadline = time.time() + float(os.environ.get("GWMS_FAKE_AGENT_SLEEP", "0"))
    while time.time() < deadline and not got:
        time.sleep(0.05)
    if got:
        with open(os.path.join(log_dir, "StartdLog"), "a") as f:
            f.write(f"{day} got signal SIGTERM\n")
    sys.exit(int(os.environ.get("GWMS_FAKE_AGENT_EXIT", "0")))


if __name__ == "__main__":
    main()
