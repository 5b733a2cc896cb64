"""Cases shared by the fast-path tests: every elementwise activation, its parameters, its layouts.

Imported by tests/test_fastpath.py and run (as a script, in a subprocess with
``TRITON_INTERPRET=1``) by tests/test_triton_interpreter.py, so both check the
same things against the same reference.
"""

from __future__ import annotations

import json
import math
import sys

import torch

import actlab
from actlab.elementwise import ElementwiseOp, apply

#: every registered activation computed by an ElementwiseOp
ELEMENTWISE = [
    n
    for n in actlab.list_activations()
    if isinstance(getattr(actlab.create(n), "op", None), ElementwiseOp)  # DiTAC and SLAF have their own paths
]

#: (label, input shape, channel_dim, per-channel?, memory format): every canonical layout, and a non-dense input
LAYOUTS = [
    ("shared", (37,), 1, False, None),
    ("rows", (3, 4, 5), 1, True, None),
    ("cols", (6, 5, 4), -1, True, None),
    ("channels_last", (2, 4, 3, 3), 1, True, torch.channels_last),
    ("non_dense", (5, 4), 1, True, "slice"),
    # several tiles per row / per column, and several row blocks per program (Triton)
    ("rows_long", (2, 3, 1100), 1, True, None),
    ("cols_wide", (300, 130), -1, True, None),
]

DTYPES = (torch.float32, torch.bfloat16, torch.float16)

SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e30, -1e30, 1.0, -1.0]


def op_and_params(name: str, channels: int | None, dtype: torch.dtype, device="cpu"):
    """The op and parameter values moved away from the defaults (so that every term matters)."""
    kwargs = {}
    if issubclass(actlab.info(name).cls, actlab.ParametricActivation):
        kwargs = {"num_parameters": channels or 1, "dtype": torch.float64}
    m = actlab.create(name, **kwargs)
    if not kwargs:
        return m.op, []
    with torch.no_grad():
        values = [v * (1 + 0.1 * torch.arange(v.numel(), dtype=v.dtype).reshape(v.shape)) for v in m.op_params()]
    return m.op, [v.to(device=device, dtype=dtype) for v in values]


def make_input(layout, dtype, specials: bool = False, device="cpu") -> torch.Tensor:
    _, shape, _, _, fmt = layout
    gen = torch.Generator().manual_seed(1)
    if fmt == "slice":
        x = (torch.randn((shape[0], 2 * shape[1]), generator=gen, dtype=torch.float64) * 3)[:, ::2]
    else:
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3 + 0.0123
        if fmt is not None:
            x = x.contiguous(memory_format=fmt)
    x = x.to(device=device, dtype=dtype)
    if specials:  # written in place, so that the layout is kept
        index = torch.unravel_index(torch.arange(len(SPECIALS)), x.shape)
        x[index] = torch.tensor(SPECIALS, dtype=dtype, device=device)
    return x


def upstream_grad(like: torch.Tensor) -> torch.Tensor:
    """The gradient fed to backward: varied, and with no zero entry (0·NaN would hide a NaN gradient)."""
    grad = torch.linspace(-1, 1, like.numel(), dtype=torch.float64) + 0.3 / max(like.numel(), 1)
    return grad.reshape(like.shape).to(device=like.device, dtype=like.dtype)


def run(op, params, x, channel_dim, backend):
    """(y, grad_x, grad_params) for a fixed upstream gradient."""
    xi = x.detach().clone().requires_grad_(True)
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    y = apply(op, xi, ps, channel_dim=channel_dim, backend=backend)
    torch.autograd.backward(y, upstream_grad(y))
    return y.detach(), xi.grad, [p.grad for p in ps]


def tolerances(dtype: torch.dtype) -> dict:
    return {
        torch.float64: {"rtol": 1e-10, "atol": 1e-12},
        torch.float32: {"rtol": 2e-5, "atol": 2e-6},
        torch.float16: {"rtol": 2e-3, "atol": 2e-3},
        torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2},
    }[dtype]


