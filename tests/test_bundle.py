"""Bundle folders: atomic writing, manifest validation and file verification at load."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.bundle import MANIFEST, SCHEMA_VERSION, Bundle, BundleWriter
from edge.errors import BundleError, EdgeError
from edge.files import atomic_path, atomic_write_bytes, atomic_write_text, sha256_file
from edge.spec import IOSpec, TensorSpec

IO = IOSpec((TensorSpec("x", "float32", ("batch", 3)),), (TensorSpec("y", "float32", ("batch", 2)),))
FILES = {"model.onnx": b"\x08\x01onnx-bytes" * 50, "weights.pt": b"weights" * 33, "sub/extra.bin": b"\x00\x01\x02"}


def _manifest() -> dict[str, Any]:
    return {"model": {"name": "toy", "version": "1"}, "io": IO.to_dict(), "preprocess": {"scale": 1.0}}


def make_bundle(out: Path, files: dict[str, bytes] | None = None) -> Path:
    files = FILES if files is None else files
    with BundleWriter(out, _manifest()) as w:
        for name, data in files.items():
            w.write_bytes(name, data, "onnx" if name.endswith(".onnx") else "data")
        if "model.onnx" in files:
            w.add_artifact({"name": "onnx-fp32", "format": "onnx", "file": "model.onnx",
                            "extra_files": [n for n in files if n.startswith("sub/")], "graph": "full",
                            "precision": "fp32"})
        if "weights.pt" in files:
            w.add_artifact({"name": "torch", "format": "checkpoint", "file": "weights.pt",
                            "graphs": ["full", "encoder"], "precision": "fp32"})
        w.commit()
    return out


def _read_manifest(b: Path) -> dict[str, Any]:
    return json.loads((b / MANIFEST).read_text())


def _write_manifest(b: Path, m: dict[str, Any]) -> None:
    (b / MANIFEST).write_text(json.dumps(m))


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _current_umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# ------------------------------------------------------------------------------------------ round trip


def test_write_load_round_trip(tmp_path: Path) -> None:
    out = make_bundle(tmp_path / "bundle")
    b = Bundle.load(out)
    assert b.path == out
    assert b.model_name == "toy"
    assert b.io == IO
    assert b.manifest["schema_version"] == SCHEMA_VERSION
    assert b.manifest["preprocess"] == {"scale": 1.0}
    assert set(b.manifest["files"]) == set(FILES)
    for name, data in FILES.items():
        entry = b.manifest["files"][name]
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert b.file(name) == out / name
        assert b.file(name).read_bytes() == data
    assert b.manifest["files"]["model.onnx"]["role"] == "onnx"
    assert [a["name"] for a in b.artifacts] == ["onnx-fp32", "torch"]
    # the folder holds exactly the files + manifest, nothing hidden beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {*FILES, MANIFEST}


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    p = tmp_path / "f"
    data = os.urandom(3 * 1024 + 7)
    p.write_bytes(data)
    assert sha256_file(p, chunk=1000) == hashlib.sha256(data).hexdigest()


def test_committed_folder_has_normal_permissions(tmp_path: Path) -> None:
    with _umask(0o022):
        out = make_bundle(tmp_path / "bundle")
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # mkdtemp's 0700 was widened per umask
    with _umask(0o027):
        out2 = make_bundle(tmp_path / "bundle2")
    assert stat.S_IMODE(out2.stat().st_mode) == 0o750


# ------------------------------------------------------------------------------------------ atomicity


def test_exception_inside_writer_leaves_nothing(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    with pytest.raises(RuntimeError, match=r"boom"), BundleWriter(parent / "bundle", _manifest()) as w:
        w.write_bytes("model.onnx", b"partial", "onnx")
        assert w.tmp.parent == parent and w.tmp.name.startswith(".")
        assert w.tmp.is_dir()
        raise RuntimeError("boom")
    assert list(parent.iterdir()) == []


def test_failed_commit_leaves_nothing(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    with pytest.raises(BundleError, match=r"ghost.onnx"), BundleWriter(parent / "bundle", _manifest()) as w:
        w.write_bytes("model.onnx", b"x", "onnx")
        w.add_artifact({"name": "onnx", "format": "onnx", "file": "ghost.onnx"})
        w.commit()
    assert list(parent.iterdir()) == []


def test_leaving_block_without_commit_leaves_nothing(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "bundle", _manifest()) as w:
        w.write_bytes("model.onnx", b"x", "onnx")
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_existing_bundle(tmp_path: Path) -> None:
    out = make_bundle(tmp_path / "bundle")
    before = _read_manifest(out)
    with pytest.raises(RuntimeError), BundleWriter(out, _manifest()) as w:
        w.write_bytes("other.bin", b"new", "data")
        raise RuntimeError("interrupted")
    assert _read_manifest(out) == before
    Bundle.load(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_commit_replaces_existing_bundle(tmp_path: Path) -> None:
    out = make_bundle(tmp_path / "bundle")
    assert (out / "weights.pt").is_file()
    new_files = {"model.onnx": b"version two"}
    make_bundle(out, new_files)
    b = Bundle.load(out)
    assert set(b.manifest["files"]) == {"model.onnx"}
    assert (out / "model.onnx").read_bytes() == b"version two"
    assert not (out / "weights.pt").exists()  # old files are gone, not merged
    assert not (out / "sub").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no .old / .partial left


def test_commit_into_existing_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    make_bundle(out)
    Bundle.load(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_refuses_non_empty_non_bundle_folder(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(BundleError, match=r"photos.*not empty"):
        BundleWriter(out, _manifest())
    assert (out / "holiday.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]


def test_refuses_out_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "thing"
    f.write_text("data")
    with pytest.raises(BundleError, match=r"thing"):
        BundleWriter(f, _manifest())
    assert f.read_text() == "data"


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("data")
    with pytest.raises(BundleError, match=r"afile"):
        BundleWriter(f / "bundle", _manifest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_writer_rejects_bad_file_names(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "b", _manifest()) as w:
        for bad in ("../x", "/abs/x", MANIFEST, ""):
            with pytest.raises(BundleError):
                w.path_for(bad)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ load errors


def _corrupt_missing_folder(b: Path) -> Path:
    import shutil

    shutil.rmtree(b)
    return b


def _corrupt_no_manifest(b: Path) -> Path:
    (b / MANIFEST).unlink()
    return b


def _corrupt_invalid_json(b: Path) -> Path:
    (b / MANIFEST).write_text("{this is not json")
    return b


def _corrupt_truncated_manifest(b: Path) -> Path:
    text = (b / MANIFEST).read_text()
    (b / MANIFEST).write_text(text[: len(text) // 2])
    return b


def _corrupt_binary_manifest(b: Path) -> Path:
    (b / MANIFEST).write_bytes(b"\xff\xfe\x00garbage")
    return b


def _corrupt_manifest_not_object(b: Path) -> Path:
    (b / MANIFEST).write_text("[1, 2, 3]")
    return b


def _corrupt_newer_schema(b: Path) -> Path:
    m = _read_manifest(b)
    m["schema_version"] = SCHEMA_VERSION + 1
    _write_manifest(b, m)
    return b


def _corrupt_schema_not_int(b: Path) -> Path:
    m = _read_manifest(b)
    m["schema_version"] = "1"
    _write_manifest(b, m)
    return b


def _corrupt_file_missing(b: Path) -> Path:
    (b / "weights.pt").unlink()
    return b


def _corrupt_file_truncated(b: Path) -> Path:
    p = b / "model.onnx"
    p.write_bytes(p.read_bytes()[:-10])
    return b


def _corrupt_same_size(b: Path) -> Path:
    p = b / "model.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    return b


def _corrupt_unlisted_artifact_file(b: Path) -> Path:
    m = _read_manifest(b)
    m["artifacts"][0]["file"] = "ghost.onnx"
    (b / "ghost.onnx").write_bytes(b"present on disk but not listed")
    _write_manifest(b, m)
    return b


def _corrupt_unlisted_extra_file(b: Path) -> Path:
    m = _read_manifest(b)
    m["artifacts"][0]["extra_files"] = ["model.onnx.data"]
    _write_manifest(b, m)
    return b


def _corrupt_bad_sha_entry(b: Path) -> Path:
    m = _read_manifest(b)
    m["files"]["model.onnx"]["sha256"] = "abc"
    _write_manifest(b, m)
    return b


def _corrupt_bad_io(b: Path) -> Path:
    m = _read_manifest(b)
    m["io"]["inputs"][0]["dtype"] = "complex128"
    _write_manifest(b, m)
    return b


LOAD_ERRORS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing folder": (_corrupt_missing_folder, "no such bundle"),
    "missing manifest": (_corrupt_no_manifest, "manifest.json.*missing"),
    "invalid json": (_corrupt_invalid_json, "manifest.json.*corrupt"),
    "truncated manifest": (_corrupt_truncated_manifest, "manifest.json.*corrupt"),
    "binary manifest": (_corrupt_binary_manifest, "manifest.json.*corrupt"),
    "manifest not an object": (_corrupt_manifest_not_object, "manifest.json.*object"),
    "newer schema": (_corrupt_newer_schema, f"schema_version {SCHEMA_VERSION + 1}.*newer"),
    "schema not int": (_corrupt_schema_not_int, "schema_version"),
    "listed file missing": (_corrupt_file_missing, "weights.pt.*missing"),
    "file truncated": (_corrupt_file_truncated, "model.onnx.*size"),
    "file changed same size": (_corrupt_same_size, "model.onnx.*sha256"),
    "artifact unlisted file": (_corrupt_unlisted_artifact_file, "unlisted file 'ghost.onnx'"),
    "artifact unlisted extra file": (_corrupt_unlisted_extra_file, "model.onnx.data"),
    "bad sha entry": (_corrupt_bad_sha_entry, "model.onnx"),
    "bad io": (_corrupt_bad_io, "io"),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_load_errors(tmp_path: Path, case: str) -> None:
    corrupt, pattern = LOAD_ERRORS[case]
    b = corrupt(make_bundle(tmp_path / "bundle"))
    with pytest.raises(BundleError, match=pattern) as ei:
        Bundle.load(b)
    msg = str(ei.value)
    assert str(b) in msg
    assert "\n" not in msg


@pytest.mark.parametrize("key", ["schema_version", "model", "io", "files", "artifacts"])
def test_load_missing_required_key(tmp_path: Path, key: str) -> None:
    b = make_bundle(tmp_path / "bundle")
    m = _read_manifest(b)
    del m[key]
    _write_manifest(b, m)
    with pytest.raises(BundleError, match=rf"lacks.*'{key}'") as ei:
        Bundle.load(b)
    assert str(b / MANIFEST) in str(ei.value)


def test_load_not_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "file.onnx"
    f.write_bytes(b"x")
    with pytest.raises(BundleError, match=r"file.onnx.*not a bundle folder"):
        Bundle.load(f)


@pytest.mark.parametrize("bad", ["../x", "sub/../../x", "/tmp/x"])
def test_load_rejects_path_traversal(tmp_path: Path, bad: str) -> None:
    """A manifest naming a file outside the bundle is refused, even when that file exists and matches."""
    b = make_bundle(tmp_path / "bundle")
    outside = (b / bad) if not bad.startswith("/") else Path(bad)
    if not bad.startswith("/"):
        outside.parent.mkdir(parents=True, exist_ok=True)
        outside.write_bytes(b"outside the bundle")
        entry = {"sha256": sha256_file(outside), "size": outside.stat().st_size}
    else:
        entry = {"sha256": "0" * 64, "size": 1}
    m = _read_manifest(b)
    m["files"][bad] = entry
    _write_manifest(b, m)
    for verify in (True, False):
        with pytest.raises(BundleError, match=r"bad file name") as ei:
            Bundle.load(b, verify=verify)
        assert repr(bad) in str(ei.value) or bad in str(ei.value)
        # like every other load error, it says which bundle is broken
        assert str(b) in str(ei.value)


def test_verify_false_skips_hash_check(tmp_path: Path) -> None:
    b = _corrupt_same_size(make_bundle(tmp_path / "bundle"))
    Bundle.load(b, verify=False)
    with pytest.raises(BundleError, match=r"sha256"):
        Bundle.load(b)


def test_bundle_error_is_edge_error() -> None:
    assert issubclass(BundleError, EdgeError)


# ------------------------------------------------------------------------------------------ accessors


def test_artifact_filter(tmp_path: Path) -> None:
    b = Bundle.load(make_bundle(tmp_path / "bundle"))
    assert b.artifact()["name"] == "onnx-fp32"
    assert b.artifact(fmt="onnx")["file"] == "model.onnx"
    assert b.artifact(fmt="checkpoint")["name"] == "torch"
    assert b.artifact(fmt="checkpoint", graph="encoder")["name"] == "torch"  # via "graphs" list
    assert b.artifact(name="torch", precision="fp32")["format"] == "checkpoint"
    assert b.artifact(graph="encoder")["name"] == "torch"  # onnx artifact is "full" only
    a = b.artifact(fmt="onnx")
    a["file"] = "changed"
    assert b.artifact(fmt="onnx")["file"] == "model.onnx"  # a copy, not the manifest itself


@pytest.mark.parametrize(
    ("kwargs", "want"),
    [
        ({"fmt": "tensorrt"}, "tensorrt"),
        ({"precision": "fp16"}, "fp16"),
        ({"fmt": "onnx", "graph": "encoder"}, "encoder"),
        ({"graph": "temporal"}, "temporal"),
        ({"name": "nope"}, "nope"),
    ],
)
def test_artifact_no_match_lists_what_is_there(tmp_path: Path, kwargs: dict[str, str], want: str) -> None:
    b = Bundle.load(make_bundle(tmp_path / "bundle"))
    with pytest.raises(BundleError) as ei:
        b.artifact(**kwargs)
    msg = str(ei.value)
    assert str(b.path) in msg
    assert want in msg
    assert "onnx-fp32" in msg and "torch" in msg


def test_file_not_listed(tmp_path: Path) -> None:
    b = Bundle.load(make_bundle(tmp_path / "bundle"))
    with pytest.raises(BundleError, match=r"'nope.bin' is not listed"):
        b.file("nope.bin")


def test_graph_io(tmp_path: Path) -> None:
    b = Bundle.load(make_bundle(tmp_path / "bundle"))
    assert b.graph_io() == IO
    with pytest.raises(BundleError, match=r"'encoder'"):
        b.graph_io("encoder")


# ------------------------------------------------------------------------------------------ atomic writes


def test_atomic_write_text_and_replace(tmp_path: Path) -> None:
    p = tmp_path / "out.json"
    atomic_write_text(p, "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(p, b"second")
    assert p.read_bytes() == b"second"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_into_missing_folder(tmp_path: Path) -> None:
    p = tmp_path / "missing" / "out.json"
    with pytest.raises(BundleError, match=r"missing"):
        atomic_write_text(p, "x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_failure_leaves_no_temp_and_keeps_old(tmp_path: Path) -> None:
    p = tmp_path / "out.json"
    p.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("half-written")
        raise RuntimeError("disk full")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.json"]


def test_a_killed_writers_temp_file_goes_with_the_next_write(tmp_path: Path) -> None:
    """A review: the temp name carried no pid, so a checkpoint half-written when its run was killed (SIGKILL) stayed
    beside the real one for good. The temp is the process's private name now and the next write of that name
    removes a dead writer's; a live writer's (this process's) and other names' files stay."""
    import time

    dead = tmp_path / ".ck.pt.999999999-0.partial.tmp"  # no such pid
    other = tmp_path / ".other.pt.999999999-0.partial.tmp"
    for p in (dead, other):
        p.write_bytes(b"half")
        os.utime(p, (time.time() - 600, time.time() - 600))  # written long ago (a fresh one may be alive elsewhere)
    with atomic_path(tmp_path / "ck.pt") as tmp:
        assert tmp.name.startswith(f".ck.pt.{os.getpid()}-") and tmp.name.endswith(".partial.tmp")
        tmp.write_bytes(b"whole")
    assert sorted(x.name for x in tmp_path.iterdir()) == [other.name, "ck.pt"]


def test_a_long_output_name_is_written_under_a_short_temp_name(tmp_path: Path) -> None:
    """A review: the pid-tagged temp name of a 236-byte output name passed 255 bytes and the write failed after the
    whole run; a long name's temp is a digest of it, cleaned by the same rule."""
    import time

    from edge.files import clean_stale_files, partial_file

    name = "a" * 233 + ".pt"
    atomic_write_bytes(tmp_path / name, b"whole")
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]
    dead = partial_file(tmp_path / name).with_name(partial_file(tmp_path / name).name.replace(str(os.getpid()),
                                                                                              "999999999", 1))
    assert len(dead.name) < 80
    dead.write_bytes(b"half")
    os.utime(dead, (time.time() - 600, time.time() - 600))
    assert clean_stale_files(tmp_path, name) == [dead]


