"""Exceptions and warnings raised by bayescale."""

import sys
import warnings


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


def caller_stacklevel() -> int:
    """Stack level of the first frame outside bayescale, so warnings point at the user's line."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("bayescale"):
        frame = frame.f_back
        level += 1
    return level


def warn_sampling(message: str) -> None:
    """Emit a `SamplingWarning` pointing at the caller's line."""
    warnings.warn(message, SamplingWarning, stacklevel=caller_stacklevel())
