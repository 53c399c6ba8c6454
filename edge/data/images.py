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
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from edge.errors import DataError

log = logging.getLogger("edge.data")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_PNG_END = b"IEND\xaeB`\x82"


def natural_key(p: Path) -> list[Any]:
    """``frame2.png`` before ``frame10.png``: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _walk(root: Path, unread: list[OSError]) -> Iterator[Path]:
    """Every entry under ``root`` but hidden folders' (as ``rglob`` lists them, links to folders not followed); the
    sub-folders this user may not read are added to ``unread`` (``rglob`` passed over them without a word)."""
    for folder, subfolders, names in os.walk(root, onerror=unread.append):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        yield from (Path(folder) / n for n in (*subfolders, *names))


#: the odd entries already said, by folder (a warning per folder, not per listing)
_SAID: set[tuple[str, int, str]] = set()


def list_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` in natural order (DataError when it is not a folder)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    from edge.files import list_problem

    if (why := list_problem(root)) is not None:  # said here, not as "no images"
        raise DataError(f"{root}: {why}")
    unread: list[OSError] = []
    it = _walk(root, unread) if recursive else root.iterdir()
    # hidden files (and, listed recursively, what hidden folders hold) are no frames: macOS leaves a "._NAME.png" of
    # metadata beside each file on a non-Mac drive
    # a link whose target is gone is listed (read_image names it, the reader counts it), never dropped unsaid
    named = [p for p in it if named_as_image(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    files: list[Path] = []
    odd: list[Path] = []  # neither a file nor a folder: a FIFO, a socket, a device
    for p in named:  # one stat for a regular file, as before the odd ones were looked for
        if p.is_file() or (p.is_symlink() and not p.exists()):
            files.append(p)
        elif p.exists() and not p.is_dir():
            odd.append(p)
    if odd and (key := (str(root), len(odd), str(odd[0]))) not in _SAID:  # once: a source lists its folder twice
        # a FIFO named as an image was dropped unsaid (opening one blocks until a writer comes: never read)
        _SAID.add(key)
        more = f" and {len(odd) - 1} more" if len(odd) > 1 else ""
        log.warning("%s%s: not a regular file (a FIFO, socket or device); not read", odd[0], more)
    if unread:  # a calibration folder lost their images without a word, or was "no images" (a review as a user who
        # is not root): refused when nothing else is there, else said (a drive's root has its lost+found)
        said = f"{unread[0].filename}: cannot read ({unread[0].strerror})"
        if not files:
            raise DataError(said)
        more = f" and {len(unread) - 1} more folder(s)" if len(unread) > 1 else ""
        log.warning("%s%s; the images in it (if any) are not used", said, more)
    return sorted(files, key=lambda p: ([natural_key(q) for q in p.relative_to(root).parents], natural_key(p)))


#: the first bytes of the formats in IMAGE_EXT (JPEG, PNG, BMP, TIFF both byte orders, WebP's RIFF container)
_SIGNATURES = (b"\xff\xd8", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


#: the formats ``looks_like_image`` knows, for messages about a file that starts like none of them
IMAGE_FORMATS = "a JPEG, PNG, BMP, TIFF or WebP file"


def named_as_image(path: str | os.PathLike[str]) -> bool:
    """Whether the file's name has an image extension (:data:`IMAGE_EXT`)."""
    return Path(path).suffix.lower() in IMAGE_EXT


def looks_like_image(path: str | os.PathLike[str]) -> bool:
    """Whether a file starts like one of the image formats read here (a video renamed ``.jpg`` does not: its reader
    is the video one); an empty or unreadable file counts as an image, so the image reader names what is wrong."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return True
    if not head:
        return True
    return head.startswith(_SIGNATURES[:-1]) or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")


def image_problem(path: str | os.PathLike[str]) -> str | None:
    """Why an image file is not whole (truncated JPEG/PNG, empty), or None. Other formats are not checked."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        return f"broken symbolic link (its target {os.readlink(p)} is missing)"
    try:
        size = p.stat().st_size
        if size == 0:
            return "empty file"
        with open(p, "rb") as f:
            head = f.read(24)  # the signature; for a PNG also its IHDR's width and height (bytes 16-24)
            f.seek(max(0, size - 64))
            tail = f.read().rstrip(b"\x00")  # some encoders pad the end with zeros
    except OSError as e:
        return f"cannot read ({e.strerror})"
    if head[:2] == b"\xff\xd8":
        if tail.endswith(b"\xff\xd9") or _jpeg_whole(p):
            return None
        return "truncated JPEG (no end-of-image marker)"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        if not tail.endswith(_PNG_END):
            return "truncated PNG (no IEND chunk)"
        if len(head) == 24:  # width, height: the first chunk's first 8 bytes, big-endian
            w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if w * h > (limit := max_pixels()):
                return f"declares {w}x{h} pixels, more than the {limit} an image may have"
    return None


