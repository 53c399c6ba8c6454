"""``edge.stream.run``: the whole loop from specs and paths, as ``edge run`` uses it.

It builds the task from the bundle (its model family's card, or a generic runtime task for a plain
module), the sources from their specs (``synthetic`` = the family's synthetic stream),
the sinks from the output paths, runs the :class:`Pipeline` and writes
the stats summary JSON atomically. Everything is checked (bundle, sources, output folders) before
the first frame is read, so a bad argument is one line and nothing is written.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import signal
from pathlib import Path
from typing import Any

from edge import jsonout


def bind_sensors(sources: list[Any], sensors: Any, family: str = "the model") -> None:
    """Name the sources' sensors after the family's (``sensors``: its :class:`edge.models.contract.Sensors`): a
    source sensor the family does not read takes the next sensor the family wants that no source gives (in order:
    required, then optional) *of its kind*: a LiDAR source's (published as ``lidar``) only a sensor that takes
    point clouds (``Sensors.points``, or one called ``lidar``), a camera's only one that does not. So a video feeds
    a family whose camera sensor is called "image", and ``--lidar`` its point-cloud one; by order alone a LiDAR fed
    a family's second camera. A LiDAR for a family that takes no point cloud is one line."""
    from edge.errors import DataError
    from edge.stream.sources.base import POINT_SENSOR, point_sensors

    wanted = (*sensors.required, *sensors.optional)
    points = point_sensors(sensors)
    provided = [s for src in sources for s in src.sensors]
    free = [s for s in wanted if s not in provided]
    for src in sources:
        mapping = {}
        for s in src.sensors:
            if s in wanted:
                continue
            fits = [f for f in free if (f in points) == (s == POINT_SENSOR)]
            if not fits:
                # a LiDAR given alone (--lidar) is refused; a source's scans beside its images (kitti:) stay unread
                if s == POINT_SENSOR and set(src.sensors) == {POINT_SENSOR}:
                    raise DataError(f"{src.spec}: {family} takes no point cloud (it reads {', '.join(wanted)}); "
                                    "leave out --lidar")
                continue
            mapping[s] = fits[0]
            free.remove(fits[0])
        if mapping:
            src.rename_sensors(mapping)


def _positive_seconds(value: Any) -> bool:
    """A finite real number > 0 (numpy's too; 10**400 is not: float() of it overflows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        f = float(value)
    except OverflowError:
        return False
    return math.isfinite(f) and f > 0


def rig_note(rig: Any, pipe: Any, summary: dict[str, Any]) -> str | None:
    """``--calib`` given to a run whose frames had no camera image (a family reading waveforms): it did nothing,
    said as ``--dump-points`` on a camera-only run is."""
    if rig is None or pipe is None or pipe.rig_met_image or not summary.get("frames"):
        return None
    return f"--calib {rig}: no camera image in this run's frames, so the rig was not used"


def policy_note(pipe: Any, summary: dict[str, Any]) -> str | None:
    """``--policy latest`` over sources no clock paces (files, a synthetic drive, no ``--realtime``): they deliver as
    fast as they are read, so ``latest`` drops whatever the model has not taken yet, most of the run (170 of 5,000
    synthetic frames were processed, with no word why). Said with the count, and the two options that fit."""
    if pipe is None or pipe.policy != "latest" or any(s.live for s in pipe.sources):
        return None
    from edge.stream.stats import drops_by_sensor, per_sensor

    by = drops_by_sensor(summary.get("counters") or {})
    if not by:
        return None
    what = f"{sum(by.values())} frame(s)" if len(by) == 1 else f"frames ({per_sensor(by)})"
    return (f"--policy latest dropped {what} of sources no clock paces (files or synthetic frames are read "
            "as fast as possible, so the model keeps up with none): --realtime plays them at their own rate, "
            "--policy block takes every frame")


def task_summary_note(summary: dict[str, Any]) -> str | None:
    """The task's ``summary()`` raised (a user's task): said, where it lost the whole run's outputs before."""
    err = (summary.get("task") or {}).get("summary_error")
    return f"the task's summary() raised {err}: its fields are missing from the summary" if err else None


