"""Every activation of an ONNX graph on given feeds, by tensor name: what checks that compare a graph's inner
tensors read (TensorRT's fp16 form finds where it departs from fp32; a quantization-aware checkpoint's layers
are found on the graph by their inputs' values).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from edge.errors import ExportError, first_line

#: a model whose protobuf is larger than this is handed to ONNX Runtime as a file with external data (protobuf
#: cannot serialize a message of 2 GiB or more into one string)
INLINE_BYTES = 1 << 30


def activations(model: Any, feeds: Sequence[dict[str, Any]], name: str, why: str) -> Iterator[dict[str, Any]]:
    """Per feed, every float / fp16 / bool activation of ``model`` (graph inputs and node outputs, not
    initializers) by tensor name, from an unoptimized ONNX Runtime session with each as an output (fused
    kernels would hide some); a model over :data:`INLINE_BYTES` goes through a temporary file with external
    data. ``model`` is changed: outputs added, and past :data:`INLINE_BYTES` its initializers are moved to that
    file, which is deleted when the iteration ends (load the model again to use its weights). An ExportError
    names ``name`` and ``why`` the activations were wanted when ONNX Runtime cannot run it so."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edge-activations-") as tmp:
        big = model.ByteSize() > INLINE_BYTES
        path = os.path.join(tmp, "probe.onnx")
        try:
            if big:  # protobuf cannot hold it in one string: shape inference and the session read files
                onnx.save(model, path, save_as_external_data=True, location="probe.data")
                onnx.shape_inference.infer_shapes_path(path, path + ".shapes")
                inferred = onnx.load(path + ".shapes", load_external_data=False)
            else:
                inferred = onnx.shape_inference.infer_shapes(model)
            kinds = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL)
            floats = {v.name: v.type.tensor_type.elem_type
                      for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
                      if v.type.tensor_type.elem_type in kinds}
            inputs = {i.name for i in model.graph.input}
            real = {o for n in model.graph.node for o in n.output} | inputs
            have = {o.name for o in model.graph.output}
            watch = sorted((set(floats) & real) - {t.name for t in model.graph.initializer})
            for t in watch:
                if t not in have and t not in inputs:
                    model.graph.output.append(onnx.helper.make_tensor_value_info(t, floats[t], None))
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            so.log_severity_level = 3
            if big:  # the initializers already point at probe.data; only the graph's outputs changed
                onnx.save(model, path)
                sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            else:
                sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            feed_names = [i.name for i in sess.get_inputs()]
        except Exception as e:  # a graph ONNX Runtime cannot run unoptimized
            raise ExportError(f"{name}: could not measure its activations for {why} ({first_line(e)})") from None
        keep = set(watch)
        for f in feeds:
            feed = {k: f[k] for k in feed_names}
            try:
                outs = sess.run(names, feed)
            except Exception as e:
                raise ExportError(f"{name}: could not measure its activations for {why} ({first_line(e)})") from None
            acts = {k: np.asarray(v) for k, v in feed.items() if k in keep}
            acts.update({k: v for k, v in zip(names, outs) if k in keep})
            yield acts
