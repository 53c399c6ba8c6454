"""Hypothesis fuzzing of everything that parses sensor bytes: the pcap reader on torn, flipped and
random files, the Velodyne and Ouster packet checks + decoders on random sizes, random bytes and
real packets with flipped bytes. Nothing may escape as an exception (or crash the interpreter: the
checks exist because ouster-sdk segfaults on some misuse), and the counters must account for every
packet fed."""

from __future__ import annotations

import io
import struct
from functools import cache
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edge.data.pcap import PcapReader, iter_udp  # noqa: E402
from edge.errors import DataError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VLP = "lidar/velodyne/velodyne_vlp16.pcap"
OUSTER = ["OS-0-32-U1_v2.2.0_1024x10", "OS-1-64_legacy_rust-lidar-utils_example"]


@cache
def file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


@cache
def datagrams(path: str, port: int) -> tuple[bytes, ...]:
    return tuple(d for _, p, d in iter_udp(path) if p == port)


def read_all(data: bytes) -> tuple[list, dict[str, int]] | None:
    """Every datagram of an in-memory capture; None when the header is rejected (a DataError)."""
    try:
        r = PcapReader(io.BytesIO(data), name="fuzz.pcap")
    except DataError as e:
        assert "fuzz.pcap" in str(e) and "\n" not in str(e)
        return None
    return list(r), r.counters


@FUZZ
@given(cut=st.integers(min_value=0, max_value=200_000))
def test_pcap_torn_anywhere(real_data: Path, cut: int) -> None:
    for name in (VLP, "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap"):
        data = file_bytes(str(real_data / name))
        full = read_all(data)
        assert full is not None
        out = read_all(data[:cut])
        if out is None:
            assert cut < 24
            continue
        got, counts = out
        assert got == full[0][:len(got)]  # a prefix of the real datagrams, never garbage
        if cut < len(data):  # every record of these files is a datagram: a cut one is missing
            assert len(got) < len(full[0])
            assert counts["truncated"] <= 1 and counts["malformed"] == 0


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=40))
def test_pcap_flipped_bytes(real_data: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(file_bytes(str(real_data / VLP)))
    for pos, val in flips:
        data[pos % len(data)] = val
    out = read_all(bytes(data))
    if out is not None:
        got, counts = out
        assert counts["udp"] == len(got) <= counts["records"] <= 100


@FUZZ
@given(data=st.binary(min_size=0, max_size=3000))
def test_pcap_random_bytes(data: bytes) -> None:
    read_all(data)
    read_all(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + b"\0" * 8 + b"\xff\xff\0\0\x01\0\0\0" + data)  # valid header
    read_all(b"\x0a\x0d\x0d\x0a" + data)  # pcapng magic


@FUZZ
@given(data=st.binary(min_size=0, max_size=1400), model=st.sampled_from([None, "VLP16", "VLS128"]))
def test_velodyne_random_packets(data: bytes, model: str | None) -> None:
    pytest.importorskip("velodyne_decoder")
    from edge.data.velodyne import VelodyneDecoder, check_packet

    dec = VelodyneDecoder(model)
    for i in range(3):
        dec.feed(1.0 + i * 1e-3, data)
    dec.finish()
    if check_packet(data) is not None:
        assert dec.counters["bad_packets"] == 3
    assert dec.counters["packets"] == 3


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 1205), st.integers(0, 255)), min_size=1, max_size=30),
       which=st.integers(0, 83), model=st.sampled_from([None, "VLP16"]))
def test_velodyne_flipped_real_packets(real_data: Path, flips: list[tuple[int, int]], which: int,
                                       model: str | None) -> None:
    pytest.importorskip("velodyne_decoder")
    from edge.data.velodyne import VelodyneDecoder, check_packet

    pkts = datagrams(str(real_data / VLP), 2368)
    bad = bytearray(pkts[which])
    for pos, val in flips:
        bad[pos] = val
    dec = VelodyneDecoder(model)
    rotations = 0
    for i, p in enumerate(pkts):  # the whole real stream with one damaged packet in it
        rotations += dec.feed(1.0 + i * 1e-3, bytes(bad) if i == which else p) is not None
    rotations += dec.finish() is not None
    assert rotations >= 1
    assert dec.counters["packets"] == len(pkts)
    if check_packet(bytes(bad)) is not None:
        assert dec.counters["bad_packets"] >= 1


