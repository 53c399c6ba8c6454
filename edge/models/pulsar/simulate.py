"""Physics of a jammed full-waveform LiDAR, simulated (numpy, seeded, vectorised).

Scene -> ranges: a point cloud (KITTI .bin or any other) resampled onto the layout's beams, or a
synthetic street (ground, cars, walls, poles, pedestrians) ray-cast along them.

Ranges -> waveforms [C, A, T] (1 ns bins after each firing):

- a real echo is a Gaussian of FWHM 5 ns at its time of flight t = R / 0.1499 m, amplitude from the
  point's intensity (0.3 + 1.5 * I, weaker with range);
- the jammer fires a pulse train (10 MHz default, 1-20 MHz), each pulse a Gaussian of FWHM 5 ns (3-10)
  with amplitude U(3, 8) and timing jitter U(-J, J) (J <= 20 ns). It is triggered by the first firing
  of the LiDAR it sees near its own direction (azimuth, elevation) and reaches the receiver only while
  the beam points into its cone (90 deg default, 30-180). Channels that fire at the same instant (the
  layout's fire groups) see the train at the same phase;
- composite = max(echo, attack), times (1 + N(0, 0.1)) multiplicative noise, plus a small ambient
  floor |N(0, 0.02)|, clipped to [0, 10];
- labels per bin: 1 (real echo) where the echo is >= 0.1 and not below the attack, 2 (attack) where
  the attack is >= 0.1 and above the echo, else 0;
- the truth per (channel, azimuth): the point the clean sensor reports, i.e. the hit when its echo (with
  the frame's noise, without the jammer) reaches the detection threshold (``MIN_AMP``, 0.5), else none;
  every hit, faint ones included, is kept as ``surface_m``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.data.scene import Scene, random_scene
from edge.data.waveform import RANGE_PER_BIN_M, Layout
from edge.models.pulsar.extract import MIN_AMP

__all__ = ["Attack", "Scene", "SimFrame", "random_scene", "scene_ranges", "simulate_points", "simulate_scene",
           "synthesize"]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
ECHO_FWHM_NS = 5.0
LABEL_MIN = 0.1
NOISE_SIGMA = 0.1
FLOOR_SIGMA = 0.02
CLIP = 10.0
DETECT_AMP = MIN_AMP  # the sensor's detection threshold: weaker echoes are no return even when clean


@dataclass(frozen=True)
class Attack:
    """A jammer: where it is, its pulse train, its cone. ``on`` False = a clean frame."""

    on: bool = True
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    cone_deg: float = 90.0
    freq_mhz: float = 10.0
    width_ns: float = 5.0
    amp: tuple[float, float] = (3.0, 8.0)
    jitter_ns: float = 20.0
    delay_ns: float = 0.0  # the jammer's reaction after it saw the first firing

    @property
    def period_ns(self) -> float:
        return 1e3 / self.freq_mhz

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def random(cls, rng: np.random.Generator, **fixed: Any) -> Attack:
        """A jammer with the issue's ranges: 1-20 MHz, 3-10 ns, cone 30-180 deg, jitter <= 20 ns."""
        d = {"azimuth_deg": float(rng.uniform(0, 360)), "elevation_deg": float(rng.uniform(-10, 5)),
             "cone_deg": float(rng.uniform(30, 180)), "freq_mhz": float(rng.uniform(1, 20)),
             "width_ns": float(rng.uniform(3, 10)), "jitter_ns": float(rng.uniform(0, 20)),
             "delay_ns": float(rng.uniform(0, 50))}
        d.update(fixed)
        return cls(**d)


@dataclass
class SimFrame:
    """One simulated frame (or a block of azimuth steps of one)."""

    waveform: np.ndarray  # float16 [C, A, T]
    labels: np.ndarray  # uint8 [C, A, T]
    range_m: np.ndarray  # float32 [C, A]: the clean sensor's return (echo >= detection threshold), NaN = none
    intensity: np.ndarray  # float32 [C, A]
    attacked: np.ndarray  # bool [C, A]: the beam looked into the jammer's cone
    attack: Attack
    steps: np.ndarray  # the azimuth step of each column
    surface_m: np.ndarray | None = None  # float32 [C, A]: every surface hit, also those too faint to detect
    meta: dict[str, Any] = field(default_factory=dict)


