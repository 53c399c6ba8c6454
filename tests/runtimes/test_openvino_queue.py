"""OpenVINO's async queue reports errors as ours: a callback that raises and a request that fails are one
EdgeError each, raised once, and the queue goes on (OpenVINO itself re-raises a callback's exception at
every later call and aborted the process at the second one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnx")


def _reshape_graph(path: Path) -> Path:
    """x [n] -> relu(reshape(x, [2, -1])): runs for an even n, fails inside OpenVINO for an odd one."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])],
                          "reshape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, "m"])],
                          [numpy_helper.from_array(np.array([2, -1], np.int64), "shape")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    return path


IO = "IOSpec((TensorSpec('x', 'float32', ('n',)),), (TensorSpec('y', 'float32', (2, 'm')),))"


def test_a_callback_that_raises_is_one_error_and_the_queue_goes_on(tmp_path: Path) -> None:
    path = _reshape_graph(tmp_path / "g.onnx")
    code = f"""
import numpy as np
from edge.errors import EdgeError
from edge.runtimes.openvino import OpenVinoRuntime
from edge.spec import IOSpec, TensorSpec
rt = OpenVinoRuntime({str(path)!r}, {IO})
seen = []
def cb(outs, ud):
    if ud == 1:
        raise KeyError("sink failed")
    seen.append(ud)
q = rt.infer_queue(1, cb)
x = np.arange(4, dtype=np.float32) - 1
errors = []
for i in range(3):
    try:
        q.submit({{"x": x}}, i)
    except EdgeError as e:
        errors.append(str(e))
try:
    q.wait()
except EdgeError as e:
    errors.append(str(e))
q.wait()
q.submit({{"x": x}}, 3)
q.wait()
print(len(errors), errors[0] if errors else "", sorted(seen))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    n, rest = r.stdout.strip().split(" ", 1)
    assert n == "1" and "openvino async job 1: its callback raised KeyError: 'sink failed'" in rest, r.stdout
    assert rest.endswith("[0, 2, 3]") or rest.endswith("[0, 3]"), r.stdout  # job 2 may be the one refused


def test_a_failed_request_is_one_error_and_the_next_frame_runs(tmp_path: Path) -> None:
    from edge.errors import EdgeError
    from edge.runtimes.openvino import OpenVinoRuntime
    from edge.spec import IOSpec, TensorSpec

    rt = OpenVinoRuntime(str(_reshape_graph(tmp_path / "g.onnx")),
                         IOSpec((TensorSpec("x", "float32", ("n",)),), (TensorSpec("y", "float32", (2, "m")),)))
    got: list[tuple[object, np.ndarray]] = []
    q = rt.infer_queue(1, lambda outs, ud: got.append((ud, outs["y"])))
    with pytest.raises(EdgeError, match=r"openvino async request failed: .*reshape"):
        q.submit({"x": np.zeros(3, np.float32)}, "odd")
        q.wait()
    q.submit({"x": np.arange(4, dtype=np.float32) - 1}, "even")
    q.wait()
    assert [u for u, _ in got] == ["even"] and got[0][1].tolist() == [[0, 0], [1, 2]]


def test_a_failed_request_among_others_in_flight_neither_hangs_nor_aborts(tmp_path: Path) -> None:
    """Two requests in flight, one fails: the queue waits for the other before it is rebuilt (wait_all stops
    at the failed one; a queue destroyed with a request running could hang), and every failure is an
    EdgeError, never an abort. (After such a failure OpenVINO 2026.4's CPU plugin keeps failing this
    dynamic-shape graph even on fresh requests of the same compiled model, so later frames are not asserted.)"""
    path = _reshape_graph(tmp_path / "g.onnx")
    code = f"""
import numpy as np
from edge.errors import EdgeError
from edge.runtimes.openvino import OpenVinoRuntime
from edge.spec import IOSpec, TensorSpec
rt = OpenVinoRuntime({str(path)!r}, {IO})
q = rt.infer_queue(2, lambda outs, ud: None)
even, odd = np.arange(4096, dtype=np.float32), np.zeros(3, np.float32)
errors = 0
for i, x in enumerate((even, odd, even, even, even)):
    try:
        q.submit({{"x": x}}, i)
    except EdgeError:
        errors += 1
for _ in range(3):
    try:
        q.wait()
    except EdgeError:
        errors += 1
print(errors)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.split()[-1]) >= 1, r.stdout


