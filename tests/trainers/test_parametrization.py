"""Parametrisations applied to the model: roles, init, optimizer groups, the warning for uncovered archs."""

from __future__ import annotations

import warnings

import pytest
import torch

from archscale.spaces import ArchConfig, transfer, variants
from archscale.trainers import TrainConfig, build_model
from archscale.trainers.loop import make_optimizer
from archscale.trainers.parametrization import UncoveredParametrizationWarning, role_of, roles

BASE = dict(vocab_size=256, seq_len=16, d_model=32, n_heads=2, head_dim=16, d_ff=128, position="rope", norm="rmsnorm")


def wide(parametrization: str, **extra) -> ArchConfig:
    """BASE at 4x the width (head_dim fixed), its base shapes at BASE's."""
    fields = {**BASE, "d_model": 128, "n_heads": 8, "d_ff": 512, "parametrization": parametrization, **extra}
    if variants.PARAMETRIZATIONS[parametrization].width:
        fields["base_d_model"] = 32
    return ArchConfig(**fields)


def test_every_parameter_has_a_role():
    arch = ArchConfig(**{**BASE, "position": "t5_bias", "bias": True, "qk_norm": True, "tie_embeddings": False})
    got = roles(build_model(arch))
    moe = roles(build_model(ArchConfig(**{**BASE, "ffn_type": "moe", "n_experts": 2, "n_shared_experts": 1})))
    assert set(got.values()) | set(moe.values()) == set(transfer.PARAMETER_ROLES)
    assert moe["blocks.0.ffns.0.router.weight"] == "router"
    assert moe["blocks.0.ffns.0.experts.1.up.weight"] == moe["blocks.0.ffns.0.shared.0.up.weight"] == "hidden_d_model"
    assert moe["blocks.0.ffns.0.experts.0.down.weight"] == "hidden_d_ff"
    assert got["blocks.0.attn.o.weight"] == "hidden_attn" and got["blocks.1.ffns.0.down.weight"] == "hidden_d_ff"
    assert got["blocks.0.attn.q.bias"] == "block_vector" and got["pos.table.weight"] == "embedding"
    with pytest.raises(ValueError, match="no parametrisation role"):
        role_of("mystery.weight")


def test_standard_groups_are_the_usual_two():
    """Standard: one lr, matrices decay, embeddings / head / vectors don't, eps 1e-8 everywhere."""
    model = build_model(wide("standard", tie_embeddings=False))
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    for g in opt.param_groups:
        assert g["lr_scale"] == 1.0 and g["eps"] == 1e-8
        assert g["weight_decay"] == (0.1 if g["role"].startswith("hidden") else 0.0)


def test_mup_groups_scale_with_each_fan_in():
    model = build_model(wide("mup"))
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    by_role = {g["role"]: g for g in opt.param_groups}
    for role in ("hidden_d_model", "hidden_attn", "hidden_d_ff"):  # every fan-in is 4x its base here
        assert by_role[role]["lr_scale"] == pytest.approx(1 / 4)
        assert by_role[role]["weight_decay"] == pytest.approx(0.1 * 4)  # lr x wd unchanged (MuAdamW)
        assert by_role[role]["eps"] == pytest.approx(1e-8 / 4)
    assert by_role["embedding"]["lr_scale"] == 1.0 and by_role["embedding"]["eps"] == 1e-8
    assert by_role["block_vector"]["lr_scale"] == 1.0 and by_role["block_vector"]["eps"] == pytest.approx(1e-8 / 4)
    # init: hidden std 0.02 / sqrt(4); embedding 0.02
    q = model.blocks[0].attn.q.weight
    assert float(q.detach().std()) == pytest.approx(0.01, rel=0.05)
    assert float(model.tok_emb.weight.detach().std()) == pytest.approx(0.02, rel=0.05)


def test_d_ff_multiplier_is_measured_against_the_base_models_own_d_ff():
    """Omitted, base_d_ff is base_d_model x this model's FFN ratio (held from the base), so d_ff's
    multiplier is d_model's whatever the ratio or gating; given, it is d_ff / base_d_ff."""
    for activation, d_ff in (("swiglu", 1024), ("gelu", 768), ("gelu", 96)):
        arch = ArchConfig(**{**BASE, "ffn_activation": activation, "d_ff": d_ff, "d_model": 384, "n_heads": 24})
        arch = ArchConfig(**{**arch.to_dict(), "parametrization": "mup", "base_d_model": 96})
        m = transfer.width_multipliers(arch)
        assert m["d_model"] == 4.0 and m["d_ff"] == pytest.approx(4.0), (activation, d_ff)
    given = ArchConfig(**{**arch.to_dict(), "d_ff": 1024, "base_d_ff": 128})
    assert transfer.width_multipliers(given)["d_ff"] == pytest.approx(8.0)
    doubled = ArchConfig(**{**given.to_dict(), "d_ff": 2048})  # a wider FFN at the same d_model, same base
    assert transfer.width_multipliers(doubled)["d_ff"] == pytest.approx(16.0)
    assert transfer.width_multipliers(doubled)["d_model"] == 4.0
    with pytest.raises(ValueError, match="base_d_ff: only read under parametrization"):
        ArchConfig(**{**BASE, "base_d_ff": 128})


