"""TensorRT plugin for ``edge.ai::EdgeAttention``, written with ``tensorrt.plugin`` (quickly deployable
plugins, TensorRT >= 10.7; the same module serves 10.x and 11.x).

TensorRT's ONNX parser finds a plugin for an unknown node by op name (``EdgeAttention``) plus the
node's ``plugin_namespace`` ("edge") and ``plugin_version`` ("1") attributes, so the plugin id is
``edge::EdgeAttention``. The JIT implementation launches the Triton flash-attention kernel
(:mod:`edge.runtimes.plugins.triton_attention`) on TensorRT's stream.

Not yet: an AOT implementation (``@trtp.aot_impl``) so engines run without Python. TensorRT's AOT
calling convention wants the kernel's runtime parameters ordered (input pointers, integer scalars,
output pointers) with integer-only extra scalars, so it needs a kernel variant that takes the scale
as a constexpr and the output pointer last; that variant must be checked on a GPU with TensorRT.

Scope: the three-input form (Q, K, V; no mask), fp32 and fp16, linear layout. A masked node (a 4th
input) is refused before a build (:func:`edge.runtimes.tensorrt.plugin_ops`): masked attention for
TensorRT is exported ``onnx`` or ``decomposed``. Everything here imports lazily:
importing this module needs neither tensorrt nor a GPU; :func:`register` needs both.

No ``from __future__ import annotations`` here: ``trtp.register`` reads the type hints of functions
defined inside :func:`register`, where ``trtp`` is a local name that string annotations could not
resolve.
"""


from edge.errors import BackendUnavailable

PLUGIN_ID = "edge::EdgeAttention"
#: the inputs ``_desc`` declares: TensorRT hands the plugin every input of its node, so a node with more
#: (a mask) cannot be built; ``edge.runtimes.tensorrt.plugin_ops`` refuses it before the build
INPUTS = ("q", "k", "v")
_REGISTERED = False


def tensorrt_plugin_support() -> tuple[bool, str]:
    """(ok, reason): can this machine register the plugin?"""
    try:
        import tensorrt as trt
    except ImportError:
        return False, "tensorrt is not installed"
    try:
        import tensorrt.plugin
    except ImportError:
        return False, f"tensorrt {trt.__version__} has no tensorrt.plugin module (needs >= 10.7)"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "no CUDA device for the Triton kernel"
    except ImportError:
        return False, "torch is not installed (the JIT plugin launches Triton through torch tensors)"
    return True, f"tensorrt {trt.__version__}"


def register() -> None:
    """Register ``edge::EdgeAttention`` with TensorRT's plugin registry (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    ok, why = tensorrt_plugin_support()
    if not ok:
        raise BackendUnavailable(f"cannot register the EdgeAttention TensorRT plugin: {why}")
    import tensorrt.plugin as trtp
    import torch

    from edge.runtimes.plugins.triton_attention import triton_attention

    @trtp.register(PLUGIN_ID)
    def _desc(q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc, num_heads: int, scale: float,
              qk_norm: int) -> trtp.TensorDesc:
        out = q.like()  # [B, H, Sq, D] with Q's dtype ...
        out.shape_expr[3] = v.shape_expr[3]  # ... and V's head size
        return out

    @trtp.autotune(PLUGIN_ID)
    def _autotune(q: trtp.TensorDesc, k: trtp.TensorDesc, v: trtp.TensorDesc,
                  outputs: tuple[trtp.TensorDesc]) -> list[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]

    @trtp.impl(PLUGIN_ID)
    def _impl(q: trtp.Tensor, k: trtp.Tensor, v: trtp.Tensor, num_heads: int, scale: float, qk_norm: int,
              outputs: tuple[trtp.Tensor], stream: int) -> None:
        tq, tk, tv = (torch.as_tensor(t, device="cuda") for t in (q, k, v))
        out = torch.as_tensor(outputs[0], device="cuda")
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            triton_attention(tq, tk, tv, scale=float(scale), qk_norm=bool(qk_norm), out=out)

    _REGISTERED = True

