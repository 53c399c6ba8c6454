"""``edge.stream.Pipeline``: sources -> slots -> preprocess -> infer -> postprocess -> sinks, in threads.

Threads: one per source (capture and decode), then one per stage. Between a source and the
preprocess stage sits a :class:`~edge.stream.slot.Slot` with the run's policy (``latest`` drops stale
frames and counts them, ``block`` loses nothing); between stages sit small blocking slots, and the
preprocess stage pulls its next frame only when the infer stage has taken the previous one, so the
frame it hands on is the freshest while still overlapping inference. Secondary sensors (e.g. LiDAR
beside the camera) are matched to each primary frame by capture time within a tolerance. A monitor
thread runs the watchdog (stalled live sources are logged, counted and asked to reconnect), samples
memory and refreshes the live stats line. ``stop()`` (SIGINT/SIGTERM in ``run``) stops the sources,
drains every queue and closes the sinks with commit; an error in a stage aborts and discards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.data.frame import Frame, is_image, is_points, now_ns
from edge.errors import DataError, EdgeError, first_line
from edge.stream.slot import CLOSED, EMPTY, Slot
from edge.stream.sources.base import Source, SourceThread, source_name
from edge.stream.stats import Stats
from edge.stream.task import Result

log = logging.getLogger("edge.stream")

#: unmatched secondary frames kept for sync; older ones are dropped (counted as ``sync_dropped_<sensor>``)
SYNC_BUFFER = 32


class StoppedWithOutputs(EdgeError):
    """A run error after which the frames processed before it were committed: ``summary`` is theirs, so the caller
    writes it beside them (a stale summary of an earlier run must not sit next to this run's outputs)."""

    def __init__(self, message: str, summary: dict[str, Any], error: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary
        #: the run error itself, without what was kept (a caller that keeps nothing, such as edge calibrate, says so)
        self.error = message if error is None else error


def _reason(e: BaseException) -> str:
    """Why a stage or sink failed, in one line: an optional package it reached that this install lacks is the
    pip line that brings it and what needed it (:func:`edge.deps.explain_import`; it was "ModuleNotFoundError: No
    module named 'cv2'" after the whole run's frames were read), anything else its type and first line."""
    from edge.deps import explain_import

    return explain_import(e) or f"{type(e).__name__}: {first_line(e)}"


_SWITCH_LOCK = threading.Lock()
_SWITCH: dict[str, Any] = {"runs": 0, "found": None}


def _fast_switches(on: bool) -> None:
    """The GIL switch interval at 1 ms while any run is on, the one found before the first back after the last.

    Why: the stages hand frames across threads; with CPython's default 5 ms interval a woken stage can wait that long
    behind a busy one, which showed up as the loop's p99. Counted, not saved per run: two overlapping runs that each
    put back what they found left 1 ms for good when the first ended first (a review)."""
    with _SWITCH_LOCK:
        if on:
            if _SWITCH["runs"] == 0:
                _SWITCH["found"] = sys.getswitchinterval()
                sys.setswitchinterval(min(_SWITCH["found"], 0.001))
            _SWITCH["runs"] += 1
        else:
            _SWITCH["runs"] -= 1
            if _SWITCH["runs"] == 0 and _SWITCH["found"] is not None:
                sys.setswitchinterval(_SWITCH["found"])


class Pipeline:
    """The real-time loop (see the module docstring).

    sources: camera/LiDAR/KITTI/... sources; their sensors must cover ``task.sensors`` (the first is primary).
    task: the model side (``FamilyTask``, ``RuntimeTask`` or your own with the same methods).
    sinks: result consumers, each opened before the loop starts and committed at the end.
    policy: ``latest``, ``block`` or ``auto`` (``latest`` when any source is live, else ``block``).
    sync_tolerance_ms: a secondary frame matches a primary frame within this capture-time distance.
    rig: a :class:`~edge.data.rig.Rig` for projecting point clouds onto the primary image when frames
        carry none.
    stall_s: watchdog limit for live sources (default max(2 s, 10 frame periods)).
    live: print the stats line on stderr while running.
    max_frames: stop after this many primary frames (0 = until the sources end or ``stop()``).
    """

    def __init__(self, sources: Sequence[Source], task: Any, sinks: Sequence[Any] = (), *, policy: str = "auto",
                 capacity: int | None = None, sync_tolerance_ms: float = 50.0, rig: Any = None,
                 stall_s: float | None = None, live: bool = False, max_frames: int = 0,
                 caption: str | None = None) -> None:
        if not sources:
            raise DataError("pipeline needs at least one source")
        self.sources = list(sources)
        self.task = task
        self.sinks = list(sinks)
        any_live = any(s.live for s in self.sources)
        self.policy = ("latest" if any_live else "block") if policy == "auto" else policy
        if self.policy not in ("latest", "block"):
            raise DataError(f"unknown policy '{policy}' (use latest, block or auto)")
        self.capacity = capacity
        if not (math.isfinite(sync_tolerance_ms) and 0 <= sync_tolerance_ms <= self.MAX_SYNC_MS):
            # 1e308 passed a finiteness check and overflowed into nanoseconds (a review)
            raise DataError(f"--sync-ms {sync_tolerance_ms:g}: the camera-LiDAR tolerance is a number of "
                            f"milliseconds from 0 to {self.MAX_SYNC_MS:g}")
        self.tolerance_ns = int(sync_tolerance_ms * 1e6)
        self.rig = rig
        #: whether a frame set with a camera image met the run's rig (a run of waveforms had --calib do nothing)
        self.rig_met_image = False
        self.skip_reasons: dict[str, int] = {}  # why frame sets were skipped (the family's one-line reasons)
        self._skip_shapes: dict[str, str] = {}
        self.stall_s = stall_s
        self.live = live
        self.max_frames = max_frames
        self.caption = caption
        self.stats = Stats()
        self._stop = threading.Event()   # sources: stop publishing (graceful; queues drain)
        self._abort = threading.Event()  # stages: stop now (an error, or a second signal)
        self._errors: list[str] = []
        provided = [s for src in self.sources for s in src.sensors]
        if len(set(provided)) != len(provided):
            raise DataError(f"two sources deliver the same sensor ({', '.join(provided)}); give each its own name")
        self.primary = task.sensors[0]
        # what every later stage sees in a frame set's meta, in order: the run's rig (--calib), then the
        # task's own additions (edge run --command)
        self._annotators = [f for f in (self._with_rig if rig is not None else None, getattr(task, "annotate", None))
                            if f is not None]
        missing = [s for s in task.sensors if s not in provided]
        if missing:
            raise DataError(f"model '{getattr(task, 'name', '?')}' needs sensor(s) {', '.join(missing)}, "
                            f"the sources give {', '.join(provided)}")
        self.secondary = [s for s in provided if s != self.primary]
        self.required = set(task.sensors)
        self._source_of = {s: src for src in self.sources for s in src.sensors}
        lead = self._source_of[self.primary]
        # two recordings read as fast as the loop takes them (files, no --realtime): their arrival times say
        # nothing about when they were captured, so a secondary from another file pairs on recording time
        self.by_recording = {s for s in self.secondary if self.policy == "block" and not any_live
                             and self._source_of[s] is not lead and lead.recorded and self._source_of[s].recorded}
        self._sync: dict[str, deque[Frame]] = {s: deque() for s in self.secondary}
        self._used: dict[str, Frame] = {}  # per secondary sensor, the frame last matched (it may be matched again)
        self._read: dict[str, int] = {}  # frames each sensor's source handed to the loop (delivered or not)
        # per secondary sensor, the distinct frames delivered in results and the last one's seq (a LiDAR rotation is
        # the nearest for several camera frames: counted once)
        self._delivered: dict[str, int] = {}
        self._last_seq: dict[str, int] = {}
        self._arrived_ns: dict[str, int] = {}  # when each sensor's source last handed a frame over (monotonic)
        self._started_ns = time.monotonic_ns()  # (reset when the sources start)
        self._threads: list[SourceThread] = []
        self._stall_flag: dict[int, int] = {}
        self._stall_counted: dict[int, int] = {}

    # ----------------------------------------------------------------- control
    #: after a stop, how long preprocess keeps waiting for frames still on their way from the sources
    DRAIN_GRACE_S = 1.0
    _stop_since = float("inf")

    _stop_asked = False
    _abort_asked = False
    _signals_seen = 0
    _runner: int | None = None  # the thread running the loop while it runs

    def stop(self) -> None:
        """Graceful stop: sources end, queued frames are processed, sinks commit. Thread- and signal-safe.

        Signal-safe because a signal handler runs in the main thread between any two bytecodes, also while
        that thread is inside its own ``Event.set()``, whose Condition's Lock is not reentrant: taking it
        again there hung ``edge run`` for good, further signals included. Called on the thread running the
        loop, this only notes the stop; the loop's join (every 0.1 s) acts on it (:meth:`_take_noted_stops`).
        """
        self._stop_since = min(self._stop_since, time.monotonic())
        self._stop_asked = True
        if threading.get_ident() != self._runner:
            self._stop.set()

    _stage_failed = False

    def abort(self, reason: str | None = None) -> None:
        """Stop now (stages too); with a reason it is a failure and the sinks discard their output."""
        if reason:
            self._errors.append(reason)
            self._stage_failed = True
        self._abort_asked = True
        self.stop()
        if threading.get_ident() != self._runner:  # on the loop's thread: noted, see stop()
            self._abort.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ----------------------------------------------------------------- run
    def run(self, handle_signals: bool = True, finish: Any = None) -> dict[str, Any]:
        """Open everything, run until the sources end, ``stop()``, a signal or ``max_frames``; the summary.

        Raises a one-line EdgeError when opening fails, a stage fails (sinks are then discarded) or a
        sink cannot commit. With ``handle_signals`` SIGINT/SIGTERM stop the run gracefully and stay
        caught until every sink has committed (a caller that writes more afterwards, like
        :func:`edge.stream.run`, holds :meth:`signals` itself across that too). A run that processed
        no frame commits nothing.

        Outputs commit in two halves: every sink is prepared (written and checked under its temporary name) before
        any is given its name, so one that fails leaves none of the run's outputs. ``finish(summary)``, called once
        all are prepared, writes what the caller adds to them (the summary file) under a temporary name and returns
        ``done(commit)``, called after the sinks are named (True: name it) or discarded (False: remove it); when
        ``finish`` raises, nothing is kept either.
        """
        if self._started:  # its threads, stop event and counters are the first run's (a second one failed with
            # "threads can only be started once" after opening its sources, and left them open: a review)
            raise EdgeError("a Pipeline runs once; make a new one to run again (sources, task and sinks may be "
                            "given to it again)")
        self._started = True
        with self.signals(handle_signals):
            return self._run(finish)

    _started = False

    @contextlib.contextmanager
    def signals(self, enabled: bool = True, *, then: Any = None) -> Iterator[None]:
        """SIGINT/SIGTERM -> graceful stop (a second one: stop now) for as long as the block runs.

        Outside the main thread (where Python cannot install handlers) this does nothing. Nested use
        keeps the outermost handlers: they must not be restored while outputs are still committing.
        ``then``: the handler both signals get when the block ends without an exception (e.g.
        ``signal.SIG_IGN``), in place of the ones found: swapped straight from ours, so no signal meets the
        default handler in between.
        """
        if not enabled or self._signals_held or threading.current_thread() is not threading.main_thread():
            yield
            return
        old = self._install_signals()
        self._signals_held = True
        done = False
        try:
            yield
            done = True
        finally:
            self._signals_held = False  # ``then`` only after a block that ended well: a failed run's exit may
            try:  # be signalled
                self._restore_signals(old if then is None or not done else dict.fromkeys(old, then))
            except (TypeError, ValueError):  # a ``then`` signal.signal refuses: the caller's handlers, not ours
                self._restore_signals(old)
                raise

    _signals_held = False

    def _run(self, finish: Any = None) -> dict[str, Any]:
        opened_src: list[Source] = []
        opened_sinks: list[Any] = []
        if any(getattr(s, "wants_image", False) for s in self.sinks):  # the overlay is drawn with OpenCV: said
            from edge.deps import opencv  # before any source opens (it was the first frame's postprocess failing)

            opencv("drawing the overlay (edge run's video, --save, --display; a run with --jsonl alone draws none)")
        try:
            for src in self.sources:
                # interrupted, or the run is over (a quiet UDP source ends its thread then, not at exit)
                src.stop_asked = lambda: self._interrupted or self._stop.is_set()  # type: ignore[method-assign]
                try:
                    src.open()
                except (EdgeError, KeyboardInterrupt, MemoryError):  # out of memory: the CLI's own line says so
                    raise
                except Exception as e:  # a user's source: one EdgeError line, as a sink's open gives (a review)
                    raise EdgeError(f"source {source_name(src)}: open failed: {_reason(e)}") from e
                opened_src.append(src)
            for sink in self.sinks:
                try:
                    sink.open()
                except EdgeError:
                    raise
                except Exception as e:  # a user's sink: one EdgeError line, as its write() and close() give
                    raise EdgeError(f"sink {getattr(sink, 'name', type(sink).__name__)}: open failed: "
                                    f"{_reason(e)}") from e
                opened_sinks.append(sink)
            self._prepare_engines()
            if self._interrupted:  # a Ctrl-C / SIGTERM while opening (rendering ahead): not a run of 0 frames
                raise KeyboardInterrupt
            self.stats.start()  # the rate and CPU time count from the loop's start, not the devices' opening
        except BaseException:
            for src in opened_src:
                src.close()
            for sink in opened_sinks:
                sink.close(commit=False)
            raise
        _fast_switches(True)  # hand-offs prompt (1 ms GIL switches), restored after the last run
        ok = False
        pending: BaseException | None = None
        before_close = 0  # errors up to here are the run's (a source's, a stage's); later ones a sink's commit
        commit_error: str | None = None  # a sink's prepare or the caller's finish failed: no output is kept
        publish: Any = None
        summary: dict[str, Any] | None = None
        try:
            self._run_threads()
            # a stage error means the results may be wrong: discard; a source error (device gone) leaves
            # valid results up to that point: keep them, then report the error. No frame: nothing to keep.
            # A source that failed before giving a single frame (a pcap of another sensor's packets) is bad
            # input, not a device lost mid-run: the frames processed meanwhile lack what was asked for, and
            # keeping them left a run's outputs without its summary behind an exit 2
            never = [t for t in self._threads if t.error is not None and not isinstance(t.error, SystemExit)
                     and t.frames == 0]
            ran = not self._stage_failed and not never and self.stats.e2e.count > 0
            before_close = len(self._errors)
            # ``ok`` (name the outputs) only once all are checked and the summary written: anything raised before,
            # a KeyboardInterrupt included, discards them all in the finally below
            stopped = f" (the run had stopped: {self._errors[0]})" if self._errors else ""
            if ran:
                commit_error = self._prepare_sinks()
                if commit_error is not None:
                    commit_error += stopped
            if ran and commit_error is None:
                summary = self.summary()
                if self._errors:  # a source's error with the frames before it kept: the summary says it
                    summary["error"] = self._stopped_message(self._errors[0])
                if finish is not None:
                    try:
                        publish = finish(summary)
                    except EdgeError as e:
                        commit_error = f"{e}; no output of the run was kept{stopped}"
                    except Exception as e:  # a user's sink whose note() raised: one line, as its write() gives
                        log.debug("summary failed", exc_info=True)
                        commit_error = (f"the run's summary could not be made ({type(e).__name__}: {first_line(e)}); "
                                        f"no output of the run was kept{stopped}")
                ok = commit_error is None
        finally:
            _fast_switches(False)
            if self.gave_up:  # a stage still runs, maybe inside a sink: discard them without waiting on it
                self._discard_sinks_unwaited()
            else:
                for sink in self.sinks:
                    try:
                        sink.close(commit=ok)
                    except Exception as e:  # one sink failing to close must not keep the others from committing
                        self._errors.append(str(e) if isinstance(e, EdgeError) else
                                            f"sink {getattr(sink, 'name', sink)}: {type(e).__name__}: "
                                            f"{first_line(e)}")
                    except BaseException as e:  # KeyboardInterrupt without our handlers: finish the others first
                        pending = pending or e
        if publish is not None:  # the caller's file: named once the sinks are, else discarded with them (a sink that
            # failed only to take its name leaves the others named: their summary is named beside them)
            publish(ok and pending is None)
        if ok and len(self._errors) > before_close:  # ... and the error says they were kept
            self._errors[-1] += "; the run's other outputs were kept"
        if pending is not None:
            raise pending
        if commit_error is not None:  # every output was discarded: that is the run's one line
            raise EdgeError(commit_error)
        if self._errors:  # a run error with results kept: say so (the outputs hold the frames before it)
            if ok and before_close and len(self._errors) == before_close:
                assert summary is not None
                raise StoppedWithOutputs(summary["error"], summary, self._errors[0])
            raise EdgeError(self._errors[-1] if len(self._errors) > before_close else self._errors[0])
        if summary is None:
            return self.summary()
        summary["interrupted"] = self._interrupted  # a signal that landed while the outputs were named is noted too
        return summary

    def _stopped_message(self, error: str) -> str:
        return f"{error} (the {self.stats.e2e.count} frame(s) before it were processed and their outputs kept)"

    def _prepare_sinks(self) -> str | None:
        """Every sink's first half of its commit (:meth:`edge.stream.sinks.Sink.prepare`); the first failure's one
        line (the caller then discards them all), or None."""
        for sink in self.sinks:
            prepare = getattr(sink, "prepare", None)
            if prepare is None:  # a user's sink written before prepare existed: its close() commits in one step
                continue
            try:
                prepare()
            except Exception as e:
                said = str(e) if isinstance(e, EdgeError) else (f"sink {getattr(sink, 'name', sink)}: prepare failed: "
                                                                f"{type(e).__name__}: {first_line(e)}")
                return said if "was kept" in said else f"{said}; no output of the run was kept"
        return None

    def summary(self) -> dict[str, Any]:
        out = self.stats.summary()
        out["policy"] = self.policy
        summarize = getattr(self.task, "summary", None)  # optional for a user's task (the loop's fields stand alone)
        out["task"] = {"task": getattr(self.task, "name", "task")}
        if callable(summarize):
            try:
                out["task"] = summarize()
            except Exception as e:  # a user's task: its fields are missing, the run's outputs are not (they were lost)
                log.debug("task summary failed", exc_info=True)
                out["task"]["summary_error"] = f"{type(e).__name__}: {first_line(e)}"
        for t in self._threads:
            out["sources"][t.source.spec or "+".join(t.source.sensors)] = {
                "sensors": list(t.source.sensors), **t.status(), "dropped": sum(
                    self._slots[s].dropped for s in t.source.sensors)}
        if self.secondary:  # how each secondary sensor was paired with the primary frames
            out["sync"] = {s: "recording" if s in self.by_recording else "tick" if self._same_tick(s) else "arrival"
                           for s in self.secondary}
        out["interrupted"] = self._interrupted
        if self.prepare_ms is not None:
            out["engine_prepare_ms"] = self.prepare_ms  # before the clock: not in any frame's latency
        if self.skip_reasons:
            out["skip_reasons"] = dict(self.skip_reasons)
        return out

    # ----------------------------------------------------------------- internals
    _interrupted = False
    prepare_ms: float | None = None

    def _prepare_engines(self) -> None:
        """Tell the task the camera sizes the sources know (engines that compile per size do it now, not
        inside the first frame, where it cost a live run its first frames). Best effort: a failure here
        comes back, and is reported, at the first frame."""
        prepare = getattr(self.task, "prepare", None)
        if prepare is None:
            return
        t = time.perf_counter()
        try:
            sizes = {k: v for src in self.sources for k, v in src.frame_sizes().items()
                     if k in self.required or k in getattr(self.task, "optional", ())}
            if not sizes:
                return
            prepare(sizes)
        except Exception as e:
            log.warning("preparing the engines for the sources' frame sizes failed: %s", first_line(e))
        self.prepare_ms = round((time.perf_counter() - t) * 1e3, 1)

    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}

        def handler(signum: int, _frame: Any) -> None:
            # no lock taken here (see stop()): flags that the loop's thread acts on
            self._interrupted = True
            self._signals_seen += 1
            if self._signals_seen > 1:  # second signal: stop at once (sinks still commit what they have)
                self.abort()
            else:  # the first is graceful, also while the loop already drains (after --max-frames)
                self.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    def _take_noted_stops(self) -> None:
        """On the loop's own thread: act on the stops noted there (a signal handler's, a stop() call's)."""
        if self._stop_asked and not self._stop.is_set():
            self._stop.set()  # a signal landing inside this set() only notes again: no lock taken twice
        if self._abort_asked and not self._abort.is_set():
            self._abort.set()

    @staticmethod
    def _restore_signals(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    def _run_threads(self) -> None:
        latest = self.policy == "latest"
        cap_primary = self.capacity or (1 if latest else 4)
        cap_secondary = self.capacity or (2 if latest else 8)
        self._slots: dict[str, Slot] = {}
        for src in self.sources:
            for s in src.sensors:
                cap = cap_primary if s == self.primary else cap_secondary
                self._slots[s] = Slot(s, self.policy, cap, self.stats.depth(f"source:{s}", cap))
        self._q_infer = Slot("infer", "block", 1, self.stats.depth("infer", 1))
        self._q_post = Slot("post", "block", 2, self.stats.depth("post", 2))
        self._publish_locks = {s: threading.Lock() for s in self._slots}
        for src in self.sources:
            slots = [self._slots[s] for s in src.sensors]

            def publish(frame: Frame, _slots: dict[str, Slot] = self._slots) -> bool:
                slot = _slots.get(frame.sensor)
                if slot is None:  # a sensor its source did not announce (a generator's first tick had none): counted
                    self.stats.count(f"unannounced_{frame.sensor}")
                    return True
                if frame.meta.get("partial"):  # a LiDAR rotation cut short (a capture's start or end, a sensor
                    # that went quiet): a wedge of the sweep, not a frame to pair or run; counted, not delivered
                    self.stats.count(f"partial_{frame.sensor}")
                    return not self._stop.is_set()
                # the read, the put and a refusal's count are one step for _count_secondaries (its lock per sensor:
                # one source thread per sensor, so only that count waits on it; a put waiting for room returns within
                # 50 ms of the stop or at once after the seal): a frame read while it counted was counted twice
                with self._publish_locks[frame.sensor]:
                    self._read[frame.sensor] = self._read.get(frame.sensor, 0) + 1
                    self._arrived_ns[frame.sensor] = time.monotonic_ns()  # (a reconnect does not restart the silence)
                    if not slot.put(frame, self._stop):  # the stop came while it waited for room (block), or the
                        # slot is sealed: read, never delivered, and in no counter (a review: one frame read more
                        # than processed, now and then); after an abort _count_abandoned counts what was read and
                        # not processed, this one with them
                        if frame.sensor == self.primary and not self._abort.is_set():
                            self.stats.count("abandoned")
                        elif frame.sensor != self.primary:  # never paired with a primary frame
                            self.stats.count(f"unmatched_{frame.sensor}")
                        return False
                return not self._stop.is_set()

            th = SourceThread(src, publish, self._stop)
            th.on_exit = lambda _s=slots, _t=th: self._source_ended(_t, _s)
            self._threads.append(th)
        stages = [threading.Thread(target=self._guard, args=(fn,), name=name, daemon=True)
                  for name, fn in (("preprocess", self._pre_loop), ("infer", self._infer_loop),
                                   ("postprocess", self._post_loop))]
        self._runner = threading.get_ident()  # until _stop is set below, stop() here only notes (see stop())
        self._started_ns = time.monotonic_ns()
        for t in self._threads:
            t.start()
        for t in stages:
            t.start()
        done = threading.Event()
        monitor = threading.Thread(target=self._monitor, args=(done,), name="monitor", daemon=True)
        monitor.start()
        join_s = 5.0
        try:
            self.gave_up = not self._wait_for_stages(stages)
        except BaseException:
            # a KeyboardInterrupt out of the join where no handlers of ours are installed (run(handle_signals=
            # False)): every stage stops before the sinks are discarded under a live writer and the caller
            # closes the model under a running inference
            self._abort.set()
            join_s = self.ABORT_GRACE_S
            raise
        finally:
            done.set()
            self._stop.set()
            self._runner = None
            for t in stages:
                t.join(0.0 if self.gave_up else join_s)
        if self._abort.is_set() and not self.gave_up:
            self._count_abandoned()
        for t in self._threads:
            t.join(0.5)  # daemon threads: a source stuck in a device read is left behind, not waited for
        monitor.join(2.0)
        if not self.gave_up:
            self._count_secondaries()
        self.stats.stop()
        for t in self._threads:
            if t.cpu_s is not None:
                self.stats.thread_cpu(t.name, t.cpu_s)
        for t in self._threads:
            if t.error is not None and not isinstance(t.error, SystemExit):
                e = t.error
                self._errors.append(str(e) if isinstance(e, EdgeError) else
                                    f"{source_name(t.source)}: {type(e).__name__}: {first_line(e)}")

    def _count_secondaries(self) -> None:
        """Once the sources have stopped, every secondary frame read is in one counter (a review: a LiDAR read on
        after a shorter video ended, and side-camera frames matched to frame sets an abort abandoned, were in none,
        and ``dropped_<sensor>`` was taken before the sources had stopped, so it disagreed with the source's own
        ``dropped``): the slots are sealed first (a source still in a read past the stop then adds nothing after the
        count: its frame is refused, counted as unmatched by ``publish``), what arrived after the preprocess stage
        ended is ``unmatched_<sensor>`` (never paired; a sensor read on demand too: its source had read them into
        its slot), the drops are read again, and a frame matched only to frame sets that were never delivered
        (skipped, unsynced for another sensor, abandoned) is ``unused_<sensor>``."""
        for s in self.secondary:
            self._slots[s].seal()
        c = self.stats.counters
        for s in self.secondary:
            with self._publish_locks[s]:  # a publish under way finishes its count first; a later one is refused
                self._let_go_all(s, drain=True)
                self.stats.set_count(f"dropped_{s}", self._slots[s].dropped)
                n = (self._read.get(s, 0) - self._delivered.get(s, 0) - c.get(f"unmatched_{s}", 0)
                     - self._slots[s].dropped - c.get(f"sync_dropped_{s}", 0) - c.get(f"unused_{s}", 0))
                if n > 0:
                    self.stats.count(f"unused_{s}", n)

    def _count_abandoned(self) -> None:
        """After an abort (a second signal), the primary frames read but neither processed, dropped, skipped nor
        unsynced, counted as ``abandoned``: in the loop's queues or in a stage's hands when it stopped, they were
        in no counter (95 frames read, 86 processed, 0 dropped)."""
        c = self.stats.counters
        read = self._read.get(self.primary, 0)  # including one a source read as the stop came, not delivered
        n = read - self.stats.e2e.count - self._slots[self.primary].dropped - c.get("skipped", 0) - c.get("unsynced", 0)
        n -= c.get("abandoned", 0)  # (one a source held as a graceful stop came, before the abort, is counted)
        if n > 0:
            self.stats.count("abandoned", n)

    #: True when the loop gave up on a stage that did not end after an abort: what it holds (the sinks, the
    #: task's runtime) may be in use by it, so nothing waits on them (``edge.stream.run`` does not close the task)
    gave_up = False

    def _source_ended(self, thread: SourceThread, slots: list[Slot]) -> None:
        """A source's thread ended: its slots close; one that failed (a pcap that gives no frame) ends the
        run now, as the run reports that error anyway (the whole video went through before it was said)."""
        for sl in slots:
            sl.close()
        if thread.error is not None and not isinstance(thread.error, SystemExit):
            self.stop()

    def _discard_sinks_unwaited(self) -> None:
        """Close the sinks without keeping anything, from a daemon thread given ``ABORT_GRACE_S``: a close that
        blocks on what the stuck stage holds (a display window, a hung file system) is left behind."""
        def discard() -> None:
            for sink in self.sinks:
                try:
                    sink.close(commit=False)
                except Exception:
                    log.debug("discarding a sink failed", exc_info=True)

        t = threading.Thread(target=discard, name="discard-sinks", daemon=True)
        t.start()
        t.join(self.ABORT_GRACE_S)

    #: after an abort (a second signal, a stage error), how long the loop waits for its stages to end: a sink,
    #: display or model call that never returns must not leave a process that only SIGKILL ends
    ABORT_GRACE_S = 5.0

    def _wait_for_stages(self, stages: list[threading.Thread]) -> bool:
        """Join the last stage in short steps (the main thread stays responsive to signals and acts on the
        stops noted); False when, after an abort, a stage did not end within ``ABORT_GRACE_S`` (the run then
        fails and keeps nothing)."""
        aborted_at: float | None = None
        while stages[-1].is_alive():
            self._take_noted_stops()
            if self._abort.is_set():
                aborted_at = time.monotonic() if aborted_at is None else aborted_at
                if time.monotonic() - aborted_at > self.ABORT_GRACE_S:
                    stuck = ", ".join(t.name for t in stages if t.is_alive())
                    self._stage_failed = True
                    self._errors.append(f"{stuck} did not stop within {self.ABORT_GRACE_S:g} s of the abort (a sink, "
                                        "display or model call that does not return); nothing was kept")
                    return False
            stages[-1].join(0.1)
        return True

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except EdgeError as e:
            self.abort(str(e))
        except Exception as e:
            log.debug("stage failed", exc_info=True)  # the user gets one line; the traceback is for -v logs
            self.abort(f"{threading.current_thread().name} failed: {_reason(e)}")
        except BaseException as e:  # SystemExit or KeyboardInterrupt raised by a task's or a sink's own code: in a
            # stage thread it ended the thread alone, the run then reported success over the frames before it and a
            # stage was left waiting; it is the run's error as any other failure is (the caller's handlers saw none)
            log.debug("stage ended", exc_info=True)
            self.abort(f"{threading.current_thread().name} failed: {type(e).__name__} raised in a stage thread"
                       f"{': ' + first_line(e) if str(e) else ''}")
        finally:
            self.stats.thread_cpu(threading.current_thread().name, time.thread_time())
            nxt = {"preprocess": "_q_infer", "infer": "_q_post"}.get(threading.current_thread().name)
            if nxt:
                getattr(self, nxt).close()

    # preprocess: pull the freshest primary frame once infer has room, match secondaries, preprocess
    def _pre_loop(self) -> None:
        try:
            self._pre_frames()
        finally:
            self._count_left_over()

    def _pre_frames(self) -> None:
        primary = self._slots[self.primary]
        n = 0
        rec = self.stats.stages["preprocess"]
        while not self._abort.is_set():
            if not self._q_infer.wait_space(self._abort):
                return
            item = primary.get(timeout=0.1)
            self._drain_secondaries()
            if item is EMPTY:
                if self._stop.is_set() and time.monotonic() - self._stop_since > self.DRAIN_GRACE_S:
                    return  # a source stuck in a blocking read (e.g. a GStreamer appsink) must not hang the stop
                continue
            if item is CLOSED:
                return
            frames = {self.primary: item}
            for s in self.secondary:
                m = (self._match_recorded(s, self._source_of[self.primary].recorded_ns(item))
                     if s in self.by_recording else self._match(s, item, self._tick_ns(s))
                     if self._same_tick(s) else self._match(s, item))
                if m is not None:
                    frames[s] = m
            if not self.required <= set(frames):
                self.stats.count("unsynced")
                missing = ", ".join(sorted(self.required - set(frames)))
                why = (f"no {missing} frame within the sync tolerance ({self.tolerance_ns / 1e6:g} ms, --sync-ms) "
                       f"of the {self.primary} frame")
                self._note_skip(why)
                continue
            t0 = time.perf_counter()
            for annotate in self._annotators:
                frames = annotate(frames)
            try:
                self._check_rig(frames)
                x = self.task.preprocess(frames)
            except DataError as e:  # this frame set cannot be used (too few points in view, ...): a counted skip
                self.stats.count("skipped")
                self._note_skip(first_line(e, 400))  # room for a file's whole path and what is wrong with it
                continue
            pre_ms = (time.perf_counter() - t0) * 1e3
            rec.add(pre_ms)
            if not self._q_infer.put((frames, x, pre_ms), self._abort):
                return
            n += 1
            if self.max_frames and n >= self.max_frames:
                self.stop()
                return

    def _drain_secondaries(self) -> None:
        for s in self.secondary:
            if s in self.by_recording:  # read on demand (_match_recorded): its source keeps step with the primary
                continue
            buf, slot = self._sync[s], self._slots[s]
            while (f := slot.get_nowait()) is not EMPTY and f is not CLOSED:
                buf.append(f)
                if len(buf) > SYNC_BUFFER and buf.popleft() is not self._used.get(s):
                    # one a frame set took (delivered, or counted as unused at the end) is not a drop (a review: a
                    # delivered rotation was counted as sync_dropped as well)
                    self.stats.count(f"sync_dropped_{s}")

    def _match(self, sensor: str, primary: Frame, clock: Callable[[Frame], int] | None = None) -> Frame | None:
        """Nearest ``sensor`` frame to the ``primary`` frame within tolerance; waits up to the tolerance (no longer
        than the watchdog's limit for that source) when the sensor's newest frame is older and its source is still
        delivering. ``clock``: a frame's time (default its capture time; a ticked source's tick time,
        :meth:`_tick_ns`)."""
        buf, slot = self._sync[sensor], self._slots[sensor]
        tol = self.tolerance_ns
        when = clock or (lambda f: f.t_capture_ns)
        t_ns = when(primary)

        def near() -> bool:
            return any(abs(when(f) - t_ns) <= tol for f in buf)

        # wait only when nothing buffered matches yet and a newer frame could; a silent source is the watchdog's
        # (--sync-ms 1e9 with a LiDAR that sent nothing waited 11 days a camera frame)
        # a ticked source read faster than real time: its next tick comes when it comes (not paced), so the wait is
        # for the source to pass the tick, not the tolerance in wall time (a loaded machine missed pairs)
        paced = clock is None or self._source_of[sensor].live
        wait = min(tol / 1e9 if paced else self.TICK_WAIT_S, self._stall_limit(sensor))
        if self._silent(sensor):  # its source gave nothing for the watchdog's limit: no frame of it is waited for
            wait = 0.0  # (each camera frame waited up to --sync-ms, or the limit, for a LiDAR that sent nothing)
        deadline = time.monotonic() + wait
        while (not buf or when(buf[-1]) < t_ns) and not near() and not slot.closed \
                and time.monotonic() < deadline:
            f = slot.get(timeout=max(0.0, deadline - time.monotonic()))
            if f is EMPTY or f is CLOSED:
                break
            buf.append(f)
        if not buf:
            return None
        best = min(range(len(buf)), key=lambda i: abs(when(buf[i]) - t_ns))
        if abs(when(buf[best]) - t_ns) > tol:
            return None
        # frames older than the match cannot match a later primary frame better; the match itself can be
        # reused (a 10 Hz LiDAR rotation is the nearest one for several 30 Hz camera frames)
        for _ in range(best):
            self._let_go(sensor, buf)
        self._used[sensor] = buf[0]
        return buf[0]

    def _same_tick(self, sensor: str) -> bool:
        """Whether ``sensor`` comes from the primary's own source and that source numbers frame sets by tick."""
        src = self._source_of[sensor]
        return src is self._source_of[self.primary] and src.ticked

    #: how long a frame set of a ticked source read faster than real time waits for a sensor's next tick at most
    TICK_WAIT_S = 5.0

    def _tick_ns(self, sensor: str) -> Callable[[Frame], int]:
        """A ticked source's clock: a frame's tick number times the source's period (its frames read faster than real
        time carry arrival times that say nothing of their ticks)."""
        period_ns = int((self._source_of[sensor].period_s or 1 / 30) * 1e9)
        return lambda f: f.seq * period_ns

    def _silent(self, sensor: str) -> bool:
        """Whether ``sensor``'s live source has delivered no frame for its watchdog's limit (a LiDAR unplugged, a
        UDP port nothing sends to): until it delivers again, frame sets are not held back waiting for it."""
        src = self._source_of.get(sensor)
        if src is None or not src.live:
            return False
        since = self._arrived_ns.get(sensor, self._started_ns)
        return (time.monotonic_ns() - since) / 1e9 > self._watchdog_limit(src)

    def _stall_limit(self, sensor: str) -> float:
        """Seconds without a frame after which the watchdog calls ``sensor``'s live source stalled; infinite for a
        source that is not live (the watchdog leaves it alone: a file's slow decode is no stall, and capping the
        wait there lost matches a large tolerance made, a review found)."""
        src = self._source_of.get(sensor)
        return self._watchdog_limit(src) if src is not None and src.live else math.inf

    def _watchdog_limit(self, src: Source) -> float:
        """Seconds a live source may go without a frame: ``stall_s``, by default max(2 s, 10 frame periods)."""
        return self.stall_s or max(2.0, 10 * (src.period_s or 0.1))

    def _let_go(self, sensor: str, buf: deque[Frame]) -> None:
        """Drop the oldest buffered ``sensor`` frame; one no primary frame was matched with is counted as
        ``unmatched_<sensor>`` (under ``latest``, a side camera's frames passed over for newer ones were in no
        counter: 124 used and 86 dropped of a camera's 300)."""
        f = buf.popleft()
        if f is not self._used.get(sensor):
            self.stats.count(f"unmatched_{sensor}")

    def _count_left_over(self) -> None:
        """At the end, the secondary frames no primary frame was matched with, buffered or delivered since (counted,
        as above; a sensor read on demand keeps the rest in its source, its slot counted once the sources stopped)."""
        for s in self.secondary:
            self._let_go_all(s, drain=s not in self.by_recording)

    def _let_go_all(self, sensor: str, *, drain: bool) -> None:
        """Let every buffered ``sensor`` frame go (:meth:`_let_go`), with what its slot holds first when ``drain``."""
        buf = self._sync[sensor]
        if drain:
            while (f := self._slots[sensor].get_nowait()) is not EMPTY and f is not CLOSED:
                buf.append(f)
        while buf:
            self._let_go(sensor, buf)

    def _match_recorded(self, sensor: str, t_ns: int) -> Frame | None:
        """Nearest ``sensor`` frame to ``t_ns`` on the recordings' own clocks, within tolerance.

        Reads ``sensor``'s frames only until one at or past ``t_ns`` (its source then waits on its full slot,
        so the two files are read in step, however fast either decodes); frames before the nearest one
        are let go, as no later primary frame can be nearer to them."""
        buf, slot, src = self._sync[sensor], self._slots[sensor], self._source_of[sensor]
        while not buf or src.recorded_ns(buf[-1]) < t_ns:
            f = slot.get(timeout=0.1)
            if f is CLOSED:
                break
            if f is EMPTY:
                if self._abort.is_set() or (self._stop.is_set()
                                            and time.monotonic() - self._stop_since > self.DRAIN_GRACE_S):
                    break
                continue
            buf.append(f)
            while len(buf) > 1 and src.recorded_ns(buf[1]) <= t_ns:
                self._let_go(sensor, buf)
        if not buf:
            return None
        best = min(range(len(buf)), key=lambda i: abs(src.recorded_ns(buf[i]) - t_ns))
        if abs(src.recorded_ns(buf[best]) - t_ns) > self.tolerance_ns:
            return None
        for _ in range(best):
            self._let_go(sensor, buf)
        self._used[sensor] = buf[0]
        return buf[0]

    def _items(self, slot: Slot) -> Iterator[Any]:
        """What a stage consumes: items until its input slot is closed and drained, or an abort."""
        while not self._abort.is_set():
            item = slot.get(timeout=0.1)
            if item is EMPTY:
                continue
            if item is CLOSED:
                return
            yield item

    def _infer_loop(self) -> None:
        rec = self.stats.stages["infer"]
        for frames, x, pre_ms in self._items(self._q_infer):
            t0 = time.perf_counter()
            out = self.task.infer(x)
            inf_ms = (time.perf_counter() - t0) * 1e3
            rec.add(inf_ms)
            self._infer_s = inf_ms / 1e3
            if not self._q_post.put((frames, out, pre_ms + inf_ms, time.perf_counter()), self._abort):
                return

    #: ``block`` mode with a task that decodes several results at once: at most this many per batch
    POST_BATCH = 4
    #: the largest camera-LiDAR tolerance (--sync-ms): a minute, far past any sensor's period
    MAX_SYNC_MS = 60_000.0
    _infer_s = 0.0  # the last inference's duration
    _post_s = 0.0  # the post stage's time per result (decoding + sinks) in its last batch

    def _post_batches(self) -> Iterator[list[Any]]:
        """The post stage's input in batches. One result at a time, except in ``block`` mode with a task
        whose ``decodes_in_batches`` is true (it has ``postprocess_many``): then what is queued, and, while
        inference runs back to back (the last two results were produced within 1.5 inference times) and
        the post stage keeps up (its time per result is under an inference's), the results that follow
        until POST_BATCH or a deadline of 1.25 inference times for each result that could follow, set at the
        first. Why: on a CPU the runtime keeps every core busy and a decoder's time beside it costs the runtime
        about twice over (its threads wait for the core the decoder took); decoding four results in one vectorised call
        pays numpy's per-call cost once (measured on a shipped card in the README: 0.22 -> 0.09 ms a
        frame, its 1280x720 loop from 0.83 to 0.92 of the bare runtime). A result then waits at most
        3.75 inference times more; none waits when the source, or the sinks, are slower than inference;
        ``latest`` mode never waits."""
        batching = self.policy == "block" and bool(getattr(self.task, "decodes_in_batches", False))
        produced = -float("inf")  # when the previous result left the infer stage
        for item in self._items(self._q_post):
            batch = [item]
            back_to_back = item[3] - produced < 1.5 * self._infer_s
            produced = item[3]
            if batching:
                wait = self._wait_for_more(back_to_back)
                deadline = time.monotonic() + 1.25 * self._infer_s * (self.POST_BATCH - 1)
                while len(batch) < self.POST_BATCH and not self._abort.is_set():
                    left = deadline - time.monotonic() if wait else 0.0
                    # in steps of at most 0.1 s: an abort is noticed as promptly as in _items
                    nxt = self._q_post.get(timeout=min(left, 0.1)) if left > 0 else self._q_post.get_nowait()
                    if nxt is EMPTY and left > 0.1:
                        continue
                    if nxt is EMPTY or nxt is CLOSED:
                        break
                    batch.append(nxt)
                    produced = nxt[3]
            yield batch

    def _wait_for_more(self, back_to_back: bool) -> bool:
        """Whether the post stage waits for the results that follow: only while inference runs back to
        back and the post stage keeps up with it (else waiting would only delay results, or idle the
        slowest stage)."""
        return back_to_back and self._post_s < self._infer_s

    def _post_loop(self) -> None:
        want_image = any(getattr(s, "wants_image", False) for s in self.sinks)
        n = 0
        for batch in self._post_batches():
            t0 = time.perf_counter()
            if len(batch) == 1:
                results = [self.task.postprocess(batch[0][1], batch[0][0])]
            else:
                results = self.task.postprocess_many([b[1] for b in batch], [b[0] for b in batch])
            post_ms = (time.perf_counter() - t0) * 1e3 / len(batch)
            for (frames, _out, work_ms, _t), (record, payload) in zip(batch, results, strict=True):
                if self._abort.is_set():
                    return
                if len(batch) > 1:  # counted as delivered: one decoded with others, then abandoned, was counted twice
                    self.stats.count("decoded_in_batches")
                self._deliver(n, frames, record, payload, work_ms, post_ms, want_image)
                n += 1
            self._post_s = (time.perf_counter() - t0) / len(batch)

    def _deliver(self, n: int, frames: dict[str, Frame], record: dict[str, Any], payload: Any, work_ms: float,
                 post_ms: float, want_image: bool) -> None:
        """One decoded result: its timings (its result time is now: after the sinks of the results
        decoded with it before it), its record head, the point-cloud records, then every sink."""
        st = self.stats
        t_res = now_ns()
        st.stages["postprocess"].add(post_ms)
        prim = frames[self.primary]
        e2e = (t_res - prim.t_capture_ns) / 1e6
        st.e2e.add(e2e)
        st.waiting.add(max(0.0, e2e - work_ms - post_ms))
        head: dict[str, Any] = {"seq": n, "t_capture_ns": prim.t_capture_ns, "e2e_ms": round(e2e, 3),
                                "frames": {k: f.seq for k, f in frames.items()}}
        for k, f in frames.items():
            if k != self.primary and self._last_seq.get(k) != f.seq:
                self._last_seq[k] = f.seq
                self._delivered[k] = self._delivered.get(k, 0) + 1
        files = {k: Path(f.meta["file"]).name for k, f in frames.items() if isinstance(f.meta.get("file"), str)}
        if files:  # an image folder's frame numbers skip nothing its unreadable files took: name the files
            head["files"] = files
        res = Result(n, frames, {**head, **record}, payload, t_res, task_keys=frozenset(record))
        t1 = time.perf_counter()
        for sensor, fr in frames.items():
            if is_points(fr.data):
                res.record[sensor] = self._points_record(res, fr)
        if want_image:
            res._image = self._compose(res, e2e)
        for sink in self.sinks:
            try:
                sink.write(res)
            except EdgeError:
                raise
            except Exception as e:  # a user's sink: named (it was "postprocess failed", the stage it runs in)
                raise EdgeError(f"sink {getattr(sink, 'name', type(sink).__name__)}: write failed: "
                                f"{_reason(e)}") from e
            if getattr(sink, "quit", False):  # a display window's q / Esc
                self.stop()
        st.stages["sinks"].add((time.perf_counter() - t1) * 1e3)

    #: distinct skip reasons kept in the summary (a reason per frame would grow without bound)
    MAX_SKIP_REASONS = 16

    def _note_skip(self, why: str) -> None:
        """Count ``why`` under its shape (numbers as #: "only # LiDAR points ..."), the first wording kept."""
        import re

        key = re.sub(r"\d+(\.\d+)?", "#", why)
        shape = self._skip_shapes.get(key)
        if shape is None:
            if len(self._skip_shapes) >= self.MAX_SKIP_REASONS:
                shape = "(other reasons)"
            else:
                shape = self._skip_shapes[key] = why
        self.skip_reasons[shape] = self.skip_reasons.get(shape, 0) + 1

    def _with_rig(self, frames: dict[str, Frame]) -> dict[str, Frame]:
        """The frames with the run's rig (``--calib``) in their ``meta["rig"]``: what the user says the
        rig is wins over a source's own (kept as ``meta["rig_source"]``, e.g. KITTI's reference calib)."""
        out = {}
        for k, fr in frames.items():
            if not self.rig_met_image and is_image(fr.data):
                self.rig_met_image = True
            meta = dict(fr.meta)
            if meta.get("rig") is not None and meta["rig"] is not self.rig:
                meta["rig_source"] = meta["rig"]
            meta["rig"] = self.rig
            out[k] = dataclasses.replace(fr, meta=meta)
        return out

    def _check_rig(self, frames: dict[str, Frame]) -> None:
        """A DataError (the frame set's counted skip) when the frame set's rig states no image size and its
        principal point says it was made for an image of another size than the primary image (a KITTI object calib
        beside a half-size image): its projection, overlay and horizon would all land at the wrong scale."""
        from edge.data.rig import principal_point_problem

        rig = self._rig_for(frames)
        img = frames.get(self.primary)
        if rig is None or img is None or not is_image(img.data) or getattr(rig, "image_size", 0) is not None:
            return
        # four comparisons a frame set: nothing to keep between them (a cache by id(rig) answered a new rig with a
        # freed one's verdict)
        problem = principal_point_problem(rig.P, (int(img.data.shape[0]), int(img.data.shape[1])), sized=False)
        if problem:
            where = img.meta.get("file") or f"{self.primary} frame"
            raise DataError(f"{where}: the rig ({rig.source or 'given'}): {problem}")

    def _rig_for(self, frames: dict[str, Frame]) -> Any:
        """The rig a frame set carries (KITTI frames do), else the run's ``rig``."""
        for fr in frames.values():
            if fr.meta.get("rig") is not None:
                return fr.meta["rig"]
        return self.rig

    def _points_record(self, res: Result, fr: Frame) -> dict[str, Any]:
        """Point count, and (with a rig and an image as the primary frame) how many land in the image; the
        overlay draws them unless the model reads that scan (then its own ``draw`` shows it)."""
        rec: dict[str, Any] = {"points": len(fr.data)}
        img = res.frames.get(self.primary)
        rig = self._rig_for(res.frames)
        if rig is not None and img is not None and is_image(img.data) and len(fr.data) and res.projected is None:
            xyz = np.stack([fr.data["x"], fr.data["y"], fr.data["z"]], 1)
            uv, mask = rig.project(xyz, image_size=img.data.shape[:2])
            rec["in_image"] = int(mask.sum())
            if fr.sensor not in self.required:  # a scan the model reads is the model's to draw (its draw)
                res.projected = (uv[mask], np.linalg.norm(xyz[mask], axis=1))
        return rec

    def _compose(self, res: Result, e2e_ms: float) -> np.ndarray | None:
        """The overlay frame: the task's drawing, projected LiDAR points coloured by range, a caption."""
        from edge.stream.overlay import draw_caption, draw_points

        draw = getattr(self.task, "draw", None)  # optional for a user's task: the frame itself is shown
        img = draw(res) if callable(draw) else next((f.data for f in res.frames.values() if is_image(f.data)), None)
        if img is None:
            return None
        if any(img is fr.data for fr in res.frames.values()):  # never draw on a frame other sinks still read
            img = img.copy()
        if res.projected is not None:
            draw_points(img, *res.projected)
        draw_caption(img, f"{self.caption + '  ' if self.caption else ''}e2e {e2e_ms:.1f} ms")
        return img

    def _monitor(self, done: threading.Event) -> None:
        try:
            self._monitor_loop(done)
        except Exception:  # the monitor must never take the run down; the watchdog is lost, say so
            log.warning("stats monitor failed; watchdog and live stats stopped", exc_info=True)

    def _monitor_loop(self, done: threading.Event) -> None:
        console = None
        if self.live:
            from rich.console import Console

            console = Console(stderr=True)
        tick = 0
        self.stats.sample_rss()  # at the start and the end too: a run under a second had no RSS in its summary
        while not done.wait(0.25):
            tick += 1
            self._watchdog()
            if tick % 4 == 0:
                self.stats.sample_rss()
                for t in self._threads:
                    for s in t.source.sensors:
                        self.stats.set_count(f"dropped_{s}", self._slots[s].dropped)
                if console is not None:
                    console.print(self.stats.line(), end="\r", highlight=False, soft_wrap=True, markup=False)
        if console is not None:
            console.print(self.stats.line(), highlight=False, soft_wrap=True, markup=False)
        self.stats.sample_rss()
        for t in self._threads:
            for s in t.source.sensors:
                self.stats.set_count(f"dropped_{s}", self._slots[s].dropped)

    def _watchdog(self) -> None:
        now = time.monotonic_ns()
        for t in self._threads:
            src = t.source
            if not src.live or t.finished.is_set() or self._stop.is_set():
                continue
            if t.reopening:  # it found its stream lost itself and is opening it again
                continue
            limit = self._watchdog_limit(src)
            since = max(t.last_frame_ns, t.reopened_ns)  # a source that reopened and hangs is asked again
            if (now - since) / 1e9 > limit and self._stall_flag.get(id(t)) != since:
                self._stall_flag[id(t)] = since  # one request per quiet spell since a frame or a reopen
                if self._stall_counted.get(id(t)) != t.last_frame_ns:  # one count per outage (frames between)
                    self._stall_counted[id(t)] = t.last_frame_ns
                    self.stats.count("stalls")
                if t.lost_ns is None:  # not lost already since its last frame (that was said once, when it was)
                    log.warning("%s: no frame for %.1f s (watchdog)%s", src.spec, limit,
                                "; reconnecting" if src.reconnect else "")
                if src.reconnect:
                    src.request_reconnect()
