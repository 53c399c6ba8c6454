"""`edge val`: a bundle's task metric on labelled data for every backend x precision, the family's own readers
(lane: TuSimple label files; nativecross: KITTI folders under seeded perturbations), the drop against fp32 and
`--max-drop`, and one-line refusals of bad data specs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.errors import DataError, EdgeError
from edge.val import labelled_samples, over_budget

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

LANENET = "lane/tusimple_lanenet/gt_tusimple_format_derived_from_instance_masks.json"
EDGE = [sys.executable, "-m", "edge.cli.main"]


def _card(name: str) -> Any:
    from edge.models import get_card

    return get_card(name)


def test_scores_equal_the_reference_evaluation(tiny_bundle: Path, real_data: Path) -> None:
    """Each row is the card's metric of the program `edge run` would load, on the family's reader's samples: the
    same number as evaluating that program directly on tusimple_samples (the benchmarks' and tests' reader)."""
    import edge
    from edge.models.lane.samples import tusimple_samples
    from edge.program import evaluate, load_program

    rep = edge.validate(tiny_bundle, str(real_data / LANENET), backends=["torch", "onnxruntime"])
    rows = {r["config"]: r for r in rep["rows"]}
    assert set(rows) == {"stream:torch/fp32", "stream:onnxruntime/fp32"} and rep["samples"] == 6
    samples = tusimple_samples(real_data / LANENET, real_data / "lane/tusimple_lanenet")
    card = _card("lane")
    for backend in ("torch", "onnxruntime"):
        with load_program(edge.Bundle.load(tiny_bundle), backend, program="stream") as prog:
            ref = evaluate(prog, card, samples)
        assert rows[f"stream:{backend}/fp32"]["score"] == ref
    assert rows["stream:torch/fp32"]["reference_config"] is None
    assert rows["stream:onnxruntime/fp32"]["reference_config"] == "stream:torch/fp32"
    # each score's interval over the 6 frames (a mean over frames: it holds the score), and the drop's, paired
    # over the same frames: the export changes no frame's outcome beyond rounding, so it holds 0
    for r in rows.values():
        lo, hi = r["ci95"]
        assert lo <= r["value"] <= hi and hi > lo
    assert rows["stream:torch/fp32"]["drop_ci95"] is None
    lo, hi = rows["stream:onnxruntime/fp32"]["drop_ci95"]
    assert lo <= 0.0 <= hi and hi - lo < rows["stream:torch/fp32"]["ci95"][1] - rows["stream:torch/fp32"]["ci95"][0]
    clip = edge.validate(tiny_bundle, str(real_data / LANENET), backends=["onnxruntime"], programs=["clip"])
    assert [r["config"] for r in clip["rows"]] == ["clip:onnxruntime/fp32"]


def test_a_frame_set_the_family_refuses_is_named(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A review: a family's one-line refusal of a frame set ("frame is corrupt") reached `edge val` naming neither the
    data, the plan, nor which sample."""
    import edge
    from edge.program import Program

    calls = []
    real = Program.preprocess

    def refuse_the_fourth(self: Program, card: Any, frames: Any) -> Any:
        calls.append(1)
        if len(calls) == 4:
            raise DataError("frame is corrupt")
        return real(self, card, frames)

    monkeypatch.setattr(Program, "preprocess", refuse_the_fourth)
    with pytest.raises(DataError, match=r"^--data synthetic:3: stream:onnxruntime/fp32: sample 1, frame set 0: frame "
                                        r"is corrupt$"):
        edge.validate(tiny_bundle, "synthetic:3", backends=["onnxruntime"])


def test_synthetic_data_spec(tiny_bundle: Path) -> None:
    import edge
    from edge.program import evaluate, load_program

    rep = edge.validate(tiny_bundle, "synthetic:3,seed=5", backends=["onnxruntime"])
    card = _card("lane")
    cfg = json.loads((tiny_bundle / "manifest.json").read_text())["model"]["config"]
    with load_program(edge.Bundle.load(tiny_bundle), "onnxruntime", program="stream") as prog:
        ref = evaluate(prog, card, card.data.samples(cfg, "evaluation", 3, 5))
    assert rep["samples"] == 3 and rep["rows"][0]["score"] == ref
    assert rep["skipped"] == []
    with pytest.raises(EdgeError, match="no program 'nope'"):
        edge.validate(tiny_bundle, "synthetic:1", programs=["nope"])


