"""How far real labelled lanes rise above the row where their near parts converge: the lane card's
``CONVERGE_SLACK`` checked against TuSimple's 2,858 labelled layouts (``label_data_0313.json`` in ../shared, the
layouts the realistic renderer draws its lanes from).

Decoding turns off lane rows more than ``CONVERGE_SLACK`` x the image height above the row where the frame's lanes
converge (``card._converge_rows``: the median intersection of the straight lines through each lane's lowest half).
Run on the labels themselves, the same function gives the row for each layout; a labelled lane whose top lies
above that row by more than the slack is one decoding would cut. Lanes with fewer than 3 labelled rows are left
out, as decoding drops them.

    python benchmarks/lane_converge_labels.py [--labels FILE] [--out benchmarks/results/lane_converge_labels.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from lane_real_tusimple import REAL  # the real-data folder, defined once (a sibling script)

from edge import jsonout

SLACKS = (0.0, 0.01, 0.02, 0.03, 0.04)


def rises(labels: Path) -> tuple[np.ndarray, int]:
    """Per layout with a converge row: how far its highest labelled row lies above that row, as a fraction of the
    image height (720; negative: below it); and how many layouts had none (one lane, or lines that do not meet above
    the lanes)."""
    from edge.models.lane.card import _converge_rows
    from edge.models.lane.tusimple import read_tusimple

    out, none = [], 0
    for g in read_tusimple(labels):
        hs = np.asarray(g.h_samples, np.float64)
        xs = np.asarray(g.lanes, np.float64).reshape(-1, len(hs))
        xs = xs[(xs >= 0).sum(1) >= 3]
        ons = xs >= 0
        row = _converge_rows(xs, ons, hs, np.zeros(len(xs), np.int64))[0] if len(xs) > 1 else -np.inf
        if not np.isfinite(row):
            none += 1
            continue
        out.append((row - hs[ons.any(0)].min()) / 720.0)
    return np.asarray(out), none


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=REAL / "tusimple_labels" / "label_data_0313.json")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lane_converge_labels.json")
    args = ap.parse_args()

    from edge.files import atomic_write_text
    from edge.models.lane.card import CONVERGE_SLACK

    r, none = rises(args.labels)
    report: dict[str, Any] = {
        "labels": args.labels.name, "layouts": len(r) + none, "without_converge_row": none,
        "card_converge_slack": CONVERGE_SLACK,
        "rise_above_converge_row_of_height": {f"p{q:g}": round(float(np.percentile(r, q)), 4)
                                              for q in (50, 90, 99, 99.9, 100)},
        "layouts_cut_at_slack": {f"{s:g}": int((r > s).sum()) for s in SLACKS},
    }
    atomic_write_text(args.out, jsonout.dumps(report, indent=1) + "\n")
    print(jsonout.dumps(report, indent=1))


if __name__ == "__main__":
    main()
