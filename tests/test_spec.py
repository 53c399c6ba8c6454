"""TensorSpec / IOSpec: serialization round trips, feed validation errors, concrete shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import EdgeError, SpecError
from edge.spec import IOSpec, TensorSpec, spec_from_arrays

DTYPES = ["float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool"]

# ------------------------------------------------------------------------------------------ strategies

_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
_dim = st.one_of(st.integers(min_value=0, max_value=4096), st.sampled_from(["batch", "time", "n", "seq_len"]))


@st.composite
def tensor_specs(draw: st.DrawFn, name: str | None = None) -> TensorSpec:
    dtype = draw(st.sampled_from(DTYPES))
    rng = None
    if dtype.startswith(("int", "uint")) and draw(st.booleans()):
        n = draw(st.integers(1, 10**9))
        rng = (-n, n)
    return TensorSpec(
        name if name is not None else draw(_ident),
        dtype,
        tuple(draw(st.lists(_dim, max_size=6))),
        draw(st.one_of(st.just(""), st.text(max_size=20))),
        rng,
    )


@pytest.mark.parametrize("bad", ["x", [1], [3, 1], [True, 2], [0.5, 2], {"lo": 0}])
def test_a_malformed_index_range_is_a_spec_error(bad: object) -> None:
    with pytest.raises(SpecError, match=r"tensor (spec )?'?ids'?.*index_range"):
        TensorSpec.from_dict({"name": "ids", "dtype": "int64", "shape": [2], "index_range": bad})
    with pytest.raises(SpecError, match=r"index_range on a float32 tensor"):
        TensorSpec("x", "float32", (2,), index_range=(0, 3))


def test_an_index_range_is_checked_on_every_call() -> None:
    t = TensorSpec("ids", "int64", (3,), index_range=(-4, 4))
    t.check(np.array([-4, 0, 3]))
    TensorSpec("ids", "int64", (0,), index_range=(0, 4)).check(np.zeros(0, np.int64))  # nothing to index
    for bad, needle in (([0, 4, 1], "values 0..4, outside -4..3"), ([-5, 0, 0], "values -5..0")):
        with pytest.raises(SpecError, match=needle):
            t.check(np.array(bad))


@st.composite
def io_specs(draw: st.DrawFn) -> IOSpec:
    names = draw(st.lists(_ident, min_size=1, max_size=6, unique=True))
    n_in = draw(st.integers(min_value=0, max_value=len(names)))
    specs = [draw(tensor_specs(name=n)) for n in names]
    meta = draw(st.dictionaries(_ident, st.one_of(st.integers(), st.text(max_size=8), st.booleans()),
                                max_size=3))
    return IOSpec(tuple(specs[:n_in]), tuple(specs[n_in:]), meta)


# ------------------------------------------------------------------------------------------ round trips


@settings(max_examples=100, deadline=None)
@given(tensor_specs())
def test_tensor_spec_round_trip(t: TensorSpec) -> None:
    d = t.to_dict()
    back = TensorSpec.from_dict(d)
    assert back == t
    assert back.shape == t.shape
    assert all(type(a) is type(b) for a, b in zip(back.shape, t.shape))
    assert back.to_dict() == d


@settings(max_examples=100, deadline=None)
@given(io_specs())
def test_io_spec_round_trip(io: IOSpec) -> None:
    d = io.to_dict()
    back = IOSpec.from_dict(d)
    assert back == io
    assert back.input_names == io.input_names
    assert back.output_names == io.output_names
    assert dict(back.meta) == dict(io.meta)
    assert back.to_dict() == d


@settings(max_examples=50, deadline=None)
@given(io_specs())
def test_io_spec_round_trip_through_json(io: IOSpec) -> None:
    import json

    assert IOSpec.from_dict(json.loads(json.dumps(io.to_dict()))) == io


def test_dynamic_dims_and_dynamic_axes() -> None:
    t = TensorSpec("x", "float32", ("batch", 3, "h", 8))
    assert t.rank == 4
    assert t.dynamic_dims == {0: "batch", 2: "h"}
    io = IOSpec((t,), (TensorSpec("y", "float32", (2, 2)), TensorSpec("z", "int64", ("batch",))))
    assert io.dynamic_axes() == {"x": {0: "batch", 2: "h"}, "z": {0: "batch"}}


# ------------------------------------------------------------------------------------------ construction


def test_bad_dtype_rejected_naming_tensor() -> None:
    with pytest.raises(SpecError, match=r"'img'.*float64"):
        TensorSpec("img", "float64", (1, 2))
    with pytest.raises(SpecError, match=r"'img'"):
        TensorSpec("img", "f32", (1,))


@pytest.mark.parametrize("bad", [-1, 1.5, True, None, (2,)])
def test_bad_dimension_rejected(bad: object) -> None:
    with pytest.raises(SpecError, match=r"'x'"):
        TensorSpec("x", "float32", (1, bad))  # type: ignore[arg-type]


def test_empty_name_rejected() -> None:
    with pytest.raises(SpecError):
        TensorSpec("", "float32", (1,))


def test_spec_error_is_edge_error() -> None:
    assert issubclass(SpecError, EdgeError)
    assert SpecError.exit_code == 2


@pytest.mark.parametrize(
    ("inputs", "outputs", "dup"),
    [
        (("a", "a"), ("y",), "a"),
        (("a",), ("y", "y"), "y"),
        (("a", "b"), ("b",), "b"),
    ],
)
def test_duplicate_names_rejected(inputs: tuple[str, ...], outputs: tuple[str, ...], dup: str) -> None:
    with pytest.raises(SpecError, match=rf"duplicate.*'{dup}'"):
        IOSpec(tuple(TensorSpec(n, "float32", (1,)) for n in inputs),
               tuple(TensorSpec(n, "float32", (1,)) for n in outputs))


def test_from_dict_malformed() -> None:
    with pytest.raises(SpecError):
        TensorSpec.from_dict({"name": "x", "shape": [1]})  # no dtype
    with pytest.raises(SpecError):
        TensorSpec.from_dict({"name": "x", "dtype": "float32", "shape": 3})  # not a sequence
    with pytest.raises(SpecError):
        IOSpec.from_dict({"inputs": []})
    with pytest.raises(SpecError):
        IOSpec.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"duplicate"):
        IOSpec.from_dict({"inputs": [{"name": "x", "dtype": "float32", "shape": [1]}],
                          "outputs": [{"name": "x", "dtype": "float32", "shape": [1]}]})


# ------------------------------------------------------------------------------------------ concrete


def test_concrete() -> None:
    t = TensorSpec("clip", "float32", ("batch", 3, "h", 5))
    assert t.concrete(batch=2, h=7) == (2, 3, 7, 5)
    assert all(type(d) is int for d in t.concrete(batch=np.int64(4), h=1))
    assert TensorSpec("c", "int8", (1, 2)).concrete() == (1, 2)
    with pytest.raises(SpecError, match=r"'clip'.*'h'"):
        t.concrete(batch=2)


# ------------------------------------------------------------------------------------------ validate_feeds


def _io() -> IOSpec:
    return IOSpec(
        (TensorSpec("image", "float32", ("batch", 3, 4, 4)), TensorSpec("mask", "uint8", ("batch", 4))),
        (TensorSpec("out", "float32", ("batch", 2)),),
    )


def _good(batch: int = 2) -> dict[str, np.ndarray]:
    return {"image": np.zeros((batch, 3, 4, 4), np.float32), "mask": np.zeros((batch, 4), np.uint8)}


def test_validate_feeds_ok_returns_bound_dims() -> None:
    assert _io().validate_feeds(_good(3)) == {"batch": 3}
    assert _io().validate_feeds(_good(1)) == {"batch": 1}


def test_missing_input_named() -> None:
    feeds = _good()
    del feeds["mask"]
    with pytest.raises(SpecError, match=r"missing.*'mask'"):
        _io().validate_feeds(feeds)


def test_unknown_input_named() -> None:
    feeds = {**_good(), "extra": np.zeros(1, np.float32)}
    with pytest.raises(SpecError, match=r"unknown.*'extra'"):
        _io().validate_feeds(feeds)


def test_wrong_dtype_named() -> None:
    feeds = _good()
    feeds["image"] = feeds["image"].astype(np.float64)
    with pytest.raises(SpecError, match=r"'image'.*float64.*float32"):
        _io().validate_feeds(feeds)


def test_wrong_rank_named() -> None:
    feeds = _good()
    feeds["mask"] = np.zeros((2, 4, 1), np.uint8)
    with pytest.raises(SpecError, match=r"'mask'.*rank 3.*rank 2"):
        _io().validate_feeds(feeds)


def test_wrong_fixed_dim_named() -> None:
    feeds = _good()
    feeds["image"] = np.zeros((2, 3, 5, 4), np.float32)
    with pytest.raises(SpecError, match=r"'image'.*dim 2 is 5, expected 4"):
        _io().validate_feeds(feeds)


def test_inconsistent_named_dim_across_inputs() -> None:
    feeds = {"image": np.zeros((2, 3, 4, 4), np.float32), "mask": np.zeros((3, 4), np.uint8)}
    with pytest.raises(SpecError, match=r"'mask'.*'batch' is 3.*2"):
        _io().validate_feeds(feeds)


def test_zero_dynamic_dim_rejected() -> None:
    with pytest.raises(SpecError, match=r"'image'.*'batch'"):
        _io().validate_feeds(_good(0))


@pytest.mark.parametrize("value", [[[0.0] * 4] * 2, 3.0, None, "abc"])
def test_non_ndarray_named(value: object) -> None:
    feeds: dict[str, object] = {**_good(), "mask": value}
    with pytest.raises(SpecError, match=r"'mask'.*numpy array"):
        _io().validate_feeds(feeds)  # type: ignore[arg-type]


def test_feeds_not_a_mapping() -> None:
    with pytest.raises(SpecError, match=r"dict"):
        _io().validate_feeds([np.zeros(1)])  # type: ignore[arg-type]


def test_input_lookup() -> None:
    io = _io()
    assert io.input("mask").dtype == "uint8"
    with pytest.raises(SpecError, match=r"'nope'"):
        io.input("nope")


def test_spec_from_arrays() -> None:
    specs = spec_from_arrays(["a", "b"], [np.zeros((1, 2), np.float32), np.zeros(3, np.int64)])
    assert specs == (TensorSpec("a", "float32", (1, 2)), TensorSpec("b", "int64", (3,)))
    assert all(type(d) is int for d in specs[0].shape)
