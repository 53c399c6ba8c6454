"""Quantization-aware training (``edge train --qat``): the rounding it trains through is the symmetric INT8
export's (per-tensor int8 inputs, per-output-channel int8 weights of Conv/Linear), gradients pass straight
through, and nothing of it stays on the model or in the checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge.errors import ModelError  # noqa: E402
from edge.models.qat import MOMENTUM, QMAX, attach, fake_round, quantized_layers  # noqa: E402
from edge.models.training import train  # noqa: E402


def test_fake_round_is_the_int8_grid_forward_and_the_identity_backward() -> None:
    x = torch.tensor([-3.0, -0.26, 0.0, 0.24, 0.26, 1.0, 5.0], requires_grad=True)
    y = fake_round(x, torch.tensor(0.5 / QMAX * 4))  # scale: 127 steps reach 2.0
    s = 2.0 / QMAX
    want = np.clip(np.round(x.detach().numpy() / s), -QMAX, QMAX) * s
    assert np.allclose(y.detach().numpy(), want, rtol=0, atol=1e-7)
    assert y.detach().numpy().max() == pytest.approx(2.0) and y.detach().numpy().min() == pytest.approx(-2.0)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def _net() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 4 * 4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _reference(net: Any, x: Any, act_scales: list[float]) -> Any:
    """The same forward with every quantized layer's input and weight rounded by hand (numpy-style)."""
    import torch.nn.functional as F

    def rw(w: Any) -> Any:
        s = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / QMAX
        return torch.clamp(torch.round(w / s), -QMAX, QMAX) * s

    def ra(a: Any, s: float) -> Any:
        return torch.clamp(torch.round(a / s), -QMAX, QMAX) * s

    conv, lin1, lin2 = net[0], net[3], net[5]
    h = F.relu(F.conv2d(ra(x, act_scales[0]), rw(conv.weight), conv.bias)).flatten(1)
    h = F.relu(F.linear(ra(h, act_scales[1]), rw(lin1.weight), lin1.bias))
    return F.linear(h, lin2.weight, lin2.bias)  # 8 inputs: a short dot product, float in every INT8 form


def test_attached_layers_compute_what_int8_computes_and_removal_leaves_the_float_model() -> None:
    net = _net().train()
    params = {k: v for k, v in net.named_parameters()}
    before = {k: v.detach().clone() for k, v in params.items()}
    layers = quantized_layers(net)
    assert layers == [net[0], net[3]]  # the 8-input Linear is left float, as the export leaves it
    fq = attach([net])
    x = torch.randn(2, 3, 6, 6)
    y = net(x)  # the first training batch sets each activation scale to its max |x| / 127
    scales = [float(fq.scales[id(layer)]) for layer in layers]
    assert scales[0] == pytest.approx(float(x.abs().max()) / QMAX)
    with torch.no_grad():
        want = _reference(net, x, scales)
    assert torch.allclose(y, want, atol=1e-5)
    y.sum().backward()  # straight through: the float weights get gradients
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (net[0].weight, net[3].weight))
    assert dict(net.named_parameters()).keys() == params.keys()
    assert all(dict(net.named_parameters())[k] is v for k, v in params.items())  # the same Parameter objects
    fq.remove()
    assert all(torch.equal(dict(net.named_parameters())[k], before[k]) for k in before)  # never rounded in place
    with torch.no_grad():
        plain = _net()
        plain.load_state_dict(net.state_dict())
        assert torch.equal(net(x), plain(x))  # no hook left


def test_an_all_zero_first_batch_leaves_the_input_and_the_next_batch_sets_the_scale() -> None:
    net = _net().train()
    fq = attach([net])
    with torch.no_grad():
        y0 = net(torch.zeros(2, 3, 6, 6))
    assert float(fq.scales[id(net[0])]) == 0.0 and torch.isfinite(y0).all()
    x = torch.randn(2, 3, 6, 6)
    net(x)  # not an average with the zero: the first informative batch's own max
    assert float(fq.scales[id(net[0])]) == pytest.approx(float(x.abs().max()) / QMAX)
    net(2 * x)
    assert float(fq.scales[id(net[0])]) == pytest.approx(float(x.abs().max()) / QMAX * (1 + MOMENTUM))
    fq.remove()


