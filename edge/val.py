"""``edge val``: a bundle's task metric on labelled data, for every backend x precision it has here, in one run.

Export proves the reduced precisions against held-out *synthetic* samples; a user deploying on real roads wants the
same proof on their own labelled frames, with the forms ``edge run`` would run (Ultralytics' ``val``, NNCF's
validation step). The data is either the family's held-out synthetic set (``synthetic[:N][,seed=S]``, every family
that has data) or ``PATH[,key=value...]`` read by the family's own reader (:class:`edge.models.contract.LabelledData`:
a dataset's label file, a sensor folder whose calibration is the truth...). Each configuration is scored by the
card's metric through :func:`edge.program.evaluate`, the same code the export's gate and the benchmarks use, and its
drop is taken against the fp32 of the same program on the same backend.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from edge.errors import DataError, EdgeError

#: held-out synthetic samples when ``synthetic`` names no count (the export gate's default evaluation size)
SYNTHETIC_DEFAULT = 40
#: the most synthetic samples one spec asks for (each is rendered and scored on every configuration)
SYNTHETIC_MAX = 100_000


def labelled_samples(card: Any, cfg: dict[str, Any], spec: str) -> tuple[list[Any], str]:
    """(samples, what they are) for ``--data SPEC``: one line naming the spec when it cannot be read."""
    from edge.stream.sources import spec_options

    head, opts = spec_options(spec.strip())
    if not head:
        raise DataError(f"--data {spec!r}: names no data (synthetic[:N] or a path the family reads)")
    if head == "synthetic" or head.startswith("synthetic:"):
        if card.data is None:
            raise EdgeError(f"--data {spec}: model '{card.name}' declares no data (card.data)")
        count = head.partition(":")[2] or str(SYNTHETIC_DEFAULT)
        unknown = sorted(set(opts) - {"seed"})
        if unknown or not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= SYNTHETIC_MAX:
            raise DataError(f"--data {spec}: use synthetic[:N][,seed=S], N 1..{SYNTHETIC_MAX}"
                            + (f" (unknown option {unknown[0]})" if unknown else ""))
        seed = opts.get("seed", "0")
        if not (seed.isascii() and seed.isdigit()) or int(seed) >= 2**32:
            raise DataError(f"--data {spec}: seed={seed} must be a whole number 0..{2**32 - 1}")
        n = int(count)
        return card.data.samples(cfg, "evaluation", n, int(seed)), f"{n} held-out synthetic samples (seed {seed})"
    reader = card.data.labelled if card.data is not None else None
    if reader is None:
        raise EdgeError(f"--data {spec}: model '{card.name}' reads no labelled data of its own (its card has no "
                        "data.labelled); --data synthetic[:N] scores its held-out synthetic set")
    path = Path(head)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (--data takes {reader.formats})")
    try:
        samples = reader.read(path, cfg, **opts)
    except TypeError as e:
        if "unexpected keyword" not in str(e):
            raise
        raise DataError(f"--data {spec}: unknown option ({reader.formats})") from None
    if not samples:
        raise DataError(f"{path}: no labelled samples in it ({reader.formats})")
    return samples, f"{len(samples)} labelled samples from {path}"


def run_val(bundle: str | Path, data: str | list[str], *, backends: list[str] | None = None,
            programs: list[str] | None = None, threads: int = 0, say: Any = lambda _m: None) -> dict[str, Any]:
    """Score ``bundle`` on ``data`` (see the module docstring; several specs: their samples together); returns the
    report (what ``--json`` prints).

    ``programs``: default the bundle's first (the one ``edge run`` runs). Configurations that cannot load here
    are listed under ``skipped`` with the reason, as ``edge bench`` lists them."""
    from edge.bundle import Bundle
    from edge.plans import chosen_programs, program_plans, unplanned
    from edge.program import card_for_bundle, evaluate, load_program
    from edge.runtimes import require

    b = Bundle.load(bundle)
    card = card_for_bundle(b)
    if card is None:
        raise EdgeError(f"{bundle}: a bundle of a plain module (edge.export) has no task metric to score; "
                        "`edge val` scores a model family's bundle")
    if card.metric is None:
        raise EdgeError(f"{bundle}: model '{card.name}' declares no metric (card.metric), so there is nothing to score")
    cfg = b.manifest["model"].get("config") or {}
    specs = chosen_programs(b, card, programs)
    specs = specs if programs else specs[:1]
    backends = backends or ["torch", "onnxruntime", "openvino"]
    specs_given = [data] if isinstance(data, str) else list(data)
    if not specs_given:
        raise DataError("--data: give one or more data specs")
    samples, parts = [], []
    for one in specs_given:
        got, what = labelled_samples(card, cfg, one)
        samples += got
        parts.append(what)
    described = parts[0] if len(parts) == 1 else f"{len(samples)} samples ({'; '.join(parts)})"
    plans = program_plans(b, specs, backends)
    rows: list[dict[str, Any]] = []
    skipped = unplanned(plans, backends)
    for spec, backend, label, opts in plans:
        name = f"{spec.name}:{backend}/{label}"
        say(f"scoring {name} on {described}")
        try:
            require(backend)
            prog = load_program(b, backend, program=spec.name, threads=threads, **opts)
        except EdgeError as e:
            skipped.append({"config": name, "reason": str(e)})
            continue
        t0 = time.perf_counter()
        try:
            score = evaluate(prog, card, samples)
        finally:
            prog.close()
        rows.append({"config": name, "program": spec.name, "backend": backend, "precision": label,
                     "value": score["value"], "score": score, "seconds": round(time.perf_counter() - t0, 2)})
    if not rows:
        raise EdgeError(f"{bundle}: nothing to score with backends {backends}"
                        + (f" ({skipped[0]['reason']})" if skipped else ""))
    for r in rows:  # the drop against the same program's fp32 on the same backend (torch: its own reference)
        ref = next((q["value"] for q in rows if q["program"] == r["program"] and q["backend"] == r["backend"]
                    and q["precision"] == "fp32"), None)
        r["reference"] = ref
        r["drop"] = card.metric.drop(ref, r["value"]) if ref is not None else None
    return {"bundle": str(bundle), "model": b.model_name, "family": card.name, "data": specs_given,
            "samples": len(samples),
            "described": described, "metric": card.metric.name, "unit": card.metric.unit,
            "higher_is_better": card.metric.higher_is_better, "rows": rows, "skipped": skipped}


def over_budget(report: dict[str, Any], max_drop: float | str) -> list[dict[str, Any]]:
    """The rows whose drop against their fp32 exceeds ``max_drop``: metric units, or ``"N%"`` of that fp32 value,
    as ``edge-export --max-drop`` takes it (the same rounding allowance as the export's gate); a non-finite value
    counts as over."""
    from edge.calibration.gate import within_budget
    from edge.calibration.precision import parse_max_drop

    absolute, relative = parse_max_drop(max_drop)
    over = []
    for r in report["rows"]:
        if r["drop"] is None:
            continue
        budget = absolute if relative is None else relative * abs(r["reference"])
        if not math.isfinite(r["drop"]) or not within_budget(r["drop"], budget):
            over.append(r)
    return over
