"""The lane pipeline on real TuSimple frames: decoding to the benchmark format and scoring run end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from edge.models import get_card  # noqa: E402
from edge.models.checkpoint import load_model  # noqa: E402
from edge.models.lane import card as lane  # noqa: E402
from edge.models.lane.train import evaluate_tusimple_folder, torch_predictor  # noqa: E402
from edge.models.lane.tusimple import read_tusimple  # noqa: E402


def test_real_frames_decode_and_score(real_data: Path) -> None:
    root = real_data / "lane" / "tusimple_lanenet"
    gt_path = root / "gt_tusimple_format_derived_from_instance_masks.json"
    card = get_card("lane")
    if card.default_checkpoint is not None:
        module, cfg, _ = load_model(card.default_checkpoint)
    else:
        cfg = lane.CONFIGS["tiny"]
        module = lane.build(cfg).eval()
    metric, preds = evaluate_tusimple_folder(torch_predictor(module), cfg, str(gt_path), str(root))
    gts = read_tusimple(gt_path)
    assert metric["num"] == len(gts) == 6
    assert 0.0 <= metric["accuracy"] <= 1.0
    for p, g in zip(preds, gts):
        assert p.raw_file == g.raw_file
        assert all(len(x) == len(g.h_samples) for x in p.lanes)
        assert all(v == -2 or 0 <= v < 1280 for x in p.lanes for v in x)
    assert np.isfinite(metric["fp"]) and np.isfinite(metric["fn"])
