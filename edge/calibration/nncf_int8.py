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
                     transformer: bool = True, float_types: Sequence[str] = ()) -> dict[str, Any]:
    """Quantize ``src`` (ONNX or IR, read with our attention extension) to an INT8 IR at ``xml_out``; the ops
    named in ``ignored`` and every op of the OpenVINO types in ``float_types`` (e.g. ``MatMul``: the types whose
    int8 kernels do not pay on this CPU, :mod:`edge.calibration.ov_pays`) stay in float."""
    try:
        import nncf
    except ImportError:
        from edge.deps import missing

        raise BackendUnavailable(missing("nncf")) from None
    import openvino as ov

    from edge.runtimes.openvino import read_model

    model = read_model(src)
    short = [n for n in short_matmuls(model) if n not in ignored]
    ignored = [*ignored, *short]
    names = io.input_names
    dataset = nncf.Dataset(calib.feeds, lambda feed: [feed[n] for n in names])
    kwargs: dict[str, Any] = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(calib)}
    if transformer:  # keeps softmax/layernorm-adjacent patterns in float, as NNCF recommends for attention
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored or float_types:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(ignored), types=list(float_types), validate=False)
    import logging

    from edge.quiet_streams import silenced

    try:  # NNCF draws progress bars on stdout (breaks --json); its logger's level is the caller's again after
        with silenced(("stdout",), loggers={"nncf": logging.ERROR}):
            q = nncf.quantize(model, dataset, **kwargs)
    except Exception as e:
        msg = first_line(e)
        raise ExportError(f"{Path(src).name}: NNCF quantization failed ({msg})") from None
    ov.save_model(q, xml_out, compress_to_fp16=False)
    return {"format": "nncf", "preset": "performance", "model_type": "transformer" if transformer else "default",
            "ignored": [n for n in ignored if n not in short], "short_dots": short, "float_types": list(float_types),
            # as the QDQ artifacts record it (this said the feeds' count as "samples": a review)
            "calibration": calib.source, "calibration_samples": calib.samples, "calibration_feeds": len(calib)}


def short_matmuls(model: Any) -> list[str]:
    """The MatMuls of an OpenVINO model whose dot products sum fewer than
    :data:`~edge.calibration.quantize.MIN_INT8_DOT` terms: left in float as in the QDQ form (geometry such
    as a rotation of points, where int8 gains no speed and loses the coordinates; see
    :func:`edge.calibration.quantize.short_dots`)."""
    from edge.calibration.quantize import MIN_INT8_DOT

    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        attrs = op.get_attributes()
        k = None
        for idx, key, summed in ((0, "transpose_a", (-2, -1)), (1, "transpose_b", (-1, -2))):
            ps = op.input(idx).get_partial_shape()
            if ps.rank.is_dynamic or ps.rank.get_length() == 0:
                continue
            dim = ps[0] if ps.rank.get_length() == 1 else ps[summed[0] if attrs.get(key) else summed[1]]
            if dim.is_static:
                k = dim.get_length()
                break
        if k is not None and k < MIN_INT8_DOT:
            out.append(op.get_friendly_name())
    return out


#: ops that only move or convert a tensor: between a FakeQuantize (or an int8 weight) and the op it feeds
_LAYOUT = ("Convert", "Reshape", "Transpose", "Unsqueeze", "Squeeze")
#: arithmetic of a weight's dequantization ((w - zero point) * scale), when it reads an 8-bit constant
_DEQUANT = ("Subtract", "Multiply")


def _is_8bit(node: Any) -> bool:
    return node.get_type_name() == "Constant" and node.get_element_type().get_type_name() in ("i8", "u8")


def _is_dequant(node: Any, depth: int = 4) -> bool:
    """Whether ``node``'s output is an 8-bit constant dequantized (Convert / Subtract / Multiply / layout
    steps whose every non-constant input is such a chain; float constants are its zero points and scales).
    A Multiply of two activations is not: NNCF quantizes those too, and they are ops a gate can leave float."""
    if _is_8bit(node):
        return True
    if depth == 0 or node.get_type_name() not in (*_LAYOUT, *_DEQUANT):
        return False
    srcs = [i.get_source_output().get_node() for i in node.inputs()]
    chains = [n for n in srcs if n.get_type_name() != "Constant" or _is_8bit(n)]
    return bool(chains) and all(_is_dequant(n, depth - 1) for n in chains)


def _reads_quantized(value: Any, depth: int = 4) -> bool:
    """Whether an input comes from a FakeQuantize or an 8-bit constant through dequantization or layout steps."""
    node = value.get_node()
    if node.get_type_name() == "FakeQuantize" or _is_dequant(node):
        return True
    if depth == 0 or node.get_type_name() not in _LAYOUT:
        return False
    return any(_reads_quantized(i.get_source_output(), depth - 1) for i in node.inputs())


def nncf_nodes(quantized_xml: str | Path) -> list[str]:
    """The ops NNCF quantized in an IR it wrote (an input behind a FakeQuantize or an int8 weight), in graph
    order: the names an ignored scope takes, so what the gate can leave in float. Read from NNCF's output
    rather than listed by type: its default scheme also quantizes the inputs of Add, Multiply, pooling and
    reductions, and which ones depends on the graph. A weight's own dequantization steps and layout moves
    are not listed (no ignored scope names them)."""
    from edge.runtimes.openvino import read_model

    ops = read_model(str(quantized_xml)).get_ordered_ops()
    return [op.get_friendly_name() for op in ops
            if op.get_type_name() not in ("FakeQuantize", *_LAYOUT) and not _is_dequant(op)
            and any(_reads_quantized(i.get_source_output()) for i in op.inputs())]


def nncf_quantizer(transformer: Mapping[str, bool], float_types: Mapping[str, Sequence[str]] | None = None) -> Any:
    """NNCF's OpenVINO IRs as the accuracy gate's :class:`~edge.calibration.gate.Quantizer`: each graph with
    its settled scheme (``transformer[graph]``) and op types kept in float for speed (``float_types[graph]``),
    the nodes the gate excludes as NNCF's ignored scope (found by quantizing the graph whole once,
    :func:`nncf_nodes`), output errors measured on OpenVINO with f32 float layers (the reference being the
    fp32 source there too)."""
    types = float_types or {}
    import tempfile

    from edge.calibration.gate import GateGraph, Quantizer, output_error

    def write(graph: str, gg: GateGraph, dst: Path, exclude: Sequence[str]) -> None:
        nncf_quantize_ir(str(gg.src), str(dst), gg.calib, gg.io, ignored=exclude, transformer=transformer[graph],
                         float_types=types.get(graph, ()))

    def nodes(graph: str, gg: GateGraph) -> list[str]:
        with tempfile.TemporaryDirectory(prefix="edge-nncf-") as tmp:
            whole = Path(tmp) / "whole.xml"
            write(graph, gg, whole, ())
            return nncf_nodes(whole)

    def error(gg: GateGraph, path: str) -> float:
        return output_error(gg.src, path, gg.io, gg.feeds, "openvino", inference_precision="f32")

    return Quantizer(write, nodes, error, suffix=".xml")