def test_a_file_inside_a_bundle_is_refused_as_an_output(tmp_path: Path) -> None:
    """A review: `edge train --out BUNDLE/weights.pt` replaced a listed file (the bundle then refused to load) or
    added unlisted ones; an output file inside any bundle folder is one line naming the bundle."""
    from edge.errors import DataError
    from edge.files import check_target

    (tmp_path / "b" / "sub").mkdir(parents=True)
    (tmp_path / "b" / "manifest.json").write_text('{"schema_version": 1, "files": {}}')
    for inside in (tmp_path / "b" / "weights.pt", tmp_path / "b" / "sub" / "x.json"):
        with pytest.raises(DataError, match=rf"inside bundle {re.escape(str(tmp_path / 'b'))}.*--out must name"):
            check_target(inside, "--out")
    check_target(tmp_path / "weights.pt", "--out")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text('{"a": 1}')  # another tool's manifest: not a bundle
    check_target(tmp_path / "c" / "weights.pt", "--out")


def test_atomic_path_failure_new_file(tmp_path: Path) -> None:
    p = tmp_path / "new.bin"
    with pytest.raises(ValueError), atomic_path(p) as tmp:
        tmp.write_bytes(b"x")
        raise ValueError
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask", [None, 0o022, 0o027, 0o002])
def test_atomic_write_permissions_follow_umask(tmp_path: Path, mask: int | None) -> None:
    p = tmp_path / "file.txt"
    ctx = contextlib.nullcontext() if mask is None else _umask(mask)
    with ctx:
        effective = _current_umask()
        atomic_write_text(p, "x")
    mode = stat.S_IMODE(p.stat().st_mode)
    assert mode == 0o666 & ~effective
    assert mode != 0o600 or effective == 0o066


