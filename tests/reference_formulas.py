"""Independent reference implementations for the closed-form activations.

Each is the *textbook* formula evaluated with mpmath at 50 significant digits:
no stable rewriting, no shared code with actlab. Where a formula overflows in
floating point, mpmath's arbitrary exponent range evaluates it exactly.
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 50


def sigmoid(z):
    return 1 / (1 + mp.exp(-z))


def srs(x, alpha=2.0, beta=3.0):
    return x / (x / alpha + mp.exp(-x / beta))


def serf(x):
    return x * mp.erf(mp.log(1 + mp.exp(x)))


def eelu(x):
    return -x * mp.erf(mp.exp(-x))


def zorro(x, a=1.2, b=1.0):
    """Spec §4.2 piecewise form."""
    k = 1 + mp.exp(a * b)
    if x < 0:
        return k * x * sigmoid(a * (x - b))
    if x <= 1:
        return x
    return 1 + k * (x - 1) * sigmoid(-a * (x - 1 + b))


def zorro_asymmetric(x, a_neg=1.2, b_neg=1.0, a_pos=1.2, b_pos=1.0):
    return zorro(x, a_neg, b_neg) if x < 0 else zorro(x, a_pos, b_pos)


def zorro_sigmoid(x, slope=0.5, a=4.0, b=2.0):
    """The co-author's MATLAB zorro_sigm with (s, alpha=a, k=1+e^(ab)) (spec §4.4)."""
    k = 1 + mp.exp(a * b)
    u = slope * x + mp.mpf(1) / 2
    if u < 0:
        return k * u / (1 + (k - 1) * mp.exp(-a * u))
    if u <= 1:
        return u
    return 1 - k * (1 - u) / (1 + (k - 1) * mp.exp(-a * (1 - u)))


def zorro_tanh(x, slope=1.0, a=4.0, b=2.0):
    """The co-author's MATLAB zorro_tanh (spec §4.5)."""
    k = 1 + mp.exp(a * b)
    v = slope * x
    if v < -1:
        return k * (v + 1) / (1 + (k - 1) * mp.exp(-a * (v + 1) / 2)) - 1
    if v <= 1:
        return v
    return 1 - k * (1 - v) / (1 + (k - 1) * mp.exp(-a * (1 - v) / 2))


def zorro_sloped(x, a=1.2, b=1.0, slope=1.0):
    """actlab's documented reconstruction, written from its docstring formula."""
    base = zorro(x, a, b)
    if x <= 1:
        return base
    k = 1 + mp.exp(a * b)
    h = k * sigmoid(-a * (x - 1 + b))
    return base + slope * (x - 1) * (1 - h)


def apa(z, lam=1.0, kappa=1.0):
    return (lam * mp.exp(-kappa * z) + 1) ** (-1 / mp.mpf(lam))


def aglu(z, lam=1.0, kappa=1.0):
    return z * apa(z, lam, kappa)


def sau(x, alpha=0.01, sigma=1.0):
    """The closed form of spec §6.5 (checked separately against numerical convolution)."""
    return (
        (1 + alpha) / 2 * x
        + (1 - alpha) / 2 * x * mp.erf(x / (mp.sqrt(2) * sigma))
        + (1 - alpha) * sigma / mp.sqrt(2 * mp.pi) * mp.exp(-(x**2) / (2 * sigma**2))
    )


def sqish(x, alpha=0.1, beta=1.0, gamma=1.0):
    return alpha * x + (1 - alpha) * x / mp.sqrt(1 + beta * mp.exp(-2 * gamma * (1 - alpha) * x))


PAU_LEAKY = ([0.02979, 0.61837, 2.32331, 3.05194, 1.48542, 0.25102], [-1.14195, 4.39316, 0.87147, 0.34720])


def pau(x, numerator=PAU_LEAKY[0], denominator=PAU_LEAKY[1]):
    p = sum(mp.mpf(a) * x**j for j, a in enumerate(numerator))
    q = 1 + sum(abs(mp.mpf(b) * x**k) for k, b in enumerate(denominator, start=1))
    return p / q


def swish(x, beta=1.0):
    return x * sigmoid(beta * x)


#: registry name -> (reference function, parameter sets to test: constructor kwargs)
CASES = {
    "srs": (srs, [{}, {"alpha": 5.0, "beta": 3.0}, {"alpha": 0.7, "beta": 1.5}]),
    "serf": (serf, [{}]),
    "eelu": (eelu, [{}]),
    "zorro": (zorro, [{}, {"a": 4.0, "b": 2.0}, {"a": 0.5, "b": 3.0}]),
    "zorro_asymmetric": (zorro_asymmetric, [{"a_neg": 2.0, "b_neg": 0.5, "a_pos": 0.8, "b_pos": 1.5}]),
    "zorro_sigmoid": (zorro_sigmoid, [{}, {"slope": 1.3, "a": 2.0, "b": 1.0}]),
    "zorro_tanh": (zorro_tanh, [{}, {"slope": 0.6, "a": 1.5, "b": 0.7}]),
    "zorro_sloped": (zorro_sloped, [{}, {"slope": 0.3, "a": 2.0, "b": 0.5}, {"slope": -0.5}]),
    "apa": (apa, [{}, {"lam": 0.3, "kappa": 1.7}, {"lam": 2.5, "kappa": -0.6}]),
    "aglu": (aglu, [{}, {"lam": 0.3, "kappa": 1.7}, {"lam": 2.5, "kappa": -0.6}]),
    "sau": (sau, [{}, {"alpha": 0.2, "sigma": 0.4}]),
    "sqish": (sqish, [{}, {"alpha": 0.3, "beta": 2.0, "gamma": 0.5}]),
    "pau": (
        pau,
        [
            {},
            {"numerator": (0.1, 1.0, -0.2, 0.05), "denominator": (0.3, -0.7)},
            # odd denominator degree: the scaled monomials carry sign(x)^n for |x| > 1
            {"numerator": (0.2, -1.1, 0.4, 0.3, -0.05), "denominator": (0.5, 0.1, -0.6)},
        ],
    ),
    "swish": (swish, [{}, {"beta": 1.702}, {"beta": -0.4}]),
}


def constructor_kwargs(name: str, params: dict) -> dict:
    """PAU takes its degrees from the coefficient counts."""
    if name == "pau" and params:
        return {"degrees": (len(params["numerator"]) - 1, len(params["denominator"])), **params}
    return dict(params)
