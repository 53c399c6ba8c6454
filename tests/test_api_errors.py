"""The Python API's bad arguments are EdgeErrors with one line naming what is wrong (a user's review found raw
KeyErrors, TypeErrors and AttributeErrors from deep inside), and edge.stream is reachable as the README spells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import edge
from edge.errors import BundleError, ClosedError, DataError, EdgeError, SpecError


def test_edge_stream_and_its_task_module_load_lazily_from_edge() -> None:
    assert edge.stream.run.__name__ == "run" and edge.stream.task.RuntimeTask.__name__ == "RuntimeTask"


@pytest.mark.parametrize("bad", [None, 5])
def test_a_bundle_that_is_not_a_path(bad: object) -> None:
    with pytest.raises(BundleError, match=r"a bundle is a folder path \(str or os.PathLike\), got"):
        edge.load(bad)


def test_closed_runtimes_and_programs_say_so(tiny_bundle: Path) -> None:
    rt = edge.load(tiny_bundle, graph="encoder")
    rt.close()
    with pytest.raises(ClosedError, match="onnxruntime runtime is closed"):
        rt.infer({"frame": np.zeros((1, 3, 64, 128), np.float32)})
    assert issubclass(ClosedError, RuntimeError)  # what it raised before: callers catching that still do
    prog = edge.load_program(tiny_bundle, "onnxruntime", program="stream")
    prog.close()
    for get in (lambda: prog.inputs, lambda: prog.backend):
        with pytest.raises(ClosedError, match="program 'stream' is closed"):
            get()


def test_program_artifacts_steps_and_a_named_artifact(tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match=r"program 'stream' \(encoder, temporal\); missing temporal"):
        edge.load_program(tiny_bundle, "onnxruntime", artifacts={"encoder": "onnx-fp32-encoder"})
    with edge.load_program(tiny_bundle, "onnxruntime", artifacts={"full": "onnx-fp32-full"}) as p:
        assert p.name == "clip"  # the program that calls exactly the graphs named
    with edge.load_program(tiny_bundle, "onnxruntime", program="stream") as p:
        with pytest.raises(SpecError, match=r"program 'stream': no step feed 'frame' \(given: img\)"):
            p.step({"img": np.zeros(3, np.float32)})
        with pytest.raises(SpecError, match="step feeds are a mapping"):
            p.step(None)  # type: ignore[arg-type]
    with edge.load(tiny_bundle, artifact="onnx-fp32-encoder") as rt:  # its graph, without graph=
        assert rt.inputs.input_names == ["frame"]


def test_a_feed_that_does_not_fit_an_edited_manifest_names_the_manifest(tiny_bundle: Path, tmp_path: Path) -> None:
    """A review: a manifest whose graph io was edited gave "graph 'full': input 'clip': dim 3 is 64, expected 32",
    naming no file; the shape held against is the manifest's, so the line names it."""
    import json
    import shutil

    b = Path(shutil.copytree(tiny_bundle, tmp_path / "edited"))
    m = json.loads((b / "manifest.json").read_text())
    feed_shape = list(m["graphs"]["full"]["inputs"][0]["shape"])
    m["graphs"]["full"]["inputs"][0]["shape"][3] = 32
    (b / "manifest.json").write_text(json.dumps(m))
    with edge.load_program(b, "onnxruntime", program="clip") as p:  # its step feeds one frame; 'full' the clip
        assert feed_shape[2:] == [3, 64, 128]
        with pytest.raises(SpecError, match=rf"graph 'full' of {b}/manifest\.json: input 'clip': dim 3 is 64, "
                                            "expected 32"):
            p.step({"frame": np.zeros((1, 3, 64, 128), np.float32)})


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"source": None}, "source: a source spec string"),
    ({"max_frames": "x"}, "max_frames: an integer >= 0"),
    ({"threads": -2}, "threads: an integer >= 0"),
    ({"sinks": [object()]}, r"sinks: objects with open\(\), write\(result\) and close\(commit\)"),
    ({"sinks": 3}, "sinks: a list of sinks, got int"),
    ({"jsonl": 3}, "jsonl: a path, got int"),
    ({"dump_points": 3.5}, "dump_points: a path, got float"),
    ({"lidar": 3}, "lidar: a spec string, got int"),
    ({"task": 3}, r"task: a task with preprocess\(\), infer\(\) and postprocess\(\)"),
    ({"stall_s": -1}, "stall_s: .* a finite number > 0"),
    ({"stall_s": "abc"}, "stall_s: .* got 'abc'"),
    ({"stall_s": 10**400}, "stall_s: .* a finite number > 0"),
    ({"stall_s": float("nan")}, "stall_s: .* a finite number > 0"),
    # a review of the API: "no" switched an option on; a string or a list reached deep code as TypeErrors
    ({"realtime": "no"}, "realtime: True or False, got 'no'"),
    ({"live": 1}, "live: True or False, got 1"),
    ({"display": None}, "display: True or False"),
    ({"handle_signals": "yes"}, "handle_signals: True or False"),
    ({"sync_ms": "50"}, "sync_ms: milliseconds, a number, got str"),
    ({"out_folder": 3}, "out_folder: a path, got int"),
    ({"backend": ["openvino"]}, "backend: a name, got list"),
    ({"policy": None}, "policy: a name, got NoneType"),
    ({"signals_after": "x"}, "signals_after: signal.SIG_IGN, signal.SIG_DFL, a handler or None, got 'x'"),
    ({"task": type("T", (), {"preprocess": print, "infer": print, "postprocess": print})()},
     r"task: `sensors`, the sensor names it reads .* got None"),
    ({"task": type("T", (), {"preprocess": print, "infer": print, "postprocess": print, "sensors": ()})()},
     r"task: `sensors`.* got \(\)"),
])
def test_stream_run_checks_its_arguments(tiny_bundle: Path, kwargs: dict[str, object], needle: str) -> None:
    args = {"source": "synthetic:2", **kwargs}
    with pytest.raises(EdgeError, match=needle):
        edge.stream.run(tiny_bundle, **args)
    with pytest.raises(EdgeError, match="bundle: a bundle folder"):
        edge.stream.run(None, "synthetic:2")


