"""The lane program on real TuSimple frames: decoding to the benchmark format and scoring run end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from edge.models import get_card  # noqa: E402
from edge.models.checkpoint import load_model  # noqa: E402
from edge.models.lane.samples import tusimple_samples  # noqa: E402
from edge.models.lane.tusimple import read_tusimple  # noqa: E402
from edge.program import evaluate, run_samples, torch_program  # noqa: E402


def test_real_frames_decode_and_score(real_data: Path) -> None:
    root = real_data / "lane" / "tusimple_lanenet"
    gt_path = root / "gt_tusimple_format_derived_from_instance_masks.json"
    card = get_card("lane")
    if card.default_checkpoint is not None:
        module, cfg, _ = load_model(card.default_checkpoint)
    else:
        cfg = card.config("tiny")
        module = card.build(cfg).eval()
    samples = tusimple_samples(gt_path, root)
    gts = read_tusimple(gt_path)
    with torch_program(card, module, cfg) as prog:
        metric = evaluate(prog, card, samples)
        results = run_samples(prog, card, samples)
    assert metric["num"] == len(gts) == 6
    assert 0.0 <= metric["accuracy"] <= 1.0 and metric["value"] == pytest.approx(100 * metric["accuracy"])
    for (rec, frames, _), g in zip(results, gts):
        assert frames["camera"].meta["gt"]["raw_file"] == g.raw_file
        lanes = rec["tusimple"]["lanes"]
        assert all(len(x) == len(g.h_samples) for x in lanes)
        assert all(v == -2 or 0 <= v < 1280 for x in lanes for v in x)
    assert np.isfinite(metric["fp"]) and np.isfinite(metric["fn"])


def test_shipped_model_draws_no_lane_above_where_the_road_ends(real_data: Path) -> None:
    """The 16 real labelled TuSimple frames: no predicted lane point more than 10 px above the frame's
    first labelled row (where the road ends). The shipped weights left 4 such points (spurs into the sky)
    before decoding turned off the rows off each lane's robust quadratic fit."""
    card = get_card("lane")
    if card.default_checkpoint is None:
        pytest.skip("no shipped checkpoint in this checkout")
    module, cfg, _ = load_model(card.default_checkpoint)
    lane = real_data / "lane"
    samples = (tusimple_samples(lane / "tusimple_lanenet" / "gt_tusimple_format_derived_from_instance_masks.json",
                                lane / "tusimple_lanenet")
               + tusimple_samples(lane / "tusimple_lstr_train" / "label_data_0313.subset.json",
                                  lane / "tusimple_lstr_train"))
    above = []
    with torch_program(card, module, cfg) as prog:
        for _rec, frames, out in run_samples(prog, card, samples):
            _, payload = card.postprocess(out, frames, cfg)
            gt = frames["camera"].meta["gt"]
            top = min(h for ln in gt["lanes"] for h, x in zip(gt["h_samples"], ln, strict=True) if x >= 0)
            above += [(gt["raw_file"], float(y)) for pts in payload["points"] for y in pts[:, 1] if y < top - 10]
    assert len(samples) == 16 and above == []
