"""Small files that declare huge sizes: refused or streamed before anything is allocated.

Each case runs in a child process whose peak RSS (``wait4``) is measured: it must stay under 1 GB
(the forged Ouster metadata cost 11 GB, the forged .npz 4.3 GB, a long calibration video 3.9 GB
before the limits), and the error must be one line naming the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
GB = 1 << 30


def run_child(code: str) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, peak RSS in bytes) of ``python -c code``; the child reports its own
    peak RSS on exit, whatever happened.

    The peak is ``VmHWM`` of the child's own address space, not ``getrusage().ru_maxrss``: Linux
    carries the parent's high-water mark across fork+exec into ``ru_maxrss``, so a child of a pytest
    that had grown to 1 GB reported 1 GB whatever it did itself."""
    body = "\n".join("    " + ln for ln in code.splitlines())
    wrapped = (f"try:\n{body}\nfinally:\n    import sys\n"
               "    _hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
               "    sys.stderr.write('PEAK_RSS_KB=%d\\n' % int(_hwm[0].split()[1]))\n")
    r = subprocess.run([sys.executable, "-c", wrapped], env=ENV, capture_output=True, text=True, timeout=600)
    lines = r.stderr.splitlines()
    peak = [ln for ln in lines if ln.startswith("PEAK_RSS_KB=")]
    assert peak, r.stderr
    err = "\n".join(ln for ln in lines if not ln.startswith("PEAK_RSS_KB="))
    return r.returncode, r.stdout, err, int(peak[-1].split("=")[1]) * 1024.0  # Linux: KB


def _meta(**fmt: object) -> dict:
    pix = int(fmt.get("pixels_per_column", 32))  # type: ignore[call-overload]
    data_format = {"columns_per_frame": 1024, "columns_per_packet": 16, "pixels_per_column": 32,
                   "column_window": [0, 1023], "pixel_shift_by_row": [0] * pix, "udp_profile_lidar": "LEGACY",
                   "udp_profile_imu": "LEGACY", **fmt}
    return {"lidar_mode": "1024x10", "beam_altitude_angles": [16.0 - i / pix for i in range(pix)],
            "beam_azimuth_angles": [0.0] * pix, "data_format": data_format,
            "lidar_origin_to_beam_origin_mm": 12.0, "prod_line": "OS-1-32"}


@pytest.mark.parametrize(("fmt", "needle"), [
    ({"columns_per_frame": 2_097_152, "column_window": [0, 2_097_151]}, "columns_per_frame 2097152 is outside"),
    ({"pixels_per_column": 200_000}, "pixels_per_column 200000 is outside"),
    ({"columns_per_packet": 0}, "columns_per_packet 0 is outside"),
    ({"columns_per_packet": 2048}, "columns_per_packet 2048"),
])
def test_forged_ouster_geometry(tmp_path: Path, fmt: dict, needle: str) -> None:
    pytest.importorskip("ouster.sdk")
    meta = tmp_path / "forged.json"
    meta.write_text(json.dumps(_meta(**fmt)))
    code = ("from edge.data.ouster import OusterDecoder, load_sensor_info\nfrom edge.errors import DataError\n"
            f"try:\n    OusterDecoder(load_sensor_info({str(meta)!r}))\nexcept DataError as e:\n    print(e)\n")
    rc, out, err, rss = run_child(code)
    assert rc == 0 and "Traceback" not in err, err
    assert out.strip().startswith(f"{meta}: ") and needle in out and out.count("\n") == 1, out
    assert rss < GB, f"peak RSS {rss / GB:.2f} GB"


def test_a_real_geometry_still_loads(tmp_path: Path) -> None:
    pytest.importorskip("ouster.sdk")
    from edge.data.ouster import OusterDecoder, load_sensor_info

    meta = tmp_path / "ok.json"
    meta.write_text(json.dumps(_meta()))
    assert OusterDecoder(load_sensor_info(meta)).columns == 1024


def test_huge_metadata_file_is_refused_unread(tmp_path: Path) -> None:
    pytest.importorskip("ouster.sdk")
    from edge.data.ouster import MAX_METADATA_BYTES, load_sensor_info
    from edge.errors import DataError

    meta = tmp_path / "big.json"
    with open(meta, "wb") as f:
        f.truncate(MAX_METADATA_BYTES + 1)
    with pytest.raises(DataError, match=r"big\.json: \d+ bytes is not Ouster metadata"):
        load_sensor_info(meta)


