"""Quantization-aware training (``edge train --qat MODULES``): the named submodules train with the rounding
the symmetric INT8 export will apply, so their weights learn to keep their accuracy at that precision.

Why: post-training quantization (:mod:`edge.calibration.quantize`) rounds each Conv/MatMul/Gemm input to a
per-tensor symmetric int8 grid and each weight to a per-output-channel one. A network whose outputs need
more precision than that (sub-pixel positions read from non-negative activations, which a zero-centred int8
range leaves 7 bits) loses its accuracy there, whatever nodes the gate leaves float. Training through the
same rounding (fake quantization, straight-through gradients) is the standard remedy (NNCF's and PyTorch's QAT
do the same).

What is rounded mirrors the symmetric QDQ form: the input and the weight of every ``Conv1d/2d/3d`` and
``Linear`` inside the named submodules, except a Linear whose dot products sum fewer than
:data:`~edge.calibration.quantize.MIN_INT8_DOT` terms (the export keeps those float). Activation scales follow
an exponential average of each batch's max |x| / 127 (minmax calibration's scale); weight scales are each
output channel's max |w| / 127. Nothing is added to the weights: :meth:`FakeQuant.remove` leaves the plain
float model. The activation scales training reached are kept by name (:meth:`FakeQuant.named_scales`, saved in
the checkpoint's ``meta["qat_scales"]``), and the symmetric INT8 export uses them for those layers' inputs in
place of its own calibration (:mod:`edge.calibration.qat_scales`): the weights learned to live with that grid,
and a calibration over other samples gives another one (a coarser one, when one crop's max exceeds the
average batch max training saw).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: int8's symmetric range (-127..127: the zero point is 0, as TensorRT requires)
QMAX = 127.0
#: weight of each batch in the activation scale's running average
MOMENTUM = 0.05


def fake_round(x: Any, scale: Any) -> Any:
    """``x`` rounded to the symmetric int8 grid of ``scale`` (broadcast), with the gradient of the identity
    (straight through): the forward pass sees what int8 computes, the backward pass moves the float values."""
    import torch

    q = torch.clamp(torch.round(x / scale), -QMAX, QMAX) * scale
    return x + (q - x).detach()


def layer_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int | str, Any] | None:
    """Where a Conv/Linear call's input tensor is and the tensor: (position, tensor) for the first tensor passed
    by position, else (keyword, tensor) for the only tensor passed by keyword (``input=`` for torch's own
    layers; a subclass may name it otherwise); None when the call passes no tensor or several by keyword (a
    subclass whose input is a tuple: nothing to round). Both kinds of call reach the layer's forward, so a
    forward pre-hook must read both."""
    import torch

    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            return i, a
    kw = [(k, v) for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
    return kw[0] if len(kw) == 1 else None


class FakeQuant:
    """Fake quantization hooked onto the Conv/Linear layers of some submodules; :meth:`remove` undoes it."""

    def __init__(self, layers: Sequence[Any]) -> None:
        import torch

        self.layers = list(layers)
        self.handles: list[Any] = []
        self.scales: dict[int, Any] = {}
        for layer in self.layers:
            self.scales[id(layer)] = torch.zeros(())
            self.handles.append(layer.register_forward_pre_hook(self._pre, with_kwargs=True))
            self.handles.append(layer.register_forward_hook(self._post))
        self._saved: dict[int, Any] = {}

    def _pre(self, layer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        import torch

        found = layer_input(args, kwargs)
        if found is None:  # no input tensor to round: the call runs as it is (and _post has nothing to restore)
            return None
        where, x = found
        s = self.scales[id(layer)].to(x.device)
        # tensor arithmetic only (no float() of a scale): on a GPU each read would wait for the device, per layer
        # per step. A scale of 0 means no batch with a nonzero input has been seen: the first one sets it, and
        # until then the input is left as it is
        if layer.training:
            batch = x.detach().abs().max() / QMAX
            s = torch.where(s == 0, batch, (1 - MOMENTUM) * s + MOMENTUM * batch)
            self.scales[id(layer)] = s
        x = torch.where(s > 0, fake_round(x, torch.clamp(s, min=1e-30)), x)
        # the weight, rounded per output channel, stands in for the parameter during this call only
        w = layer.weight
        dims = tuple(range(1, w.dim()))
        ws = torch.clamp(w.detach().abs().amax(dim=dims, keepdim=True) / QMAX, min=1e-12)
        self._saved[id(layer)] = w
        del layer.weight
        layer.weight = fake_round(w, ws)
        if isinstance(where, int):
            return (*args[:where], x, *args[where + 1:]), kwargs
        return args, {**kwargs, where: x}

    def _post(self, layer: Any, args: tuple[Any, ...], out: Any) -> Any:
        if id(layer) in self._saved:  # not when _pre left the call alone
            del layer.weight  # the rounded tensor; the parameter goes back
            layer.weight = self._saved.pop(id(layer))
        return out

    def start_from(self, root: Any, scales: Mapping[str, float]) -> list[str]:
        """Start each hooked layer named in ``scales`` (dotted names in ``root``) at that input scale instead of
        the first batch's max: ``edge train --init CK --qat`` continues the running average CK's training
        reached (its ``meta["qat_scales"]``), the grid its weights learned, rather than jumping to one batch's
        max and moving the weights to another grid. Returns the names it started from, sorted."""
        import torch

        names = {id(m): n for n, m in root.named_modules()}
        used = []
        for layer in self.layers:
            name = names.get(id(layer))
            if name in scales:
                self.scales[id(layer)] = torch.tensor(float(scales[name]))
                used.append(name)
        return sorted(used)

    def named_scales(self, root: Any) -> dict[str, float]:
        """Each hooked layer's input scale by its dotted name in ``root`` (layers that never ran are left out):
        what ``meta["qat_scales"]`` of a checkpoint holds."""
        names = {id(m): n for n, m in root.named_modules()}
        out = {}
        for layer in self.layers:
            s = float(self.scales[id(layer)])
            if s > 0 and id(layer) in names:
                out[names[id(layer)]] = s
        return out

    def remove(self) -> None:
        """Take every hook off: the layers are plain float layers again (their parameters never changed type)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for layer in self.layers:  # a forward that raised between the two hooks left its rounded weight in place
            if id(layer) in self._saved:
                del layer.weight
                layer.weight = self._saved.pop(id(layer))


def quantized_layers(module: Any) -> list[Any]:
    """The layers of ``module`` the symmetric INT8 export quantizes: Conv1d/2d/3d, and Linear with at least
    MIN_INT8_DOT inputs."""
    import torch

    from edge.calibration.quantize import MIN_INT8_DOT

    out = []
    for m in module.modules():
        conv = isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))
        if conv or (isinstance(m, torch.nn.Linear) and m.in_features >= MIN_INT8_DOT):
            out.append(m)
    return out


def attach(modules: Sequence[Any]) -> FakeQuant:
    """Fake quantization on every quantized layer of ``modules`` (see the module's docstring)."""
    layers = [layer for m in modules for layer in quantized_layers(m)]
    return FakeQuant(layers)
