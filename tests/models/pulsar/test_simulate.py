"""The simulator's physics: pulse shape, the jammer's period, cone and simultaneous firing, labels that
match the signal, seeding. Each test would fail if that piece of physics were off."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.data.waveform import RANGE_PER_BIN_M, Layout, layout
from edge.models.pulsar import simulate as sim
from edge.models.pulsar.simulate import Attack, synthesize


def _small(channels: int = 4, azimuths: int = 360, groups: tuple[int, ...] = ()) -> Layout:
    return Layout("test", tuple(np.linspace(-10, 10, channels)), azimuths, fire_group=groups, group_ns=1000.0)


def _fwhm(y: np.ndarray) -> float:
    """FWHM of a sampled Gaussian from the parabola through the log of its three top samples (exact for a
    noise-free Gaussian at any sub-bin position: ln y is quadratic in t)."""
    i = int(np.argmax(y))
    lm, l0, lp = np.log(y[i - 1 : i + 2].astype(np.float64))
    sigma = np.sqrt(-1.0 / (lm - 2 * l0 + lp))
    return float(2.0 * np.sqrt(2.0 * np.log(2.0)) * sigma)


def test_echo_is_a_5ns_fwhm_gaussian_at_its_time_of_flight() -> None:
    out = np.zeros((1, 800), np.float32)
    sim._pulses(out, np.array([0]), np.array([300.37]), np.array([1.0]), sim.ECHO_FWHM_NS * sim.FWHM_TO_SIGMA)
    assert _fwhm(out[0]) == pytest.approx(5.0, abs=0.05)
    # the simulated frame puts it at t = R / 0.1499 m: 45 m -> 300.2 ns; averaged over noisy copies
    lay = _small(azimuths=400)
    rng_m = np.full((lay.channels, lay.azimuths), 45.0)
    f = synthesize(lay, rng_m, np.full_like(rng_m, 0.5), Attack(on=False), np.random.default_rng(0))
    mean = f.waveform.astype(np.float64).reshape(-1, 800).mean(0)
    assert int(np.argmax(mean)) == round(45.0 / RANGE_PER_BIN_M)
    assert _fwhm(mean - np.median(mean)) == pytest.approx(5.0, abs=0.25)


def test_jammer_period_and_pulse_width() -> None:
    """No jitter: the attack pulses of one waveform are exactly one period (1000 / f ns) apart."""
    lay = _small()
    for f_mhz, width in ((10.0, 5.0), (4.0, 8.0)):
        att = Attack(azimuth_deg=90, cone_deg=60, freq_mhz=f_mhz, width_ns=width, jitter_ns=0.0, amp=(5.0, 5.0))
        fr = synthesize(lay, np.full((lay.channels, lay.azimuths), np.nan), np.zeros((4, 360)), att,
                        np.random.default_rng(1))
        c, a = np.argwhere(fr.attacked)[0]
        sig = np.zeros((1, 800), np.float32)
        runs = np.flatnonzero(np.diff(np.concatenate([[0], (fr.labels[c, a] == 2).astype(int), [0]])) == 1)
        ends = np.flatnonzero(np.diff(np.concatenate([[0], (fr.labels[c, a] == 2).astype(int), [0]])) == -1)
        centres = (runs + ends - 1) / 2
        inner = centres[(centres > 20) & (centres < 780)]
        assert len(inner) >= 2 and np.allclose(np.diff(inner), 1000.0 / f_mhz, atol=1.0), inner
        sim._pulses(sig, np.array([0]), np.array([400.0]), np.array([5.0]), width * sim.FWHM_TO_SIGMA)
        assert _fwhm(sig[0]) == pytest.approx(width, abs=0.05)


def test_attack_only_inside_its_cone_and_everywhere_in_it() -> None:
    lay = _small(channels=8, azimuths=720)
    att = Attack(azimuth_deg=200, elevation_deg=0, cone_deg=60, jitter_ns=5)
    fr = synthesize(lay, np.full((8, 720), np.nan), np.zeros((8, 720)), att, np.random.default_rng(2))
    az = lay.azimuth_deg()
    cols = np.flatnonzero(fr.attacked.any(0))
    assert np.all(np.abs(((az[cols] - 200 + 180) % 360) - 180) <= 30.0 + 1e-6)
    assert fr.attacked[:, np.abs(((az - 200 + 180) % 360) - 180) <= 25].all()  # inside (all channels within 10 deg)
    has_attack = (fr.labels == 2).any(-1)
    assert np.array_equal(has_attack, fr.attacked)


def test_simultaneously_fired_channels_see_the_same_pulses() -> None:
    """Channels 0 and 2 share a fire group: same instants, same pulse times; channel 1 fires 1 us later."""
    lay = _small(channels=3, groups=(0, 1, 0))
    att = Attack(azimuth_deg=90, cone_deg=90, freq_mhz=10, jitter_ns=20)
    fr = synthesize(lay, np.full((3, 360), np.nan), np.zeros((3, 360)), att, np.random.default_rng(3))
    a = int(np.flatnonzero(fr.attacked.all(0))[3])
    assert np.array_equal(fr.labels[0, a] == 2, fr.labels[2, a] == 2)
    assert not np.array_equal(fr.labels[0, a] == 2, fr.labels[1, a] == 2)


def test_labels_match_the_signal() -> None:
    lay = replace(layout("VLP16"), azimuths=180)
    fr = sim.simulate_scene(lay, np.random.default_rng(4), Attack(azimuth_deg=45, cone_deg=120))
    w = fr.waveform.astype(np.float32)
    assert w[fr.labels == 0].max() < 0.3  # background: the floor and echo tails below 0.1
    assert w[fr.labels == 2].min() >= 0.1 * (1 - 5 * sim.NOISE_SIGMA)
    attack_peaks = np.where(fr.labels == 2, w, 0).max(-1)[fr.attacked]
    assert np.median(attack_peaks) > 2.5  # U(3, 8) pulses, noisy
    echo_peaks = np.where(fr.labels == 1, w, 0).max(-1)[np.isfinite(fr.range_m) & ~fr.attacked]
    assert echo_peaks.max() < 2.5 and np.median(echo_peaks) > 0.25
    # every clean cell with a true range has its echo labelled at its time of flight
    clean = np.isfinite(fr.range_m) & ~fr.attacked
    t = np.round(fr.range_m[clean] / RANGE_PER_BIN_M).astype(int)
    assert (fr.labels[clean][np.arange(len(t)), t] == 1).mean() > 0.99


def test_seeded_and_vectorised_crops_equal_the_frame() -> None:
    lay = _small(azimuths=120)
    ranges = np.random.default_rng(5).uniform(5, 100, (4, 120))
    a = synthesize(lay, ranges, np.full_like(ranges, 0.4), Attack(azimuth_deg=30), np.random.default_rng(9))
    b = synthesize(lay, ranges, np.full_like(ranges, 0.4), Attack(azimuth_deg=30), np.random.default_rng(9))
    assert np.array_equal(a.waveform, b.waveform) and np.array_equal(a.labels, b.labels)
    c = synthesize(lay, ranges, np.full_like(ranges, 0.4), Attack(azimuth_deg=30), np.random.default_rng(10))
    assert not np.array_equal(a.waveform, c.waveform)


def test_scene_ray_casting_hits_the_ground_at_the_right_range() -> None:
    scene = sim.Scene(np.zeros((0, 8)), np.zeros((0, 5)), -1.73, 0.2)
    lay = layout("VLP16")
    r, _ = sim.scene_ranges(scene, lay, np.array([0]))
    el = np.deg2rad(np.asarray(lay.elevations_deg))
    want = np.where(el < 0, 1.73 / np.sin(-np.where(el < 0, el, -1)), np.nan)
    assert np.allclose(r[:, 0], want, equal_nan=True)
    box = sim.Scene(np.array([[10.0, 0.0, -1.73, 4.0, 2.0, 2.5, 0.0, 0.7]]), np.zeros((0, 5)), -1.73, 0.2)
    r, i = box.ranges(np.array([[1.0, 0.0, 0.0]]))
    assert r[0] == pytest.approx(8.0) and i[0] == pytest.approx(0.7)  # the box's near face at x = 10 - 2


def test_truth_is_what_the_clean_sensor_reports() -> None:
    """A hit too faint for the detection threshold is no real point (it stays in ``surface_m``); without a
    jammer the undefended sensor (strongest peak) reports exactly the real points."""
    from edge.models.pulsar.extract import strongest_peak_ranges
    from edge.models.pulsar.metrics import frame_counts

    lay = _small(azimuths=200)
    rng = np.random.default_rng(3)
    ranges = rng.uniform(5, 110, (4, 200))
    inten = rng.uniform(0, 0.8, (4, 200))
    fr = synthesize(lay, ranges, inten, Attack(on=False), np.random.default_rng(4))
    amp = sim.echo_amplitude(ranges, inten)
    assert np.isfinite(fr.surface_m).all() and 0.1 < np.isnan(fr.range_m).mean() < 0.9
    assert (amp > 2.0 * sim.DETECT_AMP).sum() > 20 and (amp < 0.6 * sim.DETECT_AMP).sum() > 20
    assert np.isfinite(fr.range_m[amp > 2.0 * sim.DETECT_AMP]).all()  # 10 % noise: 5 sigma away
    assert np.isnan(fr.range_m[amp < 0.6 * sim.DETECT_AMP]).all()
    c = frame_counts(strongest_peak_ranges(fr.waveform), fr.range_m)
    assert c["recovered"] == c["real"] > 100 and c["fake"] == 0
