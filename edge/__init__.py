"""edge-deploy: PyTorch perception models with attention, from training to a car.

The public API is loaded lazily so ``import edge`` stays fast and works without torch, onnxruntime
or any other heavy backend (a thin Jetson image has numpy and its runtime only)::

    import edge
    bundle = edge.export(model, {"x": x}, "out/my_model")      # any nn.Module -> validated bundle
    rt = edge.load("out/my_model", backend="onnxruntime")       # Runtime: infer(dict) -> dict
    prog = edge.load_program("out/fam", "openvino", precision="int8")  # a family's program: step(feeds)
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: the most pixels OpenCV decodes from one image (8192 x 8192): a valid 388 KB PNG can declare 20000 x 20000
#: and took 2.4-5.6 GB in `edge run`. OpenCV reads this when it is first imported (here it is imported lazily,
#: after this); a caller's own setting is kept.
MAX_IMAGE_PIXELS = 1 << 26
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

_LAZY = {
    "export_card": ("edge.export.api", "export_card"),
    "load": ("edge.runtimes", "load"),
    "load_program": ("edge.program", "load_program"),
    "validate": ("edge.val", "run_val"),
    "list_models": ("edge.models.registry", "list_models"),
    "Bundle": ("edge.bundle", "Bundle"),
    "IOSpec": ("edge.spec", "IOSpec"),
    "TensorSpec": ("edge.spec", "TensorSpec"),
    "EdgeError": ("edge.errors", "EdgeError"),
    "get_card": ("edge.models.registry", "get_card"),
    "models": ("edge.models", None),
    "ops": ("edge.ops", None),
    "stream": ("edge.stream", None),
}

__all__ = [*_LAZY, "__version__", "export"]

# `edge.export` is both a sub-package and the public function. Import the (light, torch-free)
# sub-package now and bind the function over it; a later `import edge.export.x` does not rebind it.
from edge.export.api import export  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from edge import models, ops, stream  # noqa: F401
    from edge.bundle import Bundle  # noqa: F401
    from edge.errors import EdgeError  # noqa: F401
    from edge.export.api import export_card  # noqa: F401
    from edge.models.registry import get_card, list_models  # noqa: F401
    from edge.program import load_program  # noqa: F401
    from edge.runtimes import load  # noqa: F401
    from edge.spec import IOSpec, TensorSpec  # noqa: F401
    from edge.val import run_val as validate  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'edge' has no attribute {name!r}")
    import importlib

    mod_name, attr = _LAZY[name]
    mod = importlib.import_module(mod_name)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value
