"""The realistic held-out clips rendered at the model's input size against rendered at 1280x720 (not adopted as a
change; README, lane section): does the resolution the renderer draws at explain the real frames' gap?

The same clips (the held-out stream, seed 99, the same draws) are rendered twice: at 512x256, then upscaled
bilinearly to 1280x720 so the metric's pixel thresholds mean the same; and at 1280x720, which the model's
preprocessing downscales as it does real frames. Prints accuracy, FP and FN of each (recorded in
benchmarks/results/lane_real_checks.json, ``render_resolution_2026_12_04``).

    python benchmarks/experiments/lane_render_resolution.py [CHECKPOINT] [--clips 150]
"""

from __future__ import annotations

import numpy as np
from lane_args import checkpoint_and_clips  # beside this script (a script's folder is on sys.path)


def main() -> None:
    args, card, module, cfg = checkpoint_and_clips(__doc__)

    import cv2

    from edge.models.lane.realistic import layouts_path, load_layouts, realistic_clip
    from edge.models.lane.samples import EVAL_HW, _clip_sample, eval_rng
    from edge.models.lane.synthetic import TUSIMPLE_H_SAMPLES
    from edge.program import evaluate, torch_program

    layouts = load_layouts(str(layouts_path()))
    big_h, big_w = EVAL_HW

    def clips(h: int, w: int) -> list:
        rng, out = eval_rng(99), []
        for i in range(args.clips):
            c = realistic_clip(rng, layouts, height=h, width=w, frames=int(cfg["frames"]),
                               h_samples=TUSIMPLE_H_SAMPLES * h / big_h, num_slots=int(cfg["slots"]))
            frames, lanes = c.frames, c.lanes.astype(np.float64)
            if (h, w) != (big_h, big_w):
                frames = np.stack([cv2.resize(f, (big_w, big_h), interpolation=cv2.INTER_LINEAR) for f in frames])
                lanes = np.where(lanes >= 0, lanes * big_w / w, lanes)
            out.append(_clip_sample(frames, lanes, TUSIMPLE_H_SAMPLES, f"resolution/{h}/{i}"))
        return out

    with torch_program(card, module, cfg) as prog:
        for h, w in (tuple(cfg["input_hw"]), (big_h, big_w)):
            m = evaluate(prog, card, clips(h, w))
            print(f"rendered at {w}x{h}: {m['value']:.2f} % (FP {m['fp']:.3f}, FN {m['fn']:.3f})", flush=True)


if __name__ == "__main__":
    main()
