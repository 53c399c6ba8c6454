"""``--lidar SPEC`` strings -> a LiDAR source.

Accepted forms (options after commas, in any order)::

    PATH.pcap                               Velodyne pcap (model from the packets)
    PATH.pcap,meta=FILE.json                Ouster pcap
    velodyne:PATH.pcap[,model=VLP16][,port=2368]
    velodyne:udp://HOST:PORT[,model=VLP16]
    udp://HOST:PORT[,model=VLP16]           live Velodyne
    ouster:PATH.pcap,meta=FILE.json[,port=7502]
    ouster:udp://HOST:PORT,meta=FILE.json   live Ouster

``model=`` overrides the Velodyne model for sensors whose factory byte is wrong. Everything is
checked here (files exist, metadata parses, the model is known), so a typo is one line before the
pipeline starts, not a thread dying later.
"""

from __future__ import annotations

import re
from pathlib import Path

from edge.errors import DataError
from edge.stream.sources.base import Source

FORMS = ("PATH.pcap[,meta=FILE.json]", "velodyne:PATH|udp://HOST:PORT[,model=VLP16]",
         "ouster:PATH|udp://HOST:PORT,meta=FILE.json", "udp://HOST:PORT")
_OPTIONS = {"velodyne": {"model", "port"}, "ouster": {"meta", "port"}}
_PCAP_SUFFIXES = (".pcap", ".pcapng", ".cap")


def _bad(spec: str, why: str) -> DataError:
    return DataError(f"--lidar {spec}: {why}; accepted: {' | '.join(FORMS)}")


def parse_lidar_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``spec`` -> (kind "velodyne"/"ouster", target path or udp:// URL, options)."""
    s = spec.strip()
    if not s:
        raise _bad(spec, "empty spec")
    kind: str | None = None
    m = re.match(r"^(velodyne|ouster):(?!//)", s, flags=re.IGNORECASE)
    if m:
        kind, s = m[1].lower(), s[m.end():]
    elif re.match(r"^[a-z][a-z0-9+]*:(?!//)", s, flags=re.IGNORECASE) and not re.match(r"^[a-z]:[\\/]", s, re.I):
        prefix = s.split(":", 1)[0]
        if prefix.lower() == "udp":
            raise _bad(spec, f"{s.split(',')[0]!r} is not a udp://HOST:PORT address")
        if prefix.lower() == "kitti":
            raise _bad(spec, "a KITTI folder is a camera + LiDAR source (kitti:FOLDER), not a --lidar spec")
        raise _bad(spec, f"unknown LiDAR kind {prefix!r}")
    parts = re.split(r",(?=\s*\w+\s*=)", s)
    target, opts = parts[0].strip(), {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        k, v = k.strip().lower(), v.strip()
        if not v:
            raise _bad(spec, f"option {k}= has no value")
        if k in opts:  # the last one silently won (model=VLP16,model=HDL32E decoded as HDL-32E)
            raise _bad(spec, f"option {k}= given twice")
        opts[k] = v
    if not target:
        raise _bad(spec, "no pcap path or udp:// address")
    if target.startswith("udp://") and "port" in opts:  # bound to the URL's port, port= unused without a word
        raise _bad(spec, "port= is the UDP port a pcap's packets were sent to; a udp:// address carries its own")
    if kind is None:
        kind = "ouster" if "meta" in opts else "velodyne"
    unknown = set(opts) - _OPTIONS[kind]
    if unknown:
        raise _bad(spec, f"unknown option {sorted(unknown)[0]!r} for {kind}")
    if "model" in opts:
        from edge.data.velodyne import normalize_model

        try:
            opts["model"] = normalize_model(opts["model"])
        except DataError as e:
            raise DataError(f"--lidar {spec}: {e}") from None
    if kind == "ouster" and "meta" not in opts:
        raise _bad(spec, "an Ouster source needs meta=FILE.json (the sensor's metadata)")
    if not target.startswith("udp://") and Path(target).suffix.lower() not in _PCAP_SUFFIXES \
            and not Path(target).is_file():
        raise _bad(spec, f"{target!r} is neither a .pcap file nor a udp:// address")
    return kind, target, opts


def lidar_source(spec: str, *, realtime: bool = False) -> Source:
    """Build (but do not open) the source for a ``--lidar`` spec; bad specs and missing files raise
    a one-line :class:`DataError`."""
    kind, target, opts = parse_lidar_spec(spec)
    if not target.startswith("udp://") and not Path(target).is_file():
        raise DataError(f"{target}: no such pcap file" if not Path(target).exists() else f"{target}: not a file")
    port: int | None = None
    if "port" in opts:
        try:
            port = int(opts["port"])
        except ValueError:
            raise _bad(spec, f"port={opts['port']} is not a number") from None
        if not 0 < port < 65536:
            raise _bad(spec, f"port={port} is out of range")
    if kind == "ouster":
        from edge.stream.sources.ouster import DEFAULT_PORT, OusterSource

        src: Source = OusterSource(target, meta=opts["meta"], realtime=realtime, port=port or DEFAULT_PORT)
    else:
        from edge.stream.sources.velodyne import DEFAULT_PORT as VLP_PORT
        from edge.stream.sources.velodyne import VelodyneSource

        src = VelodyneSource(target, model=opts.get("model"), realtime=realtime, port=port or VLP_PORT)
    src.spec = spec
    return src
