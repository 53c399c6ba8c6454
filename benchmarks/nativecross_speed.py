"""A full NativeCross refinement per frame on this CPU: host preprocessing (resize + normalise the image,
select the in-view points, farthest point sampling + kNN grouping) on the real KITTI 000114 frame, and
the refine program (encode + 3 steps, with the host's se(3) updates; with the matching stage, its rounds too:
crops, the ``match`` graph, the host's pose solve) timed by ``edge bench``'s interleaved rounds for torch
eager, ONNX Runtime and OpenVINO at every precision the bundle has; each program's row adds the preprocessing its own
feeds take (``refine`` makes none of the matching stage's). The host's share of a matching round (cutting
the crops, the solve) is timed apart, on the same frame.

    python benchmarks/nativecross_speed.py BUNDLE [--rounds 20] [--threads 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from real_data import REAL_DATA  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

from edge import jsonout

REAL = REAL_DATA / "kitti" / "object" / "training"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_speed.json")
    args = ap.parse_args()

    import edge
    from edge.bench.machine import machine
    from edge.bench.runner import run_bench
    from edge.files import atomic_write_text
    from edge.models.contract import feeds_for
    from edge.models.nativecross.card import image_feed
    from edge.models.nativecross.grouping import group_scan
    from edge.models.nativecross.samples import kitti_samples

    b = edge.Bundle.load(args.bundle)
    card = edge.get_card(b.family)
    cfg = b.manifest["model"]["config"]
    frames = kitti_samples(REAL, "000114", 1, 10, 0.25)[0][0]
    cam, lid = frames["camera"], frames["lidar"]
    rig = cam.meta["rig"]
    xyz = np.stack([lid.data["x"], lid.data["y"], lid.data["z"]], 1).astype(np.float64)
    programs = card.programs_for(cfg)
    parts: dict[str, list[float]] = {"image": [], "grouping": [], **{f"preprocess:{p.name}": [] for p in programs}}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        image_feed(cam.data, cfg)
        t1 = time.perf_counter()
        group_scan(xyz, rig.T_lidar_to_cam, rig.P, cam.data.shape[:2], cfg)
        t2 = time.perf_counter()
        parts["image"].append((t1 - t0) * 1e3)
        parts["grouping"].append((t2 - t1) * 1e3)
        for p in programs:  # each program's own feeds, as edge run makes them (Program.preprocess)
            with feeds_for(p.graphs):
                t3 = time.perf_counter()
                card.preprocess(frames, cfg)
                parts[f"preprocess:{p.name}"].append((time.perf_counter() - t3) * 1e3)
    if int(cfg.get("match_rounds", 0)) > 0:
        from edge.models.nativecross import matching

        feeds = card.preprocess(frames, cfg)
        out = np.random.default_rng(0).normal(0, 0.3, (cfg["groups"], 3))
        parts["match_crops"], parts["match_solve"] = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            _, valid, base = matching.crops(feeds["match_image"][0], feeds["scan"][0], feeds["centres"][0],
                                            feeds["T"][0], feeds["match_P"][0], int(cfg["match_crop"]))
            t1 = time.perf_counter()
            matching.update(out, valid, base, feeds["centres"][0], feeds["T"][0], feeds["match_P"][0], cfg)
            t2 = time.perf_counter()
            parts["match_crops"].append((t1 - t0) * 1e3)
            parts["match_solve"].append((t2 - t1) * 1e3)
    host = {k: float(np.median(v)) for k, v in parts.items()}
    bench = run_bench(args.bundle, rounds=args.rounds, warmup=3, threads=args.threads)
    rows = []
    for r in bench["rows"]:
        pre = host[f"preprocess:{r['program']}"]
        total = r["median_ms"] + pre
        rows.append({"config": r["config"], "program_ms": r["median_ms"], "preprocess_ms": pre,
                     "frame_ms": total, "host_share": pre / total,
                     "speedup_vs_torch": r["speedup_vs_torch"]})
        print(f"{r['config']:<22} program {r['median_ms']:6.1f} ms + host preprocess {pre:5.1f} ms "
              f"= {total:6.1f} ms per frame (host {100 * pre / total:4.1f}%, "
              f"program {r['speedup_vs_torch'] or 1:.2f}x torch)")
    report = {"bundle": str(args.bundle), "frame": "KITTI 000114 (1242x375, 120k points)",
              "iterations": cfg["iterations"], "match_rounds": cfg.get("match_rounds", 0),
              "host_ms": host, "rows": rows, "skipped": bench["skipped"],
              "machine": machine()}
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(f"host: image {host['image']:.1f} ms, grouping {host['grouping']:.1f} ms"
          + (f", per matching round: crops {host['match_crops']:.1f} ms, solve {host['match_solve']:.1f} ms"
             if "match_crops" in host else "") + f"; wrote {args.out}")


if __name__ == "__main__":
    main()
