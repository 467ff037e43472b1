"""A space file's rules that span fields: names, values, `when` order, and fields read only under some choices.

Run by `spaces.space.space_from_dict` after the schema has parsed; each failure raises a
`SpaceError` naming the file, the key and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from archscale.spaces import variants
from archscale.spaces.arch import ArchConfig, value_problem
from archscale.spaces.errors import SpaceError
from archscale.spaces.schema import BUDGET_AXES, Axis, SpaceFile, as_list
from archscale.spaces.shape_rule import conflicts
from archscale.spaces.training import SEARCHABLE_TRAIN_FIELDS
from archscale.spaces.training import value_problem as train_value_problem


def check_semantics(spec: SpaceFile, path: str | Path | None) -> None:
    fields = ArchConfig.model_fields
    seen: list[str] = []
    for name, axis in spec.arch.items():
        key = f"arch.{name}"
        if name not in fields:
            raise SpaceError(path, key, f"not an ArchConfig field; allowed: {', '.join(fields)}")
        _check_axis_values(path, key, name, axis)
        _check_when(path, key, axis, seen)
        seen.append(name)
    if spec.shape is not None:  # n_heads follows d_model under a rule: no fixed n_heads to divide
        _check_shape(spec, path)
    else:
        _check_kv_heads(spec, path)
    _check_position_rules(spec, path)
    _check_base_shapes(spec, path)
    _check_owned_fields(spec, path)
    _check_global_every(spec, path)
    if spec.budget is not None:
        for name in spec.budget.free:
            if name in spec.arch:
                raise SpaceError(
                    path, f"arch.{name}", "is solved by the budget (budget.free); remove it from arch or from free"
                )
        for name in BUDGET_AXES:
            axis = getattr(spec.budget, name)
            if axis is not None:
                for v in _axis_values(axis):
                    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                        raise SpaceError(path, f"budget.{name}", f"must be positive numbers, got {v!r}")
                _check_when(path, f"budget.{name}", axis, seen)
    for name, axis in spec.train.items():
        key = f"train.{name}"
        if name not in SEARCHABLE_TRAIN_FIELDS:
            raise SpaceError(
                path, key, f"not a searchable training setting; allowed: {', '.join(SEARCHABLE_TRAIN_FIELDS)}"
            )
        for v in _axis_values(axis) + ([axis.default] if axis.default is not None else []):
            problem = train_value_problem(name, v)
            if problem is not None:
                raise SpaceError(path, key, problem)
        _check_when(path, key, axis, seen)
    for i, c in enumerate(spec.constraints):
        for name, v in c.forbid.items():
            if name not in fields:
                raise SpaceError(
                    path, f"constraints.{i}.forbid.{name}", f"not an ArchConfig field; allowed: {', '.join(fields)}"
                )
            _check_values(path, f"constraints.{i}.forbid.{name}", name, as_list(v))


def _check_shape(spec: SpaceFile, path: str | Path | None) -> None:
    """A shape rule decides the fields it sets and the budget's free dimensions: the file may not give them."""
    given = {f"budget.{k}" for k in spec.budget.model_fields_set} if spec.budget is not None else set()
    problem = conflicts(spec.shape, spec.arch, {k.removeprefix("budget.") for k in given})
    if problem is not None:
        key, message = problem
        raise SpaceError(path, key if key.startswith("arch.") else f"budget.{key}", message)


def _possible_values(spec: SpaceFile, name: str) -> list[Any] | None:
    """Every value arch field `name` can take in this space, or None when that is not known at load
    (an axis with `when`, or a range too wide to list): a field the space leaves out has its default."""
    axis = spec.arch.get(name)
    if axis is None:
        return [ArchConfig.model_fields[name].default]
    if axis.when is not None:
        return None
    if axis.low is not None and axis.is_int_range and int(axis.high) - int(axis.low) <= 4096:
        return list(range(int(axis.low), int(axis.high) + 1, int(axis.step or 1)))
    return _axis_values(axis) if axis.low is None else None


def _check_kv_heads(spec: SpaceFile, path: str | Path | None) -> None:
    """n_kv_heads must divide n_heads: sampling narrows the KV-head choices to the divisors of the
    n_heads drawn, so refuse a space where some n_heads value leaves none of them."""
    if "n_kv_heads" not in spec.arch:
        return  # derived: = n_heads
    heads, kv = _possible_values(spec, "n_heads"), _possible_values(spec, "n_kv_heads")
    if heads is None or kv is None or None in kv:
        return
    for h in heads:
        if not any(h % k == 0 for k in kv):
            divisors = [k for k in range(1, h + 1) if h % k == 0]
            raise SpaceError(
                path,
                "arch.n_kv_heads",
                f"must divide n_heads, but with n_heads={h} none of {kv} does; allowed with n_heads={h}: {divisors}",
            )


