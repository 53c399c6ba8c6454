"""What the pipeline runs on each matched set of frames: preprocess -> infer -> postprocess -> draw.

A :class:`Task` adapts one model to the loop. ``LaneTask`` drives the lane family (card preprocessing,
the per-frame feature ring buffer of the streaming graphs, lane decoding, TuSimple scoring when the
source carries labels). ``RuntimeTask`` runs any bundle or Runtime (users' own models): single-image
models get a default resize/normalize, others take the user's ``preprocess`` callable. The stages
run in different threads, so a task keeps state only inside ``infer`` (the ring buffer), which one
thread owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.data.frame import Frame
from edge.errors import BundleError, DataError, ModelError


@dataclass
class Result:
    """One processed set of frames: ``record`` is the JSON line; ``payload`` what ``draw`` needs."""

    seq: int
    frames: dict[str, Frame]
    record: dict[str, Any]
    payload: Any = None
    t_result_ns: int = 0
    #: LiDAR points inside the image: (uv [K, 2], range [K]) when a calibration is known
    projected: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _image: Any = field(default=None, repr=False)


class Task(Protocol):
    """The model side of the loop; ``sensors[0]`` is the primary sensor that paces it."""

    name: str
    sensors: tuple[str, ...]
    optional: tuple[str, ...]

    def preprocess(self, frames: Mapping[str, Frame]) -> Any: ...

    def infer(self, x: Any) -> Any: ...

    def postprocess(self, out: Any, frames: Mapping[str, Frame]) -> tuple[dict[str, Any], Any]: ...

    def draw(self, result: Result) -> np.ndarray | None: ...

    def summary(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LaneTask:
    """The lane family: streaming (encoder + ring buffer + temporal) when the bundle has those graphs."""

    name = "lane"
    sensors = ("camera",)
    optional = ("lidar",)

    def __init__(self, bundle: Any, backend: str = "onnxruntime", **options: Any) -> None:
        from edge.models import get_card
        from edge.stream.clip_runner import ClipRunner

        self.card = get_card(bundle.model_name)
        self.cfg = bundle.manifest["model"]["config"]
        self.backend = backend
        self.runner = ClipRunner(bundle, backend, **options)
        self._pre = self.card.extras["preprocess"]
        self._decode = self.card.extras["decode"]
        self._preds: list[Any] = []
        self._gts: list[Any] = []

    def preprocess(self, frames: Mapping[str, Frame]) -> np.ndarray:
        return self._pre(frames["camera"].data, self.cfg)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner.push(x)

    def postprocess(self, out: dict[str, np.ndarray], frames: Mapping[str, Frame]) -> tuple[dict[str, Any], Any]:
        from edge.models.lane.tusimple import TuSimpleSample

        cam = frames["camera"]
        gt = cam.meta.get("gt")
        hs = np.asarray(gt["h_samples"]) if gt else None
        d = self._decode(out["loc"][0], out["exist"][0], self.cfg, cam.data.shape[:2], hs)
        rec: dict[str, Any] = {"slots": d["slots"], "lanes": [np.round(p, 1).tolist() for p in d["points"]]}
        if gt:
            rec["tusimple"] = {"lanes": d["lanes"], "h_samples": d["h_samples"]}
            # run_time 0: the benchmark's 200 ms rule would score a slow warm-up frame as a miss;
            # latency is reported by the stats instead
            self._preds.append(TuSimpleSample(f"frame/{cam.seq}", d["lanes"], d["h_samples"], 0.0))
            self._gts.append(TuSimpleSample(f"frame/{cam.seq}", gt["lanes"], gt["h_samples"]))
        return rec, d

    def draw(self, result: Result) -> np.ndarray | None:
        from edge.stream.overlay import draw_lanes

        cam = result.frames.get("camera")
        if cam is None:
            return None
        d = result.payload
        return draw_lanes(cam.data, d["points"], d["slots"])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.name, "backend": self.backend, "streaming": self.runner.streaming}
        if self._gts:
            from edge.models.lane.tusimple import evaluate

            out["tusimple"] = evaluate(self._preds, self._gts)
        return out

    def close(self) -> None:
        self.runner.close()


class RuntimeTask:
    """Any Runtime: ``preprocess(frames) -> feeds`` and ``postprocess(outputs, frames) -> record``.

    Without a ``preprocess``, a model with one float input shaped [N, 3, H, W] (fixed H, W) gets the
    camera frame resized to H x W, BGR -> RGB, scaled to [0, 1]. Without a ``postprocess``, the record
    holds each output's shape, and its values when small (<= 64 numbers).
    """

    name = "runtime"

    def __init__(self, runtime: Any, *, preprocess: Callable[[Mapping[str, Frame]], Mapping[str, np.ndarray]]
                 | None = None, postprocess: Callable[[dict[str, np.ndarray], Mapping[str, Frame]], dict[str, Any]]
                 | None = None, sensors: tuple[str, ...] = ("camera",), optional: tuple[str, ...] = ("lidar",),
                 owns_runtime: bool = True) -> None:
        self.rt = runtime
        self.sensors, self.optional = tuple(sensors), tuple(optional)
        self._user_pre, self._user_post = preprocess, postprocess
        self._owns = owns_runtime
        if preprocess is None:
            self._input = self._image_input()

    def _image_input(self) -> Any:
        ins = list(self.rt.inputs.inputs)
        if len(ins) != 1:
            raise BundleError(f"model has {len(ins)} inputs ({', '.join(t.name for t in ins)}): pass a preprocess "
                              "function that maps frames to feeds")
        t = ins[0]
        if (t.rank != 4 or t.shape[1] != 3 or not isinstance(t.shape[2], int) or not isinstance(t.shape[3], int)
                or not t.dtype.startswith("float")):
            raise BundleError(f"input '{t.name}' {list(t.shape)} {t.dtype} is not a fixed-size [N, 3, H, W] float "
                              "image: pass a preprocess function")
        return t

    def preprocess(self, frames: Mapping[str, Frame]) -> Mapping[str, np.ndarray]:
        if self._user_pre is not None:
            return self._user_pre(frames)
        import cv2

        cam = frames.get(self.sensors[0])
        if cam is None or not isinstance(cam.data, np.ndarray) or cam.data.ndim != 3:
            raise DataError(f"sensor '{self.sensors[0]}' did not deliver an image for input '{self._input.name}'")
        h, w = self._input.shape[2], self._input.shape[3]
        img = cv2.resize(cam.data, (w, h), interpolation=cv2.INTER_AREA)[..., ::-1]
        x = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        return {self._input.name: x[None].astype(self._input.dtype, copy=False)}

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.rt.infer(feeds)

    def postprocess(self, out: dict[str, np.ndarray], frames: Mapping[str, Frame]) -> tuple[dict[str, Any], Any]:
        if self._user_post is not None:
            return self._user_post(out, frames), out
        rec = {k: ({"shape": list(v.shape), "values": np.asarray(v).ravel().tolist()} if v.size <= 64
                   else {"shape": list(v.shape)}) for k, v in out.items()}
        return {"outputs": rec}, out

    def draw(self, result: Result) -> np.ndarray | None:
        cam = result.frames.get(self.sensors[0])
        return cam.data if cam is not None and isinstance(cam.data, np.ndarray) and cam.data.ndim == 3 else None

    def summary(self) -> dict[str, Any]:
        return {"task": self.name, "backend": getattr(self.rt, "backend", "?")}

    def close(self) -> None:
        if self._owns:
            self.rt.close()


def task_for_bundle(bundle: Any, backend: str = "onnxruntime", **options: Any) -> Any:
    """The task that fits a bundle: the family's own when its card has a decoder, else RuntimeTask."""
    from edge.bundle import Bundle
    from edge.models import get_card
    from edge.runtimes import load

    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    try:
        card = get_card(bundle.model_name)
    except ModelError:  # a user's own model: no card in our registry
        card = None
    if card is not None and card.name == "lane" and "decode" in card.extras:
        return LaneTask(bundle, backend, **options)
    return RuntimeTask(load(bundle, backend, **options))
