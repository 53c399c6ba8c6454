"""Optional packages: which extra installs each, and one line for one that is missing or broken.

Why: torch, OpenCV, ONNX Runtime, OpenVINO, NNCF, TensorRT, the LiDAR decoders and matplotlib are imported
inside the functions that use them, so a thin install runs what it has; when a command reaches one that is
not there, the user gets the pip line that installs it, not a traceback (``edge.cli.main``), and a backend
whose import fails for another reason (a CUDA library missing under torch: an OSError) is a reason
``edge doctor`` lists, not a crash.
"""

from __future__ import annotations

from typing import Any

from edge.errors import first_line

#: top-level module -> the edge-deploy extra that installs it (pyproject's [project.optional-dependencies])
EXTRAS = {"torch": "export", "onnxscript": "export", "onnxslim": "export", "onnx": "export", "cv2": "video",
          "onnxruntime": "onnxruntime", "openvino": "openvino", "nncf": "openvino", "tensorrt": "tensorrt",
          "cuda": "tensorrt", "triton": "tensorrt", "pycuda": "jetson", "dpkt": "lidar",
          "velodyne_decoder": "lidar", "ouster": "lidar", "matplotlib": "dev"}
#: what pip calls the modules whose distribution name differs
DISTRIBUTIONS = {"cv2": "opencv-python-headless", "cuda": "cuda-python", "velodyne_decoder": "velodyne-decoder",
                 "ouster": "ouster-sdk"}


def missing(module: str) -> str:
    """'<module> is not installed (pip install ...)' for an optional package (its top-level name)."""
    top = module.split(".")[0]
    extra = EXTRAS.get(top)
    how = f"pip install 'edge-deploy[{extra}]'" if extra else f"pip install {DISTRIBUTIONS.get(top, top)}"
    name = f"{top} ({DISTRIBUTIONS[top]})" if top in DISTRIBUTIONS else top
    return f"{name} is not installed ({how})"


def absent(e: BaseException, top: str) -> bool:
    """Whether ``e`` says package ``top`` is not there: it cannot be found, or a ModuleNotFoundError names one of its
    own modules that cannot be found either (``cuda.bindings`` where another package provides the shared ``cuda``
    namespace: cuda-python is absent, not broken)."""
    if not installed(top):
        return True
    name = getattr(e, "name", None) or ""
    if not isinstance(e, ModuleNotFoundError) or name.split(".")[0] != top or name == top:
        return False
    import importlib.util

    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a parent that is not a package, a finder refusing it
        return True