# --- robustness added after review -------------------------------------------------------------


def test_writer_refuses_folder_with_foreign_manifest(tmp_path: Path) -> None:
    """A folder holding someone else's manifest.json is not a bundle and must never be replaced."""
    foreign = tmp_path / "webapp"
    foreign.mkdir()
    (foreign / "manifest.json").write_text('{"name": "my web app"}')
    (foreign / "index.html").write_text("<html></html>")
    with pytest.raises(BundleError, match="not a bundle"):
        BundleWriter(foreign, {"model": {"name": "m"}, "io": {"inputs": [], "outputs": []}})
    assert (foreign / "index.html").is_file()


def test_writer_with_dot_out_writes_the_folder_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "b"
    target.mkdir()
    monkeypatch.chdir(target)
    with BundleWriter(".", {"model": {"name": "m"}, "io": {"inputs": [], "outputs": []}}) as w:
        w.write_bytes("x.bin", b"abc", "data")
        w.commit()
    assert Bundle.load(target).manifest["files"]["x.bin"]["size"] == 3


def test_failed_writer_removes_parents_it_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "bundle"
    with pytest.raises(RuntimeError), BundleWriter(out, {"model": {"name": "m"}, "io": {"inputs": [], "outputs": []}}):
        raise RuntimeError("export failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("io", [{"inputs": 5, "outputs": []}, {"inputs": [], "outputs": [], "meta": 5},
                                {"inputs": [{"name": "x", "dtype": "float32", "shape": "batch"}], "outputs": []},
                                {"inputs": ["x"], "outputs": []}])
