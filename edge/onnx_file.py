"""ONNX files read from a bundle: one-line errors, and the files a model makes a runtime open.

ONNX Runtime and OpenVINO follow a model's *external data* references (``location`` entries of its
tensors, relative to the model) on their own, and OpenVINO reads ``X.bin`` beside ``X.xml``. Those
files must be listed and hashed in the manifest like any other, so :func:`external_data_files`
names them for :meth:`edge.bundle.Bundle.load` to check.
"""

from __future__ import annotations

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
