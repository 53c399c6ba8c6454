"""Typer command signatures. Each body defers to a small module that imports what it needs."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.names import name_list as names


def file_name(text: str) -> Path:
    """An output file's name as typed: one ending in '/' names a folder, and Path() would drop the slash (the write
    then made a file called after the folder)."""
    from edge.files import folder_end

    ends = folder_end(text)
    if ends is not None:
        raise typer.BadParameter(f"{text} names a folder (it ends in '{ends}'); give a file name")
    return Path(text)


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    require: list[str] = typer.Option([], "--require", help="Exit 1 unless this component is usable (repeatable; "
                                      "e.g. --require tensorrt --require gpu for a container health check)."),
) -> None:
    """Show which backends and accelerators are usable here, and why not when they are not."""
    from edge.cli.doctor_cmd import run_doctor

    run_doctor(json_out, require)


def models(
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the model families installed here: configs, graphs, programs, sensors, metric, weights."""
    from edge.cli.models_cmd import run_models

    run_models(json_out)


def train(
    model: str = typer.Argument(..., help="Model family (`edge models` lists them)."),
    out: Path = typer.Option(..., "--out", "-o", parser=file_name, help="Checkpoint file to write (.pt)."),
    config: str = typer.Option(None, "--config", "-c", help="Config size (default: the --init checkpoint's, else the "
                               "family's default)."),
    steps: int = typer.Option(1000, "--steps", min=1, help="Optimizer steps."),
    batch: int = typer.Option(8, "--batch", min=1, help="Samples per step."),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate (one-cycle; default: the family's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for data and weights; same seed, same checkpoint."),
    eval_clips: int = typer.Option(100, "--eval-clips", "--eval-samples", min=0,
                                   help="Held-out synthetic samples to score."),
    resume: Path | None = typer.Option(None, "--init", help="Start from this checkpoint's weights."),
    device: str = typer.Option("cpu", "--device", help="Where the steps run: cpu, cuda, cuda:N (torch's names)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Processes rendering batches (0: one background "
                                "thread). Same seed and workers, same batches."),
    time_limit: float | None = typer.Option(None, "--time-limit", min=1.0, help="Stop after this many seconds, "
                                            "the one-cycle schedule following the clock (not reproducible)."),
    freeze: str = typer.Option(None, "--freeze", help="Comma-separated submodules (e.g. encoder,step) whose weights "
                               "stay as --init gave them: train a stage added to a trained model alone."),
    qat: str = typer.Option(None, "--qat", help="Comma-separated submodules trained through the symmetric INT8 "
                            "export's rounding (fake-quantized Conv/Linear inputs and weights), so they keep "
                            "their accuracy in INT8; the checkpoint stays plain float."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    set_: list[str] = typer.Option(None, "--set", help="KEY=VALUE: a config value for this run (e.g. keep_mix=0, "
                                   "a training-only switch; `edge models --json` lists the configs); repeatable, "
                                   "recorded."),
) -> None:
    """Train a model on its synthetic data; writes the checkpoint and a .json record beside it."""
    from edge.cli.export_cmd import parse_options
    from edge.cli.train_cmd import run_train

    run_train(model, out, config, steps, batch, lr, seed, eval_clips, resume, json_out, device=device,
              workers=workers, time_limit=time_limit,
              freeze=tuple(names("--freeze", freeze) or ()), qat=tuple(names("--qat", qat) or ()),
              options=parse_options(set_ or []))


def export(
    model: str = typer.Argument(..., help="Model family name (`edge models`) or a checkpoint .pt file."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write."),
    to: str = typer.Option("onnx", "--to", help="Targets, comma-separated: onnx, openvino (IR), tensorrt."),
    config: str | None = typer.Option(None, "--config", "-c", help="Config when no checkpoint is used."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Weights (default: the shipped ones)."),
    attention: str = typer.Option("auto", "--attention",
                                  help="Attention form: auto, plugin (EdgeAttention node, lowered per backend), "
                                       "onnx (opset-23 Attention), decomposed (MatMul/Softmax at any opset: for "
                                       "runtimes without an attention op, e.g. TensorRT 10.3)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch dim dynamic."),
    programs: str = typer.Option(None, "--programs", help="Comma-separated host programs to export (their graphs "
                                 "go in the bundle); default: every program the family declares."),
    opset: int = typer.Option(None, "--opset", help="ONNX opset (default: 20; 23 with --attention onnx, which "
                              "refuses a lower one)."),
    rtol: float = typer.Option(1e-4, "--rtol", help="Parity tolerance: max error / max |reference|."),
    precision: str = typer.Option("fp32", "--precision", help="Comma-separated: fp32, fp16, int8."),
    calib: str = typer.Option("synthetic", "--calib", help="INT8 calibration: synthetic, an image folder, a video, "
                              "an .npz/.npy of recorded inputs, or PATH[,key=value] in the family's labelled format "
                              "(what edge val --data takes; a KITTI folder of camera + LiDAR pairs)."),
    calib_size: int = typer.Option(32, "--calib-size", min=1, help="Calibration samples."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax, entropy or percentile."),
    eval_data: list[str] = typer.Option(None, "--eval-data", help="Gate on this labelled data instead of held-out "
                                        "synthetic samples: what `edge val --data` takes (PATH[,key=value] in the "
                                        "family's own format; repeatable)."),
    eval_size: int = typer.Option(None, "--eval-size", min=1, help="Held-out samples for the task metric (default: "
                                  "40, or as many as a metric that moves in steps needs to resolve the budget)."),
    max_drop: str = typer.Option(None, "--max-drop", help="Allowed task-metric drop vs fp32: in the metric's "
                                 "units (1.0 = one point of accuracy) or a percentage of the fp32 value (5%); "
                                 "default: the model card's (1.0 unless its metric says otherwise)."),
    triton_repo: Path = typer.Option(None, "--triton-repo", help="Also write an NVIDIA Triton Inference Server "
                                     "model repository (config.pbtxt with the IOSpec's dims, dynamic batching)."),
    triton_backends: str = typer.Option(None, "--triton-backends", help="Comma-separated: onnxruntime, openvino, "
                                        "tensorrt (default: onnxruntime, plus openvino with --to openvino)."),
    triton_device: str = typer.Option("auto", "--triton-device", help="Where Triton runs the models: auto "
                                      "(KIND_AUTO: the GPU when the server has one; OpenVINO CPU, TensorRT GPU), "
                                      "gpu or cpu."),
    score_every: bool = typer.Option(False, "--score-every-program", help="Score every program at each reduced "
                                     "precision, also one whose gates the family takes from another program with "
                                     "the same graphs (one that adds costly host work, such as an alignment "
                                     "of ~1 s a sample; `edge models --json` shows gated_by)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    set_: list[str] = typer.Option(None, "--set", help="KEY=VALUE: an export option of the model (config values "
                                   "the weights do not depend on, e.g. a pruning keep ratio; `edge models --json` "
                                   "lists them); repeatable."),
) -> None:
    """Export a model to a validated bundle (ONNX + manifest), checked against PyTorch."""
    from edge.cli.export_cmd import parse_options, run_export

    run_export(model, out, to, config, checkpoint, attention, dynamic_batch,
               names("--programs", programs), opset, rtol, json_out, precisions=names("--precision", precision),
               calib=calib,
               calib_size=calib_size, calib_method=calib_method, eval_size=eval_size, max_drop=max_drop,
               triton_repo=triton_repo, triton_backends=triton_backends, triton_device=triton_device,
               options=parse_options(set_ or []), score_every=score_every, eval_data=eval_data or None)


def run(
    bundle: Path = typer.Argument(..., help="Bundle folder made by edge-export."),
    source: str = typer.Option("synthetic", "--source", "-s", help="synthetic[:N[:HxW]] (the model family's own "
                               "synthetic data), a video file, a folder of images (FOLDER[,fps=N]), camera:N, csi:N, "
                               "rtsp:// or http://..., gst:<pipeline>, kitti:FOLDER[,index=NAME] or "
                               "multi:NAME=SPEC,NAME=SPEC (several cameras in lockstep)."),
    lidar: str = typer.Option(None, "--lidar", help="LiDAR beside the camera: FILE.pcap, velodyne:..., "
                              "ouster:FILE.pcap,meta=FILE.json or udp://0.0.0.0:2368."),
    rig: Path = typer.Option(None, "--rig", "--calib", help="Sensor rig: camera intrinsics + LiDAR-to-camera "
                             "extrinsic (KITTI calib .txt or the rig JSON)."),
    save: Path = typer.Option(None, "--save", parser=file_name, help="Overlay video (the model's drawing + "
                              "projected LiDAR points)."),
    jsonl: Path = typer.Option(None, "--jsonl", parser=file_name, help="One JSON line of results per frame."),
    stats: Path = typer.Option(None, "--stats", parser=file_name, help="Stats summary JSON (latency per stage, fps, "
                               "drops)."),
    out: Path = typer.Option(None, "--out", "-o", help="Folder shorthand: overlay.mp4, <results>.jsonl (named by "
                             "the model family) and summary.json in it (default edge_run when no other output "
                             "is given)."),
    policy: str = typer.Option("auto", "--policy", help="latest (real time, drop stale frames), block (lose "
                               "nothing) or auto (latest for live sources, block for files)."),
    backend: str = typer.Option("auto", "--backend", "-b", help="auto (OpenVINO for a bundle exported with its "
                                "IRs, when installed; else onnxruntime), onnxruntime, openvino, tensorrt or torch."),
    precision: str = typer.Option(None, "--precision", "-p", help="fp32, fp16 or int8: the bundle's graphs of that "
                                  "precision (exported with edge-export --precision). Default: int8 with --backend "
                                  "auto on OpenVINO when it passed the export's gate, else fp32."),
    program: str = typer.Option(None, "--program", help="Which of the family's programs to run (default: the "
                                "first the bundle has, e.g. the streaming one)."),
    preprocess: str = typer.Option("auto", "--preprocess", help="Where camera images are resized and normalised: "
                                   "numpy (the reference), engine (inside ONNX Runtime / OpenVINO / TensorRT engines "
                                   "built with `edge build --preprocess engine`: uint8 frames of any size in) or auto "
                                   "(engine where it pays: OpenVINO, and TensorRT engines built with the front)."),
    realtime: bool = typer.Option(False, "--realtime", help="Play files and pcaps at their recorded rate."),
    max_frames: int = typer.Option(0, "--max-frames", min=0, help="Stop after the source has given N frames "
                                   "(0 = all; frames dropped by --policy latest count)."),
    threads: int = typer.Option(0, "--threads", min=0, max=1024, help="Intra-op threads (0 = backend default)."),
    display: bool = typer.Option(False, "--display", help="Show a live window (needs a display)."),
    dump_points: Path = typer.Option(None, "--dump-points", help="Folder for each LiDAR rotation paired with a "
                                     "frame (and the model's own output cloud) as .npy."),
    udp: str = typer.Option(None, "--udp", help="Publish each result as a JSON datagram to HOST:PORT."),
    sync_ms: float = typer.Option(50.0, "--sync-ms", help="Camera-LiDAR match tolerance in ms (0 to 60000)."),
    live: bool = typer.Option(None, "--live/--no-live", help="Live stats line (default: when stderr is a tty)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    command: str = typer.Option(None, "--command", help="For a model that takes a text command (e.g. a driving "
                                "instruction: `edge models` shows its format): the command for the whole run, "
                                "or a FILE of 'FRAME COMMAND' lines (each holds from that frame on)."),
) -> None:
    """Run a bundle in the real-time loop: sources -> model -> overlay video, JSONL, display, UDP.

    Ctrl-C (or SIGTERM) in the loop stops the sources, finishes the frames in flight and closes every
    output cleanly (exit 0); before the loop starts (the model loading, frames rendered ahead) it ends
    the run with nothing written ("interrupted", exit 130).
    """
    from edge.cli.run_cmd import run_run

    run_run(bundle, source=source, lidar=lidar, rig=rig, save=save, jsonl=jsonl, stats=stats, out=out,
            policy=policy, backend=backend, precision=precision, program=program, realtime=realtime,
            max_frames=max_frames, threads=threads,
            display=display, dump_points=dump_points, udp=udp, sync_ms=sync_ms, live=live, json_out=json_out,
            command=command, preprocess=preprocess)


def build(
    bundle: Path = typer.Argument(..., help="Bundle folder made by edge-export."),
    backend: str = typer.Option("tensorrt", "--backend", "-b", help="A backend that builds engines on the target "
                                "(tensorrt)."),
    precision: str = typer.Option("fp16", "--precision", "-p", help="fp32, fp16 (the fp16 ONNX) or int8 (the QDQ "
                                  "ONNX); the bundle must hold that ONNX."),
    graph: list[str] = typer.Option([], "--graph", help="Graph(s) to build (repeatable; default: every graph "
                                    "of the bundle)."),
    dim: list[str] = typer.Option([], "--dim", help="Range of a dynamic dim, NAME=MIN:OPT:MAX (repeatable); "
                                  "batch defaults to 1:1:8."),
    workspace_mb: int = typer.Option(2048, "--workspace-mb", min=16, help="Builder workspace limit."),
    timing_cache: Path = typer.Option(None, "--timing-cache", help="Timing cache file, read and updated "
                                      "(reusing it makes rebuilds fast)."),
    cuda: str = typer.Option(None, "--cuda", help="cuda-python (default) or pycuda."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when a valid engine is cached."),
    check: bool = typer.Option(True, "--check/--no-check", help="Run each engine against ONNX Runtime fp32 on the "
                               "family's inputs and report the worst error; an engine giving non-finite outputs "
                               "where ONNX Runtime does not is removed (exit 2)."),
    preprocess: str = typer.Option("numpy", "--preprocess", help="engine: the graphs with a camera-image input take "
                                   "uint8 BGR frames of any size in the --dim camera_height/camera_width ranges "
                                   "(default 16:720:2160 x 16:1280:3840) and resize + normalise them inside the "
                                   "engine (for `edge run --preprocess engine`); numpy: the model's own input."),
    triton_repo: Path | None = typer.Option(None, "--triton-repo", help="Then write a Triton model repository "
                                            "serving these engines into this folder (the target's GPU and "
                                            "TensorRT, where they were built)."),
    triton_device: str = typer.Option("auto", "--triton-device", help="Instance kind for --triton-repo: auto or "
                                      "gpu (a TensorRT engine runs on the GPU)."),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """Build engines for this device into the bundle (TensorRT: cached by version, GPU, plugins, ONNX)."""
    from edge.cli.build_cmd import run_build

    run_build(bundle, backend=backend, precision=precision, graphs=graph, dims=dim, workspace_mb=workspace_mb,
              timing_cache=timing_cache, cuda=cuda, force=force, json_out=json_out, preprocess=preprocess,
              check_engines=check, triton_repo=triton_repo, triton_device=triton_device)


def bench(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    backends: str = typer.Option("torch,onnxruntime,openvino", "--backends", help="Comma-separated backends."),
    rounds: int = typer.Option(30, "--rounds", min=1, help="Interleaved timing rounds."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed calls per configuration first."),
    threads: int = typer.Option(0, "--threads", min=0, max=1024, help="Threads per backend (0 = backend "
                                 "default)."),
    out: Path | None = typer.Option(None, "--out", help="Folder for NAME_bench.json/.png (default: beside bundle)."),
    programs: str = typer.Option(None, "--programs", help="Comma-separated programs to time (default: every "
                                 "program the bundle has)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Latency (median/p90/p99), throughput, memory and GFLOP/s of every program x backend x precision, one run.

    A program step is what `edge run` pays per input (e.g. an encoder pass + a temporal head on the
    ring buffer), so that is what is timed, with torch eager as the baseline.
    """
    from edge.cli.bench_cmd import run_bench_cmd

    run_bench_cmd(bundle, names("--backends", backends) or [], rounds, warmup, threads, out,
                  names("--programs", programs), json_out)


def val(
    bundle: Path = typer.Argument(..., help="Bundle folder (of a model family: its card's metric is scored)."),
    data: list[str] = typer.Option(..., "--data", "-d", help="Labelled data: synthetic[:N][,seed=S] (the "
                                   "family's held-out synthetic set, default 40) or PATH[,key=value...] in the "
                                   "family's own format (`edge models` says which, and its options); repeat to "
                                   "score several together."),
    backends: str = typer.Option("torch,onnxruntime,openvino", "--backends", help="Comma-separated backends."),
    programs: str = typer.Option(None, "--programs", help="Comma-separated programs to score (default: the first "
                                 "the bundle has, the one edge run runs)."),
    max_drop: str = typer.Option(None, "--max-drop", help="Exit 1 when a form scores worse than its reference by "
                                 "more than this (a reduced precision: its backend's fp32; an exported fp32: "
                                 "torch fp32): metric units (1.0) or a percentage of the reference (5%)."),
    threads: int = typer.Option(0, "--threads", min=0, max=1024, help="Threads per backend (0 = backend default)."),
    out: Path = typer.Option(None, "--out", "-o", parser=file_name, help="Also write the report as JSON to this file."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Score a bundle's task metric on labelled data: every backend x precision it has here, one run.

    The same forms edge run runs (and those beside them, as edge bench lists them), each scored by the family's
    metric, with its drop: a reduced precision against its backend's fp32, an exported fp32 against torch fp32.
    """
    from edge.cli.val_cmd import run_val_cmd

    run_val_cmd(bundle, data, names("--backends", backends) or [], names("--programs", programs), max_drop,
                threads, out, json_out)


def calibrate(
    bundle: Path = typer.Argument(..., help="Bundle of a model that estimates the rig's extrinsic (its card "
                                  "names a rig_output)."),
    out: Path = typer.Option(..., "--out", "-o", parser=file_name, help="Rig JSON to write (what `edge run --calib` "
                             "reads)."),
    source: str = typer.Option(..., "--source", "-s", help="kitti:FOLDER (camera + LiDAR pairs and their calib), "
                               "or a camera spec with --lidar."),
    lidar: str = typer.Option(None, "--lidar", help="LiDAR beside the camera: FILE.pcap, velodyne:..., ouster:..."),
    init: Path = typer.Option(None, "--init", help="Starting rig: KITTI calib .txt, KITTI raw folder or rig JSON "
                              "(default with kitti:FOLDER: the folder's own calib)."),
    frames: int = typer.Option(0, "--frames", min=0, help="Use at most N synchronized frame sets (0 = all)."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="onnxruntime, openvino, tensorrt or torch."),
    precision: str = typer.Option(None, "--precision", "-p", help="fp32 (default), fp16 or int8."),
    sync_ms: float = typer.Option(50.0, "--sync-ms", help="Camera-LiDAR match tolerance in ms (0 to 60000)."),
    preprocess: str = typer.Option("numpy", "--preprocess", help="Where camera images are resized: numpy (the "
                                   "reference INTER_AREA, the same estimate on every backend), engine or auto "
                                   "(as edge run)."),
    program: str = typer.Option(None, "--program", help="Which of the family's programs to run (default: the "
                                "first the bundle has; `edge models` lists them)."),
    passes: int = typer.Option(1, "--passes", min=1, help="Refine every frame again from the previous pass's "
                               "combined rig, this many passes in all."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Refine the LiDAR-to-camera extrinsic over synchronized frames and write the rig file.

    Each frame set gives an estimate (the model's refinement from the starting rig); they are
    combined by a median in the tangent space with outliers rejected, and the spread of one frame's
    estimate is reported.
    """
    from edge.cli.calibrate_cmd import run_calibrate

    run_calibrate(bundle, source=source, lidar=lidar, init=init, out=out, frames=frames, backend=backend,
                  precision=precision, sync_ms=sync_ms, json_out=json_out, preprocess=preprocess, program=program,
                  passes=passes)
