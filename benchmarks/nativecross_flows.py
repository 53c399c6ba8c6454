"""Why NativeCross does not correct translation: how good its per-group flows are, and what the in-graph
translation solve makes of them.

On a batch of fresh rigs from the training stream (its own seed and worker, so not a batch the checkpoint
saw), one step from the perturbed extrinsic: each group's predicted flow (where its centre should land,
in patches) against the true one, the solve (:func:`edge.models.nativecross.net.translation_from_flows`)
fed the true flows and fed the predicted ones, and the translation the step outputs, each against the
exact translation increment. With ``flow_solve`` the step adds ``flow_gate`` x the solved translation:
the learned gate says how much training trusted it.

    python benchmarks/nativecross_flows.py [--checkpoint PATH] [--rigs 16] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--rigs", type=int, default=16)
    ap.add_argument("--seed", type=int, default=999)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "nativecross_flows.json")
    args = ap.parse_args()

    import numpy as np
    import torch

    from edge.data.se3 import inverse, log_se3
    from edge.files import atomic_write_text
    from edge.models import get_card
    from edge.models.checkpoint import load_model
    from edge.models.nativecross.net import translation_from_flows
    from edge.models.nativecross.train import batch_stream, true_flows

    ckpt = args.checkpoint or get_card("nativecross").default_checkpoint
    m, cfg, _ = load_model(ckpt, expect_model="nativecross")
    if not int(cfg["flow_solve"]):
        raise SystemExit(f"{ckpt}: this checkpoint has no flow head (flow_solve 0)")
    m.eval()
    b = next(batch_stream(cfg, args.rigs, seed=args.seed, worker=3))
    h, w = cfg["input_hw"]
    gh, gw = h // 8, w // 8
    px = torch.tensor([w / gw, h / gh])
    with torch.no_grad():
        img, pts = m.encoder(torch.from_numpy(b["image"]), torch.from_numpy(b["groups"]))
        centres, P = torch.from_numpy(b["centres"]), torch.from_numpy(b["P"])
        T = torch.from_numpy(b["T"].astype(np.float32))
        xi, (flow, log_sigma), uv = m.step(img, pts, centres, T, P, with_flow=True)
        true_flow, ok = true_flows(uv, centres, b["T_true"], P, cfg)
        ok = ok[..., 0]
        f, t = flow[ok], true_flow[ok]
        err = (f - t).abs()
        sigma = torch.exp(log_sigma[ok][:, 0])
        sure = sigma < sigma.median()
        cam = centres @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]
        front_inside = ((cam[..., 2:3] > 0.5) & ((uv > 0) & (uv < 1)).all(-1, keepdim=True)).float()
        target = torch.from_numpy(log_se3(b["T_true"] @ inverse(b["T"])).astype(np.float32))
        from_true = translation_from_flows(true_flow * px, cam, target[:, :3], P, front_inside * ok[..., None].float())
        from_pred = translation_from_flows(flow * px, cam, xi[:, :3], P, front_inside * torch.exp(-2.0 * log_sigma))

    def cm(v: torch.Tensor) -> list[float]:
        return [round(float(x), 1) for x in (v.norm(dim=1) * 100)]

    def med(v: torch.Tensor) -> list[float]:
        return [round(float(x), 3) for x in v.median(0).values]

    report = {
        "checkpoint": str(ckpt), "rigs": args.rigs, "seed": args.seed, "groups_in_view": int(ok.sum()),
        "flow_gate": round(float(m.step.flow_gate.detach()), 4) if hasattr(m.step, "flow_gate") else None,
        "flow_patches": {"true_abs_median_xy": med(t.abs()), "error_median_xy": med(err),
                         "error_median_xy_surest_half": med(err[sure]), "error_median_xy_other_half": med(err[~sure]),
                         "correlation_xy": [round(float(np.corrcoef(f[:, k].numpy(), t[:, k].numpy())[0, 1]), 3)
                                            for k in range(2)]},
        "translation_cm": {"to_correct": cm(target[:, 3:]),
                           "solve_from_true_flows_error": cm(from_true - target[:, 3:]),
                           "solve_from_predicted_flows_error": cm(from_pred - target[:, 3:]),
                           "step_output_error": cm(xi[:, 3:] - target[:, 3:])},
    }
    print(jsonout.dumps(report, indent=2))
    atomic_write_text(args.out, jsonout.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