@pytest.mark.parametrize(("spec", "needle"), [
    ("", "names no data"),
    ("synthetic:0", "N 1..100000"),
    ("synthetic:x", "use synthetic"),
    ("synthetic:2,bogus=1", "unknown option bogus"),
    ("synthetic:2,seed=-1", "seed=-1 must be a whole number"),
    ("/no/such/labels.json", "/no/such/labels.json: no such file or folder (--data takes a TuSimple label file"),
])
def test_bad_specs_are_one_line(spec: str, needle: str) -> None:
    with pytest.raises(EdgeError) as e:
        labelled_samples(_card("lane"), _card("lane").config("tiny"), spec)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_family_without_a_reader_says_what_it_can_score() -> None:
    card = next(_card(n) for n in ("pulsar", "etavla") if _card(n).data.labelled is None)
    with pytest.raises(EdgeError, match=r"reads no labelled data of its own .* synthetic\[:N\] scores"):
        labelled_samples(card, card.config("tiny"), "/tmp")


def test_lane_reader_errors(tmp_path: Path, real_data: Path) -> None:
    card, cfg = _card("lane"), _card("lane").config("tiny")
    labels = real_data / LANENET
    with pytest.raises(DataError, match="unknown option"):
        labelled_samples(card, cfg, f"{labels},foo=1")
    with pytest.raises(DataError, match="no such image folder"):
        labelled_samples(card, cfg, f"{labels},images={tmp_path / 'none'}")
    line = json.dumps({"lanes": [[-2, 10]], "h_samples": [200, 210], "raw_file": "clips/a.jpg"})
    (tmp_path / "l.json").write_text(line + "\n")
    with pytest.raises(DataError, match=r"clips/a\.jpg: no such image, listed in .*l\.json"):
        labelled_samples(card, cfg, str(tmp_path / "l.json"))
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    samples, _ = labelled_samples(card, cfg, str(tmp_path / "l.json"))  # listed and checked; read when used
    with pytest.raises(DataError, match=r"a\.jpg: .*listed in"):
        samples[0]
    (tmp_path / "l.json").write_text("{not json\n")
    with pytest.raises(DataError, match=r"l\.json: line 1: invalid JSON"):
        labelled_samples(card, cfg, str(tmp_path / "l.json"))
    samples, what = labelled_samples(card, cfg, f"{labels},images={labels.parent}")
    assert len(samples) == 6 and "6 labelled samples" in what


def test_nativecross_reader_on_kitti(real_data: Path) -> None:
    from edge.data.kitti import kitti_layout

    card, cfg = _card("nativecross"), _card("nativecross").config("tiny")
    folder = real_data / "kitti/object/training"
    samples, _ = labelled_samples(card, cfg, f"{folder},index=000114,starts=3,deg=5,cm=10,seed=4")
    truth = kitti_layout(folder).rig("000114").T_lidar_to_cam
    assert len(samples) == 3
    starts = [s[0]["camera"].meta["rig"].T_lidar_to_cam for s in samples]
    for s, t in zip(samples, starts, strict=True):
        assert np.allclose(s[0]["camera"].meta["rig_true"].T_lidar_to_cam, truth)
        d = t @ np.linalg.inv(truth)
        assert 0 < np.linalg.norm(d[:3, 3]) <= 0.10 * math.sqrt(3) + 1e-9
    assert not np.allclose(starts[0], starts[1])
    drive = real_data / "kitti/raw_2011_09_26/2011_09_26"
    every, _ = labelled_samples(card, cfg, f"{drive},starts=1")
    firsts = [s[0]["camera"].meta["rig"].T_lidar_to_cam for s in every]
    assert len(every) == 10 and not np.allclose(firsts[0], firsts[1])  # frames do not share their starts
    for bad, needle in (("deg=abc", "deg=abc: not a number"), ("starts=0", "starts=0: use 1..10000"),
                        ("starts=1.5", "whole numbers"), ("index=999999", "missing for KITTI index 999999"),
                        ("colour=red", "unknown option")):
        with pytest.raises(DataError, match=needle):
            labelled_samples(card, cfg, f"{folder},{bad}")


