"""``edge calibrate``: refine a rig's LiDAR-to-camera extrinsic from synchronized frames with a bundle whose
family estimates it (its card names the record key, ``rig_output``), combine the frames' estimates
robustly and write the rig file ``edge run --calib`` reads."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from edge import jsonout
from edge.cli import emit
from edge.data.frame import is_image
from edge.errors import DataError, ModelError
from edge.stream.sinks import Sink


class _Collect(Sink):
    """A sink that keeps each frame's estimate, and the record's whole-number fields beside it (what the program
    counts per frame: its iterations, the rounds that ran or moved the guess), for the report."""

    name = "collect"
    wants_image = False

    def __init__(self, key: str) -> None:
        self.key = key
        self.estimates: list[np.ndarray] = []
        self.counts: dict[str, list[int]] = {}
        self.sizes: dict[tuple[int, int], str] = {}  # (h, w) of the camera frames the estimates came from -> one
        # frame of that size (its file), to name when they differ

    def write(self, result: Any) -> None:
        T = result.record.get(self.key)
        if T is not None:
            self.estimates.append(np.asarray(T, np.float64))
            for k, v in result.record.items():
                whole = isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)
                if whole and k in result.task_keys:  # the program's own fields, not the loop's
                    self.counts.setdefault(str(k), []).append(int(v))
            cam = next((f for f in result.frames.values() if is_image(f.data)), None)
            if cam is not None:
                size = (int(cam.data.shape[0]), int(cam.data.shape[1]))
                self.sizes.setdefault(size, str(cam.meta.get("file") or f"frame {cam.seq}"))

    def image_size(self, source: str) -> tuple[int, int] | None:
        """The one size of the frames the estimates came from, the size the written rig states; frames of two sizes
        are refused: the rig, stating the first, was then skipped or rescaled by `edge run --calib` on the others
        (a review), while each estimate was made at its frame's own size."""
        if len(self.sizes) > 1:
            said = ", ".join(f"{w}x{h} ({f})" for (h, w), f in list(self.sizes.items())[:3])
            raise DataError(f"{source}: its frames are of {len(self.sizes)} image sizes ({said}); a rig is for one "
                            "camera's images: calibrate the frames of one size at a time (no rig was written)")
        return next(iter(self.sizes), None)


