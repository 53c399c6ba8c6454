"""VelodyneSource == velodyne-decoder's own read_pcap on every real Velodyne capture; bad packets are
counted, never fatal; the model override fixes the VLP-16 captures whose factory byte lies; --lidar specs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

vd = pytest.importorskip("velodyne_decoder")
dpkt = pytest.importorskip("dpkt")

from edge.data.frame import POINT_DTYPE  # noqa: E402
from edge.data.pcap import iter_udp, udp_frame, write_pcap  # noqa: E402
from edge.data.velodyne import check_packet, normalize_model  # noqa: E402
from edge.errors import DataError  # noqa: E402
from edge.stream.sources.lidar import lidar_source, parse_lidar_spec  # noqa: E402
from edge.stream.sources.velodyne import VelodyneSource  # noqa: E402

# file, model override, model the source reports
CASES = [("velodyne_example.pcap", None, "VLP16"), ("velodyne_vlp16.pcap", "VLP16", "VLP16"),
         ("velodyne_vlp16.pcap", None, "HDL32E"), ("velodyne_vlp32.pcap", None, "HDL32E")]


def reference(path: Path, model: str | None, tmp_path: Path) -> list[np.ndarray]:
    """velodyne-decoder run directly. It refuses a model that disagrees with the factory byte, so
    for an override the reference reads a copy of the capture with the byte rewritten (via dpkt)."""
    if model is not None:
        fixed = tmp_path / f"fixed_{path.name}"
        out = []
        with path.open("rb") as f:
            for ts, buf in dpkt.pcap.Reader(f):
                buf = bytearray(buf)
                if len(buf) == 14 + 20 + 8 + 1206:
                    buf[-1] = {"VLP16": 0x22, "HDL32E": 0x21}[model]
                out.append((round(ts * 1e6) * 1000, bytes(buf)))
        write_pcap(fixed, out)
        path = fixed
    cfg = vd.Config(model=getattr(vd.Model, model)) if model else vd.Config()
    return [pts for _, pts in vd.read_pcap(str(path), cfg, as_pcl_structs=True)]


def xyz(a: np.ndarray) -> np.ndarray:
    return np.stack([a["x"], a["y"], a["z"]], axis=1).astype(np.float64)


@pytest.mark.parametrize(("name", "model", "reported"), CASES)
def test_rotations_equal_the_reference_decoder(real_data: Path, tmp_path: Path, name: str, model: str | None,
                                                reported: str) -> None:
    path = real_data / "lidar/velodyne" / name
    ref = reference(path, model, tmp_path)
    src = VelodyneSource(path, model=model)
    src.open()
    frames = list(src)
    assert len(frames) == len(ref) >= 1
    n_data = sum(1 for _, p, _ in iter_udp(path) if p == 2368)
    for i, (fr, r) in enumerate(zip(frames, ref)):
        pts = fr.data
        assert pts.dtype == POINT_DTYPE and fr.sensor == "lidar" and fr.seq == i
        assert len(pts) == len(r) > 1000
        sl = slice(None, None, 97)
        np.testing.assert_allclose(xyz(pts)[sl], xyz(r)[sl], atol=1e-3, rtol=0)
        np.testing.assert_array_equal(pts["intensity"], r["intensity"])
        np.testing.assert_array_equal(pts["ring"], r["ring"])
        np.testing.assert_allclose(pts["t"], r["time"] - r["time"].min(), atol=1e-6)
        assert pts["t"].min() >= 0 and pts["t"].max() < 0.12
        assert fr.meta["model"] == reported and fr.meta["bad_packets"] == 0
        assert fr.meta["t_sensor_ns"] > 1e18  # epoch ns: the decoder takes the hour from the host stamp
    assert frames[-1].meta.get("partial") is True  # the short captures end mid-rotation
    assert sum(f.meta["packets"] for f in frames) == n_data == src.counters()["packets"]
    c = src.counters()
    assert c["bad_packets"] == c["decode_errors"] == c["truncated"] == 0


def test_vlp16_rings_go_up_in_elevation_with_the_override(real_data: Path) -> None:
    """ring 0 = lowest beam; with model=VLP16 the 16 rings span -15..+15 deg, 2 deg apart."""
    src = VelodyneSource(real_data / "lidar/velodyne/velodyne_vlp16.pcap", model="vlp-16")
    src.open()
    pts = next(iter(src)).data
    elev = np.degrees(np.arctan2(pts["z"], np.hypot(pts["x"], pts["y"])))
    med = np.array([np.median(elev[pts["ring"] == r]) for r in range(16)])
    assert pts["ring"].max() == 15
    np.testing.assert_allclose(med, np.arange(-15, 16, 2), atol=0.3)


def test_lying_factory_byte_is_warned_about(real_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = VelodyneSource(real_data / "lidar/velodyne/velodyne_vlp16.pcap")
    src.open()
    with caplog.at_level(logging.WARNING, logger="edge.stream"):
        list(src)
    assert "model=VLP16" in caplog.text
    assert src.decoder.model_warning


def test_a_forced_model_the_packets_contradict_is_warned_about(real_data: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """model=VLS128 on a VLP-16 capture decoded 32 rings out to 189 m without a word; model=VLP16 (the fix for the
    capture's lying HDL-32E byte) stays quiet."""
    pcap = real_data / "lidar/velodyne/velodyne_vlp16.pcap"
    for model, warned in (("VLS128", True), ("HDL32E", False), ("VLP16", False)):
        caplog.clear()
        src = VelodyneSource(pcap, model=model)
        src.open()
        with caplog.at_level(logging.WARNING, logger="edge.data"):
            next(iter(src))
        src.close()
        assert ("model=" + model + " given, but the packets say HDL32E" in caplog.text) is warned, (model, caplog.text)
        assert bool(src.decoder.model_warning) is warned


def test_realtime_pacing_follows_the_recorded_times(real_data: Path) -> None:
    path = real_data / "lidar/velodyne/velodyne_vlp16.pcap"
    times = [t for t, p, _ in iter_udp(path) if p == 2368]
    span = (times[-1] - times[0]) / 1e9
    src = VelodyneSource(path, model="VLP16", realtime=True)
    assert src.live and not src.reconnect
    src.open()
    t0 = time.monotonic()
    frames = list(src)
    elapsed = time.monotonic() - t0
    assert span * 0.95 <= elapsed < span + 1.0
    assert frames[1].t_capture_ns - frames[0].t_capture_ns > 0


def test_rotations_are_stamped_on_the_capture_clock(real_data: Path, tmp_path: Path) -> None:
    """Each rotation carries its middle in the capture's own time (first packet = 0), whatever the read
    speed: the same capture stretched 3x in time and moved a day later gives 3x the stamps."""
    from edge.data.velodyne import VelodyneDecoder

    path = real_data / "lidar/velodyne/velodyne_vlp16.pcap"
    pkts = [(t, p, d) for t, p, d in iter_udp(path)]
    # when each rotation came out, fed packet by packet to the decoder on its own
    dec, ends = VelodyneDecoder("VLP16"), []
    data = [(t, d) for t, p, d in pkts if p == 2368]
    for t, d in data:
        if dec.feed(t / 1e9, d) is not None:
            ends.append(t)
    t0 = data[0][0]
    src = VelodyneSource(path, model="VLP16")
    src.open()
    frames = list(src)
    assert frames[0].meta["t_recorded_ns"] == (t0 + ends[0]) // 2 - t0
    assert frames[1].meta["t_recorded_ns"] == (ends[0] + data[-1][0]) // 2 - t0  # the partial last one
    stretched = tmp_path / "slow.pcap"
    write_pcap(stretched, [(86_400 * 10**9 + 3 * t, udp_frame(d, p)) for t, p, d in pkts])
    src = VelodyneSource(stretched, model="VLP16")
    src.open()
    slow = [f.meta["t_recorded_ns"] for f in src]
    assert [abs(a - 3 * f.meta["t_recorded_ns"]) <= 3 for a, f in zip(slow, frames)] == [True, True]


def test_bad_packets_are_counted_and_skipped(real_data: Path, tmp_path: Path) -> None:
    """Wrong sizes, broken block flags, bad azimuths and foreign model bytes interleaved with the real
    stream: the rotations stay exactly the reference's, the counters say what was dropped."""
    path = real_data / "lidar/velodyne/velodyne_example.pcap"
    recs = [(t, d) for t, p, d in iter_udp(path) if p == 2368]
    good = recs[0][1]
    flag = bytearray(good)
    flag[500] = 0x00  # block 5 flag
    az = bytearray(good)
    az[2:4] = (40000).to_bytes(2, "little")
    mode = bytearray(good)
    mode[1204] = 0x11
    other_model = bytearray(good)
    other_model[1205] = 0x28  # a VLP-32C packet in a VLP-16 stream
    junk = [good[:600], good + b"\0\0", bytes(flag), bytes(az), bytes(mode), bytes(other_model)]
    out = []
    for i, (t, d) in enumerate(recs):
        out.append((t, udp_frame(d, 2368)))
        if i % 10 == 5 and junk:
            out.append((t + 1000, udp_frame(junk.pop(), 2368)))
    assert not junk
    f = tmp_path / "dirty.pcap"
    write_pcap(f, out)
    src = VelodyneSource(f)
    src.open()
    frames = list(src)
    ref = list(VelodyneSource(path))
    assert [len(a.data) for a in frames] == [len(b.data) for b in ref]
    for a, b in zip(frames, ref):
        np.testing.assert_array_equal(a.data, b.data)
    c = src.counters()
    assert c["bad_packets"] == 6 and c["decode_errors"] == 0
    assert src.decoder.bad_reasons == {"size": 2, "flag": 1, "azimuth": 1, "return_mode": 1, "product": 1}
    assert frames[-1].meta["bad_packets"] == 6


def test_check_packet_reasons(real_data: Path) -> None:
    good = next(d for _, p, d in iter_udp(real_data / "lidar/velodyne/velodyne_vlp32.pcap") if p == 2368)
    assert check_packet(good) is None
    assert check_packet(good[:-1]) == "size"
    assert check_packet(b"\xff\xee" + good[2:]) is None
    assert check_packet(b"\xff\xdd" + good[2:]) is None  # HDL-64E lower block flag is legal
    assert check_packet(b"\xfe\xee" + good[2:]) == "flag"


def test_other_ports_are_skipped_and_reported(real_data: Path) -> None:
    """Packets on other ports are counted; a capture with none on ours is one line naming where they are."""
    path = real_data / "lidar/velodyne/velodyne_vlp16.pcap"
    src = VelodyneSource(path, port=2369)
    src.open()
    with pytest.raises(DataError, match=r"no Velodyne frames on UDP port 2369; 84 packets are on port 2368; "
                                        r"port 2368 is the default of Velodyne"):
        list(src)
    assert src.counters()["other_ports"] == 100


def test_a_capture_of_position_packets_only_says_they_carry_no_points(real_data: Path, tmp_path: Path) -> None:
    """Found by a review: a pcap of a VLP-16's position packets only (port 8308) was told "pass port=8308 if that is
    the sensor's", which then failed on every packet's size."""
    gps = tmp_path / "gps.pcap"
    packets = iter_udp(real_data / "lidar/velodyne/velodyne_vlp16.pcap")
    write_pcap(gps, [(t, udp_frame(p, 8308)) for t, port, p in packets if port == 8308])
    src = VelodyneSource(gps)
    src.open()
    with pytest.raises(DataError, match=r"no Velodyne frames on UDP port 2368; its 16 packets are on port 8308: "
                                        r"Velodyne's position \(GPS/PPS\) packets, which carry no points"):
        list(src)


def test_a_corrupt_first_record_is_named(tmp_path: Path) -> None:
    """A capture whose first record claims 4 GiB said "the capture holds no UDP packets", not what was wrong."""
    import struct

    path = tmp_path / "huge.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
                     + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"x" * 100)
    src = VelodyneSource(path)
    src.open()
    with pytest.raises(DataError, match=r"huge\.pcap: no Velodyne frames: a record at byte 24 claims 4294967280 "
                                        r"bytes \(corrupt\)"):
        list(src)


