"""actlab: trainable activation functions for PyTorch, and a lab that trains, compares and explains them.

Quick start::

    import actlab
    act = actlab.create("srs")                  # by name (case-insensitive, aliases accepted)
    act = actlab.SRS(alpha=2.0, num_parameters=64)
    y = actlab.functional.serf(x)
    actlab.list_activations(trainable=True)
    actlab.info("zorro").provenance
    report = actlab.replace_activations(model, "srs", per_channel=True, example_input=x)
    opt = torch.optim.AdamW(actlab.param_groups(model, weight_decay=0.05), lr=1e-3)
"""

from . import cpab, functional
from ._version import __version__
from .activations import (
    AGLU,
    APA,
    EELU,
    PAU,
    SAU,
    SLAF,
    SRS,
    AsymmetricZorro,
    DiTAC,
    GELUTanh,
    Serf,
    SigmoidZorro,
    SLAFChebyshev,
    SLAFFourier,
    SlopedZorro,
    Sqish,
    Swish,
    TanhZorro,
    Zorro,
    slaf_l1_penalty,
)
from .backend import get_backend, set_backend
from .base import Activation, ParametricActivation
from .callsites import FunctionalCall, find_functional_activations
from .checkpoint import load_state_dict, saved_activations
from .fitting import fit
from .inspection import (
    InputHistogram,
    ParameterRecorder,
    Properties,
    SiteReport,
    inspect,
    properties,
    record_inputs,
)
from .optim import param_groups
from .plotting import animate_evolution, plot, plot_evolution, plot_sites
from .registry import ActivationInfo, ParameterInfo, create, info, list_activations, register
from .sites import activation_parameters, activation_sites, is_activation
from .surgery import ReplacedSite, ReplacementReport, replace_activations

__all__ = [
    "__version__",
    "functional",
    "cpab",
    "create",
    "info",
    "list_activations",
    "register",
    "ActivationInfo",
    "ParameterInfo",
    "set_backend",
    "get_backend",
    "Activation",
    "ParametricActivation",
    "activation_sites",
    "activation_parameters",
    "is_activation",
    "replace_activations",
    "ReplacementReport",
    "ReplacedSite",
    "find_functional_activations",
    "FunctionalCall",
    "param_groups",
    "load_state_dict",
    "saved_activations",
    "inspect",
    "SiteReport",
    "record_inputs",
    "InputHistogram",
    "ParameterRecorder",
    "properties",
    "Properties",
    "plot",
    "plot_sites",
    "plot_evolution",
    "animate_evolution",
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
    "fit",
]
