"""What the lane experiment scripts here share: a checkpoint (default: the shipped one) and a clip count."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def checkpoint_and_clips(doc: str, clips: int = 150) -> tuple[argparse.Namespace, Any, Any, dict[str, Any]]:
    """Parse ``[CHECKPOINT] [--clips N]`` (``doc``'s first line is the help) and load the lane model:
    ``(args, card, module, cfg)``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", type=Path, default=None)
    ap.add_argument("--clips", type=int, default=clips)
    args = ap.parse_args()

    from edge.models import get_card
    from edge.models.checkpoint import load_model

    card = get_card("lane")
    module, cfg, _ = load_model(args.checkpoint or card.default_checkpoint, expect_model="lane")
    return args, card, module, cfg
