"""The one training loop every family uses (``edge train``): seeded, AdamW + one-cycle, prefetching.

A family provides only its :class:`~edge.models.contract.Trainer` (seeded numpy batches and a loss);
the loop owns what must not differ between families: torch seeding (same seed, same checkpoint), the
optimizer and schedule, gradient clipping, rendering batches in a background thread (OpenCV and numpy
release the GIL, so data generation overlaps the step on 2 cores) and passing a renderer's error to
the caller instead of hanging.

On a machine with many cores and a GPU the renderers, not the step, are the bottleneck, so the loop can
also render in ``workers`` processes (each its own seeded stream, consumed round-robin: the batch order
does not depend on which worker is faster) and step on ``device`` (a loss moves its arrays there with
:func:`batch_tensor`). ``time_limit`` ends the run after that many seconds with the one-cycle schedule
driven by the elapsed time, for a run that must fit a lease; the steps taken are then not reproducible.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from edge.errors import ModelError, first_line
from edge.models.contract import Config, ModelCard, family_code

#: a layer's input is the same when no element differs by more than this, relative to its largest magnitude
SAME_INPUT_RTOL = 1e-5


class Trained(NamedTuple):
    """What :func:`train` returns: the module (CPU, eval mode), the loss per step and, after ``--qat``, each
    quantization-aware layer's trained input scale by name (empty otherwise; see :mod:`edge.models.qat`)."""

    model: Any
    losses: list[float]
    qat_scales: dict[str, float]


def train(card: ModelCard, cfg: Config, *, steps: int, batch: int = 8, lr: float | None = None, seed: int = 0,
          init_state: dict[str, Any] | None = None, progress: Callable[[int, float], None] | None = None,
          threads: int | None = None, init_partial: bool = False, device: str = "cpu", workers: int = 0,
          time_limit: float | None = None, freeze: tuple[str, ...] = (), qat: tuple[str, ...] = (),
          qat_init: Mapping[str, float] | None = None, say: Callable[[str], None] | None = None) -> Trained:
    """Train ``card``'s model for ``steps`` optimizer steps (or until ``time_limit`` seconds, whichever
    ends first); returns :class:`Trained` (module on the CPU in eval mode, loss per step, QAT scales).

    ``init_partial``: ``init_state`` may lack layers (a checkpoint from before a config option added
    them); those keep their fresh initialisation. ``freeze`` names submodules (``encoder``, ``step.rot``)
    whose weights stay as initialised: no gradients, and in eval mode, so their BatchNorm statistics hold
    too (a stage added to a trained model is trained alone). ``qat`` names submodules trained through the
    symmetric INT8 export's rounding (:mod:`edge.models.qat`; the returned model is plain float, the scales
    its layers' inputs were rounded with come beside it). ``qat_init``: the trained input scales ``init_state``'s
    checkpoint carries (its ``meta["qat_scales"]``): the ``qat`` layers start from them (the grid their weights
    learned), and the scales of layers whose weights and inputs this run left as they were (:func:`_same_inputs`)
    are returned again; a layer trained in float, or behind layers that trained, drops its scale, and ``say`` (one
    line each) is told which and why.
    ``workers`` > 0 renders batches in that many processes (see :class:`ProcessBatches`)."""
    if card.trainer is None:
        raise ModelError(f"model '{card.name}' declares no trainer")
    if steps < 1:
        raise ModelError(f"steps must be >= 1, got {steps}")
    if workers < 0:
        raise ModelError(f"workers must be >= 0, got {workers}")
    if time_limit is not None and time_limit <= 0:
        raise ModelError(f"time limit must be > 0 seconds, got {time_limit}")
    check_training_values(card, cfg)
    tr = card.trainer
    deadline = None if time_limit is None else time.monotonic() + time_limit
    batches = batches_for(tr.batches, tuple(freeze))
    procs = ProcessBatches(batches, cfg, batch, seed, workers) if workers else None
    # the parent still prefetches: receiving and unpickling a batch then overlaps the step; under a time
    # limit the wait for a batch ends at the deadline (a stuck renderer cannot keep the run past it)
    join = {"s": JOIN_S}  # how long closing the prefetch waits for its rendering thread (see prefetch)
    source = prefetch(procs if procs is not None else batches(cfg, batch, seed), deadline=deadline, join=join)
    try:
        return _fit(card, cfg, source, steps=steps, lr=lr, seed=seed, init_state=init_state, progress=progress,
                    threads=threads, init_partial=init_partial, device=device, deadline=deadline,
                    freeze=tuple(freeze), qat=tuple(qat), qat_init=dict(qat_init or {}), batch=batch,
                    say=say or (lambda _m: None))
    finally:
        if sys.exc_info()[0] is not None:  # Ctrl-C or an error: leave promptly (it waited for a whole batch)
            join["s"] = INTERRUPTED_JOIN_S
        source.close()
        if procs is not None:
            procs.close()


