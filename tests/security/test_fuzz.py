"""Fuzzing the two JSON documents users hand us: a bundle's manifest and an Ouster sensor's metadata.

Each case replaces or deletes one value somewhere in a valid document (any depth) with an arbitrary
JSON value, then runs what the commands run on it. The only acceptable failure is a one-line
EdgeError; anything else escaping (TypeError, KeyError, a crash) fails. The default run tries a few
hundred cases; the slow run 10,000 of each.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import EdgeError

FAST = 200
SLOW = 10_000

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for k in path[:-1]:
        node = node[k]
    if delete:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    return doc


def mutations(doc: Any) -> st.SearchStrategy[Any]:
    paths = _paths(doc)
    return st.builds(lambda i, v, d: _mutate(doc, paths[i], v, d),
                     st.integers(0, len(paths) - 1), JSON, st.booleans())


def _one_line(e: EdgeError) -> None:
    assert "\n" not in str(e), str(e)


# ------------------------------------------------------------------------------------------ manifest


@pytest.fixture(scope="module")
def lane_bundle(tiny_bundle: Path) -> Path:
    """The session's tiny bundle (every program): the fuzz mutates a copy."""
    return tiny_bundle


def _consume_bundle(path: Path) -> None:
    """What edge run / edge bench / edge.load do with a manifest before any runtime session."""
    from edge.bundle import Bundle
    from edge.cli.run_cmd import results_name
    from edge.plans import program_plans
    from edge.program import _artifact_names, bundle_programs, card_for_bundle

    b = Bundle.load(path)
    results_name(path)
    card = card_for_bundle(b)
    specs = bundle_programs(b, card)
    for g in b.graphs:
        b.graph_io(g)
    for spec in specs:
        for backend in ("onnxruntime", "openvino", "torch"):
            for prec in ("fp32", "fp16", "int8"):
                _artifact_names(b, spec, backend, prec)
    program_plans(b, specs, ["torch", "onnxruntime", "openvino"])
    if card is not None and card.data is not None:
        cfg = b.manifest["model"]["config"]
        card.preprocess(_first_sample(card, json.dumps(cfg, sort_keys=True)), cfg)


_SAMPLES: dict[tuple[str, str], Any] = {}


def _first_sample(card: Any, cfg_json: str) -> Any:
    """The family's first evaluation sample for a config, rendered once per config: most mutations leave the
    config alone, and rendering a 1280x720 clip was most of each example's time (~0.3 s on a Zen 1 core)."""
    key = (card.name, cfg_json)
    if key not in _SAMPLES:
        _SAMPLES[key] = card.data.samples(json.loads(cfg_json), "evaluation", 1, 0)[0][0]
    return _SAMPLES[key]


def _manifest_fuzz(lane_bundle: Path, tmp_path_factory: pytest.TempPathFactory, n: int) -> None:
    work = tmp_path_factory.mktemp("m") / "b"
    shutil.copytree(lane_bundle, work)
    base = json.loads((lane_bundle / "manifest.json").read_text())
    _consume_bundle(work)  # the unmutated bundle is fine

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(mutations(base))
    def case(m: Any) -> None:
        (work / "manifest.json").write_text(json.dumps(m))
        try:
            _consume_bundle(work)
        except EdgeError as e:
            _one_line(e)

    case()


def test_manifest_fuzz(lane_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _manifest_fuzz(lane_bundle, tmp_path_factory, FAST)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 10k bundle loads: ~6-10 min on 2 cores, more when the machine is shared
def test_manifest_fuzz_10k(lane_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _manifest_fuzz(lane_bundle, tmp_path_factory, SLOW)


# ------------------------------------------------------------------------------------------ Ouster metadata


def _base_meta() -> dict[str, Any]:
    pix = 32
    return {"lidar_mode": "1024x10", "beam_altitude_angles": [16.0 - i for i in range(pix)],
            "beam_azimuth_angles": [0.0] * pix,
            "data_format": {"columns_per_frame": 1024, "columns_per_packet": 16, "pixels_per_column": pix,
                            "column_window": [0, 1023], "pixel_shift_by_row": [0] * pix,
                            "udp_profile_lidar": "LEGACY", "udp_profile_imu": "LEGACY"},
            "lidar_origin_to_beam_origin_mm": 12.0, "prod_line": "OS-1-32", "initialization_id": 1,
            "prod_sn": "992137000142", "lidar_to_sensor_transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]}


def _ouster_fuzz(tmp_path_factory: pytest.TempPathFactory, n: int) -> None:
    pytest.importorskip("ouster.sdk")
    import resource

    from edge.data.ouster import OusterDecoder, load_sensor_info

    path = tmp_path_factory.mktemp("o") / "meta.json"
    base = _base_meta()
    path.write_text(json.dumps(base))
    OusterDecoder(load_sensor_info(path))

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(mutations(base))
    def case(m: Any) -> None:
        path.write_text(json.dumps(m))
        try:
            dec = OusterDecoder(load_sensor_info(path))
            dec.feed(1, bytes(dec.size))  # a zero packet: refused or decoded, never a crash
        except EdgeError as e:
            _one_line(e)

    case()
    # no case allocated what a forged geometry would (the LUT of 2M columns was 11 GB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 < 4 << 30 or os.environ.get("CI_BIG_RSS")


def test_ouster_metadata_fuzz(tmp_path_factory: pytest.TempPathFactory) -> None:
    _ouster_fuzz(tmp_path_factory, FAST)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ouster_metadata_fuzz_10k(tmp_path_factory: pytest.TempPathFactory) -> None:
    _ouster_fuzz(tmp_path_factory, SLOW)
