"""``edge val``: a bundle's task metric on labelled data, for every backend x precision it has here, in one run.

Export proves the reduced precisions against held-out *synthetic* samples; a user deploying on real roads wants the
same proof on their own labelled frames, with the forms ``edge run`` would run (Ultralytics' ``val``, NNCF's
validation step). The data is either the family's held-out synthetic set (``synthetic[:N][,seed=S]``, every family
that has data) or ``PATH[,key=value...]`` read by the family's own reader (:class:`edge.models.contract.LabelledData`:
a dataset's label file, a sensor folder whose calibration is the truth...). Each configuration is scored by the
card's metric through :func:`edge.program.evaluate`, the same code the export's gate and the benchmarks use, and its
drop is taken against a reference of the same program: a reduced precision against its backend's fp32 (what
quantizing cost), an exported fp32 form against torch fp32 (what the export cost).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import DataError, EdgeError
from edge.names import keyword_options, name_list

#: held-out synthetic samples when ``synthetic`` names no count (the export gate's default evaluation size)
SYNTHETIC_DEFAULT = 40
#: the most synthetic samples one spec asks for (each is rendered and scored on every configuration)
SYNTHETIC_MAX = 100_000


def _split(spec: str) -> tuple[str, dict[str, str]]:
    """A data spec -> (head, options). A path that exists is a path, whatever it holds (a folder named "set,v=2"
    is not set + option v)."""
    from edge.stream.sources import spec_options

    s = spec if os.path.exists(spec) else spec.strip()
    return spec_options(s, path=not _synthetic(s.split(",", 1)[0]))


def _synthetic(head: str) -> bool:
    return head == "synthetic" or head.startswith("synthetic:")


def _synthetic_count(head: str) -> str:
    """The count of a ``synthetic[:N]`` head as written: the default for ``synthetic``, "" for ``synthetic:``."""
    return head.partition(":")[2] or ("" if head.endswith(":") else str(SYNTHETIC_DEFAULT))


def _spec_key(spec: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A data spec's identity: its path resolved, and its options with any value naming an existing path resolved too
    (``images=X/`` is ``images=X``); split as the readers split it (a comma inside a file name stays in the name). A
    synthetic spec, one that does not parse, or a path that does not exist is itself."""
    try:
        head, opts = _split(spec)
    except (EdgeError, ValueError, OSError):
        return spec, ()
    if _synthetic(head):  # its count and seed as read (synthetic is synthetic:40, seed 0 the default): one set
        count, seed = _synthetic_count(head), opts.get("seed", "0")
        if set(opts) - {"seed"} or not all(v.isascii() and v.isdigit() for v in (count, seed)):
            return spec, ()  # malformed: refused by its reader in its own words, not as "given twice"
        return f"synthetic:{int(count)}", (("seed", str(int(seed))),)
    if not os.path.exists(head):
        return spec, ()
    norm = tuple(sorted((k, os.path.realpath(v) if v and os.path.exists(v) else v) for k, v in opts.items()))
    return os.path.realpath(head), norm


def data_specs(value: Any, option: str, error: type[EdgeError] = DataError) -> list[str]:
    """``value`` (one spec, or a list of them; a path may be an ``os.PathLike``) as a list of spec strings; anything
    else, or an empty list, is one line naming ``option``."""
    if isinstance(value, str | os.PathLike):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(isinstance(d, str | os.PathLike) for d in value):
        raise error(f"{option}: a data spec (synthetic[:N] or a path, with ,key=value options; what edge val --data "
                    f"takes) or a list of them, got {value!r:.80}")
    out = [os.fspath(d) for d in value]
    keys = [_spec_key(d) for d in out]  # one file however it is spelled (./d/x.json, d/x.json, its absolute path)
    twice = next((d for i, d in enumerate(out) if keys[i] in keys[:i]), None)
    if twice is not None:  # its samples were scored twice, counted as more data
        raise error(f"{option} {twice}: given twice")
    return out


def labelled_sets(card: Any, cfg: dict[str, Any], specs: list[str], option: str = "--data"
                  ) -> tuple[Sequence[Any], list[str]]:
    """The samples of several specs together (still loaded one at a time where a reader's are lazy), and what each
    spec gave (:func:`labelled_samples`)."""
    from edge.models.contract import chain_samples

    sets, parts = [], []
    for spec in specs:
        got, what = labelled_samples(card, cfg, spec, option)
        sets.append(got)
        parts.append(what)
    return chain_samples(sets), parts


