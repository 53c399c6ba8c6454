"""OpenVINO backend: read the bundle's ONNX (plugin graphs through our attention extension), compile
for a device with explicit precision and performance hints, run synchronous requests.

OpenVINO defaults to bf16 inference on CPUs with AVX512-BF16, so ``inference_precision="f32"`` (default)
sets ``INFERENCE_PRECISION_HINT=f32`` for parity; "bf16"/"f16" are explicit opt-ins, and "auto" is bf16
only where the CPU computes bf16 natively (:func:`native_bf16`), else f32. An INT8 IR whose accuracy gate
passed with bf16 float layers runs with "auto" by default (see :func:`load`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendUnavailable, BundleError, DataError, EdgeError, first_line
from edge.runtimes.base import BaseRuntime
from edge.runtimes.registry import Backend
from edge.spec import IOSpec

_PRECISIONS = {"f32", "bf16", "f16", "auto"}
_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def core() -> Any:
    """The process's one ``ov.Core`` (with our attention extension), kept for the process's life.

    One Core, not one per runtime: each Core's CPU plugin sets an alternate signal stack on the thread
    that loads it and, when destroyed, restores the one it found. Two Cores destroyed in the order they
    were made (a program closing its encoder, then its head) restore a stack the first one already
    freed, and the next signal that thread takes (a Ctrl-C, SIGTERM) kills the process with SIGSEGV
    (OpenVINO 2026.4: tests/runtimes/test_openvino_ir.py). Made under a lock: two threads opening
    their first runtimes at once must not make two.
    """
    global _CORE
    if _CORE is None:
        with _CORE_LOCK:
            if _CORE is None:
                import openvino as ov

                from edge.runtimes.plugins.openvino_ext import edge_attention_extension

                c = ov.Core()
                c.add_extension(edge_attention_extension())
                _CORE = c
    return _CORE


@functools.lru_cache(maxsize=4)
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16).

    OpenVINO also accepts a bf16 hint on AVX-512 CPUs without it and emulates bf16 there, which is slower
    than f32 (OpenVINO's bf16 notes), so "auto" takes bf16 only where it is native.
    """
    from edge.bench.machine import machine

    return bool({"BF16", "AMX-BF16"} & set(machine(cpuinfo)["isa"]))


def one_thread(threads: int | None) -> bool:
    """Whether OpenVINO will run with one thread: asked for (``threads`` 1), or on a process allowed on one
    core only, whatever was asked (OpenVINO clamps INFERENCE_NUM_THREADS to the cores the process may use:
    2 threads asked under ``taskset -c 0`` compile with 1)."""
    if threads and int(threads) == 1:
        return True
    try:
        return len(os.sched_getaffinity(0)) == 1
    except (AttributeError, OSError):  # not Linux
        return (os.cpu_count() or 2) == 1


def runs_on_cpu(device: str) -> bool:
    """Whether ``device`` compiles on the CPU plugin: "CPU", or "AUTO"/"HETERO"/"MULTI" whose priority list
    names it ("AUTO:GPU,CPU"; bare "AUTO" may pick it). CPU-only properties (pinning, snippets) apply there
    too, and these devices accept them."""
    kind, _, devices = device.partition(":")
    if kind.split(".")[0] == "CPU":
        return True
    if kind in ("AUTO", "HETERO", "MULTI"):
        return not devices or "CPU" in {d.split(".")[0] for d in devices.split(",")}
    return False


def resolve_precision(inference_precision: str) -> str:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``f32``; other values unchanged."""
    if inference_precision != "auto":
        return inference_precision
    return "bf16" if native_bf16() else "f32"


def ov_error_line(e: BaseException) -> str:
    """The line of an OpenVINO exception that says what went wrong: its text is a trace of "Exception from
    src/..." lines with the reason last (``first_line`` alone gave only the first source location)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    said = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    return (said or lines or [type(e).__name__])[-1][:300]


def _available() -> tuple[bool, str]:
    try:
        import openvino as ov
    except Exception as e:  # not installed, or broken (torch without a CUDA library it links: an OSError)
        from edge.deps import import_failure

        return False, import_failure("openvino", e)
    try:
        devices = core().available_devices
    except Exception as e:  # a broken plugin install should be a reason, not a crash
        return False, f"openvino {ov.__version__} cannot list devices ({type(e).__name__})"
    return True, f"openvino {ov.__version__} ({', '.join(devices)})"


