"""The verdicts as sentences: what the quickstart prints and the report renders."""

from __future__ import annotations

import math
from typing import Any

from archscale.analysis.compare.verdicts import Verdicts


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _interval(lo: Any, hi: Any) -> str:
    return "no interval" if lo is None or hi is None else f"[{_num(lo)}, {_num(hi)}]"


def _next_step(row: dict[str, Any], needed: str, more: str, unit: str, comparisons: int) -> str:
    """What to run to resolve an unresolved comparison."""
    if row["verdict"] == "resolved":
        return "resolved"
    if row["verdict"] == "one run":
        return row.get("noise_why") or "one run: no noise estimate; run 2 more seeds"
    if row.get("sd") is None or row["verdict"] == "no interval":
        return f"no estimate of noise: run 2 or more {unit} of each to measure it"
    if not math.isfinite(row[needed]):
        return "within noise; the observed difference is too small to resolve at this spread"
    if row[more] == 0:  # enough for one test at 0.05, not after the adjustment for the family
        family = row.get("needed_in_family", math.inf)
        enough = f"about {int(family)} {unit} would resolve it" if math.isfinite(family) else "it cannot be resolved"
        return f"within noise after adjusting for {comparisons} comparisons (unadjusted p = {row['p']:.2g}); {enough}"
    if "min_effect" in row:  # planned for the smallest effect of interest, as a range
        lo, hi = row.get("seeds_needed_lo", math.nan), row.get("seeds_needed_hi", math.nan)
        span = f"{_count(lo)}-{_count(hi)}" if lo != hi else _count(lo)
        return (
            f"within noise; about {int(row[needed])} {unit} (range {span}, from the spread's 95% interval) would "
            f"resolve a {row['min_effect']:.2f}-nat difference ({int(row[more])} more)"
        )
    return f"within noise; about {int(row[needed])} {unit} would resolve it ({int(row[more])} more)"


def _count(x: Any) -> str:
    return "more than 10000" if x is None or not math.isfinite(x) else str(int(x))


def best_probabilities(ranking: Any, *, top: int = 3) -> str:
    """ "X is best with probability 0.83; Y 0.12" from a ranking's ``p_best`` (largest first)."""
    rows = ranking.filter(ranking["p_best"].is_not_null()).sort("p_best", descending=True).head(top)
    if rows.height == 0:
        return "No architecture has a noise estimate: no probability of being best."
    first, *rest = rows.iter_rows(named=True)
    parts = [f"{first['name']} is best with probability {first['p_best']:.2f} (±{first['p_best_mc_se']:.2f})"]
    parts += [f"{r['name']} {r['p_best']:.2f}" for r in rest]
    return "; ".join(parts) + "."


def verdict_lines(v: Verdicts) -> dict[str, list[str]]:
    """The verdicts as sentences, by part: ``best``, ``differences``, ``effects``, ``fits``, ``notes``."""
    out: dict[str, list[str]] = {"best": [], "differences": [], "effects": [], "fits": [], "notes": list(v.notes)}
    b = v.best
    if b is None:
        out["best"].append("No completed trials yet: nothing to rank.")
    else:
        sens = (
            f"LR sensitivity {_num(b['lr_sensitivity'])} over {b['lrs']} learning rates"
            if b.get("lr_sensitivity") is not None
            else "LR sensitivity unknown (1 learning rate tried)"
        )
        where = b["run"] if b["cell"] == "search" else f"{b['run']}, {b['cell']}"
        how = {"own seeds": f"t-interval over its {b['n']} seeds"}.get(b["interval"], b["interval"])
        noise = "one run: no interval" if b["interval"] == "none" else f"{_interval(b['lo'], b['hi'])}, {how}"
        selected = ""
        if b.get("best_lo") is not None:
            selected = f"; corrected for its selection among {b['candidates']}: {_interval(b['best_lo'], b['best_hi'])}"
            if b.get("lead") is not None:
                selected += f", lead over the runner-up {b['lead']:+.3f} {_interval(b['lead_lo'], b['lead_hi'])}"
        out["best"].append(
            f"Best architecture ({where}): {b['name']}, eval loss {_num(b['mean'])} "
            f"(n={b['n']}; {noise}{selected}); {sens}."
        )
        if "p_best" in v.ranking.columns:
            out["best"].append(best_probabilities(v.ranking))
    for row in v.differences.iter_rows(named=True):
        how = {"paired": f"paired over {row['n_pairs']} seeds", "welch": "Welch",
               "welch (noise model)": "Welch, a variance from the noise model"}  # fmt: skip
        out["differences"].append(
            f"{row['name']} vs {row['best']}: {row['diff']:+.3f} {_interval(row['lo'], row['hi'])} "
            f"(n={row['n']} vs {row['n_best']}, {how.get(row['method'], 'no interval')}): "
            + _next_step(row, "seeds_needed", "more_seeds", "seeds", v.comparisons)
        )
    for row in v.effects.sort("p_holm", nulls_last=True).iter_rows(named=True):
        unit = (
            "pairs (seed x grid point)"
            if row["method"] == "paired"
            else "seeds per family"
            if row["axis"] == "group"
            else "architectures per value"
        )
        confounded = ""
        if row["axis"] != "group" and 1 in (row.get("architectures"), row.get("base_architectures")):
            confounded = " (rests on one architecture: confounded with its other axes)"
        out["effects"].append(
            f"{row['axis']} = {row['value']} vs {row['baseline']} ({row['run']}): {row['effect']:+.3f} "
            f"{_interval(row['lo'], row['hi'])} (n={row['n']} vs {row['n_base']}, {row['method']}): "
            + _next_step(row, "n_needed", "more_needed", unit, v.comparisons)
            + confounded
        )
    for row in v.fits.iter_rows(named=True):
        head = f"{row['law']}, {row['series']}"
        if row["identified"] and row["estimate"] is not None:
            caveat = f" ({row['reason']})" if row["reason"] else ""
            out["fits"].append(
                f"{head}: identified; {row['quantity']} {_num(row['estimate'])} {_interval(row['lo'], row['hi'])} "
                f"at C = {row['at']:.3g} FLOPs (n={row['n_runs']} runs){caveat}."
            )
        elif row["identified"]:
            out["fits"].append(f"{head}: identified (n={row['n_runs']} runs).")
        else:
            out["fits"].append(f"{head}: not identified: {row['reason'] or 'no reason given'}.")
    return out


def verdicts_text(v: Verdicts, *, max_lines: int = 6) -> str:
    """The verdicts as plain text: at most ``max_lines`` comparisons per part (resolved first)."""
    parts = verdict_lines(v)
    lines = list(parts["best"])
    holm_note = f"{v.comparisons} comparison{'' if v.comparisons == 1 else 's'} in all, Holm-adjusted"
    titles = (("differences", f"Differences from the best ({holm_note})"), ("effects", "Effects at equal budget"))
    for key, title in titles:
        items = parts[key]
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items[:max_lines]]
            if len(items) > max_lines:
                lines.append(f"  ... and {len(items) - max_lines} more (see the report)")
    if parts["fits"]:
        lines.append("Scaling fits:")
        lines += [f"  - {item}" for item in parts["fits"]]
    lines += [f"Note: {n}" for n in parts["notes"]]
    return "\n".join(lines)


__all__ = ["best_probabilities", "verdict_lines", "verdicts_text"]
