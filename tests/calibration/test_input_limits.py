"""Hostile inputs at two trust boundaries: calibration ``.npz`` sequences and TensorRT engine records.

Both files come from outside the process (a user's calibration set, the JSON beside a cached .plan
that anyone may have edited or truncated). The project rule is one line naming the file and what is
wrong (DataError / BundleError, exit 2), never a traceback from deep inside, so each test feeds a
shape or a record that used to escape as IndexError / AttributeError / TypeError / RecursionError /
ValueError, or to be silently truncated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.calibration.datasets import from_arrays
from edge.errors import BundleError, DataError
from edge.runtimes import trt_engine as te

# ------------------------------------------------------------------ calibration sequences (.npz)


def test_a_set_that_never_reaches_a_graph_is_named(tmp_path: Path) -> None:
    """PULSAR's `sectors` program sends only waveforms that look jammed through its graph: a set of quiet ones (a
    valid .npz) failed after the fp32 scoring as "empty calibration set", naming no file, program or graph."""
    pytest.importorskip("torch")
    from edge.errors import ExportError
    from edge.export.api import export_card

    calib = tmp_path / "quiet.npz"
    np.savez(calib, waveform=np.random.default_rng(0).uniform(0, 1, (4, 16, 128, 800)).astype(np.float16))
    with pytest.raises(ExportError) as e:
        export_card("pulsar", tmp_path / "b", config="tiny", precisions=["int8"], calib=str(calib), calib_size=4)
    msg = str(e.value)
    assert "quiet.npz" in msg and "program 'sectors' never ran graph 'segment'" in msg and "\n" not in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiet.npz"]

#: step feeds of a two-input model: 'a' is [1, 2], 'b' is [1, 3] per step
REF = {"a": np.zeros((1, 2), np.float32), "b": np.zeros((1, 3), np.float32)}


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    p = tmp_path / "seq.npz"
    np.savez(p, **{k: v.astype(np.float32) for k, v in arrays.items()})
    return p


def test_sequences_of_equal_steps_load(tmp_path: Path) -> None:
    """The check must not refuse a well-formed set: 3 steps in every array gives 3-step samples."""
    p = _npz(tmp_path, a=np.ones((4, 3, 2)), b=np.ones((4, 3, 3)))
    s = from_arrays(p, REF, size=2)
    assert [len(q) for q in s.sequences] == [3, 3]


@pytest.mark.parametrize("steps", [(3, 2), (2, 3), (1, 5)])
def test_sequence_step_counts_must_agree(tmp_path: Path, steps: tuple[int, int]) -> None:
    """Before: (3, 2) was an IndexError; (2, 3) silently cut every sequence of 'b' to 2 steps."""
    p = _npz(tmp_path, a=np.ones((4, steps[0], 2)), b=np.ones((4, steps[1], 3)))
    with pytest.raises(DataError) as e:
        from_arrays(p, REF, size=2)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and "'a'" in msg and "'b'" in msg and "steps" in msg


def test_sequence_sample_counts_must_agree(tmp_path: Path) -> None:
    """Sample counts (shape[0]) of sequence arrays are compared too, with the file named."""
    p = _npz(tmp_path, a=np.ones((4, 3, 2)), b=np.ones((6, 3, 3)))
    with pytest.raises(DataError, match="sample counts") as e:
        from_arrays(p, REF, size=2)
    assert str(p) in str(e.value)



def test_arrays_no_step_takes_are_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An extra array (a feed misnamed beside one of the right name, or a label) was dropped without a word."""
    import logging

    p = _npz(tmp_path, a=np.ones((4, 2)), b=np.ones((4, 3)), bb=np.ones((4, 3)), labels=np.ones(4))
    with caplog.at_level(logging.WARNING, logger="edge.calibration"):
        s = from_arrays(p, REF, size=2)
    assert len(s.sequences) == 2
    assert (f"warning: {p}: arrays ['bb', 'labels'] feed no step of this model's programs (the programs calibrated "
            "take ['a', 'b'])") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.calibration"):  # another program's feed is no misnamed one
        from_arrays(p, REF, size=2, known=lambda: {"a", "b", "bb"})
    assert "arrays ['labels'] feed no step" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.calibration"):
        from_arrays(_npz(tmp_path, a=np.ones((4, 2)), b=np.ones((4, 3))), REF, size=2)
    assert "feed no step" not in caplog.text