def _fit(card: ModelCard, cfg: Config, source: Iterator[dict[str, np.ndarray]], *, steps: int, lr: float | None,
         seed: int, init_state: dict[str, Any] | None, progress: Callable[[int, float], None] | None,
         threads: int | None, init_partial: bool, device: str, deadline: float | None,
         freeze: tuple[str, ...] = (), qat: tuple[str, ...] = (), qat_init: Mapping[str, float] | None = None,
         batch: int, say: Callable[[str], None]) -> Trained:
    import torch

    tr = card.trainer
    assert tr is not None
    dev = _device(device)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    model = card.make(cfg)
    if init_state is not None:
        missing, unexpected = model.load_state_dict(init_state, strict=False)
        if unexpected or (missing and not init_partial):
            raise ModelError(f"model '{card.name}': the initial weights do not fit the config (missing "
                             f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    frozen = _frozen(card, model, freeze, qat)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.to(dev).train()
    for m in frozen:
        m.eval()
    peak = tr.lr if lr is None else lr
    opt = torch.optim.AdamW(trainable, lr=peak, weight_decay=tr.weight_decay)
    # total steps >= 1, checked by train(); the warm-up is a tenth of them, except where that is exactly one step
    # (torch divides by warm-up steps - 1: `--steps 10` was a ZeroDivisionError before the first step)
    warm = 0.1 if not math.isclose(0.1 * steps, 1.0) else 0.2
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=steps, pct_start=warm)
    fake = None
    if qat:
        from edge.models.qat import attach

        fake = attach(named_submodules(card, model, qat, option="--qat"))
        fake.start_from(model, qat_init or {})
    scales: dict[str, float] = {}
    try:
        losses = _loop(card, model, source, opt, sched, trainable, steps, deadline, progress)
        if fake is not None:
            scales = fake.named_scales(model)
    finally:
        if fake is not None:
            fake.remove()
    model.cpu().eval()
    rest = {k: v for k, v in (qat_init or {}).items() if k not in scales}
    carried = _carried(card, cfg, model, init_state or {}, rest, seed, batch, say) if rest else {}
    return Trained(model, losses, {**carried, **scales})


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _carried(card: ModelCard, cfg: Config, model: Any, init_state: Mapping[str, Any], scales: Mapping[str, float],
             seed: int, batch: int, say: Callable[[str], None]) -> dict[str, float]:
    """The trained input scales of layers outside this run's ``--qat`` that still hold (:func:`_unchanged`, then
    :func:`_same_inputs`); ``say`` gets a line for each reason a scale is dropped. A check that cannot run (the loss
    raising on its batch) drops what it could not check: the finished run is kept either way."""
    same_w = _unchanged(model, init_state, scales)
    floated = sorted(set(scales) - set(same_w))
    if floated:
        say(f"its trained INT8 scales of {len(floated)} layer(s) ({_names(floated)}) are not kept: those layers "
            "trained in float this run (--qat them to keep training through INT8)")
    if not same_w:
        return {}
    try:
        kept, uncalled = _same_inputs(card, cfg, model, init_state, same_w, seed, batch)
    except Exception as e:  # a family's loss or renderer: the run is done, the check is not
        say(f"its trained INT8 scales of {len(same_w)} unchanged layer(s) ({_names(sorted(same_w))}) are not kept: "
            f"their inputs could not be compared ({first_line(e, 160)})")
        return {}
    moved = sorted(set(same_w) - set(kept) - set(uncalled))
    if moved:
        say(f"its trained INT8 scales of {len(moved)} unchanged layer(s) ({_names(moved)}) are not kept: their inputs "
            "changed, since layers before them trained (freeze those too to keep the scales)")
    if uncalled:
        say(f"its trained INT8 scales of {len(uncalled)} unchanged layer(s) ({_names(sorted(uncalled))}) are not kept: "
            "the training loss does not call them, so their inputs could not be compared")
    return kept