def _param_grads_in_float64(op, params, x, grad_like, channel_dim):
    """Parameter gradients of the reference in float64 (from the same rounded inputs), and per channel
    the sum of |grad·∂y/∂p| — the scale of a sum's rounding error."""
    x64 = x.detach().double()
    p64 = [p.detach().double() for p in params]
    _, _, exact = run(op, p64, x64, channel_dim, "reference")
    grad = grad_like.double().abs()
    magnitudes = ElementwiseOp(
        "magnitudes", op.param_names, op.forward, lambda *a: tuple(d.abs() for d in op.derivatives(*a))
    )
    ps = [p.clone().requires_grad_(True) for p in p64]
    y = apply(magnitudes, x64, ps, channel_dim=channel_dim, backend="fused")
    torch.autograd.backward(y, grad)
    return exact, [p.grad for p in ps]


def _assert_input_gradient_close(got, ref, op, params, x, channel_dim, tol, where, within=None) -> None:
    """``got`` within ``tol`` of the same-dtype reference ``ref``, or no further from the float64 truth
    than ``tol`` plus twice the reference's own error there.

    Where a derivative is ill-conditioned (Zorro's near its humps, with the steep per-channel
    parameters of these cases), the float32 reference is itself ~100 ulps off, and a fast path that
    rounds differently (one FMA instead of a multiply and an add) can be as far off in the other
    direction: then both are compared with float64, as the parameter gradients always are.
    """
    if within is None:
        within = torch.ones_like(x, dtype=torch.bool)
    if torch.allclose(got[within], ref[within], equal_nan=True, **tol):
        return
    _, exact, _ = run(op, [p.double() for p in params], x.double(), channel_dim, "reference")
    error, own_error = (got.double() - exact).abs(), (ref.double() - exact).abs()
    bound = tol["atol"] + tol["rtol"] * exact.abs() + 2 * own_error
    bad = ~(error <= bound) & within
    assert not bad.any(), (
        f"{where} grad_x: {int(bad.sum())} elements off, e.g. {got[bad][:3].tolist()} against the reference's "
        f"{ref[bad][:3].tolist()} (float64: {exact[bad][:3].tolist()})"
    )


def compare(name, layout, dtype, backend, specials=False, device="cpu") -> None:
    """Assert that ``backend`` matches the reference on one case (raises AssertionError).

    Values and input gradients are compared with the reference in the same dtype. Parameter gradients
    are sums over the input, so they are compared with the reference in float64, within the dtype's
    rounding of the result plus 16 float32 ulps of the sum of the terms' magnitudes.
    """
    label, shape, channel_dim, per_channel, _ = layout
    op, params = op_and_params(name, shape[channel_dim] if per_channel else None, dtype, device)
    x = make_input(layout, dtype, specials, device)
    ref = run(op, params, x, channel_dim, "reference")
    got = run(op, params, x, channel_dim, backend)
    tol = tolerances(dtype)
    where = f"{name} [{backend}, {label}, {dtype}{', specials' if specials else ''}]"
    torch.testing.assert_close(got[0], ref[0], equal_nan=True, **tol, msg=lambda m: f"{where} value: {m}")
    if label != "non_dense":
        assert got[0].stride() == x.stride(), f"{where}: output strides {got[0].stride()} != input's {x.stride()}"
    if specials:
        # The fast paths compute the closed-form derivatives, as the fused path does: equal to them
        # everywhere, and to the reference wherever the input is finite (at ±inf the closed forms may be NaN
        # where autograd through the double-where gives a limit). Parameter gradients sum over the
        # non-finite terms and are not compared.
        # (Finite inputs: as without specials, where an ill-conditioned derivative may be compared with float64.)
        fused = run(op, params, x, channel_dim, "fused")
        finite = x.isfinite()
        torch.testing.assert_close(
            got[1][~finite], fused[1][~finite], equal_nan=True, **tol, msg=lambda m: f"{where} grad_x: {m}"
        )
        _assert_input_gradient_close(got[1], fused[1], op, params, x, channel_dim, tol, where, within=finite)
        _assert_input_gradient_close(got[1], ref[1], op, params, x, channel_dim, tol, where, within=finite)
        return
    _assert_input_gradient_close(got[1], ref[1], op, params, x, channel_dim, tol, where)
    if not params:
        return
    exact, magnitude = _param_grads_in_float64(op, params, x, upstream_grad(x).double(), channel_dim)
    rounding = torch.finfo(dtype).eps if dtype != torch.float64 else 1e-13
    summing = 16 * torch.finfo(torch.float32).eps if dtype != torch.float64 else 1e-13
    for i, (a, b, m, r) in enumerate(zip(got[2], exact, magnitude, ref[2])):
        error = (a.double() - b).abs()
        # ...and never tighter than twice the same-dtype reference's own error (AGLU's κ-gradient
        # loses ~25 float32 ulps of the terms' magnitudes to cancellation in any implementation).
        own_error = (r.double() - b).abs()
        bound = rounding * b.abs() + summing * m + 2 * own_error + 1e-30
        assert (error <= bound).all(), (
            f"{where} grad {op.param_names[i]}: error {error.flatten().tolist()} exceeds {bound.flatten().tolist()}"
        )


