"""ClipRunner: feed frames one at a time to a clip model, paying one encoder pass per frame.

When the bundle has the streaming graphs (``encoder`` + ``temporal``), the runner keeps the last T
frames' encoder outputs in a ring buffer and runs only the encoder on each new frame, then the
temporal head on the buffer; otherwise it keeps the last T preprocessed frames and runs the whole
clip graph. Both give the same numbers (tested). Until T frames have arrived the first frame is
repeated, so results start at frame 1 instead of frame T.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from edge.bundle import Bundle
from edge.errors import BundleError


class ClipRunner:
    """Stateful per-frame driver of a clip model (see the module docstring)."""

    def __init__(self, bundle: Bundle, backend: str = "onnxruntime", *, streaming: bool | None = None,
                 **options: Any) -> None:
        from edge.runtimes import load

        self.bundle = bundle
        cfg = bundle.manifest["model"].get("config")
        if not cfg or "frames" not in cfg:
            raise BundleError(f"{bundle.path}: not a clip model (no 'frames' in the model config)")
        self.cfg = cfg
        self.frames = int(cfg["frames"])
        has_stream = {"encoder", "temporal"} <= set(bundle.manifest.get("graphs", {}))
        self.streaming = has_stream if streaming is None else streaming
        if self.streaming and not has_stream:
            raise BundleError(f"{bundle.path}: no streaming graphs (export with --streaming)")
        if self.streaming:
            self.encoder = load(bundle, backend, graph="encoder", **options)
            try:
                self.temporal = load(bundle, backend, graph="temporal", **options)
            except BaseException:
                self.encoder.close()
                raise
            self._tok: deque[np.ndarray] = deque(maxlen=self.frames)
        else:
            self.full = load(bundle, backend, graph="full", **options)
            self._buf: deque[np.ndarray] = deque(maxlen=self.frames)
        self._skip: np.ndarray | None = None

    def reset(self) -> None:
        (self._tok if self.streaming else self._buf).clear()

    def push(self, frame_chw: np.ndarray) -> dict[str, np.ndarray]:
        """Add one preprocessed frame [3, h, w]; returns the model outputs for the newest frame."""
        if self.streaming:
            enc = self.encoder.infer({"frame": frame_chw[None]})
            if not self._tok:
                self._tok.extend([enc["tokens"][0]] * (self.frames - 1))
            self._tok.append(enc["tokens"][0])
            return self.temporal.infer({"tokens": np.stack(self._tok)[None], "skip": enc["skip"]})
        if not self._buf:
            self._buf.extend([frame_chw] * (self.frames - 1))
        self._buf.append(frame_chw)
        return self.full.infer({"clip": np.stack(self._buf)[None]})

    def close(self) -> None:
        for rt in ("encoder", "temporal", "full"):
            if hasattr(self, rt):
                getattr(self, rt).close()