def _unchanged(model: Any, init_state: Mapping[str, Any], scales: Mapping[str, float]) -> dict[str, float]:
    """The entries of ``scales`` (trained input scales by layer name) whose layer's weights are still
    ``init_state``'s to the bit. A layer this run trained in float (or one ``init_state`` lacks) has moved off
    the grid its scale describes; one whose weights held may still see other inputs (:func:`_same_inputs`)."""
    import torch

    layers = dict(model.named_modules())
    out = {}
    for name, s in scales.items():
        layer = layers.get(name)
        if layer is None:
            continue
        params = dict(layer.named_parameters())
        if params and all(f"{name}.{k}" in init_state and torch.equal(v.detach().cpu(), init_state[f"{name}.{k}"].cpu())
                          for k, v in params.items()):
            out[name] = s
    return out


def _same_inputs(card: ModelCard, cfg: Config, model: Any, init_state: Mapping[str, Any],
                 scales: Mapping[str, float], seed: int, batch: int) -> tuple[dict[str, float], list[str]]:
    """The entries of ``scales`` whose layer still gets the inputs it got in ``init_state``'s model: the scale is
    the range of the layer's *input*, which the layers before it produce, so a frozen layer behind layers this run
    trained sees another range (a review: a frozen head's trained scale clipped 55 % of its new inputs, and the
    INT8 export lost 37 points). Both models run the trainer's loss on one fresh batch of the run's size (every
    input rendered, not only the unfrozen modules'), eval mode, same torch seed, each layer's inputs recorded; a
    layer kept is one called as often with inputs equal to ``SAME_INPUT_RTOL``. Returns the kept scales and the
    layers the loss never called (they cannot be checked: dropped). The loss or the renderer raising is the
    caller's to handle (ModelError naming the family)."""
    import torch

    from edge.models.qat import layer_input

    tr = card.trainer
    assert tr is not None
    ref = card.make(cfg)
    ref.load_state_dict(init_state, strict=False)  # a layer init_state lacks stays fresh: its followers differ
    gen = tr.batches(cfg, batch, seed + 7919)  # not a training batch: a stream of its own
    try:
        with family_code(card.name, "trainer's batches"):
            sample = next(gen)
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()

    def inputs(m: Any) -> dict[str, list[Any]]:
        got: dict[str, list[Any]] = {n: [] for n in scales}
        layers = dict(m.named_modules())
        hooks = []
        for name in scales:
            def pre(layer: Any, a: tuple[Any, ...], kw: dict[str, Any], name: str = name) -> None:
                found = layer_input(a, kw)
                got[name].append(found[1].detach().float().cpu().clone() if found else None)
            hooks.append(layers[name].register_forward_pre_hook(pre, with_kwargs=True))
        m.eval()
        torch.manual_seed(seed)
        try:
            with torch.no_grad(), family_code(card.name, "trainer's loss"):
                tr.loss(m, sample)
        finally:
            for h in hooks:
                h.remove()
        return got

    a, b = inputs(ref), inputs(model)

    def same(x: Any, y: Any) -> bool:
        if x is None or y is None or x.shape != y.shape:
            return False
        return bool((x - y).abs().max() <= SAME_INPUT_RTOL * x.abs().max()) if x.numel() else True

    kept = {n: s for n, s in scales.items()
            if a[n] and len(a[n]) == len(b[n]) and all(same(x, y) for x, y in zip(a[n], b[n], strict=True))}
    return kept, sorted(n for n in scales if not a[n])


