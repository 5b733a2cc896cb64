"""The CPAB engine (actlab.cpab) against independent computations.

Oracles: the constraint equations written out here, numpy's SVD null space,
RK4 integration of the velocity field with a tiny step (float64), central finite
differences, and the statistics of the released code's prior quoted in the spec.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actlab import cpab

CELLS = (2, 3, 10, 25)


def _svd_null_space(L: np.ndarray) -> np.ndarray:
    _, s, vt = np.linalg.svd(L)
    rank = int((s > 1e-12 * s.max()).sum())
    return vt[rank:].T


def _constraints(cells: int) -> np.ndarray:
    """The constraint rows written from the definition, for comparison with constraint_matrix."""
    rows = []
    for i in range(1, cells):
        x, row = i / cells, np.zeros(2 * cells)
        row[2 * (i - 1)], row[2 * (i - 1) + 1], row[2 * i], row[2 * i + 1] = x, 1, -x, -1
        rows.append(row)
    first, last = np.zeros(2 * cells), np.zeros(2 * cells)
    first[1] = 1  # v(0) = b_0
    last[-2:] = 1  # v(1) = a_last + b_last
    return np.array(rows + [first, last])


def _prior_theta(cells: int, n: int, generator: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    cov = torch.tensor(cpab.prior_covariance(cells), dtype=torch.float64)
    z = torch.randn(n, cells - 1, dtype=torch.float64, generator=generator)
    return scale * z @ torch.linalg.cholesky(cov).T


def _field(theta: torch.Tensor):
    cells = theta.shape[-1] + 1
    vmap = torch.tensor(cpab.vertex_map(cells), dtype=theta.dtype)
    return cpab.velocity_coefficients(theta.reshape(-1, cells - 1), vmap)


# --------------------------------------------------------------------------------------------
# Constraints and basis
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cells", CELLS)
def test_basis_spans_the_constrained_fields(cells):
    L = cpab.constraint_matrix(cells)
    np.testing.assert_array_equal(L, _constraints(cells))
    B = cpab.null_space_basis(cells)
    assert B.shape == (2 * cells, cells - 1)
    np.testing.assert_allclose(B.T @ B, np.eye(cells - 1), atol=1e-13)
    assert np.abs(L @ B).max() < 1e-13
    # Same subspace as numpy's SVD null space: equal orthogonal projectors.
    N = _svd_null_space(L)
    np.testing.assert_allclose(B @ B.T, N @ N.T, atol=1e-12)


@pytest.mark.parametrize("cells", CELLS)
def test_basis_is_the_canonical_qr_of_the_hat_functions(cells):
    # B = N·M with BᵀN upper triangular with a positive diagonal: unique, so θ means
    # the same thing whatever the LAPACK build.
    B, N, M = cpab.null_space_basis(cells), cpab.hat_basis(cells), cpab.vertex_map(cells)
    np.testing.assert_allclose(N @ M, B, atol=1e-13)
    R = B.T @ N
    np.testing.assert_allclose(np.tril(R, -1), 0, atol=1e-13)
    assert (np.diag(R) > 0).all()
    # Column k of N is the field that is 1 at vertex k+1 and 0 at the other vertices.
    vertices = np.arange(cells + 1) / cells
    for k in range(cells - 1):
        a, b = N[0::2, k], N[1::2, k]
        values = np.append(a * vertices[:-1] + b, a[-1] + b[-1])
        np.testing.assert_allclose(values, np.eye(cells + 1)[k + 1], atol=1e-13)


@pytest.mark.parametrize("cells", CELLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_velocity_coefficients_equal_B_theta_and_keep_the_constraints_exactly(cells, dtype):
    g = torch.Generator().manual_seed(cells)
    theta = torch.randn(4, cells - 1, dtype=torch.float64, generator=g)
    slopes, intercepts = _field(theta.to(dtype))
    A = theta @ torch.tensor(cpab.null_space_basis(cells)).T
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(slopes.double(), A[:, 0::2], atol=tol, rtol=tol)
    torch.testing.assert_close(intercepts.double(), A[:, 1::2], atol=tol, rtol=tol)
    # Zero boundary exactly, continuity to rounding, in any dtype.
    assert (intercepts[:, 0] == 0).all()
    assert (slopes[:, -1] + intercepts[:, -1]).abs().max() <= 8 * torch.finfo(dtype).eps * slopes.abs().max()
    x = torch.arange(1, cells, dtype=dtype) / cells
    jump = (slopes[:, :-1] - slopes[:, 1:]) * x + intercepts[:, :-1] - intercepts[:, 1:]
    assert jump.abs().max() <= 16 * torch.finfo(dtype).eps * (1 + slopes.abs().max())


# --------------------------------------------------------------------------------------------
# Integration
# --------------------------------------------------------------------------------------------
def test_integrate_matches_rk4_in_float64():
    """T agrees with RK4 (step 1e-4, error ~1e-10) to 1e-8 for prior draws and strong fields."""
    g = torch.Generator().manual_seed(1)
    cases = [(cells, scale) for cells in CELLS for scale in (1.0, 4.0)]
    u = torch.rand(len(cases), 60, dtype=torch.float64, generator=g)
    u[:, :3] = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    width = max(CELLS)
    slopes_np = np.zeros((len(cases), width))
    intercepts_np = np.zeros((len(cases), width))
    ours = []
    for r, (cells, scale) in enumerate(cases):
        slopes, intercepts = _field(_prior_theta(cells, 1, g, scale))
        ours.append(cpab.integrate(u[r : r + 1], slopes, intercepts).value[0])
        # Pad the fields of fewer cells by repeating the last cell: the RK4 below
        # needs one width; points never reach the padding because u <= 1.
        slopes_np[r] = np.pad(slopes[0].numpy(), (0, width - cells), mode="edge")
        intercepts_np[r] = np.pad(intercepts[0].numpy(), (0, width - cells), mode="edge")
        slopes_np[r, cells:] = np.nan  # must never be used
    cells_of_row = np.array([c for c, _ in cases])[:, None]

    def v(x):
        c = np.clip(np.floor(x * cells_of_row), 0, cells_of_row - 1).astype(int)
        rows = np.arange(len(cases))[:, None]
        return slopes_np[rows, c] * x + intercepts_np[rows, c]

    x, step = u.numpy().copy(), 1e-4
    for _ in range(int(round(1 / step))):
        k1 = v(x)
        k2 = v(x + step / 2 * k1)
        k3 = v(x + step / 2 * k2)
        k4 = v(x + step * k3)
        x = x + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    np.testing.assert_allclose(torch.stack(ours).numpy(), x, atol=1e-8, rtol=0)


@pytest.mark.parametrize("cells", CELLS)
def test_transformation_is_an_increasing_bijection_of_the_unit_interval(cells):
    g = torch.Generator().manual_seed(2)
    theta = _prior_theta(cells, 8, g, scale=3.0)
    slopes, intercepts = _field(theta)
    u = torch.linspace(0, 1, 2001, dtype=torch.float64).expand(8, -1)
    T = cpab.integrate(u, slopes, intercepts).value
    assert (T[:, 0] == 0).all() and (T[:, -1] - 1).abs().max() < 1e-14
    assert (T.diff(dim=-1) > 0).all()
    assert not torch.allclose(T, u)  # the fields are not trivial


def _away_from_kinks(u: torch.Tensor, T: torch.Tensor, cells: int, gap: float) -> torch.Tensor:
    """T' has kinks where u or T(u) is a vertex; finite differences straddling one are O(step) off."""

    def far(p):
        return ((p * cells - (p * cells).round()).abs() / cells) > gap

    return far(u) & far(T)