def test_malformed_io_types_are_bundle_errors(tmp_path: Path, io: dict) -> None:
    b = tmp_path / "b"
    b.mkdir()
    (b / "manifest.json").write_text(json.dumps({"schema_version": 1, "model": {"name": "m"}, "io": io,
                                                 "files": {}, "artifacts": []}))
    with pytest.raises(BundleError, match=r"manifest\.json"):
        Bundle.load(b)


def test_atomic_path_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is a folder"), atomic_path(tmp_path):
        pass


def test_a_missing_bundle_named_like_a_family_says_how_to_make_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BundleError) as e:
        Bundle.load("lane")
    assert str(e.value) == ("lane: no such bundle folder ('lane' is a model family: export it first, "
                            "e.g. edge-export lane --out lane)")
    with pytest.raises(BundleError) as e:
        Bundle.load("not_a_family")
    assert str(e.value) == "not_a_family: no such bundle folder"
    with pytest.raises(BundleError) as e:
        Bundle.load(tmp_path / "lane")
    assert str(e.value).endswith("no such bundle folder")  # a path is a path, not a family name


def test_a_backend_never_takes_another_backends_own_form(tmp_path: Path) -> None:
    """Artifact choice per backend: its own form first, then one no backend claims; never a form another
    backend claims (gated for that backend only), even when its own choice was refused: OpenVINO, whose
    gate refused the symmetric INT8 graph, gets no int8 ONNX rather than ONNX Runtime's U8S8 graph or
    TensorRT's fp16 one. By name, any artifact."""
    arts = [{"name": "onnx-int8-g", "format": "onnx", "file": "g.int8.onnx", "graph": "g", "precision": "int8",
             "refused_by": ["openvino"]},
            {"name": "onnx-int8-u8s8-g", "format": "onnx", "file": "g.u8.onnx", "graph": "g", "precision": "int8",
             "preferred_by": ["onnxruntime"]},
            {"name": "onnx-int8-fp16-g", "format": "onnx", "file": "g.f16.onnx", "graph": "g", "precision": "int8",
             "preferred_by": ["tensorrt"]}]
    b = Bundle(tmp_path, {"artifacts": arts})
    pick = {be: b.artifact(fmt="onnx", graph="g", precision="int8", prefer=be)["name"]
            for be in ("onnxruntime", "tensorrt")}
    assert pick == {"onnxruntime": "onnx-int8-u8s8-g", "tensorrt": "onnx-int8-fp16-g"}
    with pytest.raises(BundleError, match="no artifact matching"):
        b.artifact(fmt="onnx", graph="g", precision="int8", prefer="openvino")
    assert b.artifact(fmt="onnx", graph="g", precision="int8", prefer="torch")["name"] == "onnx-int8-g"
    assert b.artifact(name="onnx-int8-fp16-g", prefer="onnxruntime")["name"] == "onnx-int8-fp16-g"


