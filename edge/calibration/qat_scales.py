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
model may wrap its layers in any way. The graph's torch module is run on one feed with a hook on each trained
layer; the ONNX graph is run on the same feed with every Conv/MatMul/Gemm input exposed; a tensor equal to a
layer's input (to float tolerance, same element count) is that layer's input. A layer whose input no tensor
equals (an op the exporter moved in between, such as a reflect pad) keeps the calibrated scale, and is listed.
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
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise ModelError(f"{where}: meta 'qat_scales' of layer '{name}' is {s!r}, not a positive number")
        if not isinstance(layers.get(name), kinds):
            raise ModelError(f"{where}: meta 'qat_scales' names '{name}', which is not a Conv or Linear layer of "
                             "the model")
        out[name] = float(s)
    return out


def _inputs_of(module: Any, layers: Mapping[int, tuple[float, str]], args: Sequence[Any]
               ) -> list[tuple[float, np.ndarray, str]]:
    """(scale, input, layer name) of every call of a trained layer while ``module`` runs on ``args``."""
    import torch

    got: list[tuple[float, np.ndarray, str]] = []
    handles = []

    def hook(layer: Any, a: tuple[Any, ...]) -> None:
        s, name = layers[id(layer)]
        got.append((s, a[0].detach().float().cpu().numpy().ravel(), name))

    for m in module.modules():
        if id(m) in layers:
            handles.append(m.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    return got


def _quantized_inputs(path: str | os.PathLike[str], feed: Mapping[str, np.ndarray],
                      op_types: Sequence[str]) -> dict[str, np.ndarray]:
    """Every float activation input of the graph's ``op_types`` nodes (not initializers or constants) on
    ``feed``, by tensor name (:func:`~edge.calibration.activations.activations`; a graph ONNX Runtime cannot
    run so is a one-line ExportError naming the file)."""
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    consts = {t.name for t in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    wanted = {t for n in g.node if n.op_type in op_types for t in n.input[: 1 if n.op_type == "Conv" else 2]
              if t and t not in consts}
    acts = next(activations(model, [feed], Path(path).name, "its trained INT8 scales"))
    return {t: np.asarray(v, dtype=np.float32).ravel() for t, v in acts.items() if t in wanted and v.dtype.kind == "f"}


def tensor_scales(path: str | os.PathLike[str], module: Any, io: IOSpec, feed: Mapping[str, np.ndarray], root: Any,
                  scales: Mapping[str, float], op_types: Sequence[str] = DEFAULT_OPS
                  ) -> tuple[dict[str, float], list[str]]:
    """The trained scales ``scales`` (layer names in ``root``, the whole model) that apply to the ONNX graph at
    ``path`` exported from ``module`` (a part of ``root``): (tensor name -> scale, names of the trained layers
    in ``module`` whose input no tensor equals). A tensor that several trained layers read takes the largest
    of their scales (the grid none of them clips more than it was trained to). A graph with no trained layer
    gives ({}, [])."""
    import torch

    mods = dict(root.named_modules())
    layers = {id(mods[n]): (float(s), n) for n, s in scales.items() if n in mods}
    if not any(id(m) in layers for m in module.modules()):
        return {}, []
    args = tuple(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in io.input_names)
    calls = _inputs_of(module, layers, args)
    tensors = _quantized_inputs(path, feed, op_types)
    out: dict[str, float] = {}
    unmatched: list[str] = []
    for s, x, name in calls:
        tol = MATCH_RTOL * max(float(np.abs(x).max()) if x.size else 0.0, 1e-6)
        hits = [t for t, v in tensors.items() if v.size == x.size and float(np.abs(v - x).max()) <= tol]
        for t in hits:
            out[t] = max(out.get(t, 0.0), s)
        if not hits and name not in unmatched:
            unmatched.append(name)
    return out, unmatched


def describe(found: Mapping[str, float], unmatched: Sequence[str]) -> dict[str, Any]:
    """What the manifest records of the trained scales a graph's INT8 copy used."""
    return {"source": "the checkpoint's meta qat_scales (edge train --qat)", "tensors": dict(sorted(found.items())),
            "unmatched_layers": list(unmatched),
            # quantize_int8 leaves every Conv/MatMul/Gemm output of such a graph float, trained or not
            "outputs_quantized": not found}
