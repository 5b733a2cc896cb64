"""The registry and factory: names, aliases, specs of every kind, metadata, errors."""

import dataclasses
import functools

import pytest
import torch
from torch import nn

import actlab
from actlab.registry import PROVENANCES, FunctionalActivation, register

REQUIRED = {
    "srs",
    "serf",
    "zorro",
    "zorro_asymmetric",
    "zorro_sigmoid",
    "zorro_tanh",
    "zorro_sloped",
    "apa",
    "aglu",
    "eelu",
    "sau",
    "sqish",
    "pau",
    "swish",
    "relu",
    "leaky_relu",
    "prelu",
    "elu",
    "gelu",
    "gelu_tanh",
    "silu",
    "mish",
    "softplus",
    "tanh",
    "sigmoid",
}


def test_every_required_activation_is_registered():
    assert REQUIRED <= set(actlab.list_activations())


@pytest.mark.parametrize("spelling", ["SRS", "srs", " Srs ", "soft-root-sign", "SOFT_ROOT_SIGN"])
def test_names_are_case_and_separator_insensitive(spelling):
    assert isinstance(actlab.create(spelling), actlab.SRS)


def test_trainable_filter():
    trainable = set(actlab.list_activations(trainable=True))
    fixed = set(actlab.list_activations(trainable=False))
    assert trainable.isdisjoint(fixed) and trainable | fixed == set(actlab.list_activations())
    assert {"srs", "zorro", "aglu", "pau", "prelu", "swish"} <= trainable
    assert {"serf", "eelu", "relu", "gelu", "silu"} <= fixed


def test_unknown_name_lists_the_closest_names():
    with pytest.raises(ValueError, match=r"unknown activation 'zoro'.*Did you mean: zorro"):
        actlab.create("zoro")
    with pytest.raises(ValueError, match="actlab list"):
        actlab.info("definitely-not-an-activation")


def test_specs_of_every_kind():
    assert isinstance(actlab.create(nn.GELU), nn.GELU)
    assert isinstance(actlab.create(actlab.Zorro, a=2.0), actlab.Zorro)
    m = actlab.create(functools.partial(nn.LeakyReLU, 0.2))
    assert isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2
    assert isinstance(actlab.create(lambda: nn.Tanh()), nn.Tanh)
    wrapped = actlab.create(torch.tanh)
    assert isinstance(wrapped, FunctionalActivation)
    x = torch.randn(5)
    torch.testing.assert_close(wrapped(x), torch.tanh(x))
    original = actlab.SRS()
    copy = actlab.create(original)
    assert copy is not original and copy.raw_alpha is not original.raw_alpha


def test_kwargs_are_passed_and_rejected_clearly():
    assert actlab.create("srs", alpha=5.0, num_parameters=4).num_parameters == 4
    with pytest.raises(TypeError, match="'srs'.*unexpected keyword argument 'gamma'"):
        actlab.create("srs", gamma=1.0)
    with pytest.raises(TypeError, match="cannot create an activation from int"):
        actlab.create(3)
    with pytest.raises(TypeError, match="nn.Module subclass"):
        actlab.create(dict)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_info_is_complete_and_consistent(name):
    info = actlab.info(name)
    assert dataclasses.is_dataclass(info) and info.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "x"
    assert info.provenance in PROVENANCES and info.formula and info.family
    module = actlab.create(name)
    assert isinstance(module, info.cls)
    assert info.trainable == any(p.requires_grad for p in module.parameters())
    if info.provenance == "reconstruction":
        assert "reconstruction" in (info.cls.__doc__ or "").lower()
    if info.family != "baseline":
        assert info.arxiv and info.paper
        doc = info.cls.__doc__ or ""
        assert info.arxiv in doc, f"{name}: docstring should cite arXiv:{info.arxiv}"


def test_duplicate_registration_is_an_error():
    class Dummy(nn.Module):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register("srs", family="x", formula="x")(Dummy)
    with pytest.raises(ValueError, match="already registered"):
        register("brand_new_name", family="x", formula="x", aliases=("relu",))(Dummy)
    assert "brand_new_name" not in actlab.list_activations()


def test_swish_is_the_trainable_one_and_silu_the_fixed_one():
    x = torch.randn(20)
    torch.testing.assert_close(actlab.create("swish")(x), nn.functional.silu(x))
    assert list(actlab.create("silu").parameters()) == []
    assert len(list(actlab.create("swish").parameters())) == 1
