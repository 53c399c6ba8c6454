"""What the backends' "does int8 pay here" rules share: the timing mode read from the environment and the
second, fresh timing a candidate must pass against the fp32 graph before an INT8 form keeps it.

Why a second timing: on a shared 2-core VM one set of interleaved rounds scatters by 5-10 % (the all-float
candidate of ONNX Runtime's rule, the fp32 computation itself, timed 7 % off the fp32 graph), so a candidate
that won one set of rounds by a few per cent has not shown it is faster. Used by
:mod:`edge.calibration.ort_pays` (which Convs ONNX Runtime's form quantizes) and
:mod:`edge.calibration.ov_pays` (which op types NNCF's form quantizes for OpenVINO).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.datasets import Feeds
from edge.errors import ExportError

#: the timing modes every rule takes: ``timed`` (default) measures on this CPU; ``all`` quantizes what the
#: scheme quantizes, untimed (a bundle that does not depend on the machine that built it)
CHOICES = ("timed", "all")
#: a candidate must beat the fp32 graph by this share in a second, fresh timing to be kept
CONFIRM_MARGIN = 0.03

#: (paths, io, feeds) -> median ms of one call of each path (inf: could not run)
Timer = Callable[[list[str], Any, Feeds], list[float]]


def timing_mode(env: str) -> str:
    """The rule's mode from the environment variable ``env`` (default ``timed``); any other value than
    :data:`CHOICES` is an ExportError in one line naming the variable."""
    mode = os.environ.get(env, "timed") or "timed"
    if mode not in CHOICES:
        raise ExportError(f"{env}={mode!r}: choose one of {', '.join(CHOICES)}")
    return mode


def confirm_faster(timer: Timer, fp32: str | Path, cand: str | Path, io: Any, feeds: Feeds) -> dict[str, Any]:
    """A candidate that won one set of timed rounds, timed again beside the fp32 graph: kept only if it is at
    least :data:`CONFIRM_MARGIN` faster there too (the record says both times)."""
    f, c = timer([str(fp32), str(cand)], io, feeds)
    return {"fp32_ms": round(float(f), 4), "ms": round(float(c), 4) if np.isfinite(c) else None,
            "kept": bool(c < (1 - CONFIRM_MARGIN) * f)}
