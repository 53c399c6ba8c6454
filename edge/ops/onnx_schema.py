"""ONNX schema of our portable node ``edge.ai::EdgeAttention`` (version 1).

Registered with ``onnx.defs.register_schema`` so ``onnx.checker`` (full check) and shape inference
accept plugin-mode graphs: output = Q's type with V's last dim. Attributes: ``num_heads`` and
``scale`` (required), ``qk_norm`` (0/1, default 0), and ``plugin_namespace`` / ``plugin_version``
(TensorRT's ONNX parser uses them to find our plugin by op name).
"""

from __future__ import annotations

from edge.ops.attention import PLUGIN_DOMAIN, PLUGIN_OP

_FLOATS = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]


def register_schemas() -> None:
    """Register the schema once per process (idempotent)."""
    import onnx
    from onnx import defs, helper
    from onnx.defs import OpSchema

    if defs.has(PLUGIN_OP, PLUGIN_DOMAIN):
        return
    param = OpSchema.FormalParameter
    schema = OpSchema(
        PLUGIN_OP, PLUGIN_DOMAIN, 1,
        doc="Scaled dot-product attention on [B, H, S, D] (edge-deploy). Y = softmax(scale * norm(Q) norm(K)^T "
            "+ mask) V; norm = RMS over D when qk_norm = 1. A bool mask is True where attention is allowed.",
        inputs=[param("Q", "T", "queries [B, H, Sq, D]"), param("K", "T", "keys [B, H, Sk, D]"),
                param("V", "T", "values [B, H, Sk, Dv]"),
                param("mask", "M", "bool or additive mask broadcastable to [B, H, Sq, Sk]",
                      param_option=OpSchema.FormalParameterOption.Optional)],
        outputs=[param("Y", "T", "output [B, H, Sq, Dv]")],
        type_constraints=[("T", _FLOATS, "floating point"), ("M", ["tensor(bool)", *_FLOATS], "mask")],
        attributes=[
            OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, "number of heads (H)"),
            OpSchema.Attribute("scale", OpSchema.AttrType.FLOAT, "logit scale, usually 1/sqrt(D)"),
            OpSchema.Attribute("qk_norm", helper.make_attribute("qk_norm", 0), "RMS-normalize Q and K over D"),
            OpSchema.Attribute("plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin namespace",
                               required=False),
            OpSchema.Attribute("plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin version",
                               required=False),
        ],
    )

    def infer(ctx: onnx.shape_inference.InferenceContext) -> None:
        q, v = ctx.get_input_type(0), ctx.get_input_type(2)
        out = onnx.TypeProto()
        out.CopyFrom(q)
        if (q.tensor_type.HasField("shape") and v.tensor_type.HasField("shape")
                and len(q.tensor_type.shape.dim) == 4 and len(v.tensor_type.shape.dim) == 4):
            out.tensor_type.shape.dim[3].CopyFrom(v.tensor_type.shape.dim[3])
        ctx.set_output_type(0, out)

    schema.set_type_and_shape_inference_function(infer)
    defs.register_schema(schema)
