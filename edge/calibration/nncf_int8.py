"""Native OpenVINO INT8 with NNCF post-training quantization (faster than reading a QDQ graph on
some CPUs), gated on the task metric like every other quantized artifact.

Symmetric ("performance" preset) activations and per-channel weights, calibrated on the same
FeedSet as the QDQ path; ``ignored`` node names stay in fp32. The result is saved as IR with its
weights stored in int8 (no fp16 compression involved).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.calibration.datasets import FeedSet
from edge.errors import BackendUnavailable, ExportError, first_line


def nncf_quantize_ir(src: str, xml_out: str, calib: FeedSet, io: Any, *, ignored: Sequence[str] = (),
                     transformer: bool = True) -> dict[str, Any]:
    """Quantize ``src`` (ONNX or IR, read with our attention extension) to an INT8 IR at ``xml_out``."""
    try:
        import nncf
    except ImportError:
        raise BackendUnavailable("nncf is not installed (pip install 'edge-deploy[openvino]')") from None
    import openvino as ov

    from edge.runtimes.openvino import read_model

    model = read_model(src)
    names = io.input_names
    dataset = nncf.Dataset(calib.feeds, lambda feed: [feed[n] for n in names])
    kwargs: dict[str, Any] = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(calib)}
    if transformer:  # keeps softmax/layernorm-adjacent patterns in float, as NNCF recommends for attention
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(ignored), validate=False)
    import contextlib
    import io as _io
    import logging

    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(_io.StringIO()):  # NNCF draws progress bars on stdout (breaks --json)
            q = nncf.quantize(model, dataset, **kwargs)
    except Exception as e:
        msg = first_line(e)
        raise ExportError(f"{Path(src).name}: NNCF quantization failed ({msg})") from None
    ov.save_model(q, xml_out, compress_to_fp16=False)
    return {"format": "nncf", "preset": "performance", "model_type": "transformer" if transformer else "default",
            "ignored": list(ignored), "calibration": {"source": calib.source, "samples": len(calib)}}


#: ops between an int8 weight or a FakeQuantize and the op it feeds (dequantization, layout)
_PASS_THROUGH = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze", "Squeeze")


def _reads_quantized(value: Any, depth: int = 4) -> bool:
    """Whether an input comes from a FakeQuantize or an 8-bit constant through dequantization steps."""
    node = value.get_node()
    kind = node.get_type_name()
    if kind == "FakeQuantize":
        return True
    if kind == "Constant":
        return node.get_element_type().get_type_name() in ("i8", "u8")
    if depth == 0 or kind not in _PASS_THROUGH:
        return False
    return any(_reads_quantized(i.get_source_output(), depth - 1) for i in node.inputs())


def nncf_nodes(quantized_xml: str | Path) -> list[str]:
    """The ops NNCF quantized in an IR it wrote (an input behind a FakeQuantize or an int8 weight), in graph
    order: the names an ignored scope takes, so what the gate can leave in float. Read from NNCF's output
    rather than listed by type: its default scheme also quantizes the inputs of Add, Multiply, pooling and
    reductions, and which ones depends on the graph."""
    from edge.runtimes.openvino import read_model

    ops = read_model(str(quantized_xml)).get_ordered_ops()
    return [op.get_friendly_name() for op in ops if op.get_type_name() not in ("FakeQuantize", *_PASS_THROUGH)
            and any(_reads_quantized(i.get_source_output()) for i in op.inputs())]


def nncf_quantizer(transformer: Mapping[str, bool]) -> Any:
    """NNCF's OpenVINO IRs as the accuracy gate's :class:`~edge.calibration.gate.Quantizer`: each graph with
    its settled scheme (``transformer[graph]``), the nodes the gate excludes as NNCF's ignored scope (found by
    quantizing the graph whole once, :func:`nncf_nodes`), output errors measured on OpenVINO with f32 float
    layers (the reference being the fp32 source there too)."""
    import tempfile

    from edge.calibration.gate import GateGraph, Quantizer, output_error

    def write(graph: str, gg: GateGraph, dst: Path, exclude: Sequence[str]) -> None:
        nncf_quantize_ir(str(gg.src), str(dst), gg.calib, gg.io, ignored=exclude, transformer=transformer[graph])

    def nodes(graph: str, gg: GateGraph) -> list[str]:
        with tempfile.TemporaryDirectory(prefix="edge-nncf-") as tmp:
            whole = Path(tmp) / "whole.xml"
            write(graph, gg, whole, ())
            return nncf_nodes(whole)

    def error(gg: GateGraph, path: str) -> float:
        return output_error(gg.src, path, gg.io, gg.feeds, "openvino", inference_precision="f32")

    return Quantizer(write, nodes, error, suffix=".xml")
