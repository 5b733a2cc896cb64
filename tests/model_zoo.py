"""Small models shared by the integration tests (built here, nothing downloaded)."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

import actlab


def accepts(name: str, keyword: str) -> bool:
    """Whether the registered activation's constructor takes ``keyword``."""
    return keyword in inspect.signature(actlab.info(name).cls).parameters


def make(name: str, channels: int | None = None, channel_dim: int = 1) -> nn.Module:
    """A registered activation, per channel where it supports it and ``channels`` is given.

    Activations without a ``channel_dim`` argument (``nn.PReLU``) are per channel along
    axis 1 only; for another axis they are made shared.
    """
    kwargs = {}
    if channels is not None and accepts(name, "num_parameters"):
        if accepts(name, "channel_dim"):
            kwargs = {"num_parameters": channels, "channel_dim": channel_dim}
        elif channel_dim == 1:
            kwargs = {"num_parameters": channels}
    return actlab.create(name, **kwargs)


@torch.no_grad()
def perturb(module: nn.Module, scale: float = 0.1) -> nn.Module:
    """Move every parameter away from its initial value (so that copies are distinguishable)."""
    for p in module.parameters():
        p.add_(torch.randn_like(p) * scale)
    return module


class BasicBlock(nn.Module):
    """torchvision's BasicBlock, ReLU module reused twice per block included."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet layout (stem, two stages of BasicBlocks, pooled head), tiny widths."""

    def __init__(self, widths=(4, 8), num_classes: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(widths[0], widths[0]), BasicBlock(widths[0], widths[0]))
        self.layer2 = nn.Sequential(BasicBlock(widths[0], widths[1], 2), BasicBlock(widths[1], widths[1]))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[1], num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def transformer_encoder(activation="relu", d_model=8, nhead=2, dim_feedforward=16, layers=2) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model, nhead, dim_feedforward, dropout=0.0, activation=activation, batch_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=True)


class FunctionalMLP(nn.Module):
    """Activations written as function calls, which module surgery cannot reach."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 8)
        self.act = nn.GELU()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.act(self.fc2(x)).relu()
        return torch.tanh(self.head(x))


class Branchy(FunctionalMLP):
    """Same, with a forward that branches on a tensor value: torch.fx cannot trace it."""

    def forward(self, x):
        if x.sum() > 0:
            x = x * 2
        return super().forward(x)
