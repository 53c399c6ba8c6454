"""Hypothesis fuzzing of the text a user types as a source, LiDAR, `--set` or `--dim` spec: near-valid specs
(valid ones with fragments spliced in, options repeated, numbers replaced by extremes) and random text either
build what they name or are the project's one-line error, never another exception (a fuzz review found
fps=1e-320 a NaN clock, a nested `--set` value a RecursionError, and repeated or stray options silently taken).
Nothing here opens a device or a file: building a source does not read it."""

from __future__ import annotations

from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edge.errors import DataError, ExportError, SpecError  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])
NUMBERS = ["0", "-1", "1e-320", "1e309", "nan", "inf", "2147483648", "1.5", "", "abc", "\u00b2", "007"]
SOURCES = ["synthetic", "synthetic:5", "synthetic:5:64x64", "synthetic:5,seed=3", "waveform:sim,frames=4",
           "camera:0", "csi:1", "rtsp://10.0.0.1/s", "kitti:{d}", "kitti:{d},index=000001,fps=10", "{d}",
           "{d},fps=5", "multi:front={d},left={d}", "gst:videotestsrc ! appsink"]
LIDARS = ["udp://:2368", "velodyne:udp://127.0.0.1:2368,model=VLP16", "ouster:udp://:7502,meta=m.json",
          "{d}/x.pcap,port=2368", "velodyne:{d}/x.pcap,model=HDL32E"]


def _spec(templates: list[str], keys: list[str]) -> st.SearchStrategy[str]:
    """A valid template with options appended (known keys and stray ones, extreme numbers, repeats) and, at times,
    a fragment spliced in where the template's folder placeholder is not broken."""
    option = st.builds(lambda k, v: f",{k}={v}", st.sampled_from([*keys, "junk"]),
                       st.one_of(st.sampled_from(NUMBERS), st.sampled_from(NUMBERS), st.text(max_size=5)))
    frag = st.one_of(st.sampled_from([":", ",", "=", "x", ",junk", ":junk", ":0"]), st.text(max_size=4))
    return st.builds(lambda t, opts, parts, cut: (t + "".join(opts)).replace("{d}", "\0", 1)[:cut] + "".join(parts)
                     + (t + "".join(opts)).replace("{d}", "\0", 1)[cut:],
                     st.sampled_from(templates), st.lists(option, max_size=3), st.lists(frag, max_size=2),
                     st.integers(0, 80)).map(lambda x: x.replace("\0", "{d}"))


def _parsed(parse: Any, arg: Any, error: type[Exception]) -> Any:
    """``parse(arg)``, or None when it refused ``arg`` with ``error`` in one line (anything else escapes)."""
    try:
        return parse(arg)
    except error as e:
        assert "\n" not in str(e)
        return None


@settings(FUZZ, max_examples=800)
@given(raw=st.one_of(_spec(SOURCES, ["fps", "index", "seed", "frames", "loop"]), st.text(max_size=40)))
def test_source_specs_build_or_are_one_line(raw: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from edge.stream.sources import open_source

    d = tmp_path_factory.getbasetemp() / "spec_folder"
    d.mkdir(exist_ok=True)
    src = _parsed(open_source, raw.replace("{d}", str(d)), DataError)
    if src is None:
        return
    assert src.sensors
    fps = getattr(src, "fps", None)
    assert fps is None or 1e-3 <= fps <= 1000  # a clock the pacing can count in nanoseconds


@FUZZ
@given(raw=st.one_of(_spec(LIDARS, ["port", "model", "meta"]), st.text(max_size=40)))
def test_lidar_specs_build_or_are_one_line(raw: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from edge.stream.sources.lidar import parse_lidar_spec

    d = tmp_path_factory.getbasetemp() / "spec_folder"
    parsed = _parsed(parse_lidar_spec, raw.replace("{d}", str(d)), DataError)
    if parsed is None:
        return
    kind, target, opts = parsed
    assert kind in ("velodyne", "ouster") and target
    assert not (target.startswith("udp://") and "port" in opts)  # a udp:// address carries its own port


SET_VALUES = st.one_of(st.sampled_from([*NUMBERS, "[1, 2]", "true", "[" * 3000]), st.text(max_size=8))
SET_ITEMS = st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["keep", "dim", "a", " b "]), SET_VALUES),
                      st.text(max_size=12))


@FUZZ
@given(items=st.lists(SET_ITEMS, max_size=4))
def test_set_options_parse_or_are_one_line(items: list[str]) -> None:
    from edge.cli.export_cmd import parse_options

    out = _parsed(parse_options, items, ExportError)
    assert out is None or len(out) == len(items)  # each given once, none dropped


@FUZZ
@given(items=st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["batch", "n", ""]),
                                st.builds(":".join, st.lists(st.sampled_from([*NUMBERS, "4", "8"]), max_size=4))),
                      max_size=4))
def test_dim_ranges_parse_or_are_one_line(items: list[str]) -> None:
    from edge.runtimes.trt_engine import parse_dim_ranges

    out = _parsed(parse_dim_ranges, items, SpecError)
    assert out is None or (len(out) == len(items) and all(1 <= lo <= opt <= hi for lo, opt, hi in out.values()))
