"""Reduced-precision artifacts added to a bundle being written: fp16 and gated INT8 (ONNX Runtime).

Each artifact is derived from the fp32 graph ONNX Runtime runs (the plugin lowering when there is
one), validated for tensor parity against PyTorch (fp16: rel < 1e-2) and scored on the model card's
task metric against fp32 on held-out synthetic data; INT8 goes through the accuracy gate
(:mod:`edge.calibration.gate`). Results land in the manifest and in the export table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.errors import ExportError

PRECISIONS = ("fp32", "fp16", "int8")
FP16_RTOL = 1e-2


def _latency_ms(path: str, io: Any, feed: dict[str, np.ndarray], n: int = 15) -> float:
    from edge.runtimes.onnxruntime import OrtRuntime

    rt = OrtRuntime(path, io)
    try:
        return _latency_rt(rt, feed, n)
    finally:
        rt.close()


def add_precisions(w: Any, report: dict[str, Any], card: Any, cfg: dict[str, Any], module: Any, io: Any,
                   precisions: list[str], *, calib: str = "synthetic", calib_size: int = 32, eval_size: int = 40,
                   max_drop: float = 1.0, method: str = "minmax", seed: int = 0,
                   say: Callable[[str], None] = lambda _m: None) -> None:
    """Write the requested fp16/int8 copies of the full graph into the bundle writer ``w``."""
    from edge.calibration.datasets import load_set
    from edge.calibration.gate import output_error, quantize_with_gate
    from edge.calibration.quantize import convert_fp16
    from edge.export.validate import compare, torch_outputs

    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ExportError(f"--precision {bad}: choose from {', '.join(PRECISIONS)}")
    wanted = [p for p in precisions if p != "fp32"]
    if not wanted:
        return
    if "score_onnx" not in card.extras:
        raise ExportError(f"model '{card.name}' has no task metric; fp16/int8 need one for the accuracy gate")
    full = next(a for a in w.manifest["artifacts"] if a.get("graph") == "full" and a["format"] == "onnx")
    src_name = full.get("lowered", {}).get("onnxruntime", full["file"])
    src = str(w.path_for(src_name))
    score = lambda path: card.extras["score_onnx"](path, io, cfg, eval_size, seed)  # noqa: E731
    say(f"scoring fp32 on {eval_size} held-out synthetic clips")
    fp32_metric = float(score(src))
    synth = card.extras["synthetic_feed"]
    make = lambda rng: synth(cfg, rng)  # noqa: E731
    evaluation = load_set("synthetic", io, size=max(4, min(eval_size, 8)), role="evaluation", seed=seed + 1,
                          synthetic=make)
    feed = evaluation.feeds[0]
    rows = [{"artifact": full["name"], "precision": "fp32", "file": src_name, "metric": fp32_metric, "drop": 0.0,
             "parity_rel": full["parity"]["max_rel"], "latency_ms": _latency_ms(src, io, feed),
             "bytes": w.path_for(src_name).stat().st_size}]
    full["metric"] = {"name": card.extras.get("metric_name", "metric"), "value": fp32_metric}
    for prec in wanted:
        fname = f"model.{prec}.onnx"
        dst = w.path_for(fname)
        if prec == "fp16":
            info = convert_fp16(src, dst)
            worst = 0.0
            for f in evaluation.feeds:
                errs = compare(torch_outputs(module, io, f), _ort(str(dst), io, f))
                worst = max([worst, *(e["rel"] for e in errs.values())])
            if worst > FP16_RTOL:
                raise ExportError(f"fp16: rel error {worst:.2e} vs PyTorch above {FP16_RTOL:.0e}; nothing was written")
            metric = float(score(str(dst)))
            extra = {"quantization": info}
        else:
            cset = load_set(calib, io, size=calib_size, role="calibration", seed=seed, synthetic=make,
                            preprocess=(lambda img: card.extras["preprocess"](img, cfg)),
                            frames_per_sample=int(cfg.get("frames", 1)))
            say(f"int8: calibrating on {len(cset)} samples from {cset.source} ({method})")
            q_src, q_attention = _int8_source(w, src, card, cfg, module, io, seed)
            gate = quantize_with_gate(q_src, dst, io, cset, evaluation, score, fp32_metric=fp32_metric,
                                      max_drop=max_drop, method=method, progress=say)
            report.setdefault("gate", gate.to_dict())
            if not gate.passed:
                tries = "; ".join(f"{len(t['excluded'])} fp32 nodes -> {t['metric']:.2f} (drop {t['drop']:.2f})"
                                  for t in gate.tries)
                raise ExportError(f"int8 misses the --max-drop {max_drop} budget in every try ({tries}); "
                                  "no int8 artifact written")
            assert gate.chosen is not None
            metric = gate.chosen["metric"]
            worst = output_error(src, dst, io, evaluation.feeds)
            extra = {"attention": q_attention, "quantization": {"format": "qdq", "method": method,
                                                                "calibration": cset.source,
                                      "calibration_samples": len(cset), "excluded_nodes": gate.chosen["excluded"],
                                      "tries": gate.tries}}
        w.register(fname, "onnx")
        q_att = extra.pop("attention", None)
        art = {"name": f"onnx-{prec}", "format": "onnx", "file": fname, "graph": "full", "precision": prec,
               "attention": full["attention"] if q_att in (None, "same as fp32") else q_att,
               "derived_from": src_name,
               "parity": {"reference": "fp32 torch / ORT", "max_rel": worst},
               "metric": {"name": card.extras.get("metric_name", "metric"), "value": metric,
                          "fp32": fp32_metric, "drop": fp32_metric - metric, "max_drop": max_drop}, **extra}
        w.add_artifact(art)
        rows.append({"artifact": art["name"], "precision": prec, "file": fname, "metric": metric,
                     "drop": fp32_metric - metric, "parity_rel": worst, "latency_ms": _latency_ms(str(dst), io, feed),
                     "bytes": dst.stat().st_size})
    import shutil

    shutil.rmtree(w.path_for(".int8-src").parent / ".int8-src", ignore_errors=True)
    report["precisions"] = rows


def _int8_source(w: Any, src: str, card: Any, cfg: dict[str, Any], module: Any, io: Any,
                 seed: int) -> tuple[str, str]:
    """The fp32 graph to quantize, and its attention form.

    ONNX Runtime 1.32 only fuses QDQ Conv into QLinearConv through its S8->U8 transformer, which
    breaks on opset >= 21 graphs (our plugin lowering is opset 23), so those sessions must run without
    it and their int8 Convs stay fp32 behind DequantizeLinear: measured 52 ms vs 32 ms on the default
    lane model. An opset-23 source is therefore re-exported in ``decomposed`` form (opset 20) for INT8.
    """
    import onnx

    from edge.runtimes.onnxruntime import S8U8_BROKEN_FROM_OPSET, default_opset

    if default_opset(onnx.load(src, load_external_data=False)) < S8U8_BROKEN_FROM_OPSET:
        return src, "same as fp32"
    from edge.export.onnx_export import export_onnx
    from edge.ops.attention import export_mode

    dynamic = any(t.dynamic_dims for t in io.inputs)
    example = card.graphs["full"].example_inputs(cfg, 2 if dynamic else 1, seed)
    path = w.path_for(".int8-src/model.decomposed.onnx")  # inside the temp bundle; removed below
    with export_mode("decomposed"):
        export_onnx(module, example, io, path, opset=20)
    return str(path), "decomposed"


def _ort(path: str, io: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from edge.runtimes.onnxruntime import OrtRuntime

    rt = OrtRuntime(path, io)
    try:
        return rt.infer(feed)
    finally:
        rt.close()


def add_nncf_int8(w: Any, report: dict[str, Any], card: Any, cfg: dict[str, Any], io: Any, *,
                  calib: str = "synthetic", calib_size: int = 32, eval_size: int = 40, max_drop: float = 1.0,
                  seed: int = 0, say: Callable[[str], None] = lambda _m: None) -> None:
    """OpenVINO-native INT8 (NNCF) of the full graph, gated on the task metric against fp32."""
    from edge.calibration.datasets import load_set
    from edge.calibration.nncf_int8 import nncf_quantize_ir
    from edge.runtimes.openvino import OpenVinoRuntime

    full = next(a for a in w.manifest["artifacts"] if a.get("graph") == "full" and a["format"] == "onnx"
                and a["precision"] == "fp32")
    fp32_metric = full.get("metric", {}).get("value")
    if fp32_metric is None:
        fp32_metric = float(card.extras["score_onnx"](str(w.path_for(full.get("lowered", {}).get(
            "onnxruntime", full["file"]))), io, cfg, eval_size, seed))
    make = lambda rng: card.extras["synthetic_feed"](cfg, rng)  # noqa: E731
    cset = load_set(calib, io, size=calib_size, role="calibration", seed=seed, synthetic=make,
                    preprocess=(lambda img: card.extras["preprocess"](img, cfg)),
                    frames_per_sample=int(cfg.get("frames", 1)))
    say(f"openvino int8 (NNCF): calibrating on {len(cset)} samples")
    xml = "model.nncf-int8.xml"
    info = nncf_quantize_ir(str(w.path_for(full["file"])), str(w.path_for(xml)), cset, io)
    rt = OpenVinoRuntime(str(w.path_for(xml)), io, inference_precision="f32")
    try:
        metric = float(card.extras["score_runtime"](rt, cfg, eval_size, seed))
        lat = _latency_rt(rt, load_set("synthetic", io, size=1, role="evaluation", seed=seed + 1,
                                       synthetic=make).feeds[0])
    finally:
        rt.close()
    drop = fp32_metric - metric
    if drop > max_drop:
        raise ExportError(f"openvino int8 (NNCF): metric {metric:.2f} vs fp32 {fp32_metric:.2f} "
                          f"(drop {drop:.2f} > --max-drop {max_drop}); no int8 artifact written")
    bin_name = xml.replace(".xml", ".bin")
    w.register(xml, "openvino_ir")
    w.register(bin_name, "openvino_ir")
    w.add_artifact({"name": "openvino-int8-nncf", "format": "openvino_ir", "file": xml, "extra_files": [bin_name],
                    "graph": "full", "precision": "int8", "attention": full.get("attention"),
                    "derived_from": full["file"], "quantization": info,
                    "metric": {"name": card.extras.get("metric_name", "metric"), "value": metric,
                               "fp32": fp32_metric, "drop": drop, "max_drop": max_drop}})
    report.setdefault("precisions", []).append(
        {"artifact": "openvino-int8-nncf", "precision": "int8", "file": xml, "metric": metric, "drop": drop,
         "parity_rel": float("nan"), "latency_ms": lat,
         "bytes": w.path_for(xml).stat().st_size + w.path_for(bin_name).stat().st_size})


def _latency_rt(rt: Any, feed: dict[str, np.ndarray], n: int = 15) -> float:
    for _ in range(3):
        rt.infer(feed)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        rt.infer(feed)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts))
