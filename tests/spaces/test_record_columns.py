"""The trial record's `flops_convention` and `epochs` columns: written, read back (results from
before `flops_convention` existed read as dense), and flagged when one comparison mixes them."""

import polars as pl

from archscale.analysis import load_trials
from archscale.analysis.present.report_parts import comparison_caveats
from archscale.spaces import ArchConfig, count
from archscale.spaces.record import CURVE_COLUMNS, TRIAL_COLUMNS, new_trial_row, trial_schema


def _row(trial_id, **train):
    arch = ArchConfig()
    convention = train.get("flops_convention", "causal")
    return new_trial_row(
        trial_id=trial_id, seed=0, arch=arch, train=train, counts=count(arch, convention), target_tokens=1000
    )


def test_the_columns_exist_with_their_types():
    assert TRIAL_COLUMNS["flops_convention"] is str and TRIAL_COLUMNS["epochs"] is float
    assert CURVE_COLUMNS["epochs"] is float


def test_a_new_row_says_how_its_flops_were_counted():
    assert _row(0)["flops_convention"] == "causal"  # the default
    dense = _row(1, flops_convention="dense")
    assert dense["flops_convention"] == "dense"
    assert dense["flops_per_token"] == count(ArchConfig(), "dense").flops_per_token > _row(0)["flops_per_token"]
    assert _row(2)["epochs"] is None  # known once the trainer reports


def test_results_without_the_column_read_as_dense(tmp_path):
    old = pl.DataFrame([_row(0)], schema=trial_schema(), strict=False).drop("flops_convention", "epochs")
    (tmp_path / "old").mkdir()
    old.write_parquet(tmp_path / "old" / "trials.parquet")
    (tmp_path / "new").mkdir()
    pl.DataFrame([_row(1)], schema=trial_schema(), strict=False).write_parquet(tmp_path / "new" / "trials.parquet")
    (tmp_path / "resumed").mkdir()  # an old row carried into a newer writer's file: the column is there, null
    pl.DataFrame([{**_row(2), "flops_convention": None}], schema=trial_schema(), strict=False).write_parquet(
        tmp_path / "resumed" / "trials.parquet"
    )
    trials = load_trials([tmp_path / d for d in ("old", "new", "resumed")]).collect().sort("trial_id")
    assert trials["flops_convention"].to_list() == ["dense", "causal", "dense"]
    assert trials["epochs"].to_list() == [None, None, None]  # epochs have no legacy meaning: unknown


def test_a_comparison_that_mixes_repetition_or_conventions_says_so():
    def frame(epochs, conventions):
        return pl.DataFrame(
            {"epochs": epochs, "flops_convention": conventions}, schema_overrides={"epochs": pl.Float64}
        )

    assert comparison_caveats(frame([0.1, 0.2], ["causal", "causal"])) == ""
    assert comparison_caveats(frame([1.5, 3.0], ["causal", "causal"])) == ""  # all repeated: comparable
    mixed = comparison_caveats(frame([0.1, 1.5, None], ["causal"] * 3))
    assert (
        "Mixed data repetition: 1 of 3 trials" in mixed and "(1.50-1.50 epochs), the others 0.10-0.10 epochs" in mixed
    )
    assert "Mixed FLOP conventions (causal, dense)" in comparison_caveats(frame([0.1, 0.1], ["dense", "causal"]))