def saved_input_sized(name, backend, dtype=torch.float32, shape=(16, 8, 4), device="cpu") -> tuple[int, bool]:
    """(number of saved tensors with at least the input's numel, whether the one kept is the input itself)."""
    op, params = op_and_params(name, 8 if len(shape) > 1 else None, dtype, device)
    x = make_input(("rows", shape, 1, True, None), dtype, device=device).requires_grad_(True)
    params = [p.requires_grad_(True) for p in params]
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        apply(op, x, params, channel_dim=1, backend=backend)
    big = [t for t in saved if t.numel() >= x.numel()]
    return len(big), all(t.data_ptr() == x.data_ptr() for t in big)


#: layouts checked in half precision by the default (quick) interpreter run; ``--full`` checks all
QUICK_HALF_LAYOUTS = ("rows", "cols")


def _interpreter_main(names: list[str], full: bool) -> None:
    """Run the Triton cases; print one JSON line per op: {"name": ..., "failures": [...]}.

    The interpreter runs Triton programs in numpy, ~10 s per op for all cases, so the default
    (quick) run checks float32 in every layout but the half dtypes in two layouts only."""
    import warnings

    warnings.filterwarnings("ignore", category=RuntimeWarning)  # numpy: division by zero in unused lanes
    for name in names:
        failures = []
        for layout in LAYOUTS:
            if layout[0] in ("rows_long", "cols_wide"):  # the multi-tile layouts: float32 only
                dtypes = (torch.float32,)
            elif full or layout[0] in QUICK_HALF_LAYOUTS:
                dtypes = DTYPES
            else:
                dtypes = (torch.float32,)
            for dtype in dtypes:
                for specials in (False, True) if dtype == torch.float32 else (False,):
                    try:
                        compare(name, layout, dtype, "triton", specials)
                    except Exception as err:  # reported, asserted by the test
                        failures.append(f"{type(err).__name__}: {err}"[:2000])
        count, is_input = saved_input_sized(name, "triton")
        if count != 1 or not is_input:
            failures.append(f"saved {count} input-sized tensors (input itself: {is_input})")
        empty = torch.empty(0, 4, dtype=torch.float32, requires_grad=True)
        op, params = op_and_params(name, None, torch.float32)
        y = apply(op, empty, params, backend="triton")
        if y.shape != empty.shape:
            failures.append(f"empty input gave shape {tuple(y.shape)}")
        print(json.dumps({"name": name, "failures": failures}), flush=True)


if __name__ == "__main__":
    full = "--full" in sys.argv[1:]
    _interpreter_main([a for a in sys.argv[1:] if a != "--full"] or ELEMENTWISE, full)