def test_models_and_their_errors() -> None:
    assert normalize_model("vlp-16") == "VLP16" and normalize_model("hdl_32e") == "HDL32E"
    with pytest.raises(DataError, match="unknown Velodyne model"):
        normalize_model("VLP-17")
    with pytest.raises(DataError, match="HDL-64E"):
        normalize_model("HDL64E_S2")


def test_lidar_specs(real_data: Path) -> None:
    pcap = str(real_data / "lidar/velodyne/velodyne_vlp16.pcap")
    assert parse_lidar_spec(pcap) == ("velodyne", pcap, {})
    assert parse_lidar_spec(f"velodyne:{pcap},model=vlp16") == ("velodyne", pcap, {"model": "VLP16"})
    assert parse_lidar_spec("udp://0.0.0.0:2368") == ("velodyne", "udp://0.0.0.0:2368", {})
    assert parse_lidar_spec("velodyne:udp://:2368,model=HDL32E")[2] == {"model": "HDL32E"}
    src = lidar_source(f"velodyne:{pcap},model=VLP16")
    assert isinstance(src, VelodyneSource) and src.model_override == "VLP16" and not src.live
    src = lidar_source("udp://127.0.0.1:2368", realtime=False)
    assert isinstance(src, VelodyneSource) and src.live and src.reconnect and src.sensors == ("lidar",)
    assert lidar_source(pcap, realtime=True).live


