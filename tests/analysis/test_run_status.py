"""A diverged run is known by the trainer's typed outcome (`run_status`), not by its error text."""

import polars as pl

from archscale.analysis.data.runs import diverged_run


def test_the_typed_outcome_decides_and_old_files_fall_back_to_the_text():
    trials = pl.DataFrame(
        {
            "status": ["failed", "failed", "failed", "failed", "completed"],
            # typed: diverged whatever the text says; failed even if the text mentions divergence
            "run_status": ["diverged", "failed", None, None, "completed"],
            "error": ["non-finite loss", "diverged: but typed as failed", "diverged: loss 3x", "infeasible", None],
        }
    )
    assert trials.select(diverged_run(trials)).to_series().to_list() == [True, False, True, False, False]
    old = trials.drop("run_status")  # results written before the column: the trainer's "diverged: ..." prefix
    assert old.select(diverged_run(old)).to_series().to_list() == [False, True, True, False, False]
