"""The Python API's bad arguments are EdgeErrors with one line naming what is wrong (a user's review found raw
KeyErrors, TypeErrors and AttributeErrors from deep inside), and edge.stream is reachable as the README spells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import edge
from edge.errors import BundleError, ClosedError, EdgeError, SpecError


def test_edge_stream_and_its_task_module_load_lazily_from_edge() -> None:
    assert edge.stream.run.__name__ == "run" and edge.stream.task.RuntimeTask.__name__ == "RuntimeTask"


@pytest.mark.parametrize("bad", [None, 5])
def test_a_bundle_that_is_not_a_path(bad: object) -> None:
    with pytest.raises(BundleError, match=r"a bundle is a folder path \(str or os.PathLike\), got"):
        edge.load(bad)


def test_closed_runtimes_and_programs_say_so(tiny_bundle: Path) -> None:
    rt = edge.load(tiny_bundle, graph="encoder")
    rt.close()
    with pytest.raises(ClosedError, match="onnxruntime runtime is closed"):
        rt.infer({"frame": np.zeros((1, 3, 64, 128), np.float32)})
    assert issubclass(ClosedError, RuntimeError)  # what it raised before: callers catching that still do
    prog = edge.load_program(tiny_bundle, "onnxruntime", program="stream")
    prog.close()
    for get in (lambda: prog.inputs, lambda: prog.backend):
        with pytest.raises(ClosedError, match="program 'stream' is closed"):
            get()


def test_program_artifacts_steps_and_a_named_artifact(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match=r"program 'stream' \(encoder, temporal\); missing temporal"):
        edge.load_program(tiny_bundle, "onnxruntime", artifacts={"encoder": "onnx-fp32-encoder"})
    with edge.load_program(tiny_bundle, "onnxruntime", artifacts={"full": "onnx-fp32-full"}) as p:
        assert p.name == "clip"  # the program that calls exactly the graphs named
    with edge.load_program(tiny_bundle, "onnxruntime", program="stream") as p:
        with pytest.raises(SpecError, match=r"program 'stream': no step feed 'frame' \(given: img\)"):
            p.step({"img": np.zeros(3, np.float32)})
        with pytest.raises(SpecError, match="step feeds are a mapping"):
            p.step(None)  # type: ignore[arg-type]
    with edge.load(tiny_bundle, artifact="onnx-fp32-encoder") as rt:  # its graph, without graph=
        assert rt.inputs.input_names == ["frame"]


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"source": None}, "source: a source spec string"),
    ({"max_frames": "x"}, "max_frames: an integer >= 0"),
    ({"threads": -2}, "threads: an integer >= 0"),
    ({"sinks": [object()]}, "sinks: edge.stream.sinks.Sink subclasses"),
])
def test_stream_run_checks_its_arguments(tiny_bundle: Path, kwargs: dict[str, object], needle: str) -> None:
    args = {"source": "synthetic:2", **kwargs}
    with pytest.raises(EdgeError, match=needle):
        edge.stream.run(tiny_bundle, **args)
    with pytest.raises(EdgeError, match="bundle: a bundle folder"):
        edge.stream.run(None, "synthetic:2")
