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


def test_close_while_another_thread_infers_is_a_closed_error(tmp_path: Path) -> None:
    """The review of the lock: close() during another thread's calls gave AttributeError ('NoneType' object has no
    attribute 'infer'); the calls after it are ClosedError, the one in flight finishes."""
    import edge
    from edge.errors import ClosedError

    class Twice(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return a * 2

    edge.export(Twice(), {"a": torch.zeros(2, 256)}, tmp_path / "b", dynamic_batch=True)
    for _ in range(5):
        rt = edge.load(tmp_path / "b", backend="openvino")
        other: list[str] = []
        started = threading.Event()

        def work(rt: object = rt, other: list[str] = other, started: threading.Event = started) -> None:
            x = np.ones((64, 256), np.float32)
            for _ in range(10_000):
                try:
                    rt.infer({"a": x})  # type: ignore[attr-defined]
                except ClosedError:
                    return
                except Exception as e:
                    other.append(f"{type(e).__name__}: {e}")
                    return
                finally:
                    started.set()

        t = threading.Thread(target=work)
        t.start()
        started.wait(5)
        rt.close()
        t.join(10)
        assert not t.is_alive() and not other, other
