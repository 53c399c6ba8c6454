"""JSON that every parser reads: non-finite numbers become null.

Python's ``json.dumps`` writes NaN and Infinity as bare words, which strict parsers (JavaScript's
``JSON.parse``, jq, most non-Python readers of a run's summary or JSONL) reject: a segmentation metric
over a file without one of its classes wrote ``"iou": {"echo": NaN}`` (an IoU of 0/0) and made the whole
summary unreadable there. Every file and line the commands write for others goes through :func:`dumps`; the common case
(nothing non-finite) costs one ``json.dumps``.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps(obj, **kw)`` with NaN / +-inf written as ``null``."""
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        return json.dumps(finite(obj), allow_nan=False, **kw)


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (also numpy's) replaced by None, in dicts, lists and tuples."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float) or type(obj).__name__ in ("float16", "float32", "float64"):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj
