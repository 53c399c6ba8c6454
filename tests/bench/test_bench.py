"""`edge bench`: report schema, plot, and the MAC counter on graphs whose MACs are known exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.bench.flops import count_macs  # noqa: E402


def test_bench_report_and_plot(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    bundle = tmp_path / "in" / "lane.v2"  # a dot in the name: the report is lane.v2_bench.json, not lane.json
    shutil.copytree(tiny_bundle, bundle)
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "bench", str(bundle), "--rounds", "4",
                        "--warmup", "1", "--out", str(tmp_path), "--json"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    for key in ("model", "batch", "rounds", "gmacs", "gemm_peak_gflops", "int8_gemm_peak_gops", "peak_rss_mb",
                "rows", "machine"):
        assert key in rep
    assert rep["gemm_peak_gflops"] > 0 and rep["int8_gemm_peak_gops"] > 0
    assert {"cpu", "cores", "isa", "int8"} <= set(rep["machine"])
    configs = {row["config"] for row in rep["rows"]}
    # one row per program x backend x precision: lane's streaming program and its whole-clip one
    assert {"stream:torch/fp32", "stream:onnxruntime/fp32", "clip:torch/fp32", "clip:onnxruntime/fp32"} <= configs
    for row in rep["rows"]:
        assert 0 < row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
        if row["backend"] == "torch":  # the reference: no interval against itself
            assert row["speedup_ci95"] is None and row["speedup_vs_torch"] == 1.0
        else:  # the run's own interval for the ratio it states (4 rounds: no claim it holds the point)
            lo, hi = row["speedup_ci95"]
            assert 0 < lo <= hi
        assert row["throughput_per_s"] > 0 and row["gflops"] > 0
        if row["precision"] == "bf16" or row["gflops"] > rep["gemm_peak_gflops"]:  # no bf16 peak; no share past it
            assert row["of_peak"] is None
        else:
            assert row["of_peak"] == pytest.approx(row["gflops"] / rep["gemm_peak_gflops"])  # fp32 rows: fp32 peak
    # a streaming step is one encoder pass + one temporal pass: fewer MACs than the T-frame clip graph
    macs = {(r["program"], r["backend"]): r["gmacs"] for r in rep["rows"]}
    assert 0 < macs[("stream", "onnxruntime")] < macs[("clip", "onnxruntime")]
    assert rep["gmacs"] == {"stream": macs[("stream", "onnxruntime")], "clip": macs[("clip", "onnxruntime")]}
    full = json.loads((tmp_path / "lane.v2_bench.json").read_text())
    assert all(len(row["samples_ms"]) == 4 for row in full["rows"])
    assert (tmp_path / "lane.v2_bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "lane.v2_bench.json", "lane.v2_bench.png"]
    # the table a person reads (no --json), from the same report: it names the files it wrote
    import edge.bench.runner as runner
    from edge.cli.bench_cmd import run_bench_cmd

    real = runner.run_bench
    runner.run_bench = lambda *a, **k: full
    try:
        run_bench_cmd(bundle, ["onnxruntime"], 1, 0, 0, tmp_path, None, False)
    finally:
        runner.run_bench = real
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'lane.v2_bench.json'} and {tmp_path / 'lane.v2_bench.png'}" in out.replace("\n", "")
    row = next(r for r in full["rows"] if r["speedup_ci95"])
    assert "95 % CI" in out and "{:.2f} .. {:.2f}".format(*row["speedup_ci95"]) in out
    # without matplotlib (not among the runtime extras): the table and the JSON, the plot said missing, with the
    # extra's name kept (rich read "[dev]" as markup and dropped it); the earlier run's plot is not left beside the
    # new report (a review: the old 12-round box plot stayed next to a 1-round JSON)
    assert (tmp_path / "lane.v2_bench.png").is_file()
    runner.run_bench = lambda *a, **k: full
    saved = sys.modules.get("matplotlib")
    sys.modules["matplotlib"] = None  # type: ignore[assignment]
    try:
        run_bench_cmd(bundle, ["onnxruntime"], 1, 0, 0, tmp_path, None, False)
    finally:
        runner.run_bench = real
        if saved is None:
            del sys.modules["matplotlib"]
        else:
            sys.modules["matplotlib"] = saved
    out = " ".join(capsys.readouterr().out.split())
    assert "(no box plot: matplotlib is not installed (pip install 'edge-deploy[dev]'))" in out
    assert not (tmp_path / "lane.v2_bench.png").exists() and (tmp_path / "lane.v2_bench.json").is_file()


def test_each_timed_step_follows_an_untimed_one_of_the_same_configuration(tiny_bundle: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Interleaved rounds call each configuration twice in a row (the first call untimed): timed cold, a step
    pays for the previous runtime's spinning threads and its own sleeping ones."""
    from edge.bench.runner import run_bench
    from edge.program import Program

    calls: list[int] = []
    real = Program.step

    def step(self: Program, feeds: dict) -> dict:
        calls.append(id(self))
        return real(self, feeds)

    monkeypatch.setattr(Program, "step", step)
    rep = run_bench(tiny_bundle, backends=["onnxruntime"], rounds=3, warmup=0)
    n = len(rep["rows"])
    timed = calls[-2 * 3 * n:]
    assert n >= 2 and all(a == b for a, b in zip(timed[::2], timed[1::2]))
    assert len(set(timed[::2][:n])) == n  # every configuration once per round


def test_gemm_peaks_measured_before_any_runtime_int8_first(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The peaks are measured before a runtime is loaded, int8 before fp32: numpy's BLAS threads still spin
    after its GEMM, and the int8 peak measured right after read 320-400 GOP/s against ~830 alone."""
    import edge.bench.machine as machine_mod
    from edge.bench.runner import run_bench
    from edge.program import Program

    order: list[str] = []
    for name in ("gemm_peak_gflops", "int8_gemm_peak_gops"):
        real = getattr(machine_mod, name)
        monkeypatch.setattr(machine_mod, name, lambda *a, _r=real, _n=name, **k: (order.append(_n), _r(n=64))[1])
    real_step = Program.step
    monkeypatch.setattr(Program, "step", lambda self, f: (order.append("step"), real_step(self, f))[1])
    run_bench(tiny_bundle, backends=["onnxruntime"], rounds=1, warmup=0)
    assert order[:2] == ["int8_gemm_peak_gops", "gemm_peak_gflops"] and "step" not in order[:2]


def test_int8_pays_only_with_int8_dot_products() -> None:
    """The ISA rule edge run's default precision follows: VNNI/AMX/NEON dot product yes, AVX2 alone no,
    an unknown ISA (no /proc/cpuinfo) yes."""
    from edge.bench.machine import int8_pays

    assert int8_pays(["AVX2", "AVX-512", "AVX-512 VNNI"]) and int8_pays(["AVX2", "AVX-VNNI"])
    assert int8_pays(["AMX-INT8"]) and int8_pays(["NEON dot product"]) and int8_pays([])
    assert not int8_pays(["AVX2"]) and not int8_pays(["AVX2", "AVX-512"]) and not int8_pays(["BF16"])


def test_int8_note_only_where_int8_cannot_pay() -> None:
    """edge run says so when INT8 runs on a CPU backend of a CPU without int8 dot products; never on a VNNI
    or AMX CPU, for fp32, for TensorRT (the GPU), or when the ISA is unknown."""
    from edge.bench.machine import int8_note

    zen3, zen4, spr = ["AVX2"], ["AVX2", "AVX-512", "AVX-512 VNNI", "BF16"], ["AVX-512", "AMX-INT8"]
    assert "no int8 dot-product" in int8_note("int8", "openvino", zen3)
    assert int8_note("int8", "onnxruntime", zen3) is not None
    for args in (("int8", "openvino", zen4), ("int8", "openvino", spr), ("fp32", "openvino", zen3),
                 ("int8", "tensorrt", zen3), ("int8", "openvino", []), (None, "onnxruntime", zen3)):
        assert int8_note(*args) is None, args


def test_fp16_note_only_for_onnxruntime() -> None:
    from edge.bench.machine import fp16_note

    assert "slower than fp32" in fp16_note("fp16", "onnxruntime")
    for args in (("fp16", "openvino"), ("fp16", "tensorrt"), ("fp32", "onnxruntime"), (None, "onnxruntime")):
        assert fp16_note(*args) is None, args


class _Lin(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


def test_mac_count_exact(tmp_path: Path) -> None:
    b = edge.export(_Lin().eval(), {"x": np.zeros((1, 3, 6, 6), np.float32)}, tmp_path / "m",
                    attention="decomposed")
    # conv: 8 out channels x 36 positions x (3 x 3 x 3); fc: 10 x 288
    assert count_macs(str(b.path / "model.onnx")) == 8 * 36 * 27 + 10 * 288


def test_every_backend_asked_for_is_timed_or_said_skipped(tmp_path: Path) -> None:
    """A user module's bundle has ONNX only: torch (no artifact) and tensorrt (not here, or no engine)
    are listed as skipped with the reason, never silently missing."""
    from edge.bench.runner import run_bench

    out = tmp_path / "b"
    edge.export(torch.nn.Linear(4, 3).eval(), {"x": np.ones((1, 4), np.float32)}, out)
    said: list[str] = []
    rep = run_bench(out, backends=["torch", "onnxruntime", "tensorrt"], rounds=2, warmup=0, say=said.append)
    assert [r["backend"] for r in rep["rows"]] == ["onnxruntime"]
    skipped = {s["config"]: s["reason"] for s in rep["skipped"]}
    assert {c.split("/")[0] for c in skipped} == {"torch", "tensorrt"} and all(skipped.values())
    assert any(m.startswith("skip torch") for m in said) and any(m.startswith("skip tensorrt:") for m in said)


def test_machine_reads_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    from edge.bench.machine import int8_gemm_peak_gops, int8_support, machine

    (tmp_path / "x86").write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f "
                                  "avx512_vnni avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9R14\n"
                                  "flags\t\t: fpu avx2\n")
    m = machine(str(tmp_path / "x86"))
    assert m["cpu"] == "AMD EPYC 9R14" and m["isa"] == ["AVX2", "AVX-512", "AVX-512 VNNI", "BF16"]
    assert int8_support(m["isa"]) == "VNNI-class int8 dot products"
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n\nModel\t: NVIDIA Jetson Orin\n")
    m = machine(str(tmp_path / "arm"))
    assert m["cpu"] == "NVIDIA Jetson Orin" and m["isa"] == ["NEON dot product"]
    assert "no int8 dot-product" in int8_support(["AVX2"])
    assert machine(str(tmp_path / "missing"))["isa"] == []
    (tmp_path / "pi").write_text("processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nFeatures\t: neon\n\n"
                                 "Model\t\t: Raspberry Pi 4 Model B\n")
    assert machine(str(tmp_path / "pi"))["cpu"] == "ARMv7 Processor rev 4 (v7l)"  # the CPU, not the board
    assert int8_gemm_peak_gops(n=64, repeats=1) > 0


def test_a_report_folder_that_takes_no_file_is_said_before_the_rounds(
        tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only bundle's parent (the default --out) failed after every round with "output folder is not
    writable", naming neither the report nor --out."""
    from edge.bench import runner
    from edge.cli.main import _invoke, app

    ran: list[int] = []
    monkeypatch.setattr(runner, "run_bench", lambda *a, **k: ran.append(1))
    for out in ("/proc/edge_bench_report", "/sys"):
        if not Path(out).parent.is_dir():
            continue
        code = _invoke(app, ["bench", str(tiny_bundle), "--out", out], "edge")
        err = capsys.readouterr().err
        assert code == 2 and f"cannot write the report {tiny_bundle.name}_bench.json there" in err, err
        assert "give --out FOLDER" in err and not ran


def test_of_peak_is_a_share_of_the_peak_the_row_runs_on() -> None:
    """bf16 has no peak measured; int8 rows take the int8 peak; a row past its peak (a peak read low on a busy
    machine: a review saw "126 %" and "210 %") or without a peak on the run's threads gets none."""
    from edge.bench.runner import of_peak

    assert of_peak(50.0, "fp32", 200.0, 800.0) == pytest.approx(0.25)
    assert of_peak(400.0, "int8", 200.0, 800.0) == pytest.approx(0.5)
    assert of_peak(100.0, "int8", 200.0, None) == pytest.approx(0.5)  # no int8 GEMM here: the fp32 peak
    assert of_peak(100.0, "bf16", 200.0, 800.0) is None
    assert of_peak(67.7, "fp32", 54.0, 800.0) is None
    assert of_peak(50.0, "fp32", None, 800.0) is None


def test_one_round_gives_no_interval_and_peaks_take_the_runs_threads(tiny_bundle: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A review: ``--rounds 1`` printed a 95 % interval of zero width (one round has no spread), and ``--threads 1``
    put every row against the peak of all cores (each "of peak" half its value)."""
    import edge.bench.machine as machine_mod
    from edge.bench.runner import run_bench

    asked: list[int] = []
    for name in ("gemm_peak_gflops", "int8_gemm_peak_gops"):
        real = getattr(machine_mod, name)
        monkeypatch.setattr(machine_mod, name,
                            lambda *a, _r=real, threads=0, **k: (asked.append(threads), _r(n=64, threads=threads))[1])
    rep = run_bench(tiny_bundle, backends=["torch", "onnxruntime"], rounds=1, warmup=0, programs=["clip"], threads=1)
    assert asked and set(asked) == {1} and rep["peak_threads"] == 1
    assert [r["speedup_ci95"] for r in rep["rows"]] == [None, None]


def test_the_blas_peak_runs_on_the_threads_asked() -> None:
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    import edge.bench.machine as machine_mod

    seen: list[int] = []
    real = machine_mod._best

    def best(fn: object, repeats: int) -> float:
        seen.append(max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=0))
        return real(fn, repeats)

    machine_mod._best = best
    try:
        machine_mod.gemm_peak_gflops(n=64, repeats=1, threads=1)
    finally:
        machine_mod._best = real
    assert seen[-1] == 1  # numpy's GEMM, timed last (ONNX Runtime's first)


def test_the_fp32_peak_is_the_faster_of_numpy_and_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    """A review: numpy's OpenBLAS ran AVX2 kernels on an AVX-512 CPU, ~100 GFLOP/s on one core where ONNX Runtime's
    own GEMM reached ~230, so ONNX Runtime rows read past the "peak". Each is timed; the faster is the peak."""
    import edge.bench.machine as machine_mod

    times = iter([1.0, 4.0])  # ONNX Runtime's GEMM first, then numpy's: the faster (ORT's, 1 s) wins
    monkeypatch.setattr(machine_mod, "_best", lambda fn, repeats: next(times))
    assert machine_mod.gemm_peak_gflops(n=100) == pytest.approx(2 * 100**3 / 1.0 / 1e9)
    times = iter([4.0, 1.0])
    assert machine_mod.gemm_peak_gflops(n=100) == pytest.approx(2 * 100**3 / 1.0 / 1e9)
    monkeypatch.setattr(machine_mod, "_ort_gemm", lambda *a: None)  # no ONNX Runtime: numpy's alone
    times = iter([2.0])
    assert machine_mod.gemm_peak_gflops(n=100) == pytest.approx(2 * 100**3 / 2.0 / 1e9)


def test_a_folder_where_the_box_plot_goes_is_said_before_the_rounds(tiny_bundle: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A review: a folder named NAME_bench.png in --out failed the command after every round, with no table."""
    import edge.bench.runner as runner
    from edge.cli.bench_cmd import run_bench_cmd
    from edge.errors import EdgeError

    (tmp_path / f"{tiny_bundle.name}_bench.png").mkdir()
    monkeypatch.setattr(runner, "run_bench", lambda *a, **k: pytest.fail("ran the rounds"))
    with pytest.raises(EdgeError, match=r"_bench\.png: is a folder, where edge bench writes its box plot"):
        run_bench_cmd(tiny_bundle, ["onnxruntime"], 1, 0, 0, tmp_path, None, False)
    assert not (tmp_path / f"{tiny_bundle.name}_bench.json").exists()
    # without matplotlib no plot is written, so the folder is in no one's way (the review of the check)

    def ran(*a: object, **k: object) -> None:
        raise RuntimeError("ran the rounds")

    monkeypatch.setattr(runner, "run_bench", ran)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match="ran the rounds"):
        run_bench_cmd(tiny_bundle, ["onnxruntime"], 1, 0, 0, tmp_path, None, False)


def test_a_precision_its_gate_refused_is_listed_as_skipped(tiny_bundle: Path, tmp_path: Path) -> None:
    """An INT8 that missed its budget on a backend (recorded in the manifest's gates, not in the program's precision
    table) vanished from `edge bench`: no row and no skipped line (a review). It is skipped with edge run's line."""
    import shutil

    from edge.bench.runner import run_bench

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["programs"]["stream"].setdefault("gates", {})["onnxruntime"] = {
        "int8": {"passed": False, "kept": False, "drop": 5.0, "max_drop": 1.0}}
    (b / "manifest.json").write_text(json.dumps(m))
    rep = run_bench(b, backends=["onnxruntime"], rounds=1, warmup=0, programs=["stream"])
    assert [r["config"] for r in rep["rows"]] == ["onnxruntime/fp32"]
    assert [s["config"] for s in rep["skipped"]] == ["onnxruntime/int8"]
    assert "has no int8 on 'onnxruntime': it missed the accuracy budget there at export (drop 5 > 1" in \
        rep["skipped"][0]["reason"]
