"""Device buffers, pinned host buffers and a CUDA stream behind one small interface.

Two implementations, because the car and the desktop differ: ``cuda-python`` (``cuda.bindings``,
NVIDIA's maintained bindings) imports without a driver and fails lazily with a CUDA error code, so
it is the default and its failure is testable everywhere; ``pycuda`` is what JetPack images commonly
ship, and it cannot even be imported without an NVIDIA driver, so it is imported only inside
:class:`PyCudaApi`. The TensorRT runtime programs against :class:`CudaApi` only.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.errors import BackendUnavailable

IMPLEMENTATIONS = ("cuda-python", "pycuda")


class CudaApi:
    """What TensorRT inference needs from CUDA (pointers are ints, streams are opaque handles)."""

    name = "base"

    def malloc(self, nbytes: int) -> int:
        raise NotImplementedError

    def free(self, ptr: int) -> None:
        raise NotImplementedError

    def host_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A page-locked (pinned) numpy array: async copies need it, and it halves copy time."""
        raise NotImplementedError

    def host_free(self, arr: np.ndarray) -> None:
        """Release a pinned array made by ``host_empty``."""

    def stream(self) -> Any:
        raise NotImplementedError

    def stream_handle(self, stream: Any) -> int:
        """The ``cudaStream_t`` as an int, for ``execute_async_v3``."""
        raise NotImplementedError

    def htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        raise NotImplementedError

    def dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        raise NotImplementedError

    def synchronize(self, stream: Any) -> None:
        raise NotImplementedError

    def destroy_stream(self, stream: Any) -> None:
        """Release a stream made by ``stream``."""

    def device(self) -> dict[str, Any]:
        """Facts that decide whether an engine is valid here: GPU name, compute capability, versions."""
        raise NotImplementedError


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _padded_host(shape: tuple[int, ...], dtype: Any, alloc: Callable[[int, np.dtype], np.ndarray]) -> np.ndarray:
    """A pinned array of ``shape`` from ``alloc(count, dtype)`` (a flat pinned array of ``count`` elements).

    At least one element is allocated: an empty tensor (a 0 dim) would ask for a 0-byte pinned allocation,
    which CUDA need not give a usable pointer for (``cuMemAlloc(0)`` is INVALID_VALUE); the array returned is
    then a zero-length view of that one element (at its start: ``host_free`` finds the allocation by the
    view's data pointer).
    """
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    return alloc(max(1, n), dt)[:n].reshape(shape)


class CudaPythonApi(CudaApi):
    """``cuda.bindings.runtime``: every call returns (error, value...); errors become one line."""

    name = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as rt
        except ImportError as e:
            from edge.deps import cuda_python_missing

            raise BackendUnavailable(cuda_python_missing(e)) from None
        self.rt = rt
        err, count = rt.cudaGetDeviceCount()
        self._check(err, "cudaGetDeviceCount")
        if count < 1:
            raise BackendUnavailable("CUDA: no GPU visible (cudaGetDeviceCount = 0)")
        self._check(rt.cudaSetDevice(0)[0], "cudaSetDevice")
        self._pinned: dict[int, int] = {}

    def _check(self, err: Any, what: str) -> None:
        if int(err) != 0:
            name = getattr(err, "name", str(err))
            hint = " (no NVIDIA driver on this machine)" if "InsufficientDriver" in name or "NoDevice" in name else ""
            raise BackendUnavailable(f"CUDA {what} failed: {name}{hint}")

    def malloc(self, nbytes: int) -> int:
        err, ptr = self.rt.cudaMalloc(max(1, nbytes))
        self._check(err, f"cudaMalloc({nbytes})")
        return int(ptr)

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def host_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return _padded_host(shape, dtype, self._host_flat)

    def _host_flat(self, count: int, dt: np.dtype) -> np.ndarray:
        nbytes = count * dt.itemsize
        err, ptr = self.rt.cudaMallocHost(nbytes)
        self._check(err, f"cudaMallocHost({nbytes})")
        buf = (ctypes.c_byte * nbytes).from_address(int(ptr))
        arr = np.frombuffer(buf, dtype=dt, count=count)
        self._pinned[arr.__array_interface__["data"][0]] = int(ptr)
        return arr

    def host_free(self, arr: np.ndarray) -> None:
        ptr = self._pinned.pop(arr.__array_interface__["data"][0], None)
        if ptr is not None:
            self.rt.cudaFreeHost(ptr)

    def stream(self) -> Any:
        err, s = self.rt.cudaStreamCreate()
        self._check(err, "cudaStreamCreate")
        return s

    def stream_handle(self, stream: Any) -> int:
        # cuda-bindings 13 deprecates int() of its objects for get_cuda_native_handle (older ones lack it)
        try:
            from cuda.bindings.utils import get_cuda_native_handle
        except ImportError:
            return int(stream)
        return int(get_cuda_native_handle(stream))

    def htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream)[0], "cudaMemcpyAsync H2D")

    def dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream)[0], "cudaMemcpyAsync D2H")

    def synchronize(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream)[0], "cudaStreamSynchronize")

    def destroy_stream(self, stream: Any) -> None:
        self.rt.cudaStreamDestroy(stream)

    def device(self) -> dict[str, Any]:
        rt = self.rt
        err, props = rt.cudaGetDeviceProperties(0)
        self._check(err, "cudaGetDeviceProperties")
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return {"gpu": name.strip("\x00").strip(), "compute_capability": f"{props.major}.{props.minor}",
                "cuda_runtime": _cuda_version(rt.cudaRuntimeGetVersion()[1]),
                "cuda_driver": _cuda_version(rt.cudaDriverGetVersion()[1])}