def labelled_samples(card: Any, cfg: dict[str, Any], spec: str, option: str = "--data"
                     ) -> tuple[Sequence[Any], str]:
    """(samples, what they are) for ``--data SPEC``: one line naming the spec (and ``option``, the one it came
    from: ``--eval-data`` for the export's gate) when it cannot be read."""
    from edge.models.contract import LazySamples, family_code

    head, opts = _split(spec)
    if not head:
        raise DataError(f"{option} {spec!r}: names no data (synthetic[:N] or a path the family reads)")
    if _synthetic(head):
        if card.data is None:
            raise EdgeError(f"{option} {spec}: model '{card.name}' declares no data (card.data)")
        count = _synthetic_count(head)
        unknown = sorted(set(opts) - {"seed"})
        if unknown or not (count.isascii() and count.isdigit()) or not 1 <= int(count) <= SYNTHETIC_MAX:
            raise DataError(f"{option} {spec}: use synthetic[:N][,seed=S], N 1..{SYNTHETIC_MAX}"
                            + (f" (unknown option {unknown[0]})" if unknown else ""))
        seed = opts.get("seed", "0")
        if not (seed.isascii() and seed.isdigit()) or int(seed) >= 2**32:
            raise DataError(f"{option} {spec}: seed={seed} must be a whole number 0..{2**32 - 1}")
        n = int(count)
        return card.data.samples(cfg, "evaluation", n, int(seed)), f"{n} held-out synthetic samples (seed {seed})"
    reader = card.data.labelled if card.data is not None else None
    if reader is None:
        raise EdgeError(f"{option} {spec}: model '{card.name}' reads no labelled data of its own (its card has no "
                        "data.labelled); synthetic[:N] scores its held-out synthetic set")
    path = Path(head)
    if not path.exists():
        prefix, colon, rest = head.partition(":")
        if colon and prefix.isalpha() and rest and Path(rest).exists():  # edge run's kitti:FOLDER, typed here
            raise DataError(f"{path}: no such file or folder; {option} takes the path itself ({rest}), not a source "
                            f"spec ({prefix}: is edge run --source's)")
        raise DataError(f"{path}: no such file or folder ({option} takes {reader.formats})")
    unknown = [k for k in opts if k not in keyword_options(reader.read, 2)]
    if unknown:  # checked before the call: a key named like the reader's own parameters (cfg=) was a TypeError
        raise DataError(f"{option} {spec}: unknown option {unknown[0]} ({reader.formats})")
    try:
        samples = reader.read(path, cfg, **opts)
    except DataError as e:  # a reader's own line ("deg=x: not a number") says which spec it came from
        if str(e).startswith((str(path), os.path.abspath(path), option)):
            raise
        raise DataError(f"{option} {spec}: {e}") from None
    except Exception as e:
        # a reader taking **options that passes them on: an unknown key fails in there
        if isinstance(e, TypeError) and opts and ("unexpected keyword" in str(e) or "multiple values" in str(e)):
            raise DataError(f"{option} {spec}: unknown option ({reader.formats})") from None
        with family_code(card.name, f"labelled reader on {option} {spec}"):  # the family's own bug: one line
            raise
    if not samples:
        raise DataError(f"{path}: no labelled samples in it ({reader.formats})")
    if isinstance(samples, LazySamples) and not samples.family:  # a failing load names the family too
        samples.family = card.name
    return samples, f"{len(samples)} labelled samples from {path}"


def data_roots(data: list[str]) -> list[tuple[Path, list[Path]]]:
    """(the spec's path, the folder tree its data is read from, both as written (absolute) and resolved) for each
    spec naming files: a label file's folder, a data folder itself, and a folder given as an option
    (``images=DIR``)."""
    out = []
    for spec in data:
        head, opts = _split(spec)
        if not head or _synthetic(head):
            continue
        p = Path(head)
        folder = p if p.is_dir() else p.parent
        out.append((p, [Path(os.path.abspath(folder)), folder.resolve()]))
        if p.is_dir():  # a KITTI raw drive reads its calibration from the folder above it
            from edge.data.kitti import kitti_layout

            with contextlib.suppress(EdgeError, OSError):
                calib = kitti_layout(p).raw_calib
                if calib is not None:
                    out.append((calib, [Path(os.path.abspath(calib)), calib.resolve()]))
        out += [(Path(v), [Path(os.path.abspath(v)), Path(v).resolve()]) for v in opts.values()
                if v and Path(v).is_dir()]
    return out


#: the most entries :func:`_link_targets` looks at in one data folder (a dataset of a million images is not walked)
LINK_SCAN_MAX = 200_000


