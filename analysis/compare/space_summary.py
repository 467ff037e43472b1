"""What the space law says about a space at a target compute: effects, ranking, and what to train next.

``space_summary(source, target_compute=, top=)`` fits the space law (``laws.space_law``) and
returns one plain dict, what ``archscale fit --law space --json`` prints and the report's "One
law for the space" section draws: the floor and the reference architecture's law with intervals,
every level and slope effect (with its shrinkage, or why it has no estimate), the ranking of the
space's best ``top`` architectures at the target (trained or not) with p_best, and
``what_to_train``: the values without a slope estimate, and the contenders whose p_best is
uncertain that were never trained at the largest size (their prediction leans on the others).
The target defaults to 10x the largest compute trained (``target_source`` says which it is).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archscale.analysis.data.runs import NoData, Source
from archscale.analysis.laws.space_law import SpaceLaw, fit_space_law

#: Contenders with p_best in this range are "uncertain": more runs could change the pick.
UNCERTAIN = (0.05, 0.95)


def what_to_train(law: SpaceLaw, ranking: list[dict[str, Any]], target: float) -> list[str]:
    """Sentences naming the runs that would most change the answer (see the module docstring)."""
    out = list(law.no_slope())
    largest = float(law.data.compute.max())
    at_largest = {
        a
        for a, s in zip(law.data.runs_label(), law.data.size, strict=True)
        if s == law.data.size.max()  # the largest compute size
    }
    for i, row in enumerate(ranking):
        uncertain = UNCERTAIN[0] <= row["p_best"] <= UNCERTAIN[1]
        if (uncertain or i == 0) and row["arch"] not in at_largest:
            where = "it was never trained" if row["trained_runs"] == 0 else "its runs are all below the largest size"
            why = "the predicted best" if i == 0 else "a contender"
            out.append(
                f"{row['arch']} ({why}, p_best {row['p_best']:.2f} at {target:.3g} FLOPs): "
                f"train it at {largest:.3g} FLOPs; {where}"
            )
    return out


def space_summary(
    source: Source, *, target_compute: float | None = None, top: int = 10, seed: int = 0
) -> dict[str, Any]:
    """The space law on ``source`` as a dict (module docstring). Raises ``NoData`` when the runs
    do not identify the law (the message says why and what to run)."""
    law = fit_space_law(source, seed=seed)
    if law.fit is None:
        raise NoData(f"the space law is not identified: {law.reason}")
    largest = float(law.data.compute.max())
    target = float(target_compute) if target_compute is not None else 10.0 * largest
    ranking = law.ranking(target, top=top).to_dicts()
    heads = {k: {"estimate": v[0], "lo": v[1], "hi": v[2]} for k, v in law.heads().items()}
    return {
        "law": "space",
        "n_runs": int(law.data.loss.size),
        "compute_sizes": law.sizes,
        "largest_compute": largest,
        "target_compute": target,
        "target_source": "given" if target_compute is not None else "10x the largest compute trained",
        "axes": law.encoding.axes,
        "reference": law.encoding.reference(),
        "law_params": heads,
        "c0": law.fit.c0,
        "prior_sd": {"level": law.fit.tau_b, "slope": law.fit.tau_s},
        "noise": law.data.noise_note,
        "lack_of_fit_inflation": law.fit.inflation,
        "interval_method": "laplace (95% posterior draws; prior scales by marginal likelihood)",
        "effects": law.coefficients().to_dicts(),
        "no_slope": law.no_slope(),
        "untrained": law.untrained(),
        "ranking": ranking,
        "space_size": int(np.prod([len(v) for v in law.encoding.axes.values()])) if law.encoding.axes else 1,
        "what_to_train": what_to_train(law, ranking, target),
    }
