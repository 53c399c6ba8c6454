"""On an image without OpenCV: what needs it says so before work, names what needed it, and what does not need
it runs (found by a review that ran the CLI with torch, cv2, nncf, tensorrt and pycuda blocked)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from edge.errors import BackendUnavailable

NOT_INSTALLED = "cv2 (opencv-python-headless) is not installed (pip install 'edge-deploy[video]')"


@pytest.fixture
def no_cv2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` raises ModuleNotFoundError(name='cv2')


def test_a_frame_already_at_the_model_size_needs_no_opencv(no_cv2: None) -> None:
    from edge.data.images import chw_feed

    x = chw_feed(np.full((4, 6, 3), 255, np.uint8), (4, 6), 0.5, 0.5)
    assert x.shape == (3, 4, 6) and np.allclose(x, 1.0)
    with pytest.raises(BackendUnavailable, match=r"resizing camera frames to the model's input needs it$") as e:
        chw_feed(np.zeros((8, 12, 3), np.uint8), (4, 6), 0.5, 0.5)
    assert str(e.value).startswith(NOT_INSTALLED)


def test_the_line_names_the_function_that_needed_the_package(no_cv2: None) -> None:
    from edge.deps import explain_import
    from edge.models.lane import synthetic

    with pytest.raises(ImportError) as e:
        synthetic.generate_clip(np.random.default_rng(0), height=32, width=64, frames=1)
    assert explain_import(e.value) == f"{NOT_INSTALLED}; needed by edge.models.lane.synthetic._render"
    assert explain_import(ValueError("x")) is None
    assert explain_import(ModuleNotFoundError("No module named 'ours'", name="ours")) is None  # not optional: a bug


def test_an_overlay_without_opencv_is_refused_before_any_source_opens(no_cv2: None) -> None:
    from edge.stream.pipeline import Pipeline
    from edge.stream.sinks import Sink
    from edge.stream.sources import Source

    class Src(Source):
        spec, sensors, opened = "src", ("camera",), False

        def open(self) -> None:
            Src.opened = True

        def __iter__(self) -> Iterator[Any]:
            return iter(())

    class Overlay(Sink):
        name, wants_image = "overlay", True

    class Task:
        sensors = ("camera",)

    with pytest.raises(BackendUnavailable, match=r"drawing the overlay \(edge run's video, --save, --display; a run "
                                                 r"with --jsonl alone draws none\) needs it"):
        Pipeline([Src()], Task(), [Overlay()]).run()
    assert not Src.opened


def test_a_stage_that_reaches_a_missing_package_says_the_pip_line(no_cv2: None) -> None:
    """A stage or a sink that imports an optional package this install lacks: the pip line and the function, not
    "postprocess failed: ModuleNotFoundError: No module named 'cv2'"."""
    from edge.stream.pipeline import _reason

    def draw() -> None:
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")

    try:
        draw()
    except ImportError as e:
        said = _reason(e)
    # the function that needed it, a user's as well as ours (a review: it named the loop that called a user's sink)
    assert said == f"{NOT_INSTALLED}; needed by {__name__}.test_a_stage_that_reaches_a_missing_package_says_the_pip_" \
                   "line.<locals>.draw"
    assert _reason(RuntimeError("boom")) == "RuntimeError: boom"


def test_a_users_sink_that_needs_a_package_is_named_not_the_loop(no_cv2: None) -> None:
    from edge.stream.pipeline import Pipeline
    from edge.stream.sinks import Sink
    from edge.stream.sources import MemorySource

    class Plot(Sink):
        name = "plot"

        def write(self, result: Any) -> None:
            import cv2  # noqa: F401

    class Echo:
        sensors = ("camera",)

        def preprocess(self, frames: Any) -> Any:
            return None

        def infer(self, x: Any) -> Any:
            return None

        def postprocess(self, out: Any, frames: Any) -> tuple[dict[str, Any], None]:
            return {}, None

    frames = [np.zeros((4, 4, 3), np.uint8)]
    with pytest.raises(Exception, match=r"sink plot: write failed: cv2 \(opencv-python-headless\) is not installed "
                                        r".*; needed by tests\.test_thin_image\..*Plot\.write$"):
        Pipeline([MemorySource(frames, count=1)], Echo(), [Plot()], policy="block").run()


def test_a_users_function_named_like_an_import_hook_is_still_named(no_cv2: None) -> None:
    """The import machinery's frames are skipped by what runs them (a finder on sys.meta_path, a loader), not by
    name: a user's ``load_module`` that imported OpenCV was skipped for its caller."""
    from edge.deps import needed_by

    def load_module() -> None:
        import cv2  # noqa: F401

    with pytest.raises(ImportError) as e:
        load_module()
    assert needed_by(e.value, "cv2").endswith(".load_module")


def test_a_duck_typed_loader_a_finder_returns_is_machinery_too(no_cv2: None) -> None:
    """A loader that is neither on sys.meta_path nor an importlib Loader (a finder's wrapper with exec_module) was
    named as the importer by the stricter rule; the user's function that imported is named."""
    from edge.deps import needed_by

    class Wrap:
        def exec_module(self, module: Any) -> None:
            import cv2  # noqa: F401

    def users_write() -> None:
        Wrap().exec_module(None)

    with pytest.raises(ImportError) as e:
        users_write()
    assert needed_by(e.value, "cv2").endswith(".users_write")