@pytest.mark.parametrize(("options", "needle"), [
    ({"bogus": 1}, "backend 'onnxruntime' takes no option 'bogus'"),
    ({"optimization": "bogus"}, "optimization 'bogus': choose one of disable, basic, extended, all"),
    ({"threads": "x"}, r"threads: an integer from 0 \(the backend's default\) to 1024, got 'x'"),
    ({"threads": -2}, "threads: an integer from 0"),
    ({"threads": 10**20}, "to 1024, got 100000000000000000000"),  # each backend's own overflow before
])
def test_backend_options_are_checked(tiny_bundle: Path, options: dict[str, object], needle: str) -> None:
    with pytest.raises(EdgeError, match=needle):
        edge.load(tiny_bundle, graph="encoder", **options)
    with pytest.raises(EdgeError, match=needle):
        edge.load_program(tiny_bundle, "onnxruntime", **options)


def test_threads_none_is_the_default_on_every_backend(tiny_bundle: Path) -> None:
    """ONNX Runtime took threads=None as int(None) (a TypeError); OpenVINO and torch took it as their default."""
    with edge.load(tiny_bundle, graph="encoder", threads=None) as rt:
        assert rt.inputs.input_names == ["frame"]


def _export_cases() -> list[tuple[str, object, object, dict[str, object], str]]:
    return [
        ("function", "fn", {"x": np.zeros((1, 4), np.float32)}, {}, "module: a torch.nn.Module, got function"),
        ("none", "linear", None, {}, "example_inputs: a dict .* got None"),
        ("empty", "linear", {}, {}, r"got dict \(empty\)"),
        ("shape", "linear", {"input": np.zeros((1, 5), np.float32)}, {},
         r"Linear fails on the example inputs \(input: \[1, 5\]\): RuntimeError: mat1 and mat2"),
        ("rtol", "linear", {"input": np.zeros((1, 4), np.float32)}, {"rtol": "x"}, "--rtol 'x': .* a number"),
        ("opset", "linear", {"input": np.zeros((1, 4), np.float32)}, {"opset": "20"}, "--opset '20': an integer"),
        ("scalar out", "scalar", {"x": np.zeros((1, 4), np.float32)}, {"dynamic_batch": True},
         "dynamic_batch: output1 is a scalar, with no dim 0 to be the batch"),
        ("seed", "linear", {"input": np.zeros((1, 4), np.float32)}, {"seed": "a"}, "seed: an integer >= 0, got 'a'"),
        ("flag", "linear", {"input": np.zeros((1, 4), np.float32)}, {"dynamic_batch": "no"},
         "dynamic_batch: True or False, got 'no'"),
        ("0-d", "linear", {"input": np.array(1.0, np.float32)}, {}, r"'input' is 0-d \(a scalar\)"),
        ("text", "linear", "abc", {}, r"got str$"),
    ]


