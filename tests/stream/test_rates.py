"""What bounds a run's rate, told apart: each source's own production time per frame set, synthetic
frames rendered before the clock starts, the rate counted from the loop's start, and the summary line
naming the model's rate, a slower source and the queued share of the latency."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from edge.cli.run_cmd import _cpu, _rates, _waiting
from edge.data.frame import Frame
from edge.stream.pipeline import Pipeline
from edge.stream.sources import MemorySource, SyntheticSource
from edge.stream.sources import synthetic as synthetic_mod
from tests.stream.test_pipeline import EchoTask


class Slow(MemorySource):
    """Takes ``delay`` seconds to produce each frame; with ``lidar`` each tick also yields a LiDAR frame."""

    def __init__(self, n: int, delay: float, lidar: bool = False, open_s: float = 0.0) -> None:
        super().__init__([np.zeros((8, 8, 3), np.uint8)], count=n)
        self.delay, self.lidar, self.open_s = delay, lidar, open_s
        self.sensors = ("camera", "lidar") if lidar else ("camera",)

    def open(self) -> None:
        time.sleep(self.open_s)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(self.count):
            time.sleep(self.delay)
            yield Frame(self.images[0], time.monotonic_ns(), i, "camera", {})
            if self.lidar:
                time.sleep(self.delay)
                yield Frame(np.zeros(0), time.monotonic_ns(), i, "lidar", {})


def test_a_source_rate_is_its_own_production_time_per_frame_set() -> None:
    s = Pipeline([Slow(6, 0.02, lidar=True)], EchoTask(), [], policy="block").run()
    st = s["sources"]["memory"]
    assert st["produce_p50_ms"] >= 40.0  # camera + LiDAR of one tick, 20 ms each: one set
    assert st["produce_fps"] == pytest.approx(1e3 / st["produce_p50_ms"], rel=0.01)


def test_the_rate_counts_from_the_loop_start_not_the_device_opening() -> None:
    s = Pipeline([Slow(5, 0.0, open_s=1.0)], EchoTask(), [], policy="block").run()
    assert s["frames"] == 5 and s["wall_s"] < 1.0


def _gen(calls: list[int]):
    def gen(n: int, hw, seed: int):
        for i in range(n):
            calls.append(i)
            yield {"camera": (np.full((16, 16, 3), i, np.uint8), {"i": i})}
    return gen


def test_synthetic_frames_render_before_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    src = SyntheticSource("synthetic:6", 6, None, generator=_gen(calls))
    src.open()
    assert calls == list(range(6)) and src.counters()["prerendered"] == 6
    assert [f.meta["i"] for f in src] == list(range(6))
    # over the budget: what fits is rendered ahead, the rest as it is read, in the same order
    monkeypatch.setattr(synthetic_mod, "PRERENDER_BYTES", 3 * 16 * 16 * 3)
    calls.clear()
    src = SyntheticSource("synthetic:6", 6, None, generator=_gen(calls))
    src.open()
    assert calls == [0, 1, 2] and src.counters()["prerendered"] == 3
    assert [f.meta["i"] for f in src] == list(range(6)) and calls == list(range(6))
    c = src.counters()  # the three past the budget were rendered in the loop: their count and rate are reported
    assert c["rendered_live"] == 3 and c["live_fps"] > 0


def _summary(fps: float, infer_ms: float, produce: float | None, policy: str, waiting: float) -> dict:
    return {"fps": fps, "policy": policy, "stages": {"infer": {"p50_ms": infer_ms}},
            "sources": {"cam": {"produce_fps": produce}}, "waiting": {"p50_ms": waiting}}


def test_the_summary_line_says_what_bounds_the_rate() -> None:
    assert _rates(_summary(40.0, 20.0, 5000.0, "block", 100.0)) == "; the model alone 50.0 fps"
    assert _rates(_summary(29.0, 10.0, 30.0, "latest", 1.0)) == "; the model alone 100.0 fps, source cam 30.0 fps"
    assert _waiting(_summary(40.0, 20.0, None, "block", 117.3)) == " (117.3 of it queued: block mode keeps every frame)"
    assert _waiting(_summary(29.0, 10.0, 30.0, "latest", 0.5)) == " (0.5 of it queued)"
    batched = {**_summary(40.0, 20.0, None, "block", 30.0), "counters": {"decoded_in_batches": 12}}
    assert _waiting(batched) == " (30.0 of it queued: block mode keeps every frame and decodes results that come " \
                                "back to back together)"


def test_a_synthetic_source_slow_past_what_it_rendered_ahead_is_named() -> None:
    """Found by a review: synthetic:250 rendered 195 frames ahead and 55 in the loop at 20 fps; the median made its
    rate 117,495 fps and the line named no source beside a loop at 30 fps against a model at 72. (A first fix
    named any source busy a quarter of the run: a paced video or a camera waits for its frames all the time.)"""
    s = _summary(30.0, 13.9, 117495.0, "block", 1.0)
    s["sources"]["cam"].update(prerendered=195, rendered_live=55, live_fps=19.6)
    assert _rates(s) == "; the model alone 71.9 fps, source cam 19.6 fps past its 195 frames rendered ahead"
    s["sources"]["cam"]["live_fps"] = 60.0  # rendered in the loop faster than the loop ran: not what bounds it
    assert _rates(s) == "; the model alone 71.9 fps"


def test_a_realtime_synthetic_source_stays_live_and_counts_what_it_rendered_in_the_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: the count of live-rendered sets had the Source's ``live`` flag's name (a non-realtime
    source turned live mid-run and the watchdog watched it; a realtime one reported ``rendered_live: true``)."""
    monkeypatch.setattr(synthetic_mod, "PRERENDER_BYTES", 2 * 16 * 16 * 3)
    for realtime in (False, True):
        src = SyntheticSource("synthetic:5", 5, None, generator=_gen([]), realtime=realtime, fps=200.0)
        src.open()
        assert len(list(src)) == 5 and src.live is realtime
        assert src.counters()["rendered_live"] == 3 and src.counters()["prerendered"] == 2


