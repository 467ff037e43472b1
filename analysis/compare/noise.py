"""Seed noise per configuration: each cell's own variance, or one borrowed from a fitted noise model.

Real seed noise is not one number: 0.015 nats for some architectures, 0.14 for others at learning
rates near their edge of stability. So a configuration (an architecture at one learning rate, or
a study's family at one grid point) is judged by **its own** seeds' variance, ``s^2`` with
``n - 1`` degrees of freedom. A configuration with one run has none; it may *borrow* one from a
model of how noise depends on what is known before training, fitted on the configurations that
have replicates, and otherwise gets no verdict (``NO_NOISE``).

The noise model (``noise_model``). For every replicated configuration ``j`` (``n_j >= 2``),
``z_j = log s_j^2 - (digamma(k_j/2) - log(k_j/2))``, ``k_j = n_j - 1``, is unbiased for
``log sigma_j^2`` with known sampling variance ``trigamma(k_j/2)`` (``s^2`` is a scaled chi-square).
``z`` is regressed on an intercept and, where they vary among the replicated configurations (by a
factor of 1.5 or more), ``log lr`` and ``log params`` (the run does not record a configuration's
stable range of learning rates, so the learning rate enters as itself); a parametrisation column
is not used yet. Weighted least squares with weights ``1 / (trigamma(k_j/2) + tau^2)``, the excess
(between-configuration) variance ``tau^2`` estimated by DerSimonian and Laird's moment method, so
noise that the covariates do not explain widens the borrowed variance instead of being ignored.
For a one-run configuration at covariates ``x`` the predicted ``log sigma^2`` has variance
``v = x' Cov x + tau^2``; a variance estimate whose log has variance ``v`` behaves like ``s^2``
with ``k`` degrees of freedom where ``trigamma(k/2) = v``, so the borrowed variance enters the
Welch-Satterthwaite test as ``s^2 = exp(x' beta + digamma(k/2) - log(k/2))`` with ``k`` dof.
The model is **supported** only with ``MIN_REPLICATED`` or more replicated configurations beyond
its parameters, and a one-run configuration borrows only **inside** the covariate range of the
replicated ones (no extrapolation: a learning rate above every replicated one may be near the
edge of stability, where noise is largest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

#: Replicated configurations needed beyond the model's parameters before a one-run one may borrow.
MIN_REPLICATED = 4
#: A covariate enters the model when it varies by this factor among the replicated configurations.
MIN_SPREAD = 1.5
#: What a configuration without its own or a borrowed variance says instead of a verdict.
NO_NOISE = "one run: no noise estimate; run 2 more seeds"
#: Effective degrees of freedom are capped here (a borrowed variance is never treated as exact).
MAX_DOF = 200.0


def _trigamma(x: np.ndarray) -> np.ndarray:
    from scipy.special import polygamma

    return polygamma(1, x)


def _dof_from_log_variance(v: np.ndarray) -> np.ndarray:
    """``k`` with ``trigamma(k/2) = v``: the chi-square dof of a variance estimate whose log has
    variance ``v`` (interpolated in log-log on a fine grid of k, where trigamma is smooth and
    decreasing; capped at ``MAX_DOF``)."""
    v = np.atleast_1d(np.asarray(v, float))
    k = np.geomspace(1e-3, MAX_DOF, 4000)
    t = _trigamma(k / 2)  # decreasing in k
    out = np.exp(np.interp(np.log(np.where(v > 0, v, np.nan)), np.log(t[::-1]), np.log(k[::-1])))
    return np.where(np.isfinite(v) & (v > 0), np.minimum(out, MAX_DOF), np.nan)


@dataclass(frozen=True)
class NoiseModel:
    """A fitted model of ``log sigma^2`` (see the module docstring), or why there is none.

    ``covariates``: the columns used (``log lr``, ``log params``); ``beta``/``cov``: the fit;
    ``tau2``: the excess variance between configurations; ``ranges``: each covariate's range
    among the replicated configurations; ``n_cells``: how many were fitted; ``reason``: why a
    one-run configuration cannot borrow (None when the model is supported)."""

    covariates: tuple[str, ...]
    beta: np.ndarray
    cov: np.ndarray
    tau2: float
    ranges: dict[str, tuple[float, float]]
    n_cells: int
    reason: str | None

    def borrow(self, x: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(variance, dof, why)`` for ``n`` configurations at covariates ``x`` (name -> log
        values): NaN variance and a reason where the model is unsupported or would extrapolate."""
        why = np.full(n, self.reason or "", dtype=object)
        if self.reason is not None or n == 0:
            return np.full(n, np.nan), np.full(n, np.nan), why
        X = np.column_stack([np.ones(n), *[x[c] for c in self.covariates]])
        inside = np.ones(n, bool)
        for c in self.covariates:
            lo, hi = self.ranges[c]
            inside &= np.isfinite(x[c]) & (x[c] >= lo - 1e-9) & (x[c] <= hi + 1e-9)
        v = np.einsum("ij,jk,ik->i", X, self.cov, X) + self.tau2
        k = _dof_from_log_variance(v)
        from scipy.special import digamma

        var = np.exp(X @ self.beta + digamma(k / 2) - np.log(k / 2))
        why = np.where(inside, "", f"outside the {', '.join(self.covariates)} range of the replicated configurations")
        return np.where(inside, var, np.nan), np.where(inside, k, np.nan), why


