"""Scaling-study grids are planned (solved and counted) before anything runs; no Ray needed."""

import pytest
import yaml

from archscale.search.study import load_study_file, plan_grid
from archscale.spaces import SpaceError

BASE = {"vocab_size": 256, "seq_len": 64, "n_layers": 2, "n_heads": 2}
ARCHS = {
    "a": {"ffn_activation": "relu", "position": "sinusoidal"},
    "b": {"ffn_activation": "swiglu", "position": "rope"},
}


def test_isoflop_grid_spends_the_same_compute_at_every_size():
    spec = load_study_file(
        {"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4, 4e4, 8e4]}, "isoflop": [1e11, 3e11]}
    )
    points = plan_grid(spec)
    assert len(points) == 2 * 3 * 2
    for p in points:
        compute = p["tokens"] * p["counts"]["flops_per_token"]
        assert compute == pytest.approx(1e11, rel=1e-3) or compute == pytest.approx(3e11, rel=1e-3)
        assert p["counts"]["params"] == pytest.approx(p["size"], rel=0.02)


def test_sizes_by_tokens_and_seeds():
    spec = load_study_file(
        {
            "base": BASE,
            "architectures": ARCHS,
            "sizes": {"values": [2e4, 4e4]},
            "tokens": [1000, 2000],
            "seeds": 2,
            "first_seed": 3,
        }
    )
    points = plan_grid(spec)
    assert len(points) == 2 * 2 * 2 * 2 and {p["seed"] for p in points} == {3, 4}
    spec = load_study_file({"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4]}, "tokens_per_param": 5})
    assert all(p["tokens"] == 5 * p["counts"]["params"] for p in plan_grid(spec))


@pytest.mark.parametrize(
    "data,key",
    [
        ({"architectures": ARCHS, "sizes": {"values": [2e4]}}, "exactly one of tokens"),
        ({"sizes": {"values": [2e4]}, "tokens": [1]}, "architectures"),
        ({"architectures": ARCHS, "sizes": {"values": []}, "tokens": [1]}, "sizes.values"),
        ({"architectures": ARCHS, "sizes": {"values": [1]}, "tokens": [1], "base": BASE}, "architectures.a"),
    ],
)
def test_bad_study_files(tmp_path, data, key):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(SpaceError, match=key):
        plan_grid(load_study_file(p), p)
