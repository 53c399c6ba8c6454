"""What a user who is not root meets: another user's file in a sticky folder, a previous bundle this user cannot
remove, files and folders this user may not read. Found by a review run as `nobody` (every other test runs as
root here, whom permissions do not stop); faked here by the user id and the refusals the kernel would give, so the
tests hold as root and as any user."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from edge.errors import BundleError, DataError, EdgeError


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch) -> int:
    """This process as a user (4242) that owns none of the test's files or folders."""
    import edge.files

    monkeypatch.setattr(edge.files.os, "geteuid", lambda: 4242)
    return 4242


def _sticky(folder: Path) -> Path:
    folder.mkdir()
    folder.chmod(0o1777)
    assert folder.stat().st_mode & stat.S_ISVTX
    return folder


def test_another_users_file_in_a_sticky_folder_is_refused_before_the_work(tmp_path: Path, not_root: int) -> None:
    """`edge train --out /tmp/m.pt` over another user's m.json trained, replaced m.pt, then failed on the record
    (the new weights beside the old record); `edge run`, `edge val`, `edge calibrate` and `edge bench` failed after
    all their work. Refused by every output check now."""
    from edge.files import check_replaceable, check_target, check_writable, probe_write, replace_problem

    st = _sticky(tmp_path / "tmp")
    (st / "m.json").write_text("{}")
    (st / "b").mkdir()
    (st / "b" / "manifest.json").write_text("{}")
    assert "owned by another user" in (replace_problem(st / "m.json") or "")
    assert replace_problem(st / "new.json") is None  # a new name is this user's to make
    with pytest.raises(DataError, match=r"m\.json: exists, owned by another user .* in a sticky folder .*\(--out\)"):
        check_target(st / "m.json", "--out")
    with pytest.raises(PermissionError, match="sticky folder"):
        probe_write(st / "m.json")
    with pytest.raises(DataError, match=r"m\.json: cannot write there \(exists, owned by another user"):
        check_writable(st / "m.json", "--out")
    with pytest.raises(EdgeError, match=r"b: exists, owned by another user .*nothing was replaced"):
        check_replaceable(st / "b", lambda _p: True, what="bundle")
    plain = tmp_path / "plain"  # outside a sticky folder, the folder's write permission decides (probe_write)
    plain.mkdir()
    (plain / "m.json").write_text("{}")
    assert replace_problem(plain / "m.json") is None


