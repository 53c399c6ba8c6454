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

from edge.stream.pipeline import Pipeline
from edge.stream.sources import MemorySource
from tests.stream.test_pipeline import EchoTask, ListSink, _images

REPO = Path(__file__).resolve().parents[2]

_INSIDE_SET = """
import json, os, signal, sys, threading, time
import numpy as np
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
    assert took < 3.0, took  # the drain of up to 50 queued frames at 0.2 s each would take ~10 s
    assert s["frames"] == len(sink.records) < 15
