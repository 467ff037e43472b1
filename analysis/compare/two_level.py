"""Two-level effects: seed noise within an architecture, and the spread between architectures of one axis value.

An axis value (``position = rope``) is seen through the architectures that have it, and those
differ in their other axes, so their true means vary around the value's mean. The model, per
axis value ``g`` in a budget cell:

    y_c = mu_g + u_c + e_c,   u_c ~ N(0, tau^2) between architectures,
                              e_c ~ N(0, v_c) the architecture mean's seed noise,

with ``y_c`` an architecture's seed mean over ``k_c`` seeds and ``v_c = s_c^2 / k_c`` (its own seed
variance, or the axis's pooled seed variance for a one-seed architecture). ``tau^2`` is
DerSimonian and Laird's moment estimate, pooled over every value and cell of the axis (Q and its
expectation summed over the groups, each around its own weighted mean, so a true effect does not
inflate it): ``tau^2 = max(0, (Q - df) / C)``, ``df = sum (m_g - 1)`` over groups of ``m_g``
architectures. The value's mean is then weighted by ``1 / (v_c + tau^2)``, with variance
``1 / sum 1 / (v_c + tau^2)``: a value resting on **one architecture** gets ``v_c + tau^2``, never its
seed noise alone, and where no value of the axis has two architectures (``df = 0``) there is no
``tau^2`` and no interval: one architecture per value cannot tell an axis effect from the
architectures' other differences. The variance's degrees of freedom are ``df`` (the
between-architecture spread dominates the uncertainty once it is estimated).

Applies to a search's architectures (known ``arch_id``); a study's families (``group``) are the
thing compared, so they keep their seeds as the noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

#: Below this an architecture mean's seed variance counts as 0 (weights stay finite).
TINY_VARIANCE = 1e-12


def two_level(per_config: pl.LazyFrame, by: Sequence[str], keys: Sequence[str]) -> pl.LazyFrame:
    """Per ``(keys..., value)`` of ``per_config`` (one row per architecture: ``k`` seeds, seed mean
    ``y``, seed variance ``y_var``): ``archs``, the two-level mean ``tl_mean`` and the variance of
    that mean ``tl_var`` (null when the axis has no ``tau^2``), ``tau2`` and ``tau_dof`` (the
    axis's between-architecture variance and its df)."""
    by, keys = list(by), list(keys)
    k = pl.col("k").cast(pl.Float64)
    pooled = per_config.group_by(*by, "axis").agg(
        seed_var=((k - 1) * pl.col("y_var").fill_null(0.0)).sum() / (k - 1).sum().replace(0, None)
    )
    v = (
        pl.when((pl.col("k") >= 2) & pl.col("y_var").is_not_null())
        .then(pl.col("y_var"))
        .otherwise(pl.col("seed_var"))
        .fill_null(0.0)
        / k
    )
    cfg = (
        per_config.join(pooled, on=[*by, "axis"], how="left")
        .with_columns(v=v)
        .with_columns(w=1 / pl.col("v").clip(lower_bound=TINY_VARIANCE))
    )
    w, y = pl.col("w"), pl.col("y")
    groups = (
        cfg.group_by(*keys, "value")
        .agg(m=pl.len(), W=w.sum(), W2=(w**2).sum(), wy=(w * y).sum(), wyy=(w * y * y).sum())
        .with_columns(
            Q=(pl.col("wyy") - pl.col("wy") ** 2 / pl.col("W")).clip(lower_bound=0.0),
            C=pl.col("W") - pl.col("W2") / pl.col("W"),
        )
    )
    axis = (
        groups.group_by(*by, "axis")
        .agg(Q=pl.col("Q").sum(), tau_dof=(pl.col("m") - 1).sum(), C=pl.col("C").sum())
        .with_columns(
            tau2=pl.when((pl.col("tau_dof") > 0) & (pl.col("C") > 0))
            .then(((pl.col("Q") - pl.col("tau_dof")) / pl.col("C")).clip(lower_bound=0.0))
            .otherwise(None)
        )
        .select(*by, "axis", "tau2", "tau_dof")
    )
    ws = 1 / (pl.col("v") + pl.col("tau2")).clip(lower_bound=TINY_VARIANCE)
    return (
        cfg.join(axis, on=[*by, "axis"], how="left")
        .with_columns(ws=ws)
        .group_by(*keys, "value")
        .agg(
            archs=pl.len().cast(pl.UInt32),
            tl_mean=(pl.col("ws") * y).sum() / pl.col("ws").sum(),
            tl_var=pl.when(pl.col("tau2").first().is_not_null()).then(1 / pl.col("ws").sum()),
            tau2=pl.col("tau2").first(),
            tau_dof=pl.col("tau_dof").first().cast(pl.Float64),
        )
    )
