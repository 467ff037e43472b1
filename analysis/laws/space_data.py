"""The space law's data: completed trials of results directories, the space's axes, and each run's noise.

* **Runs**: every completed trial with a finite loss and compute (searches, studies, ladder
  rungs, validation runs alike: ``data.runs.completed``); compute is the trial's ``compute``
  column. Points from inside a run's curve are not used (a curve's early points are not the
  loss of a run trained to that compute unless the schedule makes them so; not modelled).
* **Axes**: those the space files in run.json declare with 2+ choices (``arch: {axis: {choices:
  [...]}}``, or a synthetic search's ``{axis: [...]}``), plus any categorical architecture column
  whose completed runs take 2+ values; values seen in the runs but not declared are added. An
  axis's first value is its reference level.
* **Compute sizes**: runs whose compute lies within ``SIZE_GAP_DECADES`` of each other are one
  size (a base-budget search's architectures differ by a few percent in compute, and are one
  size; ladder rungs, 4x apart, are several).
* **Noise**: a configuration is an architecture at one size. Its seed variance, where it was
  replicated, is shrunk toward the pooled variance of the replicated configurations with
  ``PRIOR_DOF`` degrees of freedom (a variance from 2 seeds is itself very noisy); a
  configuration with one run takes the pooled variance. With no replicated configuration the
  noise is one unknown variance, estimated from the fit's residuals (``sigma`` is None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from archscale.analysis.data.loaders import ARCH_AXES, load_run
from archscale.analysis.data.runs import Source, completed

from .inputs import compute_budgets
from .space_encoding import Encoding

SIZE_GAP_DECADES = 0.1  # compute sizes: runs within ~26% of each other in compute are one size
PRIOR_DOF = 4.0  # weight of the pooled variance in a configuration's shrunk seed variance


def arch_label(arch: Mapping[str, str]) -> str:
    """``axis=value`` pairs joined by ``, ``: how an architecture of the space is named."""
    return ", ".join(f"{k}={v}" for k, v in arch.items()) or "(no axes)"


@dataclass(frozen=True)
class SpaceData:
    """Runs ready to fit: the architecture of each (``archs``), compute, loss, compute size index,
    noise sd per run (None: one unknown variance), the encoding, and a note on the noise."""

    runs: pl.DataFrame
    archs: list[dict[str, str]]
    compute: np.ndarray
    loss: np.ndarray
    size: np.ndarray
    sigma: np.ndarray | None
    encoding: Encoding
    noise_note: str

    def runs_label(self) -> list[str]:
        """Each run's architecture, named by ``arch_label``."""
        return [arch_label(a) for a in self.archs]


def _text(value: object) -> str:
    """A value as the runs' string column spells it (polars writes booleans as ``true``/``false``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _declared_axes(source: Source) -> dict[str, list[str]]:
    """Axes with 2+ choices in the run.json space files of ``source``'s directories (in order)."""
    if isinstance(source, pl.DataFrame):
        return {}
    dirs = [source] if isinstance(source, (str, Path)) else list(source)  # type: ignore[arg-type]
    out: dict[str, list[str]] = {}
    for d in dirs:
        space = load_run(d).get("space") or {}
        arch = space.get("arch", space) if isinstance(space, dict) else {}
        for axis, spec in arch.items():
            values = spec.get("choices") if isinstance(spec, dict) else spec if isinstance(spec, list) else None
            if axis in ARCH_AXES and isinstance(values, list) and len(values) > 1:
                seen = out.setdefault(axis, [])
                seen += [_text(v) for v in values if _text(v) not in seen]
    return out


def space_axes(
    source: Source, runs: pl.DataFrame, axes: Mapping[str, Sequence[object]] | None = None
) -> dict[str, list[str]]:
    """The space's axes and their values (see the module docstring); ``axes`` overrides the search."""
    if axes is not None:
        return {k: [_text(v) for v in vals] for k, vals in axes.items()}
    out = _declared_axes(source)
    for axis in ARCH_AXES:
        if axis not in runs.columns or runs[axis].dtype not in (pl.String, pl.Boolean, pl.Categorical):
            continue
        values = runs[axis].drop_nulls().cast(pl.String).unique(maintain_order=True).to_list()
        if len(values) > 1 or axis in out:
            seen = out.setdefault(axis, [])
            seen += sorted(v for v in values if v not in seen)
    return out


