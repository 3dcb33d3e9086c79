"""Real scaling-law measurements shipped with bayescale, each with its source note."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from bayescale.errors import DataError

_FILES = {
    "chinchilla": "chinchilla",
    "gadre_loss": "gadre_loss",
}


def names() -> list[str]:
    """Names of the bundled datasets."""
    return sorted(_FILES)


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a tidy DataFrame.

    Parameters
    ----------
    name : {"chinchilla", "gadre_loss"}
        ``chinchilla``: the 245 training runs of Hoffmann et al. 2022 as reconstructed by
        Besiroglu et al. 2024; column ``besiroglu_excluded`` flags the 5 runs they drop.
        ``gadre_loss``: 104 open_lm models x 8 evaluation sets (Gadre et al. 2024).

    Returns
    -------
    DataFrame

    Raises
    ------
    DataError
        If no dataset has that name.

    Examples
    --------
    >>> import bayescale as bs
    >>> len(bs.datasets.load("chinchilla"))
    245
    """
    if name not in _FILES:
        raise DataError(f"no bundled dataset {name!r}; bundled datasets are {names()}.")
    with resources.files(__name__).joinpath(f"{_FILES[name]}.csv").open("r") as handle:
        frame = pd.read_csv(handle)
    if "besiroglu_excluded" in frame.columns:
        frame["besiroglu_excluded"] = frame["besiroglu_excluded"].astype(bool)
    return frame


def source(name: str) -> str:
    """Return the source note (origin, license, columns) of a bundled dataset."""
    if name not in _FILES:
        raise DataError(f"no bundled dataset {name!r}; bundled datasets are {names()}.")
    return resources.files(__name__).joinpath(f"{_FILES[name]}.SOURCE.md").read_text()