@pytest.mark.parametrize("case", _export_cases(), ids=lambda c: c[0])
def test_edge_export_argument_mistakes_are_one_line(tmp_path: Path, case: tuple) -> None:
    torch = pytest.importorskip("torch")
    from edge.errors import ExportError

    class Scalar(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x * 2, x.sum()

    modules = {"fn": lambda x: x, "linear": torch.nn.Linear(4, 2), "scalar": Scalar()}
    _, which, example, kwargs, needle = case
    with pytest.raises(ExportError, match=needle):
        edge.export(modules[which], example, tmp_path / "b", **kwargs)
    assert not (tmp_path / "b").exists()


def test_edge_export_takes_one_tensor_as_the_one_input_and_export_card_a_path(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    b = edge.export(torch.nn.Linear(4, 2), torch.randn(1, 4), tmp_path / "b")
    assert [(t.name, t.shape) for t in b.io.inputs] == [("input0", (1, 4))]  # not iterated over its rows
    from edge.errors import ExportError

    with pytest.raises(ExportError, match="config: the name of one of the family's configs"):
        edge.export_card("lane", tmp_path / "c", config={"hw": [16, 16]})  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="model: a family's name or a checkpoint path, got int"):
        edge.export_card(5, tmp_path / "c")  # type: ignore[arg-type]


def test_a_scalar_input_under_dynamic_batch_is_named(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from edge.errors import ExportError

    class Scaled(torch.nn.Module):
        def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return x * s

    with pytest.raises(ExportError, match="dynamic_batch: s is a scalar"):  # an IndexError before
        edge.export(Scaled(), {"x": np.zeros((1, 4), np.float32), "s": np.array(2.0, np.float32)}, tmp_path / "b",
                    dynamic_batch=True)


def test_a_runner_bug_is_not_reported_as_a_missing_feed(tiny_bundle: Path) -> None:
    """Program.step says "no step feed" only for a lookup of the feeds themselves: a KeyError inside the runner
    (a graph output it expects, a config key) stays the bug it is."""
    with edge.load_program(tiny_bundle, "onnxruntime", program="stream") as p:
        enc = p.runtimes["encoder"]
        real = enc.infer
        enc.infer = lambda feeds: {("renamed_" + k): v for k, v in real(feeds).items()}  # type: ignore[method-assign]
        frame = np.zeros((1, 3, 64, 128), np.float32)
        with pytest.raises(KeyError) as e:
            p.step({"frame": frame})
        assert not isinstance(e.value, SpecError)


def test_more_misuse_is_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    """A second review of the API: these were raw TypeErrors, AttributeErrors and ValueErrors, or accepted."""
    from edge.errors import ExportError
    from edge.stream.task import RuntimeTask

    for bad in (None, 3, [None]):
        with pytest.raises(EdgeError, match="data: a data spec"):
            edge.validate(tiny_bundle, bad)  # type: ignore[arg-type]
    with pytest.raises(EdgeError, match=r"backends .* names nothing"):
        edge.validate(tiny_bundle, "synthetic:1", backends=[])
    rep = edge.validate(tiny_bundle, Path("synthetic:1"), backends="onnxruntime", programs="clip", say=None)
    assert [r["config"] for r in rep["rows"]] == ["clip:onnxruntime/fp32"]  # a str is a comma list, as export_card
    for kwargs, needle in (({"precisions": 8}, "precisions: a comma-separated string or a list of names, got int"),
                           ({"targets": 3}, "targets: a comma-separated string or a list"),
                           ({"checkpoint": 3}, "checkpoint: a checkpoint file's path, got int"),
                           ({"seed": -1}, "seed: an integer >= 0")):
        with pytest.raises(EdgeError, match=needle):
            edge.export_card("pulsar", tmp_path / "o", config="tiny", **kwargs)
    assert not (tmp_path / "o").exists() and issubclass(ExportError, EdgeError)
    with pytest.raises(BundleError, match="artifacts=: a mapping graph -> artifact name"):
        edge.load_program(tiny_bundle, "onnxruntime", artifacts=["x"])  # type: ignore[arg-type]
    for bad in (None, "out/m"):
        with pytest.raises(EdgeError, match="RuntimeTask: a runtime"):
            RuntimeTask(bad)


def test_nothing_runs_after_close(tiny_bundle: Path) -> None:
    """`with rt:` after close() entered, and a closed program's reset() passed; step named the runtime, not it."""
    rt = edge.load(tiny_bundle, graph="encoder")
    rt.close()
    with pytest.raises(ClosedError, match="runtime is closed"), rt:
        pass
    prog = edge.load_program(tiny_bundle, "onnxruntime", program="stream")
    prog.close()
    for use in (prog.reset, lambda: prog.step({}), prog.__enter__):
        with pytest.raises(ClosedError, match="program 'stream' is closed"):
            use()


def test_a_batch_one_example_still_exports_a_dynamic_batch(tmp_path: Path) -> None:
    """The 0-d check moved the batch-1 doubling under a raise: a model that squeezes then exported rank 1 outputs
    and failed ("exported 'output0' has rank 2, spec says 1")."""
    torch = pytest.importorskip("torch")

    class Sq(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.squeeze() * 2

    b = edge.export(Sq(), {"x": np.zeros((1, 4), np.float32)}, tmp_path / "b", dynamic_batch=True)
    with edge.load(b.path) as rt:
        assert rt.infer({"x": np.ones((3, 4), np.float32)})["output0"].shape == (3, 4)


def test_numpy_numbers_are_numbers(tiny_bundle: Path) -> None:
    """stall_s=np.float32(2.0) was refused by the new type check (numbers.Real takes numpy's)."""
    s = edge.stream.run(tiny_bundle, "synthetic:2:64x128", stall_s=np.float32(2.0), handle_signals=False)
    assert s["frames"] == 2



def test_a_missing_sensor_is_named_by_the_programs_preprocess(tiny_bundle: Path) -> None:
    """Found by a review: a camera missing from the frames given to a family's preprocess was a bare KeyError
    (ETA-VLA: 'front_left'); the README's API example now goes through the checked path."""
    from edge.data.frame import Frame

    card = edge.get_card("lane")
    with edge.load_program(tiny_bundle, "onnxruntime") as prog:
        with pytest.raises(DataError, match=r"model 'lane': no frame for sensor\(s\) camera \(given: cam; it reads "
                                            r"camera\)"):
            prog.preprocess(card, {"cam": Frame(np.zeros((64, 128, 3), np.uint8), 0, 0, "cam")})
        with pytest.raises(DataError, match=r"frames are a mapping of sensor -> Frame, got list"):
            prog.preprocess(card, [])
        # a review: an empty frame was OpenCV's resize assertion, a bare array its "Overload resolution failed"
        with pytest.raises(DataError, match=r"^expected an HxWx3 image, got shape \(0, 0, 3\)$"):
            prog.preprocess(card, {"camera": Frame(np.zeros((0, 0, 3), np.uint8), 0, 0, "camera")})
        with pytest.raises(DataError, match=r"sensor camera: a Frame \(edge\.data\.frame\.Frame\), got ndarray"):
            prog.preprocess(card, {"camera": np.zeros((64, 128, 3), np.uint8)})
        frames = {"camera": Frame(np.zeros((64, 128, 3), np.uint8), 0, 0, "camera")}
        record, _ = card.postprocessed(prog.step(prog.preprocess(card, frames)), frames, prog.cfg)
        assert isinstance(record, dict)


def test_a_precision_name_is_checked(tiny_bundle: Path) -> None:
    """`precision="INT8"` said "has no INT8 artifacts (precisions in the bundle: fp32, int8)"."""
    with pytest.raises(BundleError, match=r"precision 'INT8': use fp32, fp16 or int8"):
        edge.load_program(tiny_bundle, "onnxruntime", precision="INT8")


def test_an_edited_camera_input_record_names_the_manifest(tiny_bundle: Path, tmp_path: Path) -> None:
    """Found by a review: a hand-edited mean in manifest.json's preprocess.image_inputs made the card hand normalised
    floats to an engine built to take camera bytes ("dtype float32 but the model expects uint8"); std [0, 0, 0]
    dumped the whole record as a Python dict. Both are one line naming the manifest and what is wrong."""
    import json
    import shutil

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    good = json.loads(json.dumps(m))
    m["preprocess"]["image_inputs"][0]["mean"][0] += 0.001
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"manifest\.json: preprocess\.image_inputs for graph '\w+' \(input '\w+'\) "
                                          r"differs from what model 'lane' makes of the bundle's config in mean"):
        edge.load_program(b, "onnxruntime", preprocess="engine")
    edge.load_program(b, "onnxruntime", preprocess="numpy").close()  # the numpy path reads the card, not the record
    for bad in (5, True, {"graph": "encoder"}):  # not a list: 5 was a TypeError traceback from every edge run
        m["preprocess"]["image_inputs"] = bad
        (b / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match=r"manifest\.json: preprocess\.image_inputs: a list of records, got"):
            edge.load_program(b, "onnxruntime", preprocess="numpy")
    good["preprocess"]["image_inputs"][0]["std"] = [0, 0, 0]
    (b / "manifest.json").write_text(json.dumps(good))
    with pytest.raises(BundleError, match=r"b/manifest\.json: preprocess\.image_inputs record of graph '\w+': needs"):
        edge.load_program(b, "onnxruntime", preprocess="engine")
    # a review: the graph's input renamed in graphs.<g>.inputs (not in the record) said "image input 'frame' is not
    # an input of this graph (fr\u00e4me\u202e)", naming no file and printing the control character as is
    renamed = json.loads((tiny_bundle / "manifest.json").read_text())
    rec = renamed["preprocess"]["image_inputs"][0]
    g = rec["graph"]
    renamed["graphs"][g]["inputs"][0]["name"] = "fr\u00e4me\u202e"
    (b / "manifest.json").write_text(json.dumps(renamed))
    with pytest.raises(BundleError, match=r"b/manifest\.json: preprocess\.image_inputs names input '\w+' of graph "
                                          r"'\w+', which graphs\.\w+\.inputs does not have \('fr\u00e4me\\u202e'\)"):
        edge.load_program(b, "onnxruntime", preprocess="engine")


def test_export_leaves_the_module_in_its_mode_and_names_a_fixed_batch(tmp_path: Path) -> None:
    """Found by a review: edge.export left a module it was given mid-training in eval mode (Dropout and BatchNorm
    then trained frozen), and a module that reshapes to a literal batch was told to use an example size >= 2 when
    its example already had 3."""
    import torch

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.drop = torch.nn.Linear(4, 4), torch.nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.drop(self.lin(x))

    m = M().train()
    m.drop.eval()  # a mix: each submodule gets its own mode back
    edge.export(m, {"x": torch.randn(2, 4)}, tmp_path / "b")
    assert (m.training, m.lin.training, m.drop.training) == (True, True, False)

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(3, -1) * 2

    with pytest.raises(EdgeError, match=r"fixed dynamic dim 'batch' to 3 .*\(the module fixes it: a reshape"):
        edge.export(Fixed(), {"x": torch.randn(3, 4, 5)}, tmp_path / "f", dynamic_batch=True)


def test_a_string_for_a_list_or_a_mapping_is_named(tmp_path: Path) -> None:
    """Found by a review: `output_names="yy"` said "2 output names for 1 outputs" and `export_card(options="abc")`
    "--set a is not an export option": each string was read letter by letter."""
    import torch

    from edge.errors import ExportError

    with pytest.raises(ExportError, match=r"^output_names: a list of names, got 'yy'$"):
        edge.export(torch.nn.Linear(2, 2), {"x": torch.zeros(1, 2)}, tmp_path / "a", output_names="yy")
    with pytest.raises(ExportError, match=r"^input_names: a list of names, got \['x', 3\]$"):
        edge.export(torch.nn.Linear(2, 2), {"x": torch.zeros(1, 2)}, tmp_path / "a", input_names=["x", 3])
    with pytest.raises(ExportError, match=r"^options: a mapping of KEY -> VALUE \(what --set takes\), got str$"):
        edge.export_card("lane", tmp_path / "b", options="abc")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_signals_after_leaves_the_callers_handlers(tiny_bundle: Path) -> None:
    """A review: ``signals_after="x"`` ran the whole run, then failed in signal.signal with the run's own handlers
    left on SIGINT and SIGTERM for good (Ctrl-C ignored from then on). Refused first now."""
    import signal

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with pytest.raises(EdgeError, match="signals_after"):
        edge.stream.run(tiny_bundle, "synthetic:2", signals_after="x")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_users_task_needs_no_summary_or_draw(tiny_bundle: Path, tmp_path: Path) -> None:
    """A review: a task with preprocess/infer/postprocess and sensors ran every frame, then failed on the
    missing summary() with its outputs thrown away. The loop's own summary stands; draw is optional too."""
    rt = edge.load(tiny_bundle, graph="encoder")
    shape = rt.inputs.inputs[0].concrete(batch=1)

    class Minimal:
        name, sensors, optional = "mini", ("camera",), ()

        def preprocess(self, frames: object) -> dict:
            return {rt.inputs.inputs[0].name: np.zeros(shape, np.float32)}

        def infer(self, x: dict) -> dict:
            return rt.infer(x)

        def postprocess(self, out: dict, frames: object) -> tuple:
            return {"n": 1}, None

    out = tmp_path / "mini.jsonl"
    s = edge.stream.run(None, "synthetic:3", task=Minimal(), jsonl=out, handle_signals=False)
    assert s["frames"] == 3 and s["task"] == {"task": "mini"} and len(out.read_text().splitlines()) == 3

    class Raising(Minimal):  # the review of that: a summary() that raises lost the run's outputs (before too)
        def summary(self) -> dict:
            raise RuntimeError("boom")

    out.unlink()
    s = edge.stream.run(None, "synthetic:3", task=Raising(), jsonl=out, handle_signals=False)
    assert s["task"] == {"task": "mini", "summary_error": "RuntimeError: boom"} and out.is_file()
    assert "the task's summary() raised RuntimeError: boom: its fields are missing from the summary" in s["notes"]
    rt.close()


def test_numpy_bools_and_numbers_are_taken(tiny_bundle: Path) -> None:
    """The review of the argument checks: np.bool_ for a flag and np.float32 / np.int64 for sync_ms were refused
    (they ran before)."""
    s = edge.stream.run(tiny_bundle, "synthetic:2", realtime=np.bool_(False), live=np.False_,
                        handle_signals=np.bool_(False), sync_ms=np.float32(50), backend="onnxruntime")
    assert s["frames"] == 2
    s = edge.stream.run(tiny_bundle, "synthetic:2", sync_ms=np.int64(30), handle_signals=False, backend="onnxruntime")
    assert s["frames"] == 2


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_a_call_that_meets_close_from_another_thread_says_closed(tiny_bundle: Path, backend: str) -> None:
    """A review: close() in one thread while another was past infer()'s open check gave ONNX Runtime's "cannot run
    these inputs ('NoneType' object has no attribute 'run')" (blaming the feeds) and torch's bare TypeError. The
    call at that point (its _run after close) is a ClosedError now."""
    if backend == "torch":
        pytest.importorskip("torch")
    rt = edge.load(tiny_bundle, backend, graph="encoder")
    spec = rt.inputs.inputs[0]
    feeds = {spec.name: np.zeros(spec.concrete(batch=1), np.float32)}
    rt.close()
    with pytest.raises(ClosedError, match=f"{backend} runtime is closed"):
        rt._run(feeds)


def test_names_of_the_wrong_type_are_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    """A review: a list for a backend or a family, an int for output_names or an OpenVINO device reached lookups
    and string methods as bare TypeErrors / AttributeErrors."""
    from edge.errors import ExportError, ModelError

    with pytest.raises(EdgeError, match=r"unknown backend \['onnxruntime'\]"):
        edge.load(tiny_bundle, backend=["onnxruntime"])
    with pytest.raises(EdgeError, match=r"unknown backend \{'a': 1\}"):
        edge.load_program(tiny_bundle, {"a": 1})
    with pytest.raises(ModelError, match=r"a model family is named by a string .* got list"):
        edge.get_card(["lane"])
    torch = pytest.importorskip("torch")
    with pytest.raises(ExportError, match="output_names: a list of names, got 5"):
        edge.export(torch.nn.Linear(2, 2), [torch.zeros(1, 2)], tmp_path / "x", output_names=5)
    pytest.importorskip("openvino")
    with pytest.raises(EdgeError, match=r"openvino device: a device name .* got 3"):
        edge.load(tiny_bundle, "openvino", graph="encoder", device=3)


def test_an_application_keeps_its_process_state(tiny_bundle: Path) -> None:
    """An embedding application's review: a closed program's `prepare` was a KeyError and a closed OpenVINO
    runtime compiled again; a Pipeline run twice failed with "threads can only be started once" after opening its
    sources (left open); two overlapping runs left the GIL switch interval at 1 ms; torch's thread count stayed as a
    runtime's `threads=` set it."""
    import sys
    import threading

    from edge.stream.pipeline import Pipeline, _fast_switches
    from edge.stream.sources import MemorySource
    from tests.stream.test_pipeline import EchoTask

    prog = edge.load_program(tiny_bundle, "onnxruntime", program="stream")
    prog.close()
    with pytest.raises(ClosedError, match="program 'stream' is closed"):
        prog.prepare([(480, 640)])

    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    p = Pipeline([MemorySource(frames, count=3)], EchoTask(), [])
    assert p.run(handle_signals=False)["frames"] == 3
    opened: list[int] = []
    again = MemorySource(frames, count=3)
    again.open = lambda: opened.append(1)  # type: ignore[method-assign]
    p.sources = [again]
    with pytest.raises(EdgeError, match="a Pipeline runs once; make a new one"):
        p.run(handle_signals=False)
    assert opened == []
    if __import__("importlib.util").util.find_spec("openvino") is not None:
        prog = edge.load_program(tiny_bundle, "openvino", program="stream", preprocess="engine")
        rt = prog.runtimes["encoder"]
        prog.close()
        with pytest.raises(ClosedError):
            rt.prepare_image_size((480, 640))
        assert getattr(rt, "compiled", None) is None

    found = sys.getswitchinterval()
    _fast_switches(True)  # run A starts, then B; A ends first
    _fast_switches(True)
    assert sys.getswitchinterval() == min(found, 0.001)
    _fast_switches(False)
    assert sys.getswitchinterval() == min(found, 0.001)  # B still runs
    _fast_switches(False)
    assert sys.getswitchinterval() == found
    done = []
    runs = [threading.Thread(target=lambda: done.append(
        Pipeline([MemorySource(frames, count=3)], EchoTask(), []).run()["frames"])) for _ in range(3)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert done == [3, 3, 3] and sys.getswitchinterval() == found
