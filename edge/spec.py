"""TensorSpec / IOSpec: the one shape and dtype contract.

Export writes it into the ONNX graph and the manifest, build checks engines against it, load reads it
back, and every ``infer`` call validates its feeds against it. Dimensions are either fixed ints or
*named* dynamic dims (``"batch"``); a named dim must take the same value across all inputs of one call,
so a mismatched batch is caught before any backend sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import SpecError

Dim = int | str

_DTYPES = {"float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool"}


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one graph input or output.

    ``shape`` holds ints for fixed dims and strings for named dynamic dims. ``index_range`` ``(lo, hi)``: an
    integer input whose values index a table of the graph's (an embedding's rows) takes ``lo <= v < hi`` only,
    checked on every call: ONNX Runtime refuses an index past the table, OpenVINO's Gather returns zeros for it
    without an error, so the same bundle gave a wrong answer on one backend (export finds the range,
    :func:`edge.export.index_ranges.index_ranges`).
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    description: str = ""
    index_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise SpecError("tensor spec needs a non-empty name")
        if self.dtype not in _DTYPES:
            raise SpecError(f"tensor '{self.name}': unknown dtype '{self.dtype}' (known: {sorted(_DTYPES)})")
        shape = tuple(self.shape)
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, int | str) or (isinstance(d, int) and d < 0):
                raise SpecError(f"tensor '{self.name}': bad dimension {d!r} (int >= 0 or a name)")
        object.__setattr__(self, "shape", shape)
        if self.index_range is not None:
            r = self.index_range
            if (not isinstance(r, list | tuple) or len(r) != 2 or any(isinstance(v, bool) or not isinstance(v, int)
                                                                      for v in r) or r[0] >= r[1]):
                raise SpecError(f"tensor '{self.name}': index_range must be [lo, hi] integers with lo < hi, got "
                                f"{r!r:.60}")
            if not self.dtype.startswith(("int", "uint")):
                raise SpecError(f"tensor '{self.name}': index_range on a {self.dtype} tensor (integers only)")
            object.__setattr__(self, "index_range", (int(r[0]), int(r[1])))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dynamic_dims(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, **dims: int) -> tuple[int, ...]:
        """The shape with named dims replaced (missing names raise)."""
        out = []
        for d in self.shape:
            if isinstance(d, str):
                if d not in dims:
                    raise SpecError(f"tensor '{self.name}': no value given for dynamic dim '{d}'")
                out.append(int(dims[d]))
            else:
                out.append(d)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.description:
            d["description"] = self.description
        if self.index_range is not None:
            d["index_range"] = list(self.index_range)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        """Parse one tensor entry of a manifest; anything malformed is a SpecError."""
        if not isinstance(d, Mapping):
            raise SpecError(f"tensor spec must be an object, got {type(d).__name__}")
        missing = [k for k in ("name", "dtype", "shape") if k not in d]
        if missing:
            raise SpecError(f"tensor spec {d.get('name', '?')!r} lacks {missing}")
        if not isinstance(d["shape"], list | tuple):
            raise SpecError(f"tensor spec {d['name']!r}: shape must be a list, got {type(d['shape']).__name__}")
        if not isinstance(d["name"], str) or not isinstance(d["dtype"], str):
            raise SpecError(f"tensor spec {d['name']!r}: name and dtype must be strings")
        rng = d.get("index_range")
        if rng is not None and not isinstance(rng, list | tuple):
            raise SpecError(f"tensor spec {d['name']!r}: index_range must be a list [lo, hi], got {type(rng).__name__}")
        return cls(d["name"], d["dtype"], tuple(d["shape"]), str(d.get("description", "")),
                   None if rng is None else tuple(rng))

    def check(self, value: Any, bound: dict[str, int] | None = None) -> None:
        """Raise SpecError unless ``value`` is an ndarray matching this spec.

        ``bound`` collects values of named dims across several tensors of one call.
        """
        if not isinstance(value, np.ndarray):
            raise SpecError(f"input '{self.name}': expected a numpy array, got {type(value).__name__}")
        if str(value.dtype) != self.dtype:
            raise SpecError(f"input '{self.name}': dtype {value.dtype} but the model expects {self.dtype}")
        if value.ndim != self.rank:
            raise SpecError(
                f"input '{self.name}': shape {tuple(value.shape)} has rank {value.ndim}, "
                f"expected rank {self.rank} {self.pretty_shape()}"
            )
        bound = {} if bound is None else bound
        for axis, (want, got) in enumerate(zip(self.shape, value.shape)):
            if isinstance(want, int):
                if want != got:
                    raise SpecError(
                        f"input '{self.name}': dim {axis} is {got}, expected {want} "
                        f"(shape {tuple(value.shape)} vs {self.pretty_shape()})"
                    )
            else:
                if got == 0:
                    raise SpecError(f"input '{self.name}': dynamic dim '{want}' is 0")
                if want in bound and bound[want] != got:
                    raise SpecError(
                        f"input '{self.name}': dim '{want}' is {got} but another input has {bound[want]}"
                    )
                bound[want] = got
        if self.index_range is not None and value.size:
            lo, hi = self.index_range
            mn, mx = int(value.min()), int(value.max())
            if mn < lo or mx >= hi:
                why = ("the model refuses a negative index, which a graph reads from the table's end"
                       if lo == 0 and mn < 0 and -hi <= mn and mx < hi else
                       "ONNX Runtime refuses such an index, OpenVINO may return zeros for it")
                raise SpecError(f"input '{self.name}': values {mn}..{mx}, outside {lo}..{hi - 1}: it indexes an axis "
                                f"of length {hi} ({why})")

    def pretty_shape(self) -> str:
        return "[" + ", ".join(str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class IOSpec:
    """Ordered inputs and outputs of one model graph."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        names = [t.name for t in self.inputs + self.outputs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpecError(f"IOSpec has duplicate tensor names: {sorted(dup)}")

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise SpecError(f"no input named '{name}' (inputs: {self.input_names})")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Named dynamic axes per tensor, the form torch.onnx.export takes."""
        return {t.name: t.dynamic_dims for t in self.inputs + self.outputs if t.dynamic_dims}

    def validate_feeds(self, feeds: Mapping[str, Any]) -> dict[str, int]:
        """Check a feed dict against the inputs; returns the bound dynamic dims.

        Missing or unknown names, dtype, rank, fixed dims and inconsistent named dims all raise
        SpecError naming the input, so a backend never sees a malformed feed.
        """
        if not isinstance(feeds, Mapping):
            raise SpecError(f"feeds must be a dict of name -> array, got {type(feeds).__name__}")
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise SpecError(f"missing input(s) {missing} (given {sorted(map(str, feeds))}); the model takes "
                            f"{self.input_names}")
        extra = [n for n in feeds if n not in self.input_names]
        if extra:
            raise SpecError(f"unknown input(s) {extra}; the model takes {self.input_names}")
        bound: dict[str, int] = {}
        for t in self.inputs:
            t.check(feeds[t.name], bound)
        return bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            **({"meta": dict(self.meta)} if self.meta else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IOSpec:
        """Parse an IOSpec from a manifest; anything malformed is a SpecError."""
        if not isinstance(d, Mapping) or "inputs" not in d or "outputs" not in d:
            raise SpecError("io spec must be an object with 'inputs' and 'outputs'")
        if not isinstance(d["inputs"], list | tuple) or not isinstance(d["outputs"], list | tuple):
            raise SpecError("io spec 'inputs' and 'outputs' must be lists")
        if not isinstance(d.get("meta", {}), Mapping):
            raise SpecError("io spec 'meta' must be an object")
        return cls(
            tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            dict(d.get("meta", {})),
        )


def spec_from_arrays(names: Sequence[str], arrays: Sequence[np.ndarray]) -> tuple[TensorSpec, ...]:
    """Fixed-shape specs for example arrays (used when a user brings only example inputs)."""
    return tuple(TensorSpec(n, str(a.dtype), tuple(int(s) for s in a.shape)) for n, a in zip(names, arrays))
