"""``edge train``: any family's synthetic-data training, a progress bar, and a held-out score."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge import jsonout
from edge.cli import emit
from edge.errors import EdgeError, ModelError, first_line
from edge.models.checkpoint import continues


def train_command(model: str, out: Path, config: str, steps: int, batch: int, lr: float | None, seed: int,
                  eval_clips: int, init: Path | None, *, device: str = "cpu", workers: int = 0,
                  time_limit: float | None = None, freeze: tuple[str, ...] = (), qat: tuple[str, ...] = (),
                  options: dict[str, Any] | None = None) -> str:
    """The ``edge train`` line that makes this checkpoint again, from the arguments themselves (not argv: run
    as ``python -m edge.cli.main`` the record once lost ``--init``, so a fine-tune read as a run from
    scratch). Every option that changes the weights is in it; shell-quoted."""
    parts = ["edge", "train", model, "--config", config, "--steps", str(steps), "--batch", str(batch)]
    parts += ["--lr", str(lr)] if lr is not None else []
    parts += ["--seed", str(seed), "--eval-samples", str(eval_clips)]
    parts += ["--init", str(init)] if init is not None else []
    for key, value in (options or {}).items():
        parts += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    parts += ["--freeze", ",".join(freeze)] if freeze else []
    parts += ["--qat", ",".join(qat)] if qat else []
    parts += ["--workers", str(workers)] if workers else []
    parts += ["--device", device] if device != "cpu" else []
    parts += ["--time-limit", f"{time_limit:g}"] if time_limit else []
    return " ".join(shlex.quote(p) for p in [*parts, "--out", str(out)])


#: the longest --time-limit (s): a queue's wait past the platform's time_t overflowed
MAX_TIME_LIMIT_S = 30 * 24 * 3600.0
#: the most samples a training step takes (the families' models train on 8-32; a GPU's largest useful batch is far
#: below this)
MAX_BATCH = 4096
#: how torch's CPU and CUDA allocators say a tensor did not fit
OUT_OF_MEMORY = re.compile(r"can't allocate memory|out of memory|DefaultCPUAllocator", re.IGNORECASE)


def config_of(card: Any, ck: dict[str, Any], init: Path, ignore: Iterable[str] = ()) -> str:
    """The name of the card's config a checkpoint (as read) was trained with (``--init`` without ``--config``):
    the name its training record gives (``meta.config_name``) when that config's values equal the checkpoint's
    (:func:`continues`, the rule the training run then checks), else the first such config in the card's order
    (a checkpoint without a record, or one whose config was renamed)."""
    skip = set(ignore)  # keys set for a run (`--set`, the checkpoint's own `config_set`): not what names a config
    cfg0 = {k: v for k, v in ck["config"].items() if k not in skip}
    named = (ck.get("meta") or {}).get("config_name")
    if isinstance(named, str) and named in card.configs and continues(cfg0, card.config(named)):
        return named
    for name in card.configs:
        if continues(cfg0, card.config(name)):
            return name
    raise ModelError(f"{init}: its config is none of model '{card.name}''s ({', '.join(card.configs)}); it was "
                     "trained with one changed since, or by another version: give --config")


def provenance() -> dict[str, str]:
    """What made a checkpoint besides its command: edge-deploy's version and, from a git checkout, its commit (the
    synthetic data is the family's code at that commit: the data version), torch's and numpy's versions."""
    import subprocess

    import numpy
    import torch

    import edge

    out = {"edge-deploy": str(edge.__version__), "torch": str(torch.__version__), "numpy": str(numpy.__version__)}
    here = Path(edge.__file__).resolve().parent
    try:  # only a repository that tracks this package's files (an install inside a user's repo is not its source)
        ours = subprocess.run(["git", "-C", str(here), "ls-files", "--error-unmatch", "__init__.py"],
                              capture_output=True, text=True, timeout=10)
        if ours.returncode != 0:
            return out
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git here (an installed wheel): the version says it
        return out
    if r.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", r.stdout.strip()):
        out["git"] = r.stdout.strip() + ("+changes" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    return out


def data_files(card: Any, cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each file the card's trainer says this config's batches read (``Trainer.data_files``): its path, size and
    sha256, for the record (the command alone does not say which file an environment variable pointed at)."""
    from edge.files import sha256_file
    from edge.models.contract import family_code

    if card.trainer is None or card.trainer.data_files is None:
        return {}
    with family_code(card.name, "trainer's data files"):
        files = dict(card.trainer.data_files(cfg))
    out = {}
    for name, path in files.items():
        p = Path(path)
        out[str(name)] = {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": sha256_file(p)} \
            if p.is_file() else {"path": str(p), "missing": True}
    return out


def check_replaceable_outputs(out: Path) -> None:
    """An existing ``out`` must be a checkpoint and ``out``'s .json a training record (what a run writes there);
    another file is refused before any training, naming it."""
    from edge.files import read_problem
    from edge.models.checkpoint import read_checkpoint

    for name in (out, out.with_suffix(".json")):  # one this user may not read was "not a checkpoint" (a review)
        if name.is_file() and (why := read_problem(name)) is not None:
            raise EdgeError(f"{name}: {why}, so whether --out {out.name} may replace it is not known "
                            "(remove it, or name another --out)")
    if out.exists() and not (out.is_file() and out.stat().st_size == 0):  # an empty file (mktemp's) holds nothing
        try:
            read_checkpoint(out)
        except ModelError:
            raise EdgeError(f"{out}: exists and is not a checkpoint; --out would replace it (remove it, or name "
                            "another file)") from None
    record = out.with_suffix(".json")
    if record.exists() and not is_training_record(record):
        raise EdgeError(f"{record}: exists and is not a training record; --out {out.name} writes its record there "
                        "(remove it, or name another --out)")
    other = record_of(record) if record.exists() else None
    if (other is not None and other != out.name and Path(other).with_suffix(".json").name == record.name
            and (out.parent / other).is_file()):
        # m.pt's record is m.json, and so is m.ckpt's: the second run replaced the first's record silently
        raise EdgeError(f"{record}: the training record of {out.parent / other}, which --out {out.name} would replace "
                        "with its own (name another --out)")


def record_of(record: Path) -> str | None:
    """The file name of the checkpoint a training record was written for (its command's ``--out``, or ``-o`` as
    earlier versions recorded the command as typed), or None. A record renamed with its checkpoint keeps the old
    name here, so the caller only trusts a name whose record would be ``record`` itself."""
    import shlex

    from edge.files import json_file

    doc = json_file(record)
    try:
        words = shlex.split(str(doc["command"]))  # type: ignore[index]
    except (ValueError, KeyError, TypeError):  # no command, or not one shlex reads
        return None
    for i, w in enumerate(words):
        if w in ("--out", "-o") and i + 1 < len(words):
            return Path(words[i + 1]).name
        for flag in ("--out=", "-o=", "-o"):
            if w.startswith(flag) and len(w) > len(flag):
                return Path(w[len(flag):]).name
    return None


def is_training_record(path: Path) -> bool:
    """Whether ``path`` holds what ``edge train`` writes beside a checkpoint (a JSON object with its command, model
    and steps)."""
    from edge.files import json_file

    d = json_file(path, limit=64 << 20)
    return (isinstance(d, dict) and {"model", "steps", "command"} <= set(d)
            and str(d["command"]).startswith("edge train"))


def run_train(model: str, out: Path, config: str | None, steps: int, batch: int, lr: float | None, seed: int,
              eval_clips: int, init: Path | None, json_out: bool, *, device: str = "cpu", workers: int = 0,
              time_limit: float | None = None, freeze: tuple[str, ...] = (), qat: tuple[str, ...] = (),
              options: dict[str, Any] | None = None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edge.cli import console as make_console
    from edge.files import atomic_write_text
    from edge.models import get_card

    card = get_card(model)
    typed = dict(options or {})  # the --set values of this command line (not those a checkpoint carries)
    if card.trainer is None:
        raise ModelError(f"model '{model}' declares no trainer (its card has no `trainer`)")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise EdgeError(f"--lr {lr}: a learning rate must be a finite number > 0")
    if config is not None and not config.strip():  # "" trained the default config without a word
        raise EdgeError(f"--config {config!r}: name one of the family's configs (edge models lists them), or leave "
                        "it out")
    if batch > MAX_BATCH:  # 10**8 rendered for ever before the first step, without a word
        raise EdgeError(f"--batch {batch}: at most {MAX_BATCH} samples a step")
    if not 0 <= seed < 2**63:  # torch's generator takes a 64-bit seed (a larger one was a traceback from torch)
        raise EdgeError(f"--seed {seed}: seeds are integers from 0 to 2**63 - 1")
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit <= MAX_TIME_LIMIT_S):
        # a queue's wait past the platform's time_t overflowed deep inside the batch prefetcher
        raise EdgeError(f"--time-limit {time_limit:g}: at most {MAX_TIME_LIMIT_S:.0f} s (30 days)")
    most = max(8, 4 * (os.cpu_count() or 1))
    if workers > most:
        raise EdgeError(f"--workers {workers}: at most {most} render processes here (4 per CPU core); "
                        f"{os.cpu_count() or 1} cores")
    ck = None
    kept: dict[str, Any] = {}  # the --set values a checkpoint given to --init was trained with
    given = dict(options or {})  # this command's own --set values
    if config is None and init is not None:  # continuing a checkpoint: its own config, not the card's default
        from edge.models.checkpoint import read_checkpoint

        ck = read_checkpoint(init)
        if ck["model"] != model:  # said before its config is matched against this card's
            raise ModelError(f"{init}: checkpoint is for model '{ck['model']}', not '{model}'")
        # its own config, --set values included: a checkpoint trained with --set keep_mix=0 continues with it
        kept = (ck.get("meta") or {}).get("config_set")
        kept = {k: ck["config"][k] for k in kept if k in ck["config"]} if isinstance(kept, dict) else {}
        config = config_of(card, ck, init, ignore=[*kept, *(options or {})])
        options = {**kept, **(options or {})}
    config = config or card.default_config
    cfg = card.config(config)
    options = dict(options or {})
    if options:  # config values of this run (a training-only switch such as a pruning mix), checked as a bundle's are
        unknown = sorted(k for k in options if k not in cfg)
        if unknown:
            raise EdgeError(f"--set {unknown[0]}: not a config key of model '{model}' (its keys: "
                            f"{', '.join(sorted(cfg))})")
        from edge.manifest_schema import check_config

        held = {k: v for k, v in kept.items() if k not in given}  # a --set of this command replaces its value
        if held:  # a bad value the checkpoint holds is the file's, not a --set of this command (a review)
            from edge.models.training import check_training_values

            where = f"{init} (its training's --set values)"
            check_training_values(card, check_config({**cfg, **held}, card, where), where)
        cfg = check_config({**cfg, **options}, card, "--set")
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        from edge.files import no_folder

        raise EdgeError(no_folder(parent))
    if out.is_dir():
        raise EdgeError(f"{out}: is a folder; give a checkpoint file name such as {out / (model + '.pt')}")
    if out.suffix.lower() == ".json":  # the training record goes to OUT with .json: it would replace the weights
        raise EdgeError(f"{out}: a checkpoint is not named *.json (its training record is written beside it as "
                        f"{out.with_suffix('.json').name}); use e.g. {out.with_suffix('.pt')}")
    if not os.access(parent, os.W_OK):
        raise EdgeError(f"{parent}: output folder is not writable")
    from edge.files import check_target

    for name, what in ((out, "--out"), (out.with_suffix(".json"), "--out's record")):
        # a device, pipe or socket: the write renames a file onto its name (--out /dev/null replaced the device)
        check_target(name, what, EdgeError)
    if init is not None:  # the checkpoint trained from (and its record) stay what they were
        from edge.files import check_outputs

        check_outputs({"--out": out, "--out's record": out.with_suffix(".json")}, [Path(init)], error=EdgeError)
    # what is already at --out or its record's name must be ours to replace (a user's notes.txt became a checkpoint
    # and notes.json the record, without a word), and the folder must take a file now, not after the run
    check_replaceable_outputs(out)
    from edge.files import check_writable

    check_writable(out, "--out", EdgeError)
    if eval_clips and (card.metric is None or card.data is None):
        raise ModelError(f"model '{model}' has no metric or samples to score; pass --eval-samples 0")
    from edge.models.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
    from edge.models.training import check_options, train

    check_options(card, cfg, device=device, freeze=tuple(freeze), qat=tuple(qat))
    files = data_files(card, cfg)  # the family's reader of each says what is wrong with one: before the bar
    if freeze and init is None:  # the frozen modules would keep the random weights they were built with
        raise EdgeError(f"--freeze {','.join(freeze)}: without --init the frozen weights stay random; give --init "
                        "CHECKPOINT (the trained model whose stage is trained alone)")

    import torch  # noqa: F401  (before the progress bar: without torch it drew "0/2 loss nan" above the error)

    console = make_console(stderr=True)
    init_state = None
    init_partial = False
    init_scales: dict[str, float] = {}
    if init is not None:
        ck = ck or read_checkpoint(init)
        m0, _, _ = model_from_checkpoint(ck, init, expect_model=model)
        if "qat_scales" in (ck.get("meta") or {}):  # a quantization-aware checkpoint: its grids continue
            from edge.calibration.qat_scales import check_scales

            init_scales = check_scales(ck["meta"]["qat_scales"], m0, str(init))
        # a checkpoint from before an option existed continues (the option's layers start fresh); any
        # other difference is refused. Compared with the config as written (loading fills in the
        # values that mean "before the option")
        cfg0 = ck["config"]
        added = sorted(set(cfg) - set(cfg0))
        if not continues({k: v for k, v in cfg0.items() if k not in options}, cfg):
            differ = sorted(k for k in cfg0 if k not in options and cfg.get(k, object()) != cfg0[k])
            hint = "".join(f"; {k}: {cfg0[k]!r} there, {cfg[k]!r} in --config {config}" for k in differ[:3] if k in cfg)
            raise ModelError(f"{init}: checkpoint config differs from --config {config}{hint} (--set KEY=VALUE keeps "
                             "a value the weights do not depend on)")
        changed = sorted(k for k in options if k in cfg0 and cfg0[k] != cfg[k])
        if changed:  # a --set value the checkpoint was not trained with: its weights must still be the model's
            try:
                card.build(cfg).load_state_dict(m0.state_dict(), strict=True)
            except Exception as e:  # torch's size/key mismatch (RuntimeError), a build the value breaks
                raise ModelError(f"{init}: its weights do not fit the model --set {changed[0]}={cfg[changed[0]]} "
                                 f"builds ({first_line(e, 160)})") from None
        if added:
            console.print(f"{init}: predates config option(s) {', '.join(added)}; their layers start fresh",
                          soft_wrap=True, highlight=False, markup=False)
        init_state = m0.state_dict()
        init_partial = bool(added)
    t0 = time.time()
    with Progress(TextColumn("[bold]train {task.fields[name]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=console,
                  disable=json_out) as prog:
        # "-" until the first step: "loss nan" read as the failure that a NaN loss is (edge train stops on one)
        task = prog.add_task("train", total=steps, name=f"{model}/{config}", loss="-")
        every = max(1, steps // 50)

        last = [t0]
        stepped = [False]

        def report(step: int, loss: float) -> None:
            stepped[0] = True
            prog.update(task, completed=step, loss=f"{loss:.4f}")
            now = time.time()
            if not console.is_terminal and not json_out and (step % every == 0 or step == steps or now - last[0] > 30):
                last[0] = now
                console.print(f"step {step}/{steps} loss {loss:.4f} ({now - t0:.0f}s)", markup=False)

        try:
            module, losses, qat_scales = train(card, cfg, steps=steps, batch=batch, lr=lr, seed=seed,
                                               init_state=init_state, progress=report, init_partial=init_partial,
                                               device=device, workers=workers, time_limit=time_limit, freeze=freeze,
                                               qat=qat, qat_init=init_scales, say=lambda m: console.print(
                                                   f"{init}: {m}", soft_wrap=True, highlight=False, markup=False))
        except (MemoryError, RuntimeError, ValueError, IndexError, TypeError, ModelError) as caught:
            # the family's loss or batches raising is one ModelError naming it (edge.models.contract.family_code):
            # what it raised decides here as it did before
            e = caught.__cause__ if isinstance(caught, ModelError) and caught.__cause__ is not None else caught
            if isinstance(e, ModelError) or not isinstance(e, MemoryError | RuntimeError | ValueError | IndexError
                                                            | TypeError):
                raise
            if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and OUT_OF_MEMORY.search(str(e))):
                # torch's allocator says so as a RuntimeError
                raise EdgeError(f"--batch {batch}: out of memory ({first_line(e, 160)}); give a smaller --batch"
                                ) from None
            if typed and not stepped[0]:  # a --set value the card's config rules let through (a family of the
                # user's own without rules, or one they miss): the model it builds cannot take a step. With the
                # config as named or as a checkpoint carries it, the same failure is a bug and keeps its traceback
                given = " ".join(f"--set {k}={json.dumps(v)}" for k, v in typed.items())
                raise EdgeError(f"{given}: the model these values build fails on its first training step "
                                f"({type(e).__name__}: {first_line(e, 160)}); nothing was written") from None
            raise
    train_s = time.time() - t0
    k = max(1, len(losses) // 20)
    meta = {
        "command": train_command(model, out, config, steps, batch, lr, seed, eval_clips, init, device=device,
                                 workers=workers, time_limit=time_limit, freeze=freeze, qat=qat, options=options),
        "model": model, "config_name": config, **({"config_set": options} if options else {}),
        "steps": len(losses), "batch": batch,
        **({"workers": workers} if workers else {}), **({"device": device} if device != "cpu" else {}),
        **({"time_limit_s": time_limit, "steps_asked": steps} if time_limit else {}),
        "lr": lr if lr is not None else card.trainer.lr, "seed": seed, **({"freeze": list(freeze)} if freeze else {}),
        **({"qat": list(qat)} if qat else {}), **({"qat_scales": qat_scales} if qat or qat_scales else {}),
        **({"qat_scales_from_init": sorted(set(init_scales) & set(qat_scales))} if init_scales else {}),
        "loss_first": sum(losses[:k]) / k, "loss_last": sum(losses[-k:]) / k, "train_seconds": round(train_s, 1),
        "versions": provenance(),
        **({"data_files": files} if files else {}),
    }

    def write() -> None:
        from edge.signals_held import signals_held

        with signals_held():  # the checkpoint and its record are one result: both new, or both as they were
            save_checkpoint(out, model, cfg, module, meta)
            atomic_write_text(out.with_suffix(".json"), jsonout.dumps(meta, indent=2) + "\n")

    evaluated = {"set": f"synthetic held-out, {eval_clips} samples, eval seed stream disjoint from training",
                 "metric": card.metric.name if card.metric else None}
    # the record written before the scoring says it was not scored: a scoring interrupted or killed left a record
    # without its "eval" key, saying nothing of it (a review); replaced once the score is there
    unscored = {"scored": False, "why": "the scoring did not finish (interrupted, killed or failed)"}
    meta["eval"] = {**evaluated, **(unscored if eval_clips else {})}
    write()  # before scoring, so an interrupted or killed scoring loses only the score
    metric = None
    if eval_clips:
        from edge.program import evaluate, torch_program

        console.print(f"scoring on {eval_clips} held-out synthetic samples ({card.metric.name})", markup=False)
        try:
            with torch_program(card, module, cfg) as prog:
                metric = evaluate(prog, card, card.data.samples(cfg, "evaluation", eval_clips, 0))
        except KeyboardInterrupt:  # the checkpoint and its record stand, unscored: say so before "interrupted"
            console.print(f"{out}: written (with {out.with_suffix('.json').name}), not scored: the scoring was "
                          "interrupted", highlight=False, markup=False)
            raise
    meta["eval"] = {**evaluated, **(metric or {})}
    write()
    if json_out:
        emit(jsonout.dumps(meta))
    else:
        score = card.metric.format(metric["value"]) if metric else "not evaluated"
        console.print(f"wrote {out}  loss {meta['loss_first']:.3f} -> {meta['loss_last']:.3f}  {score}  "
                      f"({train_s:.0f}s)", highlight=False, markup=False)
