"""The contract's edges, each built on a variant of the out-of-tree toy family: a graph shared by two
programs, a program whose graphs were all quantized for another, a runner that feeds a graph a batch
of 2, a sensor named otherwise than the sources name theirs, a finite trainer, malformed cards and
manifests, precision requests a backend cannot honour."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

import edge  # noqa: E402
from edge.errors import BundleError, DataError, ExportError, ModelError  # noqa: E402
from edge.models import Graph, ModelCard, ProgramSpec, Sensors  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module", autouse=True)
def toyfam() -> Iterator[Any]:
    sys.path.insert(0, str(FIXTURES))
    import toyfam.card

    yield toyfam.card
    sys.path.remove(str(FIXTURES))


def _variant(toy: Any, name: str, **changes: Any) -> ModelCard:
    card = dataclasses.replace(toy.card(), name=name, **changes)
    edge.models.register(name, lambda: card)
    return card


@pytest.fixture
def registered() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        edge.models.unregister(n)


class Alt:
    """embed, then the second head graph."""

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.embed, self.head = graphs["embed"], graphs["head2"]

    def reset(self) -> None:
        pass

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.head(self.embed(feeds))


def _shared(toy: Any, registered: list[str], name: str = "toyshared") -> ModelCard:
    base = toy.card()
    graphs = {**base.graphs, "head2": Graph("head2", toy.io_head, lambda m: m.head, base.graphs["head"].example_inputs,
                                            "tokens -> logits, again")}
    registered.append(name)
    return _variant(toy, name, graphs=graphs, programs=(*base.programs, ProgramSpec("alt", ("embed", "head2"), Alt),
                                                        ProgramSpec("same", ("embed", "head"), toy.Runner)))


def test_a_graph_two_programs_share_is_quantized_once(toyfam: Any, registered: list[str], tmp_path: Path) -> None:
    _shared(toyfam, registered)
    b, rep = edge.export_card("toyshared", tmp_path / "b", config="tiny", programs=["main", "alt", "same"],
                              precisions=["fp32", "int8"], calib_size=3, eval_size=6, max_drop=100.0)
    names = [a["name"] for a in b.artifacts]
    # each program's int8 row: the worst output error of every int8 graph it runs, the shared ones included (a
    # review: `same`, whose graphs `main` quantized, read 0.0, and `alt` only its new head2's)
    rel = {g: b.artifact(name=f"onnx-int8-{g}")["parity"]["max_rel"] for g in ("embed", "head", "head2")}
    rows = {r["program"]: r["parity_rel"] for r in rep["precisions"] if r["precision"] == "int8"}
    assert rows == {"main": max(rel["embed"], rel["head"]), "alt": max(rel["embed"], rel["head2"]),
                    "same": max(rel["embed"], rel["head"])}, (rows, rel)
    assert rel["embed"] > 0
    assert names.count("onnx-int8-embed") == 1 and "onnx-int8-head2" in names
    embed = b.artifact(name="onnx-int8-embed")
    assert embed["quantization"]["program"] == "main"  # quantized (and gated) once, by the first program
    assert b.artifact(name="onnx-int8-head2")["quantization"]["program"] == "alt"
    alt = b.manifest["programs"]["alt"]
    assert alt["precisions"]["int8"]["onnxruntime"] == {"embed": "onnx-int8-u8s8-embed", "head2": "onnx-int8-head2"}
    assert names.count("onnx-int8-u8s8-embed") == 1 and "onnx-int8-u8s8-head2" not in names  # no Conv in a head
    assert "int8" in alt["gates"]["onnxruntime"]
    assert edge.load_program(b, program="alt", precision="int8").step(
        {"image": np.zeros((1, 3, 32, 32), np.float32)})["logits"].shape == (1, 4)


def test_a_program_of_already_quantized_graphs_is_still_held_to_the_budget(
        toyfam: Any, registered: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`same` runs the graphs `main` quantized; its own int8 metric is made to drop 50 points (the score
    is patched, deterministically): the export must fail instead of recording an ungated int8."""
    from edge.calibration import precision

    _shared(toyfam, registered)
    real = precision.PrecisionJob.metric

    def metric(self: Any, pname: str, files: dict[str, str], *a: Any, **k: Any) -> float:
        value = real(self, pname, files, *a, **k)
        return value - 50.0 if pname == "same" and any(".int8." in f for f in files.values()) else value

    monkeypatch.setattr(precision.PrecisionJob, "metric", metric)
    with pytest.raises(ExportError, match=r"same int8 \(its graphs were quantized for another program\)"):
        edge.export_card("toyshared", tmp_path / "b", config="tiny", programs=["main", "same"],
                         precisions=["fp32", "int8"], calib_size=3, eval_size=6, max_drop=10.0)
    assert not (tmp_path / "b").exists()


def _gated(toy: Any, registered: list[str]) -> ModelCard:
    """`same` (the graphs of `main`) names `main`'s gates as its own (ProgramSpec.gated_by)."""
    card = _shared(toy, registered, "toygated")
    programs = tuple(dataclasses.replace(p, gated_by="main") if p.name == "same" else p for p in card.programs)
    return _variant(toy, "toygated", graphs=card.graphs, programs=programs)


