"""The shared training loop's options for big machines: rendering in worker processes (reproducible,
errors passed on), a device, a time limit that ends the run with the schedule following the clock."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.errors import ModelError  # noqa: E402
from edge.models.training import batch_tensor, train, worker_seed  # noqa: E402


def test_workers_give_the_same_losses_run_after_run(toy: Any) -> None:
    cfg = toy.config("tiny")
    _, a, _ = train(toy, cfg, steps=5, batch=3, seed=4, workers=2)
    _, b, _ = train(toy, cfg, steps=5, batch=3, seed=4, workers=2)
    _, one, _ = train(toy, cfg, steps=5, batch=3, seed=4)
    assert a == b and len(a) == 5
    assert a != one  # workers render their own seeded streams, not the single stream's
    assert len({worker_seed(4, w) for w in range(8)} | {4}) == 9


def test_a_worker_error_is_raised_in_the_loop(toy: Any) -> None:
    def broken(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        raise ValueError("renderer lost its textures")
        yield {}

    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, batches=broken))
    with pytest.raises(ModelError, match="batch worker 0: ValueError: renderer lost its textures"):
        train(card, card.config("tiny"), steps=3, batch=2, workers=2)


def three(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    """Three of the toy family's batches."""
    import toyfam.card

    it = toyfam.card.batches(cfg, batch, seed)
    for _ in range(3):
        yield next(it)


def test_forked_workers_render_after_the_parent_used_opencvs_threads(toy: Any) -> None:
    """A run in a process that used OpenCV's thread pool first (as a test session or a notebook does):
    the forked workers must not touch the pool's configuration (setNumThreads hung there)."""
    cv2 = pytest.importorskip("cv2")
    img = np.random.default_rng(0).integers(0, 255, (900, 1600, 3), dtype=np.uint8)
    for _ in range(5):
        cv2.resize(img, (800, 450), interpolation=cv2.INTER_AREA)
    _, losses, _ = train(toy, toy.config("tiny"), steps=3, batch=2, workers=2)
    assert len(losses) == 3


def test_a_worker_stream_that_ends_is_the_endless_error_and_no_worker_outlives_the_run(toy: Any) -> None:
    import multiprocessing

    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, batches=three))
    with pytest.raises(ModelError, match="ended after 6 of 20 steps"):  # 2 workers x 3 batches
        train(card, card.config("tiny"), steps=20, batch=2, workers=2)
    assert multiprocessing.active_children() == []
    with pytest.raises(ModelError, match="ended after 3 of 20 steps"):  # also under a time limit
        train(card, card.config("tiny"), steps=20, batch=2, time_limit=60)
    with pytest.raises(ModelError, match="steps must be >= 1"):
        train(toy, toy.config("tiny"), steps=0, batch=2)


def test_time_limit_ends_the_run_early_with_a_cpu_module(toy: Any) -> None:
    def slow(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        import time

        for b in toy.trainer.batches(cfg, batch, seed):
            time.sleep(0.05)
            yield b

    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, batches=slow))
    # 4 s: long enough that a loaded machine (two test workers starting torch) still gets a first batch in,
    # short enough that 0.05 s per batch cannot reach 100 steps
    model, losses, _ = train(card, card.config("tiny"), steps=100_000, batch=2, time_limit=4.0)
    assert 1 <= len(losses) < 100
    assert next(model.parameters()).device.type == "cpu" and not model.training
    with pytest.raises(ModelError, match="time limit must be > 0"):
        train(card, card.config("tiny"), steps=3, batch=2, time_limit=0)


def test_an_unusable_device_is_one_line(toy: Any) -> None:
    with pytest.raises(ModelError, match="cannot train on device 'nonsense'"):
        train(toy, toy.config("tiny"), steps=1, batch=2, device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="cannot train on device 'cuda'"):
            train(toy, toy.config("tiny"), steps=1, batch=2, device="cuda")


