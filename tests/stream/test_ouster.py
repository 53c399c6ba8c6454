"""OusterSource == ouster-sdk's own open_source + XYZLut on every real Ouster capture (LEGACY, the dual
RNG19 profile, the old-format metadata); bad packets counted; metadata errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ouster.sdk")
from ouster.sdk import core, open_source

from edge.data.frame import POINT_DTYPE
from edge.data.ouster import load_sensor_info
from edge.data.pcap import iter_udp, udp_frame, write_pcap
from edge.errors import DataError
from edge.stream.sources.lidar import lidar_source
from edge.stream.sources.ouster import OusterSource

NAMES = ["OS-0-32-U1_v2.2.0_1024x10", "OS-1-32-G_v2.1.1_1024x10", "OS-1-64_legacy_rust-lidar-utils_example"]


def reference(pcap: Path, meta: Path) -> list[dict[str, np.ndarray]]:
    """What the SDK itself yields: valid returns (range > 0) of each frame, row-major."""
    out = []
    src = open_source(str(pcap), meta=[str(meta)])
    lut = core.XYZLut(src.sensor_info[0])
    for fs in src:
        f = fs[0]
        rng = f.field(core.ChanField.RANGE)
        valid = rng > 0
        rows, cols = np.nonzero(valid)
        out.append({"xyz": lut(f)[valid], "refl": f.field(core.ChanField.REFLECTIVITY)[valid], "rows": rows,
                    "col_ts": f.timestamp[cols].astype(np.int64)})
    return out


@pytest.mark.parametrize("name", NAMES)
def test_frames_equal_the_sdk(real_data: Path, name: str) -> None:
    pcap, meta = real_data / "lidar/ouster" / f"{name}.pcap", real_data / "lidar/ouster" / f"{name}.json"
    ref = reference(pcap, meta)
    src = OusterSource(pcap, meta=meta)
    src.open()
    frames = list(src)
    assert len(frames) == len(ref) >= 1
    for i, (fr, r) in enumerate(zip(frames, ref)):
        pts = fr.data
        assert pts.dtype == POINT_DTYPE and fr.seq == i and fr.sensor == "lidar"
        assert len(pts) == len(r["xyz"]) > 10000
        got = np.stack([pts["x"], pts["y"], pts["z"]], 1).astype(np.float64)
        np.testing.assert_allclose(got[::97], r["xyz"][::97], atol=1e-3, rtol=0)
        np.testing.assert_array_equal(pts["intensity"], r["refl"])
        np.testing.assert_array_equal(pts["ring"], r["rows"])
        t_ref = (r["col_ts"] - r["col_ts"].min()) / 1e9
        np.testing.assert_allclose(pts["t"], t_ref, atol=1e-6)
        assert pts["t"].max() < 0.1 + 1e-3  # one 10 Hz rotation
        assert fr.meta["t_sensor_ns"] == r["col_ts"].min()
    n_lidar = sum(1 for _, p, _ in iter_udp(pcap) if p == 7502)
    assert sum(f.meta["packets"] for f in frames) == n_lidar == src.counters()["packets"]
    assert src.counters()["bad_packets"] == 0


def test_partial_frames_are_marked(real_data: Path) -> None:
    """The rust-lidar-utils capture holds the end of frame 12072, all of 12073 and the start of 12074."""
    d = real_data / "lidar/ouster"
    src = OusterSource(d / f"{NAMES[2]}.pcap", meta=d / f"{NAMES[2]}.json")
    src.open()
    frames = list(src)
    assert [f.meta["frame_id"] for f in frames] == [12072, 12073, 12074]
    assert [f.meta["partial"] for f in frames] == [True, False, True]
    assert [f.meta["packets"] for f in frames] == [14, 64, 22]
    assert src.period_s == pytest.approx(0.1)


def test_bad_packets_are_counted_and_skipped(real_data: Path, tmp_path: Path) -> None:
    d = real_data / "lidar/ouster"
    pcap, meta = d / f"{NAMES[0]}.pcap", d / f"{NAMES[0]}.json"
    recs = [(t, p, data) for t, p, data in iter_udp(pcap)]
    lidar = [data for _, p, data in recs if p == 7502]
    info = load_sensor_info(meta)
    pf = core.PacketFormat(info)
    wrong_init = bytearray(lidar[3])
    wrong_init[4] ^= 0xFF  # init_id byte: a packet from a reconfigured sensor
    bad_mid = bytearray(lidar[5])
    mid_off = pf.packet_header_size + 8  # first column's measurement id
    bad_mid[mid_off:mid_off + 2] = (5000).to_bytes(2, "little")
    junk = [lidar[0][:100], lidar[0] + b"\0" * 16, bytes(wrong_init), bytes(bad_mid)]
    out = []
    for i, (t, p, data) in enumerate(recs):
        out.append((t, udp_frame(data, p)))
        if i % 7 == 3 and junk:
            out.append((t + 1000, udp_frame(junk.pop(), 7502)))
    assert not junk
    dirty = tmp_path / "dirty.pcap"
    write_pcap(dirty, out)
    src = OusterSource(dirty, meta=meta)
    src.open()
    frames = list(src)
    clean = list(OusterSource(pcap, meta=meta))
    assert len(frames) == len(clean) == 1
    np.testing.assert_array_equal(frames[0].data, clean[0].data)
    assert src.counters()["bad_packets"] == 4
    assert src.decoder.bad_reasons == {"size": 2, "id": 1, "measurement_id": 1}
    assert src.counters()["other_ports"] == 10  # IMU packets on 7503


def test_metadata_formats_and_errors(real_data: Path, tmp_path: Path) -> None:
    d = real_data / "lidar/ouster"
    old = load_sensor_info(d / f"{NAMES[2]}.json")  # only beam angles + lidar_mode
    assert (old.h, old.w) == (64, 1024)
    new = load_sensor_info(d / f"{NAMES[0]}.json")
    assert (new.h, new.w) == (32, 1024)

    with pytest.raises(DataError, match=r"nope\.json: no such Ouster metadata file"):
        load_sensor_info(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: Ouster metadata is not JSON"):
        load_sensor_info(bad)
    bad.write_text("[" * 50000 + "]" * 50000)  # RecursionError from json before: a traceback, exit 1
    with pytest.raises(DataError, match=r"bad\.json: Ouster metadata is not JSON \(nested too deeply\)"):
        load_sensor_info(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(DataError, match=r"empty\.json: ouster-sdk cannot parse this metadata \(.*beam_altitude_angles"):
        load_sensor_info(empty)
    partial = tmp_path / "partial.json"
    m = json.loads((d / f"{NAMES[1]}.json").read_text())
    del m["beam_azimuth_angles"]
    partial.write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"partial\.json: ouster-sdk cannot parse") as e:
        load_sensor_info(partial)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match=r"velodyne_vlp16\.pcap: Ouster metadata is not JSON"):
        OusterSource(d / f"{NAMES[0]}.pcap", meta=real_data / "lidar/velodyne/velodyne_vlp16.pcap")
    m = json.loads((d / f"{NAMES[0]}.json").read_text())  # an unknown packet profile was read as LEGACY, unsaid
    m["data_format"]["udp_profile_lidar"] = "BOGUS"
    partial.write_text(json.dumps(m))
    with pytest.raises(DataError, match=r"partial\.json: data_format\.udp_profile_lidar 'BOGUS' is not an Ouster"):
        load_sensor_info(partial)
    nested = json.loads(new.to_json_string())  # the layout the SDK itself writes: checked the same way
    nested["lidar_data_format"]["udp_profile_lidar"] = "RNG99_BOGUS"
    nested.get("config_params", {}).pop("udp_profile_lidar", None)
    partial.write_text(json.dumps(nested))
    with pytest.raises(DataError, match=r"lidar_data_format\.udp_profile_lidar 'RNG99_BOGUS' is not an Ouster"):
        load_sensor_info(partial)


def test_ouster_specs(real_data: Path) -> None:
    d = real_data / "lidar/ouster"
    pcap, meta = d / f"{NAMES[1]}.pcap", d / f"{NAMES[1]}.json"
    src = lidar_source(f"{pcap},meta={meta}")
    assert isinstance(src, OusterSource) and not src.live
    src = lidar_source(f"ouster:udp://127.0.0.1:7502,meta={meta}")
    assert isinstance(src, OusterSource) and src.live and src.reconnect
    with pytest.raises(DataError, match=r"needs meta=FILE\.json"):
        lidar_source(f"ouster:{pcap}")
    with pytest.raises(DataError, match="unknown option 'model' for ouster"):
        lidar_source(f"ouster:{pcap},meta={meta},model=VLP16")
    with pytest.raises(DataError, match=r"missing\.json: no such Ouster metadata file"):
        lidar_source(f"ouster:{pcap},meta={d / 'missing.json'}")


def test_metadata_numbers_no_sensor_has_are_one_line(real_data: Path, tmp_path: Path) -> None:
    """Found by a review: lidar_origin_to_beam_origin_mm 1e300 made every point infinite (a numpy overflow warning,
    exit 0), and a lidar_to_sensor_transform of 3 numbers was replaced by ouster-sdk's default without a word."""
    good = json.loads((real_data / "lidar/ouster" / f"{NAMES[1]}.json").read_text())
    for key, value, says in (("lidar_origin_to_beam_origin_mm", 1e300, "lidar_origin_to_beam_origin_mm 1e\\+300 is "
                                                                          "no sensor's"),
                             ("lidar_to_sensor_transform", [1, 2, 3], "lidar_to_sensor_transform should be 16 numbers "
                                                                      "\\(a 4x4 matrix, row by row\\), got 3"),
                             ("beam_altitude_angles", [1e9] * len(good["beam_altitude_angles"]),
                              "beam_altitude_angles holds a value that is no angle")):
        meta = tmp_path / f"{key}.json"
        meta.write_text(json.dumps({**good, key: value}))
        with pytest.raises(DataError, match=rf"{key}\.json: {says}"):
            load_sensor_info(meta)