def _check_position_rules(spec: SpaceFile, path: str | Path | None) -> None:
    """A position coding's rule on fields the space fixes (RoPE needs an even head_dim): refuse a
    space that can sample that coding with a fixed value it refuses, or whose solver grid
    (`budget.head_dim_multiple`) gives head dimensions it refuses, naming the rule."""
    positions = _possible_values(spec, "position")
    if positions is None:
        return
    defaults = {name: f.default for name, f in ArchConfig.model_fields.items()}
    fixed = {n: a.value for n, a in spec.arch.items() if a.value is not None and a.when is None}
    solved_head_dim = spec.budget is not None and "d_model" in spec.budget.free and "head_dim" not in spec.arch
    for position in positions:
        rule = variants.POSITIONS[position].check
        probes = [("arch", {})]
        if solved_head_dim:  # the solver's head_dim is a multiple of head_dim_multiple
            probes.append(("budget.head_dim_multiple", {"head_dim": spec.budget.head_dim_multiple}))
        for where, extra in probes:
            try:
                problem = rule(SimpleNamespace(**{**defaults, **fixed, "position": position, **extra}))
            except (TypeError, AttributeError):  # the rule reads a field the space leaves to be derived or solved
                continue
            field = (problem or "").split(":")[0]
            if problem is None or (where == "arch" and field not in fixed):
                continue
            key = f"arch.{field}" if where == "arch" else where
            fix = field if where == "arch" else "head_dim_multiple (an even one)"
            raise SpaceError(
                path,
                key,
                f"{problem.split(':', 1)[1].strip()} (position={position} can be sampled); fix {fix}, or position",
            )


def _check_base_shapes(spec: SpaceFile, path: str | Path | None) -> None:
    """The base shapes (base_d_model, base_head_dim, base_d_ff, base_n_layers) only mean something under
    the parametrisations that read them: refuse a space where one is set for a parametrisation it could
    be sampled with that ignores it."""
    p_axis = spec.arch.get("parametrization")
    possible = _axis_values(p_axis) if p_axis is not None else ["standard"]
    base_shapes = {"base_d_model": "width", "base_head_dim": "width", "base_d_ff": "width", "base_n_layers": "depth"}
    for name, rule in base_shapes.items():
        axis = spec.arch.get(name)
        if axis is None:
            continue
        when = as_list((axis.when or {}).get("parametrization", possible))
        ignoring = [p for p in possible if p in when and not getattr(variants.PARAMETRIZATIONS.get(p), rule, True)]
        if ignoring:
            readers = [k for k, v in variants.PARAMETRIZATIONS.items() if getattr(v, rule)]
            raise SpaceError(
                path,
                f"arch.{name}",
                f"only read under parametrization in {{{', '.join(readers)}}}, but this space can sample "
                f"parametrization={ignoring[0]}; fix parametrization, or add when: {{parametrization: {readers}}}",
            )


def _check_owned_fields(spec: SpaceFile, path: str | Path | None) -> None:
    """A field an FFN kind or a position coding owns (`variants.FIELD_OWNERS`) is read only under its
    owner, and `ArchConfig` refuses it off its default elsewhere: refuse a space that can sample it
    off its default together with another variant, so the mistake shows when the file is loaded
    rather than as infeasible trials."""
    for axis in variants.FIELD_OWNERS:
        axis_spec = spec.arch.get(axis)
        possible = _axis_values(axis_spec) if axis_spec is not None else [ArchConfig.model_fields[axis].default]
        for name, field_axis in spec.arch.items():
            readers = variants.owners(axis, name)
            default = ArchConfig.model_fields[name].default
            if not readers or all(v == default for v in _axis_values(field_axis)):
                continue
            when = as_list((field_axis.when or {}).get(axis, possible))
            inactive_off_default = field_axis.default is not None and field_axis.default != default
            ignoring = [v for v in possible if v not in readers and (v in when or inactive_off_default)]
            if ignoring:
                raise SpaceError(
                    path,
                    f"arch.{name}",
                    f"only read under {axis} in {{{', '.join(readers)}}}, but this space can sample "
                    f"{axis}={ignoring[0]}; fix {axis}, or add when: {{{axis}: [{', '.join(readers)}]}}",
                )


def _check_global_every(spec: SpaceFile, path: str | Path | None) -> None:
    """global_every is only read with a window: refuse a space that can sample it with attention_window
    null (a `when` naming attention_window is true only for a window, since null is never a known value)."""
    axis = spec.arch.get("global_every")
    if axis is None or "attention_window" in (axis.when or {}):
        return
    window = spec.arch.get("attention_window")
    if window is None or None in _axis_values(window):
        sizes = [v for v in (_axis_values(window) if window is not None else []) if v is not None] or [64]
        raise SpaceError(
            path,
            "arch.global_every",
            "only read with attention_window, which this space can leave null (full attention); "
            f"add when: {{attention_window: {sizes}}} or fix attention_window",
        )


def _axis_values(axis: Axis) -> list[Any]:
    if axis.value is not None:
        return [axis.value]
    if axis.choices is not None:
        return list(axis.choices)
    return [axis.low, axis.high]


def _check_axis_values(path, key: str, name: str, axis: Axis) -> None:
    _check_values(path, key, name, _axis_values(axis) + ([axis.default] if axis.default is not None else []))


def _check_values(path, key: str, name: str, values: list[Any]) -> None:
    """Each value must be one ArchConfig field `name` could hold (its kind comes from the field's type)."""
    for v in values:
        problem = value_problem(name, v)
        if problem is not None:
            raise SpaceError(path, key, problem)


def _check_when(path, key: str, axis: Axis, seen: list[str]) -> None:
    """A condition names an arch field listed before this axis, with values that field could hold."""
    for cond, values in (axis.when or {}).items():
        if cond in ArchConfig.model_fields:
            _check_values(path, f"{key}.when.{cond}", cond, as_list(values))
        if cond not in seen:
            raise SpaceError(
                path,
                f"{key}.when.{cond}",
                f"conditions may only name arch fields listed before this axis; allowed: {', '.join(seen) or '(none)'}",
            )