def _covariates(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for name, column in (("log lr", "lr"), ("log params", "params")):
        if column in frame.columns:
            values = frame[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                out[name] = np.where(values > 0, np.log(values), np.nan)
    return out


def noise_model(per_config: pl.DataFrame) -> NoiseModel:
    """Fit the noise model on the replicated configurations of ``per_config`` (columns ``n``,
    ``std``, and ``lr`` / ``params`` when known)."""
    from scipy.special import digamma

    rep = per_config.filter((pl.col("n") >= 2) & pl.col("std").is_finite() & (pl.col("std") > 0))
    x_all = _covariates(rep)
    used = []
    for name, values in x_all.items():
        ok = values[np.isfinite(values)]
        if ok.size == rep.height and ok.size and ok.max() - ok.min() >= np.log(MIN_SPREAD):
            used.append(name)
    p = 1 + len(used)
    empty = NoiseModel((), np.zeros(1), np.zeros((1, 1)), 0.0, {}, rep.height, None)
    if rep.height < p + MIN_REPLICATED:
        why = (
            f"{rep.height} replicated configuration(s): a noise model with {p} parameter(s) needs "
            f"{p + MIN_REPLICATED}+ to lend a variance to a one-run configuration"
        )
        return NoiseModel(tuple(used), empty.beta, empty.cov, 0.0, {}, rep.height, why)
    k = rep["n"].to_numpy().astype(float) - 1
    z = np.log(rep["std"].to_numpy() ** 2) - (digamma(k / 2) - np.log(k / 2))
    v = _trigamma(k / 2)
    X = np.column_stack([np.ones(rep.height), *[x_all[c] for c in used]])

    def wls(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cov = np.linalg.pinv(X.T @ (w[:, None] * X))
        return cov @ X.T @ (w * z), cov

    beta, _ = wls(1 / v)
    resid = z - X @ beta
    w = 1 / v
    q = float(np.sum(w * resid**2))
    hat = np.einsum("ij,jk,ik->i", X, np.linalg.pinv(X.T @ (w[:, None] * X)), X) * w
    trace = float(np.sum(w) - np.sum(w * hat))  # DerSimonian-Laird generalised to regression
    tau2 = max(0.0, (q - (rep.height - p)) / trace) if trace > 0 else 0.0
    beta, cov = wls(1 / (v + tau2))
    ranges = {c: (float(np.nanmin(x_all[c])), float(np.nanmax(x_all[c]))) for c in used}
    return NoiseModel(tuple(used), beta, cov, tau2, ranges, rep.height, None)


def cell_variances(per_config: pl.DataFrame, *, by: list[str]) -> pl.DataFrame:
    """``per_config`` with the variance of one run each configuration is judged with: ``var``,
    ``var_dof`` (its own, or borrowed), ``var_moderated``/``dof_moderated`` (a replicated
    configuration's own variance combined with the model's prediction as a prior worth its
    effective dof, as limma moderates variances: what the selection simulation draws from,
    where 2-dof variances drawn independently would make the minimum of ten draws absurdly
    heavy-tailed), ``noise`` (``own seeds``, ``noise model``, ``none``) and ``noise_why`` (why a
    one-run configuration has none). The model is fitted per ``by`` group (a run)."""
    parts = []
    for _, part in per_config.group_by(by, maintain_order=True):
        model = noise_model(part)
        own = (part["n"] >= 2).to_numpy() & part["std"].fill_null(np.nan).is_finite().to_numpy()
        borrowed, k, why = model.borrow(_covariates(part), part.height)
        s2, k_own = part["std"].fill_null(np.nan).to_numpy() ** 2, part["n"].to_numpy() - 1.0
        var = np.where(own, s2, borrowed)
        dof = np.where(own, k_own, k)
        # moderated (limma-style): the model's prediction as a prior worth k dof, the own s^2 worth n - 1
        prior_ok = np.isfinite(borrowed) & np.isfinite(k)
        mod_var = np.where(own & prior_ok, (k * borrowed + k_own * s2) / np.where(prior_ok, k + k_own, 1), var)
        mod_dof = np.where(own & prior_ok, np.minimum(k + k_own, MAX_DOF), dof)
        kind = np.where(own, "own seeds", np.where(np.isfinite(borrowed), "noise model", "none"))
        why = [
            None if o or np.isfinite(b) else (NO_NOISE if not w else f"{NO_NOISE} ({w})")
            for o, b, w in zip(own, borrowed, why, strict=True)
        ]
        parts.append(
            part.with_columns(
                var=pl.Series(var, dtype=pl.Float64).fill_nan(None),
                var_dof=pl.Series(dof, dtype=pl.Float64).fill_nan(None),
                var_moderated=pl.Series(mod_var, dtype=pl.Float64).fill_nan(None),
                dof_moderated=pl.Series(mod_dof, dtype=pl.Float64).fill_nan(None),
                noise=pl.Series(kind, dtype=pl.String),
                noise_why=pl.Series(why, dtype=pl.String),
            )
        )
    if not parts:
        return per_config.with_columns(
            var=pl.lit(None, pl.Float64), var_dof=pl.lit(None, pl.Float64),
            var_moderated=pl.lit(None, pl.Float64), dof_moderated=pl.lit(None, pl.Float64),
            noise=pl.lit(None, pl.String), noise_why=pl.lit(None, pl.String),
        )  # fmt: skip
    return pl.concat(parts)
