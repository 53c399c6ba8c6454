"""Which integer inputs of an exported graph index a tensor of the graph (an embedding table, a gathered
feature map), and that tensor's length along the indexed axis.

Why: an index past the table is refused by ONNX Runtime but read as zeros by OpenVINO's Gather (and GatherND),
without an error, so one bundle gave a wrong answer on one backend and a clear error on the other. The export
records the valid range on the input (:attr:`edge.spec.TensorSpec.index_range`) and every runtime's feed check
refuses a value outside it. Only inputs that reach the indices of a Gather, GatherElements, GatherND,
ScatterElements or ScatterND unchanged are given a range (through reshapes, concatenations, and casts between
integer types: a cast to bool or float ends the search), and only where the indexed axis has a fixed length
(the data's shape from the graph or ONNX's shape inference); an input used otherwise as well keeps the strictest
range its ops set. A GatherND/ScatterND index whose columns address axes of different lengths gets no range
(one range per input cannot say it), unless a concatenation along the last axis says which columns the input
fills (``t[i, j]``, ``logits[arange(B), labels]``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edge.onnx_file import attribute, value_dims
from edge.spec import IOSpec

#: ops whose output holds exactly the values of their first input (so an indexing op after them constrains the
#: input); a Cast only from one integer type to another (:func:`_keeps_indices`)
KEEP_VALUES = {"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose", "Expand"}
#: ONNX's integer element types (TensorProto: uint8, int8, uint16, int16, int32, int64, uint32, uint64)
INT_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13})
#: ops whose input 1 indexes one axis of their input 0 (the ``axis`` attribute, 0 when absent)
BY_AXIS = frozenset({"Gather", "GatherElements", "ScatterElements"})
#: ops whose input 1's last dim ``k`` holds indices into axes ``b .. b+k-1`` of input 0 (``b``: ``batch_dims``)
BY_TUPLE = frozenset({"GatherND", "ScatterND"})


def _keeps_indices(src: int, dst: int) -> bool:
    """Whether a Cast from integer type ``src`` to ``dst`` keeps every index of a table (integer to integer: a
    narrower type keeps every value a table's rows can be numbered by; to bool or float the values change)."""
    return src in INT_TYPES and dst in INT_TYPES


def _indexed_length(node: Any, shapes: dict[str, list[int | None]], cols: tuple[int, int] | None) -> int | None:
    """The length of the axis that ``node``'s input 1 indexes, when it is fixed (None otherwise). ``cols``: for a
    GatherND / ScatterND, the columns of the index tuples the traced values fill (None: any of them)."""
    data = shapes.get(node.input[0])
    if data is None:
        return None
    if node.op_type in BY_AXIS:
        axis = attribute(node, "axis", 0)
        axis = axis + len(data) if axis < 0 else axis
        n = data[axis] if 0 <= axis < len(data) else None
        return n if n else None
    idx = shapes.get(node.input[1])
    k = idx[-1] if idx else None
    b = attribute(node, "batch_dims", 0)
    if not k or b + k > len(data):
        return None
    lo, hi = cols if cols is not None and cols[1] <= k else (0, k)
    axes = set(data[b + lo:b + hi])
    n = axes.pop() if len(axes) == 1 else None
    return n if n else None


def _concat_columns(node: Any, pos: int, shapes: dict[str, list[int | None]],
                    cols: tuple[int, int] | None) -> tuple[int, int] | None:
    """Where input ``pos`` of a Concat lands along the output's last axis (the columns of index tuples a GatherND
    reads: ``t[i, j]`` is Unsqueeze(i), Unsqueeze(j) -> Concat(-1) -> GatherND), or ``cols`` unchanged for a Concat
    along another axis; None (any column) when a width is not fixed."""
    out = shapes.get(node.output[0])
    if out is None:
        return None
    axis = attribute(node, "axis", 0)
    axis = axis + len(out) if axis < 0 else axis
    if axis != len(out) - 1:
        return cols
    widths = [(shapes.get(name) or [None])[-1] for name in node.input[:pos + 1]]
    if any(not w for w in widths):
        return None
    off = sum(widths[:-1])
    return (off + cols[0], off + cols[1]) if cols is not None else (off, off + widths[-1])


def index_ranges(model: Any) -> dict[str, tuple[int, int]]:
    """Graph input name -> (lo, hi): the indexing ops its values reach as indices, along an axis of fixed length
    ``n``, take ``-n <= v < n`` (ONNX's rule; the smallest axis wins). Through a Concat along the last axis the
    values fill some columns of a GatherND's index tuples: the axes of those columns count."""
    g = model.graph
    users: dict[str, list[Any]] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            users.setdefault(name, []).append((node, i))
    initialized = {t.name for t in g.initializer}
    candidates = [vi for vi in g.input
                  if vi.type.tensor_type.elem_type in INT_TYPES and vi.name not in initialized]
    if not candidates:
        return {}
    shapes = value_dims(model)
    out: dict[str, tuple[int, int]] = {}
    for vi in candidates:
        n_rows: list[int] = []
        start = (vi.name, vi.type.tensor_type.elem_type, None)
        seen, todo = {(vi.name, None)}, [start]
        while todo:
            name, kind, cols = todo.pop()
            for node, pos in users.get(name, ()):
                nxt: list[tuple[str, int, tuple[int, int] | None]] = []
                if pos == 1 and node.op_type in BY_AXIS | BY_TUPLE:
                    n = _indexed_length(node, shapes, cols)
                    if n is not None:
                        n_rows.append(int(n))
                elif node.op_type == "Concat":  # every input's values are in the output
                    nxt = [(o, kind, _concat_columns(node, pos, shapes, cols)) for o in node.output]
                elif pos == 0 and node.op_type in (*KEEP_VALUES, "Cast"):
                    after = kind
                    if node.op_type == "Cast":
                        after = attribute(node, "to", 0)
                        if not _keeps_indices(kind, after):  # to bool or float: the values change
                            continue
                    # a reshape may move the columns: any column from here on (sound wherever the tuple's axes
                    # have one length)
                    keep = cols if node.op_type in ("Cast", "Identity") else None
                    nxt = [(o, after, keep) for o in node.output]
                for o, k, c in nxt:
                    if (o, c) not in seen:
                        seen.add((o, c))
                        todo.append((o, k, c))
        if n_rows:
            n = min(n_rows)
            out[vi.name] = (-n, n)
    return out


def with_index_ranges(model: Any, io: IOSpec) -> IOSpec:
    """``io`` with the index ranges of the ONNX ``model`` (a ModelProto; its weights' values are not read) on its
    inputs."""
    found = index_ranges(model)
    if not found:
        return io
    return replace(io, inputs=tuple(replace(t, index_range=found[t.name]) if t.name in found else t
                                    for t in io.inputs))