def test_a_closed_prefetch_has_waited_for_its_thread() -> None:
    """The rendering thread was left running when training ended; still inside native code when the interpreter
    exited, it aborted the process (exit 134, "terminate called without an active exception") after the
    checkpoint was written, in about 1 of 8 `edge train --steps 1` runs."""
    import threading
    import time

    from edge.models.training import prefetch

    def slow() -> Iterator[dict[str, np.ndarray]]:
        while True:
            time.sleep(0.3)  # a batch being rendered when the consumer stops
            yield {"x": np.zeros(1)}

    g = prefetch(slow(), depth=1)
    next(g)
    g.close()
    assert not [t for t in threading.enumerate() if t.name == "edge-prefetch"]


def test_a_closed_prefetch_past_its_deadline_waits_only_a_grace() -> None:
    """Waiting for the batch being rendered kept a time-limited run 13 s past its limit (a batch of 1024): past the
    deadline the wait is at most DEADLINE_GRACE_S."""
    import time

    from edge.models.training import DEADLINE_GRACE_S, prefetch

    def slow() -> Iterator[dict[str, np.ndarray]]:
        yield {"x": np.zeros(1)}
        time.sleep(30)  # a large batch still rendering when the time is up
        yield {"x": np.zeros(1)}

    g = prefetch(slow(), depth=1, deadline=time.monotonic() + 0.2)
    next(g)
    time.sleep(0.3)
    t = time.monotonic()
    g.close()
    assert time.monotonic() - t < DEADLINE_GRACE_S + 1.0


def test_devices_training_cannot_use_are_one_line(toy: Any) -> None:
    """'meta' allocated nothing, trained, and aborted the process at the first .item() (exit 134); 'xpu' was torch's
    AssertionError (exit 1)."""
    for device in ("meta", "xpu"):
        with pytest.raises(ModelError, match=f"cannot train on device '{device}': the trainer runs on cpu or cuda"):
            train(toy, toy.config("tiny"), steps=1, batch=2, device=device)


def test_batch_tensor_lands_on_the_models_device() -> None:
    m = torch.nn.Linear(2, 2)
    t = batch_tensor(np.arange(6, dtype=np.float32).reshape(3, 2)[:, ::-1], m)
    assert t.device == next(m.parameters()).device and t.tolist() == [[1, 0], [3, 2], [5, 4]]