class PyCudaApi(CudaApi):
    """pycuda: imported here only (it needs a driver just to import).

    Uses the device's primary context (the one TensorRT's runtime API uses) and makes it current
    around every call: a CUDA context is current per thread, and the stream loop calls from its
    infer thread, not the thread that created the runtime. Push/pop in pairs also keeps pycuda's
    context stack empty at exit (it aborts the process otherwise).
    """

    name = "pycuda"

    def __init__(self) -> None:
        try:
            import pycuda.driver as cuda
        except ImportError as e:
            from edge.deps import import_failure

            raise BackendUnavailable(import_failure("pycuda", e)) from None
        except Exception as e:  # pycuda raises its own errors at import when there is no driver
            raise BackendUnavailable(f"pycuda cannot start CUDA here: {type(e).__name__}: "
                                     f"{str(e).splitlines()[0] if str(e) else ''}") from None
        self.cuda = cuda
        try:
            cuda.init()
            if cuda.Device.count() < 1:
                raise BackendUnavailable("CUDA: no GPU visible (pycuda Device.count() = 0)")
            self.ctx = cuda.Device(0).retain_primary_context()
        except cuda.Error as e:
            raise BackendUnavailable(f"pycuda: {str(e).splitlines()[0]}") from None
        self._allocs: dict[int, Any] = {}

    @contextlib.contextmanager
    def _current(self) -> Any:
        self.ctx.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def malloc(self, nbytes: int) -> int:
        with self._current():
            a = self.cuda.mem_alloc(max(1, nbytes))
        self._allocs[int(a)] = a
        return int(a)

    def free(self, ptr: int) -> None:
        a = self._allocs.pop(ptr, None)
        if a is not None:
            with self._current():
                a.free()

    def host_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        with self._current():
            return _padded_host(shape, dtype, lambda count, dt: self.cuda.pagelocked_empty((count,), dt))

    def stream(self) -> Any:
        with self._current():
            return self.cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        with self._current():
            self.cuda.memcpy_htod_async(dst, src, stream)

    def dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        with self._current():
            self.cuda.memcpy_dtoh_async(dst, src, stream)

    def synchronize(self, stream: Any) -> None:
        with self._current():
            stream.synchronize()

    def device(self) -> dict[str, Any]:
        d = self.cuda.Device(0)
        major, minor = d.compute_capability()
        drv = self.cuda.get_driver_version()
        return {"gpu": d.name(), "compute_capability": f"{major}.{minor}",
                "cuda_runtime": ".".join(map(str, self.cuda.get_version()[:2])), "cuda_driver": _cuda_version(drv)}


def get_cuda(prefer: str | None = None) -> CudaApi:
    """The CUDA implementation to use: ``prefer`` if given, else cuda-python, else pycuda.

    BackendUnavailable lists why each one failed.
    """
    if prefer is not None and prefer not in IMPLEMENTATIONS:
        raise BackendUnavailable(f"unknown CUDA implementation '{prefer}' (use {' or '.join(IMPLEMENTATIONS)})")
    order = [prefer] if prefer else list(IMPLEMENTATIONS)
    reasons = []
    for name in order:
        try:
            return CudaPythonApi() if name == "cuda-python" else PyCudaApi()
        except BackendUnavailable as e:
            reasons.append(str(e))
    raise BackendUnavailable("; ".join(reasons))
