"""What a benchmark ran on, and what this CPU can do at best: the CPU model, cores and the ISA extensions
that decide CPU inference speed (AVX2, AVX-512, VNNI, BF16, AMX), plus the fp32 and int8 GEMM peaks
measured in the same run. Figures from different machines are never compared blind, and "INT8 is only
1.05x fp32" reads differently on a CPU without VNNI (its int8 GEMM peak is no better than fp32's).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

ISA = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
       "avx512_bf16": "BF16", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "asimddp": "NEON dot product"}


def machine(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model, core count and ISA extensions (from /proc/cpuinfo on Linux; empty ISA elsewhere)."""
    model, flags, named = platform.processor() or platform.machine(), set(), False
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    model, named = value.strip(), True
                elif key == "Model" and value.strip() and not named:  # ARM boards: the board's name
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:  # x86, ARM (the first core's)
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "isa": [name for flag, name in ISA.items() if flag in flags]}


#: int8 dot-product instructions: what makes int8 inference faster than fp32 on a CPU
INT8_DOT = ("AMX-INT8", "AVX-512 VNNI", "AVX-VNNI", "NEON dot product")
#: backends that run on the host CPU here (TensorRT runs on the GPU: the note below is not about it)
CPU_BACKENDS = ("onnxruntime", "openvino", "torch")


def available_memory_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """The memory this machine can give now without swapping (Linux's MemAvailable), None where it is not known."""
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def int8_pays(isa: list[str] | None = None) -> bool:
    """Whether INT8 can run faster than fp32 on this CPU (``isa`` default: this machine's): it has int8
    dot-product instructions, or its ISA is unknown (no /proc/cpuinfo: assume it may). Without them INT8
    ran slower than fp32 on an AVX2-only Zen 1 (the shipped video model, OpenVINO NNCF INT8 0.68x its fp32
    on the streaming step, 0.78x on the whole clip; ONNX Runtime U8S8 0.93x / 0.81x) and at about its
    speed on a Zen 3 (1.05x)."""
    isa = machine()["isa"] if isa is None else isa
    return not isa or any(x in isa for x in INT8_DOT)


def int8_note(precision: str | None, backend: str, isa: list[str]) -> str | None:
    """A one-line note when INT8 runs on a CPU backend where it cannot pay (no int8 dot-product
    instructions: measured on an AVX2-only Zen 3, OpenVINO INT8 was 1.05x its fp32 and ONNX Runtime's
    symmetric INT8 0.63x); None otherwise, and when the ISA is unknown (no /proc/cpuinfo)."""
    if precision != "int8" or backend not in CPU_BACKENDS or int8_pays(isa):
        return None
    return ("this CPU has no int8 dot-product instructions (VNNI/AMX): INT8 runs at about fp32 speed here; "
            "edge bench times both")


def fp16_note(precision: str | None, backend: str) -> str | None:
    """A one-line note when fp16 graphs run on ONNX Runtime (its CPU provider in ``edge run``): fp16 kernels where it
    has them and casts around the rest, slower than fp32 (a shipped refinement step: 11.5 ms a step against
    8.8 on a 2-core Xeon); fp16 is for TensorRT, and OpenVINO computes an fp16 IR at its own CPU precision."""
    if precision != "fp16" or backend != "onnxruntime":
        return None
    return ("fp16 on ONNX Runtime's CPU provider runs slower than fp32 (fp16 kernels and casts, no fp16 arithmetic "
            "units): it is TensorRT's precision (edge build); on a CPU run fp32 or int8")


def int8_support(isa: list[str]) -> str:
    """What int8 inference can gain from on this ISA: a short phrase for reports."""
    if "AMX-INT8" in isa:
        return "AMX int8 tiles"
    if any(x in isa for x in INT8_DOT):
        return "VNNI-class int8 dot products"
    return "no int8 dot-product instructions (int8 GEMMs run at about fp32 speed)"