def test_eval_mode_keeps_the_scales_training_reached() -> None:
    net = _net().train()
    fq = attach([net])
    net(torch.randn(2, 3, 6, 6))
    s = float(fq.scales[id(net[0])])
    net.eval()
    net(100 * torch.randn(2, 3, 6, 6))  # far larger inputs: clipped to the scale training reached
    assert float(fq.scales[id(net[0])]) == s
    fq.remove()


def test_the_loop_trains_named_submodules_through_int8_and_returns_a_plain_model(toy: Any) -> None:
    cfg = toy.config("tiny")
    torch.manual_seed(0)
    init = toy.build(cfg).state_dict()
    model, q, scales = train(toy, cfg, steps=3, batch=2, init_state=init, qat=("embed",))
    _, f, none = train(toy, cfg, steps=3, batch=2, init_state=init)
    # the scales its inputs were rounded with, by name in the whole model (the export looks them up there)
    assert set(scales) == {"embed.conv.0", "embed.conv.2"} and min(scales.values()) > 0 and none == {}
    assert q[0] != f[0]  # the first step's loss already differs: the forward pass was rounded
    assert set(model.state_dict()) == set(init)  # nothing of the rounding in the weights a checkpoint saves
    assert not any(m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ModelError, match="--qat 'embedd' is not a submodule \\(top-level: embed, head\\)"):
        train(toy, cfg, steps=1, batch=1, qat=("embedd",))
    with pytest.raises(ModelError, match=r"--qat embed\.conv\.1 holds no layer INT8 quantizes"):  # a ReLU
        train(toy, cfg, steps=1, batch=1, qat=("embed.conv.1",))
    # a frozen layer learns no scale: the record said qat while its scales were {} (found by a review)
    with pytest.raises(ModelError, match=r"--qat embed and --freeze embed overlap"):
        train(toy, cfg, steps=1, batch=1, init_state=init, freeze=("embed",), qat=("embed",))


def test_the_recorded_command_keeps_qat() -> None:
    import shlex

    from edge.cli.train_cmd import train_command

    cmd = train_command("lane", Path("w.pt"), "default", 10, 8, None, 0, 0, Path("a.pt"), freeze=("encoder",),
                        qat=("matcher", "step.rot"))
    assert shlex.split(cmd)[-6:] == ["--freeze", "encoder", "--qat", "matcher,step.rot", "--out", "w.pt"]


@pytest.mark.parametrize(("family", "sub"), [("etavla", "policy"), ("lane", "head"), ("pulsar", "blocks")])
def test_every_hooked_layer_is_rounded_in_training(family: str, sub: str) -> None:
    """A review: etavla's and lane's attention projections (q/k/v from slices of a fused Linear's weight) and lane's
    fusion convolution (taps of its weight) read the weight directly, so --qat's hooks never ran on them and the INT8
    export quantized them with calibrated scales, unsaid. Hooked, they go through the layer's own call."""
    from edge.models import get_card
    from edge.models.qat import attach

    card = get_card(family)
    cfg = card.config("tiny")
    torch.manual_seed(0)
    model = card.make(cfg).train()
    fq = attach([dict(model.named_modules())[sub]])
    card.trainer.loss(model, next(card.trainer.batches(cfg, 2, 0)))
    names = {id(m): n for n, m in model.named_modules()}
    ran = fq.named_scales(model)
    assert [names[id(layer)] for layer in fq.layers if names[id(layer)] not in ran] == []
    fq.remove()