def _zeros_npz(path: Path, name: str, shape: tuple[int, ...]) -> int:
    """A compressed .npz whose one member is zeros of ``shape`` (float32), written in chunks: a few MB
    on disk for GBs declared. Returns the declared bytes."""
    from numpy.lib import format as npf

    nbytes = int(np.prod(shape)) * 4
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            zf.open(f"{name}.npy", "w", force_zip64=True) as f:
        npf.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        chunk = bytes(1 << 24)
        left = nbytes
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
    return nbytes


def test_forged_npz_calibration_set_is_streamed(tmp_path: Path) -> None:
    """1.2 GB of zeros declared in a few MB: two samples are read, nothing else is inflated."""
    from edge.models import get_card

    cfg = get_card("lane").config("tiny")
    h, w = cfg["input_hw"]
    n = int(1.2 * GB) // (3 * h * w * 4)
    src = tmp_path / "calib.npz"
    declared = _zeros_npz(src, "frame", (n, 3, h, w))
    assert declared > GB and src.stat().st_size < 16 << 20
    code = ("from edge.calibration.datasets import load_samples\nfrom edge.models import get_card\n"
            "c = get_card('lane')\n"
            f"s = load_samples({str(src)!r}, c, c.config('tiny'), size=2)\n"
            "print(len(s), s.sequences[1][0]['frame'].shape, float(abs(s.sequences[1][0]['frame']).max()))\n")
    rc, out, err, rss = run_child(code)
    assert rc == 0, err
    assert out.split()[0] == "2" and out.strip().endswith("0.0"), out
    assert rss < GB, f"peak RSS {rss / GB:.2f} GB"


def test_npz_declaring_more_than_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.data.arrays as arrays
    from edge.calibration.datasets import load_samples
    from edge.errors import DataError
    from edge.models import get_card

    card = get_card("lane")
    cfg = card.config("tiny")
    h, w = cfg["input_hw"]
    src = tmp_path / "c.npz"
    _zeros_npz(src, "frame", (64, 3, h, w))
    monkeypatch.setattr(arrays, "MAX_MEMBER_BYTES", 1024)
    with pytest.raises(DataError, match=r"c\.npz: member 'frame' inflates to \d+ bytes \(limit 1024\)"):
        load_samples(str(src), card, cfg, size=2)


def test_npz_shape_is_checked_before_reading(tmp_path: Path) -> None:
    from edge.calibration.datasets import load_samples
    from edge.errors import DataError
    from edge.models import get_card

    card = get_card("lane")
    src = tmp_path / "c.npz"
    _zeros_npz(src, "frame", (4, 3, 7, 9))
    with pytest.raises(DataError, match=r"c\.npz: 'frame' is float32 \[4, 3, 7, 9\], the model takes float32"):
        load_samples(str(src), card, card.config("tiny"), size=1)


def test_long_calibration_video_is_streamed(tmp_path: Path) -> None:
    """A video's frames are not all held: peak RSS grows by the windows used, not by the video."""
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "long.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (960, 544))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (544, 960, 3), dtype=np.uint8)
    for i in range(240):  # 240 x 1.5 MB decoded = 376 MB if every frame were held
        w.write(np.roll(base, 4 * i, axis=1))
    w.release()
    code = ("import resource\nfrom edge.calibration.datasets import load_samples\nfrom edge.models import get_card\n"
            "import cv2, numpy\nc = get_card('lane')\ncfg = c.config('tiny')\n"
            "load_samples('synthetic', c, cfg, size=1)\n"  # warm: imports and lazy buffers before the baseline
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"s = load_samples({str(path)!r}, c, cfg, size=4)\n"
            "print(len(s), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n")
    rc, out, err, _ = run_child(code)
    assert rc == 0, err
    n, grew_mb = map(int, out.split())
    assert n == 4 and grew_mb < 120, f"peak RSS grew {grew_mb} MB reading 4 windows"