def in_cone(lay: Layout, attack: Attack, steps: np.ndarray) -> np.ndarray:
    """Which (channel, step) beams point within the cone's half-angle of the jammer's direction."""
    if not attack.on:
        return np.zeros((lay.channels, len(steps)), bool)
    d = lay.directions()[:, steps]
    az, el = np.deg2rad(attack.azimuth_deg), np.deg2rad(attack.elevation_deg)
    j = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return d @ j >= np.cos(np.deg2rad(attack.cone_deg / 2))


def trigger_ns(lay: Layout, attack: Attack) -> float:
    """When the train starts: the first firing that looks into the cone (the jammer sees it and fires)."""
    cone = in_cone(lay, attack, np.arange(lay.azimuths))
    if not cone.any():
        return 0.0
    c, s = np.nonzero(cone)
    t = lay.fire_time_ns(c, s)
    return float(t.min()) + attack.delay_ns


def _pulses(out: np.ndarray, rows: np.ndarray, centers: np.ndarray, amps: np.ndarray, sigma: float) -> np.ndarray:
    """out[row, t] = max(out, amp * gaussian(t - center)) for every pulse, over +-5 sigma only; returns the
    flat indices written (the composite is dense only in its ambient floor)."""
    if len(rows) == 0:
        return np.zeros(0, np.int64)
    half = int(np.ceil(5 * sigma))
    offs = np.arange(-half, half + 1)
    bins = np.floor(centers)[:, None].astype(np.int64) + offs[None, :]
    vals = amps[:, None] * np.exp(-((bins - centers[:, None]) ** 2) / (2 * sigma * sigma))
    ok = (bins >= 0) & (bins < out.shape[1])
    flat = (np.broadcast_to(rows[:, None], bins.shape)[ok] * out.shape[1] + bins[ok]).astype(np.int64)
    np.maximum.at(out.reshape(-1), flat, vals[ok].astype(out.dtype))
    return flat


