"""Checkpoints: save/load round trip with the tiny lane config, and one-line ModelErrors for bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.errors import EdgeError, ModelError  # noqa: E402
from edge.models.checkpoint import FORMAT, load_model, read_checkpoint, save_checkpoint  # noqa: E402
from edge.models.lane.card import CONFIGS, example_full  # noqa: E402
from edge.models.registry import get_card  # noqa: E402

CFG = CONFIGS["tiny"]


@pytest.fixture(scope="module")
def tiny_module() -> Any:
    torch.manual_seed(123)
    return get_card("lane").build(dict(CFG)).eval()


@pytest.fixture(scope="module")
def ckpt_file(tmp_path_factory: pytest.TempPathFactory, tiny_module: Any) -> Path:
    p = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(p, "lane", dict(CFG), tiny_module, {"steps": 3, "note": "test"})
    return p


def _raw(ckpt_file: Path) -> dict[str, Any]:
    return torch.load(ckpt_file, map_location="cpu", weights_only=True)


def _expect_error(path: Path, pattern: str | None = None, **kwargs: Any) -> ModelError:
    with pytest.raises(ModelError) as ei:
        load_model(path, **kwargs)
    msg = str(ei.value)
    assert str(path) in msg, msg
    assert "\n" not in msg
    if pattern is not None:
        import re

        assert re.search(pattern, msg), msg
    return ei.value


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_bitwise(ckpt_file: Path, tiny_module: Any) -> None:
    module, cfg, meta = load_model(ckpt_file, expect_model="lane")
    assert cfg == CFG
    assert meta == {"steps": 3, "note": "test"}
    assert not module.training
    assert module is not tiny_module
    x = torch.from_numpy(example_full(CFG, 1, seed=5)["clip"])
    with torch.no_grad():
        ref = tiny_module(x)
        got = module(x)
    assert len(ref) == len(got) == 2
    for r, g in zip(ref, got):
        assert r.shape == g.shape
        assert torch.equal(r, g)
    for k, v in tiny_module.state_dict().items():
        assert torch.equal(v, module.state_dict()[k]), k


def test_checkpoint_structure(ckpt_file: Path) -> None:
    ck = read_checkpoint(ckpt_file)
    assert ck["format"] == FORMAT
    assert ck["model"] == "lane"
    assert ck["config"] == CFG
    assert all(isinstance(v, torch.Tensor) for v in ck["state_dict"].values())
    # written atomically: no hidden temp file beside it
    assert [p.name for p in ckpt_file.parent.iterdir()] == [ckpt_file.name]


def test_different_weights_differ(ckpt_file: Path, tiny_module: Any, tmp_path: Path) -> None:
    """Guard for the bitwise test: a different init must give different outputs."""
    torch.manual_seed(999)
    other = get_card("lane").build(dict(CFG)).eval()
    p = save_checkpoint(tmp_path / "other.pt", "lane", dict(CFG), other)
    module, _, _ = load_model(p)
    x = torch.from_numpy(example_full(CFG, 1, seed=5)["clip"])
    with torch.no_grad():
        assert not torch.equal(module(x)[0], tiny_module(x)[0])


# ------------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "missing.pt", "not found")


def test_folder_is_not_a_checkpoint(tmp_path: Path) -> None:
    _expect_error(tmp_path, "is a folder, not a checkpoint file")  # not "not found": it is there


def test_truncated_file(ckpt_file: Path, tmp_path: Path) -> None:
    data = ckpt_file.read_bytes()
    p = tmp_path / "half.pt"
    p.write_bytes(data[: len(data) // 2])
    _expect_error(p, "not a readable checkpoint")


def test_flipped_bytes_inside_a_tensor_are_refused(ckpt_file: Path, tmp_path: Path) -> None:
    """A review: bytes flipped inside a tensor member loaded (torch checks no CRC) and `edge train --init` trained on
    from wrong weights without a word; the archive's own CRC shows the damage."""
    import zipfile

    with zipfile.ZipFile(ckpt_file) as zf:
        biggest = max(zf.infolist(), key=lambda i: i.file_size)
    data = bytearray(ckpt_file.read_bytes())
    off = biggest.header_offset  # the local header's own name and extra lengths (torch pads with the extra field)
    start = off + 30 + int.from_bytes(data[off + 26:off + 28], "little") + int.from_bytes(data[off + 28:off + 30],
                                                                                          "little")
    for i in range(start, start + min(64, biggest.file_size)):
        data[i] ^= 0xFF
    p = tmp_path / "flip.pt"
    p.write_bytes(bytes(data))
    _expect_error(p, "corrupt checkpoint .* does not match its CRC")


def test_a_checkpoint_saved_without_crcs_loads(ckpt_file: Path, tmp_path: Path) -> None:
    """The review of the CRC check: torch.serialization.set_crc32_options(False) writes 0 for every member's CRC, a
    file torch loads; it was refused as damaged."""
    import zipfile

    import torch

    data = torch.load(ckpt_file, weights_only=True)
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(data, tmp_path / "nocrc.pt")
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(tmp_path / "nocrc.pt") as zf:
        assert {i.CRC for i in zf.infolist() if i.file_size} == {0}
    from edge.models.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "nocrc.pt")["model"] == data["model"]