def _link_targets(root: Path) -> set[Path]:
    """The resolved files and folders behind the links in a data folder's tree (an image entry or an image folder
    that links elsewhere: replacing a file there replaces the data), up to :data:`LINK_SCAN_MAX` entries."""
    out: set[Path] = set()
    seen = 0
    for folder, dirs, files in os.walk(root):
        for entry in (*dirs, *files):
            seen += 1
            path = Path(folder) / entry
            if path.is_symlink():
                out.add(path.resolve())
        if seen > LINK_SCAN_MAX:
            break
    return out


def check_report_out(out: str | os.PathLike[str], data: list[str]) -> None:
    """Refuse an ``--out`` that would replace an entry of the data: an existing file (or a link) in a folder tree
    the data comes from (a label file and its images, an ``images=`` folder, a KITTI folder's calibration: the
    report replaced the truth it scores against), unless it is an earlier ``edge val`` report. What the write
    replaces is the name itself (a link is replaced, not followed), so that name is compared, as written and
    with its folder resolved, against each data folder as written and resolved. A new file there is fine. Anywhere,
    an existing file that is not an earlier report is refused too (a checkpoint named as --out was replaced)."""

    from edge.files import read_problem

    name = Path(out)
    if not (name.is_file() or name.is_symlink()):
        return
    if name.is_file() and (why := read_problem(name)) is not None:  # it was "not an edge val report" (a review)
        raise DataError(f"{out}: {why}, so whether --out may replace it (an earlier report) is not known; "
                        "remove it, or name another file")
    places = {Path(os.path.abspath(name)), name.parent.resolve() / name.name}
    for given, roots in data_roots(data):
        same = given.is_file() and name.is_file() and os.path.samefile(name, given)  # a hard link to a label file
        inside = any(r == p or r in p.parents for r in roots for p in places)
        if not same and not inside and not name.is_symlink():  # the file behind a link the data reads
            real = name.resolve()
            inside = any(t == real or t in real.parents for t in _link_targets(roots[-1]))
        if not (same or inside):
            continue
        if name.is_symlink() or not _is_report(name):
            raise DataError(f"{out}: --out would replace a file of the data this run reads ({given}); write "
                            "the report elsewhere")
    if name.is_file() and not name.is_symlink() and name.stat().st_size and not _is_report(name):  # (empty: mktemp's)
        # anywhere: `edge val --out m.pt` replaced a checkpoint with the report (edge train refuses the like)
        raise DataError(f"{out}: exists and is not an edge val report; --out would replace it (remove it, or name "
                        "another file)")


def _is_report(path: Path) -> bool:
    """Whether ``path`` holds an earlier ``edge val`` report (what ``--out`` may replace)."""
    from edge.files import json_file

    earlier = json_file(path, limit=64 << 20)
    return isinstance(earlier, dict) and {"rows", "metric", "described"} <= set(earlier)