def test_a_program_gated_by_another_is_not_scored_and_inherits_its_gates(
        toyfam: Any, registered: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`same` would drop 50 points at int8 (patched, as above) but is not scored when `main` is exported: its
    gates are `main`'s, recorded as inherited, and it runs the int8 forms. ``score_every`` scores it (and the
    export fails on the drop); exported without `main` it is scored too."""
    from edge.calibration import precision

    _gated(toyfam, registered)
    real = precision.PrecisionJob.metric
    scored: list[str] = []

    def metric(self: Any, pname: str, files: dict[str, str], *a: Any, **k: Any) -> float:
        scored.append(pname)
        value = real(self, pname, files, *a, **k)
        return value - 50.0 if pname == "same" and any(".int8." in f for f in files.values()) else value

    monkeypatch.setattr(precision.PrecisionJob, "metric", metric)
    kw: dict[str, Any] = {"config": "tiny", "precisions": ["fp32", "int8"], "calib_size": 3, "eval_size": 6,
                          "max_drop": 10.0}
    b, report = edge.export_card("toygated", tmp_path / "b", programs=["main", "same"], **kw)
    assert "same" not in scored and "main" in scored
    assert report["inherited_gates"] == {"same": "main"}
    gates = b.manifest["programs"]["same"]["gates"]
    assert set(gates) == set(b.manifest["programs"]["main"]["gates"])  # every backend's gates
    mine = b.manifest["programs"]["main"]["gates"]["onnxruntime"]["int8"]
    assert gates["onnxruntime"]["int8"] == {"inherited_from": "main", **{k: mine[k] for k in ("passed", "format")}}
    assert all(r["inherited_from"] == "main" and "metric" not in r for f in gates.values() for r in f.values())
    assert edge.load_program(b, program="same", precision="int8").step(
        {"image": np.zeros((1, 3, 32, 32), np.float32)})["logits"].shape == (1, 4)
    with pytest.raises(ExportError, match="same int8"):
        edge.export_card("toygated", tmp_path / "c", programs=["main", "same"], score_every=True, **kw)
    assert not (tmp_path / "c").exists()
    scored.clear()  # without `main` exported, `same` is gated itself
    _, report = edge.export_card("toygated", tmp_path / "d", programs=["same"], **{**kw, "max_drop": 100.0})
    assert "same" in scored and "inherited_gates" not in report


def test_only_the_exported_programs_run_and_precision_is_honoured(toyfam: Any, registered: list[str],
                                                                  tmp_path: Path) -> None:
    _shared(toyfam, registered)
    b, _ = edge.export_card("toyshared", tmp_path / "b", config="tiny", programs=["alt", "alt"])
    assert list(b.manifest["programs"]) == ["alt"]  # asked twice, exported once
    with edge.load_program(b) as prog:
        assert prog.name == "alt"  # `main` has its graphs here too, but was not exported
    with pytest.raises(BundleError, match="no program 'main'"):
        edge.load_program(b, program="main")
    with pytest.raises(BundleError, match="no int8 artifacts"):  # the torch reference is fp32 only
        edge.load_program(b, "torch", precision="int8")
    with pytest.raises(BundleError, match="no int8 artifacts"):
        edge.load_program(b, precision="int8")


def test_a_program_only_some_configs_have_is_exported_only_for_those(toyfam: Any, registered: list[str],
                                                                     tmp_path: Path) -> None:
    """``ProgramSpec.available``: a stage only some configs build (here: the 'alt' program, available when the
    config's dim is above 16) is left out of the export of the others, and asking for it there is one line."""
    base = toyfam.card()
    graphs = {**base.graphs,
              "head2": Graph("head2", toyfam.io_head, lambda m: m.head, base.graphs["head"].example_inputs)}
    registered.append("toystage")
    card = _variant(toyfam, "toystage", graphs=graphs,
                    programs=(ProgramSpec("alt", ("embed", "head2"), Alt, available=lambda cfg: cfg["dim"] > 16),
                              *base.programs))
    assert [p.name for p in card.programs_for(card.config("tiny"))] == ["main"]
    assert [p.name for p in card.programs_for(card.config("default"))] == ["alt", "main"]
    b, _ = edge.export_card("toystage", tmp_path / "b", config="tiny")
    assert list(b.manifest["programs"]) == ["main"] and sorted(b.graphs) == ["embed", "head"]
    with pytest.raises(ModelError, match="program 'alt' is not available for this config \\(available: main\\)"):
        edge.export_card("toystage", tmp_path / "c", config="tiny", programs=["alt"])
    assert not (tmp_path / "c").exists()
    from edge.program import torch_program

    cfg = card.config("default")
    with torch_program(card, card.build(cfg).eval(), cfg) as prog:
        assert prog.name == "alt"  # the first available
    never = dataclasses.replace(card, programs=(ProgramSpec("alt", ("embed", "head2"), Alt,
                                                            available=lambda cfg: False),))
    with pytest.raises(ModelError, match="no program is available for this config"):
        never.programs_for(cfg)


class Pair:
    """Feeds the embed graph a batch of two views (the frame and its mirror) and averages the logits."""

    def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        self.embed, self.head = graphs["embed"], graphs["head"]

    def reset(self) -> None:
        pass

    def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["image"]
        two = np.concatenate([x, x[..., ::-1]])
        return {"logits": self.head(self.embed({"image": np.ascontiguousarray(two)}))["logits"].mean(0, keepdims=True)}


def test_static_export_takes_the_batch_the_runner_feeds(toyfam: Any, registered: list[str], tmp_path: Path) -> None:
    registered.append("toypair")
    _variant(toyfam, "toypair", programs=(ProgramSpec("pair", ("embed", "head"), Pair),))
    b, _ = edge.export_card("toypair", tmp_path / "b", config="tiny")
    assert b.graph_io("embed").inputs[0].shape[0] == 2 and b.graph_io("head").inputs[0].shape[0] == 2
    card = edge.get_card("toypair")
    sample = card.data.samples(card.config("tiny"), "evaluation", 1, 0)[0]
    with edge.load_program(b) as prog:
        out = prog.step(card.preprocess(sample[0], prog.cfg))
    assert out["logits"].shape == (1, 4)


def test_sources_take_the_family_sensor_names(toyfam: Any, registered: list[str], tmp_path: Path) -> None:
    """A family whose camera sensor is called "image" runs on a video (a source that says "camera")."""
    from edge.stream.overlay import VideoWriter

    base = toyfam.card()

    def pre(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
        return base.preprocess({"camera": frames["image"]}, cfg)

    def post(out: Any, frames: Mapping[str, Any], cfg: dict[str, Any]) -> Any:
        return base.postprocess(out, {"camera": frames["image"]}, cfg)

    registered.append("toyimage")
    _variant(toyfam, "toyimage", sensors=Sensors(("image",)), preprocess=pre, postprocess=post,
             draw=lambda p, f, c: f["image"].data, metric=None, data=None)
    b, _ = edge.export_card("toyimage", tmp_path / "b", config="tiny")
    with VideoWriter(tmp_path / "v.mp4", 10) as w:
        for tick in toyfam.synthetic(5, (48, 64)):
            w.write(tick["camera"][0])
    s = edge.stream.run(b, str(tmp_path / "v.mp4"), jsonl=tmp_path / "r.jsonl", policy="block", handle_signals=False)
    assert s["frames"] == 5 and next(iter(s["sources"].values()))["sensors"] == ["image"]
    recs = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["frames"] for r in recs] == [{"image": i} for i in range(5)]
    # a review: with no data of its own the family got the camera test pattern, whatever its sensors read
    with pytest.raises(DataError, match=r"--source synthetic:3: model 'toyimage' declares no synthetic data"):
        edge.stream.run(b, "synthetic:3", handle_signals=False)


def test_a_finite_trainer_is_an_error_not_a_hang(toyfam: Any, registered: list[str]) -> None:
    from edge.models.training import train

    base = toyfam.card()

    def three(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        it = base.trainer.batches(cfg, batch, seed)
        for _ in range(3):
            yield next(it)

    card = dataclasses.replace(base, trainer=dataclasses.replace(base.trainer, batches=three))
    with pytest.raises(ModelError, match="ended after 3 of 6 steps"):
        train(card, card.config("tiny"), steps=6, batch=2)


def test_malformed_cards_are_refused(toyfam: Any) -> None:
    base = toyfam.card()
    with pytest.raises(ModelError, match="program names repeat"):
        dataclasses.replace(base, programs=(*base.programs, *base.programs))
    with pytest.raises(ModelError, match="test config 'tiny' is not in configs"):  # named, it must exist
        dataclasses.replace(base, configs={"default": base.configs["default"]}, test_config="tiny")
    # not named: tests use the default config
    assert dataclasses.replace(base, configs={"default": base.configs["default"]}).test_config_name == "default"
    with pytest.raises(ModelError, match="calls unknown graphs"):
        dataclasses.replace(base, programs=(ProgramSpec("x", ("embed", "nope"), toyfam.Runner),))
    main = base.programs[0]
    with pytest.raises(ModelError, match="gated_by 'nope', not another program"):
        dataclasses.replace(base, programs=(main, ProgramSpec("x", main.graphs, toyfam.Runner, gated_by="nope")))
    with pytest.raises(ModelError, match="gated_by 'x', not another program"):
        dataclasses.replace(base, programs=(main, ProgramSpec("x", main.graphs, toyfam.Runner, gated_by="x")))
    with pytest.raises(ModelError, match="must call all its graphs"):
        dataclasses.replace(base, programs=(ProgramSpec("x", main.graphs[:1], toyfam.Runner),
                                            ProgramSpec("y", main.graphs, toyfam.Runner, gated_by="x")))


def test_malformed_programs_section_is_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    for bad in (["clip"], {"clip": {"graphs": ["nope"]}},
                {"clip": {"graphs": ["full"], "precisions": {"fp32": {"onnxruntime": {"full": "missing-artifact"}}}}}):
        (b / "manifest.json").write_text(json.dumps({**m, "programs": bad}))
        r = subprocess.run([sys.executable, "-m", "edge.cli.main", "run", str(b), "--source", "synthetic:2"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert (r.returncode == 2 and "programs" in r.stderr) or "program 'clip'" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unknown_program_of_a_plain_module_is_an_error(tmp_path: Path) -> None:
    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    edge.export(Mean(), {"image": np.zeros((1, 3, 24, 32), np.float32)}, tmp_path / "m")
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "run", str(tmp_path / "m"), "--program", "nope",
                        "--source", "synthetic:2", "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "no program 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_our_families_cannot_be_taken_over(tmp_path: Path) -> None:
    """A package that declares its own `lane` through the entry point group is ignored (with a warning)."""
    site = tmp_path / "site"
    (site / "fake").mkdir(parents=True)
    (site / "fake" / "__init__.py").write_text("")
    (site / "fake" / "card.py").write_text("def card():\n    raise RuntimeError('must not be used')\n")
    info = site / "fake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edge.families]\nlane = fake.card:card\n")
    code = "import edge; print(edge.get_card('lane').description)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr
    assert "lane detection" in r.stdout and "ignored" in r.stderr


def _image_variant(toy: Any, name: str, how: str) -> ModelCard:
    """toy with its image declared an ImageInput; ``how``: the preprocess image_feed only, image_feed then a
    mirror, or the toy's own normalisation (not through image_feed)."""
    from edge.data.images import image_feed
    from edge.models.contract import ImageInput

    def spec(cfg: dict[str, Any]) -> ImageInput:
        return ImageInput("embed", "image", tuple(cfg["hw"]), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))

    def preprocess(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
        if how == "own":
            return toy.preprocess(frames, cfg)
        x = image_feed(frames["camera"].data, spec(cfg))[None]
        return {"image": np.ascontiguousarray(x[..., ::-1]) if how == "mirror" else x}

    return dataclasses.replace(toy.card(), name=name, preprocess=preprocess, image_inputs=lambda cfg: (spec(cfg),))


def test_an_image_input_whose_preprocess_does_more_than_image_feed_stays_numpy(toyfam: Any) -> None:
    """A card that mirrors its image after image_feed ran, under in-engine preprocessing, on the colour
    channels mirrored instead (the engine got the bytes mirrored) and scored other numbers silently."""
    from edge.export.api import _image_inputs

    for how, why in (("plain", None), ("mirror", "changes this input after image_feed"),
                     ("own", "does not pass this input through image_feed")):
        card = _image_variant(toyfam, f"toyimg{how}", how)
        cfg = card.config("tiny")
        got = _image_inputs(card, cfg, {"embed", "head"}, card.data.samples(cfg, "calibration", 1, 0)[0])
        if why is None:
            assert [d["input"] for d in got["image_inputs"]] == ["image"] and "image_inputs_numpy_only" not in got
        else:
            assert "image_inputs" not in got, how
            said = got["image_inputs_numpy_only"][0]
            assert said["graph"] == "embed" and why in said["why"]


def test_card_metric_results_name_and_budget_are_checked(toyfam: Any) -> None:
    from edge.models.contract import Metric

    base = toyfam.card()
    with pytest.raises(ModelError, match="results_name 'a/b'"):
        dataclasses.replace(base, results_name="a/b")
    assert dataclasses.replace(base, results_name="bright-values").results_name == "bright-values"
    with pytest.raises(ModelError, match="max_drop 'abc'"):
        dataclasses.replace(base, metric=dataclasses.replace(base.metric, max_drop="abc"))
    assert dataclasses.replace(base, metric=dataclasses.replace(base.metric, max_drop="20%")).metric.max_drop == "20%"
    with pytest.raises(ModelError, match=r"metric quantum 2\.5 must be a function of the sample count"):
        dataclasses.replace(base, metric=dataclasses.replace(base.metric, quantum=2.5))
    m = Metric("mae", lambda r, f, c: 1.0, lambda items: {"mae": 1.0})
    with pytest.raises(ModelError, match=r"metric 'mae': reduce\(\) must return a dict with a number under 'value'"):
        m.score([1.0])
    assert Metric("x", lambda r, f, c: 1.0, lambda items: {"value": np.float32(2.5)}).score([1.0])["value"] == 2.5


def test_a_text_export_option_takes_digits_as_text(toyfam: Any) -> None:
    base = toyfam.card()
    card = dataclasses.replace(base, configs={k: {**v, "mode": "a"} for k, v in base.configs.items()},
                               export_options={"mode": "a text option"})
    assert card.with_options(card.config("tiny"), {"mode": 3})["mode"] == "3"  # `--set mode=3`
    assert card.with_options(card.config("tiny"), {"mode": "b"})["mode"] == "b"


def test_export_errors_of_a_users_family_are_one_line(toyfam: Any, registered: list[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that fails in its own forward, a checkpoint of a family not installed (named with its file),
    and a file in the working folder named like a family (the family is meant)."""
    from edge.export.api import export_card
    from edge.models.checkpoint import save_checkpoint

    class Broken(toyfam.Runner):
        def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise RuntimeError("shape '[1, 2, 3]' is invalid for input of size 5")

    registered.append("toybroken")
    _variant(toyfam, "toybroken", programs=(ProgramSpec("main", ("embed", "head"), Broken),))
    with pytest.raises(ExportError, match="program 'main' failed in PyTorch on a synthetic sample") as e:
        export_card("toybroken", tmp_path / "b", config="tiny")
    assert "\n" not in str(e.value) and not (tmp_path / "b").exists()
    card = toyfam.card()
    ck = save_checkpoint(tmp_path / "ghost.pt", "ghost", card.config("tiny"), card.build(card.config("tiny")))
    with pytest.raises(ModelError, match=r"ghost\.pt: unknown model 'ghost'"):
        export_card(str(ck), tmp_path / "g")
    registered.append("toycwd")
    _variant(toyfam, "toycwd")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toycwd").write_text("notes, not a checkpoint")
    bundle, _ = export_card("toycwd", tmp_path / "c", config="tiny")
    assert bundle.manifest["model"]["name"] == "toycwd"


def test_a_build_that_fails_and_a_mis_named_graph_input_are_one_line(toyfam: Any, registered: list[str],
                                                                      tmp_path: Path) -> None:
    """A config key the model's constructor reads that the configs lack was a KeyError traceback out of edge-export
    and edge train; a graph input named otherwise than preprocess makes said "missing input(s) ['img']; the model
    takes ['img']", naming neither the graph nor what was fed."""
    from edge.export.api import export_card
    from edge.models.training import train

    base = toyfam.card()

    def build(cfg: dict[str, Any]) -> Any:
        return base.build({**cfg, "heads": cfg["head"]})

    registered.append("toytypo")
    card = _variant(toyfam, "toytypo", build=build)
    for call in (lambda: export_card("toytypo", tmp_path / "b", config="tiny"),
                 lambda: train(card, card.config("tiny"), steps=2, batch=2)):
        with pytest.raises(ModelError, match=r"model 'toytypo': building the model failed \(KeyError: 'head'\); a "
                                             "config key the model reads that the config lacks") as e:
            call()
        assert "\n" not in str(e.value)
    assert not (tmp_path / "b").exists()

    def io_embed(cfg: dict[str, Any]) -> Any:
        io = base.graphs["embed"].io(cfg)
        return dataclasses.replace(io, inputs=tuple(dataclasses.replace(t, name="img") for t in io.inputs))

    registered.append("toyio")
    _variant(toyfam, "toyio", graphs={**base.graphs, "embed": dataclasses.replace(base.graphs["embed"], io=io_embed)})
    with pytest.raises(edge.EdgeError, match=r"graph 'embed': missing input\(s\) \['img'\] \(given \['image'\]\)"):
        export_card("toyio", tmp_path / "b", config="tiny")


def test_the_gate_scores_on_labelled_data_when_given(toyfam: Any, registered: list[str], tmp_path: Path) -> None:
    """--eval-data: the INT8 gate scores the family's own labelled data (here the toy family's CSV reader), the
    manifest says which; a bad spec fails before anything is written, and --eval-size beside it is refused."""
    import cv2

    from edge.export.api import export_card

    registered.append("toyval")
    _variant(toyfam, "toyval")
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    (tmp_path / "labels.csv").write_text("0.png,0\n1.png,1\n2.png,2\n")
    b, _ = export_card("toyval", tmp_path / "b", config="tiny", precisions="fp32,int8", calib_size=3,
                            max_drop=100.0, eval_data=str(tmp_path / "labels.csv"))
    gate = b.manifest["programs"]["main"]["gates"]["onnxruntime"]["fp32"]
    assert gate["samples"] == 3 and gate["data"] == f"3 labelled samples from {tmp_path / 'labels.csv'}"
    with pytest.raises(edge.EdgeError, match=r"nope\.csv: no such file or folder \(--eval-data takes"):
        export_card("toyval", tmp_path / "c", config="tiny", precisions="fp32,fp16",
                    eval_data=str(tmp_path / "nope.csv"))
    assert not (tmp_path / "c").exists()  # refused before the export, as for int8 (fp16 alone exported first)
    for kwargs, needle in (({"eval_data": str(tmp_path / "nope.csv")}, "nope.csv: no such file or folder"),
                           ({"eval_data": f"{tmp_path / 'labels.csv'},bogus=1"}, "unknown option bogus"),
                           ({"eval_data": str(tmp_path / "labels.csv"), "eval_size": 4}, "give one or the other"),
                           # a review: the option was named `eval_data` (the Python argument), as `edge val`'s `data`
                           ({"eval_data": [str(tmp_path / "labels.csv")] * 2}, r"^--eval-data .*: given twice")):
        with pytest.raises(edge.EdgeError, match=needle):
            export_card("toyval", tmp_path / "c", config="tiny", precisions="fp32,int8", calib_size=3, **kwargs)
        assert not (tmp_path / "c").exists()


def test_every_step_count_trains(toyfam: Any) -> None:
    """`edge train --steps 10` died in torch's OneCycleLR (a warm-up of exactly one step divides by zero)."""
    from edge.models.training import train

    card = toyfam.card()
    for steps in (1, 2, 10, 11):
        assert len(train(card, card.config("tiny"), steps=steps, batch=1).losses) == steps


def test_a_manifest_holds_no_bare_nan(toyfam: Any, registered: list[str], tmp_path: Path) -> None:
    """A checkpoint's eval of nan went into manifest.json as the bare word NaN, which strict readers refuse."""
    from edge.export.api import export_card
    from edge.models.checkpoint import save_checkpoint

    registered.append("toynan")
    card = _variant(toyfam, "toynan")
    ck = save_checkpoint(tmp_path / "n.pt", "toynan", card.config("tiny"), card.build(card.config("tiny")),
                         meta={"eval": {"value": float("nan")}})
    export_card(str(ck), tmp_path / "b")
    m = json.loads((tmp_path / "b" / "manifest.json").read_text(),
                   parse_constant=lambda c: pytest.fail(f"bare {c} in manifest.json"))
    assert m["model"]["weights"]["trained"]["eval"] == {"value": None}


def test_an_fp32_metric_of_nan_is_said_before_any_quantizing(toyfam: Any, registered: list[str],
                                                             tmp_path: Path) -> None:
    from edge.export.api import export_card

    base = toyfam.card()
    registered.append("toynanmetric")
    nan = dataclasses.replace(base.metric, reduce=lambda items: {"value": float("nan")})
    _variant(toyfam, "toynanmetric", metric=nan)
    with pytest.raises(ExportError, match="the fp32 colour accuracy is nan") as e:
        export_card("toynanmetric", tmp_path / "b", config="tiny", precisions=["fp32", "int8"], calib_size=4,
                    eval_size=4)
    assert "\n" not in str(e.value) and not (tmp_path / "b").exists()
    assert "no INT8 form" in str(e.value)
    # fp16 is gated on the metric too (it was exported whatever the metric said)
    with pytest.raises(ExportError, match=r"the fp32 colour accuracy is nan .* no fp16 form can be gated") as e:
        export_card("toynanmetric", tmp_path / "h", config="tiny", precisions=["fp32", "fp16"], eval_size=4)
    assert "\n" not in str(e.value) and not (tmp_path / "h").exists()
    # and fp32 alone has nothing to gate: written
    export_card("toynanmetric", tmp_path / "f", config="tiny", precisions=["fp32"], eval_size=4)
    arts = json.loads((tmp_path / "f" / "manifest.json").read_text())["artifacts"]
    assert any(a["precision"] == "fp32" for a in arts)


class _Pooled(torch.nn.Module):
    """One Linear on the frame's mean colour (tiled to ``width`` inputs; int8 leaves dot products under 16
    terms in float): a graph with a single quantizable node at 18, none at 3."""

    def __init__(self, cfg: dict[str, Any], width: int = 18) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(width, cfg["classes"])


@pytest.mark.parametrize(("width", "said"), [
    (18, "only with every node left in float"),
    (3, "has no node int8 quantizes: its 1 MatMul/Gemm all sum fewer than 16 terms")])
def test_an_int8_program_left_all_float_by_the_gate_is_not_written(toyfam: Any, registered: list[str],
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   width: int, said: str) -> None:
    """A budget only met with every node in float: the 'int8' program would be fp32, so it is refused like a
    gate that fails (it was written and called int8, with a warning). A graph whose only Linear reads 3
    inputs has nothing int8 quantizes, and the refusal says why (it named only Conv, MatMul, Gemm, which
    the graph has), without first warning that the graph runs in fp32 (a warning about an artifact that is
    then not written)."""
    import onnx

    from edge.calibration import precision
    from edge.export.api import export_card
    from edge.spec import IOSpec, TensorSpec

    def io_lin(cfg: dict[str, Any]) -> IOSpec:
        return IOSpec((TensorSpec("rgb", "float32", ("batch", width)),),
                      (TensorSpec("logits", "float32", ("batch", cfg["classes"])),))

    class One:
        def __init__(self, graphs: Mapping[str, Any], cfg: dict[str, Any]) -> None:
            self.lin = graphs["lin"]

        def reset(self) -> None:
            pass

        def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return self.lin(feeds)

    def pre(frames: Mapping[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
        mean = frames["camera"].data.reshape(-1, 3).mean(0) / 255.0
        return {"rgb": np.tile(mean, width // 3).astype(np.float32)[None]}

    base = toyfam.card()
    exact = dataclasses.replace(base.metric, item=lambda rec, fr, cfg: rec["score"],
                                reduce=lambda items: {"value": 1e4 * float(sum(items))}, bounds=None)
    # any quantized node costs the budget, so with --max-drop 0 only the all-float try meets the budget (the
    # toy's scores, rounded to 4 digits, did not move quantized on an AMX CPU: that was one CPU's rounding)
    real = precision.PrecisionJob.metric

    def metric(self: Any, pname: str, files: dict[str, str], *a: Any, **k: Any) -> float:
        quantized = any(n.op_type == "DequantizeLinear" for f in files.values()
                        for n in onnx.load(f, load_external_data=False).graph.node)
        # far more than quantization itself moves the toy's score sum (tens of its units)
        return real(self, pname, files, *a, **k) - (1e9 if quantized else 0.0)

    monkeypatch.setattr(precision.PrecisionJob, "metric", metric)
    registered.append("toyone")
    _variant(toyfam, "toyone", build=lambda cfg: _Pooled(cfg, width),
             graphs={"lin": Graph("lin", io_lin, lambda m: m.lin, lambda c, b, s: {
                 "rgb": np.random.default_rng(s).random((b, width)).astype(np.float32)}, "colour -> logits")},
             programs=(ProgramSpec("main", ("lin",), One),), preprocess=pre, metric=exact, trainer=None)
    lines: list[str] = []
    with pytest.raises(ExportError, match=said) as e:
        export_card("toyone", tmp_path / "b", config="tiny", precisions=["fp32", "int8"], calib_size=4,
                    eval_size=8, max_drop=0, progress=lines.append)
    assert "\n" not in str(e.value) and not (tmp_path / "b").exists()
    # the refusal is the one message: no per-graph 'runs in fp32' warning printed before it
    assert not any("every node left in float" in x for x in lines), lines


def test_a_stepped_metric_gets_the_samples_its_budget_needs(toyfam: Any, registered: list[str],
                                                            tmp_path: Path) -> None:
    """The toy's colour accuracy is a rate of frames right: declared as stepped (``quantum``), the export
    with no ``--eval-size`` scores 100 samples against a 2-point budget (one sample 1 point), records that
    in the gate, and an explicit 6 (one sample 16.7 points) warns that the gate cannot resolve 10 points."""
    toy = toyfam.card()
    registered.append("toystep")
    _variant(toyfam, "toystep", metric=dataclasses.replace(toy.metric, quantum=edge.models.percent_per_sample))
    said: list[str] = []
    b, _ = edge.export_card("toystep", tmp_path / "a", config="tiny", precisions=["fp32", "int8"], calib_size=3,
                            max_drop=2.0, progress=said.append)
    assert "main: scoring fp32 on 100 held-out samples" in said
    gate = b.manifest["programs"]["main"]["gates"]["onnxruntime"]["fp32"]
    assert gate["samples"] == 100 and gate["one_sample"] == pytest.approx(1.0)
    assert not [m for m in said if "evaluation samples moves" in m]
    said.clear()
    b, _ = edge.export_card("toystep", tmp_path / "b", config="tiny", precisions=["fp32", "int8"], calib_size=3,
                            eval_size=6, max_drop=10.0, progress=said.append)
    assert b.manifest["programs"]["main"]["gates"]["onnxruntime"]["fp32"]["samples"] == 6
    (warning,) = [m for m in said if "evaluation samples moves" in m]
    assert "moves the colour accuracy by 16.7%, over half the gate's budget of 10%" in warning
    assert warning.endswith("(--eval-size 20 resolves it)")


def test_feeds_wanted_says_which_graphs_the_feeds_are_for() -> None:
    """Outside ``feeds_for`` every graph's feeds are wanted (a caller that names no program, e.g. the INT8
    calibration set); inside, only the named graphs', and the previous answer comes back on leaving."""
    from edge.models.contract import feeds_for, feeds_wanted

    assert feeds_wanted("match") and feeds_wanted("anything")
    with feeds_for(("encode", "step")):
        assert feeds_wanted("step") and not feeds_wanted("match")
        with feeds_for(["match"]):
            assert feeds_wanted("match") and not feeds_wanted("step")
        assert not feeds_wanted("match")
    assert feeds_wanted("match")
    with pytest.raises(RuntimeError), feeds_for(("a",)):
        raise RuntimeError
    assert feeds_wanted("match")  # reset after an error too


def test_a_users_family_code_that_raises_is_one_line_naming_the_part(toyfam: Any, registered: list[str],
                                                                     tmp_path: Path) -> None:
    """Found by a review: a family whose runner, postprocess or metric item raised gave `edge val`, `edge bench`, the
    INT8 gate and `edge train`'s scoring a traceback; `edge run` said "postprocess failed" for its draw. Each is one
    ModelError naming the family and the part now (the exception chained), wherever it runs."""
    from edge.export.api import export_card
    from edge.program import evaluate, load_program
    from edge.stream.task import FamilyTask, Result

    card = toyfam.card()
    bundle, _ = export_card(_variant(toyfam, "toyok").name, tmp_path / "b", config="tiny")
    registered.append("toyok")
    samples = card.data.samples(card.config("tiny"), "evaluation", 2, 0)

    def score(variant: ModelCard) -> None:
        with load_program(bundle, "onnxruntime") as prog:
            evaluate(prog, variant, samples)

    class Broken(toyfam.Runner):
        def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise RuntimeError("exploded")

    for changes, needle in (
            ({"postprocess": lambda out, frames, cfg: {"a": 1}},
             r"model 'toyok': postprocess must return \(record dict, payload\), got a dict"),
            ({"postprocess": lambda out, frames, cfg: 1 / 0}, r"model 'toyok': postprocess raised ZeroDivisionError"),
            ({"metric": dataclasses.replace(card.metric, item=lambda rec, frames, cfg: rec["klass"])},
             r"model 'toyok': metric 'colour accuracy' item raised KeyError: 'klass'")):
        with pytest.raises(ModelError, match=needle) as e:
            score(dataclasses.replace(card, name="toyok", **changes))
        assert "\n" not in str(e.value) and (e.value.__cause__ is not None or "must return" in needle)
    from edge.models.contract import family_code

    # a missing extra stays itself: the CLI names the pip line for it
    with pytest.raises(ModuleNotFoundError), family_code("toyok", "postprocess"):
        import edge_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    with load_program(bundle, "onnxruntime") as prog:
        prog.runner = Broken(prog.runtimes, prog.cfg)
        with pytest.raises(ModelError, match=r"model 'toyok': program 'main' raised RuntimeError: exploded"):
            evaluate(prog, dataclasses.replace(card, name="toyok"), samples)
    task = FamilyTask(bundle, card=dataclasses.replace(card, name="toyok", draw=lambda p, f, c: np.zeros((4, 4),
                                                                                                       np.float32)))
    try:
        with pytest.raises(ModelError, match=r"model 'toyok': draw must return a uint8 HxWx3 BGR image or None, got "
                                             r"float32 \(4, 4\)"):
            task.draw(Result(0, {}, {}, None))
    finally:
        task.close()


def test_a_users_preprocess_reader_loss_and_runner_in_the_loop_are_named(toyfam: Any, registered: list[str],
                                                                         tmp_path: Path) -> None:
    """Found by a review: a user's family whose preprocess, labelled-data reader (or its lazy loader) or trainer's
    loss raised gave `edge val`, `edge-export --calib/--eval-data` and `edge train` a traceback (exit 1), and `edge
    run` said "infer failed: KeyError" for its runner. Each is one ModelError naming the family and the part; the
    family's own DataError (an unusable frame set, the loop's counted skip) passes as it is."""
    from edge.export.api import export_card
    from edge.models import LazySamples
    from edge.models.training import train
    from edge.stream.task import FamilyTask
    from edge.val import labelled_samples

    card = dataclasses.replace(toyfam.card(), name="toyb")
    cfg = card.config("tiny")
    frames = card.data.samples(cfg, "evaluation", 1, 0)[0][0]

    def boom(*a: Any, **k: Any) -> Any:
        raise ValueError("boom")

    def unusable(*a: Any, **k: Any) -> Any:
        raise DataError("this frame set cannot be used")

    with pytest.raises(ModelError, match=r"^model 'toyb': preprocess raised ValueError: boom$"):
        dataclasses.replace(card, preprocess=boom).preprocessed(frames, cfg)
    with pytest.raises(DataError, match=r"^this frame set cannot be used$"):
        dataclasses.replace(card, preprocess=unusable).preprocessed(frames, cfg)
    labels = tmp_path / "labels.csv"
    labels.write_text("")
    reader = dataclasses.replace(card.data.labelled, read=lambda path, cfg, limit=None: boom())
    bad_reader = dataclasses.replace(card, data=dataclasses.replace(card.data, labelled=reader))
    with pytest.raises(ModelError, match=rf"^model 'toyb': labelled reader on --data {labels} raised ValueError: "):
        labelled_samples(bad_reader, cfg, str(labels))
    with pytest.raises(DataError, match="unknown option colour"):  # still the spec's error, not the reader's bug
        labelled_samples(bad_reader, cfg, f"{labels},colour=red")
    reader = dataclasses.replace(card.data.labelled, read=lambda path, cfg, limit=None: LazySamples(2, boom))
    lazy = dataclasses.replace(card, data=dataclasses.replace(card.data, labelled=reader))
    got, _ = labelled_samples(lazy, cfg, str(labels))
    with pytest.raises(ModelError, match=r"^model 'toyb': labelled reader's load of sample 1 raised ValueError"):
        got[1]
    bad_loss = dataclasses.replace(card, trainer=dataclasses.replace(card.trainer, loss=boom))
    with pytest.raises(ModelError, match=r"^model 'toyb': trainer's loss raised ValueError: boom$"):
        train(bad_loss, cfg, steps=1, batch=2)

    bundle, _ = export_card(_variant(toyfam, "toyb").name, tmp_path / "b", config="tiny")
    registered.append("toyb")

    class Broken(toyfam.Runner):
        def step(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise KeyError("exploded")

    task = FamilyTask(bundle, card=card)
    try:
        task.program.runner = Broken(task.program.runtimes, task.program.cfg)
        with pytest.raises(ModelError, match=r"^model 'toyb': program 'main' raised KeyError: 'exploded'$"):
            task.infer(task.preprocess(frames))
    finally:
        task.close()


def test_register_refuses_a_name_or_factory_that_is_none() -> None:
    """Found by a review: register(None, card) was taken, and every later edge.list_models() / get_card() was a
    TypeError from sorting the names."""
    for name in (None, "", " toy", "my family", 3):
        with pytest.raises(ModelError, match="a family's name is a non-empty string without blanks"):
            edge.models.register(name, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=r"register\('toyz', \.\.\.\): give a function"):
        edge.models.register("toyz", None)  # type: ignore[arg-type]
    assert "toyz" not in edge.list_models() and "lane" in edge.list_models()


def test_a_users_card_needs_no_config_named_tiny(toyfam: Any) -> None:
    """A user's card of configs "small" and "big" was refused: "test config 'tiny' is not in configs" (a name
    only our families use, a field the README's template never mentions). Without one, tests use the default."""
    card = toyfam.card()
    own = dataclasses.replace(card, configs={"small": card.configs["tiny"], "big": card.configs["default"]},
                              default_config="small")
    assert own.test_config_name == "small" and card.test_config_name == "tiny"
    with pytest.raises(ModelError, match=r"test config 'huge' is not in configs \['big', 'small'\]"):
        dataclasses.replace(own, test_config="huge")


def test_a_family_without_draw_refuses_save_and_its_out_folder_has_no_video(
        toyfam: Any, registered: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`edge run --save` on a family whose card gives no draw wrote nothing, said nothing and exited 0; ``--out``
    then writes its JSONL and summary without a video. A draw that returns None for every frame is a note."""
    from edge.cli.main import _invoke, app
    from edge.errors import DataError
    from edge.export.api import export_card
    from edge.stream.api import run

    registered.append("toynodraw")
    card = _variant(toyfam, "toynodraw", draw=ModelCard.__dataclass_fields__["draw"].default)
    assert not card.draws and toyfam.card().draws
    export_card("toynodraw", tmp_path / "b", config="tiny")
    with pytest.raises(DataError, match="--save: model 'toynodraw' draws no overlay"):
        run(tmp_path / "b", "synthetic:2:32x32", save=tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()
    code = _invoke(app, ["run", str(tmp_path / "b"), "--source", "synthetic:2:32x32", "--out", str(tmp_path / "o")],
                   "edge")
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["classes.jsonl", "summary.json"]

    registered.append("toyblank")
    _variant(toyfam, "toyblank", draw=lambda payload, frames, cfg: None)
    export_card("toyblank", tmp_path / "c", config="tiny")
    s = run(tmp_path / "c", "synthetic:2:32x32", save=tmp_path / "w.mp4")
    assert f"--save {tmp_path / 'w.mp4'}: no overlay frame in this run's 2 result(s)" in " ".join(s["notes"])
    assert not (tmp_path / "w.mp4").exists() and "video" not in s["outputs"]


def test_a_graph_returning_other_outputs_than_its_iospec_is_one_line(toyfam: Any) -> None:
    """A graph whose module returns a dict without an output its IOSpec names was a bare KeyError."""
    from edge.runtimes import from_module
    from edge.spec import IOSpec, TensorSpec

    class Named(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return {"logits": x * 2, "box": x}

    io = IOSpec((TensorSpec("x", "float32", (1, 2)),), (TensorSpec("scores", "float32", (1, 2)),
                                                        TensorSpec("box", "float32", (1, 2))))
    with pytest.raises(BundleError, match=r"returned outputs \['box', 'logits'\], its IOSpec declares \['box', "
                                          r"'scores'\]"):
        from_module(Named(), io).infer({"x": np.ones((1, 2), np.float32)})

    class NotTensor(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x, 3

    with pytest.raises(BundleError, match="returned a int as output 'box', not a tensor"):
        from_module(NotTensor(), io).infer({"x": np.ones((1, 2), np.float32)})


def test_card_fields_of_the_wrong_type_are_named(toyfam: Any) -> None:
    """``sensors="camera"`` gave "AttributeError: 'str' object has no attribute 'required'" from the core."""
    base = toyfam.card()
    for changes, said in (({"sensors": "camera"}, "sensors must be edge.models.Sensors, got str"),
                          ({"metric": "acc"}, "metric must be edge.models.Metric or None, got str"),
                          ({"preprocess": None}, "preprocess must be a function, got NoneType"),
                          ({"graphs": {"embed": "x"}}, "graph 'embed' must be edge.models.Graph, got str"),
                          ({"programs": ("main",)}, "programs must hold edge.models.ProgramSpec, got str"),
                          ({"configs": {"tiny": 1, "default": {}}}, "config 'tiny' must be a mapping, got int")):
        with pytest.raises(ModelError, match=f"family 'toy': .*{said}"):
            dataclasses.replace(base, **changes)
    import types  # read-only mappings are mappings (a review: they were refused as "not a dict")

    frozen = dataclasses.replace(base, configs=types.MappingProxyType({k: types.MappingProxyType(v) for k, v in
                                                                       base.configs.items()}),
                                 graphs=types.MappingProxyType(dict(base.graphs)))
    assert frozen.config("tiny") == base.config("tiny")


def test_a_metric_that_is_not_a_number_is_said_by_val_and_run(toyfam: Any, registered: list[str], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`edge val` showed a table of "nan%" without a word, and with --max-drop blamed a "drop by nan%"."""
    from edge.cli.main import _invoke, app
    from edge.export.api import export_card
    from edge.stream.api import run

    registered.append("toynanval")
    base = toyfam.card()
    _variant(toyfam, "toynanval", metric=dataclasses.replace(base.metric, reduce=lambda items: {"value": float("nan")}))
    export_card("toynanval", tmp_path / "b", config="tiny")  # fp32 only: no budget to hold against the metric
    code = _invoke(app, ["val", str(tmp_path / "b"), "--data", "synthetic:4", "--backends", "torch,onnxruntime",
                         "--max-drop", "1"], "edge")
    out, err = capsys.readouterr()
    assert code == 1
    assert "note: colour accuracy is not a number for main:torch/fp32, main:onnxruntime/fp32" in out.replace("\n", " ")
    assert "main:onnxruntime/fp32 (its colour accuracy or its reference's is not a number)" in err
    s = run(tmp_path / "b", "synthetic:2:32x32", jsonl=tmp_path / "r.jsonl")
    assert "colour accuracy is not a number for this run" in " ".join(s["notes"])
