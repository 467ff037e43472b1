"""One law for the whole space: ``fit_space_law`` and the ``SpaceLaw`` it returns (predict, rank, explain).

``L(a, C) = E + exp(log_A(a)) * (C / C0) ** -alpha(a)``, ``log_A`` and ``alpha`` linear in the
encoded axes of architecture ``a`` (``space_encoding``), fitted on every completed trial of the
results directories given (``space_data``) with shrinkage toward the space's mean by empirical
Bayes and Laplace posterior draws (``space_fit``). Every run informs every prediction, so an
architecture never trained is predicted from its values' effects (``ranking`` enumerates the
whole space). What the runs cannot tell is said, never silently set: a value trained at one
compute size has no slope estimate (``no_slope``), a value never trained has no level estimate
(``untrained``); predictions draw both from their prior, so their intervals widen accordingly.
The law is identified with runs at 2+ compute sizes (``identified``, else ``reason``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from archscale.analysis.data.runs import Source

from .space_data import SpaceData, arch_label, modelled_noise, space_data
from .space_fit import TAU_B_GRID, TAU_S_GRID, TAU_U_GRID, SpaceFit, fit_map, fitted_values, shrinkage

DRAWS = 4000  # posterior draws for intervals and p_best (Monte Carlo error of p_best <= 0.008)
MAX_ARCHS = 20_000  # architectures ``ranking`` enumerates at most
MIN_RUNS = 4


@dataclass
class SpaceLaw:
    """A fitted space law (module docstring). ``fit`` is None when the runs do not identify it."""

    data: SpaceData
    fit: SpaceFit | None
    reason: str | None
    seed: int = 0
    slope_known: frozenset[int] = frozenset()  # columns whose slope the runs identify (2+ sizes)
    arch_index: dict[str, int] = field(default_factory=dict)  # trained architectures' deviation index
    _draws: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def identified(self) -> bool:
        return self.fit is not None

    @property
    def encoding(self):
        return self.data.encoding

    @property
    def sizes(self) -> int:
        return int(np.unique(self.data.size).size)

    def draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The posterior draws every interval and p_best use (made once, seeded)."""
        if self.fit is None:
            raise ValueError(f"the space law is not identified: {self.reason}")
        if self._draws is None:
            self._draws = self.fit.draws(DRAWS, self.seed)
        return self._draws

    # ---- what the runs can and cannot tell -----------------------------------------------
    def untrained(self) -> list[str]:
        """Values of the space no completed run has."""
        assert self.fit is not None
        cols = self.encoding.columns
        return [cols[j].name for j in range(len(cols)) if j not in set(self.fit.level_cols.tolist())]

    def no_slope(self) -> list[str]:
        """One sentence per value trained at one compute size only: it gets no slope estimate."""
        if self.fit is None:
            return []
        cols, fitted = self.encoding.columns, self.slope_known
        seen = set(self.fit.level_cols.tolist())
        return [
            f"{cols[j].name} has no slope estimate: train it at a second size"
            for j in range(len(cols))
            if j not in fitted and j in seen
        ]

    # ---- predictions -------------------------------------------------------------------------
    def _losses(self, archs: Sequence[Mapping[str, Any]], compute: np.ndarray, heads, b, s) -> np.ndarray:
        """Loss draws ``(S, archs, compute)``: a trained architecture with its own deviation, an
        untrained one with a deviation drawn from N(0, tau_u^2) (0 at the MAP, ``S == 1``)."""
        assert self.fit is not None
        fit = self.fit
        x = self.encoding.matrix(archs)
        lc = np.log(np.asarray(compute, float) / fit.c0)
        known = [self.arch_index.get(arch_label({k: str(a.get(k)) for k in self.encoding.axes})) for a in archs]
        dev = np.zeros((b.shape[0], len(archs)))
        if fit.n_arch:
            rng = np.random.default_rng([self.seed, 1])
            for j, k in enumerate(known):
                dev[:, j] = (
                    b[:, fit.n_cols + k]
                    if k is not None
                    else (rng.normal(0, fit.tau_u, b.shape[0]) if b.shape[0] > 1 else 0.0)
                )
        log_a = heads[:, 1:2] + b[:, : fit.n_cols] @ x.T + dev  # (S, archs)
        alpha = heads[:, 2:3] + s @ x.T
        return heads[:, :1, None] + np.exp(log_a[:, :, None] - alpha[:, :, None] * lc[None, None, :])

    def predict(
        self, archs: Sequence[Mapping[str, Any]] | Mapping[str, Any], compute: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, lo, hi)`` (95% posterior interval of the mean loss), shaped ``(archs, compute)``
        (or ``(compute,)`` for one architecture dict)."""
        assert self.fit is not None, self.reason
        one = isinstance(archs, Mapping)
        chosen = [archs] if one else list(archs)
        c = np.atleast_1d(np.asarray(compute, float))
        mean = self._losses(chosen, c, *self.fit.full(self.fit.theta))[0]  # type: ignore[arg-type]
        sims = self._losses(chosen, c, *self.draws())  # type: ignore[arg-type]
        lo, hi = np.quantile(sims, [0.025, 0.975], axis=0)
        return (mean[0], lo[0], hi[0]) if one else (mean, lo, hi)

    def architectures(self) -> list[dict[str, str]]:
        """Every architecture of the space: the combinations of its axes' values."""
        axes = self.encoding.axes
        total = int(np.prod([len(v) for v in axes.values()])) if axes else 1
        if total > MAX_ARCHS:
            raise ValueError(f"the space has {total} architectures; ranking enumerates at most {MAX_ARCHS}")
        return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]

    def ranking(self, compute: float, top: int = 10) -> pl.DataFrame:
        """The ``top`` architectures of the space by predicted loss at ``compute``, trained or not:
        ``rank, arch, <axes>, predicted_loss, lo, hi, p_best, p_best_mc_se, trained_runs,
        trained_sizes``. ``p_best``: the fraction of posterior draws in which it has the lowest
        loss of the whole space at ``compute``; its Monte Carlo error ``sqrt(p (1 - p) / draws)``."""
        archs = self.architectures()
        c = np.array([float(compute)])
        assert self.fit is not None, self.reason
        mean = self._losses(archs, c, *self.fit.full(self.fit.theta))[0, :, 0]
        sims = self._losses(archs, c, *self.draws())[:, :, 0]
        lo, hi = np.quantile(sims, [0.025, 0.975], axis=0)
        p = np.bincount(np.argmin(sims, axis=1), minlength=len(archs)) / sims.shape[0]
        labels = [arch_label(a) for a in archs]
        runs_label = self.data.runs_label()
        counts = (
            pl.DataFrame({"arch": runs_label, "size": self.data.size})
            .group_by("arch")
            .agg(trained_runs=pl.len(), trained_sizes=pl.col("size").n_unique())
        )
        frame = pl.DataFrame(
            {"arch": labels, **{k: [a[k] for a in archs] for k in self.encoding.axes}, "predicted_loss": mean,
             "lo": lo, "hi": hi, "p_best": p, "p_best_mc_se": np.sqrt(p * (1 - p) / sims.shape[0])}
        )  # fmt: skip
        frame = frame.join(counts, on="arch", how="left").with_columns(
            pl.col("trained_runs", "trained_sizes").fill_null(0).cast(pl.Int64)
        )
        return frame.sort("predicted_loss").head(top).with_row_index("rank", offset=1)

    # ---- coefficients --------------------------------------------------------------------------
    def coefficients(self) -> pl.DataFrame:
        """One row per effect: ``effect`` (level: a change of log_A, shifting the curve by a constant
        factor; slope: a change of alpha, positive = the loss falls faster with compute, so the
        value's advantage grows with scale; ``meaning`` says it in words),
        ``name``, ``estimate`` (a categorical value: its contrast with the axis's reference value;
        a numeric axis: per unit of log value), ``lo``, ``hi`` (95%), ``shrinkage`` (posterior /
        prior variance of the value's own coefficient: 1 = borrowed everything from the space's
        mean), ``estimated`` (False: no estimate, ``note`` says why)."""
        assert self.fit is not None, self.reason
        fit = self.fit
        heads, b, s = self.draws()
        map_heads, map_b, map_s = fit.full(fit.theta)
        shrink_b, shrink_s = shrinkage(fit)
        shrink = {("level", j): v for j, v in zip(fit.level_cols.tolist(), shrink_b, strict=True)}
        shrink |= {("slope", j): v for j, v in zip(fit.slope_cols.tolist(), shrink_s, strict=True)}
        fitted = {"level": set(fit.level_cols.tolist()), "slope": set(self.slope_known)}
        cols = self.encoding.columns
        index = {(c.term, c.value): j for j, c in enumerate(cols)}
        rows = []
        for j, col in enumerate(cols):
            ref = None if col.numeric else index[(col.term, tuple(self.encoding.axes[t][0] for t in col.term))]
            if ref == j:
                continue  # the reference value itself: its contrast is 0 by definition
            for effect, coef, map_coef in (("level", b, map_b), ("slope", s, map_s)):
                est = fitted[effect] >= ({j} if ref is None else {j, ref})
                if j not in fitted["level"]:
                    note = "never trained: from the prior only"
                elif effect == "slope" and j not in fitted["slope"]:
                    note = "trained at one compute size only: train it at a second size"
                elif not est:
                    note = "its reference value has no slope estimate"
                else:
                    note = ""
                diff = coef[:, j] - (coef[:, ref] if ref is not None else 0.0)
                point = float(map_coef[0, j] - (map_coef[0, ref] if ref is not None else 0.0))
                lo, hi = np.quantile(diff, [0.025, 0.975])
                kappa = shrink.get((effect, j)) if est else None
                rows.append({"effect": effect, "name": col.name, "estimate": point if est else None,
                             "lo": float(lo) if est else None, "hi": float(hi) if est else None,
                             "shrinkage": None if kappa is None else float(min(1.0, kappa)),
                             "estimated": bool(est), "note": note,
                             "meaning": _meaning(effect, point, est, lo, hi)})  # fmt: skip
        return pl.DataFrame(rows, schema=COEF_SCHEMA)

    def heads(self) -> dict[str, tuple[float, float, float]]:
        """``E``, and the reference architecture's ``log_A`` and ``alpha`` (the sum of its values'
        effects, without an architecture's own deviation): ``(estimate, lo, hi)``."""
        assert self.fit is not None, self.reason
        heads, b, s = self.draws()
        mh, mb, ms = self.fit.full(self.fit.theta)
        xr = self.encoding.matrix([self.encoding.reference()])[0]
        p = self.fit.n_cols
        vals = {"E": (heads[:, 0], mh[0, 0]), "log_A": (heads[:, 1] + b[:, :p] @ xr, mh[0, 1] + mb[0, :p] @ xr),
                "alpha": (heads[:, 2] + s @ xr, mh[0, 2] + ms[0] @ xr)}  # fmt: skip
        return {k: (float(m), *map(float, np.quantile(d, [0.025, 0.975]))) for k, (d, m) in vals.items()}


