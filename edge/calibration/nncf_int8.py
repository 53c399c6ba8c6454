"""Native OpenVINO INT8 with NNCF post-training quantization (faster than reading a QDQ graph on
some CPUs), gated on the task metric like every other quantized artifact.

Symmetric ("performance" preset) activations and per-channel weights, calibrated on the same
FeedSet as the QDQ path; ``ignored`` node names stay in fp32. The result is saved as IR with its
weights stored in int8 (no fp16 compression involved).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.calibration.datasets import FeedSet
from edge.errors import BackendUnavailable, ExportError, first_line


def nncf_quantize_ir(src: str, xml_out: str, calib: FeedSet, io: Any, *, ignored: Sequence[str] = (),
                     transformer: bool = True) -> dict[str, Any]:
    """Quantize ``src`` (ONNX or IR, read with our attention extension) to an INT8 IR at ``xml_out``."""
    try:
        import nncf
    except ImportError:
        raise BackendUnavailable("nncf is not installed (pip install 'edge-deploy[openvino]')") from None
    import openvino as ov

    from edge.runtimes.openvino import read_model

    model = read_model(src)
    names = io.input_names
    dataset = nncf.Dataset(calib.feeds, lambda feed: [feed[n] for n in names])
    kwargs: dict[str, Any] = {"preset": nncf.QuantizationPreset.PERFORMANCE, "subset_size": len(calib)}
    if transformer:  # keeps softmax/layernorm-adjacent patterns in float, as NNCF recommends for attention
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(ignored), validate=False)
    import contextlib
    import io as _io
    import logging

    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(_io.StringIO()):  # NNCF draws progress bars on stdout (breaks --json)
            q = nncf.quantize(model, dataset, **kwargs)
    except Exception as e:
        msg = first_line(e)
        raise ExportError(f"{Path(src).name}: NNCF quantization failed ({msg})") from None
    ov.save_model(q, xml_out, compress_to_fp16=False)
    return {"format": "nncf", "preset": "performance", "model_type": "transformer" if transformer else "default",
            "ignored": list(ignored), "calibration": {"source": calib.source, "samples": len(calib)}}