def test_cli_refuses_negative_workers(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "edge.cli.main", "train", "lane", "--out", str(tmp_path / "x.pt"),
                        "--workers", "-1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_the_weights_are_written_before_scoring(toy: Any, tmp_path: Path) -> None:
    import json

    import edge
    from edge.cli.train_cmd import run_train

    def lost(cfg: dict[str, Any], role: str, n: int, seed: int) -> list:
        raise KeyboardInterrupt  # the user gives up on a long scoring run

    card = dataclasses.replace(toy, name="toyscore", data=dataclasses.replace(toy.data, samples=lost))
    edge.models.register("toyscore", lambda: card)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_train("toyscore", tmp_path / "t.pt", "tiny", 2, 2, None, 0, 5, None, True)
    finally:
        edge.models.unregister("toyscore")
    rec = json.loads((tmp_path / "t.json").read_text())
    assert (tmp_path / "t.pt").is_file() and rec["steps"] == 2
    # the record says it was not scored (it had no "eval" key, saying nothing: a review)
    assert rec["eval"]["scored"] is False and "did not finish" in rec["eval"]["why"] and "value" not in rec["eval"]
    assert rec["eval"]["set"].startswith("synthetic held-out, 5 samples")
    assert rec["command"] == (f"edge train toyscore --config tiny --steps 2 --batch 2 --seed 0 --eval-samples 5 "
                              f"--out {tmp_path / 't.pt'}")


def test_init_without_config_continues_in_the_checkpoints_config(toy: Any, tmp_path: Path) -> None:
    """`edge train --init ck.pt` without --config: the config the checkpoint was trained with (it took the card's
    default and refused the checkpoint as a config mismatch); one that matches no config is one line."""
    import json

    import edge
    from edge.cli.train_cmd import config_of, run_train

    edge.models.register("toyinit", lambda: dataclasses.replace(toy, name="toyinit"))
    try:
        assert toy.default_config != "tiny"  # else this would not tell the two apart
        run_train("toyinit", tmp_path / "a.pt", "tiny", 1, 2, None, 0, 0, None, True)
        run_train("toyinit", tmp_path / "b.pt", None, 1, 2, None, 0, 0, tmp_path / "a.pt", True)
        assert json.loads((tmp_path / "b.json").read_text())["config_name"] == "tiny"
    finally:
        edge.models.unregister("toyinit")
    with pytest.raises(ModelError, match=r"a\.pt: its config is none of model 'toyinit''s .*give --config"):
        config_of(dataclasses.replace(toy, name="toyinit"), {"config": {"dim": -1}}, tmp_path / "a.pt")
    # two configs of equal values: the one the checkpoint's record names, not the first
    twin = dataclasses.replace(toy, name="toyinit", configs={**toy.configs, "tiny2": dict(toy.configs["tiny"])})
    ck = {"config": dict(toy.configs["tiny"]), "meta": {"config_name": "tiny2"}}
    assert config_of(twin, ck, tmp_path / "a.pt") == "tiny2"
    assert config_of(twin, {**ck, "meta": {}}, tmp_path / "a.pt") == "tiny"
    # another family's checkpoint: said as such, before any config is matched against this card's
    with pytest.raises(ModelError, match=r"a\.pt: checkpoint is for model 'toyinit', not 'lane'"):
        run_train("lane", tmp_path / "c.pt", None, 1, 2, None, 0, 0, tmp_path / "a.pt", True)


def test_the_recorded_command_keeps_every_option_that_changes_the_weights(tmp_path: Path) -> None:
    """A fine-tune's record says it started from another checkpoint, under a time limit, with workers."""
    import shlex

    from edge.cli.train_cmd import train_command

    out = tmp_path / "my run" / "w.pt"
    cmd = train_command("lane", out, "default", 2400, 8, 1e-3, 13, 100, Path("init weights.pt"), device="cuda:1",
                        workers=3, time_limit=3000.0, freeze=("encoder", "step.rot"))
    assert shlex.split(cmd) == ["edge", "train", "lane", "--config", "default", "--steps", "2400", "--batch", "8",
                                "--lr", "0.001", "--seed", "13", "--eval-samples", "100", "--init",
                                "init weights.pt", "--freeze", "encoder,step.rot", "--workers", "3", "--device",
                                "cuda:1", "--time-limit", "3000", "--out", str(out)]


def test_frozen_submodules_keep_their_weights_and_the_rest_learns(toy: Any) -> None:
    cfg = toy.config("tiny")
    torch.manual_seed(0)
    init = toy.build(cfg).state_dict()
    model, _, _ = train(toy, cfg, steps=3, batch=2, init_state=init, freeze=("embed",))
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in init.items() if k.startswith("embed."))
    assert not all(torch.equal(got[k], v) for k, v in init.items() if k.startswith("head."))
    assert all(p.requires_grad is False for p in model.embed.parameters())
    with pytest.raises(ModelError, match="--freeze 'embedd' is not a submodule \\(top-level: embed, head\\)"):
        train(toy, cfg, steps=1, batch=1, freeze=("embedd",))
    with pytest.raises(ModelError, match="leaves nothing to train"):
        train(toy, cfg, steps=1, batch=1, freeze=("embed", "head"))