def run_val(bundle: str | Path, data: str | os.PathLike[str] | list[str], *, backends: str | list[str] | None = None,
            programs: str | list[str] | None = None, threads: int = 0, say: Any = None) -> dict[str, Any]:
    """Score ``bundle`` on ``data`` (see the module docstring; several specs: their samples together); returns the
    report (what ``--json`` prints).

    ``programs``: default the bundle's first (the one ``edge run`` runs). Configurations that cannot load here
    are listed under ``skipped`` with the reason, as ``edge bench`` lists them."""
    from edge.bundle import Bundle
    from edge.intervals import drop_interval, metric_interval
    from edge.models.contract import family_code
    from edge.plans import chosen_programs, program_plans, unplanned
    from edge.program import card_for_bundle, evaluate, load_program
    from edge.runtimes import require

    say = say if callable(say) else (lambda _m: None)
    b = Bundle.load(bundle)
    card = card_for_bundle(b)
    if card is None:
        raise EdgeError(f"{bundle}: a bundle of a plain module (edge.export) has no task metric to score; "
                        "`edge val` scores a model family's bundle")
    if card.metric is None:
        raise EdgeError(f"{bundle}: model '{card.name}' declares no metric (card.metric), so there is nothing to score")
    cfg = b.manifest["model"].get("config") or {}
    programs = name_list("programs", programs)
    specs = chosen_programs(b, card, programs)
    specs = specs if programs else specs[:1]
    backends = name_list("backends", backends) or ["torch", "onnxruntime", "openvino"]
    specs_given = data_specs(data, "--data")
    samples, parts = labelled_sets(card, cfg, specs_given)
    described = parts[0] if len(parts) == 1 else f"{len(samples)} samples ({'; '.join(parts)})"
    run_forms: set[tuple[str, str, str]] = set()
    plans = program_plans(b, specs, backends, run_forms)
    rows: list[dict[str, Any]] = []
    items: dict[str, list[Any]] = {}  # config -> every sample's metric item (None: no label), for the intervals
    skipped = unplanned(plans, backends)
    for spec, backend, label, opts in plans:
        name = f"{spec.name}:{backend}/{label}"
        say(f"scoring {name} on {described}")
        try:
            require(backend)
            prog = load_program(b, backend, program=spec.name, threads=threads, **opts)
        except EdgeError as e:
            skipped.append({"config": name, "reason": str(e)})
            continue
        t0 = time.perf_counter()
        got: list[Any] = []
        try:  # a frame set the family refuses is named with the data and the plan (it named neither)
            score = evaluate(prog, card, samples, f"--data {', '.join(specs_given)}: {name}: ", got)
        finally:
            prog.close()
        seconds = round(time.perf_counter() - t0, 2)
        with family_code(card.name, f"metric '{card.metric.name}' reduce"):
            ci = metric_interval(card.metric, got)
        items[name] = got
        rows.append({"config": name, "program": spec.name, "backend": backend, "precision": label,
                     "edge_run": (spec.name, backend, label) in run_forms,
                     "value": score["value"], "ci95": None if ci is None else list(ci), "score": score,
                     "seconds": seconds})
    if not rows:
        raise EdgeError(f"{bundle}: nothing to score with backends {backends}"
                        + (f" ({skipped[0]['reason']})" if skipped else ""))
    for r in rows:
        r["reference_config"] = ref = _reference(rows, r)
        r["reference"] = None if ref is None else next(q["value"] for q in rows if q["config"] == ref)
        r["drop"] = card.metric.drop(r["reference"], r["value"]) if ref is not None else None
        # the same samples scored both ways: the drop's own interval, resampled in pairs
        with family_code(card.name, f"metric '{card.metric.name}' reduce"):
            di = None if ref is None else drop_interval(card.metric, items[ref], items[r["config"]])
        r["drop_ci95"] = None if di is None else list(di)
    report = {"bundle": str(bundle), "model": b.model_name, "family": card.name, "data": specs_given,
              "samples": len(samples),
              "described": described, "metric": card.metric.name, "unit": card.metric.unit,
              "higher_is_better": card.metric.higher_is_better, "rows": rows, "skipped": skipped}
    note = not_a_number_note(card.metric.name, [r["config"] for r in rows if not math.isfinite(r["value"])])
    if note:
        report["notes"] = [note]
    return report


def not_a_number_note(metric: str, configs: list[str]) -> str | None:
    """One line naming the configurations whose score is not a number (a family's metric reduce that returned NaN,
    or outputs that made it so): a table of "nan" and a drop budget that blamed a "drop by nan" said neither."""
    if not configs:
        return None
    return (f"{metric} is not a number for {', '.join(configs)}: no drop can be measured against or from it (the "
            "family's metric reduce, or the model's outputs on these samples)")


def _reference(rows: list[dict[str, Any]], r: dict[str, Any]) -> str | None:
    """The row ``r`` is measured against: a reduced precision against its backend's fp32 (what quantizing cost),
    an exported fp32 against torch fp32 (what the export cost), each of the same program; None for torch itself
    or when that row was not scored."""
    if r["precision"] == "fp32":
        want = ("torch", "fp32") if r["backend"] != "torch" else None
    else:
        want = (r["backend"], "fp32")
    if want is None:
        return None
    return next((q["config"] for q in rows if q["program"] == r["program"] and (q["backend"], q["precision"]) == want),
                None)


def over_budget(report: dict[str, Any], max_drop: float | str) -> list[dict[str, Any]]:
    """The rows whose drop against their reference exceeds ``max_drop``: metric units, or ``"N%"`` of that value,
    as ``edge-export --max-drop`` takes it (the same rounding allowance as the export's gate); a non-finite value
    counts as over."""
    from edge.calibration.gate import within_budget
    from edge.calibration.precision import parse_max_drop

    absolute, relative = parse_max_drop(max_drop)
    over = []
    for r in report["rows"]:
        if r["drop"] is None:
            continue
        budget = absolute if relative is None else relative * abs(r["reference"])
        if not math.isfinite(r["drop"]) or not within_budget(r["drop"], budget):
            over.append(r)
    return over
