"""Preprocessing inside the engine (edge/runtimes/front.py): the ONNX front (ONNX Runtime) and OpenVINO's
PrePostProcessor against the numpy reference, the camera size as a reshape, and the refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.errors import BackendUnavailable, BundleError, EdgeError, SpecError
from edge.models.contract import ImageInput
from edge.spec import IOSpec, TensorSpec

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SPEC = ImageInput("g", "image", (24, 40), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IO = IOSpec((TensorSpec("image", "float32", ("batch", 3, 24, 40)),),
            (TensorSpec("out", "float32", ("batch", 3, 24, 40)),))


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An opset-20 graph whose output is its image input (x 1): what the front feeds the model, visible."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph([helper.make_node("Mul", ["image", "one"], ["out"])], "identity",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 24, 40])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 24, 40])],
                          [numpy_helper.from_array(np.ones((1,), np.float32), "one")])
    path = tmp_path_factory.mktemp("front") / "identity.onnx"
    ops = [helper.make_opsetid("", 20)]  # the IR version opset 20 needs: ONNX Runtime 1.23 (Python 3.10) reads <= 11
    onnx.save(helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops)), str(path))
    return path


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _bilinear_reference(img: np.ndarray, spec: ImageInput) -> np.ndarray:
    """float32 [1, 3, h, w]: OpenCV's bilinear resize (half-pixel centres, as ONNX/OpenVINO) + the formula."""
    import cv2

    h, w = spec.size_hw
    r = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(np.float32) / 255.0
    return ((r - np.float32(spec.mean)) / np.float32(spec.std)).transpose(2, 0, 1)[None]


BACKENDS = ["onnxruntime", "openvino"]


def _open(backend: str, path: Path) -> object:
    if backend == "openvino":
        pytest.importorskip("openvino")
    from edge.runtimes import open_file

    return open_file(backend, path, IO, front=SPEC)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_size_equals_the_numpy_reference(backend: str, identity: Path) -> None:
    """At the model's own size the resize is the identity: the engine's normalisation is the numpy one."""
    from edge.data.images import image_feed

    rt = _open(backend, identity)
    img = _frame(24, 40)
    got = rt.infer({"image": img[None]})["out"]
    want = image_feed(img, SPEC)[None]
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hw", [(72, 120), (50, 97), (12, 20)])
def test_resize_is_bilinear_at_any_camera_size(backend: str, hw: tuple[int, int], identity: Path) -> None:
    """Down- and upscaling from camera sizes the graph never saw (the camera size is a free dim / reshape):
    within one uint8 level of OpenCV's bilinear resize (the engines round the resized bytes)."""
    rt = _open(backend, identity)
    img = _frame(*hw, seed=hw[0])
    got = rt.infer({"image": img[None]})["out"]
    want = _bilinear_reference(img, SPEC)
    one_level = 1.0 / 255.0 / min(SPEC.std)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1.01 * one_level
    assert np.abs(got - want).mean() < 0.5 * one_level  # rounding only, no shift of the sampling grid


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hw", [(12, 20), (20, 30), (30, 20)])
def test_an_enlarged_frame_matches_the_numpy_reference(backend: str, hw: tuple[int, int], identity: Path) -> None:
    """A review: the numpy reference enlarged a frame by area "averaging" (pixel copies) while the engines
    interpolate, and 256x128 TuSimple frames enlarged to the lane model's input agreed on 85 % of lane points. Where
    a frame grows (on either side) the reference interpolates bilinearly too: within one uint8 level of the engine."""
    from edge.data.images import image_feed

    rt = _open(backend, identity)
    img = _frame(*hw, seed=hw[1])
    got = rt.infer({"image": img[None]})["out"]
    want = image_feed(img, SPEC)[None]
    one_level = 1.0 / 255.0 / min(SPEC.std)
    assert np.abs(got - want).max() <= 1.01 * one_level
    assert np.abs(got - want).mean() < 0.5 * one_level


@pytest.mark.parametrize("backend", BACKENDS)
def test_engine_input_takes_camera_bytes_only(backend: str, identity: Path) -> None:
    rt = _open(backend, identity)
    assert rt.inputs.inputs[0].dtype == "uint8" and rt.inputs.inputs[0].shape[-1] == 3
    with pytest.raises(SpecError, match="image"):
        rt.infer({"image": np.zeros((1, 3, 24, 40), np.float32)})


