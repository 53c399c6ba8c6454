"""One OpenVINO runtime called from several threads: its single infer request raised "Infer Request is busy" and,
worse, returned another call's outputs without an error (found by a review: 138 wrong of 12,000 calls from four
threads). Calls are serialised now, so every call gets its own outputs."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")
torch = pytest.importorskip("torch")


def test_threads_sharing_a_runtime_each_get_their_own_outputs(tmp_path: Path) -> None:
    import edge

    class Twice(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return a * 2

    edge.export(Twice(), {"a": torch.zeros(2, 256)}, tmp_path / "b", dynamic_batch=True)
    rt = edge.load(tmp_path / "b", backend="openvino")
    wrong: list[int] = []
    errors: list[str] = []

    def work(i: int) -> None:
        x = np.full((64, 256), i, np.float32)
        for _ in range(300):
            try:
                out = next(iter(rt.infer({"a": x}).values()))
            except Exception as e:  # any error is the defect too
                errors.append(f"{type(e).__name__}: {e}")
                continue
            if not np.array_equal(out, x * 2):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rt.close()
    assert not errors and not wrong, (errors[:3], len(errors), len(wrong))
