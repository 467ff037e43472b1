import json

import pytest
from hypothesis import given, settings, strategies as st

from archscale.spaces import ArchConfig, count
from archscale.spaces.arch import FFN_ACTIVATIONS, NORM_POSITIONS, NORMS, POSITIONS


def test_round_trip_dict_and_json():
    arch = ArchConfig(d_model=96, n_heads=6, n_kv_heads=2, ffn_activation="swiglu", position="alibi")
    assert ArchConfig(**arch.to_dict()) == arch
    assert ArchConfig(**json.loads(arch.to_json())) == arch
    assert arch.head_dim == 16


def test_frozen():
    with pytest.raises(ValueError):
        ArchConfig().d_model = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"n_heads": 4, "n_kv_heads": 3}, "n_kv_heads"),
        ({"d_model": 60, "n_heads": 4, "head_dim": 15, "position": "rope"}, "head_dim"),
        ({"d_model": 65, "n_heads": 4}, "head_dim"),
        ({"ffn_activation": "swish"}, "ffn_activation"),
        ({"norm": "batchnorm"}, "norm"),
        ({"position": "xpos"}, "position"),
        ({"block": "parallel", "ffn_per_block": 2}, "ffn_per_block"),
        ({"qk_norm": True, "norm": "none"}, "qk_norm"),
        ({"d_ff": 0}, "d_ff"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_impossible_combinations_name_the_field(fields, field):
    with pytest.raises(ValueError, match=field):
        ArchConfig(**fields)


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match="allowed values are \\[1, 2, 4\\]"):
        ArchConfig(n_heads=4, n_kv_heads=3)


def test_from_file_errors_name_the_file(tmp_path):
    from archscale.spaces import SpaceError

    p = tmp_path / "a.yaml"
    p.write_text("d_model: 64\nn_heads: 4\nffn_activation: swish\n")
    with pytest.raises(SpaceError, match=r"a\.yaml: .*ffn_activation"):
        ArchConfig.from_file(p)


@settings(max_examples=200, deadline=None)
@given(
    d_model=st.integers(-4, 300), n_heads=st.integers(-1, 20), n_kv_heads=st.one_of(st.none(), st.integers(-1, 20)),
    act=st.sampled_from(FFN_ACTIVATIONS + ("bogus",)), norm=st.sampled_from(NORMS), pos=st.sampled_from(POSITIONS),
    norm_pos=st.sampled_from(NORM_POSITIONS), d_ff=st.integers(-3, 400), qk=st.booleans(),
)
def test_fuzz_valid_or_clean_value_error(d_model, n_heads, n_kv_heads, act, norm, pos, norm_pos, d_ff, qk):
    try:
        arch = ArchConfig(d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, ffn_activation=act, norm=norm,
                          position=pos, norm_position=norm_pos, d_ff=d_ff, qk_norm=qk)
    except ValueError as e:
        assert str(e)
        return
    c = count(arch)
    assert c.params > c.non_embedding_params > 0
    assert arch.n_heads % arch.n_kv_heads == 0
