"""Model builders: shapes, gradients, one fresh activation per site, options and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actlab.lab.models import (
    INITS,
    ConvNet,
    build_model,
    compatible_models,
    default_model,
    list_models,
)
from actlab.lab.tasks import TaskData, get_task, list_tasks

ALL_MODELS = ["mlp", "regression_mlp", "cnn", "slaf_cnn", "resnet", "transformer"]


def make_data(kind: str, input_shape: tuple[int, ...], num_outputs: int, n: int = 6, **extras) -> TaskData:
    """A small synthetic TaskData of the given shape (models only look at shapes and extras)."""
    gen = torch.Generator().manual_seed(0)
    if kind == "sequence":
        vocab = extras["tgt_vocab"]
        x = torch.randint(3, len(extras["src_vocab"]), (n, *input_shape), generator=gen)
        x[:, -2:] = 0  # source padding
        y = torch.randint(3, len(vocab), (n, extras["max_len"]), generator=gen)
        y[:, 0], y[:, -2], y[:, -1] = 1, 2, 0
    else:
        x = torch.randn(n, *input_shape, generator=gen)
        y = torch.randint(0, num_outputs, (n,), generator=gen) if kind == "classification" else torch.randn(n, 1)
    metric = {"classification": "accuracy", "regression": "mse", "sequence": "exact_match"}[kind]
    return TaskData("synthetic", kind, x, y, x, y, x, y, input_shape, num_outputs, metric, kind != "regression",
                    "synthetic", extras)  # fmt: skip


SEQ_EXTRAS = dict(src_vocab=["<pad>", "<bos>", "<eos>", *"abcdef"], tgt_vocab=["<pad>", "<bos>", "<eos>", *"uvwxyz"],
                  pad_index=0, bos_index=1, eos_index=2, max_len=7)  # fmt: skip

DATA = {
    "flat-digits": make_data("classification", (64,), 10, spatial_shape=(1, 8, 8)),
    "image-28": make_data("classification", (1, 28, 28), 10, spatial_shape=(1, 28, 28)),
    "image-32-rgb": make_data("classification", (3, 32, 32), 10, spatial_shape=(3, 32, 32)),
    "signal-40": make_data("classification", (40,), 10, spatial_shape=(1, 40)),
    "tabular-regression": make_data("regression", (2,), 1),
    "sequence": make_data("sequence", (5,), len(SEQ_EXTRAS["tgt_vocab"]), **SEQ_EXTRAS),
}

#: model -> the data it fits, and the number of activation sites with default options
FITS = {
    "mlp": ["flat-digits", "image-28", "image-32-rgb", "signal-40", "tabular-regression"],
    "regression_mlp": ["flat-digits", "image-28", "signal-40", "tabular-regression"],
    "cnn": ["flat-digits", "image-28", "image-32-rgb", "signal-40"],
    "slaf_cnn": ["flat-digits", "image-28", "image-32-rgb"],
    "resnet": ["flat-digits", "image-28", "image-32-rgb"],
    "transformer": ["sequence"],
}
SITES = {"mlp": 2, "regression_mlp": 1, "cnn": 2, "slaf_cnn": 3, "resnet": 7, "transformer": 4}


class Recorded(nn.Module):
    """A distinct activation class whose instances and calls are recorded."""

    def __init__(self, log: list):
        super().__init__()
        self.calls = 0
        self.scale = nn.Parameter(torch.ones(()))
        log.append(self)

    def forward(self, x):
        self.calls += 1
        return torch.tanh(x) * self.scale


def recorder():
    made: list[Recorded] = []
    return made, (lambda: Recorded(made))


def run_step(name: str, data: TaskData, model: nn.Module) -> torch.Tensor:
    task = {"classification": "digits", "regression": "sines2d", "sequence": "num2words"}[data.kind]
    loss = get_task(task).forward_train(model, data.x_train, data.y_train)
    loss.backward()
    return loss


def test_catalogue():
    assert list_models() == ALL_MODELS
    assert {t: default_model(t) for t in list_tasks()} == {
        "digits": "mlp", "fashion_mnist": "cnn", "mnist": "cnn", "cifar10": "resnet", "mnist1d": "cnn",
        "sines2d": "regression_mlp", "diabetes": "mlp", "num2words": "transformer",
    }  # fmt: skip


@pytest.mark.parametrize(("model_name", "data_name"), [(m, d) for m, ds in FITS.items() for d in ds])
def test_every_model_builds_runs_and_uses_a_fresh_activation_at_every_site(model_name, data_name):
    data = DATA[data_name]
    made, act = recorder()
    model = build_model(model_name, data, act)
    sites = [m for m in model.modules() if isinstance(m, Recorded)]
    assert len(made) == SITES[model_name]
    assert len(sites) == len(made) and all(any(s is m for m in made) for s in sites)
    assert len({id(m) for m in made}) == len(made)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())

    loss = run_step(model_name, data, model)
    assert torch.isfinite(loss)
    assert all(m.calls > 0 for m in made), "every site is applied in forward"
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(m.scale.grad is not None for m in made)

    model.eval()
    with torch.no_grad():
        args = (data.x_val, data.y_val[:, :-1]) if data.kind == "sequence" else (data.x_val,)
        out = model(*args)
    expected = (len(data.x_val), data.y_val.shape[1] - 1, data.num_outputs) if data.kind == "sequence" else (
        len(data.x_val), data.num_outputs)  # fmt: skip
    assert out.shape == expected


@pytest.mark.parametrize("model_name", ALL_MODELS)
def test_model_initialisation_is_determined_by_the_torch_seed(model_name):
    data = DATA[FITS[model_name][0]]

    def state(seed):
        torch.manual_seed(seed)
        return build_model(model_name, data, lambda: nn.PReLU()).state_dict()

    a, b, c = state(1), state(1), state(2)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_mlp_depth_and_act_layers():
    data = DATA["flat-digits"]
    for depth in (2, 4, 8, 16):
        made, act = recorder()
        model = build_model("mlp", data, act, depth=depth)
        assert len(made) == depth and len(model.layers) == depth
    for act_layers, wanted in (("first", 1), (3, 3), (0, 0), ("all", 4)):
        made, act = recorder()
        model = build_model("mlp", data, act, depth=4, act_layers=act_layers)
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        assert (len(made), len(relus)) == (wanted, 4 - wanted)
        assert all(isinstance(model.layers[i].act, Recorded) for i in range(wanted))


def test_mlp_options_build_the_documented_layers():
    made, act = recorder()
    model = build_model("mlp", DATA["flat-digits"], act, hidden=32, depth=3, batch_norm=True, dropout=0.25)
    layer = model.layers[1]
    assert [type(m) for m in layer] == [nn.Linear, nn.BatchNorm1d, Recorded, nn.Dropout]
    assert layer.linear.bias is None and layer.linear.in_features == 32 and layer.drop.p == 0.25
    assert model.head.in_features == 32 and model.layers[0].linear.in_features == 64


def test_regression_mlp_is_ditacs_two_fifty_one_network():
    made, act = recorder()
    model = build_model("regression_mlp", DATA["tabular-regression"], act)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 50), (50, 1)]
    assert len(made) == 1 and isinstance(model.layers[0].act, Recorded)
    assert sum(p.numel() for n, p in model.named_parameters() if ".act." not in n) == 2 * 50 + 50 + 50 + 1
    with pytest.raises(ValueError, match="unknown option.*depth"):
        build_model("regression_mlp", DATA["tabular-regression"], act, depth=2)


def test_cnn_uses_1d_convolutions_for_signals_and_reshapes_flat_digits():
    model = build_model("cnn", DATA["signal-40"], nn.GELU)
    assert isinstance(model.features[0].conv, nn.Conv1d)
    assert model.head.in_features == 64 * 10  # 40 -> 20 -> 10
    model = build_model("cnn", DATA["flat-digits"], nn.GELU, channels=(8, 16, 32))
    assert isinstance(model.features[0].conv, nn.Conv2d) and model.head.in_features == 32 * 1 * 1


def test_cnn_batch_norm_switch():
    with_bn = build_model("cnn", DATA["image-28"], nn.GELU)
    without = build_model("cnn", DATA["image-28"], nn.GELU, batch_norm=False)
    assert [type(m) for m in with_bn.features[0]] == [nn.Conv2d, nn.BatchNorm2d, nn.GELU, nn.MaxPool2d]
    assert [type(m) for m in without.features[0]] == [nn.Conv2d, nn.GELU, nn.MaxPool2d]
    assert with_bn.features[0].conv.bias is None and without.features[0].conv.bias is not None


class WithInnerLinear(nn.Module):
    """An activation that owns a Linear layer: weight initialisation must leave it alone."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)
        with torch.no_grad():
            self.inner.weight.fill_(7.0)

    def forward(self, x):
        return torch.relu(x)


