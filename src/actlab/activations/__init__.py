"""Activation families, one module per family; importing this package registers them all."""

from .slaf import SLAF, SLAFChebyshev, SLAFFourier, slaf_l1_penalty

__all__ = ["SLAF", "SLAFChebyshev", "SLAFFourier", "slaf_l1_penalty"]
