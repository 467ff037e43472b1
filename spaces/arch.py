"""`ArchConfig`: one decoder-only transformer, described completely and validated.

Every architectural knob lives here and nowhere else; the model in `archscale.trainers` is built
from it and `archscale.spaces.count` counts it. The config is frozen and round-trips through
`to_dict()` / `ArchConfig(**d)` and JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator

from archscale.spaces import transfer, variants

# The variant axes' allowed values are the keys of the tables in `variants.py` (one definition):
# `Literal[tuple]` is `Literal[*keys]` at runtime, which is what pydantic validates against.
FFNActivation = Literal[tuple(variants.ACTIVATIONS)]
FFNType = Literal[tuple(variants.FFN_TYPES)]
Norm = Literal[tuple(variants.NORMS)]
NormPosition = Literal[tuple(variants.NORM_POSITIONS)]
Position = Literal[tuple(variants.POSITIONS)]
Block = Literal[tuple(variants.BLOCKS)]
EmbeddingScale = Literal[tuple(variants.EMBEDDING_SCALES)]
Parametrization = Literal[tuple(variants.PARAMETRIZATIONS)]
Init = Literal["normal", "depth_scaled"]

FFN_ACTIVATIONS: tuple[str, ...] = get_args(FFNActivation)
FFN_TYPES: tuple[str, ...] = get_args(FFNType)
GATED_ACTIVATIONS: frozenset[str] = frozenset(name for name, a in variants.ACTIVATIONS.items() if a.gated)
NORMS: tuple[str, ...] = get_args(Norm)
NORM_POSITIONS: tuple[str, ...] = get_args(NormPosition)
POSITIONS: tuple[str, ...] = get_args(Position)
BLOCKS: tuple[str, ...] = get_args(Block)
INITS: tuple[str, ...] = get_args(Init)
EMBEDDING_SCALES: tuple[str, ...] = get_args(EmbeddingScale)
PARAMETRIZATIONS: tuple[str, ...] = get_args(Parametrization)


class _NonNegative:
    """Annotation marker: an integer field that may be 0 (`field_kind` reads it)."""

    def __repr__(self) -> str:
        return "NON_NEGATIVE"


NON_NEGATIVE = _NonNegative()

# Fields added after arch_ids were first recorded: left out of `arch_id` while they hold their
# default, so an architecture that does not use them keeps the id it always had.
ID_OMITTED_AT_DEFAULT: tuple[str, ...] = (
    "ffn_type",
    *variants.MOE_FIELDS,
    "attention_window",
    "global_every",
    "qkv_conv",
    "base_head_dim",
    "base_d_ff",
    "output_mult",
    "input_mult",
    "attn_mult",
)


class ArchConfig(BaseModel):
    """A decoder-only transformer. Invalid combinations raise a `ValueError` naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    vocab_size: int = 256
    seq_len: int = 128  # training context; learned positions cannot run longer
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int | None = None  # None = n_heads (MHA); 1 = MQA; in between = GQA
    head_dim: int | None = None  # None = d_model // n_heads
    ffn_activation: FFNActivation = "gelu"
    d_ff: int = 256  # hidden width; gated activations have two d_model x d_ff input matrices
    # moe: every FFN sublayer is a mixture of experts (spaces/variants.py `FFN_TYPES`); the fields
    # below are read only then and must stay unset (None) under dense; omitted ones are filled in
    ffn_type: FFNType = "dense"
    n_experts: int | None = None  # routed experts per FFN sublayer; 8 when omitted
    experts_top_k: int | None = None  # routed experts each token uses (softmax top-k), <= n_experts; 2 when omitted
    n_shared_experts: Annotated[int | None, NON_NEGATIVE] = None  # experts every token uses (DeepSeekMoE); 0
    expert_d_ff: int | None = None  # each expert's hidden width; d_ff when omitted
    # each expert takes at most ceil(factor x tokens x top_k / n_experts) tokens of a batch, by position
    # (earliest first, so dropping stays causal); the rest skip it. None = dropless (no token dropped)
    expert_capacity_factor: float | None = None
    norm: Norm = "layernorm"
    norm_position: NormPosition = "pre"  # sandwich = pre-norm plus a norm on the sublayer output
    qk_norm: bool = False  # normalise queries and keys per head (same norm kind as `norm`)
    position: Position = "learned"
    rope_theta: float = 10000.0
    t5_num_buckets: int = 32  # T5 relative bias: log-spaced distance buckets, shared by all layers
    t5_max_distance: int = 128
    # sliding-window attention: a query sees itself and the attention_window - 1 tokens before it;
    # None = full causal attention in every layer
    attention_window: int | None = None
    # with a window, layers i (0-based) with (i + 1) % global_every == 0 keep full causal attention
    # (2: layers 1, 3, 5, ...); 1 = every layer global; None = no global layer. Read only with a window.
    global_every: int | None = None
    # Primer (So et al. 2021): a depthwise causal convolution of this kernel size over time, one kernel per
    # channel, after each of the Q, K and V projections; 0 = none
    qkv_conv: Annotated[int, NON_NEGATIVE] = 0
    block: Block = "sequential"  # parallel = attention and FFN read the same input (GPT-J, PaLM)
    ffn_per_block: int = 1  # FFN sublayers after each attention sublayer (sequential blocks)
    tie_embeddings: bool = True
    bias: bool = False  # biases in every linear layer and LayerNorm
    init: Init = "depth_scaled"  # normal: N(0, 0.02); depth_scaled: residual outputs / sqrt(2 L) (not under completep)
    # token embeddings x 1 or x sqrt(d_model) (the original transformer's, with its sinusoidal positions);
    # a choice of its own for every position coding. Under mup / completep sqrt_d_model means sqrt(base_d_model).
    embedding_scale: EmbeddingScale = "none"
    # how init, multipliers and per-group lr / weight decay / Adam eps scale with width (mup) and also
    # depth (completep), so hyperparameters tuned at the base shapes transfer; see docs/transfer.md
    parametrization: Parametrization = "standard"
    base_d_model: int | None = None  # mup / completep: the width hyperparameters were tuned at; None = d_model
    base_n_layers: int | None = None  # completep: the depth they were tuned at; None = n_layers
    # mup / completep: the base's head_dim (anchors the attention scale) and d_ff (an expert's under moe;
    # the down projection's multiplier); None = this model's head_dim, and base_d_model x its FFN ratio
    base_head_dim: int | None = None
    base_d_ff: int | None = None
    # tunable forward multipliers, 1 = none, under every parametrisation (docs/transfer.md): the
    # readout's logits (microsoft/mup MuReadout `output_mult`), the embedding output (nanoGPT-mup
    # `mup_input_alpha`) and the attention logits (microsoft/mup `attn_mult`, here linear, not sqrt)
    output_mult: float = 1.0
    input_mult: float = 1.0
    attn_mult: float = 1.0
    zero_init: bool = False  # start the query projections and an untied readout at zero (μP's option)

    @model_validator(mode="before")
    @classmethod
    def _fill_derived(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("n_kv_heads") is None:
            data["n_kv_heads"] = data.get("n_heads", 4)
        if data.get("head_dim") is None:
            d_model, n_heads = data.get("d_model", 64), data.get("n_heads", 4)
            if isinstance(d_model, int) and isinstance(n_heads, int) and n_heads > 0:
                if d_model % n_heads:
                    raise ValueError(
                        f"head_dim: omitted, so it is derived as d_model / n_heads, but d_model={d_model} "
                        f"is not divisible by n_heads={n_heads}; give head_dim or make d_model a multiple of n_heads"
                    )
                data["head_dim"] = d_model // n_heads
        # base shapes mean something only under mup / completep; there, omitted = this model's own
        width, depth = _transfers(data.get("parametrization", "standard"))
        if width and data.get("base_d_model") is None:
            data["base_d_model"] = data.get("d_model", 64)
        if depth and data.get("base_n_layers") is None:
            data["base_n_layers"] = data.get("n_layers", 2)
        # the FFN kind's omitted fields take its defaults (an unknown kind is pydantic's to report)
        ffn_type = data.get("ffn_type", "dense")
        facts = variants.FFN_TYPES.get(ffn_type) if isinstance(ffn_type, str) else None
        if facts is not None:
            for name, default in facts.defaults.items():
                if data.get(name) is None:
                    data[name] = default
            if "expert_d_ff" in facts.fields and data.get("expert_d_ff") is None:
                data["expert_d_ff"] = data.get("d_ff", 256)  # an expert is as wide as the dense FFN would be
        return data

    @model_validator(mode="after")
    def _check(self) -> ArchConfig:
        for name in _numeric_fields():  # pydantic checked literals and bools; numbers must be positive
            problem = value_problem(name, getattr(self, name))
            if problem is not None:
                raise ValueError(f"{name}: {problem}")
        if self.n_heads % self.n_kv_heads:
            allowed = [k for k in range(1, self.n_heads + 1) if self.n_heads % k == 0]
            raise ValueError(
                f"n_kv_heads: must divide n_heads={self.n_heads}; allowed values are {allowed}, got {self.n_kv_heads}"
            )
        problem = variants.POSITIONS[self.position].check(self)
        if problem is not None:
            raise ValueError(problem)
        if self.qk_norm and not variants.NORMS[self.norm].normalises:
            normalising = ", ".join(name for name, n in variants.NORMS.items() if n.normalises)
            raise ValueError(
                f"qk_norm: needs a norm kind to normalise with; allowed with norm in {{{normalising}}}, "
                f"got norm={self.norm}"
            )
        for name, rule in (
            ("base_d_model", "width"),
            ("base_head_dim", "width"),
            ("base_d_ff", "width"),
            ("base_n_layers", "depth"),
        ):
            if getattr(self, name) is not None and not getattr(variants.PARAMETRIZATIONS[self.parametrization], rule):
                users = ", ".join(k for k, p in variants.PARAMETRIZATIONS.items() if getattr(p, rule))
                raise ValueError(
                    f"{name}: only read under parametrization in {{{users}}}, got parametrization="
                    f"{self.parametrization}; remove {name} or change parametrization"
                )
        if self.global_every is not None and self.attention_window is None:
            raise ValueError(
                "global_every: only read with attention_window (it says which layers keep full attention); "
                "remove global_every or set attention_window"
            )
        problem = unread_field(self)
        if problem is not None:
            raise ValueError(problem)
        if self.ffn_type == "moe" and self.experts_top_k > self.n_experts:
            raise ValueError(
                f"experts_top_k: at most n_experts={self.n_experts}; allowed values are "
                f"{list(range(1, self.n_experts + 1))}, got {self.experts_top_k}"
            )
        most = variants.BLOCKS[self.block].max_ffn_per_block
        if most is not None and self.ffn_per_block > most:
            raise ValueError(
                f"ffn_per_block: a {self.block} block holds at most {most} FFN sublayer(s); "
                f"allowed values are {list(range(1, most + 1))}, got {self.ffn_per_block}"
            )
        return self

    # --- derived facts -------------------------------------------------------------------
    @property
    def gated(self) -> bool:
        return variants.ACTIVATIONS[self.ffn_activation].gated

    @property
    def parametrization_caveat(self) -> str | None:
        """Why this parametrisation's rules are not derived for this architecture (it still trains), or None."""
        return transfer.parametrization_caveat(self)

    def windowed(self, layer: int) -> bool:
        """Whether layer `layer` (0-based) uses the sliding window; the others attend to the whole causal past."""
        return variants.layer_windowed(self, layer)

    @property
    def has_final_norm(self) -> bool:
        """Pre and sandwich stacks end with a norm before the LM head; post-norm output is already normed."""
        return variants.NORMS[self.norm].normalises and variants.NORM_POSITIONS[self.norm_position].final_norm

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def arch_id(self) -> str:
        """A short stable hash of every field: equal for seed replicas of one architecture. Fields in
        `ID_OMITTED_AT_DEFAULT` are left out while at their default, so ids recorded before they existed hold."""
        d = self.to_dict()
        for name in ID_OMITTED_AT_DEFAULT:
            if d[name] == ArchConfig.model_fields[name].default:
                del d[name]
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """A short human name: the axes people compare most."""
        kv = "" if self.n_kv_heads == self.n_heads else f"·kv{self.n_kv_heads}"
        p = "" if self.parametrization == "standard" else f"·{self.parametrization}"
        window = "" if self.attention_window is None else f"·w{self.attention_window}"
        window += f"/g{self.global_every}" if window and self.global_every is not None else ""
        conv = f"·conv{self.qkv_conv}" if self.qkv_conv else ""
        attention = f"h{self.n_heads}{kv}{window}{conv}"
        moe = ""
        if self.ffn_type == "moe":  # ·moe8x2 = top-2 of 8 routed experts; +1s = one shared expert
            shared = f"+{self.n_shared_experts}s" if self.n_shared_experts else ""
            moe = f"·moe{self.n_experts}x{self.experts_top_k}{shared}"
        return f"{self.ffn_activation}{moe}·{self.position}·{self.norm}-{self.norm_position}·{attention}{p}"

    @classmethod
    def from_file(cls, path: str) -> ArchConfig:
        """Load an architecture from a YAML or JSON file of ArchConfig fields."""
        from pydantic import ValidationError

        from archscale.spaces.errors import load_mapping, validation_error

        data = load_mapping(path)
        if "arch" in data and isinstance(data["arch"], dict):
            data = data["arch"]
        try:
            return cls(**data)
        except ValidationError as e:  # rendered in the project's one-line form (spaces/errors.py)
            raise validation_error(e, path, allowed_keys=lambda loc: ", ".join(cls.model_fields)) from None


def unread_field(arch: ArchConfig) -> str | None:
    """The error for a field owned by a variant (an FFN kind's or a position coding's `fields`) set
    off its default while another variant of that axis is chosen, or None. Such a field is never read,
    yet it would change `arch_id` and the trial row, so it is refused (`variants.FIELD_OWNERS`)."""
    for axis, table in variants.FIELD_OWNERS.items():
        chosen = getattr(arch, axis)
        for variant, facts in table.items():
            for name in facts.fields:
                if name not in table[chosen].fields and getattr(arch, name) != ArchConfig.model_fields[name].default:
                    return (
                        f"{name}: only read under {axis}={variant}, got {axis}={chosen}; "
                        f"remove {name} or set {axis}: {variant}"
                    )
    return None


def _transfers(parametrization: Any) -> tuple[bool, bool]:
    """(width rules, depth rules) of a parametrisation name; (False, False) for an unknown one (pydantic reports it)."""
    p = variants.PARAMETRIZATIONS.get(parametrization) if isinstance(parametrization, str) else None
    return (p.width, p.depth) if p else (False, False)


def value_problem(name: str, value: Any) -> str | None:
    """Why `value` can never be ArchConfig field `name`, whatever the other fields are; None if it can.

    The kind of value comes from the field's annotation (`field_kind`): one of a `Literal`'s values
    (the variant tables' keys), a bool, a positive integer, a non-negative integer (an integer field
    annotated with `NON_NEGATIVE`), or a positive number (or None, where the field is optional).
    The message lists what is allowed. Space files check their values with this too.
    """
    kind, allowed = field_kind(name)
    if value is None and type(None) in get_args(ArchConfig.model_fields[name].annotation):
        return None  # an optional field left unset (n_kv_heads and head_dim are filled in; base shapes may stay None)
    if kind == "literal":
        ok = value in allowed
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "positive integer":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    elif kind == "non-negative integer":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif kind == "positive number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    else:
        return None
    return None if ok else f"got {value!r}; allowed: {', '.join(map(str, allowed))}"


@functools.cache
def _numeric_fields() -> tuple[str, ...]:
    numeric = ("positive integer", "non-negative integer", "positive number")
    return tuple(name for name in ArchConfig.model_fields if field_kind(name)[0] in numeric)


@functools.cache
def field_kind(name: str) -> tuple[str, tuple[Any, ...]]:
    """The kind of value ArchConfig field `name` holds, from its annotation, and what to list as allowed:
    ("literal", values), ("bool", ...), ("positive integer", ...) for `int` and `int | None` (None is
    filled in before validation), ("non-negative integer", ...) for one annotated with `NON_NEGATIVE`,
    ("positive number", ...) for `float`, or ("any", ()) otherwise."""
    annotation = ArchConfig.model_fields[name].annotation
    non_negative = NON_NEGATIVE in ArchConfig.model_fields[name].metadata
    if get_origin(annotation) is Literal:
        return "literal", get_args(annotation)
    args = tuple(a for a in get_args(annotation) if a is not type(None))
    if len(args) == 1:  # X | None
        annotation = args[0]
    if annotation is bool:
        return "bool", ("true", "false")
    if annotation is int and non_negative:
        return "non-negative integer", ("a non-negative integer (0 allowed)",)
    if annotation is int:
        return "positive integer", ("a positive integer",)
    if annotation is float:
        return "positive number", ("a positive number",)
    return "any", ()