def test_attention_scale_is_anchored_at_the_base_head_dim():
    """At the base head_dim μP's scale is standard's 1/sqrt(head_dim) (microsoft/mup's 8/d at d = 64);
    beyond it, 1/head_dim times the constant sqrt(base_head_dim). attn_mult multiplies both."""
    standard = ArchConfig(**BASE)
    mup = ArchConfig(**{**BASE, "parametrization": "mup"})
    assert transfer.attention_scale(mup) == transfer.attention_scale(standard) == pytest.approx(1 / 4)
    wider_heads = ArchConfig(**{**BASE, "d_model": 64, "head_dim": 32, "parametrization": "mup", "base_head_dim": 16})
    assert transfer.attention_scale(wider_heads) == pytest.approx(4 / 32)
    for arch in (standard, mup, wider_heads):
        hot = ArchConfig(**{**arch.to_dict(), "attn_mult": 2.0})
        assert transfer.attention_scale(hot) == pytest.approx(2 * transfer.attention_scale(arch))
        assert build_model(hot).blocks[0].attn.scale == transfer.attention_scale(hot)


@pytest.mark.parametrize("parametrization", ["standard", "mup", "completep"])
def test_tunable_multipliers_change_the_forward_not_the_counts(parametrization):
    from archscale.spaces import count

    plain = wide(parametrization)
    tuned = ArchConfig(**{**plain.to_dict(), "output_mult": 2.0, "input_mult": 3.0, "attn_mult": 0.5})
    assert count(tuned) == count(plain)  # multipliers are not parameters
    assert plain.arch_id != tuned.arch_id
    torch.manual_seed(0)
    model = build_model(tuned)
    assert model.output_mult == pytest.approx(2.0 * transfer.output_multiplier(plain)) and model.input_mult == 3.0
    idx = torch.randint(0, 256, (1, 16))
    logits = model(idx)
    model.output_mult /= 2.0
    torch.testing.assert_close(model(idx), logits / 2)  # output_mult scales the logits linearly
    model.input_mult = 1.0
    assert not torch.allclose(model(idx), logits / 2)  # and input_mult changed what the blocks saw


def test_embedding_lr_mult_scales_only_the_embedding_group():
    model = build_model(wide("mup", tie_embeddings=False))
    plain = {g["role"]: g["lr_scale"] for g in make_optimizer(model, TrainConfig(), torch.device("cpu")).param_groups}
    cfg = TrainConfig(embedding_lr_mult=3.0)
    tuned = {g["role"]: g["lr_scale"] for g in make_optimizer(model, cfg, torch.device("cpu")).param_groups}
    assert tuned["embedding"] == pytest.approx(3.0 * plain["embedding"])
    assert {r: s for r, s in tuned.items() if r != "embedding"} == {r: s for r, s in plain.items() if r != "embedding"}
    with pytest.raises(ValueError, match="embedding_lr_mult: must be a number > 0"):
        TrainConfig(embedding_lr_mult=0.0)


