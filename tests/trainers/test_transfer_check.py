"""`archscale check transfer`: the optimum lr per size, its drift, and the wider-is-better verdict,
tested on constructed loss tables (so the verdict can be false) and end to end on tiny settings."""

from __future__ import annotations

import json
import math

import pytest

from archscale.spaces import ArchConfig
from archscale.trainers.transfer_check import near_lrs, optimal_lr, summarise, wider_is_better

LRS = (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)


def bowl(centre: float, floor: float) -> dict[float, float]:
    """A loss curve over LRS: a parabola in log lr with its minimum `floor` at `centre`."""
    return {lr: floor + 0.1 * math.log(lr / centre) ** 2 for lr in LRS}


def test_optimal_lr_is_the_parabola_vertex_and_flags_an_edge():
    lr, at_edge = optimal_lr(bowl(3e-3, 2.0))
    assert lr == pytest.approx(3e-3, rel=1e-6) and not at_edge
    lr, at_edge = optimal_lr(bowl(1e-1, 2.0))  # falling all the way: the optimum lies beyond the grid
    assert lr == LRS[-1] and at_edge
    diverged = {**bowl(4e-3, 2.0), 8e-3: None}  # beside a diverged point: the grid point itself
    assert optimal_lr(diverged) == (4e-3, False)


def test_near_lrs_are_within_2x_of_the_optimum_and_never_empty():
    assert near_lrs(LRS, 3e-3) == (2e-3, 4e-3)
    assert near_lrs(LRS, 4e-3) == (2e-3, 4e-3, 8e-3)  # inclusive
    assert near_lrs((1e-3, 1e-2), 3e-3) == (1e-3,)  # a coarse grid: the closest lr still counts


def test_verdict_true_when_every_near_lr_improves_with_size():
    table = {64: bowl(4e-3, 3.0), 128: bowl(4e-3, 2.9), 256: bowl(4.2e-3, 2.8)}
    check = summarise("width", "mup", table, steps=10, seeds=1)
    assert check.wider_is_better and check.why_not is None
    assert check.near_lrs == (2e-3, 4e-3, 8e-3)
    assert check.drift == pytest.approx(4.2 / 4, rel=1e-6)
    assert check.optimum_lr[64] == pytest.approx(4e-3, rel=1e-6)


def test_verdict_false_when_the_optimum_moves_and_wider_loses_near_the_base_optimum():
    # standard-like: the wide model's optimum moved 4x down; at the base's best lr it is worse
    table = {64: bowl(8e-3, 3.0), 128: bowl(2e-3, 2.95)}
    check = summarise("width", "standard", table, steps=10, seeds=1)
    assert not check.wider_is_better
    assert "size 128" in check.why_not and "not below size 64" in check.why_not
    assert check.drift == pytest.approx(4.0, rel=1e-6)


def test_verdict_false_on_one_lr_or_a_diverged_point():
    table = {64: bowl(4e-3, 3.0), 128: bowl(4e-3, 2.9)}
    table[128][8e-3] = 3.5  # worse at one near lr only
    assert wider_is_better(table, (2e-3, 4e-3, 8e-3))[0] is False
    assert wider_is_better(table, (2e-3, 4e-3))[0] is True
    table[128][2e-3] = None
    ok, why = wider_is_better(table, (2e-3,))
    assert not ok and "diverged" in why


def test_cli_end_to_end_json(tmp_path):
    from typer.testing import CliRunner

    from archscale.search.cli import app

    arch = tmp_path / "arch.json"
    base = ArchConfig(vocab_size=256, seq_len=16, d_model=32, n_heads=2, head_dim=16, d_ff=64, position="rope")
    arch.write_text(base.to_json())
    runner = CliRunner()
    args = ["check", "transfer", str(arch), "--parametrization", "mup", "--widths", "32,64"]
    result = runner.invoke(app, [*args, "--lrs", "3e-3,1e-2", "--steps", "3", "--batch-size", "4", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["over"] == "width" and got["parametrization"] == "mup" and got["sizes"] == [32, 64]
    assert got["lrs"] == [3e-3, 1e-2] and got["steps"] == 3 and got["seeds"] == 1
    assert set(got["losses"]) == {"32", "64"} and set(got["losses"]["32"]) == {"0.003", "0.01"}
    assert all(0 < v < 10 for by_lr in got["losses"].values() for v in by_lr.values())
    assert set(got["optimum_lr"]) == {"32", "64"} and got["drift"] >= 1.0
    assert isinstance(got["wider_is_better"], bool) and got["near_lrs"]
    assert (got["why_not"] is None) == got["wider_is_better"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--widths", "32,64", "--depths", "2,4"], "give --widths or --depths (one of them)"),
        ([], "give --widths or --depths (one of them)"),
        (["--widths", "32,64", "--lrs", "1e-3"], "--lrs: give at least two different positive learning rates"),
        (["--widths", "32,64", "--lrs", "fast,slow"], "--lrs: expected comma-separated numbers"),
        (["--widths", "32,40"], "not a multiple of the architecture's head_dim=16"),
        (["--widths", "32,64", "--parametrization", "ntk"], "allowed: standard, mup, completep"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    from typer.testing import CliRunner

    from archscale.search.cli import app

    arch = tmp_path / "arch.json"
    arch.write_text(ArchConfig(d_model=32, n_heads=2, head_dim=16, d_ff=64).to_json())
    result = CliRunner().invoke(app, ["check", "transfer", str(arch), "--steps", "1", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
