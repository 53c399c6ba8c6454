"""``--to openvino``: an OpenVINO IR (.xml + .bin) next to every ONNX artifact of the bundle.

Each IR is read from its ONNX (plugin graphs through our attention extension), saved with fp32
weights (``compress_to_fp16=False``: the IR stays the model that passed parity; fp16 weights are an
opt-in), and checked: fp32 IRs against PyTorch (same tolerance as the ONNX export), fp16/int8 IRs
against their own ONNX in ONNX Runtime (fp16 gated at 1e-2 on the float outputs; int8 reported only, since its gate is
the task metric of the same QDQ graph).
"""

from __future__ import annotations

from typing import Any

from edge.errors import ExportError


def add_openvino(w: Any, report: dict[str, Any], jobs: list[Any], *, rtol: float,
                 compress_to_fp16: bool = False) -> None:
    """Write IR artifacts into the bundle writer ``w`` for every ONNX artifact already in it."""
    from edge.parity import compare, torch_outputs
    from edge.runtimes import open_file
    from edge.runtimes.openvino import save_ir

    by_graph = {j.name: j for j in jobs}
    rows = []
    for art in [a for a in w.manifest["artifacts"] if a["format"] == "onnx"]:
        job = by_graph[art["graph"]]
        src = w.path_for(art["file"])
        stem = art["file"][: -len(".onnx")]
        xml = f"{stem}.xml"
        files = save_ir(str(src), str(w.path_for(xml)), compress_to_fp16=compress_to_fp16)
        for f in files:
            w.register(f, "openvino_ir")
        feeds = job.checks[0][1] if job.checks else job.example
        ov_rt = open_file("openvino", w.path_for(xml), job.io, inference_precision="f32")
        try:
            got = ov_rt.infer(feeds)
        finally:
            ov_rt.close()
        if art["precision"] == "fp32":
            ref, ref_name, tol = torch_outputs(job.module, job.io, feeds), "torch eager", rtol
        else:
            ort_file = art.get("lowered", {}).get("onnxruntime", art["file"])
            ort = open_file("onnxruntime", w.path_for(ort_file), job.io)
            try:
                ref = ort.infer(feeds)
            finally:
                ort.close()
            # int8: the two runtimes round and fuse quantized ops differently, so tensors are reported,
            # not gated here; the task metric on OpenVINO gates them (edge.calibration.openvino_qdq)
            ref_name, tol = f"{art['file']} in onnxruntime", 1e-2 if art["precision"] == "fp16" else float("inf")
        if art["precision"] == "fp16":  # float outputs, as the fp16 form was held to (an index output may flip)
            from edge.parity import fp16_rel

            worst = fp16_rel(ref, got)
        else:
            worst = max(e["rel"] for e in compare(ref, got).values())
        if worst > tol:
            raise ExportError(f"{xml}: OpenVINO differs from {ref_name}: max rel {worst:.2e} > {tol:.0e}; "
                              "nothing was written")
        name = art["name"].replace("onnx-", "openvino-", 1)
        w.add_artifact({"name": name, "format": "openvino_ir", "file": files[0], "extra_files": files[1:],
                        "graph": art["graph"], "precision": art["precision"],
                        "attention": art.get("attention"), "derived_from": art["file"],
                        "compress_to_fp16": compress_to_fp16,
                        "parity": {"reference": ref_name, "max_rel": worst, "tolerance_rel": tol}})
        rows.append({"artifact": name, "file": files[0], "max_rel": worst,
                     "bytes": sum(w.path_for(f).stat().st_size for f in files)})
    report["openvino"] = rows
