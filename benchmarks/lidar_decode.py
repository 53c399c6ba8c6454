"""LiDAR decode rate on one core vs the sensor's real packet rate (target: >= 10x real time).

Packets of the real captures in shared/data/real are read once into memory and fed through the same
decoder objects the sources use (packet checks + velodyne-decoder / ouster-sdk + conversion of every
rotation to POINT_DTYPE), looped until ``--seconds`` of work per capture, pinned to one CPU. The
pcap reader's own rate is measured too (whole files, repeatedly). Looping one capture repeats its
packets: Velodyne azimuths wrap, so each loop closes a rotation; Ouster packets get the next frame id
before each loop (untimed) so the batcher closes a frame each loop, as with a live sensor.

Real packet rates: VLP-16 single return 754 pkt/s (one packet per 1.327 ms), HDL-32E 1808 pkt/s
(553 us); Ouster = columns_per_frame / columns_per_packet * fps from the metadata (1024x10 with 16
columns per packet = 640 pkt/s).

    python benchmarks/lidar_decode.py [--data ../shared/data/real] [--seconds 2] [--cpu 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from real_data import REAL_DATA  # $EDGE_REAL_DATA or ../shared/data/real (a sibling script)

from edge import jsonout

REPO = Path(__file__).resolve().parents[1]

VELODYNE = [("VLP-16", "velodyne/velodyne_vlp16.pcap", "VLP16", 1e6 / 1327.0),
            ("VLP-16 (factory byte)", "velodyne/velodyne_example.pcap", None, 1e6 / 1327.0),
            ("HDL-32E", "velodyne/velodyne_vlp32.pcap", None, 1e6 / 553.0)]
OUSTER = [("OS-1-32-G LEGACY 1024x10", "OS-1-32-G_v2.1.1_1024x10"),
          ("OS-0-32 RNG19 dual 1024x10", "OS-0-32-U1_v2.2.0_1024x10"),
          ("OS-1-64 LEGACY 1024x10", "OS-1-64_legacy_rust-lidar-utils_example")]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("edge-deploy", "numpy", "dpkt", "velodyne-decoder", "ouster-sdk"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _loop(feed, packets: list[bytes], finish, seconds: float, prepare=None) -> tuple[int, int, int, float]:
    """Feed ``packets`` in loops for about ``seconds`` of feeding: (packets, frames, points, elapsed).

    ``feed(i, payload)`` gets the running packet index to make host stamps from; ``prepare(loop,
    packets)`` (untimed) may rewrite the packets between loops."""
    n = frames = points = 0
    el = 0.0
    loop = 0
    while el < seconds or loop < 3:
        if prepare is not None:
            packets = prepare(loop, packets)
        t0 = time.perf_counter()
        for payload in packets:
            out = feed(n, payload)
            n += 1
            if out is not None:
                frames += 1
                points += len(out[0])
        el += time.perf_counter() - t0
        loop += 1
    t0 = time.perf_counter()
    out = finish()
    el += time.perf_counter() - t0
    if out is not None:
        frames += 1
        points += len(out[0])
    return n, frames, points, el


def bench_velodyne(data: Path, seconds: float) -> dict:
    from edge.data.pcap import iter_udp
    from edge.data.velodyne import VelodyneDecoder

    res = {}
    for label, rel, model, real_pps in VELODYNE:
        path = data / "lidar" / rel
        pkts = [d for _, p, d in iter_udp(path) if p == 2368]
        dec = VelodyneDecoder(model)

        def feed(i: int, d: bytes, dec: VelodyneDecoder = dec, period: float = 1.0 / real_pps) -> object:
            return dec.feed(1.6e9 + i * period, d)  # host stamps keep advancing across loops, as live

        n, frames, points, el = _loop(feed, pkts, dec.finish, seconds)
        pps = n / el
        res[label] = {"file": rel, "model": model or dec.model, "packets": n, "rotations": frames,
                      "points_per_s": points / el, "packets_per_s": pps, "us_per_packet": 1e6 / pps,
                      "real_packets_per_s": real_pps, "x_real_time": pps / real_pps,
                      "bad_packets": dec.counters["bad_packets"], "decode_errors": dec.counters["decode_errors"]}
    return res


def bench_ouster(data: Path, seconds: float) -> dict:
    import numpy as np
    from ouster.sdk import core

    from edge.data.ouster import OusterDecoder, load_sensor_info
    from edge.data.pcap import iter_udp

    res = {}
    for label, name in OUSTER:
        d = data / "lidar/ouster"
        info = load_sensor_info(d / f"{name}.json")
        pf = core.PacketFormat(info)
        pkts = [p for _, port, p in iter_udp(d / f"{name}.pcap") if port == 7502]
        legacy = str(info.format.udp_profile_lidar).endswith("LEGACY")
        offsets = [c * pf.col_size + 10 for c in range(pf.columns_per_packet)]  # LEGACY: frame id per column

        def prepare(loop: int, packets: list[bytes], pf: object = pf, legacy: bool = legacy,
                    offsets: list[int] = offsets) -> list[bytes]:
            """Every loop is the next frame, as from a live sensor (the batcher drops older frame ids)."""
            fid = (loop + 1) % (pf.max_frame_id + 1)
            out = []
            for p in packets:
                lp = core.LidarPacket(pf)
                lp.buf[:] = np.frombuffer(p, np.uint8)
                if legacy:
                    for off in offsets:
                        lp.buf[off:off + 2] = (fid & 0xFF, fid >> 8)
                else:
                    pf.set_frame_id(lp, fid)
                out.append(bytes(lp.buf))
            got = pf.packet_header(core.ColHeader.FRAME_ID, lp.buf) if legacy else [pf.frame_id(lp.buf)]
            if not all(int(g) == fid for g in got):
                raise SystemExit(f"{pf}: could not rewrite the frame id")
            return out

        dec = OusterDecoder(info)

        def feed(i: int, p: bytes, dec: OusterDecoder = dec) -> object:
            return dec.feed(1 + i * 1_562_500, p)

        n, frames, points, el = _loop(feed, pkts, dec.finish, seconds, prepare)
        pps = n / el
        fmt = info.format
        real_pps = fmt.columns_per_frame / fmt.columns_per_packet * (fmt.fps or 10)
        res[label] = {"file": f"ouster/{name}.pcap", "profile": str(fmt.udp_profile_lidar).rsplit(".", 1)[-1],
                      "beams": info.h, "packets": n, "frames": frames, "points_per_s": points / el,
                      "packets_per_s": pps, "us_per_packet": 1e6 / pps, "real_packets_per_s": real_pps,
                      "x_real_time": pps / real_pps, "bad_packets": dec.counters["bad_packets"],
                      "decode_errors": dec.counters["decode_errors"]}
    return res


def bench_pcap(data: Path, seconds: float) -> dict:
    from edge.data.pcap import iter_udp

    res = {}
    for rel in ("velodyne/velodyne_vlp16.pcap", "ouster/OS-0-32-U1_v2.2.0_1024x10.pcap"):
        path = data / "lidar" / rel
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            for _ in iter_udp(path):
                n += 1
        el = time.perf_counter() - t0
        res[rel] = {"datagrams_per_s": n / el, "MB_per_s": n / el * path.stat().st_size / 1e6
                    / sum(1 for _ in iter_udp(path))}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REAL_DATA)
    ap.add_argument("--seconds", type=float, default=2.0, help="work per capture")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lidar_decode.json")
    args = ap.parse_args()
    if not (args.data / "MANIFEST.md").is_file():
        raise SystemExit(f"{args.data}: real data folder not found (set --data or EDGE_REAL_DATA)")

    cpu = None
    if hasattr(os, "sched_setaffinity"):
        cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})

    from edge.bench.machine import machine
    from edge.files import atomic_write_text

    results = {"velodyne": bench_velodyne(args.data, args.seconds), "ouster": bench_ouster(args.data, args.seconds),
               "pcap_reader": bench_pcap(args.data, args.seconds)}
    report = {"what": "LiDAR packet decode rate, one core, packets from memory through the source decoders "
                      "(checks + library decode + POINT_DTYPE conversion)",
              "cpu": machine()["cpu"], "isa": machine()["isa"], "pinned_cpu": cpu, "machine": platform.machine(),
              "seconds_per_case": args.seconds,
              "tools": _versions(), "target_x_real_time": 10.0, "results": results}

    print(f"LiDAR decode on one core ({report['cpu']}, cpu {cpu})")
    print(f"{'sensor':<28} {'pkt/s':>9} {'us/pkt':>7} {'Mpts/s':>7} {'real pkt/s':>10} {'x real':>7}")
    worst = float("inf")
    for group in ("velodyne", "ouster"):
        for label, r in results[group].items():
            worst = min(worst, r["x_real_time"])
            print(f"{label:<28} {r['packets_per_s']:>9.0f} {r['us_per_packet']:>7.1f} {r['points_per_s'] / 1e6:>7.2f} "
                  f"{r['real_packets_per_s']:>10.0f} {r['x_real_time']:>6.1f}x")
    for rel, r in results["pcap_reader"].items():
        print(f"pcap reader {rel}: {r['datagrams_per_s']:.0f} datagrams/s ({r['MB_per_s']:.0f} MB/s)")
    report["min_x_real_time"] = worst
    print(f"slowest: {worst:.1f}x real time (target >= 10x): {'OK' if worst >= 10 else 'BELOW TARGET'}")
    atomic_write_text(args.out, jsonout.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