COEF_SCHEMA = {
    "effect": pl.String, "name": pl.String, "estimate": pl.Float64, "lo": pl.Float64, "hi": pl.Float64,
    "shrinkage": pl.Float64, "estimated": pl.Boolean, "note": pl.String, "meaning": pl.String,
}  # fmt: skip


def _meaning(effect: str, value: float, estimated: bool, lo: float, hi: float) -> str:
    if not estimated:
        return ""
    if lo <= 0 <= hi:
        return "no clear effect (its interval includes 0)"
    if effect == "level":
        return "shifts the curve down (lower loss at every scale)" if value < 0 else "shifts the curve up"
    return (
        "falls faster: whose advantage grows with scale"
        if value > 0
        else "falls slower: whose advantage shrinks with scale"
    )


def fit_space_law(
    source: Source,
    *,
    loss: str = "eval_loss",
    axes: Mapping[str, Sequence[object]] | None = None,
    interactions: Sequence[tuple[str, str]] = (),
    seed: int = 0,
) -> SpaceLaw:
    """Fit one law over every completed trial of ``source`` (results directories, or a trials
    frame with the axis columns, ``compute`` and ``loss``). ``axes``: the space's axes and values
    (default: the space files in run.json and the columns that vary); ``interactions``: pairs of
    categorical axes whose combinations get their own effects. Never raises for data that do not
    identify the law: the ``SpaceLaw`` says why (``reason``)."""
    data = space_data(source, loss=loss, axes=axes, interactions=interactions)
    sizes = np.unique(data.size).size
    if data.loss.size < MIN_RUNS:
        return SpaceLaw(data, None, f"{data.loss.size} completed runs; the space law needs at least {MIN_RUNS}", seed)
    if sizes < 2:
        why = (
            "every run is at one compute size: the space law's exponent needs runs at 2+ sizes "
            "(train some architectures at a second size, e.g. a ladder search's rungs)"
        )
        return SpaceLaw(data, None, why, seed)
    x = data.encoding.matrix(data.archs)
    level = np.flatnonzero(data.encoding.level_seen(x))
    # every seen value's slope is a parameter (its prior keeps it near the space's mean), so a value
    # trained at one size keeps the correlation of its level and slope: its loss stays pinned where
    # it was trained and fans out away from it. Only the identified ones are reported.
    slope = level
    identified = data.encoding.slope_identified(x, data.size)
    known = frozenset(np.flatnonzero(identified & data.encoding.level_seen(x)).tolist())
    mask = identified[slope]
    labels = data.runs_label()
    index = {label: k for k, label in enumerate(sorted(set(labels)))}
    arch = np.array([index[label] for label in labels])
    if data.sigma is None:  # no replicates: the noise per architecture from a nearly unshrunk fit's residuals
        loose = (float(TAU_B_GRID[-1]), float(TAU_S_GRID[-1]), float(TAU_U_GRID[-1]))
        first = fit_map(data.loss, np.ones_like(data.loss), x, data.compute, level, slope, mask, arch=arch, taus=loose)
        resid = data.loss - fitted_values(first, x, data.compute, arch)
        sigma, note = modelled_noise(labels, resid, first.dof / data.loss.size)
        data = replace(data, sigma=sigma, noise_note=note)
    fit = fit_map(data.loss, data.sigma, x, data.compute, level, slope, mask, arch=arch)
    return SpaceLaw(data, fit, None, seed, known, index)
