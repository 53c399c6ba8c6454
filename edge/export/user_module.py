"""A user's ``nn.Module`` as the exporter needs it: inputs bound to ``forward`` by name, outputs flat.

``edge.export(model, {"b": b, "a": a}, ...)`` must feed ``a`` to ``forward(a, b)``'s ``a`` (calling
it positionally in the dict's order swapped them and gave wrong numbers without an error), and a
model returning a dict or nested tuples must export as its tensors in a flat order, named by their
keys (it failed with a traceback). When either needs more than the plain positional call, the module
is wrapped in :class:`Bound`, whose ``forward`` takes the graph inputs positionally and returns a flat
tuple; otherwise the module is exported as it is (so existing bundles stay byte-identical).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from edge.errors import ExportError


def _torch_module_base() -> type:
    from torch import nn

    return nn.Module


def forward_parameters(module: Any) -> tuple[list[str], int, bool] | None:
    """(names of ``forward``'s parameters that can be passed by keyword, how many of them lead and can also
    be passed positionally, whether it takes ``**kwargs``); None when the signature cannot be read or takes
    only ``*args``."""
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    params = list(sig.parameters.values())
    named = [p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)]
    positional = sum(p.kind == kinds.POSITIONAL_OR_KEYWORD for p in params)
    var_kw = any(p.kind == kinds.VAR_KEYWORD for p in params)
    if not named and not var_kw:
        return None
    return named, positional, var_kw


def bind_inputs(module: Any, keys: Sequence[str]) -> tuple[list[int], bool]:
    """How the example dict's ``keys`` reach ``forward``: (an order of the keys to pass them positionally
    in, whether they must go by keyword instead).

    - every key names a parameter and together they are the first parameters of ``forward`` (in any
      order): positionally, in ``forward``'s order;
    - every key names a parameter (or ``forward`` takes ``**kwargs``) but they skip one: by keyword;
    - no key names a parameter: positionally in the dict's order (the keys are only the graph's input
      names);
    - some do and some do not: an error naming them (a typo would otherwise feed the wrong input).
    """
    order = list(range(len(keys)))
    params = forward_parameters(module)
    if params is None:
        return order, False
    named, positional, var_kw = params
    known = [k for k in keys if k in named]
    if not known and not var_kw:
        return order, False
    unknown = [k for k in keys if k not in named]
    if unknown and not var_kw:
        raise ExportError(f"example input(s) {', '.join(map(repr, unknown))} name no parameter of "
                          f"{type(module).__name__}.forward({', '.join(named)}); name them as forward does, or "
                          f"give none of its names to pass them in order")
    if not unknown and len(keys) <= positional and sorted(keys, key=named.index) == named[: len(keys)]:
        return sorted(order, key=lambda i: named.index(keys[i])), False
    return order, True


def flatten_outputs(out: Any, where: str = "") -> list[tuple[str | None, Any]]:
    """(name or None, tensor) of every tensor in ``out`` in order: dict keys become names ("a.b" when
    nested), list/tuple items keep their parent's name with their index ("a.0") or none at the top."""
    import torch

    if isinstance(out, torch.Tensor):
        return [(where or None, out)]
    if isinstance(out, Mapping):
        items = []
        for k, v in out.items():
            items += flatten_outputs(v, f"{where}.{k}" if where else str(k))
        return items
    if isinstance(out, list | tuple):
        items = []
        for i, v in enumerate(out):
            items += flatten_outputs(v, f"{where}.{i}" if where else "")
        return items
    raise ExportError(f"the model's output{f' {where!r}' if where else ''} is a {type(out).__name__}; an "
                      f"exported graph can only return tensors (in a tensor, a tuple/list or a dict of them)")


def output_names(flat: list[tuple[str | None, Any]]) -> list[str]:
    """The default graph output names: a dict key's path where there is one, else ``output{i}``."""
    names = [n if n is not None else f"output{i}" for i, (n, _) in enumerate(flat)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExportError(f"output names {', '.join(dup)} occur twice; pass output_names")
    return names


def is_flat(out: Any) -> bool:
    """Whether ``out`` is a tensor or a tuple/list of tensors (what the plain export takes)."""
    import torch

    if isinstance(out, torch.Tensor):
        return True
    return isinstance(out, list | tuple) and all(isinstance(o, torch.Tensor) for o in out)


def bound(module: Any, keywords: Sequence[str] | None) -> Any:
    """``module`` behind a ``forward(*inputs)`` that calls it with ``keywords`` (when given) and returns its
    tensors as one flat tuple."""

    class Bound(_torch_module_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *inputs: Any) -> tuple[Any, ...]:
            out = self.inner(**dict(zip(keywords, inputs, strict=True))) if keywords else self.inner(*inputs)
            return tuple(t for _, t in flatten_outputs(out))

    # named as the user's class, so the export's messages say "Kw: input(s) scale are not used", not "Bound: ..."
    Bound.__name__ = Bound.__qualname__ = type(module).__name__
    return Bound().eval()
