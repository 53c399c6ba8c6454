"""Signals reach the loop through handlers that take no lock.

Python runs a signal handler in the main thread between any two bytecodes, also while that thread is
inside its own ``threading.Event.set()``; the Event's Condition holds a Lock that is not reentrant, so
a handler that set the Event there waited for itself for good (further signals too): `edge run` hung
after a SIGTERM ~30 ms after its 22nd frame in CI, once in many runs. These tests put the signal at
exactly that moment, and check that a signal anywhere else still stops the loop gracefully and a
second one stops it at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.stream.pipeline import Pipeline
from edge.stream.sources import MemorySource
from tests.stream.test_pipeline import EchoTask, ListSink, _images

REPO = Path(__file__).resolve().parents[2]

_INSIDE_SET = """
import json, os, signal, sys, threading, time
import numpy as np
from edge.errors import EdgeError
from edge.stream.pipeline import Pipeline
from edge.stream.sources import MemorySource
from tests.stream.test_pipeline import EchoTask, ListSink

class SignalInsideSet(threading.Event):
    '''An Event whose set() on the main thread takes SIGTERM then SIGINT while it holds its own lock.'''
    def set(self):
        with self._cond:
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGINT):
                    os.kill(os.getpid(), sig)
                    time.sleep(0.01)  # the handler runs here, at the next bytecode, with the lock held
            self._flag = True
            self._cond.notify_all()

sink = ListSink()
p = Pipeline([MemorySource([np.zeros((8, 8, 3), np.uint8)], count=int(sys.argv[1]))], EchoTask(), [sink],
             policy="block")
p._stop = SignalInsideSet()
s = p.run()
print(json.dumps({"frames": s["frames"], "interrupted": s["interrupted"], "records": len(sink.records),
                  "committed": sink.closed_with}))
