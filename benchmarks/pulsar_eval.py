"""PULSAR-Net vs the two baselines on held-out jammed frames, and erased-object recovery on KITTI 000114.

Frames (seed streams disjoint from training): random synthetic streets, and real KITTI scans
(../shared/data/real: object 000114, object_extra 000000-000002, the 10-frame raw drive) resampled onto
the VLP-16 beams, each under a random jammer (1-20 MHz, 3-10 ns, jitter <= 20 ns, cone 30-180 deg).
For each method: point recovery (the clean sensor's returns brought back within 0.3 m), range MAE/RMSE,
surviving fake points per frame, over the whole frame and inside the attack cone; for comparison also
the recovery of every surface hit, faint ones the clean sensor never reports included (``hits``, the
definition before 2026-11-29); for PULSAR-Net also the per-class IoU of its bin labels. Erased
objects: KITTI 000114 under ``--attacks`` seeded jammers aimed at the labelled objects (azimuth within
+-30 deg of straight ahead): objects with >= 5 points in the clean scan and < 5 in the undefended
jammed one, and the share each defence brings back to >= 5.

    python benchmarks/pulsar_eval.py BUNDLE [--frames 20] [--attacks 20] [--backend onnxruntime] [--precision fp32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from real_data import REAL_DATA, add_synthetic_only, need_real  # a sibling script: $EDGE_REAL_DATA

from edge import jsonout

REAL = REAL_DATA / "kitti"
METHODS = ("PULSAR-Net", "strongest peak", "FFT defence")


def _kitti_scans(root: Path) -> list[tuple[str, Any]]:
    from edge.data.kitti import read_bin

    files = (sorted((root / "object" / "training" / "velodyne").glob("*.bin"))
             + sorted((root / "object_extra").rglob("*.bin")) + sorted((root / "raw_2011_09_26").rglob("*.bin")))
    return [(str(p.relative_to(root)), read_bin(p)) for p in files]


def _xyz(p: np.ndarray) -> np.ndarray:
    return np.stack([p["x"], p["y"], p["z"]], 1)


def _ranges(prog: Any, card: Any, cfg: dict[str, Any], sample: list) -> tuple[Any, dict[str, np.ndarray]]:
    """One jammed frame through the program and the two baselines: (frame, ranges per method)."""
    from edge.models.pulsar.extract import fft_defence_ranges, strongest_peak_ranges

    frames = sample[-1]
    prog.reset()
    out = prog.step(card.preprocess(frames, cfg))
    _, payload = card.postprocess(out, frames, cfg)
    fr = frames["waveform"]
    return fr, {"PULSAR-Net": payload["ranges"], "strongest peak": strongest_peak_ranges(fr.data),
                "FFT defence": fft_defence_ranges(fr.data)}


def evaluate_set(prog: Any, card: Any, cfg: dict[str, Any], samples: list) -> dict[str, Any]:
    from edge.models.pulsar.metrics import frame_counts, reduce_counts

    allc: dict[str, list] = {m: [] for m in METHODS}
    cone: dict[str, list] = {m: [] for m in METHODS}
    hits: dict[str, list] = {m: [] for m in METHODS}
    t0 = time.perf_counter()
    for s in samples:
        fr, ranges = _ranges(prog, card, cfg, s)
        for m, r in ranges.items():
            allc[m].append(frame_counts(r, fr.meta["range_m"]))
            cone[m].append(frame_counts(r, fr.meta["range_m"], fr.meta["attacked"]))
            hits[m].append(frame_counts(r, fr.meta["surface_m"]))
    return {"frames": len(samples), "seconds": round(time.perf_counter() - t0, 1),
            **{m: {"all": reduce_counts(allc[m]), "cone": reduce_counts(cone[m]), "hits": reduce_counts(hits[m])}
               for m in METHODS}}


def erased_objects(prog: Any, card: Any, cfg: dict[str, Any], root: Path, attacks: int) -> dict[str, Any]:
    from edge.data.kitti import read_bin, read_labels
    from edge.data.rig import Rig
    from edge.data.waveform import points_from_ranges
    from edge.models.pulsar.metrics import box_point_counts, erased_object_recovery
    from edge.models.pulsar.samples import points_samples

    obj = root / "object" / "training"
    pts = read_bin(obj / "velodyne" / "000114.bin")
    objects = [o for o in read_labels(obj / "label_2" / "000114.txt") if o.type != "DontCare"]
    rig = Rig.from_kitti(obj / "calib" / "000114.txt")
    rng = np.random.default_rng(301)
    totals = {m: [0, 0] for m in ("PULSAR-Net", "FFT defence")}
    rows = []
    for i in range(attacks):
        sample = points_samples(cfg, _xyz(pts), pts["intensity"], 1, seed=300 + i, elevation_deg=-2.0,
                                azimuth_deg=float(rng.uniform(-30, 30)) % 360)[0]
        fr, ranges = _ranges(prog, card, cfg, sample)
        lay = fr.meta["layout"]
        count = {k: box_point_counts(_xyz(points_from_ranges(r, lay)), objects, rig.T_lidar_to_cam)
                 for k, r in (("clean", fr.meta["range_m"]), ("attacked", ranges["strongest peak"]),
                              ("PULSAR-Net", ranges["PULSAR-Net"]), ("FFT defence", ranges["FFT defence"]))}
        row: dict[str, Any] = {"attack": fr.meta["attack"], "points": {k: v.tolist() for k, v in count.items()}}
        for m in totals:
            r = erased_object_recovery(count["clean"], count["attacked"], count[m])
            row[m] = r
            totals[m][0] += r["erased"]
            totals[m][1] += r["recovered"]
        rows.append(row)
    return {"attacks": attacks, "objects": [o.type for o in objects], "layout": "VLP16 beams (the scan resampled)",
            **{m: {"erased": e, "recovered": r, "recovery": (r / e) if e else None} for m, (e, r) in totals.items()},
            "per_attack": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=20, help="synthetic street frames")
    ap.add_argument("--attacks", type=int, default=20, help="seeded attacks on KITTI 000114")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "pulsar_eval.json")
    add_synthetic_only(ap)
    args = ap.parse_args()
    real = not args.synthetic_only
    if real:  # before any work: the KITTI rows are half of the table
        need_real(args.data / "object" / "training" / "label_2" / "000114.txt", "KITTI 000114 (--data)")

    import edge
    from edge.files import atomic_write_text
    from edge.models.pulsar.samples import points_samples
    from edge.program import load_program

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = b.manifest["model"]["config"]
    prog = load_program(b, args.backend, precision=args.precision)
    sets = {"synthetic streets": card.data.samples(cfg, "evaluation", args.frames, 100)}
    if real:
        sets["KITTI scans"] = [points_samples(cfg, _xyz(p), p["intensity"], 1, seed=200 + i)[0]
                               for i, (_, p) in enumerate(_kitti_scans(args.data))]
    from edge.bench.machine import machine

    # the figures are counts, not timings, but each set's seconds are the machine's
    report: dict[str, Any] = {"bundle": str(args.bundle), "backend": args.backend, "precision": args.precision,
                              "program": prog.name, "machine": machine(), "sets": {}}
    for name, samples in sets.items():
        r = report["sets"][name] = evaluate_set(prog, card, cfg, samples)
        print(f"{name} ({r['frames']} frames):", "; ".join(
            f"{m} {r[m]['all']['value']:.1f}% (cone {r[m]['cone']['value']:.1f}%, "
            f"of all hits {r[m]['hits']['value']:.1f}%, fake/frame "
            f"{r[m]['all']['fake_per_frame']:.0f}, MAE {100 * r[m]['all']['range_mae_m']:.1f} cm)" for m in METHODS))
    if real:
        e = report["erased_objects_kitti_000114"] = erased_objects(prog, card, cfg, args.data, args.attacks)
        print("erased objects on KITTI 000114:", {m: e[m] for m in ("PULSAR-Net", "FFT defence")})
    prog.close()
    atomic_write_text(args.out, jsonout.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