@pytest.mark.parametrize(("spec", "match"), [
    ("", "empty spec"),
    ("scan.bin", r"'scan\.bin' is neither a \.pcap file nor a udp:// address"),
    ("hesai:x.pcap", "unknown LiDAR kind 'hesai'"),
    ("kitti:/data/kitti", "camera \\+ LiDAR source"),
    ("udp:2368", "not a udp://HOST:PORT address"),
    ("udp://:2368,color=red", "unknown option 'color'"),
    ("udp://:2368,model=", "option model= has no value"),
    ("udp://:2368,model=VLP99", "unknown Velodyne model"),
    ("velodyne:udp://:2368,port=7", r"port= is the UDP port a pcap's packets were sent to"),  # was unused silently
    ("udp://:2368,model=VLP16,model=HDL32E", "option model= given twice"),  # decoded as the last one
    ("udp://host-without-port", "not a UDP address"),
    ("udp://:70000", "not a UDP address"),
])
def test_bad_specs_are_one_line_errors(spec: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as e:
        lidar_source(spec)
    msg = str(e.value)
    assert "\n" not in msg
    assert spec in msg


def test_missing_pcap_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.pcap: no such pcap file"):
        lidar_source(str(tmp_path / "gone.pcap"))
    notpcap = tmp_path / "notes.pcap"
    notpcap.write_text("not a capture")
    src = lidar_source(str(notpcap))
    with pytest.raises(DataError, match=r"notes\.pcap: not a pcap file"):
        src.open()


def test_a_lidar_capture_given_as_the_source_says_where_it_goes(real_data: Path) -> None:
    """Found by a review: a pcap given to --source was "OpenCV cannot open it (corrupt or unsupported codec)", and
    velodyne:PCAP "no such video file" for a file that exists."""
    from edge.stream.sources import open_source

    pcap = real_data / "lidar/velodyne/velodyne_vlp16.pcap"
    for spec in (str(pcap), f"velodyne:{pcap}", f"ouster:{pcap},meta=x.json", f"{pcap},fps=10"):
        with pytest.raises(DataError, match=r": a LiDAR capture or spec, which edge run reads with --lidar"):
            open_source(spec)


def test_a_lidar_point_file_given_as_the_source_is_refused(real_data: Path, tmp_path: Path) -> None:
    """Found by a review: nuScenes' LIDAR_TOP .pcd.bin given to --source opened as one 1280x34688 video frame
    (FFmpeg's binary-text demuxer) and ran, exit 0, with lanes found in the point floats; a KITTI velodyne .bin
    said "corrupt or unsupported codec"."""
    from edge.stream.sources import open_source

    nus = next((real_data / "nuscenes").rglob("*LIDAR_TOP*.pcd.bin"))
    kitti = real_data / "kitti/object/training/velodyne/000114.bin"
    for spec in (str(nus), str(kitti), f"{kitti},fps=10"):
        with pytest.raises(DataError, match=r"\.bin: a LiDAR point file \(\.bin, \.pcd: KITTI's or nuScenes' scans\), "
                                            r"not a camera source; a KITTI folder runs as kitti:FOLDER"):
            open_source(spec)
    # its review: a recording named .bin played before the refusal; it still does (it starts as a video container)
    cv2 = pytest.importorskip("cv2")
    # (its review: M2TS, raw motion JPEG, ASF, Y4M, IVF and NUT were refused as scans too)
    for suffix, fourcc in ((".mp4", "mp4v"), (".avi", "MJPG"), (".m2ts", "mp4v"), (".mjpeg", "MJPG"), (".wmv", "WMV2"),
                           (".y4m", "I420"), (".ivf", "VP80"), (".nut", "mp4v"), (".ts", "mp4v")):
        video = tmp_path / f"clip{suffix}"
        w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*fourcc), 10.0, (96, 64))
        rng = np.random.default_rng(0)
        for _ in range(5):  # (FFmpeg probes an MPEG-TS of 3 tiny frames as empty)
            w.write(rng.integers(0, 256, (64, 96, 3), np.uint8))
        w.release()
        named_bin = tmp_path / f"clip{suffix}.bin"
        named_bin.write_bytes(video.read_bytes())
        src = open_source(str(named_bin))
        src.open()
        assert len(list(src)) == 5, suffix


@pytest.mark.parametrize("spec", ["udp://a\x00b:2368", "udp://a\tb:2368", "velodyne:udp://a\x1bb:2368"])
def test_control_characters_in_a_udp_host_are_one_line_errors(spec: str) -> None:
    """A review: a NUL in the host reached socket.bind from the Python API as a TypeError."""
    with pytest.raises(DataError, match="not a UDP address") as e:
        lidar_source(spec)
    msg = str(e.value)
    assert msg.isprintable()
    assert repr(spec.removeprefix("velodyne:")) in msg