def _float_front_session(path: Path) -> object:
    """The graph TensorRT would parse for ``--preprocess engine`` (``float_resize``), run by ONNX Runtime."""
    import onnx
    import onnxruntime as ort

    from edge.runtimes.front import onnx_front

    m = onnx_front(onnx.load(str(path)), SPEC, float_resize=True)
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    assert ops[:4] == ["Cast", "Transpose", "Resize", "Gather"]  # uint8 only at the input, float Resize
    resize = m.graph.node[2]
    assert not [a for a in resize.attribute if a.name == "axes"]
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("hw", [(24, 40), (72, 120), (50, 97), (12, 20)])
def test_float_resize_front_for_tensorrt(hw: tuple[int, int], identity: Path) -> None:
    """The TensorRT form of the front (cast + NCHW first, then a float resize of the two innermost dims to a
    full 4-D size): at the model's size exactly the numpy reference; at other camera sizes OpenCV's float
    bilinear resize without the uint8 rounding of the other form."""
    import cv2

    from edge.data.images import image_feed

    sess = _float_front_session(identity)
    img = _frame(*hw, seed=hw[1])
    got = sess.run(["out"], {"image": img[None]})[0]
    if hw == SPEC.size_hw:
        want = image_feed(img, SPEC)[None]
    else:
        r = cv2.resize(img.astype(np.float32), SPEC.size_hw[::-1], interpolation=cv2.INTER_LINEAR)
        want = ((r[..., ::-1] / 255.0 - np.float32(SPEC.mean)) / np.float32(SPEC.std)).transpose(2, 0, 1)[None]
    assert got.shape == (1, 3, *SPEC.size_hw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_float_resize_front_needs_opset_13(tmp_path: Path, identity: Path) -> None:
    import onnx

    from edge.runtimes.front import onnx_front

    m = onnx.load(str(identity))
    m.opset_import[0].version = 17  # fine without axes
    onnx_front(m, SPEC, float_resize=True)
    m.opset_import[0].version = 12
    with pytest.raises(BundleError, match="opset >= 13"):
        onnx_front(m, SPEC, float_resize=True)


def test_front_needs_opset_18(tmp_path: Path, identity: Path) -> None:
    import onnx

    from edge.runtimes import open_file

    m = onnx.load(str(identity))
    m.opset_import[0].version = 17
    old = tmp_path / "old.onnx"
    onnx.save(m, str(old))
    with pytest.raises(BundleError, match="opset >= 18"):
        open_file("onnxruntime", old, IO, front=SPEC)
    with pytest.raises(BundleError, match="not an input"):
        open_file("onnxruntime", identity, IO, front=ImageInput("g", "nope", (24, 40), SPEC.mean, SPEC.std))


def test_image_input_record_round_trip() -> None:
    from edge.errors import ModelError

    assert ImageInput.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ModelError, match="std > 0"):
        ImageInput.from_dict({**SPEC.to_dict(), "std": [0.2, 0.0, 0.2]})
    with pytest.raises(ModelError, match="needs graph"):
        ImageInput.from_dict({"graph": "g"})


def test_raw_images_only_for_the_named_inputs() -> None:
    from edge.data.images import image_feed, raw_images

    img = _frame(30, 50)
    other = ImageInput("h", "x", (24, 40), SPEC.mean, SPEC.std)
    with raw_images([SPEC]):
        assert image_feed(img, SPEC).dtype == np.uint8 and image_feed(img, SPEC).shape == (30, 50, 3)
        assert image_feed(img, other).shape == (3, 24, 40)
    assert image_feed(img, SPEC).shape == (3, 24, 40)


def test_the_numpy_path_takes_camera_bytes_only_too() -> None:
    """Found by a review: the numpy path (the documented reference) took a float image in [0, 1], a notebook's habit,
    as a near-black frame, and an int64 one was "model 'lane': preprocess raised error: OpenCV ... Assertion
    failed". Anything but uint8 is one DataError, as the engine path's."""
    from edge.data.images import chw_feed
    from edge.errors import DataError

    img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    assert chw_feed(img, (12, 16), 0.5, 0.25).shape == (3, 12, 16)
    for bad in (img / 255.0, img.astype(np.float32), img.astype(np.uint16), img.astype(np.int64), img > 128):
        with pytest.raises(DataError, match=rf"^expected a uint8 BGR image \(a camera frame, 0\.\.255\), got "
                                            rf"{bad.dtype}$"):
            chw_feed(bad, (12, 16), 0.5, 0.25)


def test_program_refusals(tiny_bundle: Path) -> None:
    """engine preprocessing for a backend or program that cannot have it is one line, never a fallback."""
    from edge.program import load_program

    with pytest.raises(BackendUnavailable, match="cannot preprocess inside the engine"):
        load_program(tiny_bundle, "torch", preprocess="engine")
    with pytest.raises(BundleError, match="no camera-image input"):
        load_program(tiny_bundle, "onnxruntime", program="clip", preprocess="engine")
    with pytest.raises(EdgeError, match="choose one of numpy, engine, auto"):
        load_program(tiny_bundle, "onnxruntime", preprocess="gpu")
    with load_program(tiny_bundle, "torch", preprocess="auto") as prog:  # auto: numpy where the engine cannot
        assert prog.fronts == ()
    with load_program(tiny_bundle, "onnxruntime", program="clip", preprocess="auto") as prog:
        assert prog.fronts == ()


