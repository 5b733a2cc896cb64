"""torch.compile(fullgraph=True) over every actlab activation: no graph breaks, same numbers."""

import pytest
import torch
from torch import nn

import actlab

OURS = [n for n in actlab.list_activations() if issubclass(actlab.info(n).cls, actlab.Activation)]


def _make(name):
    per_channel = issubclass(actlab.info(name).cls, actlab.ParametricActivation)
    return actlab.create(name, **({"num_parameters": 8} if per_channel else {}))


class AllActivations(nn.Module):
    """Every activation on the same input, summed: one graph, one compile."""

    def __init__(self):
        super().__init__()
        self.acts = nn.ModuleList(_make(n) for n in OURS)

    def forward(self, x):
        return torch.stack([act(x) for act in self.acts]).sum(0)


@pytest.mark.compile
def test_compiled_fullgraph_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    model = AllActivations()
    x = torch.randn(16, 8) * 3
    grads = {}
    for label, fn in (("eager", model), ("compiled", torch.compile(model, fullgraph=True))):
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        y = fn(xi)
        (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        grads[label] = (y.detach(), xi.grad, [p.grad.clone() for p in model.parameters()])
    (ye, gxe, gpe), (yc, gxc, gpc) = grads["eager"], grads["compiled"]
    torch.testing.assert_close(yc, ye, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gxc, gxe, rtol=1e-5, atol=1e-5)
    for a, b in zip(gpc, gpe):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
