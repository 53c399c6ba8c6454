"""ONNX files read from a bundle: one-line errors, and the files a model makes a runtime open.

ONNX Runtime and OpenVINO follow a model's *external data* references (``location`` entries of its
tensors, relative to the model) on their own, and OpenVINO reads ``X.bin`` beside ``X.xml``. Those
files must be listed and hashed in the manifest like any other, so :func:`external_data_files`
names them for :meth:`edge.bundle.Bundle.load` to check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.errors import BundleError, EdgeError, first_line


def read_model(path: str | os.PathLike[str], *, error: type[EdgeError] = BundleError) -> Any:
    """``onnx.ModelProto`` without its external data; ``error`` (one line) for a file that is not one."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError, truncated file, a folder
        raise error(f"{path}: not a readable ONNX model ({type(e).__name__}: {first_line(e, 120, empty='')})") \
            from None


def _graph_tensors(graph: Any) -> Iterator[Any]:
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in graph.node:
        yield from _attribute_tensors(node.attribute)


def _attribute_tensors(attrs: Any) -> Iterator[Any]:
    for a in attrs:
        if a.HasField("t"):
            yield a.t
        yield from a.tensors
        if a.HasField("sparse_tensor"):
            yield a.sparse_tensor.values
            yield a.sparse_tensor.indices
        for sp in a.sparse_tensors:
            yield sp.values
            yield sp.indices
        if a.HasField("g"):
            yield from _graph_tensors(a.g)
        for g in a.graphs:
            yield from _graph_tensors(g)


def external_data_files(model: Any) -> list[str]:
    """The ``location`` of every tensor stored outside the model (relative to the model's folder), in order."""
    import onnx

    out: dict[str, None] = {}
    tensors = list(_graph_tensors(model.graph))
    for fn in model.functions:
        for node in fn.node:
            tensors.extend(_attribute_tensors(node.attribute))
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            # every entry: a second 'location' is the one OpenVINO reads (ONNX Runtime refuses two), so checking
            # only the first let an unlisted file's weights run behind a listed one
            locs = [e.value for e in t.external_data if e.key == "location"] or [""]
            for loc in locs:
                out[loc] = None
    return list(out)


def opened_files(bundle_root: Path, name: str) -> list[str]:
    """Files (bundle-relative) a runtime opens besides ``name`` itself: an ONNX model's external data,
    an OpenVINO IR's weights. Locations that leave the bundle are returned as they resolve (the
    caller refuses what the manifest does not list). A file that does not parse opens nothing."""
    p = bundle_root / name
    if name.endswith(".onnx"):
        try:
            locs = external_data_files(read_model(p))
        except BundleError:  # not a model: no runtime can follow references from it (opening it is the error)
            return []
        return [(Path(name).parent / loc).as_posix() if loc else loc for loc in locs]
    if name.endswith(".xml"):
        weights = Path(name).with_suffix(".bin").as_posix()
        return [weights] if (bundle_root / weights).exists() or (bundle_root / weights).is_symlink() else []
    return []


def name_nodes(model: Any) -> int:
    """Give every unnamed node of ``model``'s main graph a name unique in it (``<op type>_<index>``); returns
    how many were named.

    Why: the INT8 tools pick nodes by name (the gate's exclusions, the Convs and short dot products left in
    float, ONNX Runtime's ``nodes_to_exclude``), and an unnamed node cannot be picked: excluding "" would
    exclude every unnamed node at once. Naming is deterministic, so two loads of one file agree.
    """
    used = {n.name for n in model.graph.node if n.name}
    named = 0
    for i, n in enumerate(model.graph.node):
        if n.name:
            continue
        name = f"{n.op_type}_{i}"
        while name in used:
            name += "_"
        n.name = name
        used.add(name)
        named += 1
    return named


def attribute(node: Any, name: str, default: Any = None) -> Any:
    """A node's attribute ``name`` as a Python value (an int, a float, a list, ...), or ``default`` when it has none
    (ONNX's default for that attribute, which the caller knows)."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _static_dims(tt: Any) -> list[int | None] | None:
    """A value's dims from its type (None for a dim without a fixed value), or None when its rank is unknown."""
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]


#: initializers of at most this many elements go to shape inference with their values (the shapes, axes and
#: indices a Reshape, Unsqueeze or Slice reads); larger ones (the weights) as their types alone
SMALL_INITIALIZER = 1024


def _without_weights(model: Any) -> Any:
    """A copy of ``model`` for shape inference: its large initializers turned into graph inputs of their type and
    dims. Why: inference serialises the model it is given, so the whole model cost a copy of its weights (a
    1 GB embedding table: +10 s and +2 GB of peak memory per export, a review measured) for dims alone."""
    import onnx
    from onnx import helper

    g = model.graph
    small, typed = [], []
    named = {vi.name for vi in g.input}
    for t in g.initializer:
        if math.prod(t.dims) <= SMALL_INITIALIZER:  # Python's ints: int64 wrapped a forged shape
            small.append(t)
        elif t.name not in named:
            typed.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    graph = onnx.GraphProto(name=g.name, node=g.node, input=[*g.input, *typed], output=g.output,
                            initializer=small, value_info=g.value_info)
    light = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import, graph=graph)
    light.functions.extend(model.functions)
    return light


def value_dims(model: Any) -> dict[str, list[int | None]]:
    """Every value's dims (None for one without a fixed size) the graph states or ONNX's shape inference finds,
    initializers' and Constant nodes' included: what :mod:`edge.export.index_ranges` and :mod:`edge.bench.flops`
    read. Inference runs on a copy without the weights (:func:`_without_weights`)."""
    g = model.graph
    shapes: dict[str, list[int | None]] = {}
    try:
        import onnx

        inferred = onnx.shape_inference.infer_shapes(_without_weights(model)).graph
        vis = [*inferred.value_info, *inferred.input, *inferred.output]
    except Exception:  # a graph shape inference cannot read: what it states
        vis = [*g.value_info, *g.input, *g.output]
    for vi in vis:
        if vi.type.HasField("tensor_type"):
            dims = _static_dims(vi.type.tensor_type)
            if dims is not None:
                shapes[vi.name] = dims
    for t in g.initializer:
        shapes[t.name] = [int(d) for d in t.dims]
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    shapes[node.output[0]] = [int(d) for d in a.t.dims]
    return shapes
