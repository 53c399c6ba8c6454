"""``--source waveform:FILE``: recorded (or simulated) full-waveform frames replayed from an edge-waveform file.

Each frame of the file becomes one frame of sensor "waveform" ([channels, azimuths, bins] float16 or
float32) carrying its layout, and its truths when the file has them (``range_m``, ``labels``), so a
replay of a labelled file is scored by the model family's metric as it passes. ``realtime`` paces the
frames at the layout's rotation rate, like the sensor; ``loop=N`` plays the file N times.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.data.frame import Frame, now_ns
from edge.data.pacing import Pacer, frame_ns
from edge.data.waveform import WaveformFile, read_waveform_file
from edge.errors import DataError
from edge.stream.sources.base import Source


class WaveformFileSource(Source):
    """Frames of an ``edge-waveform/1`` file (checked at ``open()``)."""

    sensors = ("waveform",)

    def __init__(self, path: str | Path, *, realtime: bool = False, loop: int = 1, max_frames: int = 0) -> None:
        if loop < 1:
            raise DataError(f"waveform:{path}: loop must be >= 1, got {loop}")
        self.path = Path(path)
        self.spec = f"waveform:{path}"
        self.realtime = self.live = realtime
        self.loop = loop
        self.max_frames = max_frames
        self.reconnect = False
        self.file: WaveformFile | None = None
        self._seq = 0

    def reads(self) -> tuple[Path, ...]:
        return (self.path,)

    def open(self) -> None:
        self.file = read_waveform_file(self.path)
        self.period_s = 1.0 / self.file.layout.rotation_hz
        self.frames_total = len(self.file) * self.loop

    def __iter__(self) -> Iterator[Frame]:
        if self.file is None:
            self.open()
        f = self.file
        assert f is not None
        pacer = Pacer(max_gap_s=None)
        n = 0
        for _ in range(self.loop):
            for i in range(len(f)):
                if self.max_frames and n >= self.max_frames:
                    return
                if self.realtime:
                    pacer.wait(frame_ns(n, self.period_s))
                meta: dict[str, Any] = {"layout": f.layout, "index": i, "file": str(self.path)}
                if f.range_m is not None:
                    meta["range_m"] = f.range_m[i]
                if f.labels is not None:
                    meta["labels"] = f.labels[i]
                if f.attack is not None and i < len(f.attack):
                    meta["attack"] = f.attack[i]
                yield Frame(f.waveforms[i], now_ns(), self._seq, "waveform", meta)
                self._seq += 1
                n += 1
