"""The coordinate check: under mup activations keep their size across width, under completep across
depth; under the standard parametrisation they do not (so the check can fail)."""

from __future__ import annotations

import json

import pytest
import torch

from archscale.spaces import ArchConfig
from archscale.trainers.coord import ROLES, coord_check, slopes, with_parametrization

# base 64 wide (4 heads of 16): below ~4 heads finite-width effects dominate a 5-step check
BASE = ArchConfig(
    vocab_size=256, seq_len=32, d_model=64, n_heads=4, head_dim=16, d_ff=256, position="rope", norm="rmsnorm"
)
SETTINGS = dict(steps=5, lr=1e-2, seeds=2)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_mup_is_flat_across_width_and_standard_is_not():
    mup = slopes(coord_check(with_parametrization(BASE, "mup"), widths=[64, 128, 256], **SETTINGS), "width", 5)
    assert set(mup) == set(ROLES)
    for role, slope in mup.items():  # logits and every hidden role
        assert abs(slope) <= 0.15, (role, mup)
    standard = slopes(coord_check(BASE, widths=[64, 128, 256], **SETTINGS), "width", 5)
    assert standard["logits"] > 0.3, standard
    assert standard["residual"] > 1.0, standard


@pytest.mark.parametrize(
    "multipliers",
    [dict(output_mult=4.0, input_mult=0.5, attn_mult=2.0), dict(output_mult=0.5, input_mult=2.0, attn_mult=0.5)],
)
def test_mup_stays_flat_across_width_with_tuned_multipliers(multipliers):
    """The multipliers are tuned at the base and held: they change every size's activations alike,
    so the slopes stay within ±0.15 (and the multipliers did change the activations)."""
    tuned = ArchConfig(**{**with_parametrization(BASE, "mup").to_dict(), **multipliers})
    rows = coord_check(tuned, widths=[64, 128, 256], **SETTINGS)
    mup = slopes(rows, "width", 5)
    assert set(mup) == set(ROLES)
    for role, slope in mup.items():
        assert abs(slope) <= 0.15, (role, multipliers, mup)
    plain = coord_check(with_parametrization(BASE, "mup"), widths=[64], **SETTINGS)
    at_base = {r["role"]: r["rms"] for r in rows if r["width"] == 64 and r["step"] == 0}
    plain_at_base = {r["role"]: r["rms"] for r in plain if r["step"] == 0}
    assert at_base["embedding"] == pytest.approx(multipliers["input_mult"] * plain_at_base["embedding"], rel=1e-4)


def test_mup_moe_router_and_experts_are_flat_across_width():
    """The router's rule (the readout's: constant init and lr, logits x 1/m_d_model) keeps its logits
    O(1) with width; without the multiplier (standard) they grow. Widths to 512: with the attention
    scale anchored at the base (1/sqrt(16) here, 4x hotter than 1/head_dim) the attention and FFN
    outputs read -0.20 / +0.16 across 64-256 alone, but -0.07 / +0.05 across 64-512 (finite width)."""
    moe = ArchConfig(**{**BASE.to_dict(), "ffn_type": "moe", "n_experts": 4, "experts_top_k": 2, "d_ff": 128})
    mup = slopes(coord_check(with_parametrization(moe, "mup"), widths=[64, 128, 256, 512], **SETTINGS), "width", 5)
    assert set(mup) == {*ROLES, "router"}
    for role, slope in mup.items():
        assert abs(slope) <= 0.15, (role, mup)
    standard = slopes(coord_check(moe, widths=[64, 128, 256], **SETTINGS), "width", 5)
    assert standard["router"] > 0.3, standard


def test_completep_is_flat_across_depth_and_standard_is_not():
    depths = [2, 4, 8, 16]
    completep = slopes(coord_check(with_parametrization(BASE, "completep"), depths=depths, **SETTINGS), "depth", 5)
    for role in ("logits", "residual", "embedding", "attention"):
        assert abs(completep[role]) <= 0.15, (role, completep)
    standard = slopes(coord_check(BASE, depths=depths, **SETTINGS), "depth", 5)
    assert standard["residual"] > 0.5, standard  # the final norm hides depth growth from the logits


def test_cli_json_rows(tmp_path):
    from typer.testing import CliRunner

    from archscale.search.cli import app

    arch = tmp_path / "arch.json"
    arch.write_text(BASE.to_json())
    runner = CliRunner()
    args = ["check", "coord", str(arch), "--parametrization", "mup", "--widths", "64,128", "--steps", "2"]
    result = runner.invoke(app, [*args, "--json", "--out", str(tmp_path / "coord.html")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {tuple(sorted(r)) for r in rows} == {("depth", "rms", "role", "step", "width")}
    assert {r["width"] for r in rows} == {64, 128} and {r["step"] for r in rows} == {0, 1, 2}
    assert {r["role"] for r in rows} == set(ROLES)
    assert (tmp_path / "coord.html").stat().st_size > 1000
    bad = runner.invoke(app, ["check", "coord", str(arch), "--widths", "64,100"])
    assert bad.exit_code == 2 and "not a multiple of the architecture's head_dim=16" in bad.output
    bad = runner.invoke(app, ["check", "coord", str(arch), "--parametrization", "ntk", "--widths", "64,128"])
    assert bad.exit_code == 2 and "allowed: standard, mup, completep" in bad.output
