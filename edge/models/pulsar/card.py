"""PULSAR-Net card: configs, the segment graph, the sector program, waveform pre/post-processing,
point-recovery metric and the before/after bird's-eye overlay. numpy (+cv2 for drawing) only.

Program ``sectors`` (what ``edge run`` executes): a waveform that "looks jammed" carries a bin far
above any real echo (> ``jam_amp``); only the azimuth blocks holding one go through the network, in
overlapping crops (channel block x ``crop`` azimuths x every time bin, ``margin`` azimuths of context
on each side); every other waveform keeps its strongest peak. Program ``full`` runs every block (the
reference the gating is measured against). Postprocess: the strongest bin labelled "real echo",
parabolic sub-bin peak -> range -> points with the layout's beam angles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError, SpecError
from edge.models.contract import FamilyData, Graph, Metric, ModelCard, ProgramSpec, Sensors, Trainer
from edge.models.pulsar.extract import MIN_AMP
from edge.spec import IOSpec, TensorSpec

WEIGHTS = Path(__file__).parent / "weights"
#: the bin width (ns) the network was trained on: a pulse's width in bins, and so what it recognises, depends on it
BIN_NS = 1.0


def _cfg(azimuths: int, crop: tuple[int, int], margin: int, widths: tuple[int, int, int], heads: int,
         blocks: int) -> dict[str, Any]:
    return {"sensor": "VLP16", "azimuths": azimuths, "bins": 800, "crop": list(crop), "margin": margin,
            "widths": list(widths), "heads": heads, "blocks": blocks, "jam_amp": 2.5, "min_amp": MIN_AMP,
            "input_scale": 0.25}


CONFIGS: dict[str, dict[str, Any]] = {
    # seconds on 2 CPU cores: small frames (128 azimuth steps: 6 crops), narrow network; for tests
    "tiny": _cfg(128, (16, 32), 4, (4, 8, 16), 2, 1),
    # the shipped model: whole VLP-16 frames (16 x 1800 x 800 bins)
    "default": _cfg(1800, (16, 64), 8, (8, 12, 32), 4, 1),
    "large": _cfg(1800, (16, 64), 8, (12, 24, 48), 4, 2),
}


def build(cfg: dict[str, Any]) -> Any:
    from edge.models.pulsar.net import PulsarNet

    return PulsarNet(cfg)


def io_segment(cfg: dict[str, Any]) -> IOSpec:
    cc, ca = cfg["crop"]
    t = cfg["bins"]
    return IOSpec((TensorSpec("waveform", "float32", ("batch", 1, cc, ca, t), "a crop: channels x azimuths x bins"),),
                  (TensorSpec("logits", "float32", ("batch", 3, cc, ca, t), "background / real echo / attack"),))


def example_segment(cfg: dict[str, Any], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = io_segment(cfg).inputs[0].concrete(batch=batch)
    x = np.abs(rng.normal(0, 0.05, shape)).astype(np.float32)
    x[rng.random(shape) < 0.01] = 3.0  # a few strong bins, so the example exercises the whole range
    return {"waveform": x}


# ---------------------------------------------------------------------------------------------
# the program


def looks_jammed(wave: np.ndarray, jam_amp: float) -> np.ndarray:
    """[C, A, T] -> [C, A]: a bin stronger than any real echo can be (echoes peak below ~2)."""
    return np.asarray(wave).max(axis=-1) > jam_amp


class SectorRunner:
    """Crops of the frame through the segment graph; labels of the frame and which cells were labelled."""

    every_block = False

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.seg = graphs["segment"]
        self.cc, self.ca = cfg["crop"]
        self.margin = int(cfg["margin"])
        self.jam_amp = float(cfg["jam_amp"])
        self.bins = int(cfg["bins"])

    def reset(self) -> None:
        pass

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        w = np.asarray(feeds["waveform"])
        # checked on every call: the graph sees only jammed blocks, so a frame with none was never checked and a
        # wrong one came back "clean" (all zero labels) where one with a jammed block was refused
        if w.ndim != 4 or w.shape[0] != 1 or w.shape[-1] != self.bins or w.shape[1] % self.cc or w.shape[2] < self.ca:
            raise SpecError(f"program input 'waveform': shape {list(w.shape)}, expected [1, channels in blocks of "
                            f"{self.cc}, >= {self.ca} azimuths, {self.bins} bins]")
        w = w[0]
        c_n, a_n, t_n = w.shape
        labels = np.zeros((c_n, a_n, t_n), np.uint8)
        done = np.zeros((c_n, a_n), bool)
        keep = self.ca - 2 * self.margin
        hot = looks_jammed(w, self.jam_amp).any(0) if not self.every_block else np.ones(a_n, bool)
        for a0 in range(0, a_n, keep):
            if not hot[a0:a0 + keep].any():
                continue
            idx = np.arange(a0 - self.margin, a0 - self.margin + self.ca) % a_n  # azimuth wraps around
            inner = slice(self.margin, self.margin + min(keep, a_n - a0))
            for c0 in range(0, c_n, self.cc):
                crop = np.ascontiguousarray(w[c0:c0 + self.cc][:, idx], dtype=np.float32)[None, None]
                logits = self.seg({"waveform": crop})["logits"][0]
                lab = np.argmax(logits, axis=0).astype(np.uint8)  # [cc, ca, T]
                labels[c0:c0 + self.cc, idx[inner]] = lab[:, inner]
                done[c0:c0 + self.cc, idx[inner]] = True
        return {"labels": labels[None], "labelled": done[None]}


class FullRunner(SectorRunner):
    """Every block through the network (no gating)."""

    every_block = True


# ---------------------------------------------------------------------------------------------
# pre/post-processing


def _layout(frame: Any, cfg: dict[str, Any]) -> Any:
    from edge.models.pulsar.samples import cfg_layout

    lay = frame.meta.get("layout")
    return lay if lay is not None else cfg_layout(cfg)


def preprocess(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The waveform frame [C, A, T] as the runner's feed [1, C, A, T] (float16 stays float16)."""
    fr = frames["waveform"]
    w = fr.data
    cc = cfg["crop"][0]
    where = fr.meta.get("file") or "waveform frame"
    if not isinstance(w, np.ndarray) or w.ndim != 3 or w.dtype.kind != "f":
        raise DataError(f"{where}: expected a float [channels, azimuths, bins] frame, got "
                        f"{type(w).__name__} {getattr(w, 'shape', '')}")
    if w.shape[-1] != cfg["bins"] or w.shape[0] % cc or w.shape[1] < cfg["crop"][1]:
        raise DataError(f"{where}: frames of shape {list(w.shape)}, this model takes channels in blocks of {cc}, "
                        f">= {cfg['crop'][1]} azimuth steps and {cfg['bins']} bins")
    lay = fr.meta.get("layout")
    if lay is not None and not math.isclose(lay.bin_ns, BIN_NS, rel_tol=1e-6):
        raise DataError(f"{where}: bins of {lay.bin_ns:g} ns (layout {lay.name}), this model was trained on {BIN_NS:g} "
                        "ns bins (resample the waveforms to it)")
    # postprocess turns ranges into points with this layout's beams: a frame of another grid (a bare Frame, no
    # "layout" in its meta, so the config's) was an IndexError there, after the network had run
    lay = _layout(fr, cfg)
    grid = [len(lay.elevations_deg), lay.azimuths, lay.bins]
    if list(w.shape) != grid:
        src = "its meta's layout" if fr.meta.get("layout") is not None else "the config's layout (none in its meta)"
        raise DataError(f"{where}: a frame of shape {list(w.shape)} with {src} '{lay.name}' of {grid[0]} channels x "
                        f"{grid[1]} azimuths x {grid[2]} bins: give the frame its layout (meta['layout'])")
    return {"waveform": w[None]}


