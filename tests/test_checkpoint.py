"""Checkpoints: weights-only round trips for every activation, clear errors for a different activation."""

import io

import pytest
import torch
from torch import nn

import actlab

from .model_zoo import make, perturb

NAMES = actlab.list_activations()


def model_with(name: str) -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), make(name, 4), nn.Linear(4, 4), make(name), nn.Linear(4, 2))


def saved(state) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def is_stateful(name: str) -> bool:
    """Whether the activation leaves any trace in a state_dict (actlab ones always do)."""
    return bool(make(name).state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trips_through_a_weights_only_load(name):
    torch.manual_seed(0)
    source = perturb(model_with(name))
    target = model_with(name)
    result = target.load_state_dict(saved(source.state_dict()))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = torch.randn(6, 3)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("name", NAMES)
def test_every_state_dict_value_is_a_tensor_so_ema_style_updates_work(name):
    """Code that updates every state_dict value in place (an EMA of the weights) must keep working."""
    model, ema = perturb(model_with(name)), model_with(name)
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        assert isinstance(m, torch.Tensor)
        e.copy_(e.lerp(m, 0.5) if e.is_floating_point() else m)
    if isinstance(make(name), actlab.Activation):
        record = model.state_dict()["1._extra_state"]
        assert record.dtype == torch.uint8 and actlab.checkpoint.record_name(record) == name


@pytest.mark.parametrize("name", NAMES)
def test_actlab_load_state_dict_round_trips_and_records_every_actlab_site(name):
    source = perturb(model_with(name))
    state = saved(source.state_dict())
    ours = isinstance(make(name), actlab.Activation)
    assert actlab.saved_activations(state) == ({"1": name, "3": name} if ours else {})
    target = model_with(name)
    actlab.load_state_dict(target, state)
    x = torch.randn(2, 3)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def _other(name: str) -> str:
    """An actlab activation different from ``name``."""
    return "srs" if name != "srs" else "serf"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("direction", ["into-other", "from-other"])
def test_loading_into_a_model_with_another_activation_names_the_site_and_both(name, direction):
    saved_name, model_name = (name, _other(name)) if direction == "into-other" else (_other(name), name)
    state = saved(model_with(saved_name).state_dict())
    model = model_with(model_name)
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(RuntimeError, match=r"activation at '1': the checkpoint holds") as err:
        actlab.load_state_dict(model, state)
    message = str(err.value)
    theirs = f"'{saved_name}'" if isinstance(make(saved_name), actlab.Activation) else "no actlab activation record"
    assert theirs in message and f"this model has '{model_name}'" in message and "nothing was loaded" in message
    for k, v in model.state_dict().items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg="a failed load changed " + k)
    if isinstance(model[1], actlab.Activation) and isinstance(make(saved_name), actlab.Activation):
        # Plain nn.Module.load_state_dict gives the same explanation (among torch's own key lists).
        with pytest.raises(RuntimeError, match=r"activation at '1': the checkpoint"):
            model.load_state_dict(state)


def test_same_parameter_names_do_not_hide_a_different_activation():
    """APA and AGLU both store (raw_)lambda and kappa of equal shapes: keys alone cannot tell them apart."""
    apa, aglu = model_with("apa"), model_with("aglu")
    state = saved(apa.state_dict())
    assert {k for k in state if "_extra_state" not in k} == {k for k in aglu.state_dict() if "_extra_state" not in k}
    with pytest.raises(RuntimeError, match=r"activation at '1': the checkpoint holds 'apa', this model has 'aglu'"):
        aglu.load_state_dict(state)
    with pytest.raises(RuntimeError, match=r"activation at '1'.*'apa'.*'aglu'"):
        aglu.load_state_dict(state, strict=False)  # a mismatch is an error, not a missing key


def test_strict_false_accepts_a_checkpoint_without_records():
    plain = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model = model_with("serf")
    with pytest.raises(RuntimeError, match="holds no actlab activation record.*strict=False"):
        actlab.load_state_dict(model, plain.state_dict())
    with pytest.raises(RuntimeError, match='Missing key.*"1._extra_state", "3._extra_state"'):
        model.load_state_dict(plain.state_dict())  # torch's own message for a missing record
    result = model.load_state_dict(plain.state_dict(), strict=False)
    assert result.missing_keys == ["1._extra_state", "3._extra_state"]
    actlab.load_state_dict(model, plain.state_dict(), strict=False)
    torch.testing.assert_close(model[0].weight, plain[0].weight)


def test_native_activations_leave_no_trace_in_a_state_dict():
    """PyTorch's behaviour, documented: a ReLU checkpoint loads into a GELU model without complaint."""
    stateless = [n for n in NAMES if not is_stateful(n)]
    assert "relu" in stateless and "gelu" in stateless
    assert not any(isinstance(make(n), actlab.Activation) for n in stateless)
    model_with("gelu").load_state_dict(saved(model_with("relu").state_dict()))


def test_after_surgery_the_checkpoint_follows_the_new_activations():
    from .model_zoo import ResNet

    source = ResNet()
    actlab.replace_activations(source, "zorro", per_channel=True, example_input=torch.randn(1, 3, 8, 8), warn=False)
    perturb(source)
    state = saved(source.state_dict())
    assert set(actlab.saved_activations(state).values()) == {"zorro"} and len(actlab.saved_activations(state)) == 5
    with pytest.raises(
        RuntimeError, match=r"activation at 'relu': the checkpoint holds 'zorro', this model has 'relu'"
    ):
        actlab.load_state_dict(ResNet(), state)
    target = ResNet()
    actlab.replace_activations(target, "zorro", per_channel=True, example_input=torch.randn(1, 3, 8, 8), warn=False)
    actlab.load_state_dict(target, state)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(target.eval()(x), source.eval()(x), rtol=0, atol=0)
