"""Which integer inputs of an exported graph index a table of its own (an embedding), and the table's length.

Why: an index past the table is refused by ONNX Runtime but read as zeros by OpenVINO's Gather, without an
error, so one bundle gave a wrong answer on one backend and a clear error on the other. The export records the
valid range on the input (:attr:`edge.spec.TensorSpec.index_range`) and every runtime's feed check refuses a
value outside it. Only inputs that reach a Gather's indices unchanged are given a range (through reshapes, and casts to
a type that holds every value: a cast to bool or a narrower type ends the search); an input used otherwise as well
keeps the strictest range its Gathers set.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.spec import IOSpec

#: ops whose output holds exactly the values of their first input (so a Gather after them constrains the input);
#: a Cast only when its type holds every value of the one before (:data:`INT_RANGES`)
KEEP_VALUES = {"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose", "Expand"}
#: ONNX's integer element types (TensorProto) -> the values they hold
INT_RANGES = {2: (0, 2**8 - 1), 3: (-2**7, 2**7 - 1), 4: (0, 2**16 - 1), 5: (-2**15, 2**15 - 1),
              6: (-2**31, 2**31 - 1), 7: (-2**63, 2**63 - 1), 12: (0, 2**32 - 1), 13: (0, 2**64 - 1)}


def _widens(src: int, dst: int) -> bool:
    """Whether a Cast from integer type ``src`` to ``dst`` keeps every value (not to bool, float, or narrower)."""
    if src not in INT_RANGES or dst not in INT_RANGES:
        return False
    return INT_RANGES[dst][0] <= INT_RANGES[src][0] and INT_RANGES[src][1] <= INT_RANGES[dst][1]


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
        if vi.type.tensor_type.elem_type not in INT_RANGES or vi.name in consts:
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
                        if not _widens(kind, after):  # to bool, float or a narrower type: values change
                            continue
                    for o in node.output:
                        if o not in seen:
                            seen.add(o)
                            todo.append((o, after))
        if n_rows:
            n = min(n_rows)
            out[vi.name] = (-n, n)
    return out


def with_index_ranges(path: str | Path, io: IOSpec) -> IOSpec:
    """``io`` with the index ranges of the ONNX graph at ``path`` on its inputs (weights not loaded)."""
    import onnx

    found = index_ranges(onnx.load(str(path), load_external_data=False))
    if not found:
        return io
    return replace(io, inputs=tuple(replace(t, index_range=found[t.name]) if t.name in found else t
                                    for t in io.inputs))
