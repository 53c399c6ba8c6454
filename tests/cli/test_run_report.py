"""`edge run`'s human summary: the notes a run carries are printed, one line each."""

from __future__ import annotations

import io

from rich.console import Console

from edge.cli.run_cmd import _report


def _summary(**extra: object) -> dict:
    stage = {"p50_ms": 5.0, "p99_ms": 9.0}
    return {"frames": 3, "end_to_end": stage, "stages": {"infer": stage}, "task": {"precision": "int8"},
            "counters": {}, "policy": "block", "fps": 30.0, "interrupted": False, "outputs": {},
            "waiting": {}, **extra}


def test_notes_are_printed_one_line_each() -> None:
    out = io.StringIO()
    _report(_summary(notes=["this CPU has no int8 dot-product instructions"]), "x.mp4", "openvino", False,
            Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("3 frames on openvino int8") and lines[-1] == (
        "note: this CPU has no int8 dot-product instructions")
    out = io.StringIO()
    _report(_summary(), "x.mp4", "openvino", False, Console(file=out, width=200))
    assert "note:" not in out.getvalue()