def read_model(path: str) -> Any:
    """Read ONNX (plugin nodes through our extension) or IR (.xml) into an ``ov.Model``."""
    ovc = core()  # outside the try: a broken install is not this model's fault
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        _check_onnx(path)
    elif suffix == ".xml":
        _check_ir(path)
    try:
        return ovc.read_model(path)
    except Exception as e:  # the reason is the exception's last line (ov_error_line), often the weights file's
        msg = ov_error_line(e)
        raise BundleError(f"{_model_files(path)}: openvino cannot read this model ({msg})") from None


def _check_onnx(path: str) -> None:
    """Refuse a file that does not parse as an ONNX model before OpenVINO sees it: OpenVINO then tries its other
    frontends on it, and TensorFlow's text parser prints a dozen native log lines before the one-line error."""
    import onnx

    try:
        onnx.load_model(path, load_external_data=False)
    except Exception as e:  # DecodeError, or an OSError for an unreadable file
        raise BundleError(f"{path}: not an ONNX model ({first_line(e, 120)})") from None


def _check_ir(path: str) -> None:
    """Refuse an ``.xml`` that is not XML at all (its first byte past a byte-order mark and white space is not
    ``<``); why: :func:`_check_onnx`. Anything XML-like is OpenVINO's to judge (an IR may open with a long comment,
    or be UTF-16)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise BundleError(f"{path}: cannot read ({first_line(e, 120)})") from None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16
        return
    if not head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):
        raise BundleError(f"{path}: not an OpenVINO IR (not XML)")


def _model_files(path: str) -> str:
    """``path``, and for an IR its weights file too: a damaged ``.bin`` fails the read of its ``.xml``."""
    p = Path(path)
    return f"{p} (with {p.with_suffix('.bin').name})" if p.suffix.lower() == ".xml" else str(p)


def save_ir(src: str, xml_path: str, *, compress_to_fp16: bool = False) -> list[str]:
    """Convert an ONNX file to IR (``.xml`` + ``.bin``); returns both file names.

    Weights stay fp32 by default (``ov.save_model`` would compress them to fp16), so the IR is the
    exact model that passed parity; pass ``compress_to_fp16=True`` for half-size weights.
    """
    import openvino as ov

    ov.save_model(read_model(src), xml_path, compress_to_fp16=compress_to_fp16)
    xml = Path(xml_path)
    return [xml.name, xml.with_suffix(".bin").name]


class OpenVinoRuntime(BaseRuntime):
    """A compiled OpenVINO model behind the Runtime protocol.

    ``front`` (an ``ImageInput``): that input takes uint8 BGR camera frames [1, H, W, 3] and the
    PrePostProcessor steps of :func:`edge.runtimes.front.openvino_front` run inside the compiled model.
    The model is compiled for the camera's size when the first frame of that size arrives (a reshape,
    not a re-export; the sizes prepared before the first frame, and the last few others, stay compiled).
    """

    backend = "openvino"
    #: camera sizes kept compiled beside the prepared ones (a stream has one; a folder of mixed images a few)
    SIZES_KEPT = 4
    #: camera sizes kept for good when announced before the first frame (a rig's cameras; a caller announcing
    #: sizes for ever does not grow the compiled models without bound)
    SIZES_PREPARED = 16

    def __init__(self, model_path: str, io: IOSpec, *, device: str = "CPU", inference_precision: str = "f32",
                 hint: str = "latency", threads: int = 0, streams: int = 0, front: Any = None,
                 pinning: bool = False) -> None:
        if front is not None:
            from edge.runtimes.front import camera_io

            io = camera_io(io, front)
        super().__init__(io)
        if not isinstance(device, str):  # an int was "'int' object has no attribute 'partition'"
            raise EdgeError(f"openvino device: a device name (CPU, GPU, AUTO, ...), got {device!r}")
        if inference_precision not in _PRECISIONS:
            raise EdgeError(f"openvino inference precision {inference_precision!r}: choose one of "
                            f"{sorted(_PRECISIONS)}")
        if hint not in _HINTS:
            raise EdgeError(f"openvino hint {hint!r}: choose one of {sorted(_HINTS)}")
        on_cpu = runs_on_cpu(device)
        if device.split(":")[0] == "CPU":  # the CPU alone: AUTO/HETERO may hand the hint to another device
            inference_precision = resolve_precision(inference_precision)
        elif inference_precision == "auto":  # native bf16 is a CPU question; elsewhere the exact form
            inference_precision = "f32"
        ovc = core()
        if device.split(":")[0] not in {d.split(".")[0] for d in ovc.available_devices} | {"AUTO", "HETERO"}:
            raise BackendUnavailable(f"openvino device {device!r} not available (have {ovc.available_devices})")
        model = read_model(model_path)
        names = [p.get_any_name() for p in model.inputs]
        if names != io.input_names:
            raise BundleError(f"{model_path}: graph inputs {names} differ from the manifest {io.input_names}")
        # threads not pinned to cores (OpenVINO pins them by default): beside other work on the same cores, a
        # pinned worker waits for its busy core and the whole inference with it (measured with one of two
        # cores kept busy: the shipped video model's INT8 step 8.9 -> 21 ms p50 pinned, e2e p99 144 ms)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": inference_precision, "PERFORMANCE_HINT": _HINTS[hint]}
        if on_cpu:  # a CPU property: other devices refuse it
            config["ENABLE_CPU_PINNING"] = bool(pinning)
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if streams:
            config["NUM_STREAMS"] = int(streams)
        if on_cpu and one_thread(threads):
            # OpenVINO 2026.4's CPU plugin segfaulted compiling a shipped family's graph with one thread (its
            # fused "snippets" code path; `edge run --threads 1`, or any run on a process bound to one core);
            # without snippets it compiles and runs. A crash cannot be caught, so one thread never uses them
            config["SNIPPETS_MODE"] = "DISABLE"
        self.inference_precision = inference_precision
        self.front = front
        self.model_path = model_path
        # one infer request: two threads in it raised "Infer Request is busy" or, worse, returned each other's
        # outputs (its buffers are shared out, then copied); calls are serialised, as the TensorRT runtime's are
        self._calls = threading.Lock()
        self._sized: dict[tuple[int, int], tuple[Any, Any]] = {}  # camera (H, W) -> (compiled, request)
        self._prepared: set[tuple[int, int]] = set()  # the sizes announced before the first frame: never dropped
        self.compiled: Any = None
        self.request: Any = None
        if front is None:
            self.compiled = ovc.compile_model(model, device, config)
            self.request = self.compiled.create_infer_request()
        else:
            from edge.runtimes.front import openvino_front

            self._device, self._config = device, config
            self._model = openvino_front(model, front)

    def _for_size(self, hw: tuple[int, int]) -> None:
        """Compile (or take the compiled) model for camera frames of ``hw``; of the sizes not prepared
        (:meth:`prepare_image_size`) the ones used least recently go first when more than SIZES_KEPT are
        seen (a hit moves its size to the back). Prepared sizes stay: they are the rig's cameras, and a rig of
        more distinct sizes than SIZES_KEPT recompiled one inside every frame set."""
        if hw in self._sized:
            self._sized[hw] = self._sized.pop(hw)
        else:
            loose = [k for k in self._sized if k not in self._prepared]
            if loose and len(loose) >= self.SIZES_KEPT:
                self._sized.pop(loose[0])
            m = self._model.clone()
            m.reshape({self.front.input: [1, hw[0], hw[1], 3]})
            c = core().compile_model(m, self._device, self._config)
            self._sized[hw] = (c, c.create_infer_request())
        self.compiled, self.request = self._sized[hw]

    def prepare_image_size(self, hw: tuple[int, int]) -> None:
        """Compile for camera frames of ``hw`` now rather than inside the first such frame."""
        if self.front is not None:
            with self._calls:
                self._check_open()  # closed: ClosedError, not a model compiled and held again (a review)
                if len(self._prepared) < self.SIZES_PREPARED:  # past it, a size rotates with the others
                    self._prepared.add((int(hw[0]), int(hw[1])))
                self._for_size((int(hw[0]), int(hw[1])))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._calls:
            self._check_open()  # closed by another thread while this call waited: ClosedError, not AttributeError
            if self.front is not None:
                self._for_size(tuple(feeds[self.front.input].shape[1:3]))
            # the request reads the inputs in place and hands its output buffers over (zero-copy both ways; the
            # call is synchronous and the outputs are copied here before the next one): copying the 4.7 MB
            # whole-clip input of the shipped video model cost ~1 ms of a 7-8 ms INT8 step. An input that is not
            # C-contiguous or not of the graph's dtype is still copied/converted by OpenVINO.
            try:
                res = self.request.infer([feeds[n] for n in self.io.input_names], share_inputs=True,
                                         share_outputs=True)
            except RuntimeError as e:  # OpenVINO's own check of the values (a GatherElements index past its
                # data): ours, in one line, as ONNX Runtime's are
                raise DataError(f"{self.model_path}: openvino cannot run these inputs ({ov_error_line(e)})") from None
            return {name: np.array(res[self.compiled.outputs[i]]) for i, name in enumerate(self.io.output_names)}

    def infer_queue(self, jobs: int = 0, callback: Callable[[dict[str, np.ndarray], Any], None] | None = None
                    ) -> AsyncQueue:
        """An async request queue over this compiled model (for the stream loop)."""
        self._check_open()
        return AsyncQueue(self, jobs, callback)

    def close(self) -> None:
        # after a call in flight, never under it (a runtime whose __init__ failed early has no lock yet)
        with getattr(self, "_calls", None) or contextlib.nullcontext():
            super().close()
            self.request = None
            self.compiled = None
            self._sized = {}
            self._prepared = set()


#: queues alive in this process: each is drained at interpreter exit (see :func:`_drain_queues`)
_LIVE_QUEUES: weakref.WeakSet[AsyncQueue] = weakref.WeakSet()


#: how long the exit drain waits for the requests still running, all queues together (a callback that blocks
#: for ever must not hold the process at exit)
EXIT_DRAIN_S = 2.0


def _drain_queues() -> None:
    """At exit, before modules are torn down: close every queue to new requests, then wait (at most
    :data:`EXIT_DRAIN_S`, in short slices) for those still running. A queue destroyed with a request in flight
    aborted the process ("terminate called without an active exception", exit -6), seen once in the test suite
    under load for a script that ended without waiting for its last requests."""
    deadline = time.monotonic() + EXIT_DRAIN_S
    queues = list(_LIVE_QUEUES)
    for q in queues:
        q.closing(deadline)
    for q in queues:
        q.drain(deadline)


class AsyncQueue:
    """``ov.AsyncInferQueue`` behind our IOSpec: ``submit(feeds, userdata)``; results reach ``callback``
    as named numpy outputs (copied, since the request's buffers are reused). ``jobs=0`` lets OpenVINO
    pick the optimal number of requests for the compiled hint.

    Errors are ours to report: OpenVINO keeps an exception raised in a Python callback and raises it
    again at every later call without clearing it (the second such call aborted the whole process), and a
    failed request leaves the queue raising its error for every later frame. So the callback never lets
    an exception out: the first one is kept and raised once, as an EdgeError naming the job, from the next
    ``submit`` (after queuing its frame) or ``wait``; a failed request is reported the same way and the
    queue is rebuilt once its other requests finish, so the next frame runs.
    """

    def __init__(self, rt: OpenVinoRuntime, jobs: int,
                 callback: Callable[[dict[str, np.ndarray], Any], None] | None) -> None:
        self.rt = rt
        if rt.compiled is None:
            raise EdgeError("an async queue over an engine-preprocessing runtime needs one frame through infer() "
                            "first (the model is compiled for the camera's size)")
        self.compiled, self.jobs, self.callback = rt.compiled, jobs, callback
        self.results: list[tuple[Any, dict[str, np.ndarray]]] = []
        self._error: tuple[BaseException, Any] | None = None
        self._lock = threading.Lock()
        # the camera size this queue's model was compiled for (engine preprocessing), checked per frame
        self._hw = (tuple(self.compiled.input(rt.front.input).get_shape())[1:3]
                    if rt.front is not None else None)
        self._build()
        self._closed = False
        self._submitting = 0  # submits inside start_async now (which blocks while every request is busy)
        self._submit = threading.Lock()  # guards the two above; never held while OpenVINO runs
        # one start_async at a time: two threads starting at once could take the same idle request ("Infer
        # Request is busy", reported as a failed request and the queue rebuilt). A callback that submits on its
        # own thread would wait here for a start waiting for it; OpenVINO's own start_async deadlocks there too
        self._start = threading.Lock()
        if not _LIVE_QUEUES:
            atexit.unregister(_drain_queues)  # registered once, however many queues come and go
            atexit.register(_drain_queues)
        _LIVE_QUEUES.add(self)

    def closing(self, deadline: float) -> None:
        """No new request from now on (the process is exiting): a thread still submitting gets an EdgeError; one
        already inside ``start_async`` (blocked while every request is busy) is waited for until ``deadline``."""
        with self._submit:
            self._closed = True
        while self._submitting and time.monotonic() < deadline:
            time.sleep(0.01)

    def drain(self, deadline: float | None = None) -> None:
        """Wait for every request in flight, whatever it raises (its error was reported, or nobody is left to
        hear it): what must happen before the queue may be destroyed. With ``deadline`` (a monotonic time) the
        wait gives up then, in 50 ms slices, so a callback that never returns cannot hold the process."""
        for i in range(len(self.queue)):
            request = self.queue[i]
            with contextlib.suppress(Exception):
                if deadline is None:
                    request.wait()
                    continue
                while time.monotonic() < deadline and not request.wait_for(50):
                    pass

    def _build(self) -> None:
        import openvino as ov

        self.queue = ov.AsyncInferQueue(self.compiled, self.jobs)
        names = self.rt.io.output_names

        def done(request: Any, userdata: Any) -> None:
            try:
                outs = {n: np.array(request.get_output_tensor(i).data) for i, n in enumerate(names)}
                if self.callback is not None:
                    self.callback(outs, userdata)
                else:
                    self.results.append((userdata, outs))
            except BaseException as e:  # never into OpenVINO (see the class docstring)
                with self._lock:
                    if self._error is None:
                        self._error = (e, userdata)

        self.queue.set_callback(done)

    def _raise_kept(self) -> None:
        with self._lock:
            kept, self._error = self._error, None
        if kept is not None:
            e, userdata = kept
            if isinstance(e, KeyboardInterrupt):
                raise e
            raise EdgeError(f"openvino async job {userdata!r}: its callback raised {type(e).__name__}: "
                            f"{first_line(e)}") from None

    def _failed(self, e: Exception) -> EdgeError:
        # the old queue raises this error at every later call: let its other requests finish (wait_all stops
        # at the failed one; a queue destroyed with requests in flight hangs or runs callbacks on freed state),
        # then build a fresh one
        self.drain()  # the failed request (or another) raises in there: reported below, once
        self._build()
        return EdgeError(f"openvino async request failed: {ov_error_line(e)}")

    def submit(self, feeds: dict[str, np.ndarray], userdata: Any = None) -> None:
        """Queue ``feeds``; an earlier job's callback error is raised after this frame is queued (the frame is
        not lost to it)."""
        self.rt.io.validate_feeds(feeds)
        if self._hw is not None:
            hw = tuple(feeds[self.rt.front.input].shape[1:3])
            if hw != self._hw:
                raise EdgeError(f"openvino async queue: camera frames of {hw[0]}x{hw[1]}, but this queue's model "
                                f"was compiled for {self._hw[0]}x{self._hw[1]} (one queue per camera size)")
        with self._submit:
            if self._closed:
                raise EdgeError("openvino async queue: the process is exiting; no new request is taken")
            self._submitting += 1
        try:  # not under _submit: the exit's closing() must not wait for a start blocked on busy requests
            with self._start:
                self.queue.start_async([feeds[n] for n in self.rt.io.input_names], userdata)
        except RuntimeError as e:
            raise self._failed(e) from None
        finally:
            with self._submit:
                self._submitting -= 1
        self._raise_kept()

    def wait(self) -> None:
        try:
            self.queue.wait_all()
        except RuntimeError as e:
            raise self._failed(e) from None
        self._raise_kept()


def gated_precision(artifact: dict[str, Any]) -> str:
    """The inference precision an artifact's accuracy gate measured it with (``f32`` when not recorded:
    bundles from before the gate recorded it, and every non-INT8 artifact, keep fp32 parity)."""
    metric = artifact.get("metric")
    hint = metric.get("inference_precision") if isinstance(metric, dict) else None
    return hint if hint in ("bf16", "f32") else "f32"


def load(bundle: Any, artifact: dict[str, Any], *, graph: str, **options: Any) -> OpenVinoRuntime:
    """The artifact compiled; without an explicit ``inference_precision``, an INT8 IR gated with bf16 float
    layers runs with ``auto`` (bf16 where the CPU has it natively, else f32: the more exact form of what
    was gated), everything else with f32."""
    if "inference_precision" not in options and gated_precision(artifact) == "bf16":
        options["inference_precision"] = "auto"
    return OpenVinoRuntime(str(bundle.file(artifact["file"])), bundle.graph_io(graph), **options)


# IR first: it is what `edge-export --to openvino` writes for this backend
BACKEND = Backend("openvino", "OpenVINO (CPU/GPU/NPU)", ("openvino_ir", "onnx"), _available, load,
                  open=OpenVinoRuntime, image_front=True, image_front_auto=True)
