import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archscale.spaces import ArchConfig, count, variants
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
    d_model=st.integers(-4, 300),
    n_heads=st.integers(-1, 20),
    n_kv_heads=st.one_of(st.none(), st.integers(-1, 20)),
    act=st.sampled_from(FFN_ACTIVATIONS + ("bogus",)),
    norm=st.sampled_from(NORMS),
    pos=st.sampled_from(POSITIONS),
    norm_pos=st.sampled_from(NORM_POSITIONS),
    d_ff=st.integers(-3, 400),
    qk=st.booleans(),
)
def test_fuzz_valid_or_clean_value_error(d_model, n_heads, n_kv_heads, act, norm, pos, norm_pos, d_ff, qk):
    try:
        arch = ArchConfig(
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            ffn_activation=act,
            norm=norm,
            position=pos,
            norm_position=norm_pos,
            d_ff=d_ff,
            qk_norm=qk,
        )
    except ValueError as e:
        assert str(e)
        return
    c = count(arch)
    assert c.params > c.non_embedding_params > 0
    assert arch.n_heads % arch.n_kv_heads == 0


# --- the variant table is the one definition -------------------------------------------------


def test_variant_literals_are_the_table_keys():
    from typing import get_args

    from archscale.spaces import variants
    from archscale.spaces.arch import GATED_ACTIVATIONS, field_kind

    assert variants.BY_FIELD["ffn_activation"] is variants.ACTIVATIONS
    for name, table in variants.BY_FIELD.items():
        assert get_args(ArchConfig.model_fields[name].annotation) == tuple(table)
        assert field_kind(name) == ("literal", tuple(table))
    assert (FFN_ACTIVATIONS, NORMS, NORM_POSITIONS, POSITIONS) == tuple(
        tuple(variants.BY_FIELD[f]) for f in ("ffn_activation", "norm", "norm_position", "position")
    )
    assert {"glu", "bilinear", "reglu", "geglu", "swiglu"} <= GATED_ACTIVATIONS
    assert GATED_ACTIVATIONS.isdisjoint({"relu", "gelu", "gelu_tanh", "silu", "relu2"})
    assert {a for a in FFN_ACTIVATIONS if ArchConfig(ffn_activation=a).gated} == GATED_ACTIVATIONS


def test_value_kinds_come_from_the_annotations():
    from archscale.spaces.arch import field_kind, value_problem

    kinds = {name: field_kind(name)[0] for name in ArchConfig.model_fields}
    assert kinds["rope_theta"] == "positive number"
    assert kinds["n_kv_heads"] == kinds["head_dim"] == kinds["t5_max_distance"] == "positive integer"
    assert kinds["qk_norm"] == kinds["bias"] == "bool"
    assert kinds["qkv_conv"] == "non-negative integer"  # 0 = no convolution
    assert kinds["init"] == kinds["position"] == "literal"
    assert "any" not in kinds.values()  # every field's values are checked
    bad = {
        "positive number": [0, -1.5, True, "1e4"],
        "positive integer": [0, 2.5, True, "3"],
        "non-negative integer": [-1, 2.5, True, "0"],
        "bool": [1, "yes"],
        "literal": ["bogus", 3],
    }
    for name, kind in kinds.items():
        assert value_problem(name, getattr(ArchConfig(), name)) is None, name
        for v in bad[kind]:
            problem = value_problem(name, v)
            assert problem is not None and "allowed: " in problem, (name, v)
    assert value_problem("rope_theta", 5e5) is None and value_problem("rope_theta", 3) is None
    assert value_problem("qkv_conv", 0) is None and value_problem("attention_window", None) is None
    assert kinds["n_shared_experts"] == "non-negative integer" and value_problem("n_shared_experts", 0) is None
    assert value_problem("position", "xpos") == f"got 'xpos'; allowed: {', '.join(POSITIONS)}"


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"qk_norm": True, "norm": "none"}, "allowed with norm in {layernorm, rmsnorm}"),
        ({"block": "parallel", "ffn_per_block": 2}, r"allowed values are \[1\], got 2"),
        ({"d_model": 60, "n_heads": 4, "head_dim": 15, "position": "rope"}, "rope needs an even head_dim, got 15"),
        ({"position": "t5_bias", "t5_num_buckets": 1}, "t5_num_buckets: must be >= 2"),
        ({"rope_theta": 0.0}, "rope_theta: got 0.0; allowed: a positive number"),
        ({"n_kv_heads": 0}, "n_kv_heads: got 0; allowed: a positive integer"),
        ({"base_d_model": 64}, r"base_d_model: only read under parametrization in \{mup, completep\}"),
        (
            {"parametrization": "mup", "base_n_layers": 2},
            r"base_n_layers: only read under parametrization in \{completep\}",
        ),
        ({"parametrization": "mup", "base_d_model": 0}, "base_d_model: got 0; allowed: a positive integer"),
    ],
)
def test_table_rules_give_the_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        ArchConfig(**fields)


