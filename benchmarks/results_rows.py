"""A benchmark's results file that rows are merged into: ``{"rows": [...], ...}`` where a measured row replaces
the row of the same key and every other row and key (hand-recorded decodings, experiments, diagnoses) stays.
Shared by the lane benchmark scripts, so none of them rewrites a file and drops what was recorded by hand."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge import jsonout

ROOT = Path(__file__).resolve().parents[1]


def checkpoint_name(ckpt: str) -> str:
    """The checkpoint as a results file names it: relative to the repository when inside it."""
    try:
        return str(Path(ckpt).resolve().relative_to(ROOT))
    except ValueError:
        return ckpt


def read_results(path: Path) -> dict[str, Any]:
    """The file's content, ``{}`` when absent; refused (one line) when it is not a results file of this kind, before
    any measuring is done."""
    kept = json.loads(path.read_text()) if path.is_file() else {}
    if not isinstance(kept, dict) or not isinstance(kept.get("rows", []), list):
        raise SystemExit(f"{path}: not a results file of this script (an object with a rows list)")
    return kept


def rounded_metric(m: dict[str, Any], value_digits: int = 4) -> dict[str, float]:
    """A lane metric's value, FP and FN as the results files record them (FP and FN to 4 digits)."""
    return {"value": round(float(m["value"]), value_digits), "fp": round(float(m["fp"]), 4),
            "fn": round(float(m["fn"]), 4)}


def measure(path: Path, checkpoints: Sequence[str], check: Callable[[str], dict[str, Any]],
            key: Callable[[dict[str, Any]], tuple[Any, ...]]) -> None:
    """``check`` of each checkpoint (none given: the shipped lane checkpoint) merged into the results file ``path``
    by :func:`write_rows`; a file of another kind is refused before any measuring."""
    from edge.models import get_card

    kept = read_results(path)
    rows = [check(c) for c in (checkpoints or [str(get_card("lane").default_checkpoint)])]
    write_rows(path, kept, rows, key)


def write_rows(path: Path, kept: dict[str, Any], rows: Sequence[dict[str, Any]],
               key: Callable[[dict[str, Any]], tuple[Any, ...]]) -> None:
    """``rows`` printed, and merged into ``kept`` (replacing the rows of the same ``key``), written atomically to
    ``path``."""
    from edge.files import atomic_write_text

    for r in rows:
        print(jsonout.dumps(r))
    new = {key(r) for r in rows}
    old = [r for r in kept.get("rows", []) if key(r) not in new]
    atomic_write_text(path, jsonout.dumps({**kept, "rows": [*old, *rows]}, indent=1) + "\n")
    print(f"wrote {path}")