@pytest.fixture(scope="module")
def ouster_decoders(real_data: Path) -> dict:
    pytest.importorskip("ouster.sdk")
    from edge.data.ouster import load_sensor_info

    d = real_data / "lidar/ouster"
    return {n: (load_sensor_info(d / f"{n}.json"), datagrams(str(d / f"{n}.pcap"), 7502)) for n in OUSTER}


@FUZZ
@given(name=st.sampled_from(OUSTER), size_delta=st.integers(-200, 200), seed=st.binary(min_size=1, max_size=64))
def test_ouster_random_packets(ouster_decoders: dict, name: str, size_delta: int, seed: bytes) -> None:
    from edge.data.ouster import OusterDecoder

    info, pkts = ouster_decoders[name]
    dec = OusterDecoder(info)
    size = max(0, len(pkts[0]) + size_delta)
    data = (seed * (size // len(seed) + 1))[:size]
    for i in range(3):
        dec.feed(1 + i, data)
    dec.finish()
    assert dec.counters["packets"] == 3
    if size != dec.size:
        assert dec.bad_reasons.get("size") == 3


@FUZZ
@given(name=st.sampled_from(OUSTER), which=st.integers(0, 63),
       flips=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), min_size=1, max_size=30))
def test_ouster_flipped_real_packets(ouster_decoders: dict, name: str, which: int,
                                     flips: list[tuple[int, int]]) -> None:
    from ouster.sdk import core

    from edge.data.ouster import OusterDecoder

    info, pkts = ouster_decoders[name]
    dec = OusterDecoder(info)
    bad = bytearray(pkts[which])
    for pos, val in flips:
        bad[pos % len(bad)] = val
    # the fast measurement-id view reads what the SDK reads
    lp = core.LidarPacket(dec.pf)
    lp.buf[:] = np.frombuffer(bytes(bad), np.uint8)
    np.testing.assert_array_equal(dec._measurement_ids(bytes(bad), lp.buf),
                                  dec.pf.packet_header(core.ColHeader.MEASUREMENT_ID, lp.buf))
    frames = 0
    for i, p in enumerate(pkts):
        frames += dec.feed(1000 + i, bytes(bad) if i == which else p) is not None
    frames += dec.finish() is not None
    assert frames >= 1
    assert dec.counters["packets"] == len(pkts)
    assert dec.counters["decode_errors"] == 0


def _ng_blocks(order: str, kinds: list[tuple[int, int]], shb_len: int = 28) -> bytes:
    """A section header (claiming ``shb_len`` bytes) then blocks of (type, body length) in byte order ``order``;
    lengths as they are (odd ones too), bodies zeros."""
    out = struct.pack(order + "IIIHHq", 0x0A0D0D0A, shb_len, 0x1A2B3C4D, 1, 0, -1) + struct.pack(order + "I", 28)
    for btype, n in kinds:
        out += struct.pack(order + "II", btype, 12 + n) + b"\0" * n + struct.pack(order + "I", 12 + n)
    return out


@FUZZ
@given(order=st.sampled_from("<>"), kinds=st.lists(st.tuples(st.sampled_from([1, 3, 4, 5, 6, 0xBAD]),
                                                             st.integers(0, 64)), max_size=8),
       reads=st.lists(st.one_of(st.integers(-1, 80), st.none()), min_size=1, max_size=60),
       shb_len=st.sampled_from([28, 8, 9, 10, 11, 12, 13]))
def test_pcapng_block_checks_hand_dpkt_a_prefix_of_the_file(order: str, kinds: list[tuple[int, int]],
                                                            reads: list[int | None], shb_len: int) -> None:
    """The block checks (`_Blocks`) between dpkt and the file: whatever the read sizes, what is handed out is a
    prefix of the file, never more than asked (a review's fuzz found a read past a section header that claimed
    fewer bytes than its own header handed out the rest of the file)."""
    from edge.data.pcap import _Blocks

    data = _ng_blocks(order, kinds, shb_len)
    bl, got = _Blocks(io.BytesIO(data)), bytearray()
    for n in reads:
        c = bl.read() if n is None else bl.read(n)
        assert n is None or n < 0 or len(c) <= n
        got += c
    assert bytes(got) == data[:len(got)]
    # a claimed length that is not the real one makes the next "block" whatever lies there: it may claim too much,
    # and then nothing from it on is handed out
    assert bl.stop is None or len(got) <= bl.stop[0]
    if shb_len == 28:  # every length true: nothing is stopped
        assert bl.stop is None