def _noise(config: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray | None, str]:
    keys, inverse, counts = np.unique(config, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, loss)
    means = sums / counts
    ss = np.bincount(inverse, (loss - means[inverse]) ** 2)
    replicated = counts >= 2
    if not replicated.any():
        return None, "no configuration was replicated: one noise level for every run, from the fit's residuals"
    dof = (counts - 1).astype(float)
    pooled = ss[replicated].sum() / dof[replicated].sum()
    var = np.where(replicated, (PRIOR_DOF * pooled + ss) / (PRIOR_DOF + dof), pooled)
    var = np.maximum(var, 1e-12)
    note = (
        f"seed variance of {int(replicated.sum())} replicated configurations (of {keys.size}), each shrunk toward "
        f"their pooled sd {np.sqrt(pooled):.3g} with {PRIOR_DOF:g} prior dof; {int((~replicated).sum())} "
        "one-run configurations take the pooled sd"
    )
    return np.sqrt(var)[inverse], note


def modelled_noise(arch: Sequence[str], resid: np.ndarray, dof_share: float) -> tuple[np.ndarray, str]:
    """Noise sds per run when no configuration was replicated: each architecture's residual variance
    (from a nearly unshrunk fit, its ``dof_share`` of residual degrees of freedom per run) shrunk
    toward the pooled one with ``PRIOR_DOF`` degrees of freedom, so an architecture whose runs
    scatter more (a learning rate near the edge of stability) weighs less, as replicates would say."""
    keys, inverse = np.unique(np.asarray(arch), return_inverse=True)
    n = np.bincount(inverse).astype(float)
    ss = np.bincount(inverse, resid**2)
    pooled = max(float(ss.sum() / max(dof_share * n.sum(), 1.0)), 1e-12)
    var = (PRIOR_DOF * pooled + ss) / (PRIOR_DOF + dof_share * n)
    note = (
        f"no configuration was replicated: each of {keys.size} architectures' residual variance, shrunk toward "
        f"the pooled sd {np.sqrt(pooled):.3g} with {PRIOR_DOF:g} prior dof"
    )
    return np.sqrt(var)[inverse], note


def space_data(
    source: Source,
    *,
    loss: str = "eval_loss",
    axes: Mapping[str, Sequence[object]] | None = None,
    interactions: Sequence[tuple[str, str]] = (),
) -> SpaceData:
    """The runs of ``source`` (results directories or a trials frame) ready for ``fit_space_law``."""
    runs = completed(source, loss)
    if "compute" not in runs.columns:
        raise ValueError("the runs have no compute column (the space law is a law in training compute)")
    runs = runs.filter(pl.col("compute").is_finite() & (pl.col("compute") > 0))
    found = space_axes(source, runs, axes)
    missing = [a for a in found if a not in runs.columns]
    if missing:
        raise ValueError(f"axes {missing} are not columns of the runs (columns: {', '.join(runs.columns)})")
    encoding = Encoding.of(found, interactions)
    names = list(encoding.axes)
    runs = runs.with_columns(pl.col(names).cast(pl.String)).drop_nulls(names) if names else runs
    archs = runs.select(names).to_dicts() if names else [{} for _ in range(runs.height)]
    compute = runs["compute"].cast(float).to_numpy()
    y = runs[loss].cast(float).to_numpy()
    size = compute_budgets(compute, gap_decades=SIZE_GAP_DECADES) if compute.size else np.zeros(0, int)
    label = pl.concat_str([pl.col(n) for n in names], separator="·") if names else pl.lit("all")
    config = runs.select(label.alias("a")).to_series().to_numpy().astype(str)
    config = np.char.add(np.char.add(config, "@"), size.astype(str))
    sigma, note = _noise(config, y) if y.size else (None, "no runs")
    return SpaceData(runs, archs, compute, y, size, sigma, encoding, note)