"""


@pytest.mark.parametrize("frames", [5, 200])
def test_a_signal_inside_the_loops_own_event_set_does_not_hang(frames: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        r = subprocess.run([sys.executable, "-c", _INSIDE_SET, str(frames)], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the run hung: a signal handler waited for a lock its own thread held")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    # the loop's own stop at the end of the run is where the signals land: every frame is already through
    assert out == {"frames": frames, "interrupted": True, "records": frames, "committed": True}, out


def _in_main_thread() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")


def test_a_signal_mid_run_stops_gracefully() -> None:
    _in_main_thread()
    sink = ListSink()
    p = Pipeline([MemorySource(_images(2), count=3000, fps=200)], EchoTask(delay=0.002), [sink], policy="block")
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    t = time.monotonic()
    timer.start()
    s = p.run()
    took = time.monotonic() - t
    assert s["interrupted"] is True and sink.closed_with is True
    assert 10 < s["frames"] == len(sink.records) < 3000
    assert [r["cam"] for r in sink.records] == list(range(s["frames"]))  # graceful: nothing lost up to the stop
    assert took < 0.5 + p.DRAIN_GRACE_S + 5, took
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


def test_a_second_signal_stops_at_once() -> None:
    """First signal: graceful (queued frames still processed); second: the stages stop now, and what was
    written so far is still committed."""
    _in_main_thread()
    sink = ListSink()
    # a slow model and a full queue: the graceful drain alone would take many seconds
    p = Pipeline([MemorySource(_images(2), count=10_000)], EchoTask(delay=0.2), [sink], policy="block", capacity=50)

    def twice() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Timer(0.5, twice).start()
    t = time.monotonic()
    s = p.run()
    took = time.monotonic() - t
    assert s["interrupted"] is True and sink.closed_with is True
    # the graceful drain of the ~50 queued frames at 0.2 s each would take ~10 s and process them all
    assert s["frames"] == len(sink.records) < 15, s["frames"]
    assert took < 6.0, took


def test_the_first_signal_after_an_internal_stop_is_still_graceful() -> None:
    """--max-frames (or a display's quit) stops the loop itself; a user's first Ctrl-C while it drains is a
    graceful stop, not the second signal that discards the queued results."""
    _in_main_thread()
    sink = ListSink()
    p = Pipeline([MemorySource(_images(2), count=1000)], EchoTask(delay=0.3), [sink], policy="block", max_frames=6)

    def signal_once_stopping() -> None:
        deadline = time.monotonic() + 30
        while not p.stopping and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=signal_once_stopping, daemon=True).start()
    s = p.run()
    assert s["interrupted"] is True and sink.closed_with is True
    assert s["frames"] == len(sink.records) == 6, s["frames"]


class StuckSink(ListSink):
    """A sink whose writes block after ``after`` results (a hung network file system, a frozen display)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.release = after, threading.Event()

    def write(self, result: object) -> None:
        if len(self.records) >= self.after:
            self.release.wait(60)
        super().write(result)


def test_a_stage_stuck_for_good_does_not_make_the_run_unkillable() -> None:
    """Two signals, and the post stage never returns: the loop gives up on it ABORT_GRACE_S after the abort
    with a one-line error and keeps nothing, instead of waiting for SIGKILL."""
    _in_main_thread()
    sink = StuckSink(after=3)
    p = Pipeline([MemorySource(_images(2), count=1000)], EchoTask(delay=0.01), [sink], policy="block")
    p.ABORT_GRACE_S = 1.0

    def twice() -> None:
        deadline = time.monotonic() + 30
        while len(sink.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)

    threading.Thread(target=twice, daemon=True).start()
    t = time.monotonic()
    try:
        with pytest.raises(EdgeError, match="postprocess did not stop within 1 s of the abort") as ei:
            p.run()
        took = time.monotonic() - t
    finally:
        sink.release.set()
    assert "\n" not in str(ei.value) and sink.closed_with is False and p.gave_up  # edge.stream.run: no task.close
    assert took < 20, took


def test_keyboard_interrupt_without_handlers_stops_every_stage_before_the_sinks_close() -> None:
    """run(handle_signals=False) leaves Ctrl-C to Python (KeyboardInterrupt out of the join): the stages and
    sources stop before the sinks are discarded, and nothing is written to a sink after its close."""
    _in_main_thread()

    class ClosedCheck(ListSink):
        after_close = 0

        def write(self, result: object) -> None:
            if self.closed_with is not None:
                ClosedCheck.after_close += 1
            super().write(result)

    sink = ClosedCheck()
    p = Pipeline([MemorySource(_images(2), count=100_000, fps=500)], EchoTask(delay=0.002), [sink], policy="block")
    # Python's own Ctrl-C handler: a test run in the background (nohup, `cmd &`) inherits SIGINT ignored
    theirs = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    before = {t.ident for t in threading.enumerate()}
    try:
        with pytest.raises(KeyboardInterrupt):
            p.run(handle_signals=False)
    finally:
        signal.signal(signal.SIGINT, theirs)
    time.sleep(0.3)
    assert sink.closed_with is False and ClosedCheck.after_close == 0
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == [], left


def test_jsonl_partial_is_removed_when_the_commit_is_interrupted(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt inside the commit (library use without handlers) leaves neither the partial file
    nor the folders the sink made."""
    from types import SimpleNamespace

    from edge.stream.sinks import JsonlSink

    sink = JsonlSink(tmp_path / "new" / "r.jsonl")
    sink.open()
    sink.write(SimpleNamespace(record={"a": 1}))

    def interrupted(_fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sink.close(commit=True)
    assert not (tmp_path / "new").exists()


def test_signals_left_ignored_are_swapped_straight_from_the_runs_handlers() -> None:
    """``signals(then=SIG_IGN)`` (what `edge run` asks once committed) leaves SIG_IGN with no default handler
    in between; without ``then`` the caller's handlers come back."""
    _in_main_thread()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        p = Pipeline([MemorySource(_images(2), count=3)], EchoTask(), [ListSink()], policy="block")
        with p.signals(then=signal.SIG_IGN):
            assert signal.getsignal(signal.SIGINT) not in (before[signal.SIGINT], signal.SIG_IGN)  # the run's own
            p.run()
        assert {s: signal.getsignal(s) for s in before} == dict.fromkeys(before, signal.SIG_IGN)
        with p.signals():
            pass
        assert {s: signal.getsignal(s) for s in before} == dict.fromkeys(before, signal.SIG_IGN)  # what it found
        for s, h in before.items():
            signal.signal(s, h)
        with pytest.raises(RuntimeError), p.signals(then=signal.SIG_IGN):  # a failed block: what it found
            raise RuntimeError("the run failed")
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_edge_run_in_process_gives_the_callers_handlers_back(tiny_bundle: Path, tmp_path: Path) -> None:
    """A caller running the CLI in its own process (not the `edge` command) gets its handlers back after a
    committed run and after a failed one."""
    _in_main_thread()
    from edge.cli.main import _invoke, app

    def mine(_s: int, _f: object) -> None:
        pass

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in before:
            signal.signal(s, mine)
        assert _invoke(app, ["run", str(tiny_bundle), "--source", "synthetic:2", "--out", str(tmp_path / "o")],
                       "edge") == 0
        assert all(signal.getsignal(s) is mine for s in before)
        assert _invoke(app, ["run", str(tiny_bundle), "--source", str(tmp_path / "missing.mp4")], "edge") == 2
        assert all(signal.getsignal(s) is mine for s in before)
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_the_model_closes_with_signals_already_ignored(tiny_bundle: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What `edge run` asks (``signals_after=SIG_IGN``) holds from the commit on, also while the runtime is
    torn down: a Ctrl-C there once met Python's default handler and exited 130 after every output was written."""
    _in_main_thread()
    import edge.stream.task as task_mod
    from edge.stream.api import run

    seen: list[object] = []
    close = task_mod.FamilyTask.close

    def recording_close(self: object) -> None:
        seen.append(signal.getsignal(signal.SIGINT))
        close(self)

    monkeypatch.setattr(task_mod.FamilyTask, "close", recording_close)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run(tiny_bundle, "synthetic:2", jsonl=tmp_path / "r.jsonl", signals_after=signal.SIG_IGN)
        assert seen == [signal.SIG_IGN]
    finally:
        for s, h in before.items():
            signal.signal(s, h)


class SlowToOpen(MemorySource):
    """Opens like a synthetic source rendering ahead: long, polling stop_asked() (a SIGTERM arrives meanwhile)."""

    def open(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        t = time.monotonic()
        while not self.stop_asked() and time.monotonic() - t < 10:
            time.sleep(0.01)
        self.waited = time.monotonic() - t


def test_a_signal_while_the_sources_open_is_an_interrupt_not_a_run_of_no_frames() -> None:
    """Ctrl-C during a synthetic source's pre-render kept rendering ~10 s, then `edge run` said "no frames
    were processed" with exit 2 (bad input); now the source stops rendering and the run is interrupted."""
    _in_main_thread()
    sink = ListSink()
    src = SlowToOpen(_images(2), count=10)
    p = Pipeline([src], EchoTask(), [sink], policy="block")
    with pytest.raises(KeyboardInterrupt):
        p.run()
    assert src.waited < 2 and sink.records == [] and sink.closed_with is not True
