"""``edge build``: build (or reuse) a backend's engines for a bundle on this device (TensorRT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge import jsonout
from edge.cli import emit
from edge.errors import BackendUnavailable, BundleError, DataError, ExportError


def _fronts(b: Any, graphs: list[str], named: bool) -> dict[str, Any]:
    """Graph -> the camera ``ImageInput`` an engine of it preprocesses (``--preprocess engine``): every graph
    the bundle records one for; a graph named with --graph that has none is an error, as is a bundle
    with none (the other graphs of a program get plain engines, as ``edge run --preprocess engine`` loads)."""
    from edge.models.contract import recorded_image_inputs

    fronts, n_records = recorded_image_inputs(b.manifest, graphs, str(b.path / "manifest.json"))
    lacking = [g for g in graphs if g not in fronts]
    if not fronts or (named and lacking):
        which = f"graph '{lacking[0]}'" if named else f"{b.path}"
        raise DataError(f"--preprocess engine: {which} has no camera-image input to preprocess (the bundle records "
                        f"{n_records} image input(s)); build without --preprocess")
    return fronts


def engine_checker(b: Any, backend: str, cuda: str | None, say: Any = None,
                   keep_hint: str = "--no-check keeps it") -> tuple[Any, Any, dict[str, Any]]:
    """``(verify, check_reused, results)`` for one engine (:mod:`edge.runtimes.engine_check`): ``verify`` is
    the build's hook for a new engine, before it enters the bundle (a broken one raises, the bundle keeps
    what it had); ``check_reused(rec)`` checks a cached engine and removes it when broken; ``results`` holds
    the check (``new`` or ``reused``): make one checker per engine. A check that cannot run here (no ONNX
    Runtime, an unloadable reference) leaves the engine and says why it was not checked."""
    from edge.errors import EdgeError
    from edge.runtimes.engine_check import check_engine, check_engine_file
    from edge.runtimes.tensorrt import engine_artifact_name, remove_engine

    results: dict[str, Any] = {}

    def run(rec: Any, fn: Any) -> dict[str, Any]:
        if say is not None:  # the build's status line (a second live display is refused by rich)
            say(f"checking the {rec.precision} engine of graph '{rec.graph}' against ONNX Runtime fp32")
        try:
            return fn()
        except (EdgeError, ImportError) as e:
            return {"reference": "onnxruntime fp32", "not_checked": str(e).splitlines()[0]}

    def broken(rec: Any, check: dict[str, Any], what: str) -> ExportError:
        where = "not added to" if what == "new engine" else "removed from"
        return ExportError(f"{what}: {backend} {rec.precision} engine of graph '{rec.graph}' gives outputs that are "
                           f"not finite on {check['not_finite']} of {check['feeds']} inputs where ONNX Runtime fp32 "
                           f"does not; {where} the bundle (another --precision may build; {keep_hint})")

    def verify(path: Any, rec: Any) -> None:
        check = run(rec, lambda: check_engine_file(b, rec.graph, path, rec, cuda))
        if check.get("not_finite"):
            raise broken(rec, check, "new engine")
        results["new"] = check

    def check_reused(rec: Any) -> dict[str, Any]:
        name = engine_artifact_name(rec)
        check = run(rec, lambda: check_engine(b, rec.graph, name, cuda=cuda))
        if check.get("not_finite"):
            remove_engine(b, name)
            raise broken(rec, check, rec.engine_file)
        results["reused"] = check
        return check

    return verify, check_reused, results


def check_line(check: dict[str, Any] | None) -> str:
    """The check's part of a build's one-line summary."""
    if not check:
        return ""
    if "not_checked" in check:
        return f"; not checked against ONNX Runtime ({check['not_checked']})"
    return f"; vs ONNX Runtime fp32 on {check['feeds']} inputs: max rel {check['max_rel']:.2e}"


def dims_per_graph(ranges: dict[str, tuple[int, int, int]], plain: dict[str, set[str]],
                   fronted: dict[str, set[str]], where: str) -> dict[str, dict[str, tuple[int, int, int]]]:
    """Each graph's share of one ``edge build``'s ``--dim`` ranges: those of its own dynamic dims (``plain``: graph ->
    its IOSpec's named dims; ``fronted``: the same for the graphs built with a camera front, whose image input is
    one uint8 frame) plus the camera's, since each graph's profile refuses a name it lacks. A name no graph built
    has is one line here (``--dim batch`` on a fixed-batch bundle was ignored)."""
    from edge.runtimes.trt_engine import DEFAULT_CAMERA

    own = {g: fronted.get(g, names) for g, names in plain.items()}
    named = set().union(*own.values())
    if "batch" in ranges and "batch" not in named:  # an engine of a fixed batch takes that one batch
        if any("batch" in names for names in plain.values()):  # dynamic, but every graph built has a front
            raise DataError("--dim batch: an engine built with --preprocess engine takes one camera frame (batch 1); "
                            "build with --preprocess numpy for a range of batches")
        raise DataError(f"--dim batch: {where}'s graphs have a fixed batch (exported without --dynamic-batch); "
                        "re-export with --dynamic-batch for engines that take a range of batches")
    unknown = sorted(set(ranges) - named - set(DEFAULT_CAMERA))
    if unknown:
        raise DataError(f"--dim {', '.join(unknown)}: the graphs built have no such dynamic dim (they have: "
                        f"{', '.join(sorted(named)) or 'none'})")
    return {g: {k: v for k, v in ranges.items() if k in own[g] or k in DEFAULT_CAMERA} for g in plain}


def run_build(bundle: Path, *, backend: str, precision: str, graphs: list[str], dims: list[str], workspace_mb: int,
              timing_cache: Path | None, cuda: str | None, force: bool, json_out: bool,
              preprocess: str = "numpy", check_engines: bool = True, keep_hint: str = "--no-check keeps it",
              triton_repo: Path | None = None, triton_device: str = "auto") -> dict[str, Any]:
    """Build (or reuse) and check the ``backend`` engines of ``graphs`` (default all) at ``precision``: ``edge
    build``, and ``edge-export --to tensorrt`` where the backend is installed (one build path for both, with
    the masked-attention check and the check against ONNX Runtime). ``keep_hint`` ends a broken engine's line."""
    from edge.bundle import Bundle
    from edge.runtimes.registry import get_backend
    from edge.runtimes.trt_engine import DEFAULT_CAMERA, onnx_for, parse_dim_ranges

    be = get_backend(backend)
    if be.build is None:
        raise BackendUnavailable(f"--backend {backend}: it builds nothing (it runs the bundle's ONNX/IR as they "
                                 "are); engines are built by backends such as tensorrt")
    if preprocess not in ("numpy", "engine"):
        raise DataError(f"--preprocess {preprocess!r}: numpy (the engine takes the model's normalised input) or "
                        "engine (it takes camera bytes and resizes and normalises them itself)")
    from edge.runtimes.cuda_mem import IMPLEMENTATIONS

    if cuda is not None and cuda not in IMPLEMENTATIONS:  # checked with the other options, not after TensorRT's absence
        raise DataError(f"--cuda {cuda!r}: use {' or '.join(IMPLEMENTATIONS)}")
    if preprocess == "engine" and not be.image_front:
        raise BackendUnavailable(f"--preprocess engine: backend '{backend}' cannot preprocess inside its engines")
    if triton_repo is None and triton_device != "auto":  # taken and unused before, whatever its value
        raise DataError(f"--triton-device {triton_device}: sets the instance kind of the Triton repository that "
                        "--triton-repo DIR writes; give --triton-repo")
    b = Bundle.load(bundle)
    if triton_repo is not None:  # where the engines are built is where their repository can be written: checked first
        from edge.export.triton_repo import check_repo_out, instance_kind

        if triton_device not in ("auto", "gpu"):  # its engines run on a GPU: the export's list named cpu too
            raise DataError(f"--triton-device {triton_device}: edge build's engines take auto or gpu (Triton's "
                            f"{backend} backend runs on the GPU only)")
        try:
            instance_kind(backend, triton_device)
        except ExportError as e:
            raise DataError(f"--triton-device {triton_device}: {e}") from None
        check_repo_out(Path(triton_repo).resolve(), Path(b.path).resolve())
        if preprocess == "engine":  # the writer serves engines taking the model's tensors: found after the builds
            raise DataError("--triton-repo with --preprocess engine: Triton is sent the model's preprocessed inputs, "
                            "and these engines take camera bytes; build without --preprocess engine for a repository")
    named = bool(graphs)
    graphs = list(graphs) or b.graphs
    unknown = [g for g in graphs if g not in b.graphs]
    if unknown:
        raise DataError(f"--graph {unknown[0]}: {b.path} has graphs {', '.join(b.graphs)}")
    # everything that can be checked without the backend's library first, so the message is about the bundle
    ranges = parse_dim_ranges(dims)
    cam = sorted(set(ranges) & set(DEFAULT_CAMERA))
    if cam and preprocess != "engine":
        raise DataError(f"--dim {cam[0]}: the camera's size is a range only of engines built with --preprocess engine")
    fronts = _fronts(b, graphs, named) if preprocess == "engine" else {}
    from edge.runtimes.front import camera_io
    from edge.runtimes.tensorrt import engine_profile, plugin_ops  # pure: import no tensorrt
    from edge.runtimes.trt_engine import dim_names

    mine = dims_per_graph(ranges, {g: dim_names(b.graph_io(g)) for g in graphs},
                          {g: dim_names(camera_io(b.graph_io(g), fronts[g])) for g in fronts}, str(b.path))
    profiles = {}
    for g in graphs:
        try:
            art = onnx_for(b, g, precision)
        except BundleError as e:  # a re-export fixes this; say now whether the backend would build here after it
            ok, why = be.is_available()
            raise BundleError(str(e) + ("" if ok else f"; and backend '{backend}' is not available here: {why}")
                              ) from None
        src = b.file(art["file"])
        if backend == "tensorrt":  # a graph its plugin cannot take (masked attention): one line, before any build
            used = plugin_ops(src)
            if used and triton_repo is not None:  # refused by the repository's writer only after the builds
                raise DataError(f"--triton-repo: graph '{g}' uses the Python {', '.join(sorted(used))} plugin, which "
                                "tritonserver cannot load; build from an export with --attention decomposed or onnx")
        profiles[g] = engine_profile(b, g, mine[g], fronts.get(g))
        if triton_repo is not None:  # the repository's writer refused such an engine only after the builds
            from edge.export.triton_repo import batch_dim, min_batch_advice, profile_min_batch

            bdim = batch_dim(b.graph_io(g))
            if bdim is not None and (low := profile_min_batch(profiles[g])) > 1:
                raise DataError(f"--dim {bdim}={low}:...: graph '{g}' would take batches from {low} only; "
                                f"{min_batch_advice(bdim)}")
    if timing_cache is not None and not timing_cache.parent.is_dir():
        raise DataError(f"--timing-cache {timing_cache}: folder {timing_cache.parent} does not exist")
    ok, why = be.is_available()
    if not ok:
        if backend == "tensorrt":  # what would be built, for a machine that has trtexec
            import sys

            from edge.runtimes.trt_engine import trtexec_command

            shown = sys.stderr if json_out else sys.stdout  # --json: stdout holds JSON or nothing
            for g in graphs:
                if g in fronts:  # the front is added in memory at build time: there is no file to hand trtexec
                    print(f"# graph '{g}' with --preprocess engine: edge build parses its ONNX with the camera front "
                          "added in memory; trtexec has no such file (build it with edge build)", file=shown)
                else:
                    print(trtexec_command(b, g, precision, profiles[g], workspace_mb), file=shown)
        raise BackendUnavailable(f"backend '{backend}' is not available here: {why}")
    from edge.cli import console as make_console

    console = make_console(stderr=True)
    results = []
    for g in graphs:
        with console.status(f"building the {precision} {backend} engine for graph '{g}'...") as status:
            checking = check_engines and g not in fronts  # a camera-front engine takes bytes: not checked
            verify, check_reused, checks = engine_checker(b, backend, cuda, say=status.update, keep_hint=keep_hint)
            rec, reused = be.build(b, graph=g, precision=precision, dims=mine[g], workspace_mb=workspace_mb,
                                   timing_cache=timing_cache, cuda_impl=cuda, force=force,
                                   progress=lambda msg: status.update(f"{backend}: {msg}"),
                                   **({"front": fronts[g]} if g in fronts else {}),
                                   **({"verify": verify} if checking else {}))
        b = Bundle.load(b.path)
        check = (check_reused(rec) if reused else checks.get("new")) if checking else None
        results.append({"graph": g, "engine": rec.engine_file, "reused": reused, "record": vars(rec),
                        **({"check": check} if check is not None else {})})
        if not json_out:
            what = "reused" if reused else f"built in {rec.build_s:.1f} s"
            cam = " + camera preprocessing" if rec.front else ""
            console.print(f"{rec.engine_file}: {what} ({backend} {rec.tensorrt}, {rec.gpu} sm "
                          f"{rec.compute_capability}, {precision}, from {rec.onnx_file}{cam}){check_line(check)}",
                          highlight=False, markup=False)
    out = {"bundle": str(b.path), "engines": results}
    if triton_repo is not None:
        from edge.export.triton_repo import write_triton_repo

        out["triton_repo"] = str(write_triton_repo(b, triton_repo, backends=[backend], graphs=graphs,
                                                   precision=precision, device=triton_device))
        if not json_out:
            console.print(f"wrote the Triton repository {out['triton_repo']}", highlight=False, markup=False)
    if json_out:
        emit(jsonout.dumps(out))
    return out