def installed(module: str) -> bool:
    """Whether the top-level package of ``module`` can be found (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):  # a finder refusing it, a module whose __spec__ is None (blocked)
        return False


def import_failure(module: str, e: BaseException) -> str:
    """Why an import of (or from) ``module`` failed, in one line: not installed; installed but lacking what was
    imported from it (a name an older release lacks); or installed but broken (its own error: an OSError)."""
    top = module.split(".")[0]
    if isinstance(e, ImportError) and absent(e, top):
        return missing(top)
    # (an ImportError without a module name is a package failing to load, libGL missing under OpenCV: not "lacking")
    if isinstance(e, ImportError) and e.name and e.name.split(".")[0] == top:
        return (f"{top} is installed but lacks what this command needs ({type(e).__name__}: {first_line(e, 200)}; "
                "another release?)")
    return f"{module} is installed but cannot be imported ({type(e).__name__}: {first_line(e, 200)})"


#: the first cuda-python release with ``cuda.bindings`` (NVIDIA's 12.6.1 notes: ``cuda.cudart`` became
#: ``cuda.bindings.runtime``); the ``tensorrt`` extra asks for it
CUDA_PYTHON_BINDINGS = "12.6.1"


def _older(version: str, than: str) -> bool:
    """Whether release ``version`` is older than ``than``: their first four numbers compared in order (a local
    ``+...`` part left out); a version without a number is not called old."""
    import re

    def nums(v: str) -> list[int]:
        return [int(m) for m in re.findall(r"\d+", v.split("+")[0])[:4]]

    a, b = nums(version), nums(than)
    return bool(a) and a < b


def cuda_python_missing(e: BaseException) -> str:
    """Why ``cuda.bindings`` does not import, in one line: cuda-python absent (the pip line), a release older than
    :data:`CUDA_PYTHON_BINDINGS` (it has no ``cuda.bindings``: "pip install cuda-python" would say already
    satisfied), or installed but broken."""
    from importlib import metadata

    try:
        version = metadata.version("cuda-python")
    except metadata.PackageNotFoundError:
        return missing("cuda")
    if isinstance(e, ModuleNotFoundError) and (e.name or "").startswith("cuda") and _older(version,
                                                                                       CUDA_PYTHON_BINDINGS):
        return (f"cuda-python {version} has no cuda.bindings (it came with {CUDA_PYTHON_BINDINGS}): pip install -U "
                f"'cuda-python>={CUDA_PYTHON_BINDINGS}'")
    return f"cuda-python {version} is installed but cannot be imported ({type(e).__name__}: {first_line(e, 200)})"


def import_culprit(e: BaseException) -> str | None:
    """The optional package (a key of :data:`EXTRAS`) whose import raised ``e``: the first of its modules whose
    top-level code (a ``<module>`` frame: code that runs only when the module is imported) is on the traceback;
    None when ``e`` was not raised while importing one. (CPython drops importlib's own frames from such tracebacks.)

    Why: a package that is installed but does not load (OpenCV without libGL on a slim image, torch without its
    CUDA libraries, pycuda without a driver) raises an ImportError with no module name, or an OSError, from inside
    its own ``__init__``: the CLI printed a traceback, or the bare library message without the package's name."""
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>":
            top = str(frame.f_globals.get("__name__", "")).split(".")[0]
            if top in EXTRAS:
                return top
        tb = tb.tb_next
    return None


def opencv(needed_for: str = "") -> Any:
    """``cv2``, or a BackendUnavailable saying why not (the pip line, or the library it failed to load) and, given
    ``needed_for``, what needs it: a script preprocessing camera frames through the Python API on an image without
    OpenCV got a bare ModuleNotFoundError."""
    try:
        import cv2
    except ImportError as e:
        from edge.errors import BackendUnavailable

        raise BackendUnavailable(import_failure("cv2", e) + (f"; {needed_for} needs it" if needed_for else "")) \
            from None
    return cv2


def explain_import(e: BaseException) -> str | None:
    """One line for an ImportError (or a library's OSError) of an optional package: why it failed
    (:func:`import_failure`) and which of our functions needed it; None when ``e`` is not about one of
    :data:`EXTRAS` (our own bug, or a package we do not know). Why the function: on a thin image (no OpenCV)
    ``edge bench`` was told to install the video extra with no reason given (a family's synthetic frames were
    drawn with OpenCV), and an overlay that needed it was "postprocess failed: ModuleNotFoundError"."""
    top = (getattr(e, "name", None) or "").split(".")[0] if isinstance(e, ImportError) else ""
    if top not in EXTRAS:
        top = import_culprit(e) or ""  # installed, but its own import fails (cv2 without libGL): no e.name
    if top not in EXTRAS:
        return None
    return import_failure(top, e) + needed_by(e, top)


#: the methods of an import hook (a meta-path finder or loader that refuses a module): part of the machinery
_IMPORT_HOOKS = frozenset({"find_spec", "find_module", "create_module", "exec_module", "load_module"})


def _import_hook(frame: Any) -> bool:
    """Whether ``frame`` runs a method of an import hook (a finder on ``sys.meta_path`` or a loader), not a function
    that happens to share such a name."""
    import importlib.abc
    import sys

    if frame.f_code.co_name not in _IMPORT_HOOKS:
        return False
    me = frame.f_locals.get("self")
    if me is None:  # a plain function of that name (a user's `load_module`) imported it itself
        return False
    # a finder on the meta path, a loader, or an object a finder returned as one (duck-typed: it has exec_module)
    return any(me is h for h in sys.meta_path) or isinstance(me, importlib.abc.Loader) or \
        callable(getattr(me, "exec_module", None))


def needed_by(e: BaseException, package: str = "") -> str:
    """'; needed by edge.models.NAME.synthetic._render': the function whose import raised ``e`` (the innermost frame
    of the traceback before ``package``'s own modules and the import machinery: ours, or a user's sink or card,
    not the loop that called it), or "" when there is none."""
    where = ""
    tb = e.__traceback__
    while tb is not None:
        f = tb.tb_frame
        mod = str(f.f_globals.get("__name__", ""))
        if package and (mod == package or mod.startswith(package + ".")):
            break  # the package's own module code failing (installed, not loading): the importer is the one before
        if not mod.startswith("importlib") and mod != __name__ and not _import_hook(f):
            where = f"{mod}.{getattr(f.f_code, 'co_qualname', f.f_code.co_name)}"
        tb = tb.tb_next
    return f"; needed by {where}" if where else ""