def run_calibrate(bundle: Path, *, source: str, lidar: str | None, init: Path | None, out: Path, frames: int,
                  backend: str, precision: str | None, sync_ms: float, json_out: bool,
                  preprocess: str = "numpy", program: str | None = None, passes: int = 1) -> dict[str, Any]:
    """Refine over the frames, combine, write the rig. With ``passes`` > 1 every frame is refined again from the
    previous pass's combined rig (a per-frame search reaches further from a closer start, and where the first
    pass's frames were split between two optima the second's may not be)."""
    import tempfile

    from rich.console import Console
    from rich.markup import escape

    from edge.bundle import Bundle
    from edge.data.rig import Rig, rig_reads
    from edge.data.se3 import check_rigid, robust_mean, rotation_error_deg, translation_error_m
    from edge.files import atomic_write_text, check_target
    from edge.program import card_for_bundle

    if passes < 1:
        raise DataError(f"--passes {passes}: use 1 or more")
    out = Path(out)
    check_target(out, "--out")
    if not out.parent.is_dir() and str(out.parent):
        raise DataError(f"{out}: its folder does not exist")
    b = Bundle.load(bundle)
    inside = Path(b.path).resolve()
    if inside == out.resolve().parent or inside in out.resolve().parents:
        raise DataError(f"{out}: --out is inside the bundle {bundle} (its files are checked against its manifest); "
                        "write the rig elsewhere")
    card = card_for_bundle(b)
    if card is None or card.rig_output is None:
        name = card.name if card is not None else "this bundle's model"
        raise ModelError(f"{bundle}: {name} does not estimate a rig extrinsic (its card sets no rig_output); "
                         "`edge models` lists the families")
    from edge.files import check_outputs
    from edge.stream.sources import lidar_spec_source, open_source

    # the rig written must not replace what the run reads (a KITTI folder's calib/*.txt, the --init file or
    # the two files of an --init KITTI raw calibration folder)
    reads = rig_reads(init)
    built = {}
    for key, spec, make in (("source", source, open_source), ("lidar", lidar, lidar_spec_source)):
        with contextlib.suppress(DataError):  # a bad spec is the run's to report, in its own words
            if spec:
                built[key] = make(spec, max_frames=frames) if key == "source" else make(spec)
                reads += list(built[key].reads())
    check_outputs({"--out": out}, reads)
    start = Rig.load(init) if init is not None else None
    if start is not None:
        check_rigid(start.T_lidar_to_cam, str(init))
    # the calibration a source brings (a KITTI folder's, of the indices the run will read), checked before the run
    reference = built["source"].own_rig() if "source" in built else None
    if start is None and reference is None and "source" in built:
        raise DataError(f"--init RIG is needed (a KITTI calib .txt or a rig JSON): {source} brings no calibration "
                        "of its own (a kitti:FOLDER source does)")
    with tempfile.TemporaryDirectory(prefix="edge-calibrate-") as tmp:
        rig_in: Path | None = init
        for k in range(passes):
            Ts, bad, sink, summary = _refine_frames(b, card, source, lidar=lidar, rig=rig_in, backend=backend,
                                                    precision=precision, program=program, frames=frames,
                                                    sync_ms=sync_ms, preprocess=preprocess)
            if k == 0:
                if reference is not None:  # with the size of the images the run read
                    reference = Rig(reference.P, reference.T_lidar_to_cam,
                                    reference.image_size or sink.image_size(source), reference.source)
                if start is None:  # ... which was then every frame's starting guess
                    start = reference
                centre = start.T_lidar_to_cam
            T, inliers, spread = robust_mean(Ts, centre)
            centre = T  # each pass's median is taken around the rig its frames started from
            refined = Rig(start.P, T, start.image_size or sink.image_size(source), "edge calibrate", start.distortion)
            if k + 1 < passes:  # the next pass starts every frame from this pass's rig
                rig_in = Path(tmp) / f"pass{k + 1}.json"
                rig_in.write_text(jsonout.dumps(refined.to_json()))
    moved_deg = float(rotation_error_deg(T, start.T_lidar_to_cam))
    moved_cm = float(translation_error_m(T, start.T_lidar_to_cam) * 100)
    reasons = {str(k): int(v) for k, v in (summary.get("skip_reasons") or {}).items()}
    report = {"frames": len(Ts), "inliers": int(inliers.sum()), "dropped_not_rigid": bad, "passes": passes,
              "skipped": sum(reasons.values()), "skip_reasons": reasons,
              "moved_deg": round(moved_deg, 4), "moved_cm": round(moved_cm, 3),
              # the last pass's per-frame counts (a program's iterations, its rounds that ran and that moved)
              "per_frame": {k: _spread(v) for k, v in sink.counts.items()},
              # one estimate scatters by an unknown amount, not by zero
              "spread": {k: round(v, 4) for k, v in spread.items()} if int(inliers.sum()) >= 2 else None,
              "bundle": str(bundle), "source": source, "init": str(init) if init else "source calibration",
              # what ran (the resize differs between the numpy reference and an engine's: so does the estimate)
              **{k: summary["task"][k] for k in ("backend", "precision", "preprocess", "program")
                 if k in summary["task"]}}
    if reference is not None:  # the source's own calib: scored against it (0 before when it was the start)
        report["error_before"] = {"rot_deg": round(float(rotation_error_deg(start.T_lidar_to_cam,
                                                                            reference.T_lidar_to_cam)), 4),
                                  "trans_cm": round(float(translation_error_m(start.T_lidar_to_cam,
                                                                              reference.T_lidar_to_cam) * 100), 3)}
        report["error_after"] = {"rot_deg": round(float(rotation_error_deg(T, reference.T_lidar_to_cam)), 4),
                                 "trans_cm": round(float(translation_error_m(T, reference.T_lidar_to_cam) * 100), 3)}
    doc = {**refined.to_json(), "refined": report}
    atomic_write_text(out, jsonout.dumps(doc, indent=2) + "\n")
    # the warnings go to stderr with --json too (stdout is the report alone)
    if reasons:  # frame sets the run could not use (an image not of the rig's size, no scan in sync): named
        Console(stderr=True).print(f"[yellow]skipped[/] {sum(reasons.values())} frame set(s): " + "; ".join(
            f"{n} x {escape(r)}" for r, n in reasons.items()), highlight=False, soft_wrap=True)
    worse = worse_than_start(report) if init is not None else []
    if json_out:
        emit(jsonout.dumps(report))
    else:
        scatter = ("one frame scatters {rot_rms_deg:.2f} deg / {trans_rms_cm:.1f} cm".format(**report["spread"])
                   if report["spread"] else "one estimate: how much a frame's scatters is not known")
        against = ""
        if "error_after" in report:
            b, a = report["error_before"], report["error_after"]
            against = (f"; against the source's own calibration {b['rot_deg']:.2f} -> {a['rot_deg']:.2f} deg, "
                       f"{b['trans_cm']:.1f} -> {a['trans_cm']:.1f} cm")
        counts = "".join(f"; {k} {_said(v)}" for k, v in report["per_frame"].items())
        Console(stderr=True).print(
            f"refined over {len(Ts)} frames ({len(Ts) - int(inliers.sum())} rejected): moved {moved_deg:.2f} deg / "
            f"{moved_cm:.1f} cm from the start{against}; {scatter}{counts}; wrote {out}", highlight=False,
            soft_wrap=True, markup=False)  # a path with '[x]' in it was printed without it
    if worse:
        from rich.markup import escape

        Console(stderr=True).print(
            f"[yellow]warning[/]: the refined rig is farther from the source's own calibration than --init in "
            f"{' and '.join(worse)}; compare the two before using {escape(str(out))}", highlight=False, soft_wrap=True)
    return report