@pytest.mark.parametrize("cells", CELLS)
def test_spatial_derivative_matches_finite_differences_and_the_flow_identity(cells):
    g = torch.Generator().manual_seed(3)
    theta = _prior_theta(cells, 4, g, scale=2.0)
    slopes, intercepts = _field(theta)
    u = torch.rand(4, 400, dtype=torch.float64, generator=g) * 0.98 + 0.01
    T, dT, _ = cpab.integrate(u, slopes, intercepts, derivative=True)
    step = 1e-6
    fd = (cpab.integrate(u + step, slopes, intercepts).value - cpab.integrate(u - step, slopes, intercepts).value) / (
        2 * step
    )
    keep = _away_from_kinks(u, T, cells, 4 * step)
    torch.testing.assert_close(dT[keep], fd[keep], atol=1e-8, rtol=1e-7)
    # T'(u) = v(T(u))/v(u) for a 1-D autonomous flow (where v(u) is not tiny).
    vu, vT = cpab.velocity(u, slopes, intercepts), cpab.velocity(T, slopes, intercepts)
    moving = vu.abs() > 1e-3
    torch.testing.assert_close(dT[moving], (vT / vu)[moving], atol=1e-10, rtol=1e-9)
    # autograd through the closed form gives the same derivative.
    ur = u.clone().requires_grad_()
    (grad,) = torch.autograd.grad(cpab.integrate(ur, slopes, intercepts).value.sum(), ur)
    torch.testing.assert_close(grad, dT, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("cells", CELLS)
@pytest.mark.parametrize("scale", [1.0, 1e-9, 0.0])
def test_theta_jacobian_analytic_autograd_and_finite_differences_agree(cells, scale):
    g = torch.Generator().manual_seed(4)
    theta = _prior_theta(cells, 1, g, scale=max(scale, 0.0))[0]
    vmap = torch.tensor(cpab.vertex_map(cells))
    u = torch.rand(1, 300, dtype=torch.float64, generator=g)

    def T_of(th):
        return cpab.integrate(u, *cpab.velocity_coefficients(th[None], vmap)).value[0]

    terms = cpab.integrate(
        u, *cpab.velocity_coefficients(theta[None], vmap), jacobian=cpab.coefficient_jacobian(vmap)
    ).jacobian
    assert terms.weights.shape == (1, 300, cpab.JACOBIAN_WEIGHTS)
    assert terms.first.shape == terms.last.shape == (1, 300) and terms.first.dtype == torch.int32
    assert terms.rows.shape == (1, cpab.jacobian_rows(cells), cells - 1)
    analytic = terms.dense()[0]
    weights = torch.randn(1, 300, dtype=torch.float64, generator=g)
    torch.testing.assert_close(terms.contract(weights)[0], weights[0] @ analytic, atol=1e-12, rtol=1e-10)
    autograd = torch.autograd.functional.jacobian(T_of, theta)
    torch.testing.assert_close(analytic, autograd, atol=1e-12, rtol=1e-10)
    step, eye = 1e-6, torch.eye(cells - 1, dtype=torch.float64)
    fd = torch.stack([(T_of(theta + step * e) - T_of(theta - step * e)) / (2 * step) for e in eye], dim=1)
    # Cell crossings make dT/dθ only piecewise smooth: central differences are O(step) off near them.
    torch.testing.assert_close(analytic, fd, atol=2e-7, rtol=1e-6)


@pytest.mark.parametrize("cells", CELLS)
def test_the_export_form_of_the_crossing_count_gives_the_same_flow(cells, monkeypatch):
    """Under torch.export the cells crossed are counted by one comparison per cell instead of a
    binary search (ONNX has no search): the same crossings, so the same T and dT/dθ, bit for bit,
    for grid points (which sit on vertices), random points, the ends and NaN."""
    g = torch.Generator().manual_seed(7)
    theta = _prior_theta(cells, 3, g, scale=3.0)
    vmap = torch.tensor(cpab.vertex_map(cells))
    coefficients = cpab.velocity_coefficients(theta, vmap)
    u = torch.cat(
        [torch.linspace(0, 1, 4 * cells + 1, dtype=torch.float64), torch.rand(300, dtype=torch.float64, generator=g)]
    )
    u = torch.cat([u, torch.tensor([float("nan")], dtype=torch.float64)]).expand(3, -1)

    def run():
        r = cpab.integrate(u, *coefficients, derivative=True, jacobian=cpab.coefficient_jacobian(vmap))
        return r.value, r.derivative, r.jacobian.dense(), r.jacobian.last

    searched = run()
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    compared = run()
    for a, b in zip(searched, compared):
        assert torch.equal(a.nan_to_num(), b.nan_to_num())
    assert searched[0][:, -1].isnan().all() and searched[0][:, :-1].isfinite().all()


def test_integrate_gradcheck():
    g = torch.Generator().manual_seed(5)
    slopes, intercepts = _field(_prior_theta(10, 2, g, scale=2.0))
    # Points away from the vertices (where T is only C¹).
    u = (
        torch.randint(0, 10, (2, 12), generator=g) + 0.2 + 0.6 * torch.rand(2, 12, generator=g, dtype=torch.float64)
    ) / 10
    inputs = (u.requires_grad_(), slopes.clone().requires_grad_(), intercepts.clone().requires_grad_())
    assert torch.autograd.gradcheck(lambda *t: cpab.integrate(*t).value, inputs)


def test_fixed_points_nan_and_identity():
    cells = 4
    # Vertex velocities (0, 0.3, -0.2, 0.1, 0): zeros of v inside cells 1 and 2.
    w = torch.tensor([[0.0, 0.3, -0.2, 0.1, 0.0]], dtype=torch.float64)
    slopes = (w[:, 1:] - w[:, :-1]) * cells
    intercepts = w[:, :-1] - slopes * torch.arange(cells, dtype=torch.float64) / cells
    zeros = torch.tensor([[0.25 + 0.3 / (0.5 * cells), 0.5 + 0.2 / (0.3 * cells)]], dtype=torch.float64)
    assert cpab.velocity(zeros, slopes, intercepts).abs().max() < 1e-15
    T, dT, _ = cpab.integrate(zeros, slopes, intercepts, derivative=True)
    torch.testing.assert_close(T, zeros, atol=1e-15, rtol=0)
    torch.testing.assert_close(dT, torch.exp(slopes[0, [1, 2]])[None], atol=1e-14, rtol=0)
    # Trajectories never cross a zero of v.
    u = torch.linspace(0, 1, 201, dtype=torch.float64)[None]
    T = cpab.integrate(u, slopes, intercepts).value
    assert ((u < zeros[0, 0]) == (T < zeros[0, 0])).all() and ((u < zeros[0, 1]) == (T < zeros[0, 1])).all()
    nan = cpab.integrate(torch.tensor([[float("nan"), 0.5]], dtype=torch.float64), slopes, intercepts).value
    assert nan[0, 0].isnan() and nan[0, 1].isfinite()
    zero_field = torch.zeros(1, cells, dtype=torch.float64)
    assert torch.equal(cpab.integrate(u, zero_field, zero_field).value, u)


def test_integrate_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        cpab.integrate(torch.rand(5), torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="cells must be an integer >= 2"):
        cpab.null_space_basis(1)


# --------------------------------------------------------------------------------------------
# Prior and regulariser
# --------------------------------------------------------------------------------------------
def _kernel_prior(cells, length_scale, variance):
    centres = (np.arange(cells) + 0.5) / cells
    dist = np.abs(np.subtract.outer(centres, centres))
    c0 = np.full((2 * cells, 2 * cells), 100 * dist.max())
    c0[::2, ::2] = dist
    c0[1::2, 1::2] = dist
    return variance**2 * np.exp(-c0 / (2 * length_scale**2))


def _kernel_regulariser(cells, length_scale, variance):
    D = 2 * cells
    centres = np.linspace(-1, 1, D)
    e = np.exp(-np.abs(np.subtract.outer(centres, centres)) / length_scale)
    return e * e * (variance * D) ** 2  # the released code squares exp(-d/λs)


@pytest.mark.parametrize("cells", [3, 10])
def test_prior_and_regulariser_do_not_depend_on_the_basis(cells):
    # With another orthonormal basis (numpy SVD), the same velocity field must get the
    # same prior covariance (in coefficient space) and the same penalty.
    N = _svd_null_space(cpab.constraint_matrix(cells))
    B = cpab.null_space_basis(cells)
    sigma = _kernel_prior(cells, 3.0, 2.0)
    np.testing.assert_allclose(
        B @ cpab.prior_covariance(cells, 3.0, 2.0) @ B.T, N @ (N.T @ sigma @ N) @ N.T, atol=1e-10
    )
    K = _kernel_regulariser(cells, 5.0, 1.0)
    P_svd = np.linalg.inv(N.T @ K @ N + np.finfo(np.float32).eps * np.eye(cells - 1))
    field = N @ np.random.default_rng(0).normal(size=cells - 1)
    theta_ours, theta_svd = B.T @ field, N.T @ field
    P = cpab.precision_matrix(cells, 5.0, 1.0)
    np.testing.assert_allclose(theta_ours @ P @ theta_ours, theta_svd @ P_svd @ theta_svd, rtol=1e-8)
    np.testing.assert_allclose(P, P.T)


def test_prior_draws_have_the_released_code_statistics():
    # spec §3.7 (measured on the released code's prior): max_u |T(u) - u| has a median
    # of about 0.21 and a 90th percentile of about 0.47 at cells=10, λs=5, λv=2.
    g = torch.Generator().manual_seed(6)
    theta = _prior_theta(10, 1000, g)
    slopes, intercepts = _field(theta)
    u = torch.linspace(0, 1, 129, dtype=torch.float64).expand(1000, -1)
    deviation = (cpab.integrate(u, slopes, intercepts).value - u).abs().amax(-1)
    assert 0.18 < deviation.median() < 0.24
    assert 0.42 < deviation.quantile(0.9) < 0.52


def test_regulariser_scale_and_validation():
    P = cpab.precision_matrix(10)
    # spec §3.7: (λv·D)² = 1600, so the entries of P are about 0.01 — a weak penalty.
    assert 0.005 < np.diag(P).mean() < 0.02
    assert np.linalg.eigvalsh(P).min() > 0
    with pytest.raises(ValueError, match="length_scale must be a finite number > 0"):
        cpab.precision_matrix(10, length_scale=0.0)
    with pytest.raises(ValueError, match="variance must be a finite number > 0"):
        cpab.prior_covariance(10, variance=float("nan"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_strong_fields_never_leave_the_unit_interval(dtype):
    # Velocities of ±40 at the vertices next to the ends: trajectories rush towards 0
    # and 1, where the velocity is zero (up to rounding), and must stop there.
    cells = 5
    for sign in (1.0, -1.0):
        w = torch.tensor([[0.0, -sign * 40, 3.0, -2.0, sign * 40, 0.0]], dtype=torch.float64)
        slopes = (w[:, 1:] - w[:, :-1]) * cells
        intercepts = w[:, :-1] - slopes * torch.arange(cells, dtype=torch.float64) / cells
        u = torch.linspace(0, 1, 1001, dtype=dtype)[None]
        T = cpab.integrate(u, slopes.to(dtype), intercepts.to(dtype)).value
        assert torch.isfinite(T).all() and (T >= 0).all() and (T <= 1).all()
        assert T[0, 0] == 0 and T[0, -1] == 1  # also when the end repels
        # Monotone up to rounding (many points end up at the same attracting fixed point).
        assert (T.diff() >= -4 * torch.finfo(dtype).eps).all()
