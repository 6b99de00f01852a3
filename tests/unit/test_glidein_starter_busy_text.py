"""The starter tries the exec again when the freshly written executable is briefly
"Text file busy" (another slot's child still held it open), and only then."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from gwms.glidein import starter


def flaky_popen(failures: int, code: int = errno.ETXTBSY):
    calls = {"n": 0}
    real = subprocess.Popen

    def popen(argv, **kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise OSError(code, "busy")
        return real(argv, **kwargs)

    return popen, calls


def test_text_file_busy_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    popen, calls = flaky_popen(3)
    monkeypatch.setattr(starter.subprocess, "Popen", popen)
    proc = starter._popen_retrying_busy_text([sys.executable, "-c", "pass"])
    assert proc.wait(10) == 0 and calls["n"] == 4


def test_other_errors_and_lasting_busy_text_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    popen, calls = flaky_popen(1, errno.ENOENT)
    monkeypatch.setattr(starter.subprocess, "Popen", popen)
    with pytest.raises(OSError) as info:
        starter._popen_retrying_busy_text(["x"])
    assert info.value.errno == errno.ENOENT and calls["n"] == 1
    popen, calls = flaky_popen(100)
    monkeypatch.setattr(starter.subprocess, "Popen", popen)
    with pytest.raises(OSError) as info:
        starter._popen_retrying_busy_text(["x"], attempts=3)
    assert info.value.errno == errno.ETXTBSY and calls["n"] == 3