def test_variant_rules_apply_only_to_their_variant():
    ArchConfig(d_model=60, n_heads=4, head_dim=15, position="alibi")  # odd head_dim is fine without rope
    ArchConfig(block="sequential", ffn_per_block=3)


@pytest.mark.parametrize("position", sorted(variants.POSITIONS))
def test_a_position_codings_fields_are_refused_under_another_coding(position):
    """`Position.fields` is enforced: a field a coding owns keeps its default under every other coding
    (it would never be read, yet change arch_id), and takes any valid value under its owner."""
    facts = variants.POSITIONS[position]
    off_default = {"rope_theta": 5.0e5, "t5_num_buckets": 16, "t5_max_distance": 64}
    assert set(off_default) == {f for p in variants.POSITIONS.values() for f in p.fields}  # every owned field
    refused = 0
    for name, value in off_default.items():
        if name in facts.fields:
            assert getattr(ArchConfig(position=position, **{name: value}), name) == value
        else:
            owner = variants.owners("position", name)[0]
            message = f"{name}: only read under position={owner}, got position={position}; remove {name}"
            with pytest.raises(ValueError, match=message):
                ArchConfig(position=position, **{name: value})
            refused += 1
            assert ArchConfig(position=position, **{name: ArchConfig.model_fields[name].default}).position == position
    assert refused == len(off_default) - len(facts.fields) > 0  # no coding owns them all: the refusal ran


def test_embedding_scale_is_its_own_choice_and_final_norm_unchanged():
    """Embedding scale is an explicit field, 1 by default for every position coding; sqrt_d_model scales
    by sqrt(d_model), or by sqrt(base_d_model) under mup so it does not grow with width. A final norm
    for pre and sandwich, as before."""
    from archscale.spaces import variants

    for name in POSITIONS:
        assert variants.embedding_scale(ArchConfig(d_model=64, position=name)) == 1.0
        assert variants.embedding_scale(ArchConfig(d_model=64, position=name, embedding_scale="sqrt_d_model")) == 8.0
    mup = ArchConfig(d_model=256, n_heads=4, parametrization="mup", base_d_model=64, embedding_scale="sqrt_d_model")
    assert variants.embedding_scale(mup) == 8.0
    old_norms, old_positions = ("layernorm", "rmsnorm", "none"), ("pre", "post", "sandwich")
    finals = {(n, p) for n in old_norms for p in old_positions if ArchConfig(norm=n, norm_position=p).has_final_norm}
    assert finals == {(n, p) for n in ("layernorm", "rmsnorm") for p in ("pre", "sandwich")}


