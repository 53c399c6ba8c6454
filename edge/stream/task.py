"""What the pipeline runs on each matched set of frames: preprocess -> infer -> postprocess -> draw.

A :class:`Task` adapts one model to the loop. ``FamilyTask`` drives any model family through its card
(preprocessing, the family's program over the bundle's graphs, postprocessing, drawing, the metric
when frames carry labels). ``RuntimeTask`` runs any Runtime or Program (users' own models):
single-image models get a default resize/normalize, others take the user's ``preprocess`` callable.
The stages run in different threads, so a task keeps state only inside ``infer`` (a program's ring
buffer), which one thread owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.data.frame import Frame
from edge.errors import BundleError, DataError, ModelError
from edge.models.contract import FOLD_EVERY


@dataclass
class Result:
    """One processed set of frames: ``record`` is the JSON line; ``payload`` what ``draw`` needs."""

    seq: int
    frames: dict[str, Frame]
    record: dict[str, Any]
    payload: Any = None
    t_result_ns: int = 0
    #: the keys of ``record`` the task's ``postprocess`` gave; the others are the loop's (sequence number, capture
    #: time, latency, frames and files read, point-cloud records), so a consumer of a task's fields takes these
    task_keys: frozenset[str] = frozenset()
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


class _NewSequence(dict):
    """Step feeds of the first frame set of a new sequence (:meth:`FamilyTask.preprocess`)."""


class FamilyTask:
    """A model family's bundle in the loop: the card's pre/post-processing and drawing around its program.

    The program (the card's runner over the bundle's graphs at the chosen precision, e.g. an encoder
    per frame + a ring buffer + a temporal head) runs in the infer stage; frames that carry labels
    are scored with the card's metric as they pass, so a labelled synthetic drive reports its score.
    """

    def __init__(self, bundle: Any, backend: str = "onnxruntime", *, precision: str | None = None,
                 program: str | None = None, card: Any = None, **options: Any) -> None:
        from edge.program import card_for_bundle, load_program

        self.card = card or card_for_bundle(bundle)
        self.name = self.card.name
        self.sensors = self.card.sensors.required
        self.optional = self.card.sensors.optional
        self.cfg = bundle.manifest["model"]["config"]
        self.backend = backend
        self.precision = precision or "fp32"
        self.program = load_program(bundle, backend, precision=precision, program=program, **options)
        self._items: list[Any] = []
        self._scored = 0  # labelled frame sets scored (items are folded, so not len(_items))
        #: the run's text commands (``edge run --command``, :mod:`edge.stream.commands`), None: the sources'
        self.commands: Any = None
        self._sequence: Any = None  # the primary frame's meta["sequence"] of the last frame set preprocessed

    def annotate(self, frames: Mapping[str, Frame]) -> Mapping[str, Frame]:
        """The frame set as every later stage sees it: with the command in force in the primary's meta."""
        return frames if self.commands is None else self.commands.annotate(frames, self.sensors[0])

    def preprocess(self, frames: Mapping[str, Frame]) -> dict[str, np.ndarray]:
        x = self.program.preprocess(self.card, frames)  # camera bytes for inputs its engines preprocess
        prim = frames.get(self.sensors[0])
        seq = prim.meta.get("sequence") if prim is not None else None
        if seq is not None:
            new = self._sequence is not None and seq != self._sequence
            self._sequence = seq
            if new:  # marked here, acted on in infer (the stages run in other threads, in order)
                return _NewSequence(x)
        return x

    def infer(self, x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edge.models.contract import family_code

        with family_code(self.name, f"program '{self.program.spec.name}'"):  # the card's runner, as edge val says
            if isinstance(x, _NewSequence):
                # a source that joins sequences (a synthetic stream of episodes) says where one begins
                # (meta["sequence"] changes): the program's state (a ring buffer of past frames) starts afresh, as
                # edge val and the INT8 gate run each sample; it mixed the previous episode into the next one's
                self.program.reset()
            return self.program.step(x)

    def prepare(self, sizes: Mapping[str, tuple[int, int]]) -> None:
        """The sources' camera sizes, before the first frame (see ``Source.frame_sizes``)."""
        self.program.prepare(sizes.values())

    def postprocess(self, out: dict[str, np.ndarray], frames: Mapping[str, Frame]) -> tuple[dict[str, Any], Any]:
        rec, payload = self.card.postprocessed(out, frames, self.cfg)
        self._score(rec, frames)
        return rec, payload

    def _score(self, rec: dict[str, Any], frames: Mapping[str, Frame]) -> None:
        """Keep what the card's metric takes from a labelled frame set's record, folded every ``FOLD_EVERY`` items
        where the metric can fold (``Metric.fold``), so a long labelled run does not grow with its length."""
        if self.card.metric is not None:
            item = self.card.metric_item(rec, frames, self.cfg)
            if item is not None:
                self._items.append(item)
                self._scored += 1
                if len(self._items) >= FOLD_EVERY:
                    self._items = self.card.metric_fold(self._items)

    @property
    def decodes_in_batches(self) -> bool:
        """Whether decoding several results at once is cheaper per result (the card vectorises it). False
        for a subclass that replaces ``postprocess``: the card's batch decoding would bypass it."""
        return self.card.postprocess_many is not None and type(self).postprocess is FamilyTask.postprocess

    def postprocess_many(self, outs: list[dict[str, np.ndarray]],
                         frames: list[Mapping[str, Frame]]) -> list[tuple[dict[str, Any], Any]]:
        """``postprocess`` of several steps at once: through the card's ``postprocess_many`` when it has
        one (one vectorised decode for all), else one by one; the metric sees each record as before."""
        if self.card.postprocess_many is None or len(outs) < 2:
            return [self.postprocess(o, f) for o, f in zip(outs, frames, strict=True)]
        from edge.models.contract import family_code, record_and_payload

        with family_code(self.name, "postprocess_many"):
            results = [record_and_payload(self.name, r) for r in self.card.postprocess_many(outs, frames, self.cfg)]
        for (rec, _), f in zip(results, frames, strict=True):
            self._score(rec, f)
        return results

    def draw(self, result: Result) -> np.ndarray | None:
        from edge.data.frame import is_image
        from edge.models.contract import family_code

        with family_code(self.name, "draw"):
            img = self.card.draw(result.payload, result.frames, self.cfg)
        if img is not None and not is_image(img):  # OpenCV's putText assertion on our overlay said "postprocess"
            raise ModelError(f"model '{self.name}': draw must return a uint8 HxWx3 BGR image or None, got "
                             f"{getattr(img, 'dtype', type(img).__name__)} {tuple(getattr(img, 'shape', ()))}")
        return img

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.name, "backend": self.backend, "precision": self.precision,
                               "program": self.program.name, "graphs": list(self.program.spec.graphs),
                               "preprocess": "engine" if self.program.fronts else "numpy"}
        if self.program.inference_precision is not None:
            out["inference_precision"] = self.program.inference_precision
        if self._items and self.card.metric is not None:
            m = self.card.metric
            out["metric"] = {"name": m.name, "unit": m.unit, "frames": self._scored, **m.score(self._items)}
        return out

    def close(self) -> None:
        self.program.close()


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
        if not callable(getattr(runtime, "infer", None)) or getattr(runtime, "inputs", None) is None:
            from edge.errors import EdgeError

            raise EdgeError(f"RuntimeTask: a runtime (edge.load(...): infer() and its IOSpec as .inputs), got "
                            f"{type(runtime).__name__}")
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
        from edge.data.images import chw_feed

        cam = frames.get(self.sensors[0])
        if cam is None or not isinstance(cam.data, np.ndarray) or cam.data.ndim != 3:
            raise DataError(f"sensor '{self.sensors[0]}' did not deliver an image for input '{self._input.name}'")
        # the families' image path (area resize, RGB, /255) with no mean or std: a plain module gets [0, 1] RGB
        x = chw_feed(cam.data, (self._input.shape[2], self._input.shape[3]), 0.0, 1.0)
        return {self._input.name: x[None].astype(self._input.dtype, copy=False)}

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.rt.infer(feeds)

    def prepare(self, sizes: Mapping[str, tuple[int, int]]) -> None:
        prep = getattr(self.rt, "prepare", None)  # a Program; a bare runtime has nothing to prepare
        if prep is not None:
            prep(sizes.values())

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


def task_for_bundle(bundle: Any, backend: str = "onnxruntime", *, precision: str | None = None,
                    program: str | None = None, **options: Any) -> Any:
    """The task that fits a bundle: its family's (``FamilyTask``), or RuntimeTask for a plain module."""
    from edge.bundle import Bundle
    from edge.program import card_for_bundle, load_program

    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    card = card_for_bundle(bundle)
    if card is not None:
        return FamilyTask(bundle, backend, precision=precision, program=program, card=card, **options)
    return RuntimeTask(load_program(bundle, backend, precision=precision, program=program, **options))