def test_under_a_time_limit_the_learning_rate_follows_the_clock(toy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One-cycle over the time limit: it starts at peak/25 after start-up, reaches (about) the peak and ends
    near the bottom, however many steps fit; the scheduler never steps past its total."""
    import time

    lrs: list[float] = []

    class Recording(torch.optim.AdamW):
        def step(self, *a: Any, **k: Any) -> Any:
            lrs.append(self.param_groups[0]["lr"])
            return super().step(*a, **k)

    def slow(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        for b in toy.trainer.batches(cfg, batch, seed):
            time.sleep(0.04)
            yield b

    # torch's one-time start-up (its first forward and backward: 1.5-2 s on a loaded 2-core Zen 5) is out of the
    # timed run: inside it, 2 s left room for 2 steps and the schedule's shape could not be seen
    warm = toy.make(toy.config("tiny"))
    loss, _ = toy.trainer.loss(warm, next(toy.trainer.batches(toy.config("tiny"), 2, 0)))
    loss.backward()
    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, batches=slow))
    _, losses, _ = train(card, card.config("tiny"), steps=100_000, batch=2, lr=1e-2, time_limit=2.0)
    assert len(lrs) == len(losses) >= 5
    assert lrs[0] == pytest.approx(1e-2 / 25) and max(lrs) > 0.7e-2 and lrs[-1] < 0.3e-2
    assert lrs.index(max(lrs)) < len(lrs) - 1


def one_then_stuck(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    """One toy batch, then a renderer that never returns (alive, stuck)."""
    import time

    import toyfam.card

    yield next(toyfam.card.batches(cfg, batch, seed))
    while True:
        time.sleep(3600)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_stuck_renderer_cannot_keep_a_time_limited_run_past_its_limit(toy: Any, workers: int) -> None:
    """The wait for the next batch ends at the deadline: the run returns its weights after the step it
    had, in the single stream and with a worker process alike."""
    import threading
    import time

    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, batches=one_then_stuck))
    got: list[Any] = []
    t = time.monotonic()
    th = threading.Thread(target=lambda: got.append(train(card, card.config("tiny"), steps=50, batch=2,
                                                          workers=workers, time_limit=2.0)), daemon=True)
    th.start()
    th.join(timeout=60)
    assert not th.is_alive(), "the run waited past its time limit for a stuck renderer"
    model, losses, _ = got[0]
    assert len(losses) == 1 and time.monotonic() - t < 30 and next(model.parameters()).device.type == "cpu"


def test_a_stuck_worker_without_a_time_limit_is_one_line(toy: Any) -> None:
    from edge.models.training import ProcessBatches

    procs = ProcessBatches(one_then_stuck, toy.config("tiny"), 2, 0, 1, stall_s=1.5)
    try:
        next(procs)
        with pytest.raises(ModelError, match=r"batch worker 0 is alive but gave no batch in 1.5 s"):
            next(procs)
    finally:
        procs.close()


def stuck_from_the_start(cfg: dict[str, Any], batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    import time

    while True:
        time.sleep(3600)
    yield {}


def test_no_batch_within_the_time_limit_is_one_line_not_an_untrained_model(toy: Any) -> None:
    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, batches=stuck_from_the_start))
    with pytest.raises(ModelError, match="no training batch arrived within the time limit"):
        train(card, card.config("tiny"), steps=5, batch=2, time_limit=1.0)


def test_a_time_limit_spent_in_start_up_says_so_not_that_the_renderer_is_stuck(toy: Any) -> None:
    """`--time-limit 2` in a fresh process: importing torch and building the model took the whole limit, and the
    line blamed the renderer (it was never waited for)."""
    import time

    def slow_make(cfg: dict[str, Any]) -> Any:
        time.sleep(0.6)  # past the limit below before the loop asks for a batch
        return toy.make(cfg)

    card = dataclasses.replace(toy, build=lambda cfg: slow_make(cfg),
                               trainer=dataclasses.replace(toy.trainer, batches=stuck_from_the_start))
    with pytest.raises(ModelError, match=r"time limit ran out before the first step \(start-up"):
        train(card, card.config("tiny"), steps=5, batch=2, time_limit=0.3)


def test_a_loss_that_is_not_finite_stops_the_run_and_keeps_the_previous_checkpoint(toy: Any, tmp_path: Path) -> None:
    """A learning rate far too high: the run stops at the first NaN/inf loss with one line, and the checkpoint
    already at --out (a good one, being fine-tuned in place) is not replaced by NaN weights."""
    import edge
    from edge.cli.train_cmd import run_train

    card = dataclasses.replace(toy, name="toynan")
    edge.models.register("toynan", lambda: card)
    from edge.models.checkpoint import save_checkpoint

    out = tmp_path / "t.pt"
    save_checkpoint(out, "toynan", card.config("tiny"), card.build(card.config("tiny")), {})  # the previous weights
    before = out.read_bytes()
    try:
        with pytest.raises(ModelError, match=r"the training loss became (nan|inf|-inf) at step \d+"):
            run_train("toynan", out, "tiny", 20, 2, 1e30, 0, 0, None, True)
    finally:
        edge.models.unregister("toynan")
    assert out.read_bytes() == before and not (tmp_path / "t.json").exists()


def test_a_checkpoint_named_json_is_refused_before_training(toy: Any, tmp_path: Path) -> None:
    """The training record goes beside the checkpoint with .json: --out m.json would have been replaced by it."""
    from edge.cli.train_cmd import run_train
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match=r"m\.json: a checkpoint is not named \*\.json"):
        run_train("lane", tmp_path / "m.json", "tiny", 2, 2, None, 0, 0, None, True)


def test_render_workers_end_at_once_under_edges_sigterm_handler(toy: Any) -> None:
    """`edge` turns SIGTERM into KeyboardInterrupt; forked render workers inherited it, caught it in their
    loop and kept offering batches, so closing them took 5 s per worker and each printed a traceback at
    exit. Workers take the default SIGTERM (and leave Ctrl-C to the parent)."""
    import signal
    import time

    from edge.models.training import ProcessBatches

    def interrupt(_s: int, _f: object) -> None:
        raise KeyboardInterrupt

    theirs = signal.signal(signal.SIGTERM, interrupt)
    try:
        pb = ProcessBatches(toy.trainer.batches, toy.config("tiny"), 2, 0, workers=2)
        next(pb)
        time.sleep(0.5)  # the workers fill their queues and block offering more
        t = time.monotonic()
        pb.close()
        took = time.monotonic() - t
    finally:
        signal.signal(signal.SIGTERM, theirs)
    assert took < 4.0, took  # 5 s per worker before
    assert all(p.exitcode == -signal.SIGTERM for p in pb.procs), [p.exitcode for p in pb.procs]


def test_a_card_whose_graph_name_is_not_a_file_name_is_refused_when_made(toy: Any) -> None:
    """A graph's name becomes part of file names: a user's card naming one 'enc v2' or '../x' is refused when
    the card is made, not after a whole export when the bundle is committed."""
    for bad in ("enc v2", "../x", ".hidden"):
        g = dataclasses.replace(next(iter(toy.graphs.values())), name=bad)
        with pytest.raises(ModelError, match="must be letters, digits"):
            dataclasses.replace(toy, graphs={bad: g}, programs=tuple(
                dataclasses.replace(p, graphs=(bad,)) for p in toy.programs))


def _takes_frozen(cfg: dict, batch: int, seed: int, worker: int = 0, frozen: tuple[str, ...] = ()) -> Any:
    yield {"frozen": np.array(list(frozen) or ["-"])}


def _plain(cfg: dict, batch: int, seed: int, worker: int = 0) -> Any:
    yield {"x": np.zeros(1)}


def test_the_batches_hear_what_is_frozen_when_they_ask() -> None:
    """``batches_for``: a trainer's ``batches`` with a ``frozen`` keyword gets the --freeze names (so it can skip
    what only frozen modules read); one without it, or no freeze, is called as it is; the wrapped callable
    still pickles for the rendering processes."""
    import pickle

    from edge.models.training import batches_for

    got = batches_for(_takes_frozen, ("encoder", "step"))
    assert next(got({}, 1, 0))["frozen"].tolist() == ["encoder", "step"]
    assert next(pickle.loads(pickle.dumps(got))({}, 1, 0, worker=1))["frozen"].tolist() == ["encoder", "step"]
    assert batches_for(_takes_frozen, ()) is _takes_frozen
    assert batches_for(_plain, ("encoder",)) is _plain


def _big_batches(cfg: dict, batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    while True:  # a megabyte a batch: one fills the pipe to the parent, the next waits in the queue
        yield {"x": np.zeros(1 << 18, np.float32)}


def _trainer_then_sleep(conn: Any) -> None:
    """Stands in for `edge train`: starts its rendering workers, says their pids, and sleeps (to be SIGKILLed)."""
    import time

    from edge.models.training import ProcessBatches

    pb = ProcessBatches(_big_batches, {}, 1, 0, workers=2)
    conn.send([p.pid for p in pb.procs])
    time.sleep(60)


def _alive(pid: int) -> bool:
    """Running, not a zombie: a container's init may never reap an orphan that exited."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_render_workers_of_a_killed_trainer_exit() -> None:
    """Found by a review: after `kill -9` of `edge train --workers 2`, its workers stayed alive for ever: a batch
    put in the queue was held by the queue's feeder thread, blocked writing to a pipe nobody reads, and the exit
    waited for it. A worker whose parent is gone now exits without flushing."""
    import multiprocessing as mp
    import os
    import signal
    import time

    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    trainer = ctx.Process(target=_trainer_then_sleep, args=(theirs,))
    trainer.start()
    pids = mine.recv()
    time.sleep(1.5)  # the queues fill and the feeders block on the pipes
    os.kill(trainer.pid, signal.SIGKILL)
    trainer.join()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if _alive(p)]
    for p in left:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not left, f"render workers {left} outlived their killed trainer"