def test_mup_moe_router_is_treated_like_the_readout_and_experts_like_the_ffn():
    """Router: constant init and lr, logits x 1/m_d_model, decays x 1; experts: the FFN's rules with
    the down projection's multiplier read from expert_d_ff."""
    arch = wide("mup", ffn_type="moe", n_experts=4, expert_d_ff=256, base_d_ff=128)  # expert 2x its base's 128
    model = build_model(arch)
    opt = make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    by_role = {g["role"]: g for g in opt.param_groups}
    assert by_role["router"]["lr_scale"] == 1.0 and by_role["router"]["weight_decay"] == pytest.approx(0.1)
    assert by_role["hidden_d_ff"]["lr_scale"] == pytest.approx(1 / 2)  # 256 / (32 x 4)
    moe = model.blocks[0].ffns[0]
    assert moe.router_mult == pytest.approx(1 / 4) == transfer.output_multiplier(arch)
    tuned = build_model(ArchConfig(**{**arch.to_dict(), "output_mult": 2.0}))
    assert tuned.blocks[0].ffns[0].router_mult == pytest.approx(1 / 4)  # output_mult is the readout's alone
    assert float(moe.router.weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    assert build_model(wide("standard", ffn_type="moe")).blocks[0].ffns[0].router_mult == 1.0


def test_completep_scales_residuals_and_eps_not_init():
    arch = ArchConfig(**{**BASE, "n_layers": 8, "parametrization": "completep", "base_n_layers": 2})
    torch.manual_seed(0)  # the init std is measured from a sample: fix it, so the test never depends on order
    model = build_model(arch)
    assert all(b.r == 0.25 for b in model.blocks)
    o = torch.cat([b.attn.o.weight.detach().flatten() for b in model.blocks])  # all 8 layers: a larger sample
    # no depth-scaled init, though init=depth_scaled (which would give 0.02 / sqrt(16) = 0.005)
    assert float(o.std()) == pytest.approx(0.02, rel=0.05)
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    by_role = {g["role"]: g for g in opt.param_groups}
    assert by_role["hidden_d_model"]["eps"] == pytest.approx(1e-8 / 4) and by_role["hidden_d_model"]["lr_scale"] == 1
    assert by_role["final_norm"]["eps"] == 1e-8


def test_mup_readout_and_attention_multipliers_change_the_forward():
    arch = wide("mup")
    torch.manual_seed(0)
    model = build_model(arch)
    idx = torch.randint(0, 256, (1, 16))
    logits = model(idx)
    model.output_mult = 1.0
    torch.testing.assert_close(model(idx), logits * 4)  # the readout's 1 / m_d_model
    assert model.blocks[0].attn.scale == pytest.approx(1 / 4)  # head_dim 16 is the base's: 1/sqrt(16)


def test_zero_init_starts_queries_and_an_untied_readout_at_zero():
    model = build_model(ArchConfig(**{**BASE, "zero_init": True, "tie_embeddings": False}))
    with torch.no_grad():
        assert float(model.blocks[0].attn.q.weight.abs().sum()) == 0 and float(model.head.weight.abs().sum()) == 0
        assert float(model.blocks[0].attn.k.weight.abs().sum()) > 0


def test_uncovered_combination_warns_once_and_trains(tmp_path):
    from archscale.trainers import parametrization, train

    parametrization._warned.clear()
    arch = ArchConfig(**{**BASE, "norm_position": "post", "parametrization": "mup"})
    with pytest.warns(UncoveredParametrizationWarning, match="norm_position=post"):
        build_model(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncoveredParametrizationWarning)  # the second build stays quiet
        summary = train(arch, TrainConfig(tokens=2048, batch_size=4, eval_tokens=256, threads=1), out=tmp_path / "r")
    assert summary["status"] == "completed"
    assert arch.parametrization_caveat is not None and ArchConfig(**BASE).parametrization_caveat is None


def test_trial_row_records_parametrization_and_caveat():
    from archscale.spaces.record import TRIAL_COLUMNS, new_trial_row

    arch = ArchConfig(**{**BASE, "position": "none", "parametrization": "mup", "base_d_model": 16})
    row = new_trial_row(trial_id=0, seed=0, arch=arch, train={"lr": 0.01}, counts=None, target_tokens=1)
    assert {"parametrization", "base_d_model", "base_n_layers", "parametrization_caveat", "lr_hidden"} <= set(
        TRIAL_COLUMNS
    )
    assert (
        row["parametrization"] == "mup"
        and row["base_d_model"] == 16
        and "position=none" in row["parametrization_caveat"]
    )
    assert row["lr_hidden"] == pytest.approx(0.01 / 2)  # d_model 32 over base 16


def test_multipliers_are_search_axes_and_reach_the_trial_row():
    """Arch multipliers are axes like any field; embedding_lr_mult is a searchable training setting;
    all four are trial-row columns (derived from the configs)."""
    from archscale.spaces.record import TRIAL_COLUMNS, new_trial_row
    from archscale.spaces.space import space_from_dict

    arch = {**BASE, "parametrization": "mup", "output_mult": {"low": 0.25, "high": 4.0, "log": True}}
    arch |= {"input_mult": {"choices": [0.5, 2.0]}, "attn_mult": {"choices": [0.5, 2.0]}}
    train = {"lr": 1e-3, "embedding_lr_mult": {"choices": [0.5, 2.0]}}
    space = space_from_dict({"name": "multipliers", "arch": arch, "train": train})
    sample = space.sample_random(0)
    assert 0.25 <= sample.arch.output_mult <= 4.0 and sample.arch.input_mult in (0.5, 2.0)
    assert sample.train["embedding_lr_mult"] in (0.5, 2.0)
    assert {"output_mult", "input_mult", "attn_mult", "embedding_lr_mult", "base_head_dim", "base_d_ff"} <= set(
        TRIAL_COLUMNS
    )
    row = new_trial_row(trial_id=0, seed=0, arch=sample.arch, train=sample.train, counts=None, target_tokens=1)
    assert row["output_mult"] == sample.arch.output_mult and row["attn_mult"] == sample.arch.attn_mult
    assert row["embedding_lr_mult"] == sample.train["embedding_lr_mult"]
