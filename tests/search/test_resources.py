"""GPU fractions from the analytic memory estimate (the GPU itself cannot exist here)."""

from archscale.search.resources import CUDA_CONTEXT_BYTES, gpu_fraction_for, training_memory_bytes
from archscale.spaces import ArchConfig, count


def config(d_model, batch=32):
    arch = ArchConfig(d_model=d_model, n_heads=4, d_ff=4 * d_model, n_layers=4, seq_len=256)
    return arch, {"arch": arch.to_dict(), "train": {"batch_size": batch}}


def test_estimate_counts_weights_optimizer_and_activations():
    arch, _ = config(128)
    est = training_memory_bytes(arch, 32)
    assert est > 16 * count(arch).params + CUDA_CONTEXT_BYTES
    assert training_memory_bytes(arch, 64) > est  # activations grow with the batch


def test_fractions_grow_with_size_and_are_capped():
    fractions = [gpu_fraction_for(config(d)[1], gpu_memory_gb=24) for d in (64, 1024, 4096, 8192)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert 0 < fractions[0] <= 0.125  # tiny models share a GPU many ways
    assert all((f * 16).is_integer() for f in fractions)
    assert gpu_fraction_for({"arch": None}) == 0.0  # an infeasible trial asks for no GPU
