"""Models for the lab, each with the activation injected at every nonlinearity site.

:func:`build_model` takes an activation *factory* ``act`` and calls it once per
site, so every site owns a fresh module (and, for a trainable activation, its own
parameters). No model applies a hard-coded nonlinearity in ``forward``; the only
``nn.ReLU`` a model may contain is the fallback that ``act_layers`` asks for.

=====================  ===================================================  =================================
model                  structure                                            tasks
=====================  ===================================================  =================================
``mlp``                [Linear -> (BN) -> act -> (Dropout)] x depth -> Linear  any non-sequence task (flattens)
``regression_mlp``     DiTAC's ``mlp_double_2d``: Linear(2, 50) -> act -> Linear  any non-sequence task
``cnn``                [Conv -> (BN) -> act -> MaxPool] per width -> Linear    images (2-D) and signals (1-D)
``slaf_cnn``           SLAF's MNIST CNN: 2 x (5x5 conv -> act -> pool) -> FC 1024 -> act -> FC  images
``resnet``             CIFAR-style ResNet-(6n+2), BasicBlocks, widths 16/32/64  images
``transformer``        encoder-decoder Transformer, act in every feed-forward  sequence tasks
=====================  ===================================================  =================================

Weight initialisation (``init`` option, where offered): ``"default"`` keeps
PyTorch's layer defaults; ``"kaiming"`` is He-normal (fan-in, ReLU gain) with zero
biases; ``"xavier"`` is Glorot-normal with zero biases; ``"normal"`` is N(0, 0.01²)
with zero biases (the classic small initialisation that makes deep nets without
BN hard to train); ``"truncated_normal"`` is TensorFlow's tutorial initialisation
used by SLAF's code: N(0, 0.1²) truncated at ±0.2, biases 0.1. Normalisation
layers keep weight 1, bias 0; activation modules are never touched.
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._names import unknown_name
from .tasks import TaskData

__all__ = [
    "build_model",
    "list_models",
    "default_model",
    "compatible_models",
    "INITS",
    "MLP",
    "ConvNet",
    "SlafCNN",
    "BasicBlock",
    "ResNet",
    "Seq2SeqTransformer",
]

ActFactory = Callable[[], nn.Module]

INITS = ("default", "kaiming", "xavier", "normal", "truncated_normal")


# --------------------------------------------------------------------------- shared pieces


class _Sites:
    """Wraps the user's ``act`` factory: checks each call returns a new module, remembers them.

    The memory lets weight initialisation skip activation modules, and the check
    catches ``act=lambda: shared_module``, which would tie every site's
    parameters together.
    """

    def __init__(self, act: ActFactory):
        if not callable(act):
            raise TypeError(f"act must be a callable returning a new nn.Module per call, got {act!r}")
        self._act = act
        self.modules: list[nn.Module] = []

    def __call__(self) -> nn.Module:
        module = self._act()
        if not isinstance(module, nn.Module):
            raise TypeError(f"act() must return an nn.Module, got {type(module).__name__}")
        if any(module is m for m in self.modules):
            raise ValueError("act() returned the same module twice; it must build a fresh module for every site")
        self.modules.append(module)
        return module


def _init_weights(model: nn.Module, scheme: str, sites: _Sites) -> None:
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(INITS)}")
    if scheme == "default":
        return
    skip = {id(m) for site in sites.modules for m in site.modules()}
    for module in model.modules():
        if id(module) in skip or not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        bias = 0.0
        if scheme == "kaiming":
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif scheme == "xavier":
            nn.init.xavier_normal_(module.weight)
        elif scheme == "normal":
            nn.init.normal_(module.weight, 0.0, 0.01)
        else:  # truncated_normal
            nn.init.trunc_normal_(module.weight, 0.0, 0.1, -0.2, 0.2)
            bias = 0.1
        if module.bias is not None:
            nn.init.constant_(module.bias, bias)


def _act_layer_indices(act_layers: str | int, count: int) -> set[int]:
    """Which of ``count`` hidden layers get ``act()``: ``"all"``, ``"first"`` or the first N."""
    if act_layers == "all":
        return set(range(count))
    if act_layers == "first":
        return {0}
    if isinstance(act_layers, int) and not isinstance(act_layers, bool) and 0 <= act_layers <= count:
        return set(range(act_layers))
    raise ValueError(f"act_layers must be 'all', 'first' or an integer 0..{count}, got {act_layers!r}")


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _widths(name: str, value: Any) -> tuple[int, ...]:
    widths = (value,) if isinstance(value, int) else tuple(value)
    if not widths:
        raise ValueError(f"{name} must name at least one width")
    for w in widths:
        _positive_int(name, w)
    return widths


def _dropout(value: Any) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- MLP


class MLP(nn.Module):
    """Multi-layer perceptron on flattened inputs.

    ``depth`` x [Linear -> BatchNorm1d (optional) -> activation -> Dropout
    (optional)] followed by a Linear head. Layer ``i`` is ``layers[i]`` with
    children ``linear``, ``norm``, ``act``, ``drop``.

    Args:
        in_features: flattened input size.
        out_features: number of outputs.
        act: activation factory, called once per activated layer.
        hidden: width of every hidden layer. Default: 128.
        depth: number of hidden layers (>= 1). Default: 2.
        batch_norm: BatchNorm1d before each activation (Linear biases dropped).
            Default: False.
        dropout: dropout probability after each activation. Default: 0.
        act_layers: which hidden layers get ``act()``: ``"all"``, ``"first"``, or
            an integer N for the first N; the others get ``nn.ReLU`` (SLAF's
            "hybrid" routine, DiTAC's "first layer only"). Default: ``"all"``.
        init: weight initialisation (see the module docstring). Default: ``"default"``.

    Shape:
        Input ``(N, *)`` with ``in_features`` elements per sample; output ``(N, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        act: ActFactory,
        *,
        hidden: int = 128,
        depth: int = 2,
        batch_norm: bool = False,
        dropout: float = 0.0,
        act_layers: str | int = "all",
        init: str = "default",
    ):
        super().__init__()
        sites = _Sites(act)
        hidden, depth, dropout = _positive_int("hidden", hidden), _positive_int("depth", depth), _dropout(dropout)
        activated = _act_layer_indices(act_layers, depth)
        self.layers = nn.ModuleList()
        width = in_features
        for i in range(depth):
            parts: OrderedDict[str, nn.Module] = OrderedDict(linear=nn.Linear(width, hidden, bias=not batch_norm))
            if batch_norm:
                parts["norm"] = nn.BatchNorm1d(hidden)
            parts["act"] = sites() if i in activated else nn.ReLU()
            if dropout:
                parts["drop"] = nn.Dropout(dropout)
            self.layers.append(nn.Sequential(parts))
            width = hidden
        self.head = nn.Linear(width, out_features)
        _init_weights(self, init, sites)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


# --------------------------------------------------------------------------- CNN


class ConvNet(nn.Module):
    """Plain CNN of conv-BN-act blocks, for images (2-D) or signals (1-D).

    One block per entry of ``channels``: Conv (``kernel_size``, same padding) ->
    BatchNorm (optional) -> activation -> MaxPool(2) (while the feature map is at
    least 2 wide), then Flatten -> Linear. Block ``i`` is ``features[i]`` with
    children ``conv``, ``norm``, ``act``, ``pool``.

    Args:
        spatial_shape: per-sample ``(C, H, W)`` or ``(C, L)``; inputs of any shape
            with that many elements are viewed as it.
        out_features: number of outputs.
        act: activation factory, called once per block.
        channels: output channels of each block. Default: ``(32, 64)``.
        kernel_size: odd convolution kernel size. Default: 3.
        batch_norm: BatchNorm after each convolution (conv biases dropped).
            Default: True.
        init: weight initialisation (see the module docstring). Default: ``"default"``.
    """

    def __init__(
        self,
        spatial_shape: Sequence[int],
        out_features: int,
        act: ActFactory,
        *,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        batch_norm: bool = True,
        init: str = "default",
    ):
        super().__init__()
        sites = _Sites(act)
        self.spatial_shape = tuple(spatial_shape)
        dims = len(self.spatial_shape) - 1
        if dims not in (1, 2):
            raise ValueError(f"spatial_shape must be (C, L) or (C, H, W), got {self.spatial_shape}")
        if _positive_int("kernel_size", kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for same padding), got {kernel_size}")
        conv, norm, pool = (
            (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        )
        in_channels, size = self.spatial_shape[0], list(self.spatial_shape[1:])
        blocks = []
        for width in _widths("channels", channels):
            parts: OrderedDict[str, nn.Module] = OrderedDict(
                conv=conv(in_channels, width, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
            )
            if batch_norm:
                parts["norm"] = norm(width)
            parts["act"] = sites()
            if min(size) >= 2:
                parts["pool"] = pool(2)
                size = [s // 2 for s in size]
            blocks.append(nn.Sequential(parts))
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(in_channels * math.prod(size), out_features)
        _init_weights(self, init, sites)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x.reshape(len(x), *self.spatial_shape))
        return self.head(x.flatten(1))


class SlafCNN(nn.Module):
    """The 2-conv MNIST CNN of SLAF's code (``mohit1997/PAF``, ``Experiments/MNIST``).

    This is TensorFlow's "Deep MNIST" tutorial network, as in the repository's
    ReLU and EMFN drivers (``tf_relu.py``, ``tf_cnn_emfn.py``): conv 5x5 ->
    act -> max-pool 2 -> conv 5x5 -> act -> max-pool 2 -> FC 1024 -> act ->
    dropout 0.5 -> FC. SAME padding; pooling rounds up as TF's SAME pooling does.
    The SLAF driver itself survives only as bytecode, so the widths (32, 64) are
    taken from those sibling drivers (the APQ driver uses 16/32) -- a documented
    reconstruction. SLAF's setup used k = 4 at the conv sites and k = 5 at the FC
    site, which is the activation's business, not the model's.

    Args:
        spatial_shape: per-sample ``(C, H, W)``.
        out_features: number of classes.
        act: activation factory (3 sites: ``act1``, ``act2``, ``act3``).
        channels: widths of the two convolutions. Default: ``(32, 64)``.
        hidden: width of the fully-connected layer. Default: 1024.
        dropout: dropout after the FC activation. Default: 0.5.
        act_layers: ``"all"``, or ``"conv"`` for SLAF's hybrid routine (the FC
            site gets ``nn.ReLU``). Default: ``"all"``.
        init: weight initialisation. Default: ``"truncated_normal"`` (the code's).
    """

    def __init__(
        self,
        spatial_shape: Sequence[int],
        out_features: int,
        act: ActFactory,
        *,
        channels: Sequence[int] = (32, 64),
        hidden: int = 1024,
        dropout: float = 0.5,
        act_layers: str = "all",
        init: str = "truncated_normal",
    ):
        super().__init__()
        sites = _Sites(act)
        self.spatial_shape = tuple(spatial_shape)
        if len(self.spatial_shape) != 3:
            raise ValueError(f"slaf_cnn needs images (C, H, W), got spatial shape {self.spatial_shape}")
        if act_layers not in ("all", "conv"):
            raise ValueError(f"act_layers for slaf_cnn must be 'all' or 'conv', got {act_layers!r}")
        widths = _widths("channels", channels)
        if len(widths) != 2:
            raise ValueError(f"channels for slaf_cnn must be two widths, got {channels!r}")
        c1, c2 = widths
        h, w = self.spatial_shape[1:]
        self.conv1 = nn.Conv2d(self.spatial_shape[0], c1, 5, padding=2)
        self.act1 = sites()
        self.pool1 = nn.MaxPool2d(2, ceil_mode=True)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.act2 = sites()
        self.pool2 = nn.MaxPool2d(2, ceil_mode=True)
        h, w = -(-h // 4), -(-w // 4)
        self.fc1 = nn.Linear(c2 * h * w, _positive_int("hidden", hidden))
        self.act3 = sites() if act_layers == "all" else nn.ReLU()
        self.drop = nn.Dropout(_dropout(dropout))
        self.fc2 = nn.Linear(hidden, out_features)
        _init_weights(self, init, sites)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(len(x), *self.spatial_shape)
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = self.drop(self.act3(self.fc1(x.flatten(1))))
        return self.fc2(x)


# --------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """torchvision's ``BasicBlock`` with an activation factory.

    torchvision calls one ``relu`` module twice; here the two sites are separate
    modules, ``act1`` (after ``bn1``) and ``act2`` (after the residual sum), so a
    trainable activation gets its own parameters at each.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, act: ActFactory, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act()
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + identity)


class ResNet(nn.Module):
    """Small CIFAR-style ResNet-(6n+2) (He et al. 2016, §4.2) in torchvision's layout.

    ``conv1`` (3x3, stride 1) -> ``bn1`` -> ``act`` -> ``layer1..3`` (n
    BasicBlocks each, strides 1, 2, 2) -> ``avgpool`` -> ``fc``. Works on any
    image size (28x28 -> 7x7, 32x32 -> 8x8 before pooling). Shortcuts that change
    shape are 1x1 conv + BN (torchvision's choice, "option B").

    Args:
        spatial_shape: per-sample ``(C, H, W)``.
        out_features: number of classes.
        act: activation factory (1 + 2n x 3 sites).
        depth: 6n + 2: 8, 14, 20, 32, ... Default: 8.
        widths: channels of the three stages. Default: ``(16, 32, 64)``.
        init: weight initialisation. Default: ``"kaiming"``.
    """

    def __init__(
        self,
        spatial_shape: Sequence[int],
        out_features: int,
        act: ActFactory,
        *,
        depth: int = 8,
        widths: Sequence[int] = (16, 32, 64),
        init: str = "kaiming",
    ):
        super().__init__()
        sites = _Sites(act)
        self.spatial_shape = tuple(spatial_shape)
        if len(self.spatial_shape) != 3:
            raise ValueError(f"resnet needs images (C, H, W), got spatial shape {self.spatial_shape}")
        if _positive_int("depth", depth, 8) % 6 != 2:
            raise ValueError(f"resnet depth must be 6n + 2 (8, 14, 20, 32, ...), got {depth}")
        widths = _widths("widths", widths)
        if len(widths) != 3:
            raise ValueError(f"resnet widths must be three stage widths, got {widths}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(self.spatial_shape[0], widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act = sites()
        inplanes = widths[0]
        for i, (planes, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(inplanes, planes, sites, stride if b == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, out_features)
        _init_weights(self, init, sites)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(x.reshape(len(x), *self.spatial_shape))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


# --------------------------------------------------------------------------- Transformer


class Seq2SeqTransformer(nn.Module):
    """Small encoder-decoder Transformer built from ``torch.nn`` layers.

    Token + learned position embeddings, ``num_encoder_layers`` pre-norm
    ``nn.TransformerEncoderLayer`` s, ``num_decoder_layers`` pre-norm
    ``nn.TransformerDecoderLayer`` s (each feed-forward block with its own
    ``act()``), final LayerNorms and a linear output layer. Layers are built one
    by one rather than cloned by ``nn.TransformerEncoder``, which would deep-copy
    one activation instead of asking the factory for a fresh one.

    Follows the sequence-model protocol of :mod:`actlab.lab.tasks.sequence`:
    ``forward(src, tgt_in)``, ``encode(src)``, ``decode(memory, src, tgt_in)``.

    Args:
        src_vocab, tgt_vocab: vocabulary sizes.
        max_src_len, max_tgt_len: longest source / target (with BOS, EOS).
        act: activation factory (one site per layer).
        d_model: embedding width. Default: 64.
        nhead: attention heads. Default: 4.
        num_encoder_layers, num_decoder_layers: Default: 2 each.
        dim_feedforward: feed-forward width. Default: 128.
        dropout: Default: 0.1.
        pad_index: padding token id (masked in attention). Default: 0.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        max_src_len: int,
        max_tgt_len: int,
        act: ActFactory,
        *,
        d_model: int = 64,
        nhead: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        pad_index: int = 0,
    ):
        super().__init__()
        sites = _Sites(act)
        if _positive_int("d_model", d_model) % _positive_int("nhead", nhead):
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        dropout = _dropout(dropout)
        self.pad_index = pad_index
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_index)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_index)
        self.src_pos = nn.Embedding(max_src_len, d_model)
        self.tgt_pos = nn.Embedding(max_tgt_len, d_model)
        common = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                      batch_first=True, norm_first=True)  # fmt: skip
        self.encoder_layers = nn.ModuleList(
            nn.TransformerEncoderLayer(activation=sites(), **common)
            for _ in range(_positive_int("num_encoder_layers", num_encoder_layers))
        )
        for layer in self.encoder_layers:
            # The inference fast path reads this flag, fixed at construction, and then
            # applies relu/gelu itself; clearing it makes every pass call the module
            # in ``layer.activation`` (which model surgery may also replace later).
            layer.activation_relu_or_gelu = 0
        self.decoder_layers = nn.ModuleList(
            nn.TransformerDecoderLayer(activation=sites(), **common)
            for _ in range(_positive_int("num_decoder_layers", num_decoder_layers))
        )
        self.encoder_norm = nn.LayerNorm(d_model)
        self.decoder_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, tgt_vocab)

    @staticmethod
    def _positions(tokens: Tensor, table: nn.Embedding) -> Tensor:
        if tokens.shape[1] > table.num_embeddings:
            raise ValueError(f"sequence of length {tokens.shape[1]} exceeds the model's {table.num_embeddings}")
        return table(torch.arange(tokens.shape[1], device=tokens.device))

    def encode(self, src: Tensor) -> Tensor:
        """Encoder output ``[N, S, d_model]`` for source ids ``[N, S]``."""
        h = self.src_embed(src) + self._positions(src, self.src_pos)
        padding = src == self.pad_index
        for layer in self.encoder_layers:
            h = layer(h, src_key_padding_mask=padding)
        return self.encoder_norm(h)

    def decode(self, memory: Tensor, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Logits ``[N, T, tgt_vocab]`` for target prefixes ``[N, T]`` (causal)."""
        length = tgt_in.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=tgt_in.device).triu(1)
        h = self.tgt_embed(tgt_in) + self._positions(tgt_in, self.tgt_pos)
        for layer in self.decoder_layers:
            h = layer(h, memory, tgt_mask=causal, memory_key_padding_mask=src == self.pad_index, tgt_is_causal=True)
        return self.out(self.decoder_norm(h))

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.decode(self.encode(src), src, tgt_in)


# --------------------------------------------------------------------------- catalogue


def _spatial(data: TaskData, model: str) -> tuple[int, ...]:
    """The per-sample view a convolutional ``model`` needs, or a ValueError naming the models that fit."""
    if model not in compatible_models(data):
        wanted = "images" if _MODELS[model].spatial_dims == (2,) else "images or 1-D signals"
        raise ValueError(
            f"model {model!r} needs {wanted}; task {data.name!r} has none. "
            f"Models for {data.name!r}: {', '.join(compatible_models(data))}"
        )
    return tuple(data.extras["spatial_shape"])


def _mlp(data: TaskData, act: ActFactory, **options: Any) -> nn.Module:
    return MLP(math.prod(data.input_shape), data.num_outputs, act, **options)


def _regression_mlp(data: TaskData, act: ActFactory, *, hidden: int = 50, **options: Any) -> nn.Module:
    return MLP(math.prod(data.input_shape), data.num_outputs, act, hidden=hidden, depth=1, **options)


def _cnn(data: TaskData, act: ActFactory, **options: Any) -> nn.Module:
    return ConvNet(_spatial(data, "cnn"), data.num_outputs, act, **options)


def _slaf_cnn(data: TaskData, act: ActFactory, **options: Any) -> nn.Module:
    return SlafCNN(_spatial(data, "slaf_cnn"), data.num_outputs, act, **options)


def _resnet(data: TaskData, act: ActFactory, **options: Any) -> nn.Module:
    return ResNet(_spatial(data, "resnet"), data.num_outputs, act, **options)


def _transformer(data: TaskData, act: ActFactory, **options: Any) -> nn.Module:
    e = data.extras
    return Seq2SeqTransformer(
        len(e["src_vocab"]), len(e["tgt_vocab"]), data.input_shape[0], e["max_len"], act, pad_index=e["pad_index"],
        **options,
    )  # fmt: skip


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    cls: type  # whose keyword-only arguments are the model's options
    kinds: tuple[str, ...]  # task kinds served
    spatial_dims: tuple[int, ...] | None = None  # convolutional: the spatial dimensionalities it handles
    fixed: tuple[str, ...] = ()  # options the builder sets itself


_MODELS: dict[str, _Entry] = {
    "mlp": _Entry(_mlp, MLP, ("classification", "regression")),
    "regression_mlp": _Entry(_regression_mlp, MLP, ("classification", "regression"), fixed=("depth",)),
    "cnn": _Entry(_cnn, ConvNet, ("classification", "regression"), spatial_dims=(1, 2)),
    "slaf_cnn": _Entry(_slaf_cnn, SlafCNN, ("classification",), spatial_dims=(2,)),
    "resnet": _Entry(_resnet, ResNet, ("classification",), spatial_dims=(2,)),
    "transformer": _Entry(_transformer, Seq2SeqTransformer, ("sequence",), fixed=("pad_index",)),
}


def _options(name: str) -> list[str]:
    entry = _MODELS[name]
    params = inspect.signature(entry.cls).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in entry.fixed]


def list_models() -> list[str]:
    """Names of all models."""
    return list(_MODELS)


def compatible_models(data: TaskData) -> list[str]:
    """The models that can be built for ``data``."""
    spatial = data.extras.get("spatial_shape")
    dims = None if spatial is None else len(spatial) - 1
    return [
        name
        for name, entry in _MODELS.items()
        if data.kind in entry.kinds and (entry.spatial_dims is None or dims in entry.spatial_dims)
    ]


def default_model(task_name: str) -> str:
    """The model a task uses when none is named."""
    from .tasks import get_task

    return get_task(task_name).default_model


def build_model(name: str, data: TaskData, act: ActFactory, **options: Any) -> nn.Module:
    """Build model ``name`` for ``data``, with ``act()`` at every activation site.

    Args:
        name: one of :func:`list_models`.
        data: the loaded task; fixes input shape, outputs, vocabularies.
        act: zero-argument factory returning a *new* activation module per call,
            e.g. ``lambda: actlab.create("srs")``.
        **options: the model's keyword options (see its class).

    Raises:
        ValueError: unknown model, a model that does not fit the task (the message
            lists those that do), or an unknown or invalid option.
    """
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    entry = _MODELS[name]
    if data.kind not in entry.kinds:
        raise ValueError(
            f"model {name!r} does not fit {data.kind} task {data.name!r}; "
            f"models for {data.name!r}: {', '.join(compatible_models(data))}"
        )
    allowed = _options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; its options: {', '.join(allowed)}"
        )
    return entry.builder(data, act, **options)
