"""``edge run``: options -> :func:`edge.stream.run`, then a short human summary (or JSON)."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge import jsonout
from edge.cli import emit
from edge.errors import DataError


def results_name(bundle: Path) -> str:
    """The JSONL file stem ``--out`` uses: the family's (recorded in the manifest), else "results"."""
    from edge.bundle import Bundle

    task = Bundle.load(bundle, verify=False).manifest.get("task") or {}
    name = task.get("results") if isinstance(task, dict) else None
    from edge.manifest_schema import GRAPH_NAME

    # a file name, not a path: a forged bundle's "../x" stays inside --out
    return name if isinstance(name, str) and GRAPH_NAME.fullmatch(name) else "results"


def draws(bundle: Path) -> bool:
    """Whether the bundle's family draws an overlay (``--out`` then writes overlay.mp4; a family whose card has no
    ``draw`` gets no video, where an explicit ``--save`` is refused)."""
    from edge.bundle import Bundle
    from edge.program import card_for_bundle

    card = card_for_bundle(Bundle.load(bundle, verify=False))
    return card is None or card.draws


def run_run(bundle: Path, *, source: str, lidar: str | None, rig: Path | None, save: Path | None,
            jsonl: Path | None, stats: Path | None, out: Path | None, policy: str, backend: str,
            precision: str | None, program: str | None, realtime: bool,
            max_frames: int, threads: int, display: bool, dump_points: Path | None, udp: str | None,
            sync_ms: float, live: bool | None, json_out: bool,
            command: str | None = None, preprocess: str = "auto") -> dict[str, Any]:
    from edge.cli import console as make_console
    from edge.stream.api import run

    if policy not in ("auto", "latest", "block"):
        raise DataError(f"--policy '{policy}': use latest, block or auto")
    if precision is not None and precision not in ("fp32", "fp16", "int8"):
        raise DataError(f"--precision '{precision}': use fp32, fp16 or int8")
    if out is None and not any((save, jsonl, stats, display, dump_points, udp)):
        out = Path("edge_run")
    if out is not None:
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: --out must be a folder")
        given = {o: Path(v) for o, v in (("--save", save), ("--jsonl", jsonl), ("--stats", stats)) if v is not None}
        implied = {o: v for o, v in (("--save", None if save else out / "overlay.mp4" if draws(bundle) else None),
                                     ("--jsonl", None if jsonl else out / f"{results_name(bundle)}.jsonl"),
                                     ("--stats", None if stats else out / "summary.json")) if v is not None}
        for o, v in given.items():  # said as the user wrote them ("--jsonl and --stats" named an option never given)
            same = next((i for i in implied.values() if i.resolve() == v.resolve()), None)  # through '..' and links
            if same is not None:
                raise DataError(f"{o} {v}: is the file --out {out} writes ({same.name}); name another file")
        save = save or implied.get("--save")
        jsonl = jsonl or implied["--jsonl"]
        stats = stats or implied["--stats"]
    console = make_console(stderr=True)
    if out is not None and out.is_dir():  # an earlier run's results another family named otherwise stay beside
        # this run's and read as its own (one family's results file beside another's): said, not deleted
        mine = {Path(p).name for p in (save, jsonl, stats) if p is not None}
        earlier = sorted(p.name for p in out.iterdir() if p.is_file() and p.name not in mine
                         and (p.suffix == ".jsonl" or p.stem == "overlay" or p.name == "summary.json"))
        if earlier:
            console.print(f"note: {out} also holds {', '.join(earlier[:3])}{' ...' if len(earlier) > 3 else ''} "
                          "from an earlier run; this run does not write or replace them", highlight=False, markup=False)
    # once the outputs are committed a late Ctrl-C/SIGTERM must not turn that into exit 130 (or a kill):
    # the run's own handlers are swapped straight for SIG_IGN, which stays until the process is gone
    with _caller_signals_back() as after:
        summary = run(bundle, source, lidar=lidar, rig=rig, save=save, jsonl=jsonl, stats=stats, policy=policy,
                      backend=backend, precision=precision, program=program, realtime=realtime,
                      max_frames=max_frames, threads=threads, display=display, dump_points=dump_points, udp=udp,
                      sync_ms=sync_ms, live=sys.stderr.isatty() if live is None else live, command=command,
                      preprocess=preprocess, signals_after=after, out_folder=out)
        return _report(summary, source, summary["task"].get("backend", backend), json_out, console)


