"""Score a lane checkpoint (default: the shipped one) on the real labelled TuSimple frames in
../shared/data/real, through the streaming program in PyTorch (each frame a static clip).

The model is trained on synthetic roads only; this measures how far that carries to real highway
frames (6 frames with GT derived from LaneNet's instance masks, 10 official train frames).

    python benchmarks/lane_real_tusimple.py [--checkpoint PATH] [--overlays DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from real_data import REAL_DATA  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

from edge import jsonout

#: the real labelled TuSimple frames in ../shared: set name -> (label file, image root), both under REAL; the
#: other lane benchmarks import these
REAL = REAL_DATA / "lane"
SETS = {"lanenet6": ("tusimple_lanenet/gt_tusimple_format_derived_from_instance_masks.json", "tusimple_lanenet"),
        "official10": ("tusimple_lstr_train/label_data_0313.subset.json", "tusimple_lstr_train")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=REAL)
    ap.add_argument("--overlays", type=Path, default=None, help="write overlay PNGs here (not into the repo)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_real_tusimple.json")
    args = ap.parse_args()

    from edge.files import atomic_write_text
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.lane.samples import tusimple_samples
    from edge.program import evaluate, run_samples, torch_program

    card = get_card("lane")
    ckpt = args.checkpoint or card.default_checkpoint
    module, cfg, _ = load_model(ckpt, expect_model="lane")
    repo = Path(__file__).resolve().parent.parent
    shown = Path(ckpt).resolve()
    shown = shown.relative_to(repo) if shown.is_relative_to(repo) else shown
    report = {"checkpoint": str(shown), "program": card.programs[0].name, "sets": {}}
    with torch_program(card, module, cfg) as prog:
        for name, (gt, root) in SETS.items():
            samples = tusimple_samples(args.data / gt, args.data / root)
            m = evaluate(prog, card, samples)
            report["sets"][name] = {k: m[k] for k in ("value", "accuracy", "fp", "fn", "num")}
            if args.overlays:
                import cv2

                args.overlays.mkdir(parents=True, exist_ok=True)
                for _rec, frames, out in run_samples(prog, card, samples):
                    _, payload = card.postprocess(out, frames, cfg)
                    fname = frames["camera"].meta["gt"]["raw_file"].replace("/", "_")
                    cv2.imwrite(str(args.overlays / f"{name}_{Path(fname).stem}.png"), card.draw(payload, frames, cfg))
    print(jsonout.dumps(report, indent=2))
    atomic_write_text(args.out, jsonout.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
