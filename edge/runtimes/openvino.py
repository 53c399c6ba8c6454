"""OpenVINO backend: read the bundle's ONNX (plugin graphs through our attention extension), compile
for a device with explicit precision and performance hints, run synchronous requests.

OpenVINO defaults to bf16 inference on CPUs with AVX512-BF16, so ``inference_precision="f32"`` (default)
sets ``INFERENCE_PRECISION_HINT=f32`` for parity; "bf16"/"f16" are explicit opt-ins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import BackendUnavailable, BundleError, EdgeError
from edge.runtimes.base import BaseRuntime
from edge.runtimes.registry import Backend
from edge.spec import IOSpec

_PRECISIONS = {"f32", "bf16", "f16"}
_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


def _available() -> tuple[bool, str]:
    try:
        import openvino as ov
    except ImportError:
        return False, "openvino is not installed (pip install 'edge-deploy[openvino]')"
    try:
        devices = ov.Core().available_devices
    except Exception as e:  # a broken plugin install should be a reason, not a crash
        return False, f"openvino {ov.__version__} cannot list devices ({type(e).__name__})"
    return True, f"openvino {ov.__version__} ({', '.join(devices)})"


class OpenVinoRuntime(BaseRuntime):
    """A compiled OpenVINO model behind the Runtime protocol."""

    backend = "openvino"

    def __init__(self, model_path: str, io: IOSpec, *, device: str = "CPU", inference_precision: str = "f32",
                 hint: str = "latency", threads: int = 0, streams: int = 0) -> None:
        import openvino as ov

        from edge.runtimes.plugins.openvino_ext import edge_attention_extension

        super().__init__(io)
        if inference_precision not in _PRECISIONS:
            raise EdgeError(f"openvino inference precision {inference_precision!r}: choose one of "
                            f"{sorted(_PRECISIONS)}")
        if hint not in _HINTS:
            raise EdgeError(f"openvino hint {hint!r}: choose one of {sorted(_HINTS)}")
        core = ov.Core()
        if device.split(":")[0] not in {d.split(".")[0] for d in core.available_devices} | {"AUTO", "HETERO"}:
            raise BackendUnavailable(f"openvino device {device!r} not available (have {core.available_devices})")
        core.add_extension(edge_attention_extension())
        try:
            model = core.read_model(model_path)
        except Exception as e:
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise BundleError(f"{model_path}: openvino cannot read this model ({msg})") from None
        names = [p.get_any_name() for p in model.inputs]
        if names != io.input_names:
            raise BundleError(f"{model_path}: graph inputs {names} differ from the manifest {io.input_names}")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": inference_precision,
                                  "PERFORMANCE_HINT": _HINTS[hint]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if streams:
            config["NUM_STREAMS"] = int(streams)
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        self.inference_precision = inference_precision

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self.request.infer([feeds[n] for n in self.io.input_names])
        return {name: np.array(res[self.compiled.outputs[i]]) for i, name in enumerate(self.io.output_names)}

    def close(self) -> None:
        super().close()
        self.request = None
        self.compiled = None


def load(bundle: Any, artifact: dict[str, Any], *, graph: str = "full", **options: Any) -> OpenVinoRuntime:
    return OpenVinoRuntime(str(bundle.file(artifact["file"])), bundle.graph_io(graph), **options)


BACKEND = Backend("openvino", "OpenVINO (CPU/GPU/NPU)", ("onnx",), _available, load)