def _loop(card: ModelCard, model: Any, source: Iterator[dict[str, np.ndarray]], opt: Any, sched: Any,
          trainable: list[Any], steps: int, deadline: float | None,
          progress: Callable[[int, float], None] | None) -> list[float]:
    """The optimizer steps: until ``steps``, the deadline or the batches' end; the loss per step."""
    import torch

    tr = card.trainer
    assert tr is not None
    total = steps
    losses: list[float] = []
    done = 0
    t1: float | None = None  # end of the first step: the schedule's clock starts there (start-up is not warm-up)
    ended = False
    while done < steps:
        if deadline is not None and done:
            now = time.monotonic()
            if now >= deadline:
                break
            assert t1 is not None
            # the schedule follows the clock when that is further on than the step count
            at = (now - t1) / max(deadline - t1, 1e-9)
            pos = min(int(at * (total - 1)), total - 1)
            if pos > sched.last_epoch:
                sched.last_epoch = pos - 1
                sched.step()
        asked = time.monotonic()
        with family_code(card.name, "trainer's batches"):  # a user's renderer: one line naming the family
            b = next(source, None)
        if b is None:
            ended = deadline is None or time.monotonic() < deadline  # not the end of time: of the batches
            if not ended and not done:  # weights that never saw a batch are not a trained model
                if deadline is not None and asked >= deadline:  # the renderer was never waited for
                    raise ModelError(f"model '{card.name}': the time limit ran out before the first step (start-up: "
                                     "loading torch, building the model); give a longer time limit")
                raise ModelError(f"model '{card.name}': no training batch arrived within the time limit (its "
                                 "renderer is stuck or slower than the limit)")
            break
        with family_code(card.name, "trainer's loss"):
            loss, _ = tr.loss(model, b)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):  # the weights are NaN from here on: never a checkpoint
            # (the first loss is the starting weights' on the first batch: no learning rate has acted on it yet)
            why = ("before any update: the config or the data, not the learning rate" if done == 0
                   else "a learning rate too high for this model?")
            raise ModelError(f"model '{card.name}': the training loss became {losses[-1]} at step {done + 1} "
                             f"({why}); nothing was written")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tr.clip_grad:
            torch.nn.utils.clip_grad_norm_(trainable, tr.clip_grad)
        try:
            opt.step()
        except RuntimeError as e:  # torch's Adam with a learning rate past float32 (--lr 1e38): a traceback before
            if "overflow" not in str(e):
                raise
            peak = opt.param_groups[0].get("max_lr", opt.param_groups[0]["lr"])  # the schedule's peak: --lr
            raise ModelError(f"model '{card.name}': the optimizer's step failed at step {done + 1} ("
                             f"{first_line(e, 120)}): a learning rate of {peak:g} is too large; nothing was written"
                             ) from None
        if sched.last_epoch < total:
            sched.step()
        done += 1
        if t1 is None:
            t1 = time.monotonic()
        if progress:
            progress(done, losses[-1])
    if ended:
        raise ModelError(f"model '{card.name}': its trainer's batches ended after {done} of {steps} steps "
                         "(Trainer.batches must be endless)")
    return losses


def batches_for(batches: Callable[..., Iterator[dict[str, np.ndarray]]], freeze: tuple[str, ...]
                ) -> Callable[..., Iterator[dict[str, np.ndarray]]]:
    """The trainer's ``batches`` told what ``freeze`` names, when it takes a ``frozen`` keyword: it may then skip
    rendering what only frozen modules read (a stage trained alone on top of a trained model need not pay for
    the others' inputs). A ``batches`` without that keyword, or no freeze, is used as it is. A
    ``functools.partial`` of a module-level function stays picklable for the rendering processes."""
    import functools
    import inspect

    if not freeze:
        return batches
    try:
        takes = "frozen" in inspect.signature(batches).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        takes = False
    return functools.partial(batches, frozen=tuple(freeze)) if takes else batches


