"""Lane points above the horizon on every calibrated real camera frame in ../shared/data/real (default: the
shipped lane checkpoint): KITTI object frames and the raw drive (the Velodyne's z axis is vertical), the six
nuScenes cameras (the ego frame's z axis) and the three OpenCalib rigs (their LiDAR's z axis).

A lane on a flat road cannot rise above the horizon: the image of the ground plane's line at infinity,
``l = K^-T n`` with ``n`` the ground normal in the camera frame. Unlike the row where labelled lanes start, it
needs no labels, so it checks the frames the 16 labelled ones do not cover (urban scenes, side and rear cameras).
Each frame is decoded three times: without a rig (the card's default decoding, which keeps lanes below the row where
their near parts converge, ``CONVERGE_SLACK``), the same without that cut (as before it existed), and with the rig in
the frame's meta (as ``edge run --calib`` or a KITTI source gives it), where decoding also keeps lanes below the
horizon raised by the card's allowance (``HORIZON_SLACK_DEG``). A point counts when it lies beyond the line by more
than a margin (each of ``--margins``, degrees): the calibrations assume a level LiDAR (or ego frame) and a flat
road, and lens distortion is ignored (the OpenCalib images are distorted), so a small margin can flag road points
near the vanishing point.

    python benchmarks/lane_horizon_checks.py [CHECKPOINT] [--margins 0,1,2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from lane_real_tusimple import REAL  # the real-data folder, defined once (a sibling script)
from results_rows import checkpoint_name  # a sibling script

from edge import jsonout

DATA = REAL.parent


def above(points: np.ndarray, line: np.ndarray) -> int:
    """How many of ``points`` ([N, 2] x, y) lie beyond ``line`` (``Rig.horizon``, raised by a margin: signed pixels,
    positive on the sky side)."""
    if not len(points):
        return 0
    a, b, c = line
    return int((a * points[:, 0] + b * points[:, 1] + c > 0).sum())


def rig_of(K: np.ndarray, R_up_to_cam: np.ndarray) -> Any:
    """A :class:`~edge.data.rig.Rig` whose "LiDAR" frame is the z-up frame ``R_up_to_cam`` rotates into the camera."""
    from edge.data.rig import Rig

    T = np.eye(4)
    T[:3, :3] = R_up_to_cam
    return Rig(np.hstack([K, np.zeros((3, 1))]), T)


def frames(data: Path = DATA) -> Iterator[tuple[str, Path, Any]]:
    """(name, image, rig) for every calibrated camera frame in ``data`` (the real-data folder)."""
    from edge.data.rig import Rig

    for calib in sorted((data / "kitti").glob("object*/training/calib/*.txt")):
        img = calib.parent.parent / "image_2" / f"{calib.stem}.png"
        if img.is_file():
            yield str(img.relative_to(data)), img, Rig.from_kitti(calib)
    for drive in sorted((data / "kitti").glob("raw_*/*")):
        if (drive / "calib_cam_to_cam.txt").is_file():
            rig = Rig.from_kitti_raw(drive)
            for img in sorted(drive.glob("image_02/data/*.png")):
                yield str(img.relative_to(data)), img, rig
    for info in sorted((data / "nuscenes").glob("*/sample_info.json")):
        for cam in json.loads(info.read_text())["images"].values():
            cam2ego = np.asarray(cam["cam2ego"], np.float64)
            img = info.parent / cam["img_path"]
            yield str(img.relative_to(data)), img, rig_of(np.asarray(cam["cam2img"], np.float64)[:3, :3],
                                                          cam2ego[:3, :3].T)
    for calib in sorted((data / "rig").glob("*/*/calib.txt")):
        kv = {ln.split(":")[0]: np.array(ln.split(":")[1].split(), np.float64)
              for ln in calib.read_text().splitlines() if ":" in ln}
        img = next(p for p in sorted(calib.parent.iterdir()) if p.stem == "calib" and p.suffix in (".jpg", ".png"))
        yield str(img.relative_to(data)), img, rig_of(kv["K"].reshape(3, 3), kv["T"].reshape(3, 4)[:, :3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", type=Path, default=None)
    ap.add_argument("--margins", default="0,1,2", help="comma-separated degrees above the horizon")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_horizon_checks.json")
    args = ap.parse_args()

    import cv2

    from edge.data.frame import Frame
    from edge.files import atomic_write_text
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.program import torch_program

    card = get_card("lane")
    ckpt = args.checkpoint or card.default_checkpoint
    module, cfg, _ = load_model(ckpt, expect_model="lane")
    margins = [float(m) for m in args.margins.split(",")]
    from edge.models.lane.card import decode

    def without_cut(out: dict, fr: dict) -> dict:
        return decode(out["loc"][0], out["exist"][0], cfg, fr["camera"].data.shape[:2], converge_slack=None)

    def by_card(out: dict, fr: dict) -> dict:
        return card.postprocess(out, fr, cfg)[1]

    decodes = {"no rig": (False, by_card), "no rig, no convergence cut": (False, without_cut),
               "rig in the frame's meta": (True, by_card)}
    rows: list[dict[str, Any]] = []
    with torch_program(card, module, cfg) as prog:
        for name, path, rig in frames():
            img = cv2.imread(str(path))
            h, w = img.shape[:2]
            line = rig.horizon((h, w))
            raised = {m: rig.horizon((h, w), raised_deg=m) for m in margins}
            prog.reset()  # each frame a static clip
            out = prog.step(card.preprocess({"camera": Frame(img, 0, 0, "camera", {})}, cfg))
            centre = float(-(line[0] * w / 2 + line[2]) / line[1])  # the horizon's row at the image's centre column
            row: dict[str, Any] = {"frame": name, "hw": [h, w], "horizon_row_at_centre_frac": round(centre / h, 4)}
            for key, (with_rig, run) in decodes.items():
                fr = {"camera": Frame(img, 0, 0, "camera", {"rig": rig} if with_rig else {})}
                d = run(out, fr)
                pts = np.concatenate(d["points"]) if d["points"] else np.zeros((0, 2))
                row[key] = {"lanes": len(d["points"]), "points": len(pts),
                            "above_deg": {f"{m:g}": above(pts, raised[m]) for m in margins}}
            rows.append(row)
            print(name, {k: row[k]["above_deg"] for k in decodes}, flush=True)
    summary = {key: {"points": sum(r[key]["points"] for r in rows),
                     **{f"above {m:g} deg": {"frames": sum(r[key]["above_deg"][f"{m:g}"] > 0 for r in rows),
                                              "points": sum(r[key]["above_deg"][f"{m:g}"] for r in rows)}
                        for m in margins}} for key in decodes}
    report = {"checkpoint": checkpoint_name(ckpt), "frames": len(rows), "horizon_slack_deg": card_slack(),
              "converge_slack_of_height": card_converge(),
              "summary": summary, "rows": rows}
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(jsonout.dumps(summary, indent=1))


def card_slack() -> float:
    """The lane card's allowance above the horizon (deg)."""
    from edge.models.lane.card import HORIZON_SLACK_DEG

    return HORIZON_SLACK_DEG


def card_converge() -> float:
    """The lane card's allowance above the row where a frame's lanes converge (a fraction of the image height)."""
    from edge.models.lane.card import CONVERGE_SLACK

    return CONVERGE_SLACK


if __name__ == "__main__":
    main()