def test_over_budget_rules() -> None:
    rows = [{"config": "a", "drop": 0.0, "reference": 50.0}, {"config": "b", "drop": 1.5, "reference": 50.0},
            {"config": "c", "drop": 1.0 + 1e-13, "reference": 50.0}, {"config": "d", "drop": float("nan"),
                                                                     "reference": 50.0},
            {"config": "e", "drop": None, "reference": None}]
    assert [r["config"] for r in over_budget({"rows": rows}, 1.0)] == ["b", "d"]
    assert [r["config"] for r in over_budget({"rows": rows}, "3%")] == ["d"]  # 3 % of 50 = 1.5: b is within
    assert [r["config"] for r in over_budget({"rows": rows}, "4%")] == ["d"]
    assert [r["config"] for r in over_budget({"rows": rows}, "1%")] == ["b", "c", "d"]


def test_cli_max_drop_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    import edge.val
    from edge.cli.val_cmd import run_val_cmd

    row = {"config": "p:onnxruntime/int8", "program": "p", "backend": "onnxruntime", "precision": "int8",
           "value": 88.0, "score": {"value": 88.0, "fp": 0.2}, "seconds": 0.1, "reference": 90.0, "drop": 2.0}
    ref = {**row, "config": "p:onnxruntime/fp32", "precision": "fp32", "value": 90.0, "drop": None,
           "reference_config": None, "reference": None}
    row["reference_config"] = "p:onnxruntime/fp32"
    report = {"model": "m", "metric": "acc", "unit": "%", "described": "2 samples", "rows": [ref, row],
              "skipped": []}
    monkeypatch.setattr(edge.val, "run_val", lambda *a, **k: dict(report))
    out = tmp_path / "r.json"
    with pytest.raises(typer.Exit) as e:
        run_val_cmd(tmp_path / "b", ["synthetic"], [], None, "1.0", 0, out, False)
    assert e.value.exit_code == 1
    assert "1 configuration(s) drop more than --max-drop 1.0: p:onnxruntime/int8 by 2.00%" in capsys.readouterr().err
    assert json.loads(out.read_text())["over_budget"] == ["p:onnxruntime/int8"]
    run_val_cmd(tmp_path / "b", ["synthetic"], [], None, "2.0", 0, None, True)  # within: no exit
    assert json.loads(capsys.readouterr().out)["over_budget"] == []
    for bad in ("-1", "x", "inf"):
        with pytest.raises(EdgeError, match="--max-drop"):
            run_val_cmd(tmp_path / "b", ["synthetic"], [], None, bad, 0, None, True)