def _jpeg_whole(p: Path) -> bool:
    """Whether a JPEG whose file does not end in its end-of-image marker still holds a whole image: its header
    segments walked by their lengths to the first scan (so an EXIF thumbnail's own markers are stepped over), then
    an end-of-image marker after it (inside entropy-coded data an 0xFF byte is always followed by 0x00 or a restart
    marker, so 0xFFD9 there is the end). What follows it is a phone's addition: a motion photo's MP4, Samsung's
    SEFH/SEFT trailer; such files decode whole and were refused as truncated."""
    try:
        data = p.read_bytes() if p.stat().st_size <= 256 << 20 else b""
    except OSError:
        return False
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False  # not a marker where the previous segment's length said one starts
        m = data[i + 1]
        if m == 0xFF:  # fill byte before a marker
            i += 1
        elif m == 0xDA:  # the first scan: the image's end marker must follow it
            return data.find(b"\xff\xd9", i + 2) >= 0
        elif m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
            i += 2
        elif m == 0xD9:
            return False  # an end before any scan: no image
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


def max_pixels() -> int:
    """The decoding limit OpenCV was given (``edge.MAX_IMAGE_PIXELS`` unless the caller set its own): images' and,
    checked from their declared size when opened, video frames'."""
    from edge import MAX_IMAGE_PIXELS

    try:
        return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS))
    except ValueError:
        return MAX_IMAGE_PIXELS


#: what a decoder says when image data is missing or damaged (a JPEG cut short and closed with an end marker
#: decodes "successfully", its missing part filled grey): such a frame is refused, not used. Not libjpeg's
#: "N extraneous bytes before marker", which some cameras' whole files give
DAMAGED = re.compile(r"^(libpng error|Premature end of JPEG|Corrupt JPEG data: (?!\d+ extraneous bytes))")


def read_image(path: str | os.PathLike[str]) -> tuple[Any, str | None]:
    """(BGR image or None, why not): a truncated or undecodable file gives (None, reason)."""
    from edge.files import utf8_name_problem

    problem = image_problem(path) or utf8_name_problem(path)  # as imread is given it
    if problem is not None:
        return None, problem
    from edge.deps import opencv
    from edge.native_stderr import caught

    cv2 = opencv("decoding image files")

    big = False
    with caught() as said:  # libpng / libjpeg / OpenCV print to stderr themselves: said here instead
        try:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error:  # OpenCV 5 raises for an image over its pixel limit (4 returned None)
            img, big = None, True
    if big:
        return None, (f"too large to decode (over the {max_pixels()}-pixel limit, edge.MAX_IMAGE_PIXELS, that guards "
                      "against decompression bombs; set OPENCV_IO_MAX_IMAGE_PIXELS higher to read it) or undecodable")
    damaged = [ln.strip() for ln in said if DAMAGED.search(ln)]
    if img is not None and not damaged:  # a harmless warning (an sRGB profile libpng dislikes) is no refusal
        return img, None
    if img is None:  # libpng's or libjpeg's reason, not OpenCV's log line about the call that failed
        why = [ln.strip() for ln in said if not ln.lstrip().startswith(("[", "OpenCV(", ">"))]
        # OpenCV's own check, on "> "-quoted lines (a TIFF with an EXIF orientation it cannot apply): one reason
        quoted = " ".join(ln.lstrip("> ").strip() for ln in said if ln.startswith(">"))
        why = why or ([f"OpenCV: {quoted}"] if quoted else [])
        return None, f"not a decodable image ({why[0]})" if why else "not a decodable image"
    return None, f"damaged image data ({damaged[0]})"


