"""A quantization-aware checkpoint's trained activation scales, found on an exported graph's tensors.

Why: ``edge train --qat`` rounds each Conv/Linear input of the named submodules to a symmetric int8 grid
whose scale training chose (:mod:`edge.models.qat`), and the weights learn to live with that grid. The
symmetric INT8 export calibrates its own scales instead (minmax over the calibration feeds), which is
another grid: a coarser one when one calibration crop's max exceeds the running average of batch maxima
training used, and the accuracy the training bought is lost. So the export quantizes those tensors with the
trained scales (ONNX Runtime's ``TensorQuantOverrides``), as NNCF's and PyTorch's QAT exports carry their
learned ranges into the QDQ graph.

Why by value, not by name: a layer's input has no stable name in the ONNX graph (the dynamo exporter names
nodes by op, onnxslim renames and fuses, a re-export for another attention form renumbers), and a user's
model may wrap its layers in any way. The graph's torch module is run on a few calibration feeds with a hook on
each trained layer; the ONNX graph is run on the same feeds with every Conv/MatMul/Gemm input exposed; a tensor
equal to a layer's input on every feed (to float tolerance, same element count) is that layer's input. A layer
whose input no tensor equals (an op the exporter moved in between, such as a reflect pad) keeps the calibrated
scale, and is listed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.activations import activations
from edge.calibration.quantize import DEFAULT_OPS
from edge.errors import ModelError
from edge.spec import IOSpec

#: a tensor matches a layer's input when every element is within this of it, relative to the input's largest
#: magnitude (fp32 export parity is ~1e-6; two different activations are far apart)
MATCH_RTOL = 1e-4
#: the positive float32 range a trained scale must lie in (normal numbers: a subnormal scale loses its digits)
F32_TINY = float(np.finfo(np.float32).tiny)
F32_MAX = float(np.finfo(np.float32).max)
#: calibration feeds the export finds a layer's input on (it must equal the tensor on each: one feed can make
#: unrelated tensors equal)
MATCH_FEEDS = 3


def check_scales(value: Any, root: Any, where: str) -> dict[str, float]:
    """``meta["qat_scales"]`` of a checkpoint as {layer name: positive finite scale}; a malformed value, or a
    name that is not a Conv/Linear layer of ``root``, is a one-line ModelError naming ``where`` (the file)."""
    import torch

    if not isinstance(value, dict):
        raise ModelError(f"{where}: meta 'qat_scales' is not an object of layer name -> scale")
    layers = dict(root.named_modules())
    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    out: dict[str, float] = {}
    for name, s in value.items():
        shown = repr(s) if len(repr(s)) <= 40 else repr(s)[:37] + "..."  # an int of 400 digits is a line itself
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0 or (isinstance(s, float)
                                                                                 and not math.isfinite(s)):
            raise ModelError(f"{where}: meta 'qat_scales' of layer '{name}' is {shown}, not a positive number")
        if not F32_TINY <= s <= F32_MAX:  # training and the QDQ graph hold it in float32: inf or 0 there (an int
            # past float's range compares exactly; math.isfinite of it raised OverflowError)
            raise ModelError(f"{where}: meta 'qat_scales' of layer '{name}' is {shown}, outside float32's range "
                             f"({F32_TINY:.3g} .. {F32_MAX:.3g})")
        if not isinstance(layers.get(name), kinds):
            raise ModelError(f"{where}: meta 'qat_scales' names '{name}', which is not a Conv or Linear layer of "
                             "the model")
        out[name] = float(s)
    return out


def _inputs_of(module: Any, layers: Mapping[str, tuple[Any, float]], args: Sequence[Any]
               ) -> list[tuple[float, np.ndarray, str]]:
    """(scale, input, layer name) of every call of a trained layer while ``module`` runs on ``args``, in call
    order. Every trained layer of the whole model is hooked, not only ``module``'s submodules: a graph's module
    may call a layer it holds outside its own tree (shared with another graph, or kept in a plain attribute),
    and what the graph computes is what ran."""
    import torch

    from edge.models.qat import layer_input

    got: list[tuple[float, np.ndarray, str]] = []
    handles = []

    def hook_for(name: str, s: float) -> Any:
        def hook(layer: Any, a: tuple[Any, ...], kw: dict[str, Any]) -> None:
            found = layer_input(a, kw)  # no input tensor: an empty record, which matches nothing
            x = found[1].detach().float().cpu().numpy().ravel() if found else np.zeros(0, np.float32)
            got.append((s, x, name))
        return hook

    for name, (m, s) in layers.items():
        handles.append(m.register_forward_pre_hook(hook_for(name, s), with_kwargs=True))
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    return got


def _quantized_inputs(path: str | os.PathLike[str], feeds: Sequence[Mapping[str, np.ndarray]],
                      op_types: Sequence[str]) -> list[dict[str, np.ndarray]]:
    """Per feed, every float activation input of the graph's ``op_types`` nodes (not initializers or
    constants) by tensor name (:func:`~edge.calibration.activations.activations`; a graph ONNX Runtime cannot
    run so is a one-line ExportError naming the file)."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    consts = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    wanted = {t for n in g.node if n.op_type in op_types for t in n.input[: 1 if n.op_type == "Conv" else 2]
              if t and t not in consts}
    return [{t: np.asarray(v, dtype=np.float32).ravel() for t, v in acts.items() if t in wanted and v.dtype.kind == "f"}
            for acts in activations(model, feeds, Path(path).name, "its trained INT8 scales")]


