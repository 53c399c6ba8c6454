"""Which integer inputs of an exported graph index a table of its own (an embedding), and the table's length.

Why: an index past the table is refused by ONNX Runtime but read as zeros by OpenVINO's Gather, without an
error, so one bundle gave a wrong answer on one backend and a clear error on the other. The export records the
valid range on the input (:attr:`edge.spec.TensorSpec.index_range`) and every runtime's feed check refuses a
value outside it. Only inputs that reach a Gather's indices unchanged are given a range (through reshapes, and casts
between integer types: a cast to bool or float ends the search); an input used otherwise as well keeps the strictest
range its Gathers set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edge.spec import IOSpec

#: ops whose output holds exactly the values of their first input (so a Gather after them constrains the input);
#: a Cast only from one integer type to another (:func:`_keeps_indices`)
KEEP_VALUES = {"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose", "Expand"}
#: ONNX's integer element types (TensorProto: uint8, int8, uint16, int16, int32, int64, uint32, uint64)
INT_TYPES = frozenset({2, 3, 4, 5, 6, 7, 12, 13})


def _keeps_indices(src: int, dst: int) -> bool:
    """Whether a Cast from integer type ``src`` to ``dst`` keeps every index of a table (integer to integer: a
    narrower type keeps every value a table's rows can be numbered by; to bool or float the values change)."""
    return src in INT_TYPES and dst in INT_TYPES


def index_ranges(model: Any) -> dict[str, tuple[int, int]]:
    """Graph input name -> (lo, hi): the Gathers its values reach as indices, with a constant table of ``n`` rows
    along the Gather's axis, take ``-n <= v < n`` (ONNX's rule; the smallest table wins)."""
    g = model.graph
    consts = {t.name: list(t.dims) for t in g.initializer}
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.HasField("t"):
                    consts[node.output[0]] = list(a.t.dims)
    users: dict[str, list[Any]] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            users.setdefault(name, []).append((node, i))
    out: dict[str, tuple[int, int]] = {}
    for vi in g.input:
        if vi.type.tensor_type.elem_type not in INT_TYPES or vi.name in consts:
            continue
        n_rows: list[int] = []
        seen, todo = {vi.name}, [(vi.name, vi.type.tensor_type.elem_type)]
        while todo:
            name, kind = todo.pop()
            for node, pos in users.get(name, ()):
                if node.op_type == "Gather" and pos == 1 and node.input[0] in consts:
                    dims = consts[node.input[0]]
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    axis = axis + len(dims) if axis < 0 else axis
                    if 0 <= axis < len(dims) and dims[axis] > 0:
                        n_rows.append(int(dims[axis]))
                elif pos == 0 and node.op_type in (*KEEP_VALUES, "Cast"):
                    after = kind
                    if node.op_type == "Cast":
                        after = next((a.i for a in node.attribute if a.name == "to"), 0)
                        if not _keeps_indices(kind, after):  # to bool or float: the values change
                            continue
                    for o in node.output:
                        if o not in seen:
                            seen.add(o)
                            todo.append((o, after))
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