def test_the_hooked_forms_compute_the_same_function() -> None:
    """The plain forms a hooked layer takes (the module's own call) equal the sliced forms the export traces."""
    from edge.models.lane.net import UpConcatConv
    from edge.ops.heads import projected_heads

    torch.manual_seed(0)
    proj = torch.nn.Linear(8, 24).double()
    x, q_only = torch.randn(2, 5, 8, dtype=torch.float64), torch.randn(2, 1, 8, dtype=torch.float64)
    plain = [projected_heads(proj, x, 3, 2), projected_heads(proj, x, 3, 2, inputs=(q_only, x, x))]
    fuse = UpConcatConv(5, 3, 4).double().eval()
    low, skip = torch.randn(1, 5, 4, 6, dtype=torch.float64), torch.randn(1, 3, 8, 12, dtype=torch.float64)
    plain_fuse = fuse(low, skip)
    handles = [proj.register_forward_hook(lambda *a: None), fuse[0].register_forward_pre_hook(lambda *a: None)]
    hooked = [projected_heads(proj, x, 3, 2), projected_heads(proj, x, 3, 2, inputs=(q_only, x, x))]
    hooked_fuse = fuse(low, skip)
    for h in handles:
        h.remove()
    for a, b in zip(plain, hooked, strict=True):
        for p, q in zip(a, b, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(plain_fuse, hooked_fuse, rtol=1e-10, atol=1e-10)


def test_a_started_layer_averages_on_from_its_given_scale() -> None:
    """`--init CK --qat`: each layer continues the running average CK's training reached; the first batch
    moves it by MOMENTUM, not to its own max (the weights learned CK's grid)."""
    net = _net().train()
    fq = attach([net])
    assert fq.start_from(net, {"0": 0.5, "5": 9.0, "elsewhere": 1.0}) == ["0"]  # net[5] is float: not hooked
    x = torch.randn(2, 3, 6, 6)
    net(x)
    want = (1 - MOMENTUM) * 0.5 + MOMENTUM * float(x.abs().max()) / QMAX
    assert float(fq.scales[id(net[0])]) == pytest.approx(want)
    assert float(fq.scales[id(net[3])]) > 0 and fq.named_scales(net)["0"] == pytest.approx(want)
    fq.remove()


def test_init_scales_continue_under_qat_stay_with_untouched_layers_and_drop_with_float_training(toy: Any) -> None:
    cfg = toy.config("tiny")
    torch.manual_seed(0)
    init = toy.build(cfg).state_dict()
    big = {"embed.conv.0": 1000.0, "embed.conv.2": 1000.0}  # far from any batch max: visible after 3 steps
    _, _, fresh = train(toy, cfg, steps=3, batch=2, init_state=init, qat=("embed",))
    _, _, went_on = train(toy, cfg, steps=3, batch=2, init_state=init, qat=("embed",), qat_init=big)
    assert max(fresh.values()) < 10 and min(went_on.values()) > 1000 * (1 - MOMENTUM) ** 3 * 0.99
    # frozen, and nothing before it trained (its input is the image): the grid it learned still holds, handed on
    _, _, kept = train(toy, cfg, steps=2, batch=2, init_state=init, freeze=("embed",), qat_init=big)
    assert kept == big
    # trained in float: the weights left that grid, and the scale goes
    _, _, dropped = train(toy, cfg, steps=2, batch=2, init_state=init, qat_init=big)
    assert dropped == {}
    # frozen, but behind layers that trained: its weights held and its inputs did not (a review: such a stale scale
    # clipped 55 % of a frozen head's new inputs in the INT8 export), so the scale goes
    head = {"head.qkv": 0.5, "head.out": 0.5}
    said: list[str] = []
    _, _, behind = train(toy, cfg, steps=2, batch=2, init_state=init, freeze=("head",), qat_init={**head, **big},
                         say=said.append)
    assert behind == {}
    assert said == ["its trained INT8 scales of 2 layer(s) (embed.conv.0, embed.conv.2) are not kept: those layers "
                    "trained in float this run (--qat them to keep training through INT8)",
                    "its trained INT8 scales of 2 unchanged layer(s) (head.out, head.qkv) are not kept: their inputs "
                    "changed, since layers before them trained (freeze those too to keep the scales)"]
    # with what is before it frozen too, the same scales are kept
    _, _, both = train(toy, cfg, steps=2, batch=2, init_state=init, freeze=("embed", "head.qkv"),
                       qat_init={"head.qkv": 0.5, **big})
    assert both == {"head.qkv": 0.5, **big}


def test_a_check_that_cannot_run_keeps_the_finished_run_and_drops_what_it_could_not_check(toy: Any) -> None:
    """A review: a loss that needs train mode (or more samples than the check's batch) raised after every step
    had run, and the whole run was lost. The check runs on the run's batch size; when it still cannot run, the
    scales it could not check are dropped with a line, and the trained model comes back."""
    import dataclasses

    def train_mode_only(model: Any, batch: dict[str, Any]) -> Any:
        if not model.training:
            raise RuntimeError("this loss needs train mode")
        return toy.trainer.loss(model, batch)

    def pairs(model: Any, batch: dict[str, Any]) -> Any:
        if len(next(iter(batch.values()))) < 4:
            raise ValueError("a batch needs at least 4 samples")
        return toy.trainer.loss(model, batch)

    cfg = toy.config("tiny")
    torch.manual_seed(0)
    init = toy.build(cfg).state_dict()
    big = {"embed.conv.0": 1000.0}
    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, loss=train_mode_only))
    said: list[str] = []
    _, losses, scales = train(card, cfg, steps=2, batch=2, init_state=init, freeze=("embed",), qat_init=big,
                              say=said.append)
    assert len(losses) == 2 and scales == {} and len(said) == 1
    assert said[0].startswith("its trained INT8 scales of 1 unchanged layer(s) (embed.conv.0) are not kept: their "
                              "inputs could not be compared (") and "this loss needs train mode" in said[0]
    card = dataclasses.replace(toy, trainer=dataclasses.replace(toy.trainer, loss=pairs))
    _, _, scales = train(card, cfg, steps=1, batch=4, init_state=init, freeze=("embed",), qat_init=big)
    assert scales == big  # checked on a batch of the run's 4 samples


