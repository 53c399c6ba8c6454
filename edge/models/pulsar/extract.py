"""Waveforms -> ranges: peak detection with parabolic sub-bin interpolation, the two baselines, CFD timing.

- :func:`peak_ranges`: the strongest bin of each waveform among the bins a mask allows (PULSAR-Net's
  "real echo" bins, or all of them), refined by a parabola through it and its neighbours (unbiased for
  a symmetric pulse), as a range in metres; NaN where nothing reaches ``min_amp``;
- :func:`strongest_peak_ranges`: the undefended sensor (every bin allowed);
- :func:`fft_defence_ranges`: the non-learned defence: estimate the dominant pulse-train frequency of
  each waveform from its spectrum, drop the peaks that fall on that periodic grid, zero a window around
  them, then take the strongest remaining peak;
- :func:`cfd_first_return`: leading-edge timing of the first return (50 % constant fraction above the
  baseline, linearly interpolated), as airborne full-waveform systems reference their returns.
"""

from __future__ import annotations

import numpy as np

from edge.data.waveform import RANGE_PER_BIN_M

MIN_AMP = 0.5


def parabolic_offset(y_m: np.ndarray, y_0: np.ndarray, y_p: np.ndarray) -> np.ndarray:
    """Sub-bin offset in [-0.5, 0.5] of the vertex of the parabola through (-1, y_m), (0, y_0), (1, y_p)."""
    den = y_m - 2.0 * y_0 + y_p
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(den < 0, 0.5 * (y_m - y_p) / den, 0.0)
    return np.clip(np.nan_to_num(d), -0.5, 0.5)


def peak_bins(wave: np.ndarray, mask: np.ndarray | None = None, min_amp: float = MIN_AMP) -> np.ndarray:
    """Sub-bin position of the strongest allowed bin of each waveform [..., T]; NaN when below ``min_amp``.

    Works in the waveform's own dtype (float16 frames are not copied to float32: on a 23M-bin frame
    that copy cost more than the search itself); only the three samples around each peak are widened.
    """
    w = np.asarray(wave)
    allowed = w if mask is None else np.where(mask, w, w.dtype.type(0))
    i = np.argmax(allowed, axis=-1)
    t = w.shape[-1]
    top = np.take_along_axis(allowed, i[..., None], -1)[..., 0].astype(np.float64)
    y0 = np.take_along_axis(w, i[..., None], -1)[..., 0].astype(np.float64)
    ym = np.take_along_axis(w, np.maximum(i - 1, 0)[..., None], -1)[..., 0].astype(np.float64)
    yp = np.take_along_axis(w, np.minimum(i + 1, t - 1)[..., None], -1)[..., 0].astype(np.float64)
    pos = i + parabolic_offset(ym, y0, yp)
    return np.where(top >= min_amp, pos, np.nan)


def peak_ranges(wave: np.ndarray, mask: np.ndarray | None = None, min_amp: float = MIN_AMP,
                bin_ns: float = 1.0) -> np.ndarray:
    """Range (m) of the strongest allowed peak of each waveform, NaN where none.

    A peak in the first bin refines to a position at or before it (range <= 0): no return either, as the point
    cloud reads it (:func:`edge.data.waveform.points_from_ranges`). Left as a number, the record counted such a beam
    removed or moved and the metric a fake point, while no point was ever drawn from it."""
    r = peak_bins(wave, mask, min_amp) * bin_ns * RANGE_PER_BIN_M
    return np.where(r > 0, r, np.nan)


def strongest_peak_ranges(wave: np.ndarray, min_amp: float = MIN_AMP, bin_ns: float = 1.0) -> np.ndarray:
    """The undefended sensor: the strongest return of every waveform."""
    return peak_ranges(wave, None, min_amp, bin_ns)