def resize_filter(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    """OpenCV's filter for resizing a frame of ``src_hw`` to ``dst_hw``: area averaging where it shrinks (no
    aliasing), bilinear where either side grows. Why: area "averaging" of an enlarged frame copies pixels (2x:
    blocks of 2x2), while the engines' fronts interpolate bilinearly; on real 256x128 road frames enlarged twice a
    shipped model's outputs from the two agreed within its metric's tolerance on 85 % of points (99.7 % now)."""
    from edge.deps import opencv

    cv2 = opencv("resizing camera frames to the model's input")
    grows = dst_hw[0] > src_hw[0] or dst_hw[1] > src_hw[1]
    return cv2.INTER_LINEAR if grows else cv2.INTER_AREA


def chw_feed(img_bgr: Any, hw: tuple[int, int] | list[int], mean: Any, std: Any) -> Any:
    """A BGR uint8 [H, W, 3] camera frame -> float32 [3, h, w] RGB, ``(x / 255 - mean) / std``, resized to
    ``hw`` (:func:`resize_filter`: area averaging, bilinear where the frame grows; the input several families'
    image encoders take). ``mean`` / ``std``: one
    number or one per RGB channel.

    Per channel, in place: the same float32 operations as ``((bgr[..., ::-1] / 255 - mean) / std)`` in HWC
    then transposed (bitwise equal, tested), at ~1/10 of the time: this runs on every frame.
    """
    import numpy as np

    if not isinstance(img_bgr, np.ndarray):  # OpenCV's "Overload resolution failed" otherwise
        raise DataError(f"expected an HxWx3 image array, got {type(img_bgr).__name__}")
    if img_bgr.ndim != 3 or img_bgr.shape[2] != 3 or 0 in img_bgr.shape:  # empty: OpenCV's resize assertion
        raise DataError(f"expected an HxWx3 image, got shape {tuple(img_bgr.shape)}")
    if img_bgr.dtype != np.uint8:  # a float image in [0, 1] was taken as near black; int64 was OpenCV's assertion
        raise DataError(f"expected a uint8 BGR image (a camera frame, 0..255), got {img_bgr.dtype}")
    h, w = hw
    if img_bgr.shape[:2] != (h, w):  # (a frame already at the model's size needs no OpenCV: a thin image runs it)
        from edge.deps import opencv

        cv2 = opencv("resizing camera frames to the model's input")
        img_bgr = cv2.resize(img_bgr, (w, h), interpolation=resize_filter(img_bgr.shape[:2], (h, w)))
    m = np.broadcast_to(np.asarray(mean, np.float32), (3,))
    sd = np.broadcast_to(np.asarray(std, np.float32), (3,))
    f = img_bgr.astype(np.float32)
    out = np.empty((3, h, w), np.float32)
    for c in range(3):
        np.multiply(f[..., 2 - c], np.float32(1.0 / 255.0), out=out[c])
        out[c] -= m[c]
        out[c] /= sd[c]
    return out


#: the image inputs whose camera bytes go to the engine as they are (``edge run --preprocess engine``)
_RAW: ContextVar[frozenset[Any]] = ContextVar("edge_raw_images", default=frozenset())


@contextmanager
def raw_images(specs: Any) -> Iterator[None]:
    """Inside this block :func:`image_feed` returns the camera frame itself for these image inputs
    (``edge.models.contract.ImageInput``): their engines resize and normalise it."""
    token = _RAW.set(frozenset(specs))
    try:
        yield
    finally:
        _RAW.reset(token)


def image_feed(img_bgr: Any, spec: Any) -> Any:
    """What a family's ``preprocess`` puts into an image input (``spec``: its ``ImageInput``).

    Normally the numpy reference, float32 [3, h, w] (:func:`chw_feed`); under :func:`raw_images` for
    this input, the camera frame as it came, uint8 [H, W, 3] BGR (contiguous), which the engine's own
    preprocessing takes. Either way the caller adds the batch axis.
    """
    if spec in _RAW.get():
        import numpy as np

        if (not isinstance(img_bgr, np.ndarray) or img_bgr.ndim != 3 or img_bgr.shape[2] != 3
                or img_bgr.dtype != np.uint8 or 0 in img_bgr.shape):
            raise DataError(f"input '{spec.input}': the engine takes uint8 HxWx3 camera frames, got "
                            f"{getattr(img_bgr, 'dtype', type(img_bgr).__name__)} "
                            f"{tuple(getattr(img_bgr, 'shape', ()))}")
        return np.ascontiguousarray(img_bgr)
    return chw_feed(img_bgr, spec.size_hw, spec.mean, spec.std)