@contextlib.contextmanager
def _caller_signals_back() -> Iterator[Any]:
    """Yield the handler the run leaves once committed (SIG_IGN on the main thread); afterwards the
    caller's handlers come back, except in the ``edge`` process itself after a committed run (its exit
    must stay quiet: Python restores the default handlers during finalisation)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    from edge.cli.process import is_entry

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    done = False
    try:
        yield signal.SIG_IGN
        done = True
    finally:
        for s, h in old.items() if not (done and is_entry()) else ():
            if h is not None:  # None: a handler not installed from Python, which cannot be put back
                signal.signal(s, h)


def _rates(summary: dict[str, Any]) -> str:
    """What bounds the loop's rate: the model alone (1 / infer p50), and a source when it is the slower one
    (a source slower than 1.25x the loop's rate is what the loop waited for). A synthetic source renders ahead up
    to a cap, then in the loop: its median is the fast part, so the rate of the frames it rendered in the loop
    (``live_fps``) is what is compared then. (Not a source's share of the run's time: a paced video or a camera
    spends all of it waiting for its next frame.)"""
    inf = summary["stages"]["infer"]["p50_ms"]
    parts = [f"the model alone {1e3 / inf:.1f} fps"] if inf > 0 else []
    for name, st in summary.get("sources", {}).items():
        fps, live = st.get("produce_fps"), st.get("live_fps")
        if fps and fps < 1.25 * summary["fps"]:
            parts.append(f"source {name} {fps:.1f} fps")
        elif live and live < 1.25 * summary["fps"]:
            parts.append(f"source {name} {live:.1f} fps past its {st.get('prerendered', 0)} frames rendered ahead")
    return "; " + ", ".join(parts) if parts else ""


def _waiting(summary: dict[str, Any]) -> str:
    """The part of end-to-end spent waiting in the loop's queues (in block mode every frame is kept, so
    frames that arrive faster than the model wait their turn: latency then measures the queue)."""
    w = summary.get("waiting", {}).get("p50_ms")
    if w is None:
        return ""
    why = ""
    if summary["policy"] == "block":
        why = ": block mode keeps every frame"
        if summary.get("counters", {}).get("decoded_in_batches"):
            why += " and decodes results that come back to back together"
    return f" ({w:.1f} of it queued{why})"


def _cpu(summary: dict[str, Any]) -> str:
    cpu = summary.get("cpu") or {}
    if cpu.get("ms_per_frame") is None or cpu.get("cores") is None:
        return ""
    return f", CPU {cpu['ms_per_frame']:.1f} ms/frame ({cpu['cores']:.2f} cores)"


def _report(summary: dict[str, Any], source: str, backend: str, json_out: bool, console: Any) -> dict[str, Any]:
    if summary["frames"] == 0:
        if summary.get("interrupted"):  # Ctrl-C before the first result: an interrupted run, not a bad source
            raise KeyboardInterrupt
        reasons = summary.get("skip_reasons") or {}
        why = f": every frame set was skipped ({max(reasons, key=reasons.get)})" if reasons else ""
        raise DataError(f"{source}: no frames were processed{why}")
    if json_out:
        emit(jsonout.dumps(summary))
        return summary
    e2e, inf = summary["end_to_end"], summary["stages"]["infer"]
    task = summary["task"]
    m = task.get("metric")
    score = "" if not m else (f", {m['name']} {m['value']:.1f}{m.get('unit', '')}" if math.isfinite(m["value"]) else
                                f", {m['name']} not a number (nothing to score in these frames, or NaN outputs)")
    from edge.stream.stats import drops_text

    prec = f" {task['precision']}" if task.get("precision", "fp32") != "fp32" else ""
    console.print(f"{summary['frames']} frames on {backend}{prec} ({summary['policy']}, {summary['fps']:.1f} fps"
                  f"{_rates(summary)}): end-to-end p50 {e2e['p50_ms']:.1f} / p99 {e2e['p99_ms']:.1f} ms"
                  f"{_waiting(summary)}, infer p50 {inf['p50_ms']:.1f} ms, {drops_text(summary['counters'])}{score}"
                  f"{_cpu(summary)}"
                  f"{' (interrupted)' if summary['interrupted'] else ''}", highlight=False, markup=False)
    for reason, n in (summary.get("skip_reasons") or {}).items():
        console.print(f"skipped {n} frame set(s): {reason}", highlight=False, markup=False)
    for note in summary.get("notes", ()):
        console.print(f"note: {note}", highlight=False, markup=False)
    if summary["outputs"]:
        console.print("wrote " + ", ".join(summary["outputs"].values()), highlight=False, markup=False)
    return summary