@pytest.mark.parametrize("init", INITS)
def test_weight_initialisations(init):
    torch.manual_seed(0)
    model = ConvNet((1, 28, 28), 10, WithInnerLinear, channels=(64, 256), init=init, batch_norm=False)
    conv = model.features[1].conv  # 64 -> 256, 3x3: fan_in 576, fan_out 2304
    w = conv.weight.detach().double()
    expected_std = {
        "default": 1 / math.sqrt(3 * 576),  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        "kaiming": math.sqrt(2 / 576),
        "xavier": math.sqrt(2 / (576 + 2304)),
        "normal": 0.01,
        "truncated_normal": 0.1 * 0.8796,  # std of N(0,1) truncated at +-2
    }[init]
    assert float(w.std()) == pytest.approx(expected_std, rel=0.03)
    if init == "truncated_normal":
        assert float(w.abs().max()) <= 0.2
        assert torch.all(conv.bias == 0.1)
    elif init != "default":
        assert torch.all(conv.bias == 0)
    assert all(torch.all(m.inner.weight == 7.0) for m in model.modules() if isinstance(m, WithInnerLinear))


def test_slaf_cnn_matches_the_tensorflow_deep_mnist_layout():
    made, act = recorder()
    model = build_model("slaf_cnn", DATA["image-28"], act)
    assert (model.conv1.kernel_size, model.conv1.out_channels, model.conv2.out_channels) == ((5, 5), 32, 64)
    assert (model.fc1.in_features, model.fc1.out_features, model.drop.p) == (7 * 7 * 64, 1024, 0.5)
    assert model.fc1.weight.abs().max().item() <= 0.2 and torch.all(model.fc1.bias == 0.1)
    hybrid = build_model("slaf_cnn", DATA["image-28"], nn.GELU, act_layers="conv")
    assert isinstance(hybrid.act3, nn.ReLU) and isinstance(hybrid.act1, nn.GELU)
    odd = build_model("slaf_cnn", make_data("classification", (1, 7, 7), 3, spatial_shape=(1, 7, 7)), nn.GELU)
    assert odd.fc1.in_features == 2 * 2 * 64  # TF SAME pooling rounds up: 7 -> 4 -> 2


