"""Checkpoint directories: atomic replacement, self-contained, weights_only loading."""

from __future__ import annotations

import os

import pytest
import torch

from archscale.trainers.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint


def test_save_replace_and_load(tmp_path):
    d = tmp_path / "checkpoint"
    g = torch.Generator().manual_seed(5)
    save_checkpoint(d, {"w": torch.ones(3), "rng": g.get_state(), "step": 1}, {"tokens": 10})
    save_checkpoint(d, {"w": torch.zeros(3), "rng": g.get_state(), "step": 2}, {"tokens": 20})
    state, meta = load_checkpoint(d)
    assert state["step"] == 2 and meta == {"tokens": 20} and torch.equal(state["w"], torch.zeros(3))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]  # no temp or moved-aside dirs left
    restored = torch.Generator()
    restored.set_state(state["rng"])
    assert torch.equal(torch.rand(2, generator=restored), torch.rand(2, generator=g))


def test_interrupted_replace_falls_back_to_the_previous_checkpoint(tmp_path):
    d = tmp_path / "checkpoint"
    save_checkpoint(d, {"step": 1}, {})
    os.rename(d, tmp_path / ".checkpoint.old-123")  # a crash between the two renames
    assert find_checkpoint(d) == tmp_path / ".checkpoint.old-123"
    assert load_checkpoint(d)[0]["step"] == 1


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        load_checkpoint(tmp_path)


def test_loading_refuses_arbitrary_pickles(tmp_path):
    d = tmp_path / "checkpoint"
    save_checkpoint(d, {"step": 1}, {})
    torch.save({"obj": object()}, d / "state.pt")  # not loadable with weights_only=True
    with pytest.raises(Exception):  # noqa: B017 (torch raises UnpicklingError)
        load_checkpoint(d)
