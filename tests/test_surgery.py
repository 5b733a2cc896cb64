"""Model surgery: replace_activations and find_functional_activations."""

import copy
import functools
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import actlab
from actlab.sites import HIDDEN_ACTIVATIONS

from .model_zoo import Branchy, FunctionalMLP, ResNet, accepts, make, perturb, transformer_encoder


def replace(model, new, **kwargs):
    kwargs.setdefault("warn", False)
    return actlab.replace_activations(model, new, **kwargs)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.blocks = nn.ModuleList(
            [nn.Sequential(nn.Linear(6, 6), nn.GELU()), nn.Sequential(nn.Linear(6, 6), nn.SiLU())]
        )
        self.heads = nn.ModuleDict({"a": nn.Sequential(nn.Linear(6, 6), nn.ELU()), "b": nn.Linear(6, 6)})
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.heads["b"](self.heads["a"](x)) * self.gate(x)


EXPECTED_NESTED = ["stem.1", "blocks.0.1", "blocks.1.1", "heads.a.1"]


def test_replaces_sites_in_nested_sequential_modulelist_and_moduledict():
    model = Nested()
    report = replace(model, "srs")
    assert [s.name for s in report.sites] == EXPECTED_NESTED
    assert [s.old for s in report.sites] == ["ReLU", "GELU", "SiLU", "ELU"]
    for name in EXPECTED_NESTED:
        assert type(model.get_submodule(name)) is actlab.SRS
    assert report.count == 4
    assert isinstance(model.gate, nn.Sigmoid), "gates are not hidden activations and stay"
    assert model(torch.randn(3, 4)).shape == (3, 6)


def test_new_module_computes_what_a_hand_built_model_computes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    replace(model, functools.partial(actlab.SRS, alpha=2.5, beta=1.5))
    by_hand = nn.Sequential(nn.Linear(4, 6), actlab.SRS(alpha=2.5, beta=1.5), nn.Linear(6, 2))
    by_hand.load_state_dict(model.state_dict())
    x = torch.randn(5, 4)
    torch.testing.assert_close(model(x), by_hand(x), rtol=0, atol=0)


def test_every_site_gets_its_own_module_and_parameter_storage():
    shared = nn.ReLU()  # one instance at two places: the MPRNet mistake
    model = nn.Sequential(nn.Linear(4, 4), shared, nn.Linear(4, 4), shared, nn.Linear(4, 4), nn.ReLU())
    report = replace(model, actlab.SRS(alpha=3.0))  # an instance: deep-copied per site
    modules = [model[1], model[3], model[5]]
    assert len({id(m) for m in modules}) == 3
    pointers = [p.data_ptr() for m in modules for p in m.parameters()]
    assert len(set(pointers)) == len(pointers) == 6
    assert report.sites[0].split_from == ("3",) and report.sites[1].split_from == ("1",)
    assert any("several places" in note for note in report.notes)
    with torch.no_grad():
        model[1].raw_alpha.fill_(1.0)
    assert model[3].raw_alpha.item() != 1.0


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("zorro", actlab.Zorro),
        (actlab.Serf, actlab.Serf),
        (functools.partial(actlab.PAU, init="leaky_relu"), actlab.PAU),
        (lambda: actlab.Swish(beta=2.0), actlab.Swish),
        (actlab.AGLU(kappa=2.0), actlab.AGLU),
        (torch.tanh, actlab.registry.FunctionalActivation),
        (nn.Mish, nn.Mish),
    ],
    ids=["name", "class", "partial", "factory", "instance", "tensor-function", "torch-class"],
)
def test_every_kind_of_new_spec(spec, expected):
    model = Nested()
    report = replace(model, spec)
    new = [model.get_submodule(n) for n in EXPECTED_NESTED]
    assert all(type(m) is expected for m in new)
    assert len({id(m) for m in new}) == len(new)
    assert [s.module for s in report.sites] == new