def test_resnet_structure_and_depth():
    made, act = recorder()
    model = build_model("resnet", DATA["image-32-rgb"], act, depth=14)
    assert len(made) == 1 + 2 * 2 * 3
    block = model.layer2[0]
    assert [n for n, _ in block.named_children()] == ["conv1", "bn1", "act1", "conv2", "bn2", "act2", "downsample"]
    assert block.conv1.stride == (2, 2) and model.layer1[0].downsample is None
    assert model.fc.in_features == 64
    for m in (model.conv1, block.conv2):  # kaiming normal
        assert m.weight.std().item() == pytest.approx(math.sqrt(2 / (m.in_channels * 9)), rel=0.15)


def test_transformer_is_causal_ignores_source_padding_and_calls_act_in_eval():
    data = DATA["sequence"]
    made, act = recorder()
    torch.manual_seed(0)
    model = build_model("transformer", data, act).eval()
    src, tgt = data.x_val[:2], data.y_val[:2, :-1]
    with torch.no_grad():
        out = model(src, tgt)
        changed = tgt.clone()
        changed[:, 3] = 5
        assert torch.allclose(model(src, changed)[:, :3], out[:, :3], atol=1e-6)
        assert not torch.allclose(model(src, changed)[:, 3:], out[:, 3:])
        # changing what sits at padded source positions changes nothing
        other_pad = src.clone()
        other_pad[:, -2:] = 0
        assert torch.allclose(model(other_pad, tgt), out, atol=1e-6)
        assert torch.allclose(model.decode(model.encode(src), src, tgt), out)
    calls = [m.calls for m in made]
    with torch.no_grad():
        model(src, tgt)
    assert all(after > before for after, before in zip((m.calls for m in made), calls))


