"""Functional forms of every registered activation, like ``torch.nn.functional``.

Parameters are passed as numbers, scalar tensors or per-channel 1-D tensors
(laid out along ``channel_dim``); tensors that require grad receive gradients.
The baselines are PyTorch's own functions, re-exported under the registry names.
"""

from __future__ import annotations

import functools

import torch.nn.functional as _F

from .activations.apa import aglu, apa
from .activations.ditac import ditac
from .activations.eelu import eelu
from .activations.pau import pau
from .activations.sau import sau
from .activations.serf import serf
from .activations.slaf import slaf
from .activations.sqish import sqish
from .activations.srs import srs
from .activations.swish import swish
from .activations.zorro import zorro, zorro_asymmetric, zorro_sigmoid, zorro_sloped, zorro_tanh

relu = _F.relu
leaky_relu = _F.leaky_relu
prelu = _F.prelu
elu = _F.elu
gelu = _F.gelu
gelu_tanh = functools.partial(_F.gelu, approximate="tanh")
silu = _F.silu
mish = _F.mish
softplus = _F.softplus
tanh = _F.tanh
sigmoid = _F.sigmoid

__all__ = [
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
    "ditac",
    "slaf",
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
]