def test_mapping_chooses_per_class_and_selects_the_sites():
    model = Nested()
    report = replace(model, {nn.ReLU: "srs", nn.GELU: "pau"})
    assert type(model.stem[1]) is actlab.SRS and type(model.blocks[0][1]) is actlab.PAU
    assert isinstance(model.blocks[1][1], nn.SiLU) and isinstance(model.heads["a"][1], nn.ELU)
    assert report.count == 2
    with pytest.raises(TypeError, match="either a mapping"):
        replace(Nested(), {nn.ReLU: "srs"}, old=nn.ReLU)


def test_exact_class_wins_over_a_base_class_in_a_mapping():
    # nn.ReLU6 is a subclass of nn.Hardtanh.
    model = nn.Sequential(nn.Linear(2, 2), nn.Hardtanh(), nn.ReLU6())
    replace(model, {nn.Hardtanh: "serf", nn.ReLU6: "srs"})
    assert type(model[1]) is actlab.Serf and type(model[2]) is actlab.SRS


def test_default_old_is_the_hidden_nonlinearities_and_old_selects_others():
    gates = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Tanh(), nn.Softplus(), nn.Hardsigmoid())
    assert replace(copy.deepcopy(gates), "srs").count == 0
    report = replace(gates, "srs", old=(nn.Sigmoid, nn.Tanh))
    assert [s.name for s in report.sites] == ["1", "2"]
    assert all(issubclass(c, nn.Module) for c in HIDDEN_ACTIVATIONS) and nn.Sigmoid not in HIDDEN_ACTIVATIONS


def test_actlab_activations_can_be_replaced_too():
    model = nn.Sequential(nn.Linear(2, 3), actlab.SRS(), nn.Linear(3, 3), actlab.Serf())
    report = replace(model, "pau", old=actlab.SRS)
    assert report.count == 1 and type(model[1]) is actlab.PAU and type(model[3]) is actlab.Serf


def test_filter_selects_the_first_sites_only():
    """The hybrid routine: trainable activations in the first N layers, the rest unchanged."""
    model = nn.Sequential(*[m for _ in range(5) for m in (nn.Linear(4, 4), nn.ReLU())])
    first_two = [name for name, _ in actlab.activation_sites(model)][:2]
    seen = []

    def keep(name, module):
        seen.append((name, type(module)))
        return name in first_two

    report = replace(model, "srs", filter=keep)
    assert [s.name for s in report.sites] == ["1", "3"]
    assert [type(m) for m in model[5::2]] == [nn.ReLU] * 3
    assert seen == [(str(i), nn.ReLU) for i in (1, 3, 5, 7, 9)]


@pytest.mark.parametrize(
    "layers,input_shape,channels,channel_dim",
    [
        ([nn.Linear(4, 6)], (3, 4), 6, -1),
        ([nn.Linear(4, 6)], (3, 5, 4), 6, -1),
        ([nn.Conv2d(3, 5, 3)], (2, 3, 6, 6), 5, 1),
        ([nn.Conv1d(3, 5, 3), nn.BatchNorm1d(5)], (2, 3, 6), 5, 1),
        ([nn.Linear(4, 7), nn.LayerNorm(7), nn.Dropout(0.1)], (2, 9, 4), 7, -1),
        ([nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4), nn.Identity()], (2, 3, 4, 4), 4, 1),
        ([nn.Sequential(nn.Conv2d(3, 6, 1), nn.BatchNorm2d(6)), nn.Dropout2d(0.1)], (2, 3, 4, 4), 6, 1),
        ([nn.Embedding(10, 6)], None, 6, -1),
    ],
    ids=["linear-2d", "linear-3d", "conv", "conv-bn", "linear-ln-dropout", "conv-gn-identity", "nested", "embedding"],
)
def test_per_channel_from_the_sequential_structure(layers, input_shape, channels, channel_dim):
    model = nn.Sequential(*layers, nn.ReLU())
    report = replace(model, "srs", per_channel=True)
    act = model[-1]
    assert (act.num_parameters, act.channel_dim) == (channels, channel_dim)
    assert (report.sites[0].num_parameters, report.sites[0].channel_dim) == (channels, channel_dim)
    x = torch.randint(0, 10, (2, 3)) if input_shape is None else torch.randn(input_shape)
    assert model(x).shape[channel_dim] == channels


