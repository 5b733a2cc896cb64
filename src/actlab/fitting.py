"""Fit a trainable activation to a target function: initialisation presets and starts.

:func:`fit` works for any activation module with trainable parameters (SLAF, PAU,
parametric families): it minimises the mean squared error to the target on a dense
uniform grid, in evaluation mode, and reports the maximum absolute error on that grid.
Modules that are linear in their parameters can define ``linear_fit(x, y)`` (a closed
form least-squares solve, e.g. :meth:`actlab.SLAF.linear_fit`); :func:`fit` then uses it.

The module is fitted **in place** (as an optimizer would) and returned; fit a
``copy.deepcopy`` to keep the original. Its train/eval mode is restored afterwards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .registry import create

__all__ = ["fit", "target_function", "solve_least_squares", "grid_input", "METHODS"]

TargetSpec = str | Callable[[Tensor], Tensor] | nn.Module
METHODS = ("auto", "lstsq", "optimizer")


def target_function(target: TargetSpec) -> Callable[[Tensor], Tensor]:
    """A float64, gradient-free evaluator for a target activation.

    ``target`` is a registry name (built with its defaults, in evaluation mode), an
    ``nn.Module`` (a float64 deep copy in evaluation mode is used: the caller's module
    is never touched) or a tensor function such as ``torch.tanh``.
    """
    if isinstance(target, str):
        module = create(target)
    elif isinstance(target, nn.Module):
        module = copy.deepcopy(target)
    elif callable(target):
        fn = target

        def evaluate(x: Tensor) -> Tensor:
            with torch.no_grad():
                return fn(x)

        return evaluate
    else:
        raise TypeError(
            f"fit target must be an activation name, a module or a tensor function, got {type(target).__name__}"
        )
    module = module.to(torch.float64).eval()

    def evaluate_module(x: Tensor) -> Tensor:
        with torch.no_grad():
            return module(x)

    return evaluate_module


def solve_least_squares(design: Tensor, target: Tensor) -> Tensor:
    """Minimum-norm least-squares solution of ``design @ c = target`` in float64 on the CPU.

    Columns are equilibrated (scaled to unit norm) first so that the SVD-based solver's
    rank cut-off is not fooled by badly scaled bases.
    """
    a = design.detach().to("cpu", torch.float64)
    b = target.detach().to("cpu", torch.float64).reshape(-1, 1)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("least-squares fit: the basis or the target is not finite on the fitting grid; narrow x_range")
    norms = a.norm(dim=0).clamp_min(torch.finfo(torch.float64).tiny)
    solution = torch.linalg.lstsq(a / norms, b, driver="gelsd").solution.reshape(-1)
    return solution / norms


def _channels(module: nn.Module) -> int:
    counts = [getattr(module, name, 1) for name in ("num_parameters", "num_features")]
    return max(c for c in counts if isinstance(c, int))


def grid_input(module: nn.Module, grid: Tensor) -> Tensor:
    """Lay a 1-D grid out as one sample the module accepts: ``(1, C, P)`` (or ``(1, P, C)``).

    Every channel sees the whole grid, so per-channel parameters are all evaluated; the
    grid is one sample, so per-sample scalings see its full range.
    """
    channels = _channels(module)
    channel_dim = getattr(module, "channel_dim", 1)
    if channel_dim in (1, -2):
        return grid.reshape(1, 1, -1).expand(1, channels, grid.numel())
    if channel_dim == -1:
        return grid.reshape(1, -1, 1).expand(1, grid.numel(), channels)
    raise ValueError(f"fit: modules with channel_dim={channel_dim} are not supported; use channel_dim 1 or -1")


def _check_args(x_range, points: int, steps: int, lr: float, method: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in x_range)
    except (TypeError, ValueError):
        raise ValueError(f"fit: x_range must be a pair (low, high), got {x_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"fit: x_range must satisfy low < high (both finite), got {x_range!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"fit: points must be an integer >= 2, got {points!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"fit: steps must be an integer >= 0, got {steps!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"fit: lr must be a positive number, got {lr!r}")
    if method not in METHODS:
        raise ValueError(f"fit: method must be one of {', '.join(METHODS)}, got {method!r}")
    return lo, hi


class _Best:
    """The lowest-loss parameters seen so far: fitting never returns worse than it started."""

    def __init__(self, params: list[Tensor], loss: float):
        self.params, self.loss = params, loss
        self.values = [p.detach().clone() for p in params]

    def offer(self, loss: float) -> None:
        if loss < self.loss:  # False for NaN
            self.loss = loss
            self.values = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def restore(self) -> None:
        for p, value in zip(self.params, self.values):
            p.copy_(value)


def _optimise(module: nn.Module, inputs: Tensor, targets: Tensor, steps: int, lr: float) -> None:
    """Adam on the mean squared error, then L-BFGS (strong Wolfe) from the best point so far.

    The best of the start, the Adam result and the L-BFGS result is kept: Adam's first
    steps move every parameter by about ``lr`` and can leave a good starting basin.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"fit: {type(module).__name__} has no trainable parameters to fit")

    def loss_fn() -> Tensor:
        return torch.mean((module(inputs).to(torch.float64) - targets) ** 2)

    with torch.no_grad():
        best = _Best(params, float(loss_fn()))
    adam = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        adam.zero_grad()
        loss = loss_fn()
        loss.backward()
        adam.step()
    with torch.no_grad():
        best.offer(float(loss_fn()))
    best.restore()
    lbfgs = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max(steps, 20),
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )

    def closure() -> Tensor:
        lbfgs.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    lbfgs.step(closure)
    with torch.no_grad():
        best.offer(float(loss_fn()))
    best.restore()