def unannounced_note(summary: dict[str, Any]) -> str | None:
    """Frames of a sensor their source did not announce (``unannounced_<sensor>``), said: a synthetic generator's
    sensors are those of its first frame set, and one that appeared later was dropped in no counter."""
    names = sorted(k[len("unannounced_"):] for k in (summary.get("counters") or {}) if k.startswith("unannounced_"))
    if not names:
        return None
    return (f"frames of {', '.join(names)} were ignored: their source did not announce the sensor (a synthetic "
            "generator's sensors are those of its first frame set)")


def metric_note(summary: dict[str, Any]) -> str | None:
    """The run's metric when it is not a number (a family's reduce that returned NaN): said, as ``edge val`` says it."""
    m = summary.get("task", {}).get("metric")
    value = m.get("value") if isinstance(m, dict) else None
    if not isinstance(value, float) or math.isfinite(value):
        return None
    return (f"{m.get('name', 'the metric')} is not a number for this run (the family's metric reduce, or the model's "
            "outputs on these frames)")


def run(bundle: str | os.PathLike[str] | Any, source: str = "synthetic", *, lidar: str | None = None,
        rig: str | os.PathLike[str] | None = None, save: str | os.PathLike[str] | None = None,
        jsonl: str | os.PathLike[str] | None = None, stats: str | os.PathLike[str] | None = None,
        policy: str = "auto", backend: str = "auto", precision: str | None = None,
        program: str | None = None, realtime: bool = False, max_frames: int = 0,
        threads: int = 0, display: bool = False, dump_points: str | os.PathLike[str] | None = None,
        udp: str | None = None, sync_ms: float = 50.0, stall_s: float | None = None, live: bool = False,
        handle_signals: bool = True, task: Any = None, sinks: list[Any] | None = None,
        command: str | None = None, preprocess: str = "auto", signals_after: Any = None,
        out_folder: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run ``bundle`` over ``source`` (and ``lidar``) until the sources end, a signal, or ``max_frames``.

    Returns the stats summary (also written to ``stats`` when given). ``precision`` (fp32, fp16, int8)
    and ``program`` choose what the family's program runs; ``rig`` projects point clouds onto the
    image (KITTI calib .txt or the rig JSON). ``task`` replaces the bundle's default task (e.g. a
    RuntimeTask with your own pre/postprocessing); ``bundle`` may then be None. ``sinks`` are more
    sinks, e.g. one collecting the records in memory: objects with ``open()``, ``write(result)`` and
    ``close(commit=True)`` (committed when the run's results stand, discarded when not), as
    :class:`edge.stream.sinks.Sink` subclasses have.
    ``command``: the text command (or a schedule file) for a family that takes one
    (:mod:`edge.stream.commands`). ``preprocess``: ``numpy`` (the reference), ``engine`` or ``auto``
    (:func:`edge.program.image_fronts`: camera frames resized and normalised inside the engine where that
    pays). ``backend`` ``auto``: :func:`edge.program.default_runtime` (OpenVINO, at INT8 when gated, for a
    bundle exported for it; else ONNX Runtime), and the precision with it when none is given.
    ``signals_after``: the SIGINT/SIGTERM handler left once the outputs are committed (``signal.SIG_IGN``:
    what ``edge run`` does, so a late Ctrl-C cannot turn a committed run into exit 130); None: the
    caller's handlers come back. ``out_folder``: the folder ``edge run --out`` names (the outputs' files are
    in it), checked as a whole against what the run reads, so a refusal names ``--out``, not ``--save``.
    """
    from edge.errors import EdgeError
    from edge.stream.pipeline import Pipeline, StoppedWithOutputs
    from edge.stream.sinks import DisplaySink, JsonlSink, OverlaySink, PointDumpSink, UdpJsonSink
    from edge.stream.sources import lidar_spec_source, open_source

    if not isinstance(source, str):
        raise EdgeError(f"source: a source spec string (a video, camera:0, synthetic:N, kitti:FOLDER, ...), got "
                        f"{type(source).__name__}")
    for name, value, kinds in (("--source", source, "a video, an image folder, camera:N, synthetic:N, kitti:FOLDER"),
                               ("--lidar", lidar, "a pcap, velodyne:FILE, ouster:FILE, udp://HOST:PORT")):
        if value == "":  # "" read the current folder's images, --lidar '' nothing ('./ ' is a folder named ' ')
            raise EdgeError(f"{name} {value!r}: an empty source spec; give {kinds}, ...")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 0:
        raise EdgeError(f"max_frames: an integer >= 0 (0: until the source ends), got {max_frames!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise EdgeError(f"threads: an integer >= 0 (0: the runtime's default), got {threads!r}")
    for name, value in (("lidar", lidar), ("udp", udp)):
        if value is not None and not isinstance(value, str):
            raise EdgeError(f"{name}: a spec string, got {type(value).__name__}")
    for name, value in (("realtime", realtime), ("display", display), ("live", live),
                        ("handle_signals", handle_signals)):
        numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
        if not isinstance(value, bool) and not numpy_bool:  # "no" is a true value: it switched the option on
            raise EdgeError(f"{name}: True or False, got {value!r}")
    if isinstance(sync_ms, bool) or not isinstance(sync_ms, numbers.Real):  # numpy's numbers too
        raise EdgeError(f"sync_ms: milliseconds, a number, got {type(sync_ms).__name__}")
    for name, value in (("backend", backend), ("policy", policy), ("preprocess", preprocess)):
        if not isinstance(value, str):  # a list reached a registry's lookup as "unhashable type"
            raise EdgeError(f"{name}: a name, got {type(value).__name__}")
    if signals_after is not None and not callable(signals_after) and signals_after not in (signal.SIG_IGN,
                                                                                            signal.SIG_DFL):
        # found after the run, by signal.signal: a TypeError, with our handlers left installed for good
        raise EdgeError(f"signals_after: signal.SIG_IGN, signal.SIG_DFL, a handler or None, got {signals_after!r}")
    for name, value in (("rig", rig), ("save", save), ("jsonl", jsonl), ("stats", stats), ("dump_points", dump_points),
                        ("out_folder", out_folder), ("command", command)):
        if value is not None and not isinstance(value, str | os.PathLike):
            raise EdgeError(f"{name}: a path{' or a text' if name == 'command' else ''}, got {type(value).__name__}")
    if isinstance(command, os.PathLike):  # a schedule file given as a Path, as other paths are
        command = os.fspath(command)
    if stall_s is not None and not _positive_seconds(stall_s):
        raise EdgeError(f"stall_s: seconds without a frame before a source counts as stalled, a finite number > 0 "
                        f"(None: the default), got {stall_s!r}")
    if sinks is not None and not isinstance(sinks, list | tuple):
        raise EdgeError(f"sinks: a list of sinks, got {type(sinks).__name__}")
    if task is not None and not all(callable(getattr(task, m, None)) for m in ("preprocess", "infer", "postprocess")):
        raise EdgeError(f"task: a task with preprocess(), infer() and postprocess() (e.g. "
                        f"edge.stream.task.RuntimeTask), got {type(task).__name__}")
    sensors = getattr(task, "sensors", None) if task is not None else ("_",)
    if not isinstance(sensors, tuple | list) or not sensors or not all(isinstance(x, str) for x in sensors):
        # read as task.sensors[0] once the sources were open: an AttributeError or IndexError
        raise EdgeError(f"task: `sensors`, the sensor names it reads (the first paces the loop), a non-empty tuple "
                        f"of strings, got {sensors!r}")
    bad = [s for s in sinks or [] if not all(callable(getattr(s, m, None)) for m in ("open", "write", "close"))]
    if bad:
        raise EdgeError(f"sinks: objects with open(), write(result) and close(commit) (e.g. edge.stream.sinks.Sink "
                        f"subclasses), got {type(bad[0]).__name__}")
    if bundle is None and task is None:
        raise EdgeError("bundle: a bundle folder (or pass task=, a RuntimeTask over your own runtime)")
    card = None
    if bundle is not None:
        from edge.bundle import Bundle
        from edge.program import card_for_bundle

        if not isinstance(bundle, Bundle):
            bundle = Bundle.load(bundle)
        card = card_for_bundle(bundle)
        if card is not None and not card.draws and (save is not None or display):
            from edge.errors import DataError

            raise DataError(f"{'--save' if save is not None else '--display'}: model '{card.name}' draws no overlay "
                            "(its card gives no draw), so there is nothing to show")
    sources = [open_source(source, realtime=realtime, max_frames=max_frames, card=card)]
    if lidar:
        from edge.errors import DataError
        from edge.stream.sources.base import POINT_SENSOR

        if POINT_SENSOR in sources[0].sensors:  # it said "two sources deliver the same sensor", naming neither option
            raise DataError(f"--lidar: --source {source} already gives the LiDAR ({POINT_SENSOR}); drop --lidar")
        sources.append(lidar_spec_source(lidar, realtime=realtime))
    if card is not None:
        bind_sensors(sources, card.sensors, f"model '{card.name}'")
        if card.needs_rig and rig is None and not any(s.brings_rigs for s in sources):
            from edge.errors import DataError

            raise DataError(f"model '{card.name}' needs the camera intrinsics and a starting extrinsic with every "
                            f"frame: pass --calib RIG (a KITTI calib .txt or a rig JSON); {source} brings none")
    from edge.files import check_outputs

    reads = [p for src in sources for p in src.reads()]
    from edge.data.rig import rig_reads

    reads += rig_reads(rig)  # a rig file, or a KITTI raw calib folder's two files
    with contextlib.suppress(OSError):  # a command sentence longer than a file name is text, not a file
        if command is not None and len(str(command)) < 4096 and Path(command).is_file():
            reads.append(Path(command))
    # (the sinks write under private names, edge.files.partial_file: a source cannot hold one)
    if out_folder is not None:  # before its files: "--save would write into", for an option never given
        check_outputs({}, reads, {"--out": out_folder}, sealed=(Path(bundle.path),) if bundle is not None else ())
    check_outputs({"--save": save, "--jsonl": jsonl, "--stats": stats}, reads, {"--dump-points": dump_points},
                  sealed=(Path(bundle.path),) if bundle is not None else ())
    the_rig = None
    if rig is not None:
        from edge.data.rig import Rig

        the_rig = Rig.load(rig)
    extra, sinks = list(sinks or []), []
    if save is not None:
        sinks.append(OverlaySink(save, fps_source=sources[0]))
    if jsonl is not None:
        sinks.append(JsonlSink(jsonl))
    if display:
        sinks.append(DisplaySink())
    if dump_points is not None:
        sinks.append(PointDumpSink(dump_points))
    if udp is not None:  # an empty target is the sink's one-line error, not no sink (it was dropped unsaid)
        sinks.append(UdpJsonSink(udp))
    sinks.extend(extra)
    schedule = None
    if command is not None:  # every entry parsed before anything loads or runs
        from edge.stream.commands import load_commands

        schedule = load_commands(command, card, bundle.manifest["model"]["config"] if card is not None else {})
        if task is not None and not (hasattr(task, "commands") and hasattr(task, "annotate")):
            from edge.errors import DataError

            raise DataError(f"--command: task '{getattr(task, 'name', '?')}' takes no command")
    own_task = task is None
    why = ""
    if own_task and backend == "auto":
        if card is None:
            backend = "onnxruntime"
        else:
            from edge.program import default_runtime

            backend, precision, why = default_runtime(bundle, program, precision)
    if own_task:
        from edge.stream.task import task_for_bundle

        task = task_for_bundle(bundle, backend, precision=precision, program=program, preprocess=preprocess,
                               **({"threads": threads} if threads else {}))
    if schedule is not None:
        task.commands = schedule
    made: list[Path] = []
    pipe = None
    stopped: StoppedWithOutputs | None = None
    try:
        if stats is not None:
            from edge.files import check_target
            from edge.stream.sinks import _check_parent

            check_target(stats, "--stats")  # the name as given: Path() drops a trailing '/'
            made = _check_parent(Path(stats))
        shown = getattr(task, "backend", backend)
        caption = shown if not precision or precision == "fp32" else f"{shown} {precision}"
        pipe = Pipeline(sources, task, sinks, policy=policy, sync_tolerance_ms=sync_ms, rig=the_rig,
                        stall_s=stall_s, live=live, max_frames=max_frames, caption=caption)
        def complete(summary: dict[str, Any]) -> None:
            """The run's notes and outputs, in its summary."""
            from edge.bench.machine import fp16_note, int8_note, machine
            from edge.program import INT8_NOT_CHOSEN

            ran = (summary["task"].get("precision"), summary["task"].get("backend", backend))
            note = int8_note(*ran, machine()["isa"]) or fp16_note(*ran)
            if bundle is not None and summary["task"].get("precision") == "int8":
                from edge.program import float_int8_graphs

                fl = float_int8_graphs(bundle, summary["task"].get("program", ""),
                                       summary["task"].get("backend", backend))
                if fl:
                    note = "; ".join(x for x in (note, (
                        f"graph(s) {', '.join(fl)} run unquantized (float, at the run's inference precision) in "
                        "this int8 program: the export found no int8 form of them faster than fp32 (or within the "
                        "accuracy budget)")) if x)
            notes = [n for n in (note, why if why == INT8_NOT_CHOSEN else None,
                                 *(s.note() for s in sinks if hasattr(s, "note")),
                                 *(s.note(max_frames) for s in sources if hasattr(s, "note")),
                                 rig_note(rig, pipe, summary), policy_note(pipe, summary), unannounced_note(summary),
                                 metric_note(summary), task_summary_note(summary)) if n]
            if notes:
                summary["notes"] = notes
            summary["outputs"] = {s.name: str(getattr(s, "path", getattr(s, "folder", ""))) for s in sinks
                                  # a sink that wrote nothing (a point dump of a camera-only run) made nothing
                                  if (hasattr(s, "path") or hasattr(s, "folder"))
                                  and getattr(s, "frames", getattr(s, "files", 1)) > 0}

        def finish(summary: dict[str, Any]) -> Any:
            """Once every output is written and checked: the summary completed and, with ``--stats``, written
            under a temporary name; the call that names it (or removes it, when the outputs are discarded)."""
            complete(summary)
            if stats is None or summary["frames"] <= 0:
                return None
            from edge.files import staged_text

            summary["outputs"]["stats"] = str(stats)  # as the file written says, once named
            try:
                name = staged_text(stats, jsonout.dumps(summary, indent=2) + "\n")
            except BaseException:
                summary["outputs"].pop("stats", None)
                raise

            def done(commit: bool) -> None:
                try:
                    name(commit)
                finally:
                    if not commit:
                        summary["outputs"].pop("stats", None)

            return done

        # the handlers stay until the summary is on disk too: a signal while the outputs commit is noted
        # (the run is already ending), never a reason to leave them half-written
        with pipe.signals(handle_signals, then=signals_after):
            try:
                summary = pipe.run(handle_signals=handle_signals, finish=finish)
            except StoppedWithOutputs as e:  # the outputs of the frames before the error are kept: so is their summary
                stopped, summary = e, e.summary
            if "outputs" not in summary:  # a run that processed no frame: nothing to commit, its notes all the same
                complete(summary)
            if stats is not None and "stats" not in summary["outputs"]:
                from edge.files import remove_made

                remove_made(made)
    except BaseException:
        from edge.files import remove_made

        remove_made(made)
        raise
    finally:
        if own_task and not (pipe is not None and pipe.gave_up):  # a stage stuck in the model may still use it
            task.close()
    if stopped is not None:
        raise stopped
    return summary