def test_per_channel_reaches_back_into_an_enclosing_sequential():
    model = nn.Sequential(nn.Linear(3, 5), nn.Sequential(nn.Dropout(0.1), nn.GELU()))
    replace(model, "srs", per_channel=True)
    assert model[1][1].num_parameters == 5


class FeedForward(nn.Module):
    """Not a Sequential: only torch.fx or a forward pass tells what feeds the activation."""

    def __init__(self):
        super().__init__()
        self.act = nn.GELU()
        self.fc1 = nn.Linear(8, 12)
        self.fc2 = nn.Linear(12, 8)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 5, 8)], ids=["fx", "forward"])
def test_per_channel_outside_sequential_from_fx_or_a_forward_pass(example_input):
    model = FeedForward()
    report = replace(model, "aglu", per_channel=True, example_input=example_input)
    assert (model.act.num_parameters, model.act.channel_dim) == (12, -1)
    assert report.analysis == ("torch.fx" if example_input is None else "forward pass")
    assert report.sites[0].calls == 1
    assert model(torch.randn(2, 5, 8)).shape == (2, 5, 8)


def test_per_channel_errors_name_the_site_and_change_nothing():
    model = ResNet()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"'layer1\.0\.relu'.*example_input=.*Nothing was changed"):
        replace(model, "srs", per_channel=True)
    assert all(isinstance(m, nn.ReLU) for _, m in actlab.activation_sites(model))
    assert model.state_dict().keys() == before.keys()

    first = nn.Sequential(nn.ReLU(), nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"'0'.*nothing in the model's structure|'0'.*not a Linear"):
        replace(first, "srs", per_channel=True)


def test_unknown_channel_axis_asks_for_channel_dim():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x) + x)

    x = torch.randn(2, 3, 6)
    with pytest.raises(ValueError, match="pass channel_dim="):
        replace(Residual(), "srs", per_channel=True, example_input=x)
    model = Residual()
    replace(model, "srs", per_channel=True, example_input=x, channel_dim=-1)
    assert (model.act.num_parameters, model.act.channel_dim) == (6, -1)


def test_per_channel_is_ignored_by_activations_without_parameters_and_native_prelu_gets_axis_1():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU(), nn.Conv2d(3, 4, 1), nn.GELU())
    replace(model, {nn.ReLU: "serf", nn.GELU: nn.PReLU}, per_channel=True)
    assert type(model[1]) is actlab.Serf and model[3].num_parameters == 4
    linear = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    with pytest.raises(ValueError, match="no channel_dim argument"):
        replace(linear, nn.PReLU, per_channel=True)
    replace(linear, nn.PReLU, per_channel=True, example_input=torch.randn(4, 2))  # 2-D: axis -1 is axis 1
    assert linear[1].num_parameters == 3


def test_resnet_with_torchvision_style_shared_relu():
    torch.manual_seed(0)
    model = ResNet()
    x = torch.randn(2, 3, 16, 16)
    reference = copy.deepcopy(model).eval()
    with pytest.warns(UserWarning, match=r"one module serves several calls.*'layer1\.0\.relu' \(2 calls\)"):
        report = actlab.replace_activations(model, "srs", per_channel=True, example_input=x)
    assert [s.name for s in report.sites] == [
        "relu",
        "layer1.0.relu",
        "layer1.1.relu",
        "layer2.0.relu",
        "layer2.1.relu",
    ]
    assert [s.calls for s in report.sites] == [1, 2, 2, 2, 2]
    assert [s.num_parameters for s in report.sites] == [4, 4, 4, 8, 8]
    assert all(s.channel_dim == 1 for s in report.sites)
    assert [s.name for s in report.shared_calls] == [s.name for s in report.sites[1:]]
    assert "layer2.1.relu" in str(report) and "2 calls" in str(report)
    # The probe pass ran in eval mode: batch-norm statistics are untouched.
    torch.testing.assert_close(model.bn1.running_mean, reference.bn1.running_mean, rtol=0, atol=0)
    assert model.training
    model.eval()
    assert not torch.allclose(model(x), reference(x))
    model.train()
    model(x).square().mean().backward()
    grads = [p.grad for p in actlab.activation_parameters(model)]
    assert len(grads) == 10 and all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


