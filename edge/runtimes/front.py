"""Preprocessing inside the engine: a graph's normalised image input replaced by the camera's own bytes.

A family declares which graph inputs are one camera image (``edge.models.contract.ImageInput``: size,
mean, std) and the manifest records them. With ``edge run --preprocess engine`` the runtime of that
graph takes uint8 [1, H, W, 3] BGR frames of any size and does, inside the engine:

    resize to (h, w) (bilinear, on the uint8 frame) -> float -> BGR to RGB -> NCHW -> (x - 255 mean) / (255 std)

- ONNX Runtime (and any backend reading ONNX): :func:`onnx_front` prepends those nodes (Resize with
  ``axes`` = the two spatial dims and a fixed output size, so the camera size is a free dim of the
  graph, not a re-export; opset >= 18);
- TensorRT: the same front with ``float_resize``: the bytes are cast to float and made NCHW first,
  then resized over the two innermost dims with a full 4-D output size (TensorRT takes uint8 only as
  a network input/output and resizes float types; no ``axes``), parsed from memory at build time;
  the camera size is a range of the engine's optimization profile
  (:func:`edge.runtimes.tensorrt.build_engine`);
- OpenVINO: :func:`openvino_front` builds the same steps with its PrePostProcessor, compiled into the
  model; the runtime reshapes to the camera's size on the first frame of that size.

Both resize bilinearly: the numpy reference (:func:`edge.data.images.chw_feed`) averages areas
(``cv2.INTER_AREA``) where a frame shrinks, so the two differ by the resampling filter there; where it grows the
reference interpolates bilinearly as well (:func:`edge.data.images.resize_filter`). The parity tests bound that on
real frames in the task's own metric (a bilinear resize without antialiasing samples 2 of every 2.5
source pixels at 1280 -> 512; the README gives the measured effect on the shipped models' metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import BundleError
from edge.spec import IOSpec, TensorSpec

#: the camera-side dims of an image input taken by the engine
CAMERA_DIMS = ("camera_height", "camera_width")
_MIN_OPSET = 18  # Resize with ``axes``
_MIN_OPSET_FLOAT = 13  # Resize with ``sizes`` and no ``axes``


def camera_io(io: IOSpec, spec: Any) -> IOSpec:
    """``io`` with the image input ``spec.input`` as the engine takes it: uint8 [1, H, W, 3] BGR."""
    if spec.input not in io.input_names:
        raise BundleError(f"image input '{spec.input}' is not an input of this graph ({', '.join(io.input_names)})")
    ins = tuple(TensorSpec(t.name, "uint8", (1, *CAMERA_DIMS, 3), "camera frame, BGR, any size")
                if t.name == spec.input else t for t in io.inputs)
    return IOSpec(ins, io.outputs)


def _scale(spec: Any) -> tuple[np.ndarray, np.ndarray]:
    """(255 mean, 255 std) per RGB channel (float64): the normalisation of 0..255 values."""
    return np.asarray(spec.mean, np.float64) * 255.0, np.asarray(spec.std, np.float64) * 255.0


def onnx_front(model: Any, spec: Any, *, float_resize: bool = False) -> Any:
    """A copy of ONNX ``model`` whose input ``spec.input`` takes camera bytes (see the module docstring).

    ``float_resize``: cast and transpose, then resize the float NCHW image to [1, 3, h, w] (what TensorRT
    can parse: uint8 only at the network's edge, Resize on float types); else resize the uint8 bytes
    over ``axes`` (1, 2) first (~4x less memory traffic on a CPU), which needs opset >= 18."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    opset = max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0)
    need = _MIN_OPSET_FLOAT if float_resize else _MIN_OPSET
    if opset < need:
        raise BundleError(f"engine preprocessing needs an ONNX opset >= {need} graph (this one: {opset}); "
                          "re-export, or run with --preprocess numpy")
    pos = next((i for i, v in enumerate(g.input) if v.name == spec.input), None)
    if pos is None:
        raise BundleError(f"image input '{spec.input}' is not an input of this graph")
    inner = f"{spec.input}__normalised"
    for node in g.node:
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise BundleError(f"engine preprocessing: node '{node.name}' has a subgraph; "
                                  "run with --preprocess numpy")
        for k, name in enumerate(node.input):
            if name == spec.input:
                node.input[k] = inner
    for out in g.output:
        if out.name == spec.input:
            raise BundleError(f"engine preprocessing: '{spec.input}' is also a graph output")
    mean, std = _scale(spec)
    p = f"{spec.input}__front_"
    size = [1, 3, *spec.size_hw] if float_resize else list(spec.size_hw)
    g.initializer.extend([
        numpy_helper.from_array(np.array(size, np.int64), p + "size"),
        numpy_helper.from_array(np.array([2, 1, 0], np.int64), p + "rgb"),
        numpy_helper.from_array(mean.astype(np.float32).reshape(1, 3, 1, 1), p + "mean"),
        numpy_helper.from_array((1.0 / std).astype(np.float32).reshape(1, 3, 1, 1), p + "inv_std"),
    ])
    node = helper.make_node
    if float_resize:  # float NCHW first, then the usual 2-D linear resize of the two innermost dims
        nodes = [
            node("Cast", [spec.input], [p + "float"], name=p + "cast", to=TensorProto.FLOAT),
            node("Transpose", [p + "float"], [p + "nchw_camera"], name=p + "to_nchw", perm=[0, 3, 1, 2]),
            node("Resize", [p + "nchw_camera", "", "", p + "size"], [p + "nchw_bgr"], name=p + "resize",
                 mode="linear"),
            node("Gather", [p + "nchw_bgr", p + "rgb"], [p + "nchw"], name=p + "bgr_to_rgb", axis=1),
        ]
    else:  # resize the bytes (HWC), then convert
        nodes = [
            node("Resize", [spec.input, "", "", p + "size"], [p + "resized_u8"], name=p + "resize", mode="linear",
                 axes=[1, 2]),
            node("Cast", [p + "resized_u8"], [p + "resized"], name=p + "cast", to=TensorProto.FLOAT),
            node("Gather", [p + "resized", p + "rgb"], [p + "rgb_hwc"], name=p + "bgr_to_rgb", axis=3),
            node("Transpose", [p + "rgb_hwc"], [p + "nchw"], name=p + "to_nchw", perm=[0, 3, 1, 2]),
        ]
    nodes += [
        node("Sub", [p + "nchw", p + "mean"], [p + "centred"], name=p + "sub_mean"),
        node("Mul", [p + "centred", p + "inv_std"], [inner], name=p + "div_std"),
    ]
    for n in reversed(nodes):
        g.node.insert(0, n)
    g.input.pop(pos)
    g.input.insert(pos, helper.make_tensor_value_info(spec.input, TensorProto.UINT8, [1, *CAMERA_DIMS, 3]))
    return m


def openvino_front(model: Any, spec: Any) -> Any:
    """``ov.Model`` ``model`` with PrePostProcessor steps for ``spec.input`` (spatial size left dynamic)."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

    mean, std = _scale(spec)
    ppp = PrePostProcessor(model)
    try:
        inp = ppp.input(spec.input)
    except Exception:
        raise BundleError(f"image input '{spec.input}' is not an input of this model") from None
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
        ColorFormat.BGR).set_spatial_dynamic_shape()
    inp.model().set_layout(ov.Layout("NCHW"))
    # resize first, on the uint8 frame: 1280x720 -> 512x256 in ~0.3 ms instead of ~3 ms on floats
    inp.preprocess().resize(ResizeAlgorithm.RESIZE_LINEAR).convert_color(ColorFormat.RGB).convert_element_type(
        ov.Type.f32).mean(mean.tolist()).scale(std.tolist())
    return ppp.build()
