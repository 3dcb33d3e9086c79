"""Shared test setup: JAX on CPU, Agg plots, seeds, the ``slow`` switch and small real fits.

The session fixtures below run a few small NUTS fits once and share them across the suite. Their
sampler settings (sizes, seed, pooling) were chosen so that every diagnostic passes: under
``filterwarnings = error`` a `SamplingWarning` from a fixture is an error, on purpose. If a new
JAX or NumPyro release changes the draws and a fixture starts to warn, run it longer rather than
silencing the warning.
"""

from __future__ import annotations

import os
import re

# Before JAX is imported anywhere: tests run on CPU, with one XLA host device per chain so that
# the two chains of the small fits run in parallel instead of in lockstep (about 3x faster).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if not re.search(r"--xla_force_host_platform_device_count=", os.environ.get("XLA_FLAGS", "")):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayescale as bs  # noqa: E402

# -- the slow switch ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (long sampling runs)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# -- seeds -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Seed Python's and NumPy's global generators before every test (NumPyro's helper)."""
    numpyro.util.set_rng_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator for the test that asks for it."""
    return np.random.default_rng(0)


# -- small tables ------------------------------------------------------------------------------


@pytest.fixture
def runs() -> pd.DataFrame:
    """A valid table of 12 runs in two tasks, indexed by run name (not 0..n-1)."""
    params = np.array([1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7] * 2)
    tokens = np.array([2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8] * 2)
    loss = 1.8 + 400 * params**-0.34 + 400 * tokens**-0.28
    loss[6:] += 0.1
    return pd.DataFrame(
        {
            "params": params,
            "tokens": tokens,
            "flops": 6 * params * tokens,
            "loss": loss,
            "task": ["arc"] * 6 + ["hellaswag"] * 6,
        },
        index=pd.Index([f"run-{i:02d}" for i in range(12)], name="run"),
    )


# -- small real fits, shared by the session ------------------------------------------------------

CHINCHILLA_FIT = {"seed": 1, "num_warmup": 500, "num_samples": 1000, "num_chains": 2}
# Partial pooling of E and A across only three datasets gives a funnel that 2 x 500 draws cannot
# sample cleanly; an independent E and a shared A keep per-group parameters (``E[c4]``) without it.
GROUPED_POOLING = {"E": "independent", "A": "shared"}
GROUPED_FIT = {"seed": 4, "num_warmup": 500, "num_samples": 500, "num_chains": 2}


@pytest.fixture(scope="session")
def chinchilla_runs() -> pd.DataFrame:
    """The 240 Chinchilla runs that Besiroglu et al. keep."""
    frame = bs.datasets.load("chinchilla")
    return frame[~frame["besiroglu_excluded"]]


@pytest.fixture(scope="session")
def chinchilla_post(chinchilla_runs: pd.DataFrame) -> bs.Posterior:
    """A small chinchilla fit (student-t noise, 2 chains x 500 draws)."""
    return bs.ScalingModel("chinchilla").fit(chinchilla_runs, **CHINCHILLA_FIT)


@pytest.fixture(scope="session")
def gadre_c4_runs() -> pd.DataFrame:
    """Gadre et al.'s 104 models evaluated on C4 validation, in three training datasets."""
    frame = bs.datasets.load("gadre_loss")
    return frame[frame["eval_set"] == "c4_val"]


@pytest.fixture(scope="session")
def grouped_post(gadre_c4_runs: pd.DataFrame) -> bs.Posterior:
    """A small grouped power-law fit: loss against FLOPs, grouped by training dataset."""
    model = bs.ScalingModel("power", x="flops", group="dataset", pooling=GROUPED_POOLING)
    return model.fit(gadre_c4_runs, **GROUPED_FIT)