def test_transformer_with_relu_never_takes_the_fused_inference_path():
    data = DATA["sequence"]
    model = build_model("transformer", data, nn.ReLU).eval()
    calls = []
    for layer in model.encoder_layers:
        layer.activation.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(data.x_val, data.y_val[:, :-1])
    assert len(calls) == 2


def test_act_factory_must_return_fresh_modules():
    shared = nn.GELU()
    with pytest.raises(ValueError, match="same module twice"):
        build_model("mlp", DATA["flat-digits"], lambda: shared)
    with pytest.raises(TypeError, match="must return an nn.Module"):
        build_model("mlp", DATA["flat-digits"], lambda: torch.tanh)


def test_unknown_model_lists_models_closest_first():
    with pytest.raises(ValueError, match=r"unknown model 'resnt'; known models \(closest first\): resnet") as err:
        build_model("resnt", DATA["image-28"], nn.GELU)
    assert all(m in str(err.value) for m in ALL_MODELS)


@pytest.mark.parametrize(
    ("model_name", "data_name", "message"),
    [
        ("cnn", "tabular-regression", "needs images or 1-D signals.*Models for 'synthetic': mlp, regression_mlp"),
        ("resnet", "signal-40", "needs images.*mlp, regression_mlp, cnn$"),
        ("transformer", "flat-digits", "does not fit classification task"),
        ("mlp", "sequence", "does not fit sequence task.*transformer"),
        ("slaf_cnn", "tabular-regression", "does not fit regression task"),
    ],
)
def test_model_task_mismatch_names_the_valid_models(model_name, data_name, message):
    with pytest.raises(ValueError, match=message):
        build_model(model_name, DATA[data_name], nn.GELU)


@pytest.mark.parametrize(
    ("model_name", "options", "message"),
    [
        ("mlp", {"width": 3}, "unknown option.*width.*its options: hidden, depth, batch_norm"),
        ("mlp", {"depth": 0}, "depth must be an integer >= 1"),
        ("mlp", {"act_layers": "last"}, "act_layers must be 'all', 'first' or an integer 0..2"),
        ("mlp", {"act_layers": 3}, "act_layers must be"),
        ("mlp", {"dropout": 1.0}, "dropout must be in"),
        ("mlp", {"init": "he"}, "unknown init 'he'"),
        ("cnn", {"kernel_size": 4}, "kernel_size must be odd"),
        ("cnn", {"channels": ()}, "channels must name at least one width"),
        ("slaf_cnn", {"channels": (8, 8, 8)}, "two widths"),
        ("slaf_cnn", {"act_layers": "first"}, "'all' or 'conv'"),
        ("resnet", {"depth": 10}, "6n \\+ 2"),
        ("transformer", {"d_model": 30}, "divisible by nhead"),
        ("transformer", {"pad_index": 3}, "unknown option"),
    ],
)
def test_invalid_options_are_rejected(model_name, options, message):
    data = DATA[FITS[model_name][1 if model_name in ("cnn", "slaf_cnn", "resnet") else 0]]
    with pytest.raises(ValueError, match=message):
        build_model(model_name, data, nn.GELU, **options)


def test_compatible_models_for_real_tasks():
    assert compatible_models(get_task("sines2d").load(seed=0)) == ["mlp", "regression_mlp"]
    assert compatible_models(get_task("digits").load(seed=0, limit=10)) == ALL_MODELS[:5]
