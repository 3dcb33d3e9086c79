"""The Student-t noise density: exact, and smooth in nu at float32 over many runs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.special
import scipy.stats

from bayescale.noise import StudentT, log_gamma_ratio


def test_log_gamma_ratio_matches_scipy():
    x = np.array([0.5, 0.7, 1.0, 2.5, 5.0, 9.9, 10.0, 25.0, 50.0, 1e3, 1e5], dtype=np.float32)
    wide = x.astype(np.float64)
    exact = scipy.special.gammaln(wide + 0.5) - scipy.special.gammaln(wide)
    np.testing.assert_allclose(log_gamma_ratio(jnp.asarray(x)), exact, rtol=1e-6, atol=5e-7)


def test_student_t_density_is_smooth_in_nu_over_many_runs(rng):
    # 12,000 runs of Normal noise, nu over a span where the exact density changes by 0.003 nats:
    # the float32 sum may differ from the exact one by rounding, but must not jump about (with
    # the normalising constant as a difference of two log Gammas its sd was 0.057 nats).
    residuals = rng.normal(0.0, 0.015, 12000)
    nus = np.linspace(50.0, 50.01, 101)
    float32 = np.array(
        [
            float(jnp.sum(StudentT(jnp.float32(nu), 0.0, 0.015).log_prob(residuals.astype("f4"))))
            for nu in nus
        ]
    )
    exact = np.array([scipy.stats.t.logpdf(residuals, df=nu, scale=0.015).sum() for nu in nus])
    assert np.std(float32 - exact) < 0.01
    assert abs(np.mean(float32 - exact)) < 0.05
