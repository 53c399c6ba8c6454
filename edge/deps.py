"""Optional packages: which extra installs each, and one line for one that is missing or broken.

Why: torch, OpenCV, ONNX Runtime, OpenVINO, NNCF, TensorRT, the LiDAR decoders and matplotlib are imported
inside the functions that use them, so a thin install runs what it has; when a command reaches one that is
not there, the user gets the pip line that installs it, not a traceback (``edge.cli.main``), and a backend
whose import fails for another reason (a CUDA library missing under torch: an OSError) is a reason
``edge doctor`` lists, not a crash.
"""

from __future__ import annotations

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
    if isinstance(e, ImportError) and (e.name or top).split(".")[0] == top:
        if not installed(top):
            return missing(top)
        return (f"{top} is installed but lacks what this command needs ({type(e).__name__}: {first_line(e, 200)}; "
                "another release?)")
    return f"{module} is installed but cannot be imported ({type(e).__name__}: {first_line(e, 200)})"