def postprocess(out: Mapping[str, np.ndarray], frames: Mapping[str, Any],
                cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Labels -> ranges -> points; the record counts what was kept and removed (and scores labelled frames)."""
    from edge.data.waveform import points_from_ranges
    from edge.models.pulsar.extract import peak_ranges, strongest_peak_ranges
    from edge.models.pulsar.metrics import confusion, frame_counts

    fr = frames["waveform"]
    w, lay = fr.data, _layout(fr, cfg)
    labels, done = out["labels"][0], out["labelled"][0]
    min_amp = float(cfg["min_amp"])
    before = strongest_peak_ranges(w, min_amp, lay.bin_ns)
    after = before.copy()
    if done.any():
        after[done] = peak_ranges(w[done], labels[done] == 1, min_amp, lay.bin_ns)
    pts_before, pts_after = points_from_ranges(before, lay), points_from_ranges(after, lay)
    had, has = np.isfinite(before), np.isfinite(after)  # = a point (peak_ranges gives NaN for no return)
    # points_before - removed + added == points; moved: beams with a point in both, at another range
    rec: dict[str, Any] = {"points": len(pts_after), "points_before": len(pts_before),
                           "removed": int((had & ~has).sum()), "added": int((~had & has).sum()),
                           "moved": int((had & has & ~(np.abs(after - before) <= 1e-6)).sum()),
                           "labelled_cells": int(done.sum())}
    truth = fr.meta.get("range_m")
    if truth is not None:
        ev = frame_counts(after, truth)
        if fr.meta.get("labels") is not None and done.any():
            ev["confusion"] = confusion(labels, fr.meta["labels"], done).ravel().tolist()
        rec["eval"] = ev
    payload = {"points": pts_after, "before": pts_before, "ranges": after, "labelled": done, "layout": lay,
               "attack": fr.meta.get("attack")}
    return rec, payload


def metric_item(rec: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> Any:
    return rec.get("eval")


def metric_reduce(items: list[Any]) -> dict[str, Any]:
    from edge.models.pulsar.metrics import reduce_counts

    return reduce_counts(items)


def metric_fold(items: list[Any]) -> dict[str, Any]:
    from edge.models.pulsar.metrics import sum_counts

    return sum_counts(items)


def draw(payload: dict[str, Any], frames: Mapping[str, Any], cfg: dict[str, Any]) -> np.ndarray:
    """Bird's-eye view, before (undefended) | after, 60 m around the sensor, the jammed sector shaded."""
    import cv2

    from edge.stream.overlay import jet

    size, span = 480, 60.0
    panels = []
    az = payload["layout"].azimuth_deg()
    sector = payload["labelled"].any(0)
    for key, title in (("before", "before"), ("points", "after PULSAR-Net")):
        img = np.full((size, size, 3), 24, np.uint8)
        c = size // 2
        for a in az[sector]:  # the jammed sector (the blocks that went through the network)
            rad = np.deg2rad(a)
            end = (int(c - np.sin(rad) * c), int(c - np.cos(rad) * c))
            cv2.line(img, (c, c), end, (40, 20, 60), 2)
        p = payload[key]
        if len(p):
            u = (c - p["y"] / span * c).astype(np.int64)  # x forward = up, y left = left
            v = (c - p["x"] / span * c).astype(np.int64)
            ok = (u >= 0) & (u < size) & (v >= 0) & (v < size)
            hue = np.clip((p["z"][ok] + 2.0) / 4.0 * 255, 0, 255).astype(np.uint8)
            img[v[ok], u[ok]] = jet(hue)
        cv2.circle(img, (c, c), 3, (255, 255, 255), -1)
        cv2.putText(img, f"{title}: {len(p)} pts", (8, size - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (230, 230, 230), 1)
        panels.append(img)
    return np.concatenate(panels, axis=1)


def card() -> ModelCard:
    """The PULSAR-Net ModelCard."""
    from edge.models.pulsar import samples, train

    return ModelCard(
        name="pulsar",
        description="PULSAR-Net: clean jammed full-waveform LiDAR (3-D U-Net, axial attention, per-bin labels)",
        configs=CONFIGS,
        default_config="default",
        build=build,
        graphs={"segment": Graph("segment", io_segment, lambda m: m, example_segment,
                                 "waveform crop -> per-bin class logits")},
        programs=(ProgramSpec("sectors", ("segment",), SectorRunner,
                              "only the azimuth blocks that look jammed through the network"),
                  ProgramSpec("full", ("segment",), FullRunner, "every azimuth block through the network")),
        sensors=Sensors(("waveform",)),
        preprocess=preprocess,
        postprocess=postprocess,
        draw=draw,
        preprocess_params=lambda cfg: {"input": "waveform", "bins": cfg["bins"], "bin_ns": BIN_NS,
                                       "crop": cfg["crop"], "margin": cfg["margin"], "jam_amp": cfg["jam_amp"]},
        metric=Metric("point recovery", metric_item, metric_reduce, unit="%", bounds=(0.0, 100.0), fold=metric_fold),
        data=FamilyData(samples.synthetic, samples.samples),
        trainer=Trainer(train.batch_stream, train.loss, lr=3e-3),
        checkpoints={"default": WEIGHTS / "default.pt"},
        results_name="points",
        config_rules=check_rules,
    )


def check_rules(cfg: dict[str, Any]) -> None:
    """What a config must hold beyond types and bounds (``edge train --set`` took these, then torch failed, the
    scoring refused the frames after training, or the sectors stepped by zero or less and the network never ran):
    ValueError saying which."""
    from edge.models.pulsar.samples import cfg_layout

    cc, ca = cfg["crop"]
    if cfg["widths"][2] % cfg["heads"]:  # the axial attention's heads split the deepest width
        raise ValueError(f"widths[2] {cfg['widths'][2]} is not divisible by heads {cfg['heads']}")
    if 2 * cfg["margin"] >= ca:  # each crop keeps its azimuths between the two margins
        raise ValueError(f"margin {cfg['margin']}: twice it must be less than the crop's {ca} azimuths")
    if ca > cfg["azimuths"]:
        raise ValueError(f"crop {[cc, ca]}: {ca} azimuths, more than the frame's {cfg['azimuths']}")
    try:
        channels = len(cfg_layout(cfg).elevations_deg)
    except DataError as e:  # an unknown sensor name: said as the config's (the caller wraps ValueError)
        raise ValueError(f"sensor {cfg['sensor']!r}: {e}") from None
    if channels % cc:  # the sectors cut the sensor's channels in blocks of crop[0]
        raise ValueError(f"crop {[cc, ca]}: the {cfg['sensor']}'s {channels} channels do not split into blocks of {cc}")