def echo_amplitude(range_m: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Echo peak from intensity in [0, 1], a little weaker far away (0.2 .. 1.8)."""
    i = np.clip(np.nan_to_num(intensity), 0, 1)
    far = np.clip(np.nan_to_num(range_m) / 120.0, 0, 1)
    return (0.3 + 1.5 * i) * (1.0 - 0.35 * far)


def synthesize(lay: Layout, range_m: np.ndarray, intensity: np.ndarray, attack: Attack, rng: np.random.Generator,
               steps: np.ndarray | None = None) -> SimFrame:
    """Waveforms, labels and truths for ranges [C, S] at azimuth ``steps`` (default: all of the layout)."""
    steps = np.arange(lay.azimuths) if steps is None else np.asarray(steps)
    c_n, s_n, t_n = lay.channels, len(steps), lay.bins
    rng_m = np.where(np.isfinite(range_m) & (range_m > 0) & (range_m < lay.max_range_m), range_m, np.nan)
    echo = np.zeros((c_n * s_n, t_n), np.float32)
    has = np.isfinite(rng_m).reshape(-1)
    rows = np.nonzero(has)[0]
    t_echo = (rng_m.reshape(-1)[rows] / (RANGE_PER_BIN_M * lay.bin_ns))
    touched = [_pulses(echo, rows, t_echo, echo_amplitude(rng_m, intensity).reshape(-1)[rows],
                       ECHO_FWHM_NS * FWHM_TO_SIGMA)]
    attack_sig = np.zeros_like(echo)
    cone = in_cone(lay, attack, steps)
    if cone.any():
        p = attack.period_ns
        t0 = trigger_ns(lay, attack)
        c_idx, s_idx = np.nonzero(cone)
        fire = lay.fire_time_ns(c_idx, steps[s_idx])
        # channels that fire at the same instant receive the same pulses of the train (same jitter and
        # amplitude); each distinct firing instant sees its own stretch of the train
        instants, inv = np.unique(fire, return_inverse=True)
        phase = np.mod(t0 - instants, p)  # the first pulse of the train after this firing (ns)
        k = np.arange(int(np.ceil(t_n * lay.bin_ns / p)) + 2)
        per = (phase[:, None] + (k[None, :] - 1) * p)  # one pulse before the window too (jitter)
        per = per + rng.uniform(-attack.jitter_ns, attack.jitter_ns, per.shape)
        amp = rng.uniform(attack.amp[0], attack.amp[1], per.shape)
        centers, amps = per[inv] / lay.bin_ns, amp[inv]
        rows_a = np.broadcast_to((c_idx * s_n + s_idx)[:, None], centers.shape).reshape(-1)
        keep = ((centers > -10) & (centers < t_n + 10)).reshape(-1)
        touched.append(_pulses(attack_sig, rows_a[keep], centers.reshape(-1)[keep], amps.reshape(-1)[keep],
                               attack.width_ns * FWHM_TO_SIGMA / lay.bin_ns))
    # ambient floor everywhere; signal (with its multiplicative noise) only where a pulse is
    comp = np.abs(rng.standard_normal(echo.shape, dtype=np.float32))
    comp *= FLOOR_SIGMA
    mark = np.zeros(echo.size, bool)
    for idx in touched:
        mark[idx] = True
    idx = np.flatnonzero(mark)
    e, a = echo.reshape(-1)[idx], attack_sig.reshape(-1)[idx]
    noise = 1.0 + NOISE_SIGMA * rng.standard_normal(len(idx), dtype=np.float32)
    flat = comp.reshape(-1)
    # the truth is the point cloud the clean sensor reports: a hit counts when its echo, with this
    # frame's noise and no jammer, reaches the detection threshold in the stored (float16) waveform.
    # A faint surface (dark, far) is no point of the clean cloud; counting it as one capped recovery for
    # every method (the undefended sensor got 35 % of such "real points" on clean parts of dark scenes)
    ei = np.flatnonzero(e > 0)
    clean = np.clip(flat[idx[ei]] + e[ei] * noise[ei], 0.0, CLIP).astype(np.float16)
    clean_peak = np.zeros(c_n * s_n, np.float16)
    np.maximum.at(clean_peak, idx[ei] // t_n, clean)
    seen = np.isfinite(rng_m) & (clean_peak.reshape(rng_m.shape) >= DETECT_AMP)
    flat[idx] = np.clip(flat[idx] + np.maximum(e, a) * noise, 0.0, CLIP)
    labels = np.zeros(echo.size, np.uint8)
    labels[idx[(e >= LABEL_MIN) & (e >= a)]] = 1
    labels[idx[(a >= LABEL_MIN) & (a > e)]] = 2
    return SimFrame(comp.reshape(c_n, s_n, t_n).astype(np.float16), labels.reshape(c_n, s_n, t_n),
                    np.where(seen, rng_m, np.nan).astype(np.float32), np.nan_to_num(intensity).astype(np.float32),
                    cone, attack, steps, rng_m.astype(np.float32))


# ------------------------------------------------------------------------------------ scenes


def scene_ranges(scene: Scene, lay: Layout, steps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    steps = np.arange(lay.azimuths) if steps is None else np.asarray(steps)
    return scene.ranges(lay.directions()[:, steps])


def simulate_scene(lay: Layout, rng: np.random.Generator, attack: Attack | None = None,
                   steps: np.ndarray | None = None) -> SimFrame:
    """A random street scene through the layout, jammed by ``attack`` (None: a random jammer)."""
    scene = random_scene(rng)
    rng_m, inten = scene_ranges(scene, lay, steps)
    return synthesize(lay, rng_m, inten, attack if attack is not None else Attack.random(rng), rng, steps)


def simulate_points(lay: Layout, xyz: np.ndarray, intensity: np.ndarray, attack: Attack,
                    rng: np.random.Generator) -> SimFrame:
    """A real point cloud (e.g. a KITTI scan) resampled onto the layout, then jammed."""
    from edge.data.waveform import grid_from_points

    rng_m, inten = grid_from_points(xyz, lay, intensity)
    return synthesize(lay, rng_m, inten, attack, rng)