def test_max_frames_bounds_what_is_rendered_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.stream.api import run

    seen: list[int] = []
    real_open = SyntheticSource.open

    def spy(self: SyntheticSource) -> None:
        seen.append(self.n)
        real_open(self)

    monkeypatch.setattr(SyntheticSource, "open", spy)
    s = run(None, "synthetic:500", task=EchoTask(), max_frames=3, handle_signals=False)
    assert seen == [3] and s["frames"] == 3 and s["sources"]["synthetic:500"]["prerendered"] == 3


class Burn(EchoTask):
    """Inference that keeps a core busy for ``cpu_s`` of this thread's CPU time (``sleep``: waits instead)."""

    def __init__(self, cpu_s: float, sleep: bool = False) -> None:
        super().__init__(delay=cpu_s if sleep else 0.0)
        self.cpu_s, self.sleep = cpu_s, sleep

    def infer(self, x: Frame) -> int:
        if not self.sleep:
            end = time.thread_time() + self.cpu_s
            while time.thread_time() < end:
                pass
        return super().infer(x)


def test_the_summary_counts_the_loop_cpu_time_per_frame() -> None:
    """CPU per frame is what the loop's threads used, not how long frames took: 30 ms of computing per
    frame shows as at least 30 ms, 30 ms of waiting as far less (all in thread CPU time, so a loaded
    machine does not change either side)."""
    busy = Pipeline([MemorySource([np.zeros((8, 8, 3), np.uint8)], count=8)], Burn(0.03), [], policy="block").run()
    idle = Pipeline([MemorySource([np.zeros((8, 8, 3), np.uint8)], count=8)], Burn(0.03, sleep=True), [],
                    policy="block").run()
    assert busy["frames"] == idle["frames"] == 8
    assert busy["cpu"]["ms_per_frame"] >= 30.0 and busy["cpu"]["seconds"] >= 0.24
    idle_loop = sum(v for k, v in idle["cpu"]["by_thread_ms_per_frame"].items() if k != "rest")
    assert idle_loop < 15.0  # the loop's own threads (the process may hold other tests' threads)
    split = busy["cpu"]["by_thread_ms_per_frame"]
    assert split["infer"] >= 30.0 and split["infer"] > 5 * split["preprocess"]  # where the burning happened
    assert {"source:camera", "postprocess", "rest"} <= set(split)
    # cores = CPU / wall, and the wall took at least the 8 x 30 ms of burning
    assert 0 < busy["cpu"]["cores"] <= busy["cpu"]["seconds"] / (8 * 0.03) + 0.01
    assert _cpu(busy) == f", CPU {busy['cpu']['ms_per_frame']:.1f} ms/frame ({busy['cpu']['cores']:.2f} cores)"
    assert _cpu({"cpu": {"seconds": 0.0, "ms_per_frame": None, "cores": None}}) == ""


def test_the_live_line_shows_the_cores_in_use() -> None:
    import re

    from edge.stream.stats import Stats

    st = Stats()
    st.start()
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass
    m = re.search(r"CPU (\d+\.\d+) cores$", st.line())
    assert m and float(m.group(1)) > 0


def test_a_rig_that_met_no_camera_image_is_said() -> None:
    """Found by a review: `--calib RIG` on a family reading waveforms did nothing, without a word (its --lidar is
    refused in one line); now a note, as --dump-points on a camera-only run has."""
    from edge.stream.api import rig_note

    class Waves(MemorySource):
        def __iter__(self) -> Iterator[Frame]:
            for i in range(self.count):
                yield Frame(np.zeros((4, 16), np.float32), time.monotonic_ns(), i, "camera", {})

    rig = object()
    for src, met in ((Waves([np.zeros((8, 8, 3), np.uint8)], count=3), False), (Slow(3, 0.0), True)):
        pipe = Pipeline([src], EchoTask(), [], policy="block", rig=rig)
        s = pipe.run()
        assert pipe.rig_met_image is met and s["frames"] == 3
        note = rig_note("r.json", pipe, s)
        assert (note is None) is met
    assert note is None and rig_note(None, pipe, s) is None
    assert rig_note("r.json", Pipeline([Waves([np.zeros((8, 8, 3), np.uint8)], count=1)], EchoTask(), [], rig=rig),
                    {"frames": 0}) is None  # nothing ran: nothing to say
    pipe = Pipeline([Waves([np.zeros((8, 8, 3), np.uint8)], count=2)], EchoTask(), [], policy="block", rig=rig)
    assert rig_note("r.json", pipe, pipe.run()) == "--calib r.json: no camera image in this run's frames, so the " \
                                                  "rig was not used"
