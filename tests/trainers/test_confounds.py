"""Training details that must not confound an architecture axis (issue: honest numbers)."""

from __future__ import annotations

import pytest
import torch

from archscale.spaces import ArchConfig
from archscale.spaces.errors import UserError
from archscale.spaces.training import TrainConfig
from archscale.trainers import build_model
from archscale.trainers.loop import Schedule, make_optimizer

ARCH = dict(vocab_size=64, seq_len=16, d_model=16, n_layers=1, n_heads=2, d_ff=32)


def _decay_of(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[int, float]:
    return {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}


@pytest.mark.parametrize("decay_embeddings", [False, True])
def test_tied_and_untied_heads_get_the_same_weight_decay(decay_embeddings):
    cfg = TrainConfig(weight_decay=0.1, decay_embeddings=decay_embeddings)
    decays = {}
    for tied in (True, False):
        model = build_model(ArchConfig(**ARCH, tie_embeddings=tied))
        decay = _decay_of(model, make_optimizer(model, cfg, torch.device("cpu")))
        head = model.tok_emb.weight if tied else model.head.weight
        decays[tied] = (decay[id(model.tok_emb.weight)], decay[id(head)])
    expected = 0.1 if decay_embeddings else 0.0
    assert decays[True] == decays[False] == (expected, expected)


def test_every_other_matrix_still_decays():
    model = build_model(ArchConfig(**ARCH, tie_embeddings=False))
    decay = _decay_of(model, make_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu")))
    tables = ("tok_emb.weight", "head.weight", "pos.table.weight")  # embeddings, head, learned positions
    matrices = [n for n, p in model.named_parameters() if p.dim() >= 2 and n not in tables]
    assert matrices and all(decay[id(dict(model.named_parameters())[n])] == 0.1 for n in matrices)


@pytest.mark.parametrize("warmup", [0, 3, 10])
def test_cosine_reaches_its_minimum_at_the_last_step(warmup):
    s = Schedule(peak=1.0, total_steps=20, warmup_steps=warmup, kind="cosine", min_ratio=0.1, decay_frac=0.2)
    lrs = [s(step) for step in range(20)]
    assert lrs[-1] == pytest.approx(0.1)
    assert max(lrs) == pytest.approx(1.0) if warmup else lrs[0] == pytest.approx(1.0)
    assert all(a >= b - 1e-12 for a, b in zip(lrs[warmup:], lrs[warmup + 1 :], strict=False))


def test_wsd_reaches_its_minimum_at_the_last_step():
    s = Schedule(peak=1.0, total_steps=20, warmup_steps=2, kind="wsd", min_ratio=0.0, decay_frac=0.25)
    assert s(19) == pytest.approx(0.0) and s(10) == pytest.approx(1.0)


def test_a_warmup_longer_than_the_run_is_an_error():
    with pytest.raises(UserError, match="warmup_tokens: must be at most the run's 1,000 tokens"):
        TrainConfig(tokens=1000, warmup_tokens=2000)
    assert TrainConfig(tokens=1000, warmup_tokens=1000).warmup_tokens == 1000