def test_a_script_that_ends_with_requests_in_flight_exits_cleanly(tmp_path: Path) -> None:
    """A queue destroyed at interpreter exit with requests still running aborted the process ("terminate called
    without an active exception", exit -6; seen in the suite under load). Queues are drained at exit."""
    path = _reshape_graph(tmp_path / "g.onnx")
    code = f"""
import atexit, numpy as np
from edge.runtimes import openvino as ovr
from edge.spec import IOSpec, TensorSpec
rt = ovr.OpenVinoRuntime({str(path)!r}, {IO})
q = rt.infer_queue(2, lambda outs, ud: None)
for i in range(6):
    q.submit({{"x": np.arange(4096, dtype=np.float32)}}, i)
print(len(ovr._LIVE_QUEUES))
"""
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.split()[-1] == "1", (r.returncode, r.stderr[-2000:])


def test_the_exit_drain_is_bounded_and_closes_the_queue(tmp_path: Path) -> None:
    """The exit drain waited without limit: a callback blocked for ever (a consumer that died) held the process
    (SIGINT could not stop it). A thread still submitting during the drain destroyed the queue with requests in
    flight (exit 134). Now the queue is closed to new requests first and the wait is bounded."""
    import time

    path = _reshape_graph(tmp_path / "g.onnx")
    head = f"""
import threading, time, numpy as np
from edge.errors import EdgeError
from edge.runtimes import openvino as ovr
from edge.spec import IOSpec, TensorSpec
rt = ovr.OpenVinoRuntime({str(path)!r}, {IO})
"""
    blocked = head + """
q = rt.infer_queue(2, lambda outs, ud: threading.Event().wait())
q.submit({"x": np.arange(8, dtype=np.float32)}, 0)
time.sleep(0.2)
"""
    submitting = head + """
q = rt.infer_queue(2, lambda o, u: None)
def loop():
    while True:
        try:
            q.submit({"x": np.arange(1 << 18, dtype=np.float32)}, 0)
        except EdgeError:
            return
threading.Thread(target=loop, daemon=True).start()
time.sleep(0.3)
"""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30, "the exit waited for a callback that never returns"
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", submitting], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])


def test_a_callback_that_submits_again_and_the_drain_over_many_queues(tmp_path: Path) -> None:
    """A callback that hands a new frame to the queue (from a thread) is served, and the exit drain over several
    stuck queues takes about EXIT_DRAIN_S in all: each queue's closing waited its own second before."""
    path = _reshape_graph(tmp_path / "g.onnx")
    code = f"""
import atexit, threading, time, numpy as np
from edge.errors import EdgeError
from edge.runtimes import openvino as ovr
from edge.spec import IOSpec, TensorSpec
T = {{}}
atexit.register(lambda: print("drain", round(time.monotonic() - T["end"], 2), flush=True))  # runs after the drain
rt = ovr.OpenVinoRuntime({str(path)!r}, {IO})
done = []
def cb(outs, ud):
    done.append(ud)
    if ud == 0:
        threading.Thread(target=lambda: q.submit({{"x": np.arange(8, dtype=np.float32)}}, 100)).start()
q = rt.infer_queue(2, cb)
for i in range(20):
    q.submit({{"x": np.arange(8, dtype=np.float32)}}, i)
q.wait()
time.sleep(0.2)
q.wait()
stuck = [rt.infer_queue(1, lambda o, u: threading.Event().wait()) for _ in range(4)]
for s in stuck:
    s.submit({{"x": np.arange(8, dtype=np.float32)}}, 0)
    threading.Thread(target=lambda s=s: s.submit({{"x": np.arange(8, dtype=np.float32)}}, 1), daemon=True).start()
time.sleep(0.3)
print(sorted(done)[-1], flush=True)
T["end"] = time.monotonic()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    out = r.stdout.split()
    assert out[:1] == ["100"] and out[1] == "drain", (r.returncode, r.stdout, r.stderr[-1000:])
    assert float(out[2]) < 3.5, out  # about EXIT_DRAIN_S for the four stuck queues together, not a second each