def test_edge_train_init_carries_a_checkpoints_scales_and_says_what_it_drops(toy: Any, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses
    import json

    import edge
    from edge.cli.train_cmd import run_train
    from edge.models.checkpoint import read_checkpoint, save_checkpoint

    edge.models.register("toyqat", lambda: dataclasses.replace(toy, name="toyqat"))
    try:
        run_train("toyqat", tmp_path / "a.pt", "tiny", 2, 2, None, 0, 0, None, True, qat=("embed",))
        a = json.loads((tmp_path / "a.json").read_text())["qat_scales"]
        assert set(a) == {"embed.conv.0", "embed.conv.2"}
        run_train("toyqat", tmp_path / "b.pt", None, 1, 2, None, 0, 0, tmp_path / "a.pt", True, freeze=("embed",))
        b = json.loads((tmp_path / "b.json").read_text())
        assert b["qat_scales"] == a and b["qat_scales_from_init"] == sorted(a) and "qat" not in b
        assert read_checkpoint(tmp_path / "b.pt")["meta"]["qat_scales"] == a  # what edge-export reads
        capsys.readouterr()
        run_train("toyqat", tmp_path / "c.pt", None, 1, 2, None, 0, 0, tmp_path / "b.pt", True)
        c = json.loads((tmp_path / "c.json").read_text())
        assert "qat_scales" not in c
        err = capsys.readouterr().err
        assert "b.pt: its trained INT8 scales of 2 layer(s) (embed.conv.0, embed.conv.2) are not kept" in err
        # a checkpoint is a file a user was given: a malformed scale is one line naming it
        ck = read_checkpoint(tmp_path / "a.pt")
        model = toy.build(toy.config("tiny"))
        model.load_state_dict(ck["state_dict"])
        save_checkpoint(tmp_path / "bad.pt", "toyqat", ck["config"], model,
                        {**ck["meta"], "qat_scales": {"embed.conv.0": -1.0}})
        with pytest.raises(ModelError, match=r"bad\.pt: meta 'qat_scales' of layer 'embed\.conv\.0' is -1\.0"):
            run_train("toyqat", tmp_path / "d.pt", None, 1, 2, None, 0, 0, tmp_path / "bad.pt", True, qat=("embed",))
        assert not (tmp_path / "d.pt").exists()
    finally:
        edge.models.unregister("toyqat")
