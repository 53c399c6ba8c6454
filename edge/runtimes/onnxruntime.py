"""ONNX Runtime backend (CPU by default; CUDA/TensorRT execution providers when asked and present)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import BackendUnavailable, BundleError, DataError, EdgeError, first_line
from edge.runtimes.base import BaseRuntime
from edge.runtimes.registry import Backend
from edge.spec import IOSpec


def _available() -> tuple[bool, str]:
    try:
        import onnxruntime as ort
    except Exception as e:  # not installed, or broken (torch without a CUDA library it links: an OSError)
        from edge.deps import import_failure

        return False, import_failure("onnxruntime", e)
    return True, f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})"


# First default-domain opset on which ORT 1.32's QDQS8ToU8Transformer breaks (see _workarounds).
S8U8_BROKEN_FROM_OPSET = 21


def default_opset(model: Any) -> int:
    """The ai.onnx opset a ModelProto declares (0 when it declares none)."""
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _workarounds(model: Any) -> list[str]:
    """Optimizers to switch off for this graph.

    ORT 1.32's QDQS8ToU8Transformer rewrites int8 QuantizeLinear nodes of opset >= 21 graphs (our
    plugin lowering raises the opset to 23) into a node whose ``output_dtype`` says int8 but whose
    zero point is uint8, and the session then refuses to load. Without that transformer the same
    graph loads and runs.
    """
    if isinstance(model, str):
        try:
            import onnx

            m = onnx.load(model, load_external_data=False)
        except Exception:
            return []  # let InferenceSession report the real problem
    else:
        m = model
    if default_opset(m) >= S8U8_BROKEN_FROM_OPSET and any(n.op_type == "QuantizeLinear" for n in m.graph.node):
        return ["QDQS8ToU8Transformer"]
    return []


class OrtRuntime(BaseRuntime):
    """An ``onnxruntime.InferenceSession`` behind the Runtime protocol (threads, providers, opt level).

    ``front`` (an ``ImageInput``): that input takes uint8 camera frames and an ONNX front prepended to
    the graph resizes and normalises them (:func:`edge.runtimes.front.onnx_front`).
    """

    backend = "onnxruntime"

    def __init__(self, model_path: str, io: IOSpec, *, threads: int = 0, inter_threads: int = 0,
                 providers: list[str] | None = None, optimization: str = "all", spinning: bool = False,
                 front: Any = None) -> None:
        import onnxruntime as ort

        if front is not None:
            from edge.runtimes.front import camera_io

            io = camera_io(io, front)
        super().__init__(io)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = int(inter_threads)
        # ORT's pool threads busy-wait after each run by default. With several sessions in one process
        # (a stream's encoder + temporal head, a benchmark's backends) they steal the cores the next
        # call needs: measured 31.5 ms vs 11 ms per streaming step on 2 cores. Spin only when asked.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        if optimization not in levels:
            raise EdgeError(f"optimization {optimization!r}: choose one of {', '.join(levels)}")
        so.graph_optimization_level = levels[optimization]
        have = ort.get_available_providers()
        providers = providers or ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in have]
        if missing:
            raise BackendUnavailable(f"onnxruntime providers {missing} are not available (have {have})")
        model: Any = model_path
        if front is not None:
            model = _with_front(model_path, front)
        else:
            from edge.files import utf8_name_problem

            if (problem := utf8_name_problem(model_path, "ONNX Runtime's binding")) is not None:
                raise BundleError(f"{model_path}: {problem}")  # it was "cannot load this model (__init__(): ...)"
        try:
            self.session = ort.InferenceSession(model.SerializeToString() if front is not None else model,
                                                sess_options=so, providers=providers,
                                                disabled_optimizers=_workarounds(model))
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
            msg = first_line(e)
            raise BundleError(f"{model_path}: onnxruntime cannot load this model ({msg})") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != io.input_names:
            raise BundleError(f"{model_path}: graph inputs {names} differ from the manifest {io.input_names}")
        self.providers = self.session.get_providers()
        self.model_path = model_path
        # a failed run raises with ORT's reason (above); its own log line of the same reason stays off stderr
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.session  # one read: close() in another thread sets it to None (the call holds the session)
        if session is None:
            self._check_open()  # ClosedError (it was "cannot run these inputs ('NoneType' ...)", blaming the feeds)
        try:
            outs = session.run(self.io.output_names, feeds, self._run_options)
        except Exception as e:  # ORT's own Fail / InvalidArgument (an index past a table): ours, in one line
            raise DataError(f"{self.model_path}: onnxruntime cannot run these inputs ({first_line(e, 300)})") from None
        return dict(zip(self.io.output_names, outs))

    def close(self) -> None:
        """Release the session (and its arena) now rather than at garbage collection."""
        super().close()
        self.session = None


def _with_front(model_path: str, front: Any) -> Any:
    """The ONNX file with the camera front prepended (in memory; the bundle's file is not changed)."""
    import onnx

    from edge.runtimes.front import onnx_front

    try:
        model = onnx.load(model_path)
    except Exception as e:
        raise BundleError(f"{model_path}: not a readable ONNX model ({first_line(e)})") from None
    try:
        return onnx_front(model, front)
    except BundleError as e:
        raise BundleError(f"{model_path}: {e}") from None


def load(bundle: Any, artifact: dict[str, Any], *, graph: str, **options: Any) -> OrtRuntime:
    io = bundle.graph_io(graph)
    # a plugin-mode graph carries its ORT lowering (EdgeAttention -> Attention) beside it
    fname = artifact.get("lowered", {}).get("onnxruntime", artifact["file"])
    return OrtRuntime(str(bundle.file(fname)), io, **options)


def _attention() -> tuple[str, str]:
    """ORT runs the lowered plugin graph (opset-23 Attention) from 1.23; older ones need decomposed."""
    from edge.export.attention_modes import dist_version

    v = dist_version("onnxruntime")
    if v is not None and v < (1, 23):
        return "decomposed", f"onnxruntime {'.'.join(map(str, v))} < 1.23 has no Attention kernel"
    return "plugin", "portable EdgeAttention node; ONNX Runtime runs its opset-23 Attention lowering"


def lower(src: Any, dst: Any) -> None:
    """Write ``src`` with EdgeAttention nodes as opset-23 Attention (what ORT opens), checked."""
    import onnx

    from edge.runtimes.plugins.ort_lowering import lower_edge_attention

    lowered = lower_edge_attention(onnx.load(str(src)))
    try:
        onnx.checker.check_model(lowered, full_check=True)
    except Exception as e:
        raise BundleError(f"{dst}: the ONNX Runtime lowering is not a valid graph: {first_line(e, None)}") from None
    onnx.save(lowered, str(dst))


# image_front_auto off: ORT's Resize on the camera bytes costs ~2.5 ms in the infer stage, where the numpy
# path runs beside inference on the other core (the shipped video model, 960x540, int8: 13.0 vs 10.8 ms per step)
BACKEND = Backend("onnxruntime", "ONNX Runtime", ("onnx",), _available, load, open=OrtRuntime,
                  attention=_attention, lower=lower, tag="ort", image_front=True)