@pytest.mark.slow
@pytest.mark.compile
def test_a_converted_resnet_compiles_without_graph_breaks():
    torch.manual_seed(0)
    model = ResNet()
    x = torch.randn(2, 3, 16, 16)
    replace(model, {nn.ReLU: "aglu"}, per_channel=True, example_input=x)
    compiled = torch.compile(model, fullgraph=True)
    outputs, grads = [], []
    for fn in (model, compiled):
        model.zero_grad()
        y = fn(x)
        y.square().mean().backward()
        outputs.append(y.detach())
        grads.append([p.grad.clone() for p in actlab.activation_parameters(model)])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for compiled_grad, eager_grad in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)


def test_report_counts_the_parameters_added():
    model = ResNet()
    before = sum(p.numel() for p in model.parameters())
    report = replace(model, "pau", per_channel=True, example_input=torch.randn(1, 3, 8, 8))
    after = sum(p.numel() for p in model.parameters())
    assert report.parameters_added == after - before == (4 + 4 + 4 + 8 + 8) * 10
    text = str(report)
    assert text.startswith("replaced 5 activation sites, 280 trainable parameters added")
    assert all(s.name in text for s in report.sites)


def _feedforward_hook_counts(model):
    counts = []
    for layer in model.layers:
        counts.append([0])
        layer.activation.register_forward_hook(lambda m, i, o, c=counts[-1]: c.__setitem__(0, c[0] + 1))
    return counts


@pytest.mark.parametrize("activation", ["relu", F.gelu, nn.ReLU()], ids=["str", "function", "module"])
def test_transformer_encoder_uses_the_new_activation_in_every_mode(activation):
    torch.manual_seed(0)
    model = transformer_encoder(activation)
    original = copy.deepcopy(model)
    x = torch.randn(3, 5, 8)
    report = replace(model, "srs", per_channel=True, example_input=x)
    assert [s.name for s in report.sites] == ["layers.0.activation", "layers.1.activation"]
    assert [(s.num_parameters, s.channel_dim) for s in report.sites] == [(16, -1), (16, -1)]
    assert all(layer.activation_relu_or_gelu == 0 for layer in model.layers)
    perturb(model.layers[0].activation, 0.5)

    train_out = model.train()(x)  # training never takes PyTorch's fast path
    model.eval()
    counts = _feedforward_hook_counts(model)
    with torch.no_grad():
        eval_out = model(x)
        padding = torch.zeros(3, 5, dtype=torch.bool)
        padding[0, 3:] = True
        masked = model(x, src_key_padding_mask=padding)
    torch.testing.assert_close(eval_out, train_out, rtol=1e-5, atol=1e-5)
    assert counts == [[2], [2]]
    with torch.no_grad():
        reference_masked = model.train()(x, src_key_padding_mask=padding)
    torch.testing.assert_close(masked[1:], reference_masked[1:], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(eval_out, original.eval()(x), atol=1e-3)


def test_transformer_fast_path_is_kept_for_an_exact_native_replacement():
    model = transformer_encoder("relu")
    replace(model, nn.GELU)
    assert [layer.activation_relu_or_gelu for layer in model.layers] == [2, 2]
    replace(model, actlab.GELUTanh, old=nn.GELU)  # approximate GELU: the native path would be exact GELU
    assert [layer.activation_relu_or_gelu for layer in model.layers] == [0, 0]


def test_copy_leaves_the_original_untouched():
    model = Nested()
    report = replace(model, "srs", copy=True)
    assert report.model is not model
    assert isinstance(model.stem[1], nn.ReLU) and isinstance(report.model.stem[1], actlab.SRS)


def test_new_modules_follow_device_dtype_and_mode_of_their_neighbours():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU()).to(torch.float64).eval()
    replace(model, "srs", per_channel=True)
    assert all(p.dtype == torch.float64 for p in model[1].parameters())
    assert not model[1].training
    assert model(torch.randn(2, 3, dtype=torch.float64)).dtype == torch.float64