def test_the_files_a_config_trains_on_are_in_its_record(toy: Any, tmp_path: Path) -> None:
    """Found by a review: lane's realistic clips are drawn on a layouts file an environment variable can change; two
    files gave different losses under identical records. A trainer's ``data_files`` are recorded with their
    sha256."""
    import hashlib
    import json

    import edge
    from edge.cli.train_cmd import run_train

    data = tmp_path / "layouts.json"
    data.write_text("{}\n")
    card = dataclasses.replace(toy, name="toyfiles", trainer=dataclasses.replace(
        toy.trainer, data_files=lambda cfg: {"layouts": data, "gone": tmp_path / "nowhere.json"}))
    edge.models.register("toyfiles", lambda: card)
    try:
        run_train("toyfiles", tmp_path / "t.pt", "tiny", 2, 2, None, 0, 0, None, True)
    finally:
        edge.models.unregister("toyfiles")
    rec = json.loads((tmp_path / "t.json").read_text())
    assert rec["data_files"] == {
        "layouts": {"path": str(data.resolve()), "bytes": 3, "sha256": hashlib.sha256(b"{}\n").hexdigest()},
        "gone": {"path": str(tmp_path / "nowhere.json"), "missing": True}}


def test_a_learning_rate_past_float32_is_one_line(toy: Any) -> None:
    """--lr 1e38 passed the finite check; torch's AdamW then raised 'value cannot be converted to type float without
    overflow' as a traceback (exit 1)."""
    with pytest.raises(ModelError, match=r"the optimizer's step failed at step 1 \(.*overflow.*\): a learning rate "
                                         r"of 1e\+38 is too large; nothing was written"):
        train(toy, toy.config("tiny"), steps=3, batch=2, lr=1e38)