def fit(
    module: nn.Module,
    target: TargetSpec,
    x_range: tuple[float, float] = (-3.0, 3.0),
    *,
    points: int = 2001,
    method: str = "auto",
    steps: int = 500,
    lr: float = 1e-2,
) -> tuple[nn.Module, float]:
    """Fit the parameters of ``module`` to ``target`` on ``x_range``; return ``(module, max_error)``.

    Args:
        module: an activation module with trainable parameters. Fitted in place, in
            evaluation mode (so batch statistics are not used or updated); its
            train/eval mode is restored afterwards.
        target: a registry name (e.g. ``"gelu"``), a module or a tensor function
            (e.g. ``torch.tanh``, ``lambda x: F.leaky_relu(x, 0.01)``).
        x_range: the fitting interval. Default: (-3, 3).
        points: grid size (uniform, both ends included). Default: 2001.
        method: ``"lstsq"`` (closed form; needs ``module.linear_fit``), ``"optimizer"``
            (``steps`` Adam steps at ``lr`` on the mean squared error, then up to
            ``max(steps, 20)`` L-BFGS iterations from the better of the start and the
            Adam result; the best point seen is kept, never one worse than the start) or
            ``"auto"`` (the closed form when available). Default: ``"auto"``.
            Optimisation is local: the result depends on the module's current
            parameters (try several starts for non-convex families such as PAU).
        steps, lr: optimizer settings. Defaults: 500, 1e-2.

    Returns:
        The module and the max absolute error over the grid (a float), evaluated at the
        module's own dtype against the float64 target.
    """
    lo, hi = _check_args(x_range, points, steps, lr, method)
    if not isinstance(module, nn.Module):
        raise TypeError(f"fit: expected an nn.Module to fit, got {type(module).__name__}")
    if method == "lstsq" and not hasattr(module, "linear_fit"):
        raise ValueError(f"fit: {type(module).__name__} has no closed-form linear_fit; use method='optimizer'")
    evaluate = target_function(target)
    grid = torch.linspace(lo, hi, points, dtype=torch.float64)
    expected = evaluate(grid).to(torch.float64)
    if expected.shape != grid.shape or not torch.isfinite(expected).all():
        raise ValueError(f"fit: the target must map the grid elementwise to finite values on {x_range!r}")
    reference = next(iter(module.parameters()), None)
    if reference is None:
        reference = next(iter(module.buffers()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    inputs = grid_input(module, grid).to(device, dtype)
    targets = grid_input(module, expected).to(device)
    was_training = module.training
    module.eval()
    try:
        if method in ("auto", "lstsq") and hasattr(module, "linear_fit"):
            module.linear_fit(grid, expected)
        else:
            _optimise(module, inputs, targets, steps, lr)
        with torch.no_grad():
            max_error = float((module(inputs).to(torch.float64) - targets).abs().max())
    finally:
        module.train(was_training)
    return module, max_error
