"""Image files from a folder: which ones, in what order, and whether each is whole.

OpenCV decodes a JPEG cut short without an error (libjpeg fills the rest with grey and prints
"Premature end of JPEG file" to stderr), so a truncated frame would silently calibrate a model or
feed the loop. :func:`image_problem` checks the container's end marker first (JPEG ``FFD9``, PNG
``IEND``), cheaply, by reading the file's last bytes.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from edge.errors import DataError

log = logging.getLogger("edge.data")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_PNG_END = b"IEND\xaeB`\x82"


def natural_key(p: Path) -> list[Any]:
    """``frame2.png`` before ``frame10.png``: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` in natural order (DataError when it is not a folder)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    it = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in it if p.suffix.lower() in IMAGE_EXT and p.is_file()]
    return sorted(files, key=lambda p: ([natural_key(q) for q in p.relative_to(root).parents], natural_key(p)))


def image_problem(path: str | os.PathLike[str]) -> str | None:
    """Why an image file is not whole (truncated JPEG/PNG, empty), or None. Other formats are not checked."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size == 0:
            return "empty file"
        with open(p, "rb") as f:
            head = f.read(8)
            f.seek(max(0, size - 64))
            tail = f.read().rstrip(b"\x00")  # some encoders pad the end with zeros
    except OSError as e:
        return f"cannot read ({e.strerror})"
    if head[:2] == b"\xff\xd8":
        return None if tail.endswith(b"\xff\xd9") else "truncated JPEG (no end-of-image marker)"
    if head == b"\x89PNG\r\n\x1a\n":
        return None if tail.endswith(_PNG_END) else "truncated PNG (no IEND chunk)"
    return None


def read_image(path: str | os.PathLike[str]) -> tuple[Any, str | None]:
    """(BGR image or None, why not): a truncated or undecodable file gives (None, reason)."""
    problem = image_problem(path)
    if problem is not None:
        return None, problem
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return (img, None) if img is not None else (None, "not a decodable image")


def chw_feed(img_bgr: Any, hw: tuple[int, int] | list[int], mean: float, std: float) -> Any:
    """A BGR uint8 [H, W, 3] camera frame -> float32 [3, h, w] RGB, ``(x / 255 - mean) / std``, resized to
    ``hw`` by area averaging (the input several families' image encoders take)."""
    import cv2
    import numpy as np

    h, w = hw
    if img_bgr.shape[:2] != (h, w):
        img_bgr = cv2.resize(img_bgr, (w, h), interpolation=cv2.INTER_AREA)
    return ((img_bgr[..., ::-1].astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)