def dominant_period(wave: np.ndarray, min_mhz: float = 1.0, max_mhz: float = 20.0,
                    bin_ns: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per waveform [N, T]: (period in bins, peak-to-median spectral ratio) of the fundamental of the
    zero-mean waveform's magnitude spectrum in [min_mhz, max_mhz] (parabolic-refined)."""
    w = np.asarray(wave, np.float32)
    t = w.shape[-1]
    mag = np.abs(np.fft.rfft(w - w.mean(-1, keepdims=True), axis=-1))
    freqs = np.fft.rfftfreq(t, d=bin_ns * 1e-3)  # MHz
    band = np.flatnonzero((freqs >= min_mhz) & (freqs <= max_mhz))
    mb = mag[..., band]
    # a train of short pulses has harmonics as strong as its fundamental: take the lowest spectral line
    # within 60 % of the strongest one (a local maximum), not the strongest
    local = np.ones(mb.shape, bool)
    local[..., 1:] &= mb[..., 1:] >= mb[..., :-1]
    local[..., :-1] &= mb[..., :-1] >= mb[..., 1:]
    strong = local & (mb >= 0.6 * mb.max(-1, keepdims=True))
    k = band[np.argmax(strong, axis=-1)]
    ratio = np.take_along_axis(mag, k[..., None], -1)[..., 0] / (np.median(mb, -1) + 1e-9)
    km, k0, kp = (np.take_along_axis(mag, np.clip(k + s, 0, mag.shape[-1] - 1)[..., None], -1)[..., 0]
                  for s in (-1, 0, 1))
    kf = k + parabolic_offset(km, k0, kp)
    return t / np.maximum(kf, 1e-6), ratio


def _fit_grid(pos: np.ndarray, amp: np.ndarray, period: float, tol: float) -> tuple[float, float]:
    """Phase and period of the pulse grid through peak positions: the amplitude-weighted circular mean of
    the positions modulo the period, then a weighted least-squares line through the peaks it assigns."""
    ang = 2 * np.pi * pos / period
    phase = (np.angle(np.sum(amp * np.exp(1j * ang))) / (2 * np.pi) * period) % period
    n = np.round((pos - phase) / period)
    near = np.abs(pos - phase - n * period) <= tol
    if near.sum() >= 3 and np.ptp(n[near]) > 0:
        a = np.stack([np.ones(near.sum()), n[near]], 1) * amp[near, None]
        sol, *_ = np.linalg.lstsq(a, pos[near] * amp[near], rcond=None)
        phase, period = float(sol[0]), float(sol[1])
    return phase, period


def fft_defence_ranges(wave: np.ndarray, *, min_amp: float = MIN_AMP, min_ratio: float = 2.5, min_peaks: int = 3,
                       tolerance: float = 0.3, window_bins: int = 6, bin_ns: float = 1.0) -> np.ndarray:
    """The non-learned defence (see the module docstring) on waveforms [..., T]; ranges [...].

    Waveforms with at least ``min_peaks`` peaks and a dominant spectral line in 1-20 MHz (``min_ratio``
    over the median) are taken as jammed: the pulse grid is fitted through their peaks (period from the
    spectrum, phase and period refined on the peaks), every peak within ``tolerance`` x period of a grid
    point is removed with ``window_bins`` around it, and the strongest remaining peak is the return.
    (Tuned on simulated frames: a lower ratio and a looser grid tolerance recover more echoes under
    jittered trains than the textbook settings.)
    """
    w = np.asarray(wave, np.float32)
    shape = w.shape[:-1]
    w = w.reshape(-1, w.shape[-1]).copy()
    t = w.shape[-1]
    period, ratio = dominant_period(w, bin_ns=bin_ns)
    peak = np.zeros_like(w, bool)
    peak[:, 1:-1] = (w[:, 1:-1] >= w[:, :-2]) & (w[:, 1:-1] > w[:, 2:]) & (w[:, 1:-1] >= min_amp)
    offs = np.arange(-window_bins, window_bins + 1)
    for row in np.flatnonzero((ratio >= min_ratio) & (peak.sum(1) >= min_peaks)):
        cols = np.flatnonzero(peak[row])
        amp = w[row, cols].astype(np.float64)
        tol = tolerance * float(period[row])
        phase, per = _fit_grid(cols.astype(np.float64), amp, float(period[row]), tol)
        dist = np.abs(((cols - phase + per / 2) % per) - per / 2)
        for c in cols[dist <= tol]:
            w[row, np.clip(c + offs, 0, t - 1)] = 0.0
    return peak_ranges(w, None, min_amp, bin_ns).reshape(shape)


def cfd_first_return(wave: np.ndarray, *, baseline_bins: int = 10, k_sigma: float = 6.0,
                     min_fraction_of_max: float = 0.3, fraction: float = 0.5) -> np.ndarray:
    """Leading-edge time (bins) of the first return of each waveform [N, T]: the baseline is the median
    of the first ``baseline_bins`` samples, the first return the first local maximum that rises both
    ``k_sigma`` noise levels and ``min_fraction_of_max`` of the waveform's highest return above it, and
    its time where the rising edge crosses ``fraction`` of its height (linear interpolation). NaN
    samples are padding; NaN when no return."""
    w = np.asarray(wave, np.float64)
    out = np.full(w.shape[0], np.nan)
    for n, row in enumerate(w):
        valid = row[np.isfinite(row)]
        if len(valid) < baseline_bins + 3:
            continue
        base = np.median(valid[:baseline_bins])
        noise = max(np.median(np.abs(valid[:baseline_bins] - base)) * 1.4826, 1.0)
        above = valid - base
        thr = max(k_sigma * noise, min_fraction_of_max * above.max())
        i = int(np.argmax(above > thr)) if (above > thr).any() else -1
        if i < 0:
            continue
        while i + 1 < len(above) and above[i + 1] >= above[i]:  # climb to the first local maximum
            i += 1
        level = fraction * above[i]
        j = i
        while j > 0 and above[j - 1] >= level:
            j -= 1
        if j == 0:
            out[n] = 0.0
            continue
        y0, y1 = above[j - 1], above[j]
        out[n] = (j - 1) + (level - y0) / (y1 - y0)
    return out
