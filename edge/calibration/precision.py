"""Reduced-precision copies of every graph of a bundle being written, gated per program.

For each program the export includes (e.g. a streaming program = an encoder per frame + a temporal
head on a ring buffer, and a whole-clip program = one graph):

1. the fp32 program (the ONNX Runtime files just validated against PyTorch) is scored on the family's
   held-out samples, and run over the calibration samples while recording what each graph receives:
   those recordings are each graph's INT8 calibration set (an inner graph such as the temporal head is
   calibrated on the ring buffers the real program builds);
2. fp16: every graph converted (fp32 I/O kept, reductions in fp32, and the nodes fp16 cannot carry on the
   recorded evaluation feeds kept fp32: :func:`edge.calibration.fp16.fp16_form`), checked against PyTorch on
   them (refused as broken past :data:`FP16_BROKEN`), and the program gated on its metric like INT8;
3. int8: every graph quantized to QDQ and the *program* put through the accuracy gate
   (:mod:`edge.calibration.gate`), so the metric that must hold is the one of what ``edge run`` executes;
4. with ``--to openvino``, NNCF quantizes every graph natively from the same recordings (leaving in float
   the op types whose int8 kernels are slower on this CPU, timed: :mod:`edge.calibration.ov_pays`) and the
   OpenVINO program is gated the same way;
5. ONNX Runtime's own form (:func:`add_ort_int8`): uint8 asymmetric activations on the convolutions
   only, gated the same way, kept when every program passes and preferred by ONNX Runtime; the
   symmetric QDQ graphs of step 3 stay what TensorRT builds from and OpenVINO falls back to (gated on
   OpenVINO as well: :mod:`edge.calibration.openvino_qdq`).

Results land on each artifact and in ``manifest["programs"][name]["gates"]``, and in the export table.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration.datasets import FeedSet, SampleSet
from edge.calibration.gate import within_budget
from edge.calibration.ov_pays import ov_reason as _ov_reason
from edge.calibration.ov_pays import time_irs as _time_irs
from edge.calibration.quantize import MIN_INT8_DOT, short_dots
from edge.errors import DataError, ExportError, SpecError, first_line

PRECISIONS = ("fp32", "fp16", "int8")
#: an fp16 form whose outputs are further than this from PyTorch's (relative to each output's largest
#: magnitude) is broken, not imprecise, and refused; below it the task metric within the budget is the gate,
#: as for INT8: fp16 storage alone moved a trained camera-LiDAR refinement step's 6-vector 1-5 % (its 3
#: iterations then scored equal to fp32), while a conversion fault is NaN, inf or 100 %
FP16_BROKEN = 0.1
#: recorded feeds kept per graph: all of them up to this many bytes (then evenly thinned), 16..512 feeds
RECORD_BYTES = 256 << 20
MAX_FEEDS = 512
#: evaluation samples whose per-graph feeds are kept for parity and output-error checks
PARITY_SAMPLES = 4
#: held-out samples the gate scores when the export names no count, and the most it draws to resolve a
#: budget finer than one sample's step (:func:`samples_to_resolve`)
EVAL_SAMPLES = 40
EVAL_SAMPLES_MAX = 400
#: the largest --eval-size the resolution warning suggests (scoring more is the user's choice, not our advice)
EVAL_SAMPLES_LIMIT = 10_000


#: how an int8 failure ends: the export writes its bundle whole or not at all, so the fp32 graphs that passed
#: are not kept either ("no int8 artifact written" read as if they were)
NOTHING_WRITTEN = "nothing was written (a bundle is written whole); --precision fp32 exports it without int8"


def samples_to_resolve(quantum: Callable[[int], float], budget: float, lo: int = EVAL_SAMPLES,
                       hi: int = EVAL_SAMPLES_MAX) -> int:
    """The fewest samples in ``[lo, hi]`` over which one sample moves a stepped metric (``Metric.quantum``)
    by at most half of ``budget`` (``hi`` when none does). Why half: at a step equal to the budget one
    changed sample is already the verdict; at half of it the gate tells one sample from the budget."""
    if budget <= 0 or quantum(hi) > budget / 2:
        return hi
    while lo < hi:  # the step shrinks as samples are added
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if quantum(mid) <= budget / 2 else (mid + 1, hi)
    return lo


@dataclass
class PrecisionJob:
    """What the export asked for, and the state shared by the precision steps (recordings, scores)."""

    card: Any
    cfg: dict[str, Any]
    module: Any
    jobs: list[Any]  # edge.export.api.GraphJob, one per exported graph
    programs: list[str]
    precisions: list[str]
    calib: str = "synthetic"
    calib_size: int = 32
    #: None: :data:`EVAL_SAMPLES`, or as many as a stepped metric needs to resolve the budget (:meth:`eval_count`)
    eval_size: int | None = None
    max_drop: float = 1.0
    #: when set, the budget is this fraction of the fp32 metric instead (``--max-drop 5%``): an ADE in
    #: metres has no natural "points", 5 % of it does
    max_drop_rel: float | None = None
    method: str = "minmax"
    seed: int = 0
    say: Callable[[str], None] = lambda _m: None
    #: a quantization-aware checkpoint's trained input scales by layer name (``meta["qat_scales"]``): the
    #: symmetric INT8 form quantizes those layers' inputs with them (:mod:`edge.calibration.qat_scales`)
    qat_scales: dict[str, float] = field(default_factory=dict)
    #: score every exported program at each precision, also one whose card names another program's gates as
    #: its own (``ProgramSpec.gated_by``; ``edge-export --score-every-program``)
    score_every: bool = False
    #: labelled data specs the gate scores on instead of the held-out synthetic samples (``--eval-data``: what
    #: ``edge val --data`` takes, read by the family's own reader); None: the synthetic ones
    eval_data: list[str] | None = None
    _eval: Sequence[Any] | None = None
    _eval_described: str = ""
    _calib: SampleSet | None = None
    _recorded: dict[tuple[str, str], dict[str, list[dict[str, np.ndarray]]]] = field(default_factory=dict)
    _fp32: dict[str, float] = field(default_factory=dict)
    #: each program's scorings in order: (backend and options, value, every sample's metric item), for the drops'
    #: intervals (the gate scores its tries under temporary file names, so they are found by value, not by file)
    _scorings: dict[str, list[tuple[tuple[Any, ...], float, list[Any]]]] = field(default_factory=dict)
    _fp32_items: dict[str, list[Any]] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    def inherits(self) -> dict[str, str]:
        """Exported programs whose gates are another exported program's (``ProgramSpec.gated_by``): program ->
        the one gated for it. Empty under ``score_every``, and for a program whose gating one is not exported."""
        if self.score_every:
            return {}
        return {p: by for p in self.programs
                if (by := self.card.program(p).gated_by) is not None and by in self.programs}

    def scored(self) -> list[str]:
        """The programs each precision step scores on the task metric, in export order (:meth:`inherits`
        leaves out those whose gates are another's)."""
        skip = self.inherits()
        return [p for p in self.programs if p not in skip]

    def budget(self, fp32: float) -> float:
        """The allowed drop in metric units for a program whose fp32 metric is ``fp32``."""
        return self.max_drop if self.max_drop_rel is None else self.max_drop_rel * abs(fp32)

    def job(self, graph: str) -> Any:
        return next(j for j in self.jobs if j.name == graph)

    def eval_count(self) -> int:
        """The held-out samples the gate scores: ``--eval-size`` when given; else 40, or for a metric that
        moves in steps (``Metric.quantum``, such as a rate of frames within a tolerance) under an absolute
        budget, enough that one sample moves it by at most half the budget (an L2 rate over 40 samples moves
        2.5 points a sample, over a 1.0 budget: 200 samples), at most :data:`EVAL_SAMPLES_MAX`."""
        if self.eval_size is not None:
            return self.eval_size
        quantum = self.card.metric.quantum if self.card.metric is not None else None
        if (quantum is None or self.max_drop_rel is not None or self.max_drop <= 0
                or not [p for p in self.precisions if p != "fp32"]):
            return EVAL_SAMPLES  # (no sample count resolves a zero budget: any changed sample fails it)
        return samples_to_resolve(quantum, self.max_drop)

    def eval_samples(self) -> Sequence[Any]:
        if self._eval is None and self.eval_data:
            from edge.val import labelled_sets

            self._eval, parts = labelled_sets(self.card, self.cfg, self.eval_data, option="--eval-data")
            self._eval_described = "; ".join(parts)
        if self._eval is None:
            from edge.calibration.datasets import check_fits, held_bytes

            n = self.eval_count()
            check_fits(held_bytes(self.card.data.samples(self.cfg, "evaluation", 1, self.seed)), n, "--eval-size")
            self._eval = self.card.data.samples(self.cfg, "evaluation", n, self.seed)
            self._eval_described = f"{len(self._eval)} held-out synthetic samples"
        return self._eval

    def resolution(self, fp32: float) -> dict[str, Any]:
        """The gate's sample count and, for a stepped metric, one sample's step, with a warning when that
        step is over half the budget (the rule the default count follows, :func:`samples_to_resolve`): two
        samples a reduced precision worsens then fail the gate, one already when the step is over the
        budget (both judged by the gate's own :func:`~edge.calibration.gate.within_budget`). The warning's
        advice is one the user can take: a count that resolves the budget, that the family's evaluation data
        gave fewer samples than asked for, or that no count does."""
        n = len(self.eval_samples())
        out: dict[str, Any] = {"samples": n, **({"data": self._eval_described} if self._eval_described else {})}
        metric = self.card.metric
        if metric is None or metric.quantum is None:
            return out
        step, budget = float(metric.quantum(n)), self.budget(fp32)
        out["one_sample"] = step
        if budget > 0 and not within_budget(2 * step, budget):
            fails = "any sample a reduced precision worsens fails" if not within_budget(step, budget) else \
                "two samples a reduced precision worsens fail"
            big = max(n, EVAL_SAMPLES_LIMIT)
            need = samples_to_resolve(metric.quantum, budget, lo=n, hi=big)
            if self.eval_data:
                advice = (f"--eval-data names {n}; " + (f"no count up to {big} resolves it, a larger --max-drop does"
                                                        if float(metric.quantum(need)) > budget / 2 else
                                                        f"about {need} would resolve it, or a larger --max-drop"))
            elif n < self.eval_count():
                advice = f"the family's evaluation data gives only {n} of the {self.eval_count()} asked for"
            elif float(metric.quantum(need)) > budget / 2:
                advice = f"no --eval-size up to {big} resolves it; a larger --max-drop does"
            else:
                advice = f"--eval-size {need} resolves it"
            msg = (f"warning: one of the {n} evaluation samples moves the {metric.name} by {step:.3g}"
                   f"{metric.unit}, over half the gate's budget of {budget:.3g}{metric.unit}: {fails} the gate "
                   f"({advice})")
            if msg not in self._warned:  # said once, not once per program gated on the same samples
                self._warned.add(msg)
                self.say(msg)
        return out

    def calib_samples(self) -> SampleSet:
        if self._calib is None:
            from edge.calibration.datasets import load_samples
            from edge.models.contract import feeds_for

            # only the feeds the scored programs read (their graphs and host stages): not, say, a host-only
            # stage's inputs of a program whose gates are another's, which nothing records
            specs = [self.card.program(p) for p in self.scored()]
            with feeds_for({x for s in specs for x in (*s.graphs, *s.host_stages)}):
                try:
                    self._calib = load_samples(self.calib, self.card, self.cfg, size=self.calib_size,
                                               role="calibration", seed=self.seed)
                except DataError as e:  # what the family's preprocess said of a sample, named as --calib's
                    from edge.val import _split as split_spec  # as the readers split it (a comma in a name stays)

                    try:
                        raw = split_spec(str(self.calib))[0]
                    except DataError:
                        raw = str(self.calib)
                    named = {raw, str(Path(raw)), str(Path(raw).resolve())}  # as typed, normalised, absolute
                    msg = str(e)
                    if msg.startswith("--calib"):
                        raise
                    own = next((n for n in sorted(named, key=len, reverse=True) if n and msg.startswith(f"{n}:")), None)
                    if own is not None:  # about the set itself (too few samples, a video cut short): its own words,
                        raise DataError(f"--calib {self.calib}:{msg[len(own) + 1:]}") from None  # named as --calib's
                    if any(n and msg.startswith((f"{n}/", f"{n}{os.sep}")) for n in named):  # a file in it
                        raise DataError(f"--calib {self.calib}: {msg}") from None
                    raise DataError(f"--calib {self.calib}: model '{self.card.name}' cannot take these samples "
                                    f"({e})") from None
            self.say(f"calibrating on {len(self._calib)} samples from {self._calib.source}")
        return self._calib

    def program(self, pname: str, files: dict[str, str], backend: str = "onnxruntime", **options: Any) -> Any:
        """The family's program over model files (not yet in a bundle) on ``backend``."""
        from edge.program import Program
        from edge.runtimes import open_file

        spec = self.card.program(pname)
        rts: dict[str, Any] = {}
        try:
            for g in spec.graphs:
                rts[g] = open_file(backend, files[g], self.job(g).io, **options)
        except BaseException:
            for rt in rts.values():
                rt.close()
            raise
        return Program(spec, rts, self.cfg)

    def fp32_metric(self, pname: str, src: dict[str, str]) -> float:
        """The program's fp32 metric on the held-out samples (scored once, kept for every later step)."""
        if pname not in self._fp32:
            value = self.metric(pname, src)
            self._fp32_items[pname] = self._scorings[pname][-1][2]
            gated = [p.upper() if p == "int8" else p for p in self.precisions if p != "fp32"]
            if not math.isfinite(value) and gated:  # no budget can hold: say so before converting or quantizing
                raise ExportError(f"program '{pname}': the fp32 {self.card.metric.name} is {value} on the "
                                  f"{len(self.eval_samples())} evaluation samples, so no {' or '.join(gated)} form "
                                  "can be gated against it (export fp32 only, or fix the metric or the weights)")
            self._fp32[pname] = value
        return self._fp32[pname]

    def metric(self, pname: str, files: dict[str, str], backend: str = "onnxruntime", **options: Any) -> float:
        from edge.program import evaluate

        # a frame set the family refuses is named with the data and the program (as edge val names it)
        data = f"--eval-data {', '.join(self.eval_data)}" if self.eval_data else "the held-out samples"
        items: list[Any] = []
        with self.program(pname, files, backend, **options) as prog:
            score = evaluate(prog, self.card, self.eval_samples(), f"{data}: program '{pname}' on {backend}: ", items)
        value = float(score["value"])
        kept = self._scorings.setdefault(pname, [])
        kept.append((_scoring_key(backend, options), value, items))
        del kept[:-SCORINGS_KEPT]
        return value

    def drop_interval(self, pname: str, metric: float, backend: str = "onnxruntime",
                      **options: Any) -> list[float] | None:
        """The 95 % interval (:func:`edge.intervals.drop_interval`, paired over the same samples) of the drop against
        the program's fp32 of its form scored ``metric`` on ``backend`` with ``options``: the scoring of the program
        that gave that exact value there (the fp32's own left out when another did: a form that ties with fp32 is
        still itself). None when the fp32 or no such scoring is kept, and when several did whose intervals differ
        (a gate's later try reaching the same rate with other samples passing): which one the row is cannot be
        told, and another form's interval would be wrong."""
        from edge.intervals import drop_interval

        ref = self._fp32_items.get(pname)
        key = _scoring_key(backend, options)
        same = [items for k, v, items in self._scorings.get(pname, []) if k == key and v == metric]
        if ref is None or not same:
            return None
        same = [items for items in same if items is not ref] or same
        ends = {drop_interval(self.card.metric, ref, items) for items in same}
        if len(ends) != 1:
            return None
        (got,) = ends
        return None if got is None else [float(got[0]), float(got[1])]

    def record(self, pname: str, files: dict[str, str], role: str) -> dict[str, list[dict[str, np.ndarray]]]:
        """What each graph of the fp32 program receives over the calibration or evaluation samples."""
        key = (pname, role)
        if key not in self._recorded:
            calib = role == "calibration"
            sset = self.calib_samples() if calib else None
            seqs = sset.sequences if sset is not None else self.eval_samples()[:PARITY_SAMPLES]
            kept: dict[str, list[dict[str, np.ndarray]]] = {}
            with self.program(pname, files) as prog:
                for i, seq in enumerate(seqs):  # one at a time, thinned as it goes: a long set is not all kept
                    try:
                        feeds = prog.graph_feeds(self.card, [seq], preprocessed=calib)
                    except SpecError as e:  # a user's set of feeds the graph refuses (an index past its table)
                        if sset is None:
                            raise
                        where = sset.ids[i] if i < len(sset.ids) else sset.source
                        raise DataError(f"--calib {where}: {e}") from None
                    for g, got in feeds.items():
                        kept.setdefault(g, []).extend(got)
                        _thin(kept[g])
            if calib:  # a graph the program never ran on these samples has nothing to calibrate on: said here,
                # naming the set, not as the quantizer's "empty calibration set"
                never = [g for g in self.card.program(pname).graphs if not kept.get(g)]
                if never:
                    src = self.calib_samples()
                    raise ExportError(f"--calib {src.source}: program '{pname}' never ran graph '{never[0]}' on "
                                      f"the {len(seqs)} calibration samples, so its INT8 form has nothing to "
                                      f"calibrate on; give samples that reach it, or export without '{pname}' "
                                      "(--programs)")
            self._recorded[key] = {g: _evenly(v, _cap(v)) for g, v in kept.items()}
        return self._recorded[key]

    def step_ms(self, pname: str, files: dict[str, str], backend: str = "onnxruntime", n: int = 15,
                budget_s: float = 1.0, **options: Any) -> float:
        """Median latency of one program step (what ``edge run`` pays per input) on ``backend``: ``n`` timed
        steps, or as many as fit in ``budget_s`` (at least 3). The export's speed column is a guide per
        precision (``edge bench`` measures properly), and a fixed count made it most of an export's time for
        a model whose step is slow on a slow CPU (a tiny waveform model on a Zen 1 core pair: 0.4 s a step,
        8 rows, 53 of 105 s)."""
        sample = self.eval_samples()[0]
        with self.program(pname, files, backend, **options) as prog:
            feeds = [prog.preprocess(self.card, f) for f in sample]
            for f in feeds:
                prog.step(f)
            prog.step(feeds[-1])
            ts: list[float] = []
            end = time.perf_counter() + budget_s
            while len(ts) < n and (len(ts) < 3 or time.perf_counter() < end):
                t0 = time.perf_counter()
                prog.step(feeds[-1])
                ts.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(ts))