#: the torch device types training runs on
TRAIN_DEVICES = ("cpu", "cuda")


def _device(device: str) -> Any:
    """The torch device to train on; a ModelError (one line) for one this torch cannot use."""
    import torch

    try:
        dev = torch.device(device)
        if dev.type not in TRAIN_DEVICES:  # 'meta' allocated nothing and aborted the process at the first .item();
            # 'xpu' raised an AssertionError
            raise RuntimeError(f"the trainer runs on {' or '.join(TRAIN_DEVICES)} (cuda:N for one of several GPUs)")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("this torch has no CUDA device")
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise ModelError(f"cannot train on device '{device}': {(str(e).splitlines() or [type(e).__name__])[0]}"
                         ) from None
    return dev


def _frozen(card: ModelCard, model: Any, freeze: tuple[str, ...], qat: tuple[str, ...]) -> list[Any]:
    """The ``--freeze`` submodules of ``model``, their weights set not to train; ModelError for a name that is
    not a submodule, a freeze that leaves nothing to train, or a ``--qat`` that names no layer INT8 quantizes."""
    frozen = named_submodules(card, model, freeze)
    for m in frozen:
        m.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise ModelError(f"model '{card.name}': --freeze {','.join(freeze)} leaves nothing to train")
    if qat:
        from edge.models.qat import quantized_layers

        layers = [layer for m in named_submodules(card, model, qat, option="--qat") for layer in quantized_layers(m)]
        if not layers:
            raise ModelError(f"model '{card.name}': --qat {','.join(qat)} holds no layer INT8 quantizes (Conv, Linear)")
        if any(not p.requires_grad for layer in layers for p in layer.parameters()):
            # a frozen layer runs in eval mode and learns no scale: the record said qat, its scales were {}
            raise ModelError(f"model '{card.name}': --qat {','.join(qat)} and --freeze {','.join(freeze)} overlap; a "
                             "frozen layer is not trained, so it gets no trained INT8 scales (train it, or leave it "
                             "out of --qat)")
    return frozen


def check_options(card: ModelCard, cfg: Config, *, device: str = "cpu", freeze: tuple[str, ...] = (),
                  qat: tuple[str, ...] = ()) -> None:
    """What :func:`train` would refuse about ``device``, ``freeze`` and ``qat``, checked on a model built for it
    and dropped: ``edge train`` calls it before its progress bar, so a bad option is one line, not a bar and
    then a line. Nothing to check (the CPU, nothing frozen or fake-quantized) builds nothing."""
    check_training_values(card, cfg)
    if device != "cpu":
        _device(device)
    if freeze or qat:
        _frozen(card, card.make(cfg), tuple(freeze), tuple(qat))


