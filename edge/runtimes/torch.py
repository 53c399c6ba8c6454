"""Eager PyTorch backend: the reference every parity check compares against.

A bundle from a model card carries its checkpoint: a state_dict + config loaded with
``weights_only=True`` into a module built from code we ship (the card's). Nothing else is loaded:
a ``torch.export`` program (``.pt2``, which older edge-deploy wrote for a user's own module)
is refused, because ``torch.export.load`` unpickles its weights with ``weights_only=False`` and a
forged one runs code. A user module's torch reference is the module itself, checked at export
(``parity`` in the manifest); its bundle runs on ONNX Runtime, OpenVINO or TensorRT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import BundleError
from edge.runtimes.base import BaseRuntime
from edge.runtimes.registry import Backend
from edge.spec import IOSpec


def _available() -> tuple[bool, str]:
    try:
        import torch
    except Exception as e:  # not installed, or broken (torch without a CUDA library it links: an OSError)
        from edge.deps import import_failure

        return False, import_failure("torch", e)
    return True, f"torch {torch.__version__}"


class TorchRuntime(BaseRuntime):
    """An ``nn.Module`` behind the Runtime protocol, run under ``inference_mode``."""

    backend = "torch"

    def __init__(self, module: Any, io: IOSpec, *, threads: int = 0) -> None:
        import torch

        super().__init__(io)
        if threads:
            torch.set_num_threads(int(threads))
        self.module = module

    def close(self) -> None:
        super().close()
        self.module = None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        module = self.module  # one read: close() in another thread sets it to None (the call holds the module)
        if module is None:
            self._check_open()  # ClosedError, not "'NoneType' object is not callable"
        with torch.inference_mode():
            out = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.io.input_names))
        if isinstance(out, dict):
            if any(n not in out for n in self.io.output_names):  # a card whose graph and IOSpec disagree: one line
                raise BundleError(f"torch module returned outputs {sorted(map(str, out))}, its IOSpec declares "
                                  f"{sorted(self.io.output_names)}")
            out = [out[n] for n in self.io.output_names]
        elif not isinstance(out, list | tuple):
            out = [out]
        if len(out) != len(self.io.outputs):
            raise BundleError(f"torch module returned {len(out)} outputs, the manifest lists {len(self.io.outputs)}")
        bad = next(((n, o) for n, o in zip(self.io.output_names, out, strict=True) if not isinstance(o, torch.Tensor)),
                   None)
        if bad is not None:
            raise BundleError(f"torch module returned a {type(bad[1]).__name__} as output '{bad[0]}', not a tensor")
        return {n: o.detach().cpu().numpy() for n, o in zip(self.io.output_names, out, strict=True)}


def load(bundle: Any, artifact: dict[str, Any], *, graph: str, threads: int = 0,
         **_: Any) -> TorchRuntime:
    from edge.ops import ensure_registered

    ensure_registered()  # programs that contain edge::attention need the op registered before loading
    io = bundle.graph_io(graph)
    path = bundle.file(artifact["file"])
    if artifact["format"] == "checkpoint":
        from edge.models.checkpoint import load_model
        from edge.program import card_for_bundle

        card = card_for_bundle(bundle)  # the manifest's family, its config checked: the one way to a bundle's card
        if card is None:
            raise BundleError(f"{path}: a checkpoint in a bundle no model family made; the torch backend needs one")
        model, _, _ = load_model(path)
        module = card.graphs[graph].module(model)
    elif artifact["format"] == "torch_export":
        raise BundleError(f"{path}: refused: the torch backend does not open torch.export programs (.pt2) from a "
                          "bundle, because loading one unpickles data and can run code; run this bundle on "
                          "onnxruntime or openvino, or re-export it (bundles no longer carry a .pt2)")
    else:
        raise BundleError(f"torch backend cannot load artifact format '{artifact['format']}'")
    return TorchRuntime(module, io, threads=threads)


def open_module(module: Any, io: IOSpec, *, threads: int = 0, **_: Any) -> TorchRuntime:
    """An ``nn.Module`` already in memory (the parity reference of export and training scores)."""
    from edge.ops import ensure_registered

    ensure_registered()
    return TorchRuntime(module.eval() if hasattr(module, "eval") else module, io, threads=threads)


BACKEND = Backend("torch", "eager PyTorch (reference)", ("checkpoint", "torch_export"), _available, load,
                  open=open_module)
