"""Optimizer groups: weight decay kept off activation parameters, every parameter exactly once."""

import pytest
import torch
from torch import nn

import actlab

from .model_zoo import make

TRAINABLE = actlab.list_activations(trainable=True)


def model_with(name: str) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        make(name, 4),
        nn.Flatten(),
        nn.Linear(4 * 9, 6),
        nn.LayerNorm(6),
        make(name),
        nn.Linear(6, 2),
    )


def _ids(params):
    return [id(p) for p in params]


@pytest.mark.parametrize("no_decay_norm_and_bias", [False, True])
@pytest.mark.parametrize("name", TRAINABLE)
def test_every_trainable_parameter_appears_exactly_once(name, no_decay_norm_and_bias):
    model = model_with(name)
    groups = actlab.param_groups(model, weight_decay=0.1, no_decay_norm_and_bias=no_decay_norm_and_bias)
    listed = [i for g in groups for i in _ids(g["params"])]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(_ids(model.parameters()))
    by_name = {g["name"]: g for g in groups}
    activation = set(_ids([*model[2].parameters(), *model[6].parameters()]))
    assert activation and set(_ids(by_name["activation"]["params"])) == activation
    assert by_name["activation"]["weight_decay"] == 0.0 and by_name["decay"]["weight_decay"] == 0.1
    expected_plain = {id(model[i].weight) for i in (1, 5)} | {id(model[i].bias) for i in (0, 1, 4, 5, 7)}
    if no_decay_norm_and_bias:
        assert set(_ids(by_name["no_decay"]["params"])) == expected_plain
        assert set(_ids(by_name["decay"]["params"])) == {id(model[i].weight) for i in (0, 4, 7)}
    else:
        assert "no_decay" not in by_name


def test_weight_decay_leaves_activation_parameters_alone_in_adamw():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), actlab.PAU(num_parameters=4), nn.Linear(4, 1))
    opt = torch.optim.AdamW(actlab.param_groups(model, weight_decay=0.5), lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # a step with no gradient: only decay can move anything
    opt.step()
    for n, p in model.named_parameters():
        decayed = before[n] * (1 - 0.1 * 0.5)
        if n.startswith("1."):
            torch.testing.assert_close(p, before[n], rtol=0, atol=0)
        else:
            torch.testing.assert_close(p, decayed)


def test_activation_lr_and_decay_are_their_own_and_reach_the_optimizer():
    model = nn.Sequential(nn.Linear(3, 3), actlab.SRS(), nn.Linear(3, 1))
    groups = actlab.param_groups(model, 1e-4, activation_weight_decay=1e-5, activation_lr=3e-3)
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    settings = {g["name"]: (g["lr"], g["weight_decay"], g["momentum"]) for g in opt.param_groups}
    assert settings == {"decay": (0.1, 1e-4, 0.9), "activation": (3e-3, 1e-5, 0.9)}
    # The optimizer's own state_dict round-trips the extra "name" key.
    restored = torch.optim.SGD(actlab.param_groups(model, 1e-4, activation_lr=3e-3), lr=0.1, momentum=0.9)
    restored.load_state_dict(opt.state_dict())
    assert [g["name"] for g in restored.param_groups] == ["decay", "activation"]


def test_frozen_and_tied_parameters():
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight  # tied
    act = actlab.Swish(trainable=False)  # constants are buffers, not parameters
    frozen = actlab.SRS()
    frozen.requires_grad_(False)
    model = nn.Sequential(embedding, act, nn.Linear(4, 4), frozen, head)
    groups = actlab.param_groups(model, weight_decay=0.1)
    assert [g["name"] for g in groups] == ["decay"], "no trainable activation parameter: no activation group"
    assert _ids(groups[0]["params"]) == _ids([embedding.weight, model[2].weight, model[2].bias])


def test_param_groups_of_a_ddp_style_wrapper_find_the_same_parameters():
    class Wrapper(nn.Module):  # DistributedDataParallel registers the model as `module`
        def __init__(self, module):
            super().__init__()
            self.module = module

    inner = nn.Sequential(nn.Linear(2, 3), actlab.AGLU(num_parameters=3))
    groups = actlab.param_groups(Wrapper(inner), weight_decay=0.1)
    assert _ids(groups[1]["params"]) == _ids(inner[1].parameters())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"weight_decay": 0.1, "activation_weight_decay": -0.1}, "activation_weight_decay must be >= 0"),
        ({"weight_decay": 0.1, "activation_lr": 0.0}, "activation_lr must be > 0"),
    ],
)
def test_bad_rates_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        actlab.param_groups(nn.Linear(2, 2), **kwargs)


def test_flattened_fsdp_parameters_are_refused():
    model = nn.Linear(2, 2)
    model.weight._is_flat_param = True  # what FSDP1 marks its FlatParameter with
    with pytest.raises(ValueError, match="use_orig_params=True"):
        actlab.param_groups(model, weight_decay=0.1)
