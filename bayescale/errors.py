"""Exceptions and warnings raised by bayescale."""


class BayescaleError(Exception):
    """Base class of every error bayescale raises on purpose."""


class DataError(BayescaleError, ValueError):
    """A table of runs (or the scales to forecast at) is not valid input."""


class SpecError(BayescaleError, ValueError):
    """A model specification (law, pooling, priors, noise) is not valid."""


class LoadError(BayescaleError, ValueError):
    """A saved fit cannot be read back."""


class SamplingError(BayescaleError, RuntimeError):
    """Sampling failed its diagnostics and the caller asked for ``strict=True``."""


class SamplingWarning(UserWarning):
    """Sampling diagnostics (R-hat, ESS, divergences, tree depth) are not clean."""
