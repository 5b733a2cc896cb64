"""The activation families, one module each. Importing this package registers them all."""

from . import apa, baselines, ditac, eelu, pau, sau, serf, slaf, sqish, srs, swish, zorro  # noqa: F401  (registers them)
from .apa import AGLU, APA
from .baselines import GELUTanh
from .ditac import DiTAC
from .eelu import EELU
from .pau import PAU
from .sau import SAU
from .serf import Serf
from .slaf import SLAF, SLAFChebyshev, SLAFFourier, slaf_l1_penalty
from .sqish import Sqish
from .srs import SRS
from .swish import Swish
from .zorro import AsymmetricZorro, SigmoidZorro, SlopedZorro, TanhZorro, Zorro

__all__ = [
    "SRS",
    "Serf",
    "Zorro",
    "AsymmetricZorro",
    "SigmoidZorro",
    "TanhZorro",
    "SlopedZorro",
    "APA",
    "AGLU",
    "EELU",
    "SAU",
    "Sqish",
    "PAU",
    "Swish",
    "GELUTanh",
    "DiTAC",
    "SLAF",
    "SLAFChebyshev",
    "SLAFFourier",
    "slaf_l1_penalty",
]
