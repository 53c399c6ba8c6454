"""Every INT8 form of a bundle against its fp32, on more held-out samples than the export's gate used.

The export gates each INT8 form on a few samples; this scores the forms a user can pick on ``--samples``
of the card's evaluation data (any family with a card and data): ONNX Runtime fp32 and its int8 (its
preferred form), OpenVINO fp32, OpenVINO int8 as ``edge run`` loads it (NNCF IRs where kept, with the
float-layer precision their gate passed with) and the QDQ IRs beside them, plus what the NNCF gate left
in float (``ignored``, its node-fallback tries and sensitivity ranking) from the manifest.

    python benchmarks/int8_forms.py BUNDLE [--program NAME] [--samples 100] [--out JSON]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge import jsonout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--program", default=None, help="program to score (default: the card's first in the bundle)")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None, help="JSON (default: results/<family>_int8_forms.json)")
    args = ap.parse_args()

    import edge
    from edge.bench.machine import machine
    from edge.files import atomic_write_text
    from edge.program import bundle_programs, card_for_bundle, evaluate, load_program

    b = edge.Bundle.load(args.bundle)
    card = card_for_bundle(b)
    cfg = b.manifest["model"]["config"]
    program = args.program or bundle_programs(b, card)[0].name
    graphs = card.program(program).graphs
    samples = card.data.samples(cfg, "evaluation", args.samples, 0)
    names = {a["name"] for a in b.artifacts}
    qdq_ir = {g: f"openvino-int8-{g}" for g in graphs}
    configs: list[tuple[str, str, dict[str, Any]]] = [
        ("onnxruntime fp32", "onnxruntime", {"precision": "fp32"}),
        ("onnxruntime int8", "onnxruntime", {"precision": "int8"}),
        ("openvino fp32", "openvino", {"precision": "fp32"}),
        ("openvino int8 (as edge run loads it)", "openvino", {"precision": "int8"}),
    ]
    if set(qdq_ir.values()) <= names:
        configs.append(("openvino int8 (QDQ IR)", "openvino", {"artifacts": qdq_ir}))
    rows = []
    for label, backend, kw in configs:
        try:
            with load_program(b, backend, program=program, **kw) as prog:
                m = evaluate(prog, card, samples)
                arts = kw.get("artifacts") or b.manifest["programs"][program]["precisions"][kw["precision"]][backend]
                row = {"config": label, "artifacts": arts, "inference_precision": prog.inference_precision,
                       **{k: float(v) for k, v in m.items() if isinstance(v, (int, float))}}
        except Exception as e:  # a form this bundle or machine lacks: listed, not fatal
            row = {"config": label, "skipped": str(e).splitlines()[0][:200]}
        rows.append(row)
        print(jsonout.dumps(row), flush=True)
    nncf = {a["graph"]: {k: a["quantization"].get(k) for k in ("model_type", "scheme_ms", "fallback", "ignored",
                                                               "node_fallback")}
            for a in b.artifacts if a.get("quantization", {}).get("format") == "nncf"}
    report = {"bundle": str(args.bundle), "family": b.manifest["model"].get("family"), "program": program,
              "samples": args.samples, "metric": card.metric.name, "rows": rows,
              "gates": b.manifest["programs"][program].get("gates", {}), "nncf": nncf, "machine": machine()}
    out = args.out or Path(__file__).parent / "results" / f"{report['family']}_int8_forms.json"
    atomic_write_text(out, jsonout.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