def test_a_loss_that_is_nan_before_any_update_does_not_blame_the_learning_rate(toy: Any) -> None:
    def nan_loss(model: Any, b: dict[str, Any]) -> tuple[Any, dict[str, float]]:
        loss, parts = toy.trainer.loss(model, b)
        return loss * float("nan"), parts

    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, loss=nan_loss))
    with pytest.raises(ModelError, match=r"became nan at step 1 \(before any update: the config or the data, not "
                                         r"the learning rate\)"):
        train(card, card.config("tiny"), steps=3, batch=2)


def test_a_checkpoint_of_another_suffix_does_not_take_anothers_record(toy: Any, tmp_path: Path) -> None:
    """Found by a review: `--out lane.ckpt` beside lane.pt replaced lane.pt's record (both are lane.json) without a
    word. Refused while the other checkpoint is there; its own record, or an orphaned one, is replaced."""
    import json

    import edge
    from edge.cli.train_cmd import run_train
    from edge.errors import EdgeError

    card = dataclasses.replace(toy, name="toyrec")
    edge.models.register("toyrec", lambda: card)
    try:
        run_train("toyrec", tmp_path / "m.pt", "tiny", 1, 2, None, 0, 0, None, True)
        first = (tmp_path / "m.json").read_text()
        with pytest.raises(EdgeError, match=r"m\.json: the training record of .*m\.pt, which --out m\.ckpt would "
                                            r"replace with its own"):
            run_train("toyrec", tmp_path / "m.ckpt", "tiny", 1, 2, None, 0, 0, None, True)
        assert (tmp_path / "m.json").read_text() == first and not (tmp_path / "m.ckpt").exists()
        run_train("toyrec", tmp_path / "m.pt", "tiny", 1, 2, None, 5, 0, None, True)  # its own record: replaced
        (tmp_path / "m.pt").unlink()
        run_train("toyrec", tmp_path / "m.ckpt", "tiny", 1, 2, None, 0, 0, None, True)  # an orphaned record: too
    finally:
        edge.models.unregister("toyrec")
    assert json.loads((tmp_path / "m.json").read_text())["command"].endswith("m.ckpt")