def test_feeds_of_a_program_not_calibrated_are_not_called_unused(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """NativeCross's `refine_edges` is gated by `refine`'s gates, so the set's `edge_*` arrays (its host stage's
    feeds) are read by no program calibrated; they were named as feeding no step (a review). Only a stray is."""
    import logging

    from edge.calibration.datasets import load_samples
    from edge.models.contract import feeds_for
    from edge.models.registry import get_card

    card = get_card("nativecross")
    cfg = card.config("tiny")
    feeds = [card.preprocess(s[0], cfg) for s in card.data.samples(cfg, "calibration", 2, 0)]
    assert {"edge_image", "match_image"} <= set(feeds[0])
    p = tmp_path / "all.npz"
    np.savez(p, **{k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, stray=np.zeros(2))
    spec = card.program("refine")
    with caplog.at_level(logging.WARNING, logger="edge.calibration"), feeds_for({*spec.graphs, *spec.host_stages}):
        assert len(load_samples(str(p), card, cfg, size=2)) == 2
    assert "arrays ['stray'] feed no step" in caplog.text

# ------------------------------------------------------------------ engine records (JSON beside a .plan)

#: a valid record, as EngineRecord.to_json writes it
GOOD: dict[str, Any] = json.loads(te.EngineRecord(
    graph="full", precision="fp16", onnx_file="model.fp16.onnx", onnx_sha256="a" * 64, tensorrt="10.3.0",
    gpu="Orin", compute_capability="8.7", cuda_runtime="12.6", l4t="36.4.0",
    plugins={"edge::EdgeAttention": "c" * 64}, profile={"x": {"min": [1], "opt": [1], "max": [8]}},
    front={"input": "image", "size_hw": [256, 512]}).to_json())
DEV = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "cuda_runtime": "12.6", "l4t": "36.4.0"}
WHERE = "engines/full.fp16.abc.json"


def _load_or_one_line(text: str) -> te.EngineRecord | None:
    """The property: a record loads into something every consumer can use, or is a one-line BundleError
    naming the record file. Anything else (the old AttributeError in ``mismatches``) fails the test."""
    try:
        rec = te.EngineRecord.from_json(text, where=WHERE)
    except BundleError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(WHERE + ":"), msg
        return None
    te.mismatches(rec, DEV, "a" * 64, {"edge::EdgeAttention": "d" * 64})  # what select/build do with it
    te.engine_paths(rec)
    assert te.EngineRecord.from_json(rec.to_json(), where=WHERE) == rec
    return rec


@pytest.mark.parametrize(("field", "value"), [
    ("cuda_runtime", 12), ("plugins", [1]), ("plugins", {"p": 1}), ("profile", {"x": {"min": ["1"]}}),
    ("profile", {"x": [1]}), ("strongly_typed", "yes"), ("workspace_mb", True), ("workspace_mb", 1.5),
    ("build_s", "3"), ("front", []), ("graph", None), ("schema", True), ("onnx_file", {"f": 1})])
def test_record_field_of_wrong_type_is_one_line(field: str, value: Any) -> None:
    """Before: AttributeError / TypeError later in ``mismatches`` or ``key``, or a bool taken for an int."""
    with pytest.raises(BundleError) as e:
        te.EngineRecord.from_json(json.dumps({**GOOD, field: value}), where=WHERE)
    msg = str(e.value)
    assert "\n" not in msg and WHERE in msg and f"'{field}'" in msg


def test_record_missing_required_field_is_named() -> None:
    """Before: a missing ``onnx_file`` was a TypeError from the dataclass constructor."""
    d = {k: v for k, v in GOOD.items() if k != "onnx_file"}
    with pytest.raises(BundleError, match="onnx_file") as e:
        te.EngineRecord.from_json(json.dumps(d), where=WHERE)
    assert WHERE in str(e.value)


@pytest.mark.parametrize("text", [
    '{"schema": 1, "front": ' + "[" * 100_000 + "]" * 100_000 + "}",  # RecursionError in json.loads
    '{"schema": 1, "workspace_mb": ' + "9" * 5000 + "}",  # ValueError: int over 4300 digits
    json.dumps({**GOOD, "front": {"a": json.loads("[" * 600 + "]" * 600)}}),  # loaded; to_json RecursionError
])
def test_record_too_deep_or_too_long_number_is_one_line(text: str) -> None:
    with pytest.raises(BundleError) as e:
        te.EngineRecord.from_json(text, where=WHERE)
    assert "\n" not in str(e.value) and WHERE in str(e.value)


def test_good_record_and_unknown_keys_still_load() -> None:
    """Newer writers may add fields: unknown keys are ignored, as before; floats may be written as ints."""
    rec = _load_or_one_line(json.dumps({**GOOD, "future_field": [1, 2], "build_s": 3}))
    assert rec is not None and rec.build_s == 3 and rec.plugins == GOOD["plugins"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(sorted(GOOD)) | st.text(max_size=6), _json, max_size=4),
       drop=st.sets(st.sampled_from(sorted(GOOD)), max_size=2))
def test_any_json_record_loads_or_is_one_line(changes: dict[str, Any], drop: set[str]) -> None:
    """Any JSON object (a valid record with fields replaced by arbitrary JSON or removed) loads into a
    usable record or gives the one-line BundleError: never another exception."""
    d = {k: v for k, v in {**GOOD, **changes}.items() if k not in drop}
    _load_or_one_line(json.dumps(d))


@settings(max_examples=100, deadline=None)
@given(value=_json)
def test_any_json_value_as_record_is_one_line(value: Any) -> None:
    """A record that is not even an object (or an object of anything) never escapes as a traceback."""
    _load_or_one_line(json.dumps(value))
