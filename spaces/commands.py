"""`archscale space ...` and `archscale arch ...`: inspect spaces and count architectures."""

from __future__ import annotations

import json

import typer

from archscale.spaces.cli_options import (
    BudgetActiveParams,
    BudgetFlopsPerToken,
    BudgetNonEmbeddingParams,
    BudgetParams,
    JsonFlag,
    budget_override,
    command_group,
    user_errors,
)

space_app = command_group("Inspect and sample search-space files.")
arch_app = command_group("Count one architecture.")


def load_space_with_budget(space_file: str, params=None, non_embedding=None, flops=None, active=None):
    from archscale.spaces.space import load_space, resolve_space_path

    space = load_space(resolve_space_path(space_file))
    override = budget_override(params, non_embedding, flops, active)
    if override:
        space = space.with_budget(*override)
    return space


def sample_record(sample) -> dict:
    return {"arch": sample.arch.to_dict(), **sample.counts.to_dict()}


@space_app.command("show")
@user_errors
def show(
    space_file: str = typer.Argument(..., help="A space YAML file, or the name of a shipped space (tiny, full, ...)."),
    budget_params: BudgetParams = None,
    budget_non_embedding_params: BudgetNonEmbeddingParams = None,
    budget_flops_per_token: BudgetFlopsPerToken = None,
    budget_active_params: BudgetActiveParams = None,
    samples: int = typer.Option(5, "--samples", min=1, help="How many architectures to sample."),
    seed: int = typer.Option(0, "--seed", help="Random seed for sampling."),
    as_json: JsonFlag = False,
) -> None:
    """Sample architectures from a space, solve each to the budget, and count it."""
    import random

    space = load_space_with_budget(
        space_file, budget_params, budget_non_embedding_params, budget_flops_per_token, budget_active_params
    )
    rng = random.Random(seed)
    drawn = [space.sample_random(rng) for _ in range(samples)]
    if as_json:
        typer.echo(json.dumps([sample_record(s) for s in drawn]))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"{space.name}: {space.budget.describe() if space.budget else 'no budget'}"
    rule = space.spec.shape
    if rule is not None:  # the shape rule and, below the table, what strays from it (>5%)
        title += f"; shape rule {rule.describe()}"
    table = Table(title=title)
    for col in (
        "architecture",
        "d_model",
        "layers",
        "d_ff",
        "params",
        "active",  # per token: = params unless ffn_type=moe
        "non-emb",
        "FLOPs/token",
        "KV B/token",
        "deviation",
    ):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for s in drawn:
        c = s.counts
        table.add_row(
            s.arch.label,
            str(s.arch.d_model),
            str(s.arch.n_layers),
            str(s.arch.d_ff),
            f"{c.params:,}",
            f"{c.active_params:,}",
            f"{c.non_embedding_params:,}",
            f"{c.flops_per_token:.3g}",
            f"{c.kv_cache_bytes_per_token:,}",
            f"{s.deviation:+.2%}",
        )
    Console().print(table)
    if rule is not None:
        from archscale.spaces.shape_rule import off_rule

        match_gated = space.spec.budget.match_gated if space.spec.budget else True
        for s in drawn:
            if off := off_rule(rule, s.arch, match_gated):
                typer.echo(f"off the rule: {s.arch.label} (d_model {s.arch.d_model}): {'; '.join(off)}")


@space_app.command("list")
@user_errors
def list_spaces() -> None:
    """List the space files shipped with archscale."""
    from archscale.spaces.space import load_space, shipped_spaces

    for name, path in shipped_spaces().items():
        typer.echo(f"{name:12s} {load_space(path).spec.description}")


@arch_app.command("count")
@user_errors
def arch_count(
    arch_file: str = typer.Argument(..., help="YAML or JSON file of ArchConfig fields."),
    as_json: JsonFlag = False,
) -> None:
    """Count parameters, FLOPs per token and KV-cache bytes of one architecture."""
    from archscale.spaces import ArchConfig, count

    arch = ArchConfig.from_file(arch_file)
    record = {"arch": arch.to_dict(), **count(arch).to_dict()}
    if as_json:
        typer.echo(json.dumps(record))
        return
    for key, value in record.items():
        if key != "arch":
            typer.echo(f"{key:26s} {value:,}")


def register(app: typer.Typer) -> None:
    app.add_typer(space_app, name="space")
    app.add_typer(arch_app, name="arch")
