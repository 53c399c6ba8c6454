"""Users' own models in the loop: a bundle from edge.export runs through edge.stream.run as a RuntimeTask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

import edge  # noqa: E402
from edge.data.frame import Frame  # noqa: E402
from edge.errors import BundleError  # noqa: E402
from edge.stream.task import RuntimeTask, task_for_bundle  # noqa: E402


class MeanColour(torch.nn.Module):
    """Outputs the mean of each input channel: easy to check against the frame itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def custom_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("custom") / "mean"
    edge.export(MeanColour(), {"image": np.zeros((1, 3, 24, 32), np.float32)}, out)
    return out


def test_custom_bundle_runs_in_the_loop(custom_bundle: Path, tmp_path: Path) -> None:
    rt = edge.load(custom_bundle)
    task = task_for_bundle(custom_bundle)
    assert isinstance(task, RuntimeTask)
    task.close()
    rt.close()
    s = edge.stream.run(custom_bundle, "synthetic:4:60x80", jsonl=tmp_path / "r.jsonl", policy="block")
    assert s["frames"] == 4 and s["task"]["task"] == "runtime"
    recs = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    out = recs[0]["outputs"]["output0"]
    assert out["shape"] == [1, 3] and all(0.0 <= v <= 1.0 for v in out["values"])


def test_default_image_preprocessing_is_resize_rgb_unit_scale(custom_bundle: Path) -> None:
    """A uniform BGR frame (10, 20, 30) -> mean per RGB channel (30, 20, 10) / 255 after the model."""
    rt = edge.load(custom_bundle)
    task = RuntimeTask(rt)
    img = np.empty((48, 64, 3), np.uint8)
    img[:] = (10, 20, 30)
    frames = {"camera": Frame(img, 0, 0, "camera", {})}
    rec, _ = task.postprocess(task.infer(task.preprocess(frames)), frames)
    assert np.allclose(rec["outputs"]["output0"]["values"], np.array([30, 20, 10]) / 255.0, atol=1e-6)
    task.close()


def test_runtime_task_needs_preprocess_for_non_image_inputs(tmp_path: Path) -> None:
    class Two(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + b

    out = tmp_path / "two"
    edge.export(Two(), {"a": np.zeros((1, 4), np.float32), "b": np.zeros((1, 4), np.float32)}, out)
    rt = edge.load(out)
    with pytest.raises(BundleError, match="2 inputs"):
        RuntimeTask(rt)
    task = RuntimeTask(rt, preprocess=lambda fr: {"a": np.ones((1, 4), np.float32), "b": np.ones((1, 4), np.float32)},
                       postprocess=lambda o, fr: {"sum": float(o["output0"].sum())})
    frames = {"camera": Frame(np.zeros((4, 4, 3), np.uint8), 0, 0, "camera", {})}
    rec, _ = task.postprocess(task.infer(task.preprocess(frames)), frames)
    assert rec == {"sum": 8.0}
    task.close()
