"""Checkpoints: ``{"format", "model", "config", "state_dict", "meta"}`` saved atomically.

Loaded with ``torch.load(weights_only=True)`` (no pickle code execution), then checked against the
model the config builds: wrong keys or shapes, a truncated file, or a checkpoint for another model are
one-line ModelErrors naming the file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, ModelError, first_line
from edge.files import atomic_write_bytes

FORMAT = "edge-checkpoint/1"


def save_checkpoint(path: str | os.PathLike[str], model_name: str, cfg: dict[str, Any], module: Any,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (tensors only + plain config/meta, so weights_only loads it)."""
    import torch

    buf = io.BytesIO()
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    torch.save({"format": FORMAT, "model": model_name, "config": cfg, "state_dict": state,
                "meta": meta or {}}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _no_deflate_bomb(p: Path) -> None:
    """Refuse a torch zip whose members declare far more than they store (:func:`edge.data.arrays.bomb_ratio`:
    torch writes its members stored, so they can be mapped), before torch inflates any of them: a 973 KB file
    took 1.3 GB of memory in torch.load."""
    import zipfile

    from edge.data.arrays import ZIP_ERRORS, bomb_ratio

    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelError(f"{p}: not a readable checkpoint (not a torch file, or truncated: {first_line(e, 120)})"
                         ) from None
    with zf:
        infos = zf.infolist()
        for info in infos:  # one member (behind stored padding the archive's own ratio stays low)
            if (ratio := bomb_ratio(info.file_size, info.compress_size)) is not None:
                raise ModelError(f"{p}: not a readable checkpoint (member {info.filename!r} inflates {ratio}:1 to "
                                 f"{info.file_size} bytes; torch writes its members uncompressed)")
        # and the archive as a whole: four 256 MB members at 1000:1 each passed the check above (1.2 GB from 1 MB)
        inflated = sum(i.file_size for i in infos)
        if (ratio := bomb_ratio(inflated, sum(i.compress_size for i in infos))) is not None:
            raise ModelError(f"{p}: not a readable checkpoint (its members inflate {ratio}:1 to {inflated} bytes; "
                             "torch writes its members uncompressed)")
        # each member against the CRC the archive stores (bounded by the checks above): torch's loader checks none,
        # and a checkpoint with flipped bytes inside a tensor trained on from wrong weights without a word (a review)
        bad = None
        try:
            for info in infos:
                if info.CRC == 0 and info.file_size:  # torch's set_crc32_options(False) writes 0: nothing to check
                    continue
                try:
                    with zf.open(info) as f:
                        while f.read(1 << 22):
                            pass
                except zipfile.BadZipFile as e:
                    if not str(e).startswith("Bad CRC-32"):  # a damaged header ("Bad magic number"): not a CRC
                        raise
                    bad = info.filename
                    break
        except (*ZIP_ERRORS, ValueError) as e:
            # a damaged deflate stream, an unknown compression method, a member flagged encrypted (RuntimeError,
            # which torch refused the same way before): one line, as a truncated file gets
            raise ModelError(f"{p}: not a readable checkpoint (truncated or corrupt: {type(e).__name__}: "
                             f"{first_line(e, 120)})") from None
    if bad is not None:
        raise ModelError(f"{p}: corrupt checkpoint (member {bad!r} does not match its CRC: the file was damaged after "
                         "it was written)")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and structurally validate a checkpoint (no model built)."""
    import torch

    from edge.quiet_streams import silenced

    p = Path(path)
    if p.is_dir():
        raise ModelError(f"{p}: is a folder, not a checkpoint file")
    if not p.is_file():
        raise ModelError(f"{p}: checkpoint not found")
    try:
        with p.open("rb") as f:
            head = f.read(2)
    except OSError as e:
        raise ModelError(f"{p}: cannot read the checkpoint ({e.strerror or e})") from None
    # a torch file is a zip archive (torch.save) or a pickle (protocol 2+ starts with 0x80): anything else (a
    # JSON record, a video) is refused here, since torch's weights-only loader calls every failure to unpickle
    # "weights only load failed", which would name Python objects a text file does not hold
    if head not in (b"PK",) and head[:1] != b"\x80":
        raise ModelError(f"{p}: not a readable checkpoint (not a torch file: "
                         f"{'it is empty' if not head else 'no zip archive or pickle at its start'})")
    import zipfile

    if head == b"PK" and not zipfile.is_zipfile(p):  # torch's loader called it "weights only load failed", which
        # then read as a file holding Python objects
        raise ModelError(f"{p}: not a readable checkpoint (not a torch file, or truncated: no complete zip archive)")
    if head == b"PK":
        _no_deflate_bomb(p)
    try:
        # torch warns about pickle protocols before refusing a file; silenced as the exporter's are, so that a
        # checkpoint read beside another thread's export leaves the process's warnings as they were
        with silenced((), warnings_off=True):
            ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated / non-torch files
        if "weights only load failed" in str(e).lower():
            raise ModelError(f"{p}: not a readable checkpoint (it holds Python objects beyond tensors and plain "
                             "data; refused without running any of it)") from None
        raise ModelError(f"{p}: not a readable checkpoint (not a torch file, or truncated: "
                         f"{type(e).__name__}: {first_line(e, 120, empty='no detail')})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ModelError(f"{p}: not an edge-deploy checkpoint (expected format '{FORMAT}')")
    for key, typ in (("model", str), ("config", dict), ("state_dict", dict)):
        if not isinstance(ck.get(key), typ):
            raise ModelError(f"{p}: checkpoint field '{key}' is missing or malformed")
    for key in ("config", "state_dict"):  # names: sorted, compared and written to JSON later
        if not all(isinstance(k, str) for k in ck[key]):
            raise ModelError(f"{p}: checkpoint field '{key}' has keys that are not strings")
    meta = ck.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise ModelError(f"{p}: checkpoint field 'meta' is malformed (an object with string keys)")
    import json

    try:  # it goes into the bundle's manifest: found now, not after the whole export ran
        json.dumps(meta)
    except (TypeError, ValueError, RecursionError) as e:
        raise ModelError(f"{p}: checkpoint field 'meta' holds what JSON cannot ({type(e).__name__}: "
                         f"{first_line(e, 120, empty='')})") from None
    return ck


def continues(cfg0: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """Whether a checkpoint written with config ``cfg0`` is of config ``cfg``: every key it has, with the same value
    (keys the card added since may be new: training gives their layers a fresh start, an export takes the
    card's ``config_added`` values, the model as trained)."""
    return set(cfg0) <= set(cfg) and all(cfg0[k] == cfg[k] for k in cfg0)


def load_model(path: str | os.PathLike[str], expect_model: str | None = None) -> tuple[Any, dict[str, Any], dict]:
    """Build the model a checkpoint describes and load its weights; returns (module, config, meta). Keys
    the card added after the checkpoint was written take the card's ``config_added`` values."""
    return model_from_checkpoint(read_checkpoint(path), path, expect_model)


def model_from_checkpoint(ck: dict[str, Any], path: str | os.PathLike[str], expect_model: str | None = None
                          ) -> tuple[Any, dict[str, Any], dict]:
    """:func:`load_model` of a checkpoint already read by :func:`read_checkpoint` (``path`` names it in
    errors), for callers that also need the config as written."""
    from edge.models.registry import get_card

    p = Path(path)
    if expect_model is not None and ck["model"] != expect_model:
        raise ModelError(f"{p}: checkpoint is for model '{ck['model']}', not '{expect_model}'")
    from edge.manifest_schema import check_config

    card = get_card(ck["model"])
    cfg = {**{k: v for k, v in card.config_added.items() if k not in ck["config"]}, **ck["config"]}
    try:  # the checks a bundle's config gets (so a checkpoint never exports into a bundle edge run refuses)
        check_config(cfg, card, str(p))
    except EdgeError as e:
        raise ModelError(str(e).replace("'model.config", "'config")) from None
    try:
        module = card.build(cfg)  # not card.make: its own wording would be nested inside this one
    except (EdgeError, ImportError, MemoryError):
        raise
    except Exception as e:  # a bad config can fail anywhere in a constructor (ZeroDivision, RuntimeError...)
        raise ModelError(f"{p}: checkpoint config does not build a '{ck['model']}' model "
                         f"({type(e).__name__}: {first_line(e, 120, empty='')})") from None
    want = module.state_dict()
    got = ck["state_dict"]
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    if missing or unexpected:
        raise ModelError(f"{p}: checkpoint keys do not match the model: missing {missing[:3]}"
                         f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                         f"{'...' if len(unexpected) > 3 else ''}")
    import torch

    for k, v in want.items():
        if not isinstance(got[k], torch.Tensor):
            raise ModelError(f"{p}: weight '{k}' is a {type(got[k]).__name__}, not a tensor")
        if tuple(got[k].shape) != tuple(v.shape):
            raise ModelError(f"{p}: weight '{k}' has shape {tuple(got[k].shape)}, model expects {tuple(v.shape)}")
        if got[k].is_floating_point() and not bool(torch.isfinite(got[k]).all()):
            # said here, naming the file: trained from, it read as "the loss became nan (a learning rate too
            # high?)", exported, as NaN outputs of the parity check
            raise ModelError(f"{p}: weight '{k}' holds NaN or infinite values")
    module.load_state_dict(got)
    module.eval()
    return module, cfg, dict(ck.get("meta", {}))
