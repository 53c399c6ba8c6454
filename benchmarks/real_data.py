"""Where the benchmarks find the real sensor samples: ``$EDGE_REAL_DATA`` (what the tests read too), else
``../shared/data/real`` beside the repository. One definition, so a machine whose data lives elsewhere sets
one variable instead of editing each script."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REAL_DATA = Path(os.environ.get("EDGE_REAL_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                / "real"))  # as tests/conftest.py reads it


def need_real(path: Path, what: str, without: str = "--synthetic-only") -> Path:
    """``path`` when it exists; else the script's one-line error (exit 2) naming it. A benchmark whose table has
    real-data rows must not write its results file without them (it overwrote the committed one with half a
    report when the data was elsewhere); ``without``: the script's option that leaves those rows out."""
    if not path.exists():
        print(f"error: {what} not found at {path} (set EDGE_REAL_DATA to the real-data folder, or pass "
              f"{without}); nothing was written", file=sys.stderr)
        raise SystemExit(2)
    return path


def add_synthetic_only(ap: argparse.ArgumentParser) -> None:
    """The ``--synthetic-only`` flag of a script with real-data rows (:func:`need_real`)."""
    ap.add_argument("--synthetic-only", action="store_true",
                    help="leave out the real-data rows (without it, missing real data is an error)")