def test_a_folder_where_a_bundle_file_should_be_is_said_as_such(tmp_path: Path) -> None:
    """A folder in place of the manifest or of a listed file was reported as "missing"."""
    out = make_bundle(tmp_path / "b")
    (out / "model.onnx").unlink()
    (out / "model.onnx").mkdir()
    with pytest.raises(BundleError, match=r"model.onnx: listed in manifest.json as a file, but a folder is there"):
        Bundle.load(out)
    (out / MANIFEST).unlink()
    (out / MANIFEST).mkdir()
    with pytest.raises(BundleError, match=r"manifest.json: a folder where the bundle's manifest file should be"):
        Bundle.load(out)


def test_an_output_under_a_file_says_the_file_is_in_the_way(tmp_path: Path) -> None:
    """``atomic_path`` into "afile/x.pt" where afile is a file: said "output folder does not exist" before."""
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BundleError, match=r"afile: is a file, not a folder"), atomic_path(tmp_path / "afile" / "x.pt"):
        pass
    with pytest.raises(BundleError, match=r"nope: output folder does not exist"), atomic_path(tmp_path / "nope" / "x"):
        pass


def test_a_manifest_past_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Found by a review: the manifest was read whole, without a size check: a sparse 40 GB one was a MemoryError
    traceback, a 2 GB one took 4 GB of memory before its one line. Refused by its size now (a sparse file: no disk)."""
    from edge.bundle import MANIFEST_MAX_BYTES, foreign_files

    b = make_bundle(tmp_path / "bundle")
    with open(b / "manifest.json", "r+b") as f:
        f.truncate(MANIFEST_MAX_BYTES + 1)
    with pytest.raises(BundleError, match=r"manifest\.json: \d+ bytes, over the 64 MiB a manifest may be"):
        Bundle.load(b)
    assert foreign_files(b) is None  # not read either: not a bundle
    from edge.bundle import enclosing_bundle

    # its review: an output under a folder with such a manifest read it whole (check_target, check_out): no bundle
    assert enclosing_bundle(b / "out.jsonl") is None


def test_an_engine_record_past_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Found by a review: a TensorRT engine's record was read whole (`edge run` loads a bundle unverified)."""
    from types import SimpleNamespace

    from edge.runtimes.tensorrt import RECORD_MAX_BYTES, _read_record

    rec = tmp_path / "engines" / "g.json"
    rec.parent.mkdir()
    with open(rec, "wb") as f:
        f.truncate(RECORD_MAX_BYTES + 1)
    bundle = SimpleNamespace(path=tmp_path, file=lambda name: tmp_path / name)
    with pytest.raises(BundleError, match=r"g\.json: \d+ bytes, over the 16 MiB an engine record may be"):
        _read_record(bundle, {"name": "e", "extra_files": ["engines/g.json"]})


def test_out_of_memory_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's boundary takes a MemoryError (the machine's memory, a ulimit) as it takes a full disk: one line,
    exit 2, not a traceback (an input read whole past what the machine holds was one, a review found)."""
    import edge.cli.models_cmd as models_cmd
    from edge.cli.main import _invoke, app

    def boom(*_a: object, **_k: object) -> None:
        raise MemoryError

    monkeypatch.setattr(models_cmd, "run_models", boom)
    assert _invoke(app, ["models"], "edge") == 2
    assert capsys.readouterr().err.strip() == ("error: out of memory (the machine's, or a limit on this process: "
                                               "ulimit -v, a container's)")
