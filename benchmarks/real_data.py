"""Where the benchmarks find the real sensor samples: ``$EDGE_REAL_DATA`` (what the tests read too), else
``../shared/data/real`` beside the repository. One definition, so a machine whose data lives elsewhere sets
one variable instead of editing each script."""

from __future__ import annotations

import os
from pathlib import Path

REAL_DATA = Path(os.environ.get("EDGE_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                / "real"))  # as tests/conftest.py reads it