def test_the_loop_compiles_for_the_camera_size_before_its_first_frame(identity: Path) -> None:
    """An OpenVINO front compiles per camera size; the pipeline asks for the sources' sizes before its clock
    starts, so the first frame does not pay for the compile (a live run dropped frames behind it)."""
    from edge.program import Program, single_graph_spec
    from edge.stream.pipeline import Pipeline
    from edge.stream.sources.camera import MemorySource
    from edge.stream.task import RuntimeTask

    rt = _open("openvino", identity)
    events: list[object] = []
    prep, infer = rt.prepare_image_size, rt.infer
    rt.prepare_image_size = lambda hw: (events.append(("prepare", hw)), prep(hw))[1]  # type: ignore[attr-defined]
    rt.infer = lambda feeds: (events.append("infer"), infer(feeds))[1]  # type: ignore[method-assign]
    prog = Program(single_graph_spec("g"), {"g": rt}, {}, fronts=(SPEC,))
    task = RuntimeTask(prog, preprocess=lambda frames: {"image": frames["camera"].data[None]})
    src = MemorySource([_frame(72, 120, s) for s in range(3)])
    assert src.frame_sizes() == {"camera": (72, 120)}
    summary = Pipeline([src], task, policy="block").run(handle_signals=False)
    assert summary["frames"] == 3 and summary["engine_prepare_ms"] > 0
    assert events[0] == ("prepare", (72, 120)) and events[1:] == ["infer"] * 3


def _compiles(rt: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The camera sizes ``rt`` compiles from now on, in order (a spy on its per-size compile)."""
    compiled: list[tuple[int, int]] = []
    real = rt._for_size

    def spy(hw: tuple[int, int]) -> None:
        if hw not in rt._sized:
            compiled.append(hw)
        real(hw)

    monkeypatch.setattr(rt, "_for_size", spy)
    return compiled


def test_the_camera_sizes_kept_are_the_ones_used_last(identity: Path, monkeypatch) -> None:
    """More camera sizes than SIZES_KEPT: the least recently used one is compiled again, not the first seen
    (a size used one frame earlier was dropped and recompiled inside a frame)."""
    rt = _open("openvino", identity)
    compiled = _compiles(rt, monkeypatch)
    sizes = [(20 + 2 * i, 30) for i in range(rt.SIZES_KEPT)]
    for hw in sizes:
        rt.infer({"image": _frame(*hw)[None]})
    compiled.clear()
    for hw in (sizes[0], (99, 30), sizes[0]):  # sizes[0] used again just before a new size arrives
        rt.infer({"image": _frame(*hw)[None]})
    assert compiled == [(99, 30)]


def test_an_async_queue_says_which_camera_size_it_takes(identity: Path) -> None:
    """The queue runs the model compiled for the camera size of its creation: another size is one line."""
    rt = _open("openvino", identity)
    rt.infer({"image": _frame(40, 60)[None]})
    q = rt.infer_queue(1)
    q.submit({"image": _frame(40, 60)[None]}, 0)
    q.wait()
    assert [u for u, _ in q.results] == [0]
    with pytest.raises(EdgeError, match="camera frames of 20x30, but this queue's model was compiled for 40x60"):
        q.submit({"image": _frame(20, 30)[None]}, 1)


def test_prepared_camera_sizes_are_never_dropped(identity: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A rig of more distinct camera sizes than SIZES_KEPT, announced before the first frame (the stream's
    prepare): every one stays compiled, so cycling through them compiles nothing inside a frame (one size was
    dropped and compiled again in every frame set). Sizes seen only in frames still rotate beside them."""
    rt = _open("openvino", identity)
    compiled = _compiles(rt, monkeypatch)
    rig = [(20 + 2 * i, 30) for i in range(rt.SIZES_KEPT + 2)]
    for hw in rig:
        rt.prepare_image_size(hw)
    assert compiled == rig
    compiled.clear()
    for _ in range(2):
        for hw in rig:
            rt.infer({"image": _frame(*hw)[None]})
    assert compiled == []
    loose = [(60 + 2 * i, 30) for i in range(rt.SIZES_KEPT + 1)]
    for hw in loose:
        rt.infer({"image": _frame(*hw)[None]})
    assert set(rig) <= set(rt._sized) and len(rt._sized) == len(rig) + rt.SIZES_KEPT
    # sizes announced past SIZES_PREPARED rotate with the others: announcing for ever is not unbounded
    for i in range(rt.SIZES_PREPARED + 3):
        rt.prepare_image_size((100 + 2 * i, 30))
    assert len(rt._prepared) == rt.SIZES_PREPARED
    assert len(rt._sized) == rt.SIZES_PREPARED + rt.SIZES_KEPT