def test_whose_record_it_is_reads_every_form_and_a_renamed_pair_is_its_own(toy: Any, tmp_path: Path) -> None:
    """A review of the rule above: a checkpoint and record renamed together (m.pt/m.json -> best.pt/best.json) still
    name m.pt inside, and a retrain into best.pt was refused; records of earlier versions said `-o a.pt` (or
    `-oa.pt`), which the rule did not read. An empty --out (mktemp's) holds nothing and is taken."""
    import json

    import edge
    from edge.cli.train_cmd import check_replaceable_outputs, record_of, run_train
    from edge.errors import EdgeError

    rec = tmp_path / "a.json"
    for cmd, name in (("edge train toy -o a.pt", "a.pt"), ("edge train toy -oa.pt", "a.pt"),
                      ("edge train toy --out=x/a.pt", "a.pt"), ("edge train toy --out 'my runs/a.pt'", "a.pt"),
                      ("edge train toy", None)):
        rec.write_text(json.dumps({"command": cmd, "model": "toy", "steps": 1}))
        assert record_of(rec) == name, cmd
    rec.write_text(json.dumps({"command": "edge train toy --steps 1 -o a.pt", "model": "toy", "steps": 1}))
    (tmp_path / "a.pt").write_bytes(b"")
    with pytest.raises(EdgeError, match="the training record of"):
        check_replaceable_outputs(tmp_path / "a.ckpt")
    card = dataclasses.replace(toy, name="toyren")
    edge.models.register("toyren", lambda: card)
    try:
        run_train("toyren", tmp_path / "m.pt", "tiny", 1, 2, None, 0, 0, None, True)
        (tmp_path / "m.pt").rename(tmp_path / "best.pt")
        (tmp_path / "m.json").rename(tmp_path / "best.json")
        run_train("toyren", tmp_path / "m.pt", "tiny", 1, 2, None, 0, 0, None, True)
        run_train("toyren", tmp_path / "best.pt", "tiny", 1, 2, None, 2, 0, None, True)  # its own record: replaced
        (tmp_path / "empty.pt").write_bytes(b"")
        run_train("toyren", tmp_path / "empty.pt", "tiny", 1, 2, None, 0, 0, None, True)
    finally:
        edge.models.unregister("toyren")
    assert "best.pt" in json.loads((tmp_path / "best.json").read_text())["command"]
    assert (tmp_path / "empty.pt").stat().st_size > 0