#: scorings of one program kept for the drops' intervals (a gate's node fallback scores a few dozen at most)
SCORINGS_KEPT = 64


def _scoring_key(backend: str, options: dict[str, Any]) -> tuple[Any, ...]:
    """The backend and runtime options of one scoring (a form scored on OpenVINO with bf16 float layers is not the
    same scoring as one on ONNX Runtime that happened to reach the same value)."""
    return (backend, tuple(sorted((k, repr(v)) for k, v in options.items())))


def _cap(feeds: list[dict[str, np.ndarray]]) -> int:
    """How many recorded feeds of one graph to keep: all of them up to ~256 MB (at least 16, at most 512).
    A program that calls a graph many times per input (a crop loop) would otherwise record gigabytes."""
    if not feeds:
        return 0
    size = sum(a.nbytes for a in feeds[0].values())
    return int(min(MAX_FEEDS, max(16, RECORD_BYTES // max(size, 1))))


def _thin(feeds: list[dict[str, np.ndarray]]) -> None:
    """Keep every other feed while more than twice the cap are held (bounded memory while recording)."""
    while len(feeds) > 2 * _cap(feeds):
        del feeds[1::2]


def _evenly(feeds: list[dict[str, np.ndarray]], n: int) -> list[dict[str, np.ndarray]]:
    if len(feeds) <= n:
        return feeds
    return [feeds[i] for i in np.linspace(0, len(feeds) - 1, n).round().astype(int)]


def parse_max_drop(value: float | str) -> tuple[float, float | None]:
    """``--max-drop``: a number in the metric's units, or ``"N%"`` of the fp32 metric -> (absolute, relative).

    A bad value is one line: ``--max-drop 'x': ...``.
    """

    text = str(value).strip()
    try:
        if text.endswith("%"):
            rel = float(text[:-1]) / 100.0
            if not math.isfinite(rel) or rel < 0:
                raise ValueError
            return float("inf"), rel
        v = float(text)
    except ValueError:
        raise ExportError(f"--max-drop '{value}': give a number in the metric's units (1.0) or a percentage of "
                          "the fp32 metric (5%)") from None
    if not math.isfinite(v):
        raise ExportError(f"--max-drop {value}: give a finite number of metric points (or a percentage)")
    if v < 0:  # a budget below 0 asks int8 to be better than fp32: it kept int8 only where it happened to be
        raise ExportError(f"--max-drop {value}: a drop budget is 0 or more (metric points, or a percentage)")
    return v, None


def check_request(job: PrecisionJob) -> None:
    """Everything about a precision request that can be checked before the export starts: the names,
    the budget, the family's metric and samples, the calibration source (its samples are loaded now
    and kept for the export, so a wrong .npz key is reported before any graph is written)."""

    bad = [p for p in job.precisions if p not in PRECISIONS]
    if bad:
        raise ExportError(f"--precision {bad}: choose from {', '.join(PRECISIONS)}")
    if not [p for p in job.precisions if p != "fp32"]:
        return
    for flag, n in (("--eval-size", job.eval_size), ("--calib-size", job.calib_size)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ExportError(f"{flag} {n!r}: give a whole number of samples, at least 1")
    if job.max_drop_rel is None and not math.isfinite(job.max_drop):
        raise ExportError(f"--max-drop {job.max_drop}: give a finite number of metric points (or a percentage)")
    if job.card.metric is None or job.card.data is None:
        raise ExportError(f"model '{job.card.name}' has no task metric or samples; fp16/int8 need them for the "
                          "accuracy gate")
    quantum = job.card.metric.quantum
    if quantum is not None:  # the card's function, called now: a broken one is one line before any export
        try:
            step = float(quantum(EVAL_SAMPLES))
        except Exception as e:  # a user's card function: any failure is reported the same way
            step, why = math.nan, f"raised {type(e).__name__}: {first_line(e)}"
        else:
            why = f"returned {step!r}"
        if not (math.isfinite(step) and step > 0):
            raise ExportError(f"model '{job.card.name}': metric quantum({EVAL_SAMPLES}) {why}; it must give one "
                              "sample's step as a finite number > 0 (edge.models.percent_per_sample for a rate)")
    if "int8" in job.precisions:
        from edge.calibration.quantize import METHODS

        if job.method not in METHODS:
            raise ExportError(f"--calib-method {job.method!r}: choose one of {', '.join(METHODS)}")
        from edge.calibration import ort_pays, ov_pays
        from edge.calibration.pays import timing_mode
        from edge.calibration.trt_int8 import enabled

        enabled()  # a bad EDGE_TRT_INT8_FORM (or timing mode) is one line now, not after the INT8 gates
        for env in (ort_pays.ENV, ov_pays.ENV):
            timing_mode(env)
        job.calib_samples()
    if job.eval_data:  # a bad --eval-data (a missing label file, an unknown option) fails now, before any export
        for _sample in job.eval_samples():  # and a bad frame in it: each loaded once (a reader's lazy ones let go)
            pass
        shared = shared_data(job.calib, job.eval_data) if "int8" in job.precisions else None
        if shared is not None:
            msg = (f"warning: --calib and --eval-data read from the same data ({shared}): where they share frames, "
                   "the INT8 gate scores samples it was calibrated on, which flatters what INT8 keeps; gate on data "
                   "held out from calibration")
            if msg not in job._warned:  # check_request runs again when the precisions are added: said once
                job._warned.add(msg)
                job.say(msg)


def shared_data(calib: str | os.PathLike[str], eval_data: list[str]) -> str | None:
    """Where ``--calib`` and an ``--eval-data`` spec may read the same frames (a path), None where they cannot:
    the same file or folder, or one's folder inside the other's (an image folder under a label file's folder). Two
    different label files do not share frames, even in one folder (a dataset's label files split its clips)."""
    from edge.val import _split as split_spec
    from edge.val import _synthetic

    def where(spec: str) -> tuple[Path, list[Path]] | None:
        head, opts = split_spec(spec)
        if not head or _synthetic(head) or not Path(head).exists():
            return None
        p = Path(head).resolve()
        trees = [p if p.is_dir() else p.parent]
        return p, trees + [Path(v).resolve() for v in opts.values() if v and Path(v).is_dir()]

    from edge.calibration.datasets import VIDEO_EXT

    mine = where(os.fspath(calib))
    if mine is None or Path(mine[0]).suffix.lower() in (".npz", ".npy"):
        return None
    if mine[0].suffix.lower() in VIDEO_EXT:  # a video's frames are in it, not in the folder beside it
        mine = (mine[0], [])
    for spec in eval_data:
        theirs = where(spec)
        if theirs is None:
            continue
        if mine[0] == theirs[0]:
            return str(mine[0])
        if mine[0].is_file() and theirs[0].is_file():
            continue
        for a in mine[1]:
            for b in theirs[1]:
                if a == b or b in a.parents or a in b.parents:
                    return str(a if b in a.parents or a == b else b)
    return None


def _fp32_files(w: Any, graphs: tuple[str, ...]) -> dict[str, str]:
    """The fp32 file ONNX Runtime runs for each graph (its lowering when the graph has one)."""
    out = {}
    for a in w.manifest["artifacts"]:
        if a["format"] == "onnx" and a["precision"] == "fp32" and a.get("graph") in graphs:
            out[a["graph"]] = str(w.path_for(a.get("lowered", {}).get("onnxruntime", a["file"])))
    return out


def _artifact(w: Any, graph: str, precision: str, fmt: str = "onnx") -> dict[str, Any] | None:
    """The graph's portable artifact at ``precision`` (not a backend's own form: an NNCF IR, the U8S8 ONNX)."""
    return next((a for a in w.manifest["artifacts"] if a.get("graph") == graph and a.get("precision") == precision
                 and a["format"] == fmt and not a.get("preferred_by")), None)


def _gate_record(w: Any, pname: str, backend: str, precision: str, rec: dict[str, Any]) -> None:
    w.manifest["programs"][pname].setdefault("gates", {}).setdefault(backend, {})[precision] = rec


def add_precisions(w: Any, report: dict[str, Any], job: PrecisionJob) -> None:
    """Write the requested fp16/int8 copies of every graph into the bundle writer ``w`` (ONNX Runtime)."""
    check_request(job)
    wanted = [p for p in job.precisions if p != "fp32"]
    if not wanted:
        return
    card = job.card
    mname = card.metric.name
    rows = []
    for pname in job.scored():
        spec = card.program(pname)
        src = _fp32_files(w, spec.graphs)
        job.say(f"{pname}: scoring fp32 on {len(job.eval_samples())} "
                f"{'labelled' if job.eval_data else 'held-out'} samples")
        fp32 = job.fp32_metric(pname, src)
        for g in spec.graphs:
            art = _artifact(w, g, "fp32")
            art.setdefault("metric", {"name": mname, "program": pname, "value": fp32})
        _gate_record(w, pname, "onnxruntime", "fp32", {"metric": fp32, **job.resolution(fp32)})
        rows.append(_row(w, job, pname, "fp32", src, fp32, 0.0,
                         max(_artifact(w, g, "fp32")["parity"]["max_rel"] for g in spec.graphs)))
        ev = job.record(pname, src, "evaluation")
        for prec in wanted:
            make = _fp16 if prec == "fp16" else _int8
            metric, worst, files = make(w, job, pname, src, ev, fp32)
            drop = card.metric.drop(fp32, metric)
            for g in spec.graphs:
                art = _artifact(w, g, prec)
                art.setdefault("metric", {"name": mname, "program": pname, "value": metric, "fp32": fp32,
                                          "drop": drop, "max_drop": job.budget(fp32)})
            _gate_record(w, pname, "onnxruntime", prec, {"metric": metric, "fp32": fp32, "drop": drop,
                                                         "max_drop": job.budget(fp32)})
            rows.append(_row(w, job, pname, prec, files, metric, drop, worst))
    report["precisions"] = rows


def _fp16(w: Any, job: PrecisionJob, pname: str, src: dict[str, str], ev: dict[str, list[dict[str, np.ndarray]]],
          fp32: float) -> tuple[float, float, dict[str, str]]:
    """The fp16 copy of each graph of ``pname`` (once per graph: programs share graphs): the nodes fp16 cannot
    carry on the evaluation feeds kept fp32 (:func:`~edge.calibration.fp16.fp16_form`), refused past
    :data:`FP16_BROKEN` from PyTorch on ONNX Runtime or in the fp16-storage emulation, and the program gated on
    its metric; returns (metric, worst parity, files)."""
    from edge.calibration.fp16 import fp16_form
    from edge.export.api import artifact_name
    from edge.parity import changed_share, fp16_rel, torch_outputs

    card, mname = job.card, job.card.metric.name
    files: dict[str, str] = {}
    spec = card.program(pname)
    worst = 0.0
    for g in spec.graphs:
        gj = job.job(g)
        fname = f"{gj.stem}.fp16.onnx"
        files[g] = str(w.path_for(fname))
        if _artifact(w, g, "fp16") is not None:  # a graph two programs share is converted once
            worst = max(worst, _artifact(w, g, "fp16")["parity"]["max_rel"])
            continue
        if not ev[g]:  # converted unchecked, it would first run on the car (as INT8, which needs feeds to calibrate)
            raise ExportError(f"program '{pname}' never ran graph '{g}' on the evaluation samples its parity is "
                              "checked on, so its fp16 form cannot be checked; give evaluation data that reaches it "
                              f"(--eval-data), or export without '{pname}' (--programs)")
        # the nodes fp16 cannot carry on these inputs stay fp32 (a form judged as TensorRT runs it)
        emu = w.path_for(f".int8-src/{gj.stem}.fp16.emulation.onnx")
        emu.parent.mkdir(exist_ok=True)
        h_src, h_att = _reduced_source(w, gj, src[g], job.seed)
        try:
            info = fp16_form(h_src, files[g], ev[g], emulation=emu)
        except ExportError as e:
            raise ExportError(f"{g} fp16: {e}; export without fp16") from None
        ref = [torch_outputs(gj.module, gj.io, f) for f in ev[g][:PARITY_SAMPLES]]
        got = {run: [_run(p, gj.io, f) for f in ev[g][:PARITY_SAMPLES]]
               for run, p in (("onnxruntime", files[g]), ("emulation", str(emu)))}
        on = {run: max([0.0, *(fp16_rel(r, o) for r, o in zip(ref, outs, strict=True))])
              for run, outs in got.items()}
        err = max(on.values())
        changed = max([0.0, *(changed_share(r, o) for outs in got.values()
                              for r, o in zip(ref, outs, strict=True))])
        if not err <= FP16_BROKEN:
            raise ExportError(f"{g} fp16: rel error {err:.2e} vs PyTorch above {FP16_BROKEN:g} with "
                              f"{len(info['kept_fp32_nodes'])} nodes kept fp32 (broken, not imprecise); "
                              "nothing was written")
        worst = max(worst, err)
        w.register(fname, "onnx")
        w.add_artifact({"name": artifact_name("onnx", "fp16", g), "format": "onnx", "file": fname,
                        "graph": g, "precision": "fp16",
                        "attention": _reduced_attention(_artifact(w, g, "fp32"), h_att),
                        "derived_from": _artifact(w, g, "fp32")["file"], "quantization": info,
                        "parity": {"reference": "torch eager", "max_rel": err, **on,
                                   "changed_share": changed}})
    metric = job.metric(pname, files)
    drop = card.metric.drop(fp32, metric)
    if not within_budget(drop, job.budget(fp32)):
        raise ExportError(f"{pname} fp16: {mname} {metric:.4g} against fp32's {fp32:.4g} (drop {drop:.3g}) misses "
                          f"the --max-drop {job.budget(fp32):.3g} budget; nothing was written")
    return metric, worst, files


def inherit_gates(w: Any, report: dict[str, Any], job: PrecisionJob) -> None:
    """Record, for each program whose gates are another's (:meth:`PrecisionJob.inherits`), every gate that
    program got, as inherited: whether it passed and was kept, not its metric (a figure of the other program).
    Its forms are the same files, chosen per graph, so the other program's verdict is what ``edge run`` gets
    for it; the report lists it (``inherited_gates``) so the summary says which programs were not scored."""
    inherited = job.inherits()
    if not inherited or not [p for p in job.precisions if p != "fp32"]:
        return
    for child, parent in inherited.items():
        gates = w.manifest["programs"][parent].get("gates", {})
        w.manifest["programs"][child]["gates"] = {
            backend: {form: {"inherited_from": parent, **{k: rec[k] for k in ("passed", "kept", "format")
                                                         if k in rec}}
                      for form, rec in forms.items()}
            for backend, forms in gates.items()}
    report["inherited_gates"] = dict(inherited)


def _run(path: str, io: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from edge.runtimes import open_file

    rt = open_file("onnxruntime", path, io)
    try:
        return rt.infer(feeds)
    finally:
        rt.close()


def _row(w: Any, job: PrecisionJob, pname: str, prec: str, files: dict[str, str], metric: float, drop: float,
         parity_rel: float, backend: str = "onnxruntime", **options: Any) -> dict[str, Any]:

    return {"program": pname, "precision": prec, "backend": backend,
            "files": [Path(f).name for f in files.values()], "metric": metric, "drop": drop,
            "drop_ci95": job.drop_interval(pname, metric, backend, **options) if prec != "fp32" else None,
            "parity_rel": parity_rel, "step_ms": job.step_ms(pname, files, backend, **options),
            "bytes": sum(Path(f).stat().st_size + (Path(f).with_suffix(".bin").stat().st_size
                                                   if f.endswith(".xml") else 0) for f in files.values())}


def _int8(w: Any, job: PrecisionJob, pname: str, src: dict[str, str],
          ev: dict[str, list[dict[str, np.ndarray]]], fp32: float) -> tuple[float, float, dict[str, str]]:
    """Quantize the program's graphs through the gate; (metric, worst output error, files).

    A graph another program already quantized (and gated) stays as it is: the gate only quantizes,
    and only excludes nodes of, this program's new graphs, scoring the program with both; a program
    whose graphs were all quantized before is still held to the budget.
    """
    from edge.calibration.gate import GateGraph, qdq_quantizer, quantize_with_gate
    from edge.export.api import artifact_name

    spec = job.card.program(pname)
    files = {g: str(w.path_for(f"{job.job(g).stem}.int8.onnx")) for g in spec.graphs}
    new = [g for g in spec.graphs if _artifact(w, g, "int8") is None]
    # the program runs the shared graphs' INT8 too: its row's parity is the worst of all it runs (a review: a
    # program whose graphs another had quantized read 0.0, one that shared some read only its new graphs')
    shared = max([0.0, *(_artifact(w, g, "int8")["parity"]["max_rel"] for g in spec.graphs if g not in new)])
    if not new:
        metric = job.metric(pname, files)
        drop = job.card.metric.drop(fp32, metric)
        if not within_budget(drop, job.budget(fp32)):
            raise ExportError(f"{pname} int8 (its graphs were quantized for another program): "
                              f"{job.card.metric.name} {metric:.2f} vs fp32 {fp32:.2f}, drop {drop:.2f} > --max-drop "
                              f"{job.budget(fp32):.3g}; {NOTHING_WRITTEN}")
        return metric, shared, files
    cal = job.record(pname, src, "calibration")
    cset = job.calib_samples()
    graphs, q_att, trained = {}, {}, {}
    for g in new:
        gj = job.job(g)
        q_src, q_att[g] = _reduced_source(w, gj, src[g], job.seed)
        graphs[g] = GateGraph(q_src, files[g], gj.io, _calib_feeds(cal[g], cset), ev[g][:PARITY_SAMPLES])
        if job.qat_scales:
            trained[g] = _trained_scales(job, g, q_src, cal[g])
    gate = quantize_with_gate(graphs, lambda fs: job.metric(pname, {**files, **fs}), fp32_metric=fp32,
                              max_drop=job.budget(fp32), method=job.method, drop=job.card.metric.drop,
                              progress=job.say,
                              quantizer=qdq_quantizer(job.method, trained={g: t["tensors"] for g, t in trained.items()
                                                                           if t}))
    if not gate.passed:
        tries = "; ".join(f"{sum(len(v) for v in t['excluded'].values())} fp32 nodes -> {t['metric']:.2f} "
                          f"(drop {t['drop']:.2f})" for t in gate.tries)
        raise ExportError(f"{pname} int8 misses the --max-drop {job.budget(fp32):.3g} budget in every try ({tries}); "
                          f"{NOTHING_WRITTEN}")
    assert gate.chosen is not None
    unquantizable = {g: _nothing_to_quantize(graphs[g].src) for g in new}
    counts = {g: _dequantize_count(files[g]) for g in new}  # warned below, unless the program is refused
    if len(new) == len(spec.graphs) and not any(counts.values()):
        # an int8 program that is fp32 is not what was asked for: the gate passed with every node in float, or
        # the graphs hold nothing int8 quantizes (no Conv, MatMul or Gemm but short dot products)
        budget = job.budget(fp32)
        short = sum(len(short_dots(graphs[g].src)) for g in new)
        if gate.chosen["excluded"]:
            why = (f"meets the --max-drop {budget:.3g} budget only with every node left in float (a larger "
                   "--max-drop, or fp32)")
        elif any(v is None for v in unquantizable.values()):
            why = "was written with no int8 node by the quantizer"
        elif short:
            why = (f"has no node int8 quantizes: its {short} MatMul/Gemm all sum fewer than {MIN_INT8_DOT} terms, "
                   "which stay float in every INT8 form, and it has no other Conv, MatMul or Gemm; export it in fp32")
        else:
            why = "has no node int8 quantizes (Conv, MatMul, Gemm); export it in fp32"
        raise ExportError(f"{pname} int8 {why}, so nothing would run in int8; {NOTHING_WRITTEN}")
    for g in new:
        gj = job.job(g)
        fname = f"{gj.stem}.int8.onnx"
        quantized = counts[g]
        if not quantized:
            _warn_float(job, g, "int8 (symmetric QDQ)",
                        unquantizable[g] or ("to meet the budget" if gate.chosen["excluded"].get(g) else None))
        w.register(fname, "onnx")
        fp32_art = _artifact(w, g, "fp32")
        w.add_artifact({"name": artifact_name("onnx", "int8", g), "format": "onnx", "file": fname, "graph": g,
                        "precision": "int8",
                        "attention": _reduced_attention(fp32_art, q_att[g]),
                        "derived_from": fp32_art.get("lowered", {}).get("onnxruntime", fp32_art["file"]),
                        "parity": {"reference": "fp32 ONNX Runtime", "max_rel": gate.chosen["output_rel_error"][g]},
                        "quantization": {"format": "qdq", "method": job.method, "calibration": cset.source,
                                         # TensorRT's placement: Conv/MatMul/Gemm inputs only (quantize_int8)
                                         "outputs_quantized": False,
                                         "calibration_samples": len(cset), "calibration_feeds": len(cal[g]),
                                         "excluded_nodes": gate.chosen["excluded"].get(g, []),
                                         "dequantize_nodes": quantized, "program": pname, "tries": gate.tries,
                                         **({"trained_scales": trained[g]} if trained.get(g) else {})}})
    return float(gate.chosen["metric"]), max(shared, *gate.chosen["output_rel_error"].values()), files


def _trained_scales(job: PrecisionJob, graph: str, src: str, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The checkpoint's trained scales that apply to ``graph`` (:func:`~edge.calibration.qat_scales.tensor_scales`
    on the first calibration feeds), said when there are any: a layer left to calibration is worth a line."""
    from edge.calibration.qat_scales import MATCH_FEEDS, describe, tensor_scales

    gj = job.job(graph)
    found, missed = tensor_scales(src, gj.module, gj.io, feeds[:MATCH_FEEDS], job.module, job.qat_scales)
    if not found and not missed:
        return {}
    job.say(f"note: int8 {graph}: {len(found)} input(s) take the checkpoint's trained scales"
            + (f"; {len(missed)} trained layer(s) matched no tensor and are calibrated: {', '.join(missed[:4])}"
               if missed else ""))
    return describe(found, missed)


def _say_if_float(job: PrecisionJob, path: str, graph: str, form: str, why: str | None = None) -> int:
    """The graph's DequantizeLinear count, and a warning when it is 0: ``why`` says what left every node in
    float (the gate's fallback, to meet the budget; no int8 node faster here; nothing int8 quantizes), so
    this "int8" graph runs in fp32 (the artifact stays: its program passed with it; the record and the
    export's output say what it is)."""
    n = _dequantize_count(path)
    if n == 0:
        _warn_float(job, graph, form, why)
    return n


def _dequantize_count(path: str) -> int:
    """How many DequantizeLinear nodes the ONNX file at ``path`` has (0: nothing in it runs in int8)."""
    import onnx

    return sum(node.op_type == "DequantizeLinear" for node in onnx.load(path, load_external_data=False).graph.node)


def _warn_float(job: PrecisionJob, graph: str, form: str, why: str | None) -> None:
    """Say that ``graph``'s ``form`` has every node in float and why (a separate step, so a program refused
    for being all float is refused without a warning per graph printed first)."""
    job.say(f"warning: {graph} {form}: every node left in float {why or '(the quantizer wrote no int8 node)'}; "
            "this graph runs in fp32 in the int8 program")


def _nothing_to_quantize(src: str) -> str | None:
    """Why the symmetric QDQ form has no node to quantize in ``src`` (None when it has some): no Conv, MatMul
    or Gemm at all, or only dot products too short for int8 (:func:`~edge.calibration.quantize.short_dots`)."""
    from edge.calibration.gate import candidate_nodes

    if candidate_nodes(src):
        return None
    if short_dots(src):
        return f"because its MatMul/Gemm nodes all sum fewer than {MIN_INT8_DOT} terms (kept float in every INT8 form)"
    return "because it has no Conv, MatMul or Gemm"


def _ort_pays(job: PrecisionJob, graph: str, src: str, io: Any, fs: FeedSet) -> tuple[list[str], dict[str, Any]]:
    """The Convs of ``graph`` ONNX Runtime's INT8 form keeps in float because their int8 kernel is slower on
    this CPU (:func:`edge.calibration.ort_pays.choose_float_convs`), and the timing record; said in one line."""
    import tempfile

    from edge.calibration.ort_pays import TIMING_FEEDS, choose_float_convs
    from edge.calibration.quantize import quantize_int8

    few = FeedSet(fs.feeds[:TIMING_FEEDS], fs.source, fs.role, fs.ids[:TIMING_FEEDS])

    def write(exclude: Sequence[str], dst: Path) -> None:
        quantize_int8(src, dst, few, method=job.method, op_types=ORT_INT8_OPS, activations=ORT_INT8_ACTIVATIONS,
                      exclude=exclude)

    with tempfile.TemporaryDirectory(prefix="edge-ort-pays-") as tmp:
        keep, rec = choose_float_convs(write, src, io, fs.feeds[0], Path(tmp))
    again = rec.get("confirm")
    if again and not again["kept"]:
        from edge.calibration.pays import CONFIRM_MARGIN

        job.say(f"{graph}: onnxruntime int8 keeps every Conv in float: its fastest int8 form was not "
                f"{CONFIRM_MARGIN:.0%} faster than fp32 when timed again ({_ms(again['ms'])} vs fp32 "
                f"{_ms(again['fp32_ms'])})")
    elif rec["candidates"]:
        best = rec["candidates"][rec["chosen"]]
        job.say(f"{graph}: onnxruntime int8 keeps {len(keep)} of {len(rec['depths'])} Conv(s) in float, the "
                f"fastest here ({_ms(best['ms'])} vs fp32 {_ms(rec['fp32_ms'])}; every Conv int8 "
                f"{_ms(rec['candidates'][0]['ms'])})")
    return keep, rec


def _float_if_faster(job: PrecisionJob, w: Any, pname: str, graph: str, symmetric: str, src: str, fs: FeedSet,
                     files: dict[str, str], infos: dict[str, dict[str, Any]],
                     timing: dict[str, dict[str, Any]]) -> None:
    """A graph with no Conv beside U8S8 ones: ONNX Runtime's int8 program runs its symmetric INT8 graph, unless
    that is slower here than fp32 (:func:`edge.calibration.ort_pays.symmetric_pays`); then the form takes a
    copy of the fp32 graph for it (in ``files``, with its record), gated with the program like the rest."""
    from edge.calibration.ort_pays import symmetric_pays
    from edge.calibration.pays import CONFIRM_MARGIN

    gj = job.job(graph)
    pays, rec = symmetric_pays(symmetric, src, gj.io, fs.feeds[0])
    if pays:
        return
    import onnx

    files[graph] = str(w.path_for(f"{gj.stem}.int8-u8s8.onnx"))
    onnx.save(onnx.load(src), files[graph])  # weights inline, as the quantized graphs are written
    timing[graph] = rec
    infos[graph] = {"format": "onnx", "activations": ORT_INT8_ACTIVATIONS, "symmetric": False, "op_types": [],
                    "method": job.method, "calibration": fs.source, "calibration_samples": len(job.calib_samples()),
                    "calibration_feeds": len(fs), "program": pname, "float_for_speed": "the whole graph",
                    "speed": rec, "excluded_nodes": [], "output_rel_error": 0.0, "tries": []}
    again = rec.get("confirm")
    if again:
        job.say(f"{graph}: onnxruntime int8 runs it in fp32 ({_ms(again['fp32_ms'])}; its symmetric int8 "
                f"{_ms(again['ms'])} when timed again, not {CONFIRM_MARGIN:.0%} faster)")
    else:
        job.say(f"{graph}: onnxruntime int8 runs it in fp32 ({_ms(rec['fp32_ms'])}; its symmetric int8 "
                f"{_ms(rec['symmetric_ms'])})")


def _ms(t: float | None) -> str:
    """A timing for a message: "3.33 ms", or "could not run" (a candidate ONNX Runtime refused)."""
    return "could not run" if t is None else f"{t:.3g} ms"


def _unconfirmed_why(form: str, again: dict[str, Any], extra: str = "") -> str:
    """Why a graph stays float when its int8 ``form`` was not confirmed faster than fp32 in a second timing
    (``again``: :func:`edge.calibration.pays.confirm_faster`'s record), for an export warning; ``extra`` goes
    inside the parentheses."""
    from edge.calibration.pays import CONFIRM_MARGIN

    return (f"because {form} was not {CONFIRM_MARGIN:.0%} faster than fp32 on this CPU when timed again "
            f"(fp32 {_ms(again['fp32_ms'])}, int8 {_ms(again['ms'])}{extra})")


def _slower_why(rec: dict[str, Any]) -> str | None:
    """Why a U8S8 graph with no int8 node was chosen for speed, or None when that was not the reason."""
    cands = rec.get("candidates") or []
    if not rec.get("float_graph") and (not cands or cands[rec["chosen"]]["float_convs"] < len(rec["depths"])):
        return None
    again = rec.get("confirm")
    if again and not again["kept"]:
        return _unconfirmed_why("its symmetric int8" if rec.get("float_graph") else "its fastest int8 form", again)
    if rec.get("float_graph"):
        return (f"because its symmetric int8 was slower on this CPU (fp32 {_ms(rec['fp32_ms'])}, int8 "
                f"{_ms(rec['symmetric_ms'])})")
    return (f"because no int8 Conv was faster on this CPU (fp32 {_ms(rec['fp32_ms'])}, every Conv int8 "
            f"{_ms(cands[0]['ms'])})")


def _calib_feeds(feeds: list[Any], cset: Any) -> FeedSet:
    """One graph's recorded calibration feeds as a FeedSet, with how many samples of ``cset`` made them (a
    program's runner feeds a graph several times a sample: the record says both)."""
    return FeedSet(feeds, cset.source, "calibration", [f"{i}" for i in range(len(feeds))], len(cset))


def _reduced_source(w: Any, gj: Any, src: str, seed: int) -> tuple[str, str]:
    """The fp32 graph to quantize or convert to fp16, and its attention form.

    ONNX Runtime 1.32 only fuses QDQ Conv into QLinearConv through its S8->U8 transformer, which
    breaks on opset >= 21 graphs (our plugin lowering is opset 23), so those sessions must run without
    it and their int8 Convs stay fp32 behind DequantizeLinear: measured 52 ms vs 32 ms on a 5-stage
    CNN + attention video model. An opset-23 source is therefore re-exported in ``decomposed`` form
    (opset 20) for the symmetric INT8 form, once per export (the second export of a tiny video model took 12
    of an INT8 export's 50 s on a Zen 1 core pair). ONNX Runtime's own U8S8 form quantizes the lowered graph
    itself: uint8 activations need no S8->U8 rewrite, and the fused Attention kernel stays.

    The fp16 copy comes from the same source for TensorRT's sake: it is what ``edge build --precision fp16``
    builds, and the lowering ONNX Runtime runs (opset 23, whose ``Attention`` TensorRT parses from 10.14 on)
    is the only form of a plugin graph ONNX Runtime can convert and check; the decomposed re-export builds on
    every TensorRT and runs everywhere (the fp16 copy of a plugin graph was that lowering, recorded as the
    plugin). :func:`drop_reduced_sources` removes these files when the reduced precisions are written.
    """
    import onnx

    from edge.runtimes.onnxruntime import S8U8_BROKEN_FROM_OPSET, default_opset

    if default_opset(onnx.load(src, load_external_data=False)) < S8U8_BROKEN_FROM_OPSET:
        return src, "same as fp32"
    from edge.export.onnx_export import export_onnx
    from edge.ops.attention import export_mode

    path = w.path_for(f".int8-src/{gj.stem}.decomposed.onnx")  # inside the temp bundle; removed after
    if path.is_file():
        return str(path), "decomposed"
    with export_mode("decomposed"):
        export_onnx(gj.module, gj.example, gj.io, path, opset=20)
    return str(path), "decomposed"


def _reduced_attention(fp32_art: dict[str, Any], form: str) -> str:
    """The attention form a reduced copy records: its fp32 graph's, unless :func:`_reduced_source` re-exported
    it decomposed and that graph has attention at all (a graph without it stays ``none``)."""
    return fp32_art["attention"] if form == "same as fp32" or fp32_art.get("attention") == "none" else form


def drop_reduced_sources(w: Any) -> None:
    """The reduced precisions' scratch files (the re-exported INT8 sources of :func:`_reduced_source`, the fp16
    forms' emulations) out of the bundle being written: not part of it."""
    shutil.rmtree(w.tmp / ".int8-src", ignore_errors=True)


def _all_or_none(job: PrecisionJob, results: list[dict[str, Any]], files: list[Any], what: str,
                 instead: str) -> list[str]:
    """A backend's own INT8 form is kept only when every program passed its gate: artifacts are chosen per
    graph and programs share graphs, so a file one program passed with and another failed with cannot be
    kept for one only. On any failure the form's ``files`` are deleted and each failing program is named;
    returns the failed programs (the caller writes the gate records, ``kept: false``)."""
    failed = [r["program"] for r in results if not r["passed"]]
    if failed:
        for f in files:
            Path(f).unlink(missing_ok=True)
        for r in results:
            if not r["passed"]:
                job.say(f"warning: {r['program']} {what}: {job.card.metric.name} {r['metric']:.3g} vs fp32 "
                        f"{r['fp32']:.3g}, drop {r['drop']:.3g} > --max-drop {r['max_drop']:.3g}; not kept "
                        f"({instead})")
    return failed


def _nncf_gate(job: PrecisionJob, pname: str, files: dict[str, str], fp32: float,
               hints: Sequence[str] | None = None) -> dict[str, Any]:
    """One program's NNCF IRs on the task metric: with bf16 float layers where this CPU computes bf16
    natively (what OpenVINO picks there by itself, and 1.2-1.3x faster than f32 float layers around the
    int8 convolutions on the shipped video model), f32 when that misses the budget or the CPU has no bf16.
    The hint that passed is recorded, and :func:`edge.runtimes.openvino.load` runs with it by default."""
    from edge.runtimes.openvino import resolve_precision

    budget = job.budget(fp32)
    hints = list(hints or dict.fromkeys([resolve_precision("auto"), "f32"]))
    for hint in hints:
        metric = job.metric(pname, files, "openvino", inference_precision=hint)
        drop = job.card.metric.drop(fp32, metric)
        if within_budget(drop, budget) or hint == hints[-1]:
            break
        job.say(f"{pname}: NNCF int8 with bf16 float layers: {job.card.metric.name} drop {drop:.3g} > "
                f"{budget:.3g}; measuring with f32 float layers")
    return {"program": pname, "files": files, "metric": metric, "fp32": fp32, "drop": drop, "max_drop": budget,
            "passed": within_budget(drop, budget), "inference_precision": hint}


def _ov_pays(job: PrecisionJob, graph: str, src: str, io: Any, fs: FeedSet) -> tuple[list[str], dict[str, Any]]:
    """The OpenVINO op types NNCF leaves in float for ``graph`` because their int8 kernels are slower on this
    CPU (:func:`edge.calibration.ov_pays.choose_float_types`, timed with NNCF's default scheme), and the timing
    record; said in one line when anything is left in float."""
    import tempfile

    from edge.calibration.nncf_int8 import nncf_quantize_ir
    from edge.calibration.ov_pays import TIMING_FEEDS, choose_float_types
    from edge.calibration.pays import CONFIRM_MARGIN

    few = FeedSet(fs.feeds[:TIMING_FEEDS], fs.source, fs.role, fs.ids[:TIMING_FEEDS])

    def write(types: Sequence[str], dst: Path) -> None:
        nncf_quantize_ir(src, str(dst), few, io, transformer=False, float_types=types)

    with tempfile.TemporaryDirectory(prefix="edge-ov-pays-") as tmp:
        types, rec = choose_float_types(write, src, io, fs.feeds[0], Path(tmp))
    if rec.get("float_graph"):
        again = rec["confirm"]
        job.say(f"{graph}: openvino int8 (NNCF) keeps every op in float: its fastest int8 form was not "
                f"{CONFIRM_MARGIN:.0%} faster than fp32 when timed again ({_ms(again['ms'])} vs fp32 "
                f"{_ms(again['fp32_ms'])}; every op int8 {_ms(rec['rungs'][0]['ms'])})")
    elif types:
        best = rec["rungs"][rec["chosen"]]
        job.say(f"{graph}: openvino int8 (NNCF) keeps {', '.join(types)} in float, the fastest here "
                f"({_ms(best['ms'])} vs fp32 {_ms(rec['fp32_ms'])}; every op int8 {_ms(rec['rungs'][0]['ms'])})")
    return types, rec


def _nncf_float_why(info: dict[str, Any]) -> str:
    """Why an NNCF IR quantizes nothing, from its record: no int8 form was confirmed faster here
    (:func:`_ov_pays`), NNCF found nothing to quantize, or the gate's fallback left every node float."""
    speed = info.get("speed") or {}
    if speed.get("float_graph"):
        return _unconfirmed_why("its fastest int8 form", speed["confirm"],
                                f"; every op int8 {_ms(speed['rungs'][0]['ms'])}")
    if info.get("ignored"):
        return "to meet the budget"
    return "because NNCF found nothing to quantize in it"


def _nncf_schemes(w: Any, gj: Any, src: str, fs: FeedSet, float_types: Sequence[str] = (),
                  schemes: Sequence[str] = ("transformer", "default"),
                  ) -> tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]] | None]:
    """One graph quantized by NNCF both ways (``schemes``), the op types ``float_types`` left in float in
    both: ``(path, info)`` of the faster and of the other (None when OpenVINO cannot compile the other or
    only one scheme was asked for; every one refused is one line).

    NNCF's transformer scheme (SmoothQuant, and the float patterns it keeps around softmax and layer norm)
    is what it recommends for attention, its default one for CNNs, and a graph here is often both: on the
    shipped video model's whole-clip graph (a CNN over 3 frames + an attention head) the default scheme
    ran 2-5 % faster on OpenVINO with the same accuracy. So both are built and timed on this machine with
    the float-layer precision the gate tries first, each on a recorded calibration feed, in interleaved
    rounds; the faster is gated; when that is the default one and misses the budget, the transformer one
    is the fallback (so no program does worse than before the choice). Which one won and the times are
    recorded in the artifact."""
    from edge.calibration.nncf_int8 import nncf_quantize_ir

    made = []
    for scheme in schemes:
        path = str(w.path_for(f".nncf-schemes/{gj.stem}.{scheme}.xml"))
        made.append((path, nncf_quantize_ir(src, path, fs, gj.io, transformer=scheme == "transformer",
                                            float_types=float_types)))
    times = _time_irs([p for p, _ in made], gj.io, fs.feeds[0])
    ms = {info["model_type"]: round(t, 4) for (_, info), t in zip(made, times, strict=True)
          if not isinstance(t, str)}
    refused = {info["model_type"]: t for (_, info), t in zip(made, times, strict=True) if isinstance(t, str)}
    usable = [m for m in made if m[1]["model_type"] in ms]
    if not usable:
        which = "either scheme" if len(made) > 1 else f"the {made[0][1]['model_type']} scheme"
        raise ExportError(f"{gj.stem}: OpenVINO cannot compile the NNCF INT8 IR of {which} "
                          f"({'; '.join(f'{k}: {v}' for k, v in refused.items())})")
    for _, info in made:
        info["scheme_ms"] = ms
        if refused:
            info["scheme_refused"] = refused
    usable.sort(key=lambda m: ms[m[1]["model_type"]])
    return usable[0], (usable[1] if len(usable) > 1 else None)


def _nncf_node_fallback(w: Any, job: PrecisionJob, pname: str, r: dict[str, Any], mine: Sequence[str],
                        paths: dict[str, str], infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A program whose NNCF IRs miss the budget with either scheme: the accuracy gate's sensitivity-guided
    fallback (:func:`~edge.calibration.gate.quantize_with_gate`, the one the QDQ form has) over the graphs
    quantized for it, each with its settled scheme, the most sensitive nodes in NNCF's ignored scope.

    Why: one layer can carry the whole loss (a shipped driving policy: quantizing its trajectory head's first
    layer alone took ADE 3.73 -> 7.3 m on 10 episodes, every other MatMul together changed it by 0.01 m),
    and without this the whole NNCF form was refused. Each try is scored as the program is gated (bf16 float
    layers where native, else f32; each try row says which). When one passes, its IRs replace the graphs'
    files at ``paths``, their ``infos`` say what was left in float, and the gate result of that try is
    returned; otherwise the caller's ``r`` (the files that stay: every node quantized). Either way with the
    tries as ``node_tries``, for the program's gate record."""
    from edge.calibration.gate import GateGraph, quantize_with_gate
    from edge.calibration.nncf_int8 import nncf_quantizer

    spec = job.card.program(pname)
    src = {g: str(w.path_for(_artifact(w, g, "fp32")["file"])) for g in mine}
    cal = job.record(pname, _fp32_files(w, spec.graphs), "calibration")
    ev = job.record(pname, _fp32_files(w, spec.graphs), "evaluation")
    cset = job.calib_samples()
    graphs = {g: GateGraph(src[g], paths[g], job.job(g).io, _calib_feeds(cal[g], cset), ev[g][:PARITY_SAMPLES])
              for g in mine}
    gated = [r]  # one per try, in the gate's order (the first try is r, measured by the caller)

    def score(files: dict[str, str]) -> float:
        gated.append(_nncf_gate(job, pname, {**{g: paths[g] for g in spec.graphs}, **files}, r["fp32"]))
        return float(gated[-1]["metric"])

    job.say(f"{pname}: NNCF int8 drop {r['drop']:.3g} > {r['max_drop']:.3g}; looking for the nodes to keep in float")
    gate = quantize_with_gate(graphs, score, fp32_metric=r["fp32"], max_drop=r["max_drop"], method="nncf",
                              drop=job.card.metric.drop, progress=job.say,
                              quantizer=nncf_quantizer({g: infos[g]["model_type"] == "transformer" for g in mine},
                                                       {g: infos[g].get("float_types", []) for g in mine}),
                              start=({g: paths[g] for g in mine}, r["metric"]))
    tries = [{**{k: t[k] for k in ("excluded", "metric", "drop", "output_rel_error")},
              "inference_precision": got["inference_precision"]} for t, got in zip(gate.tries, gated, strict=True)]
    if not gate.passed:
        return {**r, "node_tries": tries}
    assert gate.chosen is not None
    kept = gated[gate.tries.index(gate.chosen)]
    for g in mine:
        infos[g] = {**infos[g], "ignored": gate.chosen["excluded"].get(g, []), "node_fallback": {
            "why": f"all nodes quantized: drop {r['drop']:.3g} > {r['max_drop']:.3g}", "tries": tries,
            "sensitivity": [s for s in gate.sensitivity if s["graph"] == g][:10]}}
    return {**kept, "files": {g: paths[g] for g in spec.graphs}, "node_tries": tries}


def add_nncf_int8(w: Any, report: dict[str, Any], job: PrecisionJob) -> None:
    """OpenVINO-native INT8 (NNCF) of every graph, each program gated on the task metric against fp32.

    Each graph first has the op types whose int8 kernels do not pay on this CPU chosen, timed, to stay in
    float (:func:`_ov_pays`; on an AVX2-only CPU NNCF's int8 MatMuls and attention ran 2-4x slower than
    fp32), then is quantized with both NNCF schemes and the one faster here is gated first
    (:func:`_nncf_schemes`); a program that misses the budget with the default scheme somewhere is measured
    once more with the transformer scheme for the graphs first quantized for it, and when that misses too,
    with the most sensitive nodes left in float (:func:`_nncf_node_fallback`, the gate's fallback).

    The IRs are kept only when every program passes: artifacts are chosen per graph, not per program, so
    an IR that one program passed with and another (sharing that graph) failed with could not be kept
    for one and not the other. When any program misses the budget no NNCF artifact is kept (each gate
    record says whether that program passed, with ``kept: false``) and the export goes on: OpenVINO int8
    then runs the QDQ graphs, once they pass the gate on OpenVINO too (:mod:`edge.calibration.openvino_qdq`).
    """

    from edge.export.api import artifact_name

    card = job.card
    rows = report.setdefault("precisions", [])
    paths: dict[str, str] = {}  # graph -> IR path (a graph two programs share is quantized once)
    infos: dict[str, dict[str, Any]] = {}
    # graph -> the slower scheme's IR while untried: only graphs quantized for the program being gated (a
    # graph is quantized with the first program that uses it and settled once that program is gated)
    others: dict[str, tuple[str, dict[str, Any]]] = {}
    results = []
    for pname in job.scored():
        spec = card.program(pname)
        src = _fp32_files(w, spec.graphs)
        fp32 = job.fp32_metric(pname, src)
        cal = job.record(pname, src, "calibration")
        cset = job.calib_samples()
        for g in spec.graphs:
            if g in paths:
                continue
            gj = job.job(g)
            job.say(f"{pname}: NNCF int8 of {g} on {len(cal[g])} recorded feeds (both schemes, timed)")
            fs = _calib_feeds(cal[g], cset)
            g_src = str(w.path_for(_artifact(w, g, "fp32")["file"]))
            float_types, speed = _ov_pays(job, g, g_src, gj.io, fs)
            # a graph left float for speed: NNCF's default scheme only (the transformer one's SmoothQuant would
            # still rescale weights and add ops to a graph that quantizes nothing)
            schemes = ("default",) if speed.get("float_graph") else ("transformer", "default")
            (paths[g], infos[g]), other = _nncf_schemes(w, gj, g_src, fs, float_types, schemes)
            for info in (infos[g], *(() if other is None else (other[1],))):
                info["speed"] = speed
            if other is not None:
                others[g] = other
            infos[g]["program"] = pname
        files = {g: paths[g] for g in spec.graphs}
        r = _nncf_gate(job, pname, files, fp32)
        # missed with the default scheme where it was faster: NNCF's transformer scheme (what it recommends
        # for attention, and what every graph had before the choice) for the graphs quantized for this program
        # (a later program sharing one is gated with what is settled here)
        swap = [g for g in spec.graphs if g in others and infos[g]["model_type"] != "transformer"]
        if not r["passed"] and swap:
            for g in swap:
                paths[g], info = others.pop(g)
                infos[g] = {**info, "program": pname, "fallback": f"the default scheme (faster here) missed the budget "
                            f"(drop {r['drop']:.3g})"}
            job.say(f"{pname}: NNCF int8 drop {r['drop']:.3g} > {r['max_drop']:.3g} with the default scheme; "
                    f"measuring the transformer scheme of {', '.join(swap)}")
            r = _nncf_gate(job, pname, {g: paths[g] for g in spec.graphs}, fp32)
        mine = [g for g in spec.graphs if infos[g]["program"] == pname]
        if not r["passed"] and mine:
            try:
                r = _nncf_node_fallback(w, job, pname, r, mine, paths, infos)
            except Exception as e:  # e.g. an IR OpenVINO refuses: the QDQ int8 stays what OpenVINO runs
                job.say(f"{pname}: NNCF node fallback stopped ({_ov_reason(e)})")
                r = {**r, "node_tries": f"stopped: {_ov_reason(e)}"}
        for g in spec.graphs:
            others.pop(g, None)  # gated: this graph's scheme is settled
        results.append(r)
    # a graph runs with one float-layer precision (bf16 only when every program using it passed so): a program
    # that shares a graph with one that fell back to f32 is measured again the way it will then run, all f32
    while stale := [r for r in results if r["inference_precision"] == "bf16" and any(
            _graph_hint(results, g, card.program) == "f32" for g in card.program(r["program"]).graphs)]:
        for r in stale:
            r.update(_nncf_gate(job, r["program"], r["files"], r["fp32"], hints=["f32"]))
    finals = {g: str(w.path_for(f"{job.job(g).stem}.nncf-int8.xml")) for g in paths}
    for g, path in paths.items():  # the chosen scheme's IR under the artifact's name; the other one dropped
        for suffix in (".xml", ".bin"):
            Path(path).with_suffix(suffix).replace(Path(finals[g]).with_suffix(suffix))
    shutil.rmtree(w.tmp / ".nncf-schemes", ignore_errors=True)
    for r in results:
        r["files"] = {g: finals[g] for g in r["files"]}
    paths = finals
    failed = _all_or_none(job, results, [Path(f) for f in paths.values()] +
                          [Path(f).with_suffix(".bin") for f in paths.values()],
                          "openvino int8 (NNCF)", "OpenVINO int8 runs the gated QDQ ONNX")
    if failed:
        for r in results:
            ok = r["passed"]
            _gate_record(w, r["program"], "openvino", "int8", {
                **{k: r[k] for k in ("metric", "fp32", "drop", "max_drop")}, "format": "nncf", "passed": ok,
                "kept": False, "instead": "the int8 ONNX (QDQ) artifacts",
                **({"why": f"program(s) {', '.join(failed)} missed the budget"} if ok else {}),
                **({"node_tries": r["node_tries"]} if "node_tries" in r else {})})
            rows.append({"program": r["program"], "precision": "int8-nncf", "backend": "openvino", "files": [],
                         "metric": r["metric"], "drop": r["drop"], "refused": True,
                         "drop_ci95": job.drop_interval(r["program"], r["metric"], "openvino",
                                                        inference_precision=r["inference_precision"])})
        return
    by_program = {r["program"]: r for r in results}
    from edge.calibration.gate import output_error
    from edge.calibration.nncf_int8 import nncf_nodes

    # each IR's outputs against its fp32 graph on the evaluation feeds its program records, on OpenVINO with f32
    # float layers (what the symmetric QDQ and U8S8 rows report against fp32 on ONNX Runtime): the table's parity
    parity = {g: output_error(str(w.path_for(_artifact(w, g, "fp32")["file"])), path, job.job(g).io,
                              job.record(infos[g]["program"], _fp32_files(w, card.program(infos[g]["program"]).graphs),
                                         "evaluation")[g][:PARITY_SAMPLES], "openvino", inference_precision="f32")
              for g, path in paths.items()}
    for g, path in paths.items():
        infos[g]["quantized_ops"] = n_ops = len(nncf_nodes(path))
        if n_ops == 0:
            job.say(f"warning: {g} int8 (NNCF): every node left in float {_nncf_float_why(infos[g])}; this graph "
                    "runs in fp32 in the int8 program")
        xml = Path(path).name
        bin_name = xml.replace(".xml", ".bin")
        w.register(xml, "openvino_ir")
        w.register(bin_name, "openvino_ir")
        fp32_art = _artifact(w, g, "fp32")
        r = by_program[infos[g]["program"]]
        w.add_artifact({"name": artifact_name("openvino", "int8", g, "nncf"), "format": "openvino_ir",
                        "file": xml, "extra_files": [bin_name], "graph": g, "precision": "int8",
                        "preferred_by": ["openvino"], "attention": fp32_art.get("attention"),
                        "derived_from": fp32_art["file"], "quantization": infos[g],
                        "parity": {"reference": "fp32 OpenVINO (f32 float layers)", "max_rel": parity[g]},
                        "metric": {"name": card.metric.name, "program": r["program"], "value": r["metric"],
                                   "fp32": r["fp32"], "drop": r["drop"], "max_drop": r["max_drop"],
                                   "inference_precision": _graph_hint(results, g, spec_of=card.program)}})
    for r in results:
        _gate_record(w, r["program"], "openvino", "int8", {
            **{k: r[k] for k in ("metric", "fp32", "drop", "max_drop", "inference_precision")},
            "format": "nncf", "passed": True, **({"node_tries": r["node_tries"]} if "node_tries" in r else {})})
        rows.append({**_row(w, job, r["program"], "int8-nncf", r["files"], r["metric"], r["drop"],
                            max(parity[g] for g in r["files"]),
                            "openvino", inference_precision=r["inference_precision"]),
                     "inference_precision": r["inference_precision"]})


def _graph_hint(results: list[dict[str, Any]], graph: str, spec_of: Any) -> str:
    """The float-layer precision a graph's IR runs with: bf16 only when every program using it passed so."""
    hints = {r["inference_precision"] for r in results if graph in spec_of(r["program"]).graphs}
    return "bf16" if hints == {"bf16"} else "f32"


#: ONNX Runtime's INT8 form: what it quantizes and how (benchmarks/ort_int8_formats.py measured the choices
#: on the shipped video model's streaming graphs: symmetric S8S8 everywhere 0.79x fp32, U8S8 everywhere
#: 0.92x, U8S8 on Convs 1.23x)
ORT_INT8_OPS = ("Conv",)
ORT_INT8_ACTIVATIONS = "u8s8"


def add_ort_int8(w: Any, report: dict[str, Any], job: PrecisionJob) -> None:
    """ONNX Runtime's fast INT8 of every graph: U8S8 (uint8 asymmetric activations) on the Convs only.

    The symmetric QDQ graphs (:func:`_int8`) are what TensorRT needs, but ONNX Runtime's x86 kernels run
    them through a conversion and its quantized MatMul/attention pieces cost more than they save, so its
    int8 was slower than its fp32. This form is calibrated on the same recordings and gated per program
    on the task metric like every INT8 artifact; like the NNCF IRs it is kept only when every program
    passes (artifacts are chosen per graph), as ``onnx-int8-u8s8-<graph>`` with ``preferred_by:
    ["onnxruntime"]``. When a program misses the budget none is kept and ONNX Runtime runs the symmetric
    graphs, as before. Which Convs are quantized is timed on this CPU (:func:`_ort_pays`); a graph without
    a Conv is written only beside quantized ones and only when its symmetric INT8 is slower here than fp32:
    then as a copy of its fp32 graph (:func:`_float_if_faster`); otherwise the program runs its symmetric
    graph. A bundle with no Conv anywhere gets no form of this kind.
    """

    from edge.calibration.gate import GateGraph, candidate_nodes, qdq_quantizer, quantize_with_gate
    from edge.export.api import artifact_name

    card, cset = job.card, job.calib_samples()
    # graph -> U8S8 file and what was done (a graph two programs share is quantized once); per-program results
    files: dict[str, str] = {}
    infos: dict[str, dict[str, Any]] = {}
    keep: dict[str, list[str]] = {}  # graph -> Convs left in float because their int8 kernel does not pay here
    timing: dict[str, dict[str, Any]] = {}
    every = tuple(dict.fromkeys(g for p in job.scored() for g in card.program(p).graphs))
    with_conv = {g for g, f in _fp32_files(w, every).items() if candidate_nodes(f, ORT_INT8_OPS)}
    results = []
    for spec in (card.program(p) for p in job.scored()):
        pname, src = spec.name, _fp32_files(w, spec.graphs)
        fp32 = job.fp32_metric(pname, src)
        sym = {g: str(w.path_for(_artifact(w, g, "int8")["file"])) for g in spec.graphs}
        cal, ev = job.record(pname, src, "calibration"), job.record(pname, src, "evaluation")
        graphs = {}
        for g in spec.graphs:
            if g in files:
                continue
            gj = job.job(g)
            # the graph ONNX Runtime runs (its lowering keeps the fused Attention kernel): uint8 activations
            # need none of the S8->U8 rewrite the symmetric form re-exports to opset 20 for (_reduced_source)
            q_src = src[g]
            fs = _calib_feeds(cal[g], cset)
            if g not in with_conv:
                if with_conv:  # beside quantized graphs, a graph whose symmetric int8 is slower here runs fp32
                    _float_if_faster(job, w, pname, g, sym[g], q_src, fs, files, infos, timing)
                continue
            files[g] = str(w.path_for(f"{gj.stem}.int8-u8s8.onnx"))
            keep[g], timing[g] = _ort_pays(job, g, q_src, gj.io, fs)
            graphs[g] = GateGraph(q_src, files[g], gj.io, fs, ev[g][:PARITY_SAMPLES])
        # graphs without this form run their symmetric int8 beside the U8S8 ones
        mine = {g: files.get(g, sym[g]) for g in spec.graphs}
        job.say(f"{pname}: onnxruntime int8 ({ORT_INT8_ACTIVATIONS} on {', '.join(ORT_INT8_OPS)})")
        if graphs:
            gate = quantize_with_gate(graphs, lambda fs, mine=mine, pname=pname: job.metric(pname, {**mine, **fs}),
                                      fp32_metric=fp32, max_drop=job.budget(fp32), method=job.method,
                                      drop=card.metric.drop, progress=job.say, op_types=ORT_INT8_OPS,
                                      activations=ORT_INT8_ACTIVATIONS,
                                      quantizer=qdq_quantizer(job.method, ORT_INT8_OPS, ORT_INT8_ACTIVATIONS,
                                                              keep_float={g: keep[g] for g in graphs}))
            for g in graphs:
                infos[g] = {"format": "qdq", "activations": ORT_INT8_ACTIVATIONS, "symmetric": False,
                            "outputs_quantized": True,  # ONNX Runtime's placement, for its QLinearConv fusion
                            "op_types": list(ORT_INT8_OPS), "method": job.method, "calibration": cset.source,
                            "calibration_samples": len(cset), "calibration_feeds": len(cal[g]), "program": pname,
                            "float_for_speed": keep[g], "speed": timing[g],
                            "excluded_nodes": (gate.chosen or {}).get("excluded", {}).get(g, []),
                            "output_rel_error": (gate.chosen or {}).get("output_rel_error", {}).get(g),
                            "tries": gate.tries}
            metric = float(gate.chosen["metric"]) if gate.passed else float(gate.tries[-1]["metric"])
            passed = gate.passed
        else:
            metric = job.metric(pname, mine)
            passed = within_budget(card.metric.drop(fp32, metric), job.budget(fp32))
        results.append({"program": pname, "files": mine, "metric": metric, "fp32": fp32,
                        "drop": card.metric.drop(fp32, metric), "max_drop": job.budget(fp32), "passed": passed})
    failed = _all_or_none(job, results, [Path(f) for f in files.values()],
                          f"onnxruntime int8 ({ORT_INT8_ACTIVATIONS})", "ONNX Runtime runs the symmetric int8 graphs")
    if failed or not files:
        for r in results:
            rec = w.manifest["programs"][r["program"]].setdefault("gates", {}).setdefault("onnxruntime", {})
            rec.setdefault("int8", {})[ORT_INT8_ACTIVATIONS] = {
                **{k: r[k] for k in ("metric", "drop", "max_drop")}, "kept": False,
                "why": (f"program(s) {', '.join(failed)} missed the budget" if failed else "no graph has a Conv")}
        return
    for g, path in files.items():
        fname = Path(path).name
        w.register(fname, "onnx")
        infos[g]["dequantize_nodes"] = _say_if_float(job, path, g, f"int8 ({ORT_INT8_ACTIVATIONS})",
                                                     _slower_why(timing[g]) or ("to meet the budget" if infos[g].get(
                                                         "excluded_nodes") else None))
        sym_art = _artifact(w, g, "int8")
        w.add_artifact({"name": artifact_name("onnx", "int8", g, ORT_INT8_ACTIVATIONS), "format": "onnx",
                        "file": fname, "graph": g, "precision": "int8", "preferred_by": ["onnxruntime"],
                        "attention": sym_art["attention"], "derived_from": sym_art["derived_from"],
                        "parity": {"reference": "fp32 ONNX Runtime", "max_rel": infos[g]["output_rel_error"]},
                        "quantization": infos[g]})
    rows = report.setdefault("precisions", [])
    for r in results:
        rec = w.manifest["programs"][r["program"]].setdefault("gates", {}).setdefault("onnxruntime", {})
        symmetric = rec.get("int8")
        rec["int8"] = {**{k: r[k] for k in ("metric", "fp32", "drop", "max_drop")},
                       "format": f"qdq-{ORT_INT8_ACTIVATIONS}", "passed": True, "symmetric_qdq": symmetric}
        rows.append(_row(w, job, r["program"], f"int8-{ORT_INT8_ACTIVATIONS}", r["files"], r["metric"], r["drop"],
                         max((infos[g]["output_rel_error"] or 0.0) for g in files if g in r["files"])))
