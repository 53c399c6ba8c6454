"""The shipped lane model with its preprocessing inside the engine (``--preprocess engine``) against the numpy
reference: ONNX Runtime's ONNX front and OpenVINO's PrePostProcessor, on 1280x720 synthetic roads and the
real TuSimple frames, scored in the task's own metric."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from edge.models import get_card
from edge.models.lane.samples import tusimple_samples
from edge.models.lane.tusimple import TuSimpleSample
from edge.models.lane.tusimple import evaluate as tusimple
from edge.program import evaluate, load_program, run_samples

REAL = {"tusimple_lanenet/gt_tusimple_format_derived_from_instance_masks.json": "tusimple_lanenet",
        "tusimple_lstr_train/label_data_0313.subset.json": "tusimple_lstr_train"}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped default checkpoint's streaming program, fp32, ONNX (+ IR when OpenVINO is here)."""
    from edge.export.api import export_card
    from edge.runtimes import get_backend

    card = get_card("lane")
    if card.default_checkpoint is None:
        pytest.skip("no shipped lane checkpoint in this checkout")
    to = ["onnx", "openvino"] if get_backend("openvino").is_available()[0] else ["onnx"]
    out = tmp_path_factory.mktemp("lane_engine") / "lane"
    export_card("lane", out, programs=["stream"], targets=tuple(to))
    return out


def _backends() -> list[str]:
    from edge.runtimes import get_backend

    return [b for b in ("onnxruntime", "openvino") if get_backend(b).is_available()[0]]


def _as_truth(pred: list[dict], ref: list[dict]) -> dict:
    """TuSimple metric of ``pred`` records scored against ``ref`` records as if they were the labels."""
    p = [TuSimpleSample(str(i), r["tusimple"]["lanes"], r["tusimple"]["h_samples"], 0.0) for i, r in enumerate(pred)]
    g = [TuSimpleSample(str(i), r["tusimple"]["lanes"], r["tusimple"]["h_samples"]) for i, r in enumerate(ref)]
    return tusimple(p, g)


@pytest.mark.parametrize("backend", _backends())
def test_engine_preprocessing_decodes_like_numpy_on_synthetic_roads(shipped: Path, backend: str) -> None:
    """1280x720 frames, the size TuSimple's cameras give: the engine's bilinear resize against the reference's
    area average changes the decoded lanes by less than the metric's own pixel tolerance (measured 99.7-99.9 %)."""
    card = get_card("lane")
    with load_program(shipped, backend, preprocess="numpy") as ref_prog:
        samples = card.data.samples(ref_prog.cfg, "evaluation", 16, 0)
        assert samples[0][0]["camera"].data.shape == (720, 1280, 3)
        ref = [r for r, _, _ in run_samples(ref_prog, card, samples)]
    with load_program(shipped, backend, preprocess="engine") as prog:
        assert prog.fronts and prog.runtimes["encoder"].inputs.inputs[0].dtype == "uint8"
        got = [r for r, _, _ in run_samples(prog, card, samples)]
    m = _as_truth(got, ref)
    assert m["accuracy"] >= 0.97 and m["fp"] <= 0.05 and m["fn"] <= 0.05, m


@pytest.mark.parametrize("backend", _backends())
def test_engine_preprocessing_keeps_the_real_frame_score(shipped: Path, backend: str, real_data: Path) -> None:
    """The 16 real labelled TuSimple frames: the official metric with the engine's preprocessing stays within
    2.5 points and 0.1 FP/FN of the numpy reference (measured: 90.0-90.1 vs 89.2 %)."""
    card = get_card("lane")
    samples = [s for gt, root in REAL.items()
               for s in tusimple_samples(real_data / "lane" / gt, real_data / "lane" / root)]
    with load_program(shipped, backend, preprocess="numpy") as prog:
        ref = evaluate(prog, card, samples)
    with load_program(shipped, backend, preprocess="engine") as prog:
        got = evaluate(prog, card, samples)
    assert got["num"] == ref["num"] == 16
    assert abs(got["value"] - ref["value"]) <= 2.5, (got, ref)
    assert abs(got["fp"] - ref["fp"]) <= 0.1 and abs(got["fn"] - ref["fn"]) <= 0.1, (got, ref)
