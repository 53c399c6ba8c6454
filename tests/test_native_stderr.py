"""edge.native_stderr: what native code writes to descriptor 2 during a call is caught; other lines come back."""

from __future__ import annotations

import os

import pytest

from edge.native_stderr import caught


def test_native_lines_are_caught_and_others_written_back(capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    with caught() as said:
        os.write(2, b"libpng error: bad adaptive filter value\n[ERROR:0@0.1] global loadsave.cpp:577 imread_\n")
        os.write(2, b"a line another thread wrote meanwhile\n\nCorrupt JPEG data: premature end of data segment\n")
    assert said == ["libpng error: bad adaptive filter value", "[ERROR:0@0.1] global loadsave.cpp:577 imread_",
                    "Corrupt JPEG data: premature end of data segment"]
    assert capfd.readouterr().err == "a line another thread wrote meanwhile\n"  # delayed, not lost
    os.write(2, b"after\n")  # descriptor 2 is stderr again
    assert capfd.readouterr().err == "after\n"


def test_an_exception_inside_restores_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError), caught():
        raise ValueError("boom")
    os.write(2, b"still here\n")
    assert capfd.readouterr().err.endswith("still here\n")