def _next_in_thread(pb: Any) -> tuple[Any, list[BaseException]]:
    """``next(pb)`` in a daemon thread (started); the exception it raised lands in the list."""
    import threading

    got: list[BaseException] = []

    def take() -> None:
        try:
            next(pb)
        except BaseException as e:
            got.append(e)

    th = threading.Thread(target=take, daemon=True)
    th.start()
    return th, got

def _one_huge_batch(cfg: dict, batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    yield {"x": np.zeros(1 << 22, np.float32)}  # 16 MB: its sending fills the pipe and waits for the reader
    import time

    time.sleep(3600)
    yield {}


def test_a_worker_killed_while_sending_a_batch_is_one_line() -> None:
    """A review: a render worker killed part-way through sending a batch (an OOM kill) left `edge train` reading
    the rest of that message for ever, with no line (get's timeout covers only the wait for a first byte)."""
    import os
    import signal
    import time

    from edge.models.training import ProcessBatches

    pb = ProcessBatches(_one_huge_batch, {}, 1, 0, workers=1)
    try:
        time.sleep(3)  # the worker has rendered and is blocked sending (64 KB of 16 MB in the pipe)
        os.kill(pb.procs[0].pid, signal.SIGKILL)
        pb.procs[0].join(10)
        t = time.monotonic()
        th, got = _next_in_thread(pb)
        th.join(60)
        assert not th.is_alive(), "reading the dead worker's half-sent batch hung"
        assert isinstance(got[0], ModelError) and "batch worker 0 died (exit code -9)" in str(got[0])
        assert time.monotonic() - t < 30
    finally:
        pb.close()


def test_an_interruption_through_the_prefetch_waits_briefly() -> None:
    """A Ctrl-C/SIGTERM raised while `edge train` waited inside the prefetch generator ran its cleanup first, which
    waited the full 60 s for the rendering thread (the caller's 0.5 s came after it; a review measured 60 s)."""
    import time

    from edge.models.training import prefetch

    def slow() -> Iterator[dict[str, np.ndarray]]:
        yield {"x": np.zeros(1)}
        time.sleep(30)  # the next batch takes long to render
        yield {"x": np.zeros(1)}

    g = prefetch(slow())
    next(g)
    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        g.throw(KeyboardInterrupt)
    assert time.monotonic() - t < 10


def _slow_batches(cfg: dict, batch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
    import time

    while True:
        time.sleep(30)
        yield {"x": np.zeros(1)}


def test_closing_the_workers_ends_a_batch_read_still_waiting() -> None:
    """A time-limited run that ended while a batch was awaited left its reader thread (and the queue's pipes) for
    good, one per run (a review of the reader thread)."""
    import threading
    import time

    from edge.models.training import ProcessBatches

    pb = ProcessBatches(_slow_batches, {}, 1, 0, workers=1)
    th, got = _next_in_thread(pb)
    time.sleep(1.5)
    pb.close()
    th.join(20)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(t.name.startswith("edge-batch-reader") for t in threading.enumerate()):
        time.sleep(0.1)
    assert not th.is_alive() and isinstance(got[0], ModelError)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("edge-batch-reader")]