def check_training_values(card: ModelCard, cfg: Config, where: str | None = None) -> None:
    """The trainer's own rules for ``cfg`` (:attr:`Trainer.check`): a ModelError naming ``where`` the values came
    from (an ``--init`` checkpoint), else the model, and the value. A rule that fails on a value of the wrong type
    or a missing key says so the same way."""
    check = getattr(card.trainer, "check", None)
    if check is None:
        return
    try:
        check(cfg)
    except (ValueError, TypeError, KeyError) as e:
        why = first_line(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {first_line(e)}"
        raise ModelError(f"{where or f'model {card.name!r}'}: {why}") from None


def named_submodules(card: ModelCard, model: Any, names: tuple[str, ...], option: str = "--freeze") -> list[Any]:
    """The submodules ``names`` (dotted paths) of ``model`` that ``--freeze`` or ``--qat`` name; a name that is not
    one is a ModelError (naming the CLI ``option`` it came from) listing the top-level ones."""
    out = []
    subs = dict(model.named_modules())
    for name in names:
        if not name or name not in subs:
            top = ", ".join(n for n in subs if n and "." not in n)
            raise ModelError(f"model '{card.name}': {option} {name!r} is not a submodule (top-level: {top})")
        out.append(subs[name])
    return out


def batch_tensor(x: np.ndarray, model: Any) -> Any:
    """A batch array as a tensor on ``model``'s device (the loop may train on a GPU)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    dev = next(model.parameters()).device
    return t if dev.type == "cpu" else t.to(dev, non_blocking=True)


#: what a worker sends when its family's stream ended (the loop then says batches must be endless)
_END = "\x00end"


def _render_worker(batches: Callable[[Config, int, int], Iterator[dict[str, np.ndarray]]], cfg: Config,
                   batch: int, seed: int, q: Any, parent: int) -> None:
    """One rendering process: its own seeded stream into its own queue; an error is passed on as text.
    It exits when its parent is gone (a killed trainer must not leave renderers blocked on a full queue).
    It leaves the thread pools it inherited alone: reconfiguring OpenCV's after a fork (setNumThreads)
    hung in a test run whose parent had used it; OpenCV's and numpy's operations themselves run."""
    import os
    import queue
    import signal

    # the parent's handlers are not the worker's: `edge` turns SIGTERM into KeyboardInterrupt, which this
    # loop would catch and pass on, so the parent's close (SIGTERM) waited 5 s per worker and each printed
    # a traceback at exit; Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def put(item: Any) -> bool:
        while os.getppid() == parent:
            try:
                q.put(item, timeout=1.0)
                return True
            except queue.Full:
                continue
        # the parent is gone: exit without flushing what the queue's feeder thread holds (nobody reads the pipe,
        # and the exit's join on that thread kept a SIGKILLed trainer's workers alive for ever)
        q.cancel_join_thread()
        return False

    try:
        for b in batches(cfg, batch, seed):
            if not put(b):
                return
        put(_END)
    except BaseException as e:  # the consumer raises it
        put(f"{type(e).__name__}: {e}")


def worker_seed(seed: int, worker: int) -> int:
    """The seed worker ``worker`` renders with: distinct per worker and from the single-stream seed."""
    return int(np.random.SeedSequence(seed, spawn_key=(1, worker)).generate_state(1)[0])


class ProcessBatches:
    """Batches from ``workers`` rendering processes, taken round-robin so the order is reproducible.

    Forked where the platform can (Linux; as PyTorch's DataLoader does): the family's generator needs
    no pickling and a user's script no ``__main__`` guard. The loop starts them before it builds the
    model and before any CUDA call. Elsewhere they are spawned, and the generator must be importable by
    name (every family's module-level ``batch_stream`` is). Each worker owns a bounded queue."""

    #: a worker alive but without a batch for this long is stuck: one line instead of a run that hangs
    STALL_S = 600.0
    #: how long a dead worker's last batch may take to arrive whole before the worker is reported dead
    DEAD_GRACE_S = 2.0

    def __init__(self, batches: Callable[[Config, int, int], Iterator[dict[str, np.ndarray]]], cfg: Config,
                 batch: int, seed: int, workers: int, depth: int = 3, stall_s: float | None = None) -> None:
        import multiprocessing as mp
        import os
        import threading

        self._closed = threading.Event()  # set by close(): a batch read still waiting ends
        self.stall_s = self.STALL_S if stall_s is None else stall_s
        self.method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(self.method)
        self.queues = [ctx.Queue(maxsize=depth) for _ in range(workers)]
        self.procs = [ctx.Process(target=_render_worker, daemon=True,
                                  args=(batches, cfg, batch, worker_seed(seed, w), q, os.getpid()))
                      for w, q in enumerate(self.queues)]
        try:
            for p in self.procs:
                p.start()
        except BaseException:
            self.close()
            raise
        self.i = 0

    def __iter__(self) -> ProcessBatches:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        import queue
        import threading

        w = self.i % len(self.queues)
        self.i += 1
        since = time.monotonic()
        got: dict[str, Any] = {}

        def take() -> None:  # a queue's get, in a thread: a worker killed part-way through sending a batch left
            # get() reading the rest of that message for ever (its timeout covers only the wait for a first byte),
            # with no line; here the worker's death is seen while the read waits (an OOM kill, a review). It ends
            # when close() is called (a run that ended while it waited left it, and the queue, for good: a review)
            while not self._closed.is_set():
                try:
                    got["item"] = self.queues[w].get(timeout=0.5)
                    return
                except queue.Empty:
                    continue
                except BaseException as e:
                    got["error"] = e
                    return

        reader = threading.Thread(target=take, daemon=True, name=f"edge-batch-reader-{w}")
        reader.start()
        dead_since: float | None = None
        while True:
            reader.join(timeout=min(1.0, self.stall_s))
            if not reader.is_alive():
                break
            now = time.monotonic()
            if not self.procs[w].is_alive():  # a last whole batch may still be in the pipe: a moment for it
                dead_since = now if dead_since is None else dead_since
                if now - dead_since >= self.DEAD_GRACE_S:
                    raise ModelError(f"batch worker {w} died (exit code {self.procs[w].exitcode})")
            elif now - since >= self.stall_s:
                raise ModelError(f"batch worker {w} is alive but gave no batch in {self.stall_s:g} s "
                                 "(its renderer is stuck)")
        if "item" not in got and "error" not in got:  # closed while it waited
            raise ModelError("the batch workers were closed")
        if "error" in got:
            raise ModelError(f"batch worker {w}: its batch could not be read ({type(got['error']).__name__}: "
                             f"{got['error']})")
        item = got["item"]
        if item == _END:
            raise StopIteration
        if isinstance(item, str):
            raise ModelError(f"batch worker {w}: {item}")
        return item

    def close(self) -> None:
        self._closed.set()
        for p in self.procs:
            if p.pid is not None and p.is_alive():
                p.terminate()
        for p in self.procs:
            if p.pid is not None:
                p.join(timeout=5)
        for q in self.queues:
            q.cancel_join_thread()
            q.close()
            # and this process's copy of the pipe's write end (the workers' copies went with them): a read left
            # inside a dead worker's half-sent batch gets end-of-file and its thread ends. multiprocessing keeps that
            # end private (``_writer``); without it the thread stays blocked, as before
            with contextlib.suppress(AttributeError, OSError):
                q._writer.close()


#: how long a finished prefetch waits for its thread to finish the batch it is rendering (s); past a deadline
#: at most DEADLINE_GRACE_S more, after an interruption or error INTERRUPTED_JOIN_S
JOIN_S, DEADLINE_GRACE_S, INTERRUPTED_JOIN_S = 60.0, 2.0, 0.5


def prefetch(it: Iterator[dict[str, np.ndarray]], depth: int = 4, deadline: float | None = None,
             join: dict[str, float] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Draw items of ``it`` in a background thread; its exceptions are raised here, in the consumer, and
    its end ends this iterator too, as does ``deadline`` (a ``time.monotonic()`` time) while waiting.
    Closing it waits for the thread (``join["s"]`` seconds, default :data:`JOIN_S`; with a deadline, no longer
    than :data:`DEADLINE_GRACE_S` past it), so that it is not inside native code when the interpreter exits."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    end = object()

    def work() -> None:
        try:
            for item in it:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # hand the generator's error to the consumer instead of hanging it
            put(e)

    th = threading.Thread(target=work, daemon=True, name="edge-prefetch")
    th.start()
    expired = False
    try:
        while True:
            try:
                item = q.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:  # the deadline passed while the source had nothing
                expired = True
                return
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # waited for, up to one batch's rendering: a daemon thread still inside numpy / OpenCV / torch code when the
        # interpreter exited aborted the process (std::terminate, exit 134) after the checkpoint was written, in 1
        # of ~8 `edge train --steps 1` runs. Not a source that missed the deadline (it may be stuck for good), and a
        # time-limited run not much past its limit (a batch of 1024 rendered 13 s past it)
        wait = (join or {}).get("s", JOIN_S)
        raised = sys.exc_info()[0]
        if raised is not None and not issubclass(raised, GeneratorExit):  # an interruption or error raised through
            wait = min(wait, INTERRUPTED_JOIN_S)  # this generator's wait: the caller's 0.5 s came after 60 s here
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()) + DEADLINE_GRACE_S)
        th.join(timeout=0 if expired else wait)