def test_a_previous_bundle_this_user_cannot_empty_is_refused(tmp_path: Path, not_root: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An export over another user's bundle moved it aside, could not delete it, and left `.NAME.old-<pid>`
    hidden beside the new one with exit 0. Refused before the export now."""
    import edge.files
    from edge.files import check_replaceable

    b = tmp_path / "b"
    (b / "engines").mkdir(parents=True)
    (b / "manifest.json").write_text("{}")
    (b / "engines" / "e.plan").write_bytes(b"x")
    real, real_scandir = os.access, os.scandir
    monkeypatch.setattr(edge.files.os, "access", lambda p, mode: False if Path(p) == b / "engines" else real(p, mode))
    with pytest.raises(EdgeError, match=r"b: this user cannot remove what is in it \(.*engines is not writable\); "
                                        r"nothing was replaced"):
        check_replaceable(b, lambda _p: True, what="bundle")
    # its review: an empty folder goes with its parent's right (it was refused); one it may not list is not passed over
    (b / "engines" / "e.plan").unlink()
    check_replaceable(b, lambda _p: True, what="bundle")
    monkeypatch.setattr(edge.files.os, "access", real)
    check_replaceable(b, lambda _p: True, what="bundle")

    def refuse(path: object) -> object:
        if Path(str(path)) == b / "engines":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(edge.files.os, "scandir", refuse)
    with pytest.raises(EdgeError, match=r"b: this user cannot remove what is in it \(.*engines: Permission denied\)"):
        check_replaceable(b, lambda _p: True, what="bundle")


def test_other_outputs_are_checked_before_the_work(tmp_path: Path, not_root: int) -> None:
    """Its review: --dump-points over another user's cloud in a sticky folder failed after the run, and
    `--triton-repo` over another user's repository after the export had replaced the bundle."""
    from edge.errors import ExportError
    from edge.export.triton_repo import check_repo_out
    from edge.stream.sinks import PointDumpSink

    st = _sticky(tmp_path / "tmp")
    (st / "team_notes.npy").write_bytes(b"x")  # (its review: a name the dump never writes is no refusal)
    PointDumpSink(st).open()
    (st / "lidar_000008.npy").write_bytes(b"x")
    with pytest.raises(DataError, match=r"lidar_000008\.npy: exists, owned by another user .*--dump-points may"):
        PointDumpSink(st).open()
    (st / "repo").mkdir()
    with pytest.raises(ExportError, match=r"repo: exists, owned by another user .*nothing was replaced"):
        check_repo_out(st / "repo", tmp_path / "bundle")


def test_unreadable_inputs_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video this user may not read was "corrupt or unsupported codec" (edge run) or "OpenCV cannot open this
    video" (--calib); now the reason, as an unreadable image gets."""
    pytest.importorskip("cv2")
    import edge.files
    from edge.files import read_problem
    from edge.stream.sources import open_source

    assert read_problem(tmp_path) == "cannot read (Is a directory)"
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    monkeypatch.setattr(edge.files, "read_problem",
                        lambda p: "cannot read (Permission denied)" if Path(p) == video else None)
    src = open_source(str(video))
    with pytest.raises(DataError, match=r"v\.mp4: cannot read \(Permission denied\)$"):
        src.open()
    from edge.calibration.datasets import load_samples
    from edge.models import get_card

    card = get_card("lane")
    with pytest.raises(DataError, match=r"v\.mp4: cannot read \(Permission denied\)"):
        load_samples(str(video), card, card.config("tiny"), size=1)


def test_a_folder_this_user_may_not_enter_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A calibration folder's sub-folder this user may not read was passed over (its images dropped without a word,
    or "no images"); a label file's image folder was "no such image"; a KITTI scan was "PermissionError: [Errno
    13] ..." and a KITTI folder's velodyne/ "no KITTI index has ...". Each names what cannot be read now."""
    pytest.importorskip("cv2")
    import cv2

    from edge.data import images, kitti

    (tmp_path / "cal" / "sub").mkdir(parents=True)
    for name in ("cal/a.png", "cal/sub/b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    real_scandir = os.scandir

    def refuse(path: object) -> object:
        if Path(str(path)) in (tmp_path / "cal" / "sub", tmp_path / "k" / "velodyne"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(images.os, "scandir", refuse)
    with caplog.at_level(logging.WARNING, logger="edge.data"):  # beside other images: said, and they are used
        assert [p.name for p in images.list_images(tmp_path / "cal", recursive=True)] == ["a.png"]
    assert "cal/sub: cannot read (Permission denied); the images in it (if any) are not used" in caplog.text
    (tmp_path / "cal" / "a.png").unlink()  # alone: refused, naming it (it was "no images")
    with pytest.raises(DataError, match=r"cal/sub: cannot read \(Permission denied\)$"):
        images.list_images(tmp_path / "cal", recursive=True)
    (tmp_path / "cal" / ".hidden").mkdir()  # a hidden one is never listed: not read, not said
    real_refuse = refuse

    def refuse_hidden(path: object) -> object:
        if Path(str(path)) == tmp_path / "cal" / ".hidden":
            raise PermissionError(13, "Permission denied", str(path))
        return real_refuse(path)

    monkeypatch.setattr(images.os, "scandir", refuse_hidden)
    with pytest.raises(DataError, match=r"cal/sub: cannot read"):
        images.list_images(tmp_path / "cal", recursive=True)

    for sub in ("image_2", "velodyne", "calib"):
        (tmp_path / "k" / sub).mkdir(parents=True)
    with pytest.raises(DataError, match=r"k/velodyne: cannot read \(Permission denied\)"):
        kitti.list_indices(tmp_path / "k")
    # its review: with index= nothing is listed, and a folder that may be entered but not listed reads as before
    (tmp_path / "k" / "velodyne" / "000114.bin").write_bytes(bytes(16))
    (tmp_path / "k" / "image_2" / "000114.png").write_bytes(b"x")
    (tmp_path / "k" / "calib" / "000114.txt").write_text("x")
    assert kitti.list_indices(tmp_path / "k", "000114") == ["000114"]
    monkeypatch.setattr(images.os, "scandir", real_scandir)

    scan = tmp_path / "s.bin"
    scan.write_bytes(np.zeros((4, 4), "<f4").tobytes())

    def fromfile(path: object, **_k: object) -> np.ndarray:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(kitti.np, "fromfile", fromfile)
    with pytest.raises(DataError, match=r"s\.bin: cannot read \(Permission denied\)$"):
        kitti.read_bin(scan)


def test_a_label_files_image_this_user_may_not_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`os.path.isfile` is False for an image in a folder this user may not enter: it was "no such image"."""
    import json

    from edge.models import get_card
    from edge.models.lane import samples

    (tmp_path / "img").mkdir()
    (tmp_path / "labels.json").write_text(json.dumps({"lanes": [], "h_samples": [10], "raw_file": "img/0.png"}))
    real_stat = os.stat

    def refuse(path: object, *a: object, **k: object) -> object:
        if Path(str(path)) == tmp_path / "img" / "0.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(samples.os, "stat", refuse)
    card = get_card("lane")
    with pytest.raises(DataError, match=r"img/0\.png: cannot read \(Permission denied\), listed in"):
        card.data.labelled.read(str(tmp_path / "labels.json"), card.config("tiny"))
    monkeypatch.setattr(samples.os, "stat", real_stat)
    with pytest.raises(DataError, match=r"img/0\.png: no such image, listed in"):
        card.data.labelled.read(str(tmp_path / "labels.json"), card.config("tiny"))


def test_an_existing_output_this_user_may_not_read_is_not_called_another_kind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint, a report or a bundle's manifest this user may not read was "exists and is not a checkpoint /
    an edge val report / a bundle edge-deploy wrote": the refusal stands, with its reason."""
    import edge.files
    from edge.bundle import check_out
    from edge.cli.train_cmd import check_replaceable_outputs
    from edge.val import check_report_out

    for name in ("m.pt", "rep.json"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    hidden = {tmp_path / "m.pt", tmp_path / "rep.json", tmp_path / "b" / "manifest.json"}
    monkeypatch.setattr(edge.files, "read_problem",
                        lambda p: "cannot read (Permission denied)" if Path(p) in hidden else None)
    with pytest.raises(EdgeError, match=r"m\.pt: cannot read \(Permission denied\), so whether --out m\.pt may "
                                        r"replace it is not known"):
        check_replaceable_outputs(tmp_path / "m.pt")
    with pytest.raises(DataError, match=r"rep\.json: cannot read \(Permission denied\), so whether --out may "
                                        r"replace it \(an earlier report\) is not known"):
        check_report_out(tmp_path / "rep.json", ["synthetic:2"])
    with pytest.raises(BundleError, match=r"b: folder exists, is not empty and is not a bundle edge-deploy wrote as "
                                          r"far as can be seen \(its manifest\.json: cannot read \(Permission"):
        check_out(tmp_path / "b")
