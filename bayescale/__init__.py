"""bayescale: Bayesian neural scaling laws, from a table of runs to calibrated decisions."""

import warnings
from importlib import metadata

from bayescale._devices import use_cpu_cores_for_chains

use_cpu_cores_for_chains()  # before anything below starts JAX

with warnings.catch_warnings():
    # ArviZ announces its coming 1.0 refactor on import; it concerns nothing bayescale uses.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz  # noqa: F401

from bayescale import datasets
from bayescale.data import ScalingData
from bayescale.decisions import (
    fitted_runs,
    forecast,
    law_curve,
    optimal_allocation,
    predictive_draws,
    prob_reached,
)
from bayescale.errors import (
    BayescaleError,
    DataError,
    LoadError,
    SamplingError,
    SamplingWarning,
    SpecError,
)
from bayescale.inference import fit, fit_many
from bayescale.laws import LAWS, Law, Param, Prior, get_law, register_law
from bayescale.model import ModelSpec, ScalingModel
from bayescale.plots import plot_fit, plot_predicted_vs_observed
from bayescale.posterior import Diagnostics, Posterior, load
from bayescale.report import write_report

try:
    __version__ = metadata.version("bayescale")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "LAWS",
    "BayescaleError",
    "DataError",
    "Diagnostics",
    "Law",
    "LoadError",
    "ModelSpec",
    "Param",
    "Posterior",
    "Prior",
    "SamplingError",
    "SamplingWarning",
    "ScalingData",
    "ScalingModel",
    "SpecError",
    "__version__",
    "datasets",
    "fit",
    "fit_many",
    "fitted_runs",
    "forecast",
    "get_law",
    "law_curve",
    "load",
    "optimal_allocation",
    "plot_fit",
    "plot_predicted_vs_observed",
    "predictive_draws",
    "prob_reached",
    "register_law",
    "write_report",
]
