"""actlab: trainable activation functions for PyTorch, and a lab that trains, compares and explains them."""

from ._version import __version__
from .backend import get_backend, set_backend
from .registry import ActivationInfo, create, info, list_activations
from .activations import SLAF, SLAFChebyshev, SLAFFourier, slaf_l1_penalty
from .fitting import fit

__all__ = [
    "__version__",
    "create",
    "info",
    "list_activations",
    "ActivationInfo",
    "set_backend",
    "get_backend",
    "SLAF",
    "SLAFChebyshev",
    "SLAFFourier",
    "slaf_l1_penalty",
    "fit",
]