def _spread(values: list[int]) -> dict[str, float]:
    """min / median / max of a per-frame count."""
    return {"min": min(values), "median": float(np.median(values)), "max": max(values)}


def _said(s: dict[str, float]) -> str:
    """A per-frame count as the report line says it: one number when every frame had it."""
    if s["min"] == s["max"]:
        return f"{s['min']:g}"
    return f"{s['min']:g}-{s['max']:g} (median {s['median']:g})"


def worse_than_start(report: dict[str, Any]) -> list[str]:
    """Which of rotation / translation the refinement made worse against the source's own calibration (an --init
    start scored against it); empty when there is no such reference."""
    b, a = report.get("error_before"), report.get("error_after")
    if not b or not a:
        return []
    return [name for name, key in (("rotation", "rot_deg"), ("translation", "trans_cm")) if a[key] > b[key]]


def _refine_frames(b: Any, card: Any, source: str, *, lidar: str | None, rig: Path | None, backend: str,
                   precision: str | None, program: str | None, frames: int, sync_ms: float, preprocess: str,
                   ) -> tuple[np.ndarray, int, _Collect, dict[str, Any]]:
    """One pass: every frame refined from ``rig`` (None: the source's own calibration); (the rigid estimates,
    how many were dropped as not rigid, the sink, the run's summary)."""
    from edge.data.se3 import check_rigid
    from edge.stream.api import run
    from edge.stream.pipeline import StoppedWithOutputs

    sink = _Collect(card.rig_output)
    try:
        summary = run(b, source, lidar=lidar, rig=rig, policy="block", backend=backend, precision=precision,
                      program=program, max_frames=frames, sync_ms=sync_ms, sinks=[sink], live=False,
                      preprocess=preprocess)
    except StoppedWithOutputs as e:  # edge run keeps the frames before an error; a rig from some of them is not made
        raise DataError(f"{e.error} (after {len(sink.estimates)} frame(s); no rig was written)") from None
    if summary.get("interrupted"):  # a rig from the frames before a Ctrl-C is not the one asked for
        raise KeyboardInterrupt
    if not sink.estimates:
        reasons = summary.get("skip_reasons") or {}
        why = f" ({max(reasons, key=reasons.get)})" if reasons else ""
        raise DataError(f"{source}: no frame gave an estimate{why}")
    Ts, bad = [], 0
    for i, T in enumerate(sink.estimates):  # a NaN or non-rigid estimate is dropped and counted
        try:
            Ts.append(check_rigid(T, f"frame {i}'s estimate"))
        except DataError:
            bad += 1
    if not Ts:
        raise DataError(f"{source}: none of the {bad} frame estimates is a rigid transform")
    return np.stack(Ts), bad, sink, summary