def _deflated_zeros(z: zipfile.ZipFile, name: str, header: bytes, nbytes: int) -> None:
    with z.open(name, "w", force_zip64=True) as f:
        f.write(header)
        chunk = b"\0" * (1 << 20)
        while nbytes > 0:
            f.write(chunk[:min(nbytes, len(chunk))])
            nbytes -= len(chunk)


def test_an_npz_whose_schema_member_is_a_deflate_bomb_is_not_inflated(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: telling a waveform recording from a feeds archive read its ``schema`` member whole (a 2.9 MB
    file whose schema inflates to 3 GB: peak RSS 3 GB for `edge run --source FILE.npz` or `--calib FILE.npz`). A
    schema larger than the format's own is not read; a real recording still is one."""
    import io

    from edge.data import waveform

    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<U1", "fortran_order": False, "shape": (4 << 20,)})
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as z:
        _deflated_zeros(z, "schema.npy", hdr.getvalue(), 16 << 20)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *a: Any, **k: Any) -> Any:
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    assert not waveform.is_waveform_file(bomb) and opened == []  # refused from its size: nothing inflated
    rec = tmp_path / "rec.npz"
    np.savez(rec, schema=np.array(waveform.SCHEMA))
    opened.clear()  # (savez writes through open too)
    assert waveform.is_waveform_file(rec) and opened == ["schema.npy"]
    # a recording whose waveforms declare more than the reader takes is still one (the reader says why it is
    # refused; a review: it was "not an edge-waveform/1 recording")
    big = tmp_path / "big.npz"
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f2", "fortran_order": False,
                                               "shape": (1 << 20, 16, 1800, 32)})
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as z:
        buf = io.BytesIO()
        np.save(buf, np.array(waveform.SCHEMA))
        z.writestr("schema.npy", buf.getvalue())
        z.writestr("waveforms.npy", hdr.getvalue() + b"\0" * 64)
    assert waveform.is_waveform_file(big)
    # a second entry numpy would read instead of the one checked (a review: a raw 'schema' beside 'schema.npy', or
    # the name stored twice, opened its last copy): not a recording, and nothing read
    for twin in ("schema", "schema.npy"):
        odd = tmp_path / f"twin_{twin}.npz"
        buf = io.BytesIO()
        np.save(buf, np.array(waveform.SCHEMA))
        with zipfile.ZipFile(odd, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("schema.npy", buf.getvalue())
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
                z.writestr(twin, b"\0" * (1 << 20))
        assert not waveform.is_waveform_file(odd)
    from edge.errors import DataError

    with pytest.raises(DataError, match=r"big\.npz"):
        waveform.read_waveform_file(big)


def test_a_checkpoint_whose_members_are_deflate_bombs_is_refused_before_torch_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: torch.load inflated a deflated storage member whole (a 973 KB --checkpoint took 1.3 GB).
    torch writes its members stored; one that inflates past the floor at a bomb's ratio is refused first."""
    torch = pytest.importorskip("torch")
    from edge.data import arrays
    from edge.errors import ModelError
    from edge.models import checkpoint

    monkeypatch.setattr(arrays, "BOMB_FLOOR", 2 << 20)  # the shape of the bomb, at a test's size
    raw = tmp_path / "raw.pt"  # four 1 MB members, each under the floor, 4 MB together (a review: per member passed)
    torch.save({"format": "x", "state_dict": {f"w{i}": torch.zeros(1 << 18) for i in range(4)}}, raw)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(raw) as s, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as d:
        for info in s.infolist():
            d.writestr(info.filename, s.read(info))
    with pytest.raises(ModelError, match=r"bomb\.pt: not a readable checkpoint \(its members inflate \d+:1 to "
                                         r"\d+ bytes; torch writes its members uncompressed\)"):
        checkpoint.read_checkpoint(bomb)
    with pytest.raises(ModelError, match="not an edge-deploy checkpoint"):  # the same, stored as torch writes it
        checkpoint.read_checkpoint(raw)
    # one deflated member behind stored padding: the archive's ratio stays low, the member's does not (a review)
    raw2 = tmp_path / "raw2.pt"
    torch.save({"format": "x", "state_dict": {"w": torch.zeros(1 << 20), "pad": torch.rand(1 << 16)}}, raw2)
    padded = tmp_path / "padded.pt"
    with zipfile.ZipFile(raw2) as s, zipfile.ZipFile(padded, "w") as d:
        for info in s.infolist():
            big = info.file_size >= 4 << 20
            d.writestr(info.filename, s.read(info), zipfile.ZIP_DEFLATED if big else zipfile.ZIP_STORED)
    with pytest.raises(ModelError, match=r"padded\.pt: not a readable checkpoint \(member '.*' inflates \d+:1"):
        checkpoint.read_checkpoint(padded)


def test_a_kitti_scan_past_its_limit_is_refused_when_the_folder_opens(tmp_path: Path, real_data: Path) -> None:
    """Found by a review: a sparse 1 GB velodyne .bin (no data in it) was read whole: 7.6 GB of memory before the run
    found no point in view. A scan over MAX_SCAN_BYTES is one line, before anything is read."""
    import shutil

    from edge.data import kitti
    from edge.errors import DataError
    from edge.stream.sources import open_source

    src = real_data / "kitti" / "object" / "training"
    k = tmp_path / "k"
    for sub, name in (("image_2", "000114.png"), ("calib", "000114.txt")):
        (k / sub).mkdir(parents=True)
        shutil.copy(src / sub / name, k / sub / name)
    (k / "velodyne").mkdir()
    with open(k / "velodyne" / "000114.bin", "wb") as f:
        f.truncate(kitti.MAX_SCAN_BYTES + 16)  # sparse: no disk, no data
    with pytest.raises(DataError, match=r"000114\.bin: \d+ bytes is \d+ points; a LiDAR scan of more than \d+ points "
                                        r"is not read"):
        open_source(f"kitti:{k}").open()


def test_video_frames_over_the_image_pixel_limit_are_refused_at_open(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: a 5 MB video of 12000x12000 frames ran with 4 GB of memory; images have a pixel limit, video
    frames now have the same one (checked from the size the file declares)."""
    cv2 = pytest.importorskip("cv2")
    from edge.errors import DataError
    from edge.stream.sources import open_source

    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(2):
        w.write(np.full((48, 64, 3), 90, np.uint8))
    w.release()
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 48 - 1))  # the limit just under this video's frames
    src = open_source(str(path))
    with pytest.raises(DataError, match=r"v\.avi: frames of 64x48 are over the 3071-pixel limit images have"):
        src.open()
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(64 * 48))
    src = open_source(str(path))
    src.open()
    src._max_px = 64 * 48 - 1  # as a device that declared no size (0x0) at open: each frame is checked too
    with pytest.raises(DataError, match=r"v\.avi: a frame of 64x48 is over the 3071-pixel limit"):
        next(iter(src))
    src.close()


def test_files_nested_past_the_recursion_limit_are_not_ours_anywhere(tmp_path: Path) -> None:
    """The checks whether a file at an output's name is one we wrote (a bundle's manifest above an --out, a training
    record, an edge val report, a Triton repository's marker) each read JSON on their own; a file nested 200,000
    deep was a RecursionError traceback in `edge val --out` (found reading the change for its twins). One reader,
    ``files.json_file``: such a file is not ours."""
    from edge.bundle import enclosing_bundle
    from edge.cli.train_cmd import is_training_record, record_of
    from edge.export.triton_repo import MARKER, _is_our_repo
    from edge.files import json_file
    from edge.manifest_schema import MANIFEST
    from edge.val import _is_report

    deep = "[" * 200_000
    (tmp_path / MANIFEST).write_text(deep)
    (tmp_path / MARKER).write_text(deep)
    (tmp_path / "r.json").write_text(deep)
    assert json_file(tmp_path / "r.json") is None and json_file(tmp_path / "missing.json") is None
    assert enclosing_bundle(tmp_path / "out" / "x.json") is None
    assert not is_training_record(tmp_path / "r.json") and record_of(tmp_path / "r.json") is None
    assert not _is_report(tmp_path / "r.json") and not _is_our_repo(tmp_path)
    (tmp_path / "small.json").write_text('{"a": 1}')
    assert json_file(tmp_path / "small.json") == {"a": 1} and json_file(tmp_path / "small.json", limit=3) is None
