"""edge.quiet_streams: what the exporter and NNCF silence comes back whatever order threads leave in."""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from edge.quiet_streams import silenced


def _interleaved(first_out: str) -> None:
    """Thread A enters, then B; the one named ``first_out`` leaves first (the order that broke
    contextlib.redirect_stdout: B saved A's replacement as the original)."""
    a_in, b_in, a_go, b_go, a_out = (threading.Event() for _ in range(5))
    errors: list[BaseException] = []

    def run(me_in: threading.Event, wait_in: threading.Event | None, go: threading.Event,
            done: threading.Event | None) -> None:
        try:
            if wait_in is not None:
                wait_in.wait(5)
            with silenced(("stdout", "stderr"), warnings_off=True, loggers={"edge.test.quiet": logging.CRITICAL}):
                me_in.set()
                go.wait(5)
            if done is not None:
                done.set()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ta = threading.Thread(target=run, args=(a_in, None, a_go, a_out))
    tb = threading.Thread(target=run, args=(b_in, a_in, b_go, None))
    ta.start()
    tb.start()
    assert b_in.wait(5)
    first, second = (a_go, b_go) if first_out == "a" else (b_go, a_go)
    first.set()
    second.set()
    ta.join(5)
    tb.join(5)
    assert not errors


@pytest.mark.parametrize("first_out", ["a", "b"])
def test_streams_logger_and_warnings_come_back_after_interleaved_threads(first_out: str) -> None:
    out, err = sys.stdout, sys.stderr
    log = logging.getLogger("edge.test.quiet")
    log.setLevel(logging.INFO)
    filters = list(warnings.filters)
    _interleaved(first_out)
    assert sys.stdout is out and sys.stderr is err
    assert log.level == logging.INFO
    assert list(warnings.filters) == filters


def test_inside_the_block_prints_logs_and_warnings_are_dropped(capsys: pytest.CaptureFixture[str],
                                                               caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("edge.test.quiet2")
    with silenced(("stdout", "stderr"), warnings_off=True, loggers={"edge.test.quiet2": logging.CRITICAL}):
        print("hidden out")
        print("hidden err", file=sys.stderr)
        log.error("hidden log")
        with warnings.catch_warnings(record=True) as seen:  # a caller's own catch inside still works
            warnings.simplefilter("always")
            warnings.warn("inner catch still records", stacklevel=1)
        warnings.warn("hidden warning", stacklevel=1)
    print("shown")
    cap = capsys.readouterr()
    assert cap.out == "shown\n" and "hidden" not in cap.err
    assert "hidden log" not in caplog.text
    assert len(seen) == 1


def test_a_block_that_raises_restores_and_nested_blocks_restore_once() -> None:
    out = sys.stdout
    with pytest.raises(RuntimeError), silenced(("stdout",)):
        with silenced(("stdout",)):
            assert sys.stdout is not out
        assert sys.stdout is not out  # the outer block still holds it
        raise RuntimeError("boom")
    assert sys.stdout is out


def test_an_unknown_stream_is_refused_before_anything_changes() -> None:
    out = sys.stdout
    with pytest.raises(ValueError, match="unknown stream 'stdin'"), silenced(("stdout", "stdin")):
        pass
    assert sys.stdout is out


def test_a_checkpoint_read_beside_an_export_leaves_warnings_as_they_were(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: reading a checkpoint muted warnings with its own catch_warnings; an export's quiet block
    ending while a checkpoint was being read (another thread) left every warning ignored for good."""
    torch = pytest.importorskip("torch")
    from edge.models import checkpoint

    path = tmp_path / "w.pt"
    torch.save({"format": "x"}, path)
    inside, leave = threading.Event(), threading.Event()
    load = torch.load

    def slow_load(*a: Any, **k: Any) -> Any:
        inside.set()
        leave.wait(5)
        return load(*a, **k)

    monkeypatch.setattr(torch, "load", slow_load)
    filters = list(warnings.filters)
    entered, done = threading.Event(), threading.Event()

    def export_like() -> None:  # in first, out while the checkpoint is being read
        with silenced(("stdout",), warnings_off=True):
            entered.set()
            inside.wait(5)
        leave.set()
        done.set()

    t = threading.Thread(target=export_like)
    t.start()
    assert entered.wait(5)
    with pytest.raises(Exception, match="not an edge-deploy checkpoint"):
        checkpoint.read_checkpoint(path)
    t.join(5)
    assert done.is_set() and list(warnings.filters) == filters
