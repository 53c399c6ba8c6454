"""fp16 graph forms, and what decides which of their nodes stay fp32: the fp16 precision of every graph
(``<stem>.fp16.onnx``) and TensorRT's INT8 form (a symmetric QDQ graph whose float layers are fp16).

TensorRT builds strongly typed networks, so an ONNX tensor's type is its precision (see
:mod:`edge.calibration.trt_int8` for why the INT8 form exists), and a value past fp16's range in an fp16
tensor is inf there. :func:`convert_fp16` converts; :func:`fp16_form` finds the nodes fp16 cannot carry on
real inputs (AutoCast's range rule, then where the converted graph first departs from the fp32 one) and
keeps them fp32, so a graph that computes geometry in pixels and metres (a camera-LiDAR refinement step:
values near 1e10) gets a mixed fp16/fp32 form instead of none. Both are judged on :func:`emulate_fp16`:
ONNX Runtime's CPU runs many fp16 ops through fp32 kernels and drops the fp16 rounding between them (an
``(x + 256) - 256`` chain came back exact), so the form is run as an fp32 graph that rounds each tensor
the form stores as fp16 through an explicit Cast pair, which ONNX Runtime keeps: fp32 arithmetic, fp16
storage between layers, as TensorRT runs it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.calibration.activations import activations
from edge.calibration.quantize import FP16_KEEP
from edge.errors import ExportError, first_line

#: fp16 scales on QuantizeLinear/DequantizeLinear are ONNX opset 19 on
QDQ_FP16_MIN_OPSET = 19


#: a node that reads or writes a float activation larger than this on the calibration feeds stays fp32 in
#: the fp16 form (ModelOpt AutoCast's default data_max): fp16 ends at 65504 and its spacing is 0.25 at 512,
#: which geometry (pixel coordinates, depths in metres times focal lengths, angles fed to sin/cos) exceeds
FP16_DATA_MAX = 512.0
#: calibration feeds read to find such nodes
FP16_RANGE_FEEDS = 8
#: an fp16 node output further than this from the fp32 graph's (relative to its largest magnitude) keeps the
#: node fp32: broken, not merely less precise (fp16 itself is ~1e-3 and a flipped int8 rounding step 1/127
#: of the range; precision is the task metric's to judge, in the gate). 0.1 kept 121 nodes of a shipped
#: video model's whole-clip graph fp32 in 7 rounds (each kept node's feeders in turn, up the network) where
#: its per-frame and temporal graphs alone kept 8 and 11
FP16_DEVIATION = 0.5
#: a comparison whose fp16 result flips on more than this share of its elements is broken the same way
FP16_FLIPS = 0.01


def large_value_nodes(src: str | os.PathLike[str], feeds: Sequence[dict[str, Any]],
                      limit: float = FP16_DATA_MAX) -> list[str]:
    """Names of the nodes of ``src`` that read or write a float activation whose magnitude exceeds ``limit``
    (or is not finite) on any of ``feeds`` (graph inputs count; initializers do not: the converter clamps
    them). Unnamed nodes are reported as ``#<index>``, which :func:`convert_fp16` resolves. An
    ExportError names the file when ONNX Runtime cannot run it (:func:`~edge.calibration.activations.activations`)."""
    import onnx

    model = onnx.load(str(src))
    peak: dict[str, float] = {}
    for acts in activations(model, feeds, Path(src).name, "fp16"):
        for k, v in acts.items():
            peak[k] = max(peak.get(k, 0.0), _peak(v))
    return _touching(model, {k for k, v in peak.items() if not v <= limit})


def _touching(model: Any, tensors: set[str]) -> list[str]:
    """Names of the nodes that read or write any of ``tensors`` (``#<index>`` for an unnamed node)."""
    return [n.name or f"#{i}" for i, n in enumerate(model.graph.node) if tensors & {*n.input, *n.output}]


def fp16_findings(src: str | os.PathLike[str], fp16: str | os.PathLike[str], feeds: Sequence[dict[str, Any]],
                  limit: float = FP16_DATA_MAX, tol: float = FP16_DEVIATION) -> tuple[list[str], list[str]]:
    """What a conversion still gets wrong, from one run of each graph on ``feeds``: the nodes of the fp16
    form ``fp16`` that read or write a value beyond ``limit`` (or not finite), as :func:`large_value_nodes`
    finds them (fp16 upstream changes what flows downstream), and the nodes of ``src`` where the form first
    goes wrong: an output whose largest error against ``src``'s is over ``tol`` of that output's largest
    magnitude (or not finite where ``src``'s is, or a comparison flipped on over :data:`FP16_FLIPS` of its
    elements), while no node feeding it is wrong. Roots only: what follows a wrong node is wrong because of
    it. Nodes are matched by name and outputs by position (the converter renames the tensors around the
    nodes it keeps fp32). A value too small for fp16 (a sum of tiny weights rounded to 0, then a division by
    it) shows as a deviation, not as a large value."""
    import numpy as np
    import onnx

    ref_model, got_model = onnx.load(str(src)), onnx.load(str(fp16))
    ref_nodes = [(n.name or f"#{i}", list(n.output), list(n.input)) for i, n in enumerate(ref_model.graph.node)]
    # each node's outputs in the form, an emulation's rounded (stored) value where it has one
    got_out = {n.name: [o.removesuffix(RAW) for o in n.output] for n in got_model.graph.node}
    err: dict[str, float] = {}  # node name -> worst relative error of its outputs
    peak: dict[str, float] = {}  # the form's tensors -> largest magnitude
    for ref, got in zip(activations(ref_model, feeds, Path(src).name, "fp16"),
                        activations(got_model, feeds, Path(fp16).name, "fp16"), strict=True):
        for k, v in got.items():
            peak[k] = max(peak.get(k, 0.0), _peak(v))
        for name, outs, _ in ref_nodes:
            mine = got_out.get(name, [])
            for k, t in enumerate(outs):
                a, b = ref.get(t), got.get(mine[k]) if k < len(mine) else None
                if a is None or b is None or a.shape != b.shape or not a.size:
                    continue
                if a.dtype == bool:  # a comparison flipped by fp16 rounding near its threshold: a few are noise
                    flips = float(np.mean(a != b))
                    err[name] = max(err.get(name, 0.0), float("inf") if flips > FP16_FLIPS else 0.0)
                    continue
                if not np.isfinite(a).all():
                    continue
                scale, b64 = float(np.max(np.abs(a))), b.astype(np.float64)
                diff = float(np.max(np.abs(b64 - a))) if np.isfinite(b64).all() else float("inf")
                # relative to the output's own size, however small (weights of 1e-9 rounded to 0 are wrong)
                e = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
                err[name] = max(err.get(name, 0.0), e)
    large = _touching(got_model, {k for k, v in peak.items() if not v <= limit})
    producer = {t: name for name, outs, _ in ref_nodes for t in outs}
    bad = {name for name, e in err.items() if not e <= tol}
    return large, [name for name, _, ins in ref_nodes if name in bad and not {producer.get(t) for t in ins} & bad]


def _peak(a: Any) -> float:
    """Largest magnitude of a float array (inf when any element is not finite)."""
    import numpy as np

    if a.size == 0 or a.dtype.kind != "f":
        return 0.0
    return float(np.max(np.abs(a))) if np.isfinite(a).all() else float("inf")


#: rounds of :func:`fp16_form`: each converts, runs the result and keeps fp32 what still went wrong
FP16_ROUNDS = 8


def fp16_form(src: str | os.PathLike[str], dst: str | os.PathLike[str], feeds: Sequence[dict[str, Any]], *,
              emulation: str | os.PathLike[str] | None = None, limit: float = FP16_DATA_MAX,
              tol: float = FP16_DEVIATION, rounds: int = FP16_ROUNDS) -> dict[str, Any]:
    """The fp16 form of ``src`` (an fp32 graph, or TensorRT's symmetric QDQ one): :func:`convert_fp16` of it
    with the nodes that fp16 cannot carry kept fp32: those whose activations leave fp16's range on ``feeds``
    (:func:`large_value_nodes`, on the fp32 graph and on each converted one: fp16 upstream changes what flows
    downstream), and those where the converted graph first departs from ``src`` (:func:`fp16_findings`: a
    shipped calibration model's step rounded a sum of small weights to 0 and divided by it), both judged on
    the form's :func:`emulate_fp16` (written to ``emulation``, default ``<dst>.emulation.onnx``, for the
    caller to score and remove). Repeated until a conversion needs nothing more; an ExportError when that
    has not happened after ``rounds`` conversions."""
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    names = {n.name or f"#{i}" for i, n in enumerate(model.graph.node)}
    producer = {t: n.name or f"#{i}" for i, n in enumerate(model.graph.node) for t in n.output}
    feeders = {n.name or f"#{i}": [producer[t] for t in n.input if t in producer]
               for i, n in enumerate(model.graph.node)}
    emu = Path(emulation) if emulation is not None else Path(f"{dst}.emulation.onnx")
    keep = large_value_nodes(src, feeds, limit)
    for r in range(rounds):
        info = convert_fp16(src, dst, keep_nodes=keep)
        onnx.save(emulate_fp16(onnx.load(str(dst))), str(emu))
        large, deviating = fp16_findings(src, emu, feeds, limit, tol)
        more = [n for n in large if n in names and n not in keep]
        for n in deviating:
            # a root already fp32 went wrong on what it was handed (a tiny value rounded to 0 by fp16):
            # the nodes feeding it keep fp32 too
            more += [m for m in ([n] if n not in keep else feeders[n]) if m not in keep and m not in more]
        if not more:
            return {**info, "fp16_range": {"limit": limit, "deviation": tol, "feeds": len(feeds), "rounds": r + 1}}
        keep = [*keep, *more]
    Path(dst).unlink(missing_ok=True)
    emu.unlink(missing_ok=True)
    raise ExportError(f"{Path(src).name}: fp16 still departs from the fp32 graph after {rounds} rounds of keeping "
                      f"nodes fp32 ({len(keep)} kept); no fp16 form")


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                 keep_fp32: Sequence[str] = FP16_KEEP, keep_nodes: Sequence[str] = ()) -> dict[str, Any]:
    """Write a copy of the graph ``src`` whose float layers are fp16 (fp32 I/O kept): an fp32 graph (the fp16
    precision) or a symmetric QDQ graph (TensorRT's INT8 form).

    Why the QDQ form: TensorRT builds strongly typed networks, where an ONNX tensor's type is its precision,
    so every layer the QDQ graph leaves unquantized (normalisations, softmax, residual adds, the heads) runs
    in fp32 and each DequantizeLinear hands fp32 to its consumer; the builder flag that once let those
    layers pick fp16 is gone in 11.x. Here the float tensors become fp16 and so do the Q/DQ scales, so each
    DequantizeLinear outputs fp16 directly (opset >= 19; an older QDQ graph is converted by ONNX's version
    converter; a graph without Q/DQ nodes keeps its opset). The ``keep_fp32`` op types stay fp32, and so do
    nodes of custom domains (a plugin's types are its own) and ``keep_nodes`` (names, or ``#<index>`` for
    an unnamed node: those :func:`fp16_form` finds fp16 cannot carry). The converter appends its casts
    after the nodes they feed, so the graph is put back in topological order, which ONNX and TensorRT's
    parser need. An ExportError names the file when the opset conversion fails or the result is not a
    valid model.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edge.runtimes.onnxruntime import default_opset

    name = Path(src).name
    model = onnx.load(str(src))
    for i, n in enumerate(model.graph.node):  # the converter blocks nodes by name (as large_value_nodes names them)
        if not n.name:
            n.name = f"#{i}"
    opset = default_opset(model)
    qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    if qdq and opset < QDQ_FP16_MIN_OPSET:  # ONNX's own converter: 18 -> 19 only widens types and adds modes
        try:
            model = onnx.version_converter.convert_version(model, QDQ_FP16_MIN_OPSET)
            model.ir_version = max(model.ir_version, onnx.helper.find_min_ir_version_for(
                [o for o in model.opset_import if o.domain in ("", "ai.onnx")]))
        except Exception as e:
            raise ExportError(f"{name}: opset {opset} has no fp16 Q/DQ scales and its conversion to "
                              f"{QDQ_FP16_MIN_OPSET} failed ({first_line(e)})") from None
    custom = [n.name for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    if custom:  # the converter casts a kept node's outputs back to fp16 only where it knows their type
        inferred = onnx.shape_inference.infer_shapes(model)
        typed = {v.name for v in [*inferred.graph.value_info, *inferred.graph.output]
                 if v.type.tensor_type.elem_type}
        for n in model.graph.node:
            if n.name in custom and any(o and o not in typed for o in n.output):
                raise ExportError(f"{name}: node '{n.name}' ({n.domain}::{n.op_type}) has outputs of unknown "
                                  "type, so where it meets fp16 layers cannot be cast; no fp16 form")
    try:
        out = convert_float_to_float16(copy.deepcopy(model), keep_io_types=True, op_block_list=list(keep_fp32),
                                       node_block_list=[*custom, *keep_nodes])
        drop_cast_round_trips(out)
        topological_sort(out.graph)
        onnx.checker.check_model(out, full_check=True)
        onnx.save(out, str(dst))
    except Exception as e:
        raise ExportError(f"{name}: FP16 conversion failed ({first_line(e)})") from None
    kept = {"io": "float32", "kept_fp32_ops": list(keep_fp32), "kept_fp32_custom_nodes": custom,
            "kept_fp32_nodes": list(keep_nodes)}
    if not qdq:
        return {"format": "fp16", **kept}
    n_dq = sum(n.op_type == "DequantizeLinear" for n in out.graph.node)
    return {"format": "qdq", "symmetric": True, "float": "fp16", **kept, "dequantize_nodes": n_dq}


def drop_cast_round_trips(model: Any) -> int:
    """Make each ``Cast(to=float32)`` of a ``Cast(to=float16)`` of an fp32 ``x`` read ``x`` itself (a Cast
    from fp32 to fp32: the identity), drop the casts nothing reads any more, and return how many were
    changed.

    ORT's converter puts such a pair between two nodes it keeps fp32 (it types the tensor between them
    fp16), and before an fp32 graph output, which rounds, and overflows to inf above 65504 (a shipped
    calibration model's refinement step: a 72448 between two fp32 nodes became inf), where the fp32 value
    should pass as is."""
    import onnx

    g = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    ty = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *g.input]}
    ty.update({t.name: t.data_type for t in g.initializer})

    def to(n: Any) -> int | None:
        a = next((a for a in n.attribute if a.name == "to"), None)
        return None if n.op_type != "Cast" or a is None else int(onnx.helper.get_attribute_value(a))

    made_by = {n.output[0]: n for n in g.node if to(n) is not None}
    changed = 0
    for n in g.node:
        inner = made_by.get(n.input[0]) if to(n) == onnx.TensorProto.FLOAT else None
        if inner is not None and to(inner) == onnx.TensorProto.FLOAT16 and ty.get(inner.input[0]) == \
                onnx.TensorProto.FLOAT:
            n.input[0] = inner.input[0]
            changed += 1
    outputs = {o.name for o in g.output}
    while True:  # drop casts whose outputs nothing reads now
        read = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if n.op_type == "Cast" and not set(n.output) & read]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    produced = {o for n in g.node for o in n.output}
    for v in [v for v in g.value_info if v.name not in produced]:  # the dropped casts' outputs
        g.value_info.remove(v)
    return changed


def topological_sort(graph: Any) -> None:
    """Reorder ``graph.node`` (a main graph) in place so each node follows the producers of its inputs
    (nodes already in order keep it). A ValueError names a node whose input nothing produces, or a cycle."""
    import heapq

    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes = list(graph.node)
    produced_by = {o: i for i, n in enumerate(nodes) for o in n.output}
    waiting: dict[int, set[str]] = {}
    users: dict[str, set[int]] = {}
    for i, n in enumerate(nodes):
        need = {x for x in n.input if x not in known and x in produced_by}
        missing = [x for x in n.input if x not in known and x not in produced_by]
        if missing:
            raise ValueError(f"node {n.name or n.op_type!r} reads {missing[0]!r}, which nothing produces")
        waiting[i] = need
        for x in need:
            users.setdefault(x, set()).add(i)
    ready = [i for i, need in waiting.items() if not need]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for o in nodes[i].output:
            for j in sorted(users.get(o, ())):
                waiting[j].discard(o)
                if not waiting[j]:
                    heapq.heappush(ready, j)
    if len(order) != len(nodes):
        done = set(order)
        stuck = next(nodes[i] for i in range(len(nodes)) if i not in done)
        raise ValueError(f"the graph has a cycle through node {stuck.name or stuck.op_type!r}")
    sorted_nodes = [nodes[i] for i in order]
    del graph.node[:]
    graph.node.extend(sorted_nodes)



#: suffix of a node output that :func:`emulate_fp16` rounds: the node writes ``<name>__raw``, the Cast pair
#: ``<name>``
RAW = "__raw"


def emulate_fp16(model: Any) -> Any:
    """An fp32 copy of the fp16 form ``model`` that rounds to fp16 wherever the form stores fp16: each node
    output typed fp16 is written as ``<name>__raw`` and passed through Cast(fp16) + Cast(fp32) to ``<name>``;
    fp16 initializers and constants become fp32 (their values are fp16's already), a Cast to fp16 becomes
    the same pair. ONNX Runtime keeps such explicit pairs in an fp32 graph, where it drops the fp16 rounding
    between ops of the form itself (no fp16 kernels on most CPUs), so this is how the form is scored."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = copy.deepcopy(model)
    g = m.graph
    inferred = onnx.shape_inference.infer_shapes(m)
    ty = {v.name: v.type.tensor_type.elem_type
          for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}

    def fp32(t: Any) -> Any:
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)

    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(fp32(t))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(fp32(a.t))
            elif a.name in ("to", "dtype") and a.type == onnx.AttributeProto.INT and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT  # a Cast to fp16 is rounded below, as every fp16 output
        rounded = [k for k, o in enumerate(n.output) if o and ty.get(o) == TensorProto.FLOAT16
                   and n.op_type != "Constant"]
        nodes.append(n)
        for k in rounded:
            out = n.output[k]
            n.output[k] = out + RAW
            nodes += [helper.make_node("Cast", [out + RAW], [out + "__fp16"], to=TensorProto.FLOAT16,
                                       name=f"{n.name}__to_fp16_{k}"),
                      helper.make_node("Cast", [out + "__fp16"], [out], to=TensorProto.FLOAT,
                                       name=f"{n.name}__round_{k}")]
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    for v in [*g.input, *g.output]:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT16:
            v.type.tensor_type.elem_type = TensorProto.FLOAT
    return m