def _equal(v: np.ndarray, x: np.ndarray) -> bool:
    """``v`` is ``x`` to float tolerance (:data:`MATCH_RTOL` of x's largest magnitude), element for element."""
    if v.size != x.size or x.size == 0:  # an empty input (no rows selected on this feed) equals any empty tensor
        return v.size == x.size
    tol = MATCH_RTOL * max(float(np.abs(x).max()), 1e-6)
    return float(np.abs(v - x).max()) <= tol


def tensor_scales(path: str | os.PathLike[str], module: Any, io: IOSpec, feeds: Sequence[Mapping[str, np.ndarray]],
                  root: Any, scales: Mapping[str, float], op_types: Sequence[str] = DEFAULT_OPS
                  ) -> tuple[dict[str, float], list[str]]:
    """The trained scales ``scales`` (layer names in ``root``, the whole model) that apply to the ONNX graph at
    ``path`` exported from ``module`` (a part of ``root``): (tensor name -> scale, the trained layers ``module``
    ran whose input no tensor equals, as "name" or "name (k of n calls)" when only some calls matched).

    A tensor is a call's input when it equals it on every one of ``feeds`` (a few calibration feeds: one feed
    can make unrelated tensors equal, e.g. two all-zero ones). A call whose input is constant on every feed
    could be any constant tensor of the graph, so it matches nothing and is listed. A tensor that several
    trained layers read takes the largest of their scales (the grid none of them clips more than it was
    trained to). When the trained layers run in another order or number on another feed (control flow that
    depends on the input), no call can be paired across feeds: every layer that ran is listed and keeps
    calibration. A graph that runs no trained layer gives ({}, [])."""
    import torch

    mods = dict(root.named_modules())
    layers = {n: (mods[n], float(s)) for n, s in scales.items() if n in mods}
    if not layers or not feeds:
        return {}, []
    runs = [_inputs_of(module, layers, tuple(torch.from_numpy(np.ascontiguousarray(f[n])) for n in io.input_names))
            for f in feeds]
    if not any(runs):
        return {}, []
    if any([c[2] for c in r] != [c[2] for c in runs[0]] for r in runs):
        # the graph's control flow depends on its input: no call can be paired across feeds, so every layer it
        # ran keeps calibration (the export goes on with calibrated scales and names them)
        names = list(dict.fromkeys(c[2] for r in runs for c in r))
        return {}, [f"{n} (calls differ between calibration feeds)" for n in names]
    tensors = _quantized_inputs(path, feeds, op_types)
    out: dict[str, float] = {}
    calls: dict[str, list[int]] = {}  # layer name -> [calls, calls matched]
    for k, (s, _, name) in enumerate(runs[0]):
        xs = [r[k][1] for r in runs]
        informative = any(x.size and float(np.ptp(x)) > 0 for x in xs)
        hits = [t for t in tensors[0]
                if informative and all(t in ts and _equal(ts[t], x) for ts, x in zip(tensors, xs, strict=True))]
        for t in hits:
            out[t] = max(out.get(t, 0.0), s)
        c = calls.setdefault(name, [0, 0])
        c[0] += 1
        c[1] += bool(hits)
    unmatched = [n if hit == 0 else f"{n} ({n_ - hit} of {n_} calls)" for n, (n_, hit) in calls.items() if hit < n_]
    return out, unmatched


def describe(found: Mapping[str, float], unmatched: Sequence[str]) -> dict[str, Any]:
    """What the manifest records of the trained scales a graph's INT8 copy used."""
    return {"source": "the checkpoint's meta qat_scales (edge train --qat)", "tensors": dict(sorted(found.items())),
            "unmatched_layers": list(unmatched)}