def test_a_damaged_compressed_member_is_one_line(tmp_path: Path) -> None:
    """The review of the CRC check: a deflate stream it could not inflate (a damaged compressed .npz given as a
    checkpoint) escaped as zlib.error, and an unknown compression method as NotImplementedError."""
    import zipfile

    np.savez_compressed(tmp_path / "w.npz", a=np.random.default_rng(0).random(100_000))
    data = bytearray((tmp_path / "w.npz").read_bytes())
    off = zipfile.ZipFile(tmp_path / "w.npz").infolist()[0].header_offset
    start = off + 30 + int.from_bytes(data[off + 26:off + 28], "little") + int.from_bytes(data[off + 28:off + 30],
                                                                                          "little")
    data[start] = 0x07  # an invalid deflate block type
    p = tmp_path / "bad.npz"
    p.write_bytes(bytes(data))
    _expect_error(p, "not a readable checkpoint .*error")



def test_a_member_flagged_encrypted_or_a_damaged_header_is_one_line(ckpt_file: Path, tmp_path: Path) -> None:
    """The review of the CRC check: a member flagged encrypted escaped as zipfile's RuntimeError (torch had refused it
    in one line), and a damaged local header was called a CRC mismatch."""
    data = bytearray(ckpt_file.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 1  # the encrypted bit of the first member's flags
    p = tmp_path / "encrypted.pt"
    p.write_bytes(bytes(data))
    _expect_error(p, "not a readable checkpoint .*encrypted")
    data = bytearray(ckpt_file.read_bytes())
    data[0:4] = b"XXXX"  # the first member's local header signature
    p = tmp_path / "header.pt"
    p.write_bytes(bytes(data))
    err = _expect_error(p, "not a readable checkpoint")
    assert "CRC" not in str(err)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    _expect_error(p)


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "random.pt"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_error(p, "not a readable checkpoint")


@pytest.mark.parametrize("content", [b'{"model": "lane", "steps": 3000}\n', b"\x00\x00\x00\x20ftypisom" + bytes(64),
                                     b""])
def test_a_file_that_is_no_torch_file_is_said_so(tmp_path: Path, content: bytes) -> None:
    """A training record (JSON), a video or an empty file given as the checkpoint: "not a torch file", not the
    weights-only loader's refusal of Python objects such a file does not hold."""
    p = tmp_path / "lane.json"
    p.write_bytes(content)
    with pytest.raises(ModelError) as e:
        read_checkpoint(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: not a readable checkpoint (not a torch file") and "Python objects" not in msg, msg
    assert ("it is empty" in msg) == (not content)


def test_plain_torch_dict_is_not_our_format(tmp_path: Path, tiny_module: Any) -> None:
    p = tmp_path / "plain.pt"
    torch.save({"state_dict": tiny_module.state_dict()}, p)
    _expect_error(p, "not an edge-deploy checkpoint")
    p2 = tmp_path / "bare_state_dict.pt"
    torch.save(tiny_module.state_dict(), p2)
    _expect_error(p2, "not an edge-deploy checkpoint")
    p3 = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), p3)
    _expect_error(p3, "not an edge-deploy checkpoint")


@pytest.mark.parametrize("field", ["model", "config", "state_dict"])
def test_malformed_field(ckpt_file: Path, tmp_path: Path, field: str) -> None:
    ck = _raw(ckpt_file)
    ck[field] = 42
    p = tmp_path / "bad_field.pt"
    torch.save(ck, p)
    _expect_error(p, f"'{field}'")


@pytest.mark.parametrize("change, says", [
    (lambda ck: ck.__setitem__("meta", "ab"), "'meta' is malformed"),
    (lambda ck: ck.__setitem__("meta", {1: "x"}), "'meta' is malformed"),
    (lambda ck: ck["meta"].__setitem__("t", torch.zeros(2)), "'meta' holds what JSON cannot"),  # found at load
    (lambda ck: ck["config"].__setitem__(1, 2), "'config' has keys that are not strings"),
    (lambda ck: ck["state_dict"].__setitem__(7, torch.zeros(1)), "'state_dict' has keys that are not strings"),
])
def test_fields_a_bundle_could_not_hold(ckpt_file: Path, tmp_path: Path, change: Any, says: str) -> None:
    """Keys that are not strings (sorted beside strings: TypeError) and meta JSON cannot hold (it goes into
    the manifest after the whole export) are one line when the checkpoint is read."""
    ck = _raw(ckpt_file)
    change(ck)
    p = tmp_path / "bad.pt"
    torch.save(ck, p)
    with pytest.raises(ModelError, match=says):
        read_checkpoint(p)


def test_missing_key(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    dropped = sorted(ck["state_dict"])[0]
    del ck["state_dict"][dropped]
    p = tmp_path / "missing_key.pt"
    torch.save(ck, p)
    _expect_error(p, f"missing.*{dropped}")


def test_unexpected_key(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    ck["state_dict"]["bogus.weight"] = torch.zeros(2)
    p = tmp_path / "extra_key.pt"
    torch.save(ck, p)
    _expect_error(p, "unexpected.*bogus.weight")


def test_wrong_shape(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    key = next(k for k, v in ck["state_dict"].items() if v.ndim == 4)
    want = tuple(ck["state_dict"][key].shape)
    ck["state_dict"][key] = torch.zeros(want[0] + 1, *want[1:])
    p = tmp_path / "wrong_shape.pt"
    torch.save(ck, p)
    _expect_error(p, f"'{key}'.*shape")


def test_state_dict_value_not_a_tensor(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    key = sorted(ck["state_dict"])[0]
    ck["state_dict"][key] = 3
    p = tmp_path / "not_tensor.pt"
    torch.save(ck, p)
    _expect_error(p, key)


def test_config_missing_key(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    del ck["config"]["channels"]
    p = tmp_path / "cfg_missing.pt"
    torch.save(ck, p)
    _expect_error(p, "config")


@pytest.mark.parametrize("bad", [{"heads": 0}, {"dim": -1}, {"channels": "abc"}])
def test_config_that_does_not_build(ckpt_file: Path, tmp_path: Path, bad: dict[str, Any]) -> None:
    ck = _raw(ckpt_file)
    ck["config"].update(bad)
    p = tmp_path / "cfg_bad.pt"
    torch.save(ck, p)
    _expect_error(p, "config")


@pytest.mark.parametrize(("bad", "field"), [({"row_anchors": []}, "row_anchors"), ({"bogus": 1}, "bogus"),
                                            ({"realistic_mix": "x"}, "realistic_mix"), ({"grid": 0}, "grid")])
def test_config_checked_like_a_bundles(ckpt_file: Path, tmp_path: Path, bad: dict[str, Any], field: str) -> None:
    """A checkpoint's config gets the checks a bundle's does, naming the file: before, an empty anchor list
    crashed the export in torch, and an unknown key or a string mix exported a bundle `edge run` refused."""
    ck = _raw(ckpt_file)
    ck["config"].update(bad)
    p = tmp_path / "cfg.pt"
    torch.save(ck, p)
    err = _expect_error(p, field)
    assert "'config." in str(err) or "does not know" in str(err)


def test_pickled_code_is_refused_in_one_clear_line(tmp_path: Path) -> None:
    """A pickle with objects beyond tensors: refused, nothing run, no torch warning, a full sentence."""
    import pickle
    import warnings

    p = tmp_path / "obj.pt"
    p.write_bytes(pickle.dumps({"format": FORMAT, "obj": complex(1, 2)}, protocol=4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a torch UserWarning here would be printed above the one-line error
        err = _expect_error(p, "refused without running any of it")
    assert "Re-running" not in str(err)


def test_checkpoint_for_unknown_model(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    ck["model"] = "radar"
    p = tmp_path / "radar.pt"
    torch.save(ck, p)
    with pytest.raises(ModelError, match=r"radar"):
        load_model(p)


def test_wrong_model_name(ckpt_file: Path) -> None:
    _expect_error(ckpt_file, "'lane', not 'radar'", expect_model="radar")
    load_model(ckpt_file, expect_model="lane")  # the right name still loads


# ------------------------------------------------------------------------------------------ weights_only

def _side_effect(path: str) -> dict[str, Any]:
    """Would run during unpickling if the loader executed arbitrary pickled code."""
    Path(path).write_text("executed")
    return {}


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _side_effect, (self.marker,)


class Plain:
    """An ordinary custom class instance (no __reduce__ tricks)."""

    def __init__(self) -> None:
        self.x = 1


def test_pickled_code_is_not_executed(ckpt_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ck = _raw(ckpt_file)
    ck["meta"] = {"evil": Payload(marker)}
    p = tmp_path / "evil.pt"
    torch.save(ck, p)
    assert not marker.exists()
    _expect_error(p, "not a readable checkpoint")
    assert not marker.exists(), "torch.load executed pickled code: weights_only is not in effect"


def test_custom_class_instance_rejected(ckpt_file: Path, tmp_path: Path) -> None:
    ck = _raw(ckpt_file)
    ck["meta"] = {"obj": Plain()}
    p = tmp_path / "custom.pt"
    torch.save(ck, p)
    _expect_error(p, "not a readable checkpoint")


def test_model_error_is_user_facing() -> None:
    assert issubclass(ModelError, EdgeError)
    assert ModelError.exit_code == 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_weight_that_is_not_finite_is_named(ckpt_file: Path, tmp_path: Path, bad: float) -> None:
    """Trained from (`edge train --init`), such a checkpoint read as "the loss became nan (a learning rate too
    high?)"; exported, as NaN outputs of the parity check. Now the file and the weight are named at load."""
    ck = _raw(ckpt_file)
    name = next(k for k, v in ck["state_dict"].items() if v.is_floating_point())
    ck["state_dict"][name].view(-1)[0] = bad
    p = tmp_path / "nan.pt"
    torch.save(ck, p)
    _expect_error(p, f"weight '{name}' holds NaN or infinite values")