@pytest.mark.parametrize(("args", "needle"), [
    (["val", "/no/bundle", "--data", "synthetic"], "/no/bundle"),
    (["val", "BUNDLE", "--data", "synthetic:2", "--programs", ","], "names nothing"),
    (["val", "BUNDLE", "--data", "synthetic:2", "--out", "/no/folder/r.json"], "its folder does not exist"),
    (["val", "BUNDLE", "--data", "synthetic:2", "--max-drop", "-1"], "a drop budget is 0 or more"),
])
def test_cli_errors_are_one_line(tiny_bundle: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    argv = [str(tiny_bundle) if a == "BUNDLE" else a for a in args]
    r = subprocess.run([*EDGE, *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_each_form_is_measured_against_the_right_row(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported fp32 against torch fp32 (what the export cost), a reduced precision against its backend's fp32
    (what quantizing cost), the drop's sign by the metric's sense, and --max-drop over both: every fp32 row was
    its own reference, so an export 30 points off torch passed."""
    import edge
    import edge.plans
    import edge.program

    real = edge.plans.program_plans

    def plans(b: Any, specs: Any, backends: Any, run_forms: Any = None) -> Any:
        fp32 = [p for p in real(b, specs, backends, run_forms) if p[2] == "fp32"]
        return fp32 + [(p[0], p[1], "int8-u8s8", p[3]) for p in fp32 if p[1] == "onnxruntime"]

    values = iter([90.0, 88.5, 87.0])  # torch, onnxruntime fp32, onnxruntime "int8", in plan order
    monkeypatch.setattr(edge.plans, "program_plans", plans)
    monkeypatch.setattr(edge.program, "evaluate", lambda *a: {"value": next(values)})
    rep = edge.validate(tiny_bundle, "synthetic:1", backends=["torch", "onnxruntime"])
    got = {r["config"]: (r["reference_config"], r["drop"]) for r in rep["rows"]}
    assert got == {"stream:torch/fp32": (None, None), "stream:onnxruntime/fp32": ("stream:torch/fp32", 1.5),
                   "stream:onnxruntime/int8-u8s8": ("stream:onnxruntime/fp32", 1.5)}
    assert [r["config"] for r in over_budget(rep, 1.0)] == ["stream:onnxruntime/fp32", "stream:onnxruntime/int8-u8s8"]
    assert over_budget(rep, 1.5) == []
    assert over_budget(rep, "1%") == [r for r in rep["rows"] if r["drop"]]  # 1 % of 90 and of 88.5: both over


def test_data_paths_options_and_outputs(tmp_path: Path, real_data: Path, tiny_bundle: Path) -> None:
    """A folder named "set,v=2" is a path, not set + option v; an option named like the reader's own parameters
    (cfg=) was a TypeError; --out over the label file or into the bundle was written (the bundle then unreadable);
    a raw_file outside the label file's folder was read."""
    import shutil

    card, cfg = _card("lane"), _card("lane").config("tiny")
    odd = tmp_path / "set,v=2"
    shutil.copytree(real_data / "lane/tusimple_lanenet", odd, ignore=shutil.ignore_patterns("gt_*_image", "test_*"))
    labels = odd / Path(LANENET).name
    assert len(labelled_samples(card, cfg, str(labels))[0]) == 6
    for opt in ("cfg=1", "path=x"):
        with pytest.raises(DataError, match=f"unknown option {opt.split('=')[0]}"):
            labelled_samples(card, cfg, f"{real_data / LANENET},{opt}")
    for out, needle in ((labels, "would replace"), (tiny_bundle / "manifest.json", str(tiny_bundle))):
        r = subprocess.run([*EDGE, "val", str(tiny_bundle), "--data", str(labels), "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert json.loads((tiny_bundle / "manifest.json").read_text())["schema_version"]
    line = json.dumps({"lanes": [[-2, 10]], "h_samples": [200, 210], "raw_file": "../elsewhere/a.jpg"})
    for raw in ("../elsewhere/a.jpg", "/etc/hostname"):
        (tmp_path / "x.json").write_text(line.replace("../elsewhere/a.jpg", raw) + "\n")
        with pytest.raises(DataError, match="is not under the image folder"):
            labelled_samples(card, cfg, str(tmp_path / "x.json"))
    # an absolute raw_file inside the label file's folder is under it (the first rule refused it)
    first = json.loads((odd / Path(LANENET).name).read_text().splitlines()[0])
    (odd / "abs.json").write_text(json.dumps({**first, "raw_file": str(odd / first["raw_file"])}) + "\n")
    assert len(labelled_samples(card, cfg, str(odd / "abs.json"))[0]) == 1
    # --out over an image or calibration file the data is read from: refused (an earlier report may be replaced)
    image = odd / first["raw_file"]
    r = subprocess.run([*EDGE, "val", str(tiny_bundle), "--data", str(labels), "--out", str(image)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "would replace a file of the data" in r.stderr, r.stderr
    from edge.val import check_report_out

    (odd / "report.json").write_text(json.dumps({"rows": [], "metric": "m", "described": "d"}))
    check_report_out(odd / "report.json", [str(labels)])  # an earlier edge val report: replaceable
    check_report_out(odd / "new.json", [str(labels)])  # a new file: fine


def test_a_reader_passing_options_on_is_one_line() -> None:
    """A reader taking **options that passes them to another function: the unknown key's TypeError is the spec's
    one line, not a traceback."""
    from types import SimpleNamespace

    from edge.models import LabelledData

    def inner(path: Path, cfg: dict, images: str | None = None) -> list:
        return [["s"]]

    def read(path: Path, cfg: dict, **options: str) -> list:
        return inner(path, cfg, **options)

    card = SimpleNamespace(name="ud", data=SimpleNamespace(labelled=LabelledData("a folder; images=DIR", read)))
    with pytest.raises(DataError, match=r"--eval-data /tmp,bogus=1: unknown option \(a folder; images=DIR\)"):
        labelled_samples(card, {}, "/tmp,bogus=1", option="--eval-data")
    assert labelled_samples(card, {}, "/tmp,images=x")[0] == [["s"]]


def test_out_is_checked_resolved_and_against_an_images_folder(tmp_path: Path, real_data: Path) -> None:
    """check_report_out compared paths as written: `..`, a symlinked folder and an images= folder let --out replace
    an image the run scores; an earlier report inside a KITTI folder could not be replaced."""
    import shutil

    from edge.val import check_report_out

    src = tmp_path / "set"
    shutil.copytree(real_data / "lane/tusimple_lanenet", src, ignore=shutil.ignore_patterns("gt_*_image", "test_*"))
    labels = src / Path(LANENET).name
    (tmp_path / "sib").mkdir()
    (tmp_path / "lnk").symlink_to(src)
    (tmp_path / "lbl").mkdir()
    shutil.copy(labels, tmp_path / "lbl" / "gt.json")
    image = src / "image" / "0000.png"
    for out, data in ((tmp_path / "sib" / ".." / "set" / "image" / "0000.png", str(labels)),
                      (image, str(tmp_path / "lnk" / labels.name)),
                      (tmp_path / "lnk" / "image" / "0000.png", str(labels)),
                      (image, f"{tmp_path / 'lbl' / 'gt.json'},images={src}")):
        with pytest.raises(DataError, match="would replace a file of the data"):
            check_report_out(out, [data])
    # an image folder inside the dataset that is a link to another disk, and an image entry that is itself a link:
    # the name is what the write replaces
    disk = tmp_path / "disk"
    shutil.copytree(src / "image", disk)
    ds = tmp_path / "ds"
    ds.mkdir()
    shutil.copy(labels, ds / "gt.json")
    (ds / "image").symlink_to(disk)
    with pytest.raises(DataError, match="would replace"):
        check_report_out(ds / "image" / "0000.png", [str(ds / "gt.json")])
    ds2 = tmp_path / "ds2"
    (ds2 / "image").mkdir(parents=True)
    (ds2 / "image" / "0000.png").symlink_to(disk / "0000.png")
    with pytest.raises(DataError, match="would replace"):
        check_report_out(ds2 / "image" / "0000.png", [str(ds2)])
    (tmp_path / "lnk.png").symlink_to(disk / "0000.png")  # a link outside the data: replacing it leaves the data
    check_report_out(tmp_path / "lnk.png", [str(ds / "gt.json")])
    for data in (str(ds / "gt.json"), str(ds2)):  # the file behind an image folder or entry that links elsewhere
        with pytest.raises(DataError, match="would replace"):
            check_report_out(disk / "0000.png", [data])
    drive = tmp_path / "date" / "drive"  # a KITTI raw drive reads its calibration from the folder above
    shutil.copytree(real_data / "kitti/raw_2011_09_26/2011_09_26", drive)
    for f in drive.glob("calib_*.txt"):
        f.rename(drive.parent / f.name)
    with pytest.raises(DataError, match="would replace"):
        check_report_out(drive.parent / "calib_cam_to_cam.txt", [f"{drive},starts=1"])
    (tmp_path / "set2").mkdir()  # a folder whose name only starts like the data's
    (tmp_path / "set2" / "r.json").write_text(json.dumps({"rows": [], "metric": "m", "described": "d"}))
    check_report_out(tmp_path / "set2" / "r.json", [str(labels)])
    (tmp_path / "set2" / "r.json").write_text("{}")  # not a report, anywhere: refused, but not as the data's
    with pytest.raises(DataError, match="exists and is not an edge val report"):
        check_report_out(tmp_path / "set2" / "r.json", [str(labels)])
    kitti = tmp_path / "k"
    shutil.copytree(real_data / "kitti/object/training", kitti)
    (kitti / "report.json").write_text(json.dumps({"rows": [], "metric": "m", "described": "d"}))
    check_report_out(kitti / "report.json", [f"{kitti},starts=1"])  # an earlier report: replaceable
    with pytest.raises(DataError, match="would replace"):
        check_report_out(kitti / "calib" / "000114.txt", [f"{kitti},starts=1"])


def test_an_absolute_raw_file_through_a_symlinked_folder(tmp_path: Path, real_data: Path) -> None:
    import shutil

    card, cfg = _card("lane"), _card("lane").config("tiny")
    real = tmp_path / "real"
    shutil.copytree(real_data / "lane/tusimple_lanenet", real, ignore=shutil.ignore_patterns("gt_*_image", "test_*"))
    (tmp_path / "lnk").symlink_to(real)
    first = json.loads((real / Path(LANENET).name).read_text().splitlines()[0])
    (real / "abs.json").write_text(json.dumps({**first, "raw_file": str(real / first["raw_file"])}) + "\n")
    assert len(labelled_samples(card, cfg, str(tmp_path / "lnk" / "abs.json"))[0]) == 1


def test_a_passing_on_reader_named_like_its_parameters(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from edge.models import LabelledData

    def read(path: Path, cfg: dict, **options: str) -> list:
        return [["s"]]

    def forward(path: Path, cfg: dict, **options: str) -> list:
        return read(path, cfg, **options)

    card = SimpleNamespace(name="ud", data=SimpleNamespace(labelled=LabelledData("x", forward)))
    for opt in ("cfg=1", "path=1"):
        with pytest.raises(DataError, match="unknown option"):
            labelled_samples(card, {}, f"/tmp,{opt}")



def test_the_also_column_does_not_repeat_the_metric() -> None:
    """lane reports its accuracy also as a fraction (0.892 beside 89.24 %): the table's "also" column showed it as
    if it were another number; FP / FN and the rest stay, at most four."""
    from edge.cli.val_cmd import _also

    score = {"value": 89.2439, "accuracy": 0.892439, "fp": 0.194, "fn": 0.188, "frames": 16, "same": 89.2439,
             "ok": True, "name": "x", "a": 1.0, "b": 2.0}
    assert _also(score) == "fp 0.194, fn 0.188, frames 16, a 1"
    assert _also({"value": 0.0, "l2_rate": 0.0, "rot_rmse_deg": 7.9}) == "rot_rmse_deg 7.9"


def test_an_option_given_twice_is_refused(real_data: Path) -> None:
    """``deg=5,deg=6`` scored at 6 without a word (the last one won); sources and data specs share the parser."""
    from edge.stream.sources import open_source, spec_options

    card = _card("nativecross")
    drive = real_data / "kitti" / "raw_2011_09_26" / "2011_09_26"
    with pytest.raises(DataError, match=r"deg= given twice"):
        labelled_samples(card, card.config("tiny"), f"{drive},deg=5,deg=6,starts=3")
    with pytest.raises(DataError, match=r"bad spec 'synthetic:2,seed=1,seed=2': seed= given twice"):
        open_source("synthetic:2,seed=1,seed=2")
    assert spec_options("a.mp4,fps=5") == ("a.mp4", {"fps": "5"})


def test_a_source_prefix_typed_before_a_data_path_is_named(tmp_path: Path) -> None:
    """A final review: `--data kitti:FOLDER` (edge run's source spec) said only "no such file or folder"; the line now
    says to give the path itself."""
    card = _card("nativecross")
    with pytest.raises(DataError, match=rf"kitti:{tmp_path}: no such file or folder; --data takes the path itself "
                                        rf"\({tmp_path}\), not a source spec \(kitti: is edge run --source's\)"):
        labelled_samples(card, card.config("tiny"), f"kitti:{tmp_path}")


def test_one_synthetic_set_spelled_two_ways_is_given_twice() -> None:
    """Found by a review: `--data synthetic:2 --data synthetic:2,seed=0` (seed 0 is the default) and `--data
    synthetic --data synthetic:40` scored one set twice, the count doubled; `synthetic:` took the default count."""
    from edge.val import data_specs

    for twice in (["synthetic:2", "synthetic:2,seed=0"], ["synthetic", "synthetic:40"], ["synthetic:02", "synthetic:2"],
                  ["synthetic:3,seed=007", "synthetic:3,seed=7"]):
        with pytest.raises(DataError, match=r"--data .*: given twice"):
            data_specs(twice, "--data")
    assert data_specs(["synthetic:2", "synthetic:2,seed=1", "synthetic:3"], "--data")  # three sets
    # a malformed spec is its reader's to refuse in its own words, not "given twice" (a review of the identity)
    for pair in (["synthetic:2", "synthetic:2,foo=1"], ["synthetic:2", "synthetic:2,seed="],
                 ["synthetic", "synthetic:"]):
        assert data_specs(pair, "--data") == pair
    card = _card("lane")
    with pytest.raises(DataError, match=r"--data synthetic:: use synthetic\[:N\]"):
        labelled_samples(card, card.config("tiny"), "synthetic:")


def test_a_frame_or_a_spec_given_twice_is_refused(tmp_path: Path, real_data: Path) -> None:
    """Found by a review: a label file repeating a raw_file, or one spec given twice, scored those frames twice (the
    count and the accuracy moved without a word); a label file with a byte-order mark was invalid JSON."""
    from edge.val import data_specs

    card, cfg = _card("lane"), _card("lane").config("tiny")
    labels = real_data / LANENET
    lines = [x for x in labels.read_text().splitlines() if x.strip()]
    dup = tmp_path / "dup.json"
    dup.write_text("\n".join([*lines, lines[0]]))
    with pytest.raises(DataError, match=r"dup\.json: raw_file '.*' is listed twice \(entries 1 and 7\)"):
        labelled_samples(card, cfg, f"{dup},images={labels.parent}")
    with pytest.raises(DataError, match=r"--data .*: given twice"):
        data_specs([str(labels), str(labels)], "--data")
    # the same frame or file spelled another way (a review: "./clips/x.jpg" beside "clips/x.jpg" scored it twice)
    first = json.loads(lines[0])
    dotted = tmp_path / "dotted.json"
    dotted.write_text("\n".join([*lines, json.dumps({**first, "raw_file": "./" + first["raw_file"]})]))
    with pytest.raises(DataError, match=r"dotted\.json: raw_file '\./.*' is the same image file as entry 1's "
                                        r"'.*' \(entries 1 and 7\)"):
        labelled_samples(card, cfg, f"{dotted},images={labels.parent}")
    with pytest.raises(DataError, match=r"--data .*: given twice"):
        data_specs([str(labels), f"{labels.parent}/./{labels.name}"], "--data")
    with pytest.raises(DataError, match=r"--data .*: given twice"):  # an option's folder spelled otherwise
        data_specs([f"{labels},images={labels.parent}", f"{labels},images={labels.parent}/"], "--data")
    # a comma inside a folder's name is the name (as the readers split a spec): two different files are two specs
    for name in ("a,b", "alink,b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "alink").symlink_to(tmp_path / "a")
    (tmp_path / "a,b" / "l.json").write_text(lines[0])
    (tmp_path / "alink,b" / "l.json").write_text(lines[1])
    both = [f"{tmp_path}/a,b/l.json,images={labels.parent}", f"{tmp_path}/alink,b/l.json,images={labels.parent}"]
    assert data_specs(both, "--data") == both
    with pytest.raises(DataError, match=r"--data .*: given twice"):
        data_specs([both[0], f"{tmp_path}/./a,b/l.json,images={labels.parent}"], "--data")
    with pytest.raises(DataError, match=r"images= is empty"):
        labelled_samples(card, cfg, f"{labels},images=")
    array = tmp_path / "array.json"
    array.write_text(json.dumps([json.loads(x) for x in lines]))
    with pytest.raises(DataError, match=r"array\.json: line 1: expected a JSON object, got list \(a label file holds "
                                        r"one JSON object per line"):
        labelled_samples(card, cfg, f"{array},images={labels.parent}")
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    assert len(labelled_samples(card, cfg, f"{bom},images={labels.parent}")[0]) == len(lines)
    # a review: label rows past the image were scored without a word
    row = json.loads(lines[0])
    row["h_samples"][-1] = 10**6
    far = tmp_path / "far.json"
    far.write_text(json.dumps(row))
    samples = labelled_samples(card, cfg, f"{far},images={labels.parent}")[0]
    with pytest.raises(DataError, match=r"far\.json: .*: h_samples reach row 1000000, past the image's 720 rows"):
        samples[0]


def test_an_out_that_takes_no_file_is_one_line_before_scoring(tiny_bundle: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Found by a review: `edge val --out /proc/nope.json` scored everything and then said
    "/proc/.nope.json.rvqi0sop.tmp: No such file or directory", naming a temporary file, not the path or option."""
    from edge.cli.main import _invoke, app

    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc (Linux), a folder that takes no new file")
    code = _invoke(app, ["val", str(tiny_bundle), "--data", "synthetic:1", "--out", "/proc/nope.json"], "edge")
    err = capsys.readouterr().err
    assert code == 2 and "/proc/nope.json: cannot write there" in err and "(--out)" in err and ".tmp" not in err, err
    assert "scoring" not in err


def test_an_out_that_is_another_file_is_refused_an_earlier_report_replaced(tiny_bundle: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Found by a review: `edge val --out lane.pt` replaced a checkpoint with the report (edge train refuses that)."""
    from edge.cli.main import _invoke, app

    ck = tmp_path / "lane.pt"
    ck.write_bytes(b"PK\x03\x04 weights")
    code = _invoke(app, ["val", str(tiny_bundle), "--data", "synthetic:1", "--out", str(ck)], "edge")
    err = capsys.readouterr().err
    assert code == 2 and f"{ck}: exists and is not an edge val report" in err, err
    assert ck.read_bytes() == b"PK\x03\x04 weights"
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000)  # JSON nested past Python's recursion limit: not a report (it was a traceback)
    assert _invoke(app, ["val", str(tiny_bundle), "--data", "synthetic:1", "--out", str(deep)], "edge") == 2
    assert f"{deep}: exists and is not an edge val report" in capsys.readouterr().err
    report = tmp_path / "r.json"
    report.write_bytes(b"")  # an empty file (mktemp's) holds nothing: taken
    for _ in range(2):  # a report is replaced by the next run's
        assert _invoke(app, ["val", str(tiny_bundle), "--data", "synthetic:1", "--backends", "onnxruntime", "--out",
                             str(report)], "edge") == 0
    capsys.readouterr()


def test_a_data_spec_given_twice_names_the_option(tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found in a review of the known-left list: `edge val --data synthetic --data synthetic` said "data synthetic:
    given twice", naming the Python argument, where every other refusal names the option (`--programs ''`)."""
    from edge.cli.main import _invoke, app

    code = _invoke(app, ["val", str(tiny_bundle), "--data", "synthetic:1", "--data", "synthetic:1"], "edge")
    err = capsys.readouterr().err
    assert code == 2 and "--data synthetic:1: given twice" in err and "scoring" not in err, err