def test_parametrization_fields_fill_their_base_shapes_and_leave_counts_alone():
    from archscale.spaces import count, transfer

    standard = ArchConfig(d_model=128, n_heads=4, n_layers=4, d_ff=512)
    assert standard.parametrization == "standard" and standard.base_d_model is None and standard.base_n_layers is None
    mup = ArchConfig(**{**standard.to_dict(), "parametrization": "mup"})
    assert (mup.base_d_model, mup.base_n_layers) == (128, None)  # omitted: the model is its own base
    completep = ArchConfig(**{**standard.to_dict(), "parametrization": "completep", "base_n_layers": 2})
    assert (completep.base_d_model, completep.base_n_layers) == (128, 2)
    assert count(standard) == count(mup) == count(completep)  # multipliers are not parameters
    assert "completep" in completep.label and "mup" not in standard.label
    assert transfer.residual_scale(completep) == 0.5 and transfer.residual_scale(mup) == 1.0
    assert transfer.width_multipliers(standard) == {"d_model": 1.0, "attn": 1.0, "d_ff": 1.0}


def test_width_multipliers_are_per_dimension():
    from archscale.spaces import transfer

    # fixed head_dim 16 (the base's, omitted); d_ff's base is base_d_model x this model's own FFN ratio
    arch = ArchConfig(
        d_model=256, n_heads=8, head_dim=16, d_ff=1024, ffn_activation="swiglu", parametrization="mup", base_d_model=64
    )
    m = transfer.width_multipliers(arch)
    assert m["d_model"] == 4.0
    assert m["attn"] == 8 * 16 / 64
    assert m["d_ff"] == pytest.approx(4.0)  # against the base's own d_ff: 64 x this model's ratio 1024 / 256
    assert transfer.output_multiplier(arch) == 0.25 and transfer.attention_scale(arch) == 1 / 4  # head_dim = base
    hidden = transfer.PARAMETER_ROLES["hidden_d_ff"]
    assert hidden.lr(arch) == pytest.approx(1 / m["d_ff"]) and hidden.weight_decay(arch) == pytest.approx(m["d_ff"])
    assert hidden.init_std(arch) == pytest.approx(m["d_ff"] ** -0.5)
    assert transfer.PARAMETER_ROLES["embedding"].lr(arch) == 1.0


@pytest.mark.parametrize(
    "fields,covered",
    [
        ({}, True),
        ({"norm_position": "post"}, False),
        ({"norm_position": "sandwich"}, False),
        ({"norm": "none"}, False),
        ({"position": "none"}, False),
        ({"block": "parallel", "position": "rope"}, True),
    ],
)
def test_parametrization_caveat_names_uncovered_combinations(fields, covered):
    for p in ("mup", "completep"):
        caveat = ArchConfig(parametrization=p, **fields).parametrization_caveat
        assert (caveat is None) == covered, caveat
        if not covered:
            assert next(iter(fields.values())) in caveat
    assert ArchConfig(**fields).parametrization_caveat is None  # standard makes no transfer claim


# The fields every recorded arch_id hashes. A field added to ArchConfig after ids were first recorded
# must be in `ID_OMITTED_AT_DEFAULT` (left out of the hash at its default), or every architecture
# already in a results directory would get a new id and stop matching its replicas and resumes.
ID_FIELDS = {
    *("vocab_size", "seq_len", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_activation", "d_ff"),
    *("norm", "norm_position", "qk_norm", "position", "rope_theta", "t5_num_buckets", "t5_max_distance"),
    *("block", "ffn_per_block", "tie_embeddings", "bias", "init", "embedding_scale", "parametrization"),
    *("base_d_model", "base_n_layers", "zero_init"),
}


def test_a_new_field_is_left_out_of_arch_id_at_its_default():
    from archscale.spaces.arch import ID_OMITTED_AT_DEFAULT

    added = set(ArchConfig.model_fields) - ID_FIELDS
    assert added == set(ID_OMITTED_AT_DEFAULT), (
        f"fields {sorted(added - set(ID_OMITTED_AT_DEFAULT))} are new: add them to spaces/arch.py's "
        "ID_OMITTED_AT_DEFAULT so recorded arch_ids hold"
    )
    assert ArchConfig().arch_id == "3945d88331da"  # the id recorded for the default architecture
    assert ArchConfig(qkv_conv=3).arch_id != ArchConfig().arch_id  # off its default, an omitted field counts
