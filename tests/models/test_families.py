"""The family contract, checked for every shipped family on its tiny config.

What each test would catch: a card that needs torch to import, a graph whose IOSpec lies about its
module, a program whose ONNX runtimes disagree with its torch modules, a metric that cannot be
computed from its own postprocessed records, a batch decode that differs from decoding each step, a
drawing that is not an image, a bundle `edge run` cannot drive.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FAMILIES

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edge.models import get_card  # noqa: E402
from edge.program import evaluate, load_program, run_samples, torch_program  # noqa: E402


@pytest.mark.parametrize("family", FAMILIES)
def test_card_imports_and_preprocesses_without_torch(family: str) -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import edge.models as m\n"
            f"c = m.get_card('{family}'); cfg = c.config(c.test_config_name)\n"
            "s = c.data.samples(cfg, 'calibration', 1, 0)[0]\n"
            "feeds = c.preprocess(s[0], cfg)\n"
            "assert feeds and all(hasattr(v, 'shape') for v in feeds.values())\n"
            "assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def _seeded_tiny(family: str) -> tuple:
    """(card, tiny config, its model with seeded random weights)."""
    card = get_card(family)
    cfg = card.config(card.test_config_name)
    torch.manual_seed(0)
    return card, cfg, card.build(cfg).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_graph_specs_match_their_modules(family: str) -> None:
    card, cfg, model = _seeded_tiny(family)
    for g in card.graphs.values():
        io = g.io(cfg)
        feeds = g.example_inputs(cfg, 2, 0)
        io.validate_feeds(feeds)
        with torch.no_grad():
            out = g.module(model)(*(torch.from_numpy(feeds[n]) for n in io.input_names))
        out = out if isinstance(out, tuple | list) else (out,)
        assert len(out) == len(io.outputs), g.name
        for spec, o in zip(io.outputs, out):
            assert tuple(o.shape) == spec.concrete(batch=2) and str(o.dtype).endswith(spec.dtype), (g.name, spec)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_program_scores_in_torch_and_draws(family: str) -> None:
    card = get_card(family)
    cfg = card.config(card.test_config_name)
    model = card.build(cfg).eval()
    samples = card.data.samples(cfg, "evaluation", 2, 0)
    for spec in card.programs:
        with torch_program(card, model, cfg, spec) as prog:
            m = evaluate(prog, card, samples)
            (rec, frames, out), *_ = run_samples(prog, card, samples)
        assert math.isfinite(m["value"]), spec.name
        lo, hi = card.metric.bounds or (-math.inf, math.inf)
        assert lo <= m["value"] <= hi
        json.dumps(rec)  # the JSONL record is plain JSON
        _, payload = card.postprocess(out, frames, cfg)
        img = card.draw(payload, frames, cfg)
        assert img is None or (img.ndim == 3 and img.dtype == np.uint8), spec.name


def _same(a: object, b: object) -> bool:
    """Equal records/payloads, arrays to 1e-9 (NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=0, atol=1e-9, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def test_shipped_metrics_fold() -> None:
    """A labelled live run keeps a shipped family's metric items folded (bounded memory), not every item."""
    assert all(get_card(f).metric.fold is not None for f in FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_metric_fold_scores_as_its_items(family: str) -> None:
    """``Metric.fold``'s law on the family's own items: a fold of some items, or a fold of a fold and more items,
    scores as the items it folded (what ``FamilyTask`` relies on when it folds a long labelled run)."""
    card, cfg, model = _seeded_tiny(family)
    samples = card.data.samples(cfg, "evaluation", 6, 0)
    with torch_program(card, model, cfg) as prog:
        items = [card.metric_item(rec, frames, cfg) for rec, frames, _ in run_samples(prog, card, samples)]
    items = [i for i in items if i is not None]
    assert len(items) == 6
    m, whole = card.metric, card.metric.score(items)
    for folded in ([m.fold(items[:3]), *items[3:]], [m.fold([m.fold(items[:2]), *items[2:4]]), *items[4:]],
                   card.metric_fold(items), [m.fold([]), *items], [m.fold([m.fold([]), *items[:2]]), *items[2:]]):
        assert _same(m.score(folded), whole), family
    assert _same(m.score([m.fold([])]), m.score([])), family  # a fold of nothing scores as no items


BATCHED = [f for f in FAMILIES if get_card(f).postprocess_many is not None]


def test_some_family_decodes_in_batches() -> None:
    assert "lane" in BATCHED  # the stream loop's batch decoding is exercised by a shipped family


@pytest.mark.parametrize("family", BATCHED)
def test_postprocess_many_equals_postprocess_per_step(family: str) -> None:
    """A family that decodes several steps at once (``ModelCard.postprocess_many``) gives each step the
    record and payload its own ``postprocess`` gives, on its own evaluation samples."""
    card, cfg, model = _seeded_tiny(family)
    samples = card.data.samples(cfg, "evaluation", 4, 0)
    with torch_program(card, model, cfg) as prog:
        runs = run_samples(prog, card, samples)
    outs, frames = [o for _, _, o in runs], [f for _, f, _ in runs]
    many = card.postprocess_many(outs, frames, cfg)
    assert len(many) == len(runs)
    for (rec, pay), o, f in zip(many, outs, frames, strict=True):
        want_rec, want_pay = card.postprocess(o, f, cfg)
        assert json.dumps(rec, sort_keys=True) == json.dumps(want_rec, sort_keys=True)
        assert _same(pay, want_pay)


def test_bundle_programs_match_torch(family_bundle: tuple[str, Path]) -> None:
    """Each program of the exported bundle on ONNX Runtime == the same program over the torch modules
    (float outputs: rel < 1e-4 at every step of a realistic sample; label outputs: equal), and every graph
    passed its export parity."""
    from edge.bundle import Bundle
    from edge.models.checkpoint import load_model

    family, path = family_bundle
    card = get_card(family)
    b = Bundle.load(path)
    assert set(b.manifest["programs"]) == {p.name for p in card.programs}
    assert all(a["parity"]["passed"] for a in b.artifacts if a["format"] == "onnx")
    model, cfg, _ = load_model(path / "weights.pt")
    sample = card.data.samples(cfg, "evaluation", 1, 3)[0]
    for spec in card.programs:
        ort, ref = load_program(b, program=spec.name), torch_program(card, model, cfg, spec)
        for frames in sample:
            feeds = card.preprocess(frames, cfg)
            a, r = ort.step(feeds), ref.step(feeds)
            for k in r:
                if r[k].dtype.kind == "f":
                    assert np.abs(a[k] - r[k]).max() <= 1e-4 * max(np.abs(r[k]).max(), 1e-6), (spec.name, k)
                else:  # labels decided by an argmax: a near-tie may flip one element in ten thousand
                    assert (a[k] == r[k]).mean() >= 0.9999, (spec.name, k, (a[k] != r[k]).sum())
        ort.close()
        ref.close()


def test_declared_image_inputs_run_inside_the_engine(family_bundle: tuple[str, Path]) -> None:
    """A family that declares image inputs gets them in its manifest, and every program calling such a graph
    runs with the preprocessing inside ONNX Runtime: at the camera's size (finite outputs of the right shapes),
    and, for frames resized to the model's own size first (only the engine's normalisation differs from
    numpy's), the same outputs within 1e-4."""
    import cv2

    from edge.bundle import Bundle

    family, path = family_bundle
    card = get_card(family)
    b = Bundle.load(path)
    cfg = b.manifest["model"]["config"]
    declared = card.image_inputs(cfg)
    recorded = b.manifest["preprocess"].get("image_inputs", [])
    assert recorded == [s.to_dict() for s in declared]
    if not declared:
        pytest.skip(f"{family} declares no image input")
    sizes = {s.input: s.size_hw for s in declared}
    sample = card.data.samples(cfg, "evaluation", 1, 3)[0]
    for spec in card.programs:
        if not any(s.graph in spec.graphs for s in declared):
            continue
        num, eng = load_program(b, program=spec.name), load_program(b, program=spec.name, preprocess="engine")
        assert eng.fronts
        for frames in sample:
            a = eng.step(eng.preprocess(card, frames))  # the camera's own size: the engine resizes
            r = num.step(num.preprocess(card, frames))
            assert set(a) == set(r) and all(a[k].shape == r[k].shape and np.isfinite(a[k]).all() for k in r
                                             if a[k].dtype.kind == "f")
            cam = frames[card.sensors.primary]
            if "rig" in cam.meta:
                continue  # its preprocessing ties the frame to the rig's image size: no resized copy
            (h, w), = {sizes[s.input] for s in eng.fronts}
            small = {**frames, card.sensors.primary: type(cam)(
                cv2.resize(cam.data, (w, h), interpolation=cv2.INTER_AREA), cam.t_capture_ns, cam.seq, cam.sensor,
                cam.meta)}
            eng.reset()
            num.reset()
            a, r = eng.step(eng.preprocess(card, small)), num.step(num.preprocess(card, small))
            for k in r:
                if r[k].dtype.kind == "f":
                    assert np.abs(a[k] - r[k]).max() <= 1e-4 * max(np.abs(r[k]).max(), 1e-6), (spec.name, k)
        num.close()
        eng.close()


def test_edge_run_drives_the_family(family_bundle: tuple[str, Path], tmp_path: Path) -> None:
    family, path = family_bundle
    card = get_card(family)
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "run", str(path), "--source", "synthetic:3",
                        "--out", str(tmp_path), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    assert s["frames"] == 3 and s["task"]["task"] == family and s["task"]["program"] == card.programs[0].name
    lines = (tmp_path / f"{card.results_name}.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x)["seq"] == i for i, x in enumerate(lines))


def test_every_shipped_family_is_declared_as_an_entry_point() -> None:
    """A pip-installed edge-deploy finds its families the way it finds yours (the ``edge.families`` group,
    registry.py's first way): every family folder is declared in pyproject.toml, pointing at its card."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")

    root = Path(__file__).resolve().parents[2]
    eps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"]["edge.families"]
    folders = {p.parent.name for p in (root / "edge" / "models").glob("*/card.py")}
    assert set(eps) == folders
    assert all(eps[name] == f"edge.models.{name}.card:card" for name in folders)


def test_train_without_torch_is_one_line(tmp_path: Path) -> None:
    """The progress bar drew "train lane/tiny 0/2 loss nan" above the missing-torch error (it read as a diverged
    run)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edge.cli.main import main; sys.argv = ['edge'] + sys.argv[1:]; main()\n")
    family = FAMILIES[0]
    r = subprocess.run([sys.executable, "-c", code, "train", family, "--config", "tiny", "--steps", "2", "--out",
                        str(tmp_path / "m.pt")], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "torch is not installed" in lines[0], r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("family", FAMILIES)
def test_a_refused_step_leaves_every_program_as_it_was(family: str) -> None:
    """A step the graphs refuse (its float feeds in float64) is a SpecError and leaves the program's state as it was:
    a clip program kept the refused frame in its history and refused every later, valid, step until reset(). (A
    program that takes float64 itself, casting it, steps it as the program beside it then does.)"""
    from edge.errors import SpecError

    card, cfg, model = _seeded_tiny(family)
    (sample,) = card.data.samples(cfg, "evaluation", 1, 0)
    for spec in card.programs:
        with torch_program(card, model, cfg, spec) as prog, torch_program(card, model, cfg, spec) as clean:
            feeds = [prog.preprocess(card, frames) for frames in sample]
            for i, f in enumerate(feeds):
                if i == 1 or len(feeds) == 1:
                    wide = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in f.items()}
                    try:
                        prog.step(wide)
                    except SpecError:
                        pass
                    else:
                        clean.step(wide)
                assert _same(prog.step(f), clean.step(f)), (family, spec.name, i)
