"""edge.native_stderr: what native code writes to descriptor 2 during a call is caught; other output comes back."""

from __future__ import annotations

import os

import pytest

from edge.native_stderr import caught


def test_native_lines_are_caught_and_others_written_back(capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    with caught() as said:
        os.write(2, b"libpng error: bad adaptive filter value\n[ERROR:0@0.1] global loadsave.cpp:577 imread_\n\n")
        os.write(2, b"a line another thread wrote meanwhile\n\nCorrupt JPEG data: premature end of data segment\n")
        os.write(2, b"OpenCV: FFMPEG: tag 0x30385056/'VP80' is not supported\n[libvpx-vp9 @ 0x55d] timebase\n")
    assert said == ["libpng error: bad adaptive filter value", "[ERROR:0@0.1] global loadsave.cpp:577 imread_",
                    "Corrupt JPEG data: premature end of data segment",
                    "OpenCV: FFMPEG: tag 0x30385056/'VP80' is not supported", "[libvpx-vp9 @ 0x55d] timebase"]
    # delayed, not lost: the other thread's line and its own blank line (the one after OpenCV's is OpenCV's)
    assert capfd.readouterr().err == "a line another thread wrote meanwhile\n\n"
    os.write(2, b"after\n")  # descriptor 2 is stderr again
    assert capfd.readouterr().err == "after\n"


def test_a_status_line_rewritten_in_place_stays_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    """`edge run --live` rewrites its line with \\r from another thread: split at \\r and joined with \\n, each update
    became a new line while an image was being decoded."""
    capfd.readouterr()
    with caught() as said:
        os.write(2, b"12 frames ... 1.00 cores\r")
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n13 frames ... 1.01 cores\r")
    assert said == ["libpng warning: iCCP: known incorrect sRGB profile"]
    assert capfd.readouterr().err == "12 frames ... 1.00 cores\r13 frames ... 1.01 cores\r"


def test_a_capture_inside_a_capture_hands_its_other_lines_out(capfd: pytest.CaptureFixture[str]) -> None:
    """A plain lock made a nested capture wait for itself forever."""
    capfd.readouterr()
    with caught() as outer:
        with caught() as inner:
            os.write(2, b"libpng warning: a\nsomething else\n")
        os.write(2, b"JPEG datastream contains no image\n")
    assert inner == ["libpng warning: a"] and outer == ["JPEG datastream contains no image"]
    assert capfd.readouterr().err == "something else\n"


def test_an_exception_inside_restores_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError), caught():
        raise ValueError("boom")
    os.write(2, b"still here\n")
    assert capfd.readouterr().err.endswith("still here\n")