def test_metadata_of_another_lidar_mode_is_refused(real_data: Path, tmp_path: Path) -> None:
    """Found by a review: metadata saying 512x10 for a 1024x10 sensor decoded the columns 0-511 (half the sweep)
    spread over 360 degrees, as complete frames, with no word (the rest counted as bad packets)."""
    d = real_data / "lidar/ouster"
    meta = json.loads((d / f"{NAMES[1]}.json").read_text())
    meta.update(lidar_mode="512x10")
    meta["data_format"] = {**meta["data_format"], "columns_per_frame": 512, "column_window": [0, 511]}
    bad = tmp_path / "mode512.json"
    bad.write_text(json.dumps(meta))
    src = lidar_source(f"ouster:{d / NAMES[1]}.pcap,meta={bad}")
    src.open()
    with pytest.raises(DataError, match=r"mode512\.json: columns_per_frame is 512 but the sensor's packets carry "
                                        r"measurement ids up to \d+: the metadata is of another lidar_mode"):
        list(src)


def test_bit_errors_in_measurement_ids_here_and_there_are_only_counted(real_data: Path) -> None:
    """Found by a review of the check above: two corrupt packets anywhere in a stream (a bit flipped in one column's
    id, 81 packets apart) ended the run as "metadata of another lidar_mode". Only a run of such packets says so."""
    d = real_data / "lidar/ouster"
    meta = d / f"{NAMES[2]}.json"
    src = lidar_source(f"ouster:{d / NAMES[2]}.pcap,meta={meta}")
    src.open()
    dec = src.decoder
    pf = core.PacketFormat(dec.info)
    frames = 0
    lidar = [(t, p) for t, port, p in iter_udp(d / f"{NAMES[2]}.pcap") if port == 7502]
    for i, (t, data) in enumerate(lidar):
        if i in (10, 80):
            data = bytearray(data)
            off = pf.packet_header_size + 8  # the first column's measurement id
            mid = int.from_bytes(data[off:off + 2], "little") | 0x400
            data[off:off + 2] = mid.to_bytes(2, "little")
            data = bytes(data)
        frames += dec.feed(t, data) is not None
    assert frames >= 2 and dec.bad_reasons.get("measurement_id") == 2


def test_ouster_pcap_without_meta_says_so(real_data: Path) -> None:
    """Read as Velodyne (no meta=), an Ouster capture gives no frame: one line pointing at Ouster."""
    from edge.stream.sources import lidar_spec_source

    pcap = real_data / "lidar/ouster" / f"{NAMES[0]}.pcap"
    with pytest.raises(DataError, match=r"no Velodyne frames on UDP port 2368; 64 packets are on port 7502; "
                                        r"port 7502 is the default of Ouster \(ouster:PATH,meta=SENSOR\.json\)"):
        list(lidar_spec_source(str(pcap)))


def test_metadata_of_another_sensor_says_so(real_data: Path) -> None:
    d = real_data / "lidar/ouster"
    src = OusterSource(d / f"{NAMES[0]}.pcap", meta=d / f"{NAMES[2]}.json")
    with pytest.raises(DataError) as e:
        list(src)
    msg = str(e.value)
    assert "\n" not in msg and "no Ouster frames: 64 of 64 packets on port 7502 were refused" in msg
    assert "is the metadata JSON from this sensor" in msg and "packets of 8448 B; the metadata's format makes" in msg