def test_bad_arguments_are_clear_errors_and_change_nothing():
    model = Nested()
    with pytest.raises(ValueError, match="Did you mean: srs"):
        replace(model, "srss")
    with pytest.raises(TypeError, match="nn.Module subclasses"):
        replace(model, "srs", old=[torch.relu])
    with pytest.raises(TypeError, match="cannot build an activation from int"):
        replace(model, 3)
    with pytest.raises(ValueError, match="itself an activation"):
        replace(nn.ReLU(), "srs")
    assert isinstance(model.stem[1], nn.ReLU)


@pytest.mark.parametrize("name", actlab.list_activations())
def test_every_registered_activation_drops_into_a_conv_net(name):
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4), nn.GELU())
    x = torch.randn(5, 2, 2, 2)
    report = replace(model, name, per_channel=True, example_input=x)
    expected = actlab.info(name).cls
    assert type(model[2]) is expected and type(model[5]) is expected
    if accepts(name, "num_parameters"):
        assert model[2].num_parameters == 3 and model[5].num_parameters == 4
        assert report.sites[0].channel_dim == 1
    y = model(x)
    assert y.shape == (5, 4) and torch.isfinite(y).all()
    assert report.parameters_added == sum(p.numel() for p in (*model[2].parameters(), *model[5].parameters()))
    assert type(make(name, 3)) is expected


# -- functional calls ---------------------------------------------------------------------


def _found(calls):
    return sorted((c.module, c.function, c.equivalent, c.calls) for c in calls)


EXPECTED_FUNCTIONAL = [
    ("", "F.relu", nn.ReLU, 1),
    ("", "Tensor.relu", nn.ReLU, 1),
    ("", "torch.tanh", nn.Tanh, 1),
]


@pytest.mark.parametrize("example_input", [None, torch.randn(2, 4)], ids=["fx", "forward"])
def test_functional_calls_are_found(example_input):
    found = actlab.find_functional_activations(FunctionalMLP(), example_input)
    assert _found(found) == EXPECTED_FUNCTIONAL
    assert all(c.attribute is None and c.module_type == "FunctionalMLP" for c in found)


def test_functional_calls_are_reported_and_warned_about_but_not_replaced():
    model = FunctionalMLP()
    with pytest.warns(UserWarning, match=r"not replaced \(functional call\): F\.relu in the model"):
        report = actlab.replace_activations(model, "srs")
    assert [s.name for s in report.sites] == ["act"]
    # old = the hidden nonlinearities: torch.tanh (a squasher) is not among the misses.
    assert _found(report.functional_calls) == EXPECTED_FUNCTIONAL[:2]
    assert "functional call" in str(report)


def test_an_untraceable_forward_is_reported_and_a_forward_pass_still_finds_the_calls():
    model = Branchy()
    report = replace(model, "srs")
    assert report.analysis == "" and report.functional_calls == []
    assert any("torch.fx could not trace" in n and "example_input=" in n for n in report.notes)
    with pytest.raises(RuntimeError, match="example_input="):
        actlab.find_functional_activations(model)
    assert _found(actlab.find_functional_activations(model, torch.randn(2, 4))) == EXPECTED_FUNCTIONAL


def test_function_attributes_are_listed_as_swappable_and_then_replaced():
    model = transformer_encoder("gelu")
    found = actlab.find_functional_activations(model, torch.randn(2, 3, 8))
    assert sorted((c.module, c.function, c.attribute, c.calls) for c in found) == [
        ("layers.0", "F.gelu", "activation", 1),
        ("layers.1", "F.gelu", "activation", 1),
    ]
    assert model.layers[0].activation is F.gelu, "probing restores the attribute"
    replace(model, "swish")
    assert actlab.find_functional_activations(model, torch.randn(2, 3, 8)) == []


def test_calls_inside_activation_modules_are_not_functional_calls():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), actlab.Zorro(), actlab.create(torch.tanh))
    assert actlab.find_functional_activations(model, torch.randn(3, 2)) == []
    assert actlab.find_functional_activations(model) == []


def test_probe_pass_leaves_rng_and_modes_alone():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.ReLU(), nn.BatchNorm1d(3))
    model[3].train()
    model[0].eval()
    x = torch.randn(4, 3)
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        replace(model, "srs", example_input=x)
    torch.testing.assert_close(torch.rand(3), expected)
    assert [m.training for m in model] == [False, True, True, True]
    assert model[3].num_batches_tracked.item() == 0