def _best(fn: Any, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def blas_threads_settable() -> bool:
    """Whether numpy's BLAS can be held to a thread count here (threadpoolctl), so that a peak matches a run on
    ``--threads N``."""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def gemm_peak_gflops(n: int = 1024, repeats: int = 5, threads: int = 0) -> float:
    """Best-of-``repeats`` fp32 GEMM throughput on this machine (GFLOP/s, 2 flops/MAC): the higher of numpy's BLAS
    and ONNX Runtime's ``MatMul`` (MLAS), each on ``threads`` threads (0: the library's own count, every core; for
    numpy a count needs threadpoolctl, :func:`blas_threads_settable`, else every core). Why both: the OpenBLAS numpy
    ships ran its AVX2 ("Haswell") kernels on an AVX-512 Zen 5, half of what ONNX Runtime's own GEMM reached on one
    core (~100 against ~230 GFLOP/s), so a runtime's row read past the "peak"; and why a count: a run on one thread
    of two was put against the two-thread peak, so each "of peak" read half its value."""
    import contextlib

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    # ONNX Runtime's first: numpy's BLAS threads keep spinning for ~0.1 s after its GEMM (see run_bench)
    run = _ort_gemm("MatMul", {"a": a, "b": b}, threads)
    ort_best = 2 * n**3 / _best(run, repeats) / 1e9 if run is not None else 0.0
    held: Any = contextlib.nullcontext()
    if threads and blas_threads_settable():
        from threadpoolctl import threadpool_limits

        held = threadpool_limits(limits=threads, user_api="blas")
    with held:
        return max(ort_best, 2 * n**3 / _best(lambda: a @ b, repeats) / 1e9)


def _ort_gemm(op: str, feeds: dict[str, np.ndarray], threads: int) -> Any:
    """A call of ONNX Runtime's CPU ``op`` (MatMul, MatMulInteger) over ``feeds`` ``a`` and ``b`` on ``threads``
    threads (0: its default), or None when ONNX Runtime is not installed or refuses the graph."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
        from onnx.helper import np_dtype_to_tensor_dtype

        n, k = feeds["a"].shape[0], feeds["b"].shape[1]
        out = TensorProto.INT32 if op == "MatMulInteger" else TensorProto.FLOAT
        g = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"])], "gemm",
                              [helper.make_tensor_value_info(x, np_dtype_to_tensor_dtype(feeds[x].dtype),
                                                             list(feeds[x].shape)) for x in ("a", "b")],
                              [helper.make_tensor_value_info("y", out, [n, k])])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = min(model.ir_version, 9)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
    except Exception:  # not installed, or this build refuses the graph: never fail a bench for it
        return None
    return lambda: sess.run(None, feeds)


def int8_gemm_peak_gops(n: int = 1024, repeats: int = 5, threads: int = 0) -> float | None:
    """Best-of-``repeats`` int8 GEMM throughput (GOP/s, 2 ops/MAC): ONNX Runtime's ``MatMulInteger``
    (u8 x s8 -> s32, the MLAS kernels its int8 graphs use; VNNI/AMX where the CPU has them), else torch's
    ``_int_mm``; None when neither is installed. ``threads``: as the run's (0: the library's default)."""
    rng = np.random.default_rng(0)
    run = _ort_gemm("MatMulInteger", {"a": rng.integers(0, 255, (n, n), dtype=np.uint8),
                                      "b": rng.integers(-127, 127, (n, n), dtype=np.int8)}, threads)
    if run is not None:
        return 2 * n**3 / _best(run, repeats) / 1e9
    try:
        import torch

        a = torch.randint(-127, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-127, 127, (n, n), dtype=torch.int8)
        was = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            return 2 * n**3 / _best(lambda: torch._int_mm(a, b), repeats) / 1e9
        finally:
            torch.set_num_threads(was)
    except Exception:  # no torch, or no _int_mm on this build/CPU
        return None
