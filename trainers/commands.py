"""`archscale train` (train one architecture), `archscale check coord` and `check transfer` (does a
parametrisation hold across sizes: activations, and the best learning rate), and `archscale export`.

    archscale train --arch arch.yaml --data pystdlib --tokens 500000 --out runs/a --seed 0
    archscale check coord arch.yaml --parametrization mup --widths 64,128,256,512 --steps 5 --json
    archscale check transfer arch.yaml --parametrization mup --widths 64,128,256,512 --steps 2000 --json

A thin layer over `archscale.trainers.train`; only typer and the standard library are imported at
module level (torch is imported when the command runs), so `archscale --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from archscale.spaces.cli_options import Data, JsonFlag, command_group, user_errors
from archscale.spaces.errors import UserError
from archscale.spaces.outcome import RunStatus


def _fail(message: str) -> NoReturn:
    raise UserError(message)


@user_errors
def train_command(
    arch: Annotated[Path, typer.Option("--arch", help="Architecture file (YAML or JSON of ArchConfig fields).")],
    tokens: Annotated[int, typer.Option("--tokens", min=1, help="Training tokens.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory (curves.parquet, summary.json, checkpoint/).")],
    data: Data = "pystdlib",
    seed: Annotated[int, typer.Option("--seed", help="Seed for initialisation and batch order.")] = 0,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", min=1, help="Sequences per micro-batch [default: 32].")
    ] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate [default: 3e-3].")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON line (last line of output).")
    ] = False,
) -> None:
    """Train one architecture on one data source; write curves, summary and checkpoints to --out."""
    from archscale.spaces import ArchConfig
    from archscale.spaces.training import value_problem

    try:
        arch_config = ArchConfig.from_file(str(arch))
    except ValueError as e:  # SpaceError: names the file and the field
        _fail(str(e))
    if lr is not None and (problem := value_problem("lr", lr)) is not None:
        _fail(f"--lr: {problem}")  # a flag's value is named as the flag, before --out is touched
    summary_path = out / "summary.json"
    resume_from = None
    if resume:
        from archscale.trainers.checkpoint import find_checkpoint

        if summary_path.exists() and json.loads(summary_path.read_text()).get("status") == RunStatus.COMPLETED:
            _fail(f"{out}: the run there already completed; nothing to resume (choose a new --out)")
        resume_from = find_checkpoint(out / "checkpoint")
        if resume_from is None:
            _fail(
                f"{out}: no checkpoint to resume from (expected {out / 'checkpoint'}); start a new run without --resume"
            )
        if summary_path.exists():  # an earlier stopped/failed attempt: keep its summary beside the new one
            summary_path.rename(out / "summary.previous.json")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a finished run" if summary_path.exists() else "files from another run"
        _fail(
            f"{out}: already holds {what}; results are never overwritten. Use --resume to continue it, or a new --out"
        )

    from archscale.spaces.training import TrainConfig
    from archscale.trainers.data import open_data
    from archscale.trainers.loop import train

    try:
        source = open_data(data)
        overrides = {k: v for k, v in (("batch_size", batch_size), ("lr", lr)) if v is not None}
        config = TrainConfig(tokens=tokens, seed=seed, **overrides)
    except ValueError as e:
        _fail(str(e))
    if source.vocab_size > arch_config.vocab_size:
        _fail(
            f"{arch}: vocab_size={arch_config.vocab_size} but data {data!r} has {source.vocab_size} tokens; "
            f"set vocab_size: {source.vocab_size} (or more) in the architecture"
        )

    report = None if as_json else _progress_printer()
    try:
        summary = train(arch_config, config, source, report=report, out=out, resume_from=resume_from)
    except (ValueError, FileExistsError) as e:  # bad input found late (e.g. a mismatched checkpoint)
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    else:
        _print_summary(summary, out)
    if RunStatus(summary["status"]) in (RunStatus.DIVERGED, RunStatus.FAILED):
        raise typer.Exit(1)


def _progress_printer():
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)

    def report(m: dict) -> None:
        bpb = f"  {m['eval_bpb']:.3f} bits/byte" if m.get("eval_bpb") is not None else ""
        tps = f"{m['tokens_per_s']:,.0f}" if m.get("tokens_per_s") else "-"
        ckpt = "  [checkpoint]" if m.get("checkpoint") else ""
        console.print(
            f"tokens {m['tokens']:>11,}  step {m['step']:>6}  train {m['train_loss']:.4f}  "
            f"eval {m['eval_loss']:.4f} nats/token{bpb}  lr {m['lr']:.2e}  {tps} tokens/s  "
            f"{m['wall_s']:.1f}s{ckpt}",
            markup=False,
        )

    return report


def _print_summary(s: dict, out: Path) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    lines = [f"[bold]{s['status']}[/bold]" + (f": {s['reason']}" if s.get("reason") else "")]
    if s.get("eval_loss") is not None:
        bpb = f" ({s['eval_bpb']:.3f} bits/byte)" if s.get("eval_bpb") is not None else ""
        lines.append(f"eval loss {s['eval_loss']:.4f} nats/token{bpb} after {s['tokens']:,} tokens")
    if s.get("eval_loss_by_length"):
        parts = ", ".join(f"{k}: {'-' if v is None else f'{v:.4f}'}" for k, v in s["eval_loss_by_length"].items())
        lines.append(f"by context length: {parts}")
    lines.append(
        f"{s['params']:,} params, {s['compute']:.3g} FLOPs, "
        f"{(s['tokens_per_s'] or 0):,.0f} tokens/s, {s['wall_s']:.1f}s wall; results in {out}"
    )
    for line in lines:
        console.print(line)


check_app = command_group("Checks that a model behaves as its configuration promises.")


#: The options `check coord` and `check transfer` share.
BaseArch = Annotated[Path, typer.Argument(help="Architecture file (YAML or JSON of ArchConfig fields): the base size.")]
Parametrization = Annotated[
    Optional[str], typer.Option("--parametrization", help="standard, mup or completep [default: the file's].")
]
Widths = Annotated[
    Optional[str], typer.Option("--widths", help="d_model values, e.g. 64,128,256,512 (head_dim stays fixed).")
]


def _base_arch(arch: Path, parametrization: str | None):
    """The base architecture of a check, at `parametrization` when given (one line on bad input)."""
    from archscale.spaces import ArchConfig, variants

    if parametrization is not None and parametrization not in variants.PARAMETRIZATIONS:
        _fail(f"--parametrization: got {parametrization!r}; allowed: {', '.join(variants.PARAMETRIZATIONS)}")
    try:
        arch_config = ArchConfig.from_file(str(arch))
    except ValueError as e:
        _fail(str(e))
    from archscale.trainers.coord import with_parametrization

    return arch_config if parametrization is None else with_parametrization(arch_config, parametrization)


def _sizes(option: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        _fail(f"{option}: expected comma-separated integers such as 64,128,256, got {text!r}")
    if len(sizes) < 2 or min(sizes) < 1:
        _fail(f"{option}: give at least two positive sizes to compare, got {text!r}")
    return sizes


@user_errors
def coord_command(
    arch: BaseArch,
    parametrization: Parametrization = None,
    widths: Widths = None,
    depths: Annotated[Optional[str], typer.Option("--depths", help="n_layers values, e.g. 2,4,8.")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps; RMS is measured after each.")] = 5,
    lr: Annotated[float, typer.Option("--lr", min=0, help="Peak learning rate (constant; high on purpose).")] = 1e-2,
    out: Annotated[Optional[Path], typer.Option("--out", help="Plot: FILE.png or FILE.html.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train each width (or depth) a few steps and report activation RMS by role; flat lines mean the
    parametrisation's rules hold. Prints the log-log slope per role at the last step."""
    width_list, depth_list = _sizes("--widths", widths), _sizes("--depths", depths)
    if width_list is None and depth_list is None:
        _fail("give --widths, --depths or both")
    if out is not None and out.suffix not in (".png", ".html"):
        _fail(f"--out: {out}: unsupported format {out.suffix!r}; allowed: .png, .html")
    arch_config = _base_arch(arch, parametrization)
    from archscale.trainers.coord import coord_check, save_plot, slopes

    rows = coord_check(arch_config, widths=width_list, depths=depth_list, steps=steps, lr=lr)
    over = "width" if width_list else "depth"
    if out is not None:
        save_plot(rows, out, over)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    slope = slopes(rows, over, steps)
    sizes = width_list or depth_list
    typer.echo(f"{arch_config.parametrization}: RMS after {steps} steps at lr {lr:g}, by {over}")
    typer.echo(f"{'role':<10}" + "".join(f"{s:>10}" for s in sizes) + f"{'slope':>10}")
    for role, value in slope.items():
        rms = {r[over]: r["rms"] for r in rows if r["role"] == role and r["step"] == steps}
        typer.echo(f"{role:<10}" + "".join(f"{rms[s]:>10.3g}" for s in sizes) + f"{value:>+10.2f}")
    typer.echo("slope: log-log RMS against " + over + "; ~0 (within ±0.15) means the rules hold")
    if out is not None:
        typer.echo(f"plot: {out}")


check_app.command("coord")(coord_command)


def _lrs(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        lrs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        _fail(f"--lrs: expected comma-separated numbers such as 2e-3,4e-3,8e-3, got {text!r}")
    if len(set(lrs)) < 2 or min(lrs) <= 0:
        _fail(f"--lrs: give at least two different positive learning rates, got {text!r}")
    return lrs


@user_errors
def transfer_command(
    arch: BaseArch,
    parametrization: Parametrization = None,
    widths: Widths = None,
    depths: Annotated[Optional[str], typer.Option("--depths", help="n_layers values, e.g. 2,4,8 (completep).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps per training.")] = 2000,
    lrs: Annotated[
        Optional[str], typer.Option("--lrs", help="Peak learning rates, e.g. 2e-3,4e-3,8e-3 [default: 1e-3 .. 3.2e-2].")
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per point; losses are seed means.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per step.")] = 16,
    data: Data = "pystdlib",
    as_json: JsonFlag = False,
) -> None:
    """Train each width (or depth) over an lr grid: where the best lr sits at each size, how far it
    drifts, and whether wider is better at every lr near the base's optimum (μP's promise)."""
    width_list, depth_list = _sizes("--widths", widths), _sizes("--depths", depths)
    if (width_list is None) == (depth_list is None):
        _fail("give --widths or --depths (one of them)")
    lr_list = _lrs(lrs)
    arch_config = _base_arch(arch, parametrization)
    from archscale.trainers.transfer_check import DEFAULT_LRS, transfer_check

    check = transfer_check(
        arch_config,
        widths=width_list,
        depths=depth_list,
        lrs=lr_list or DEFAULT_LRS,
        steps=steps,
        seeds=seeds,
        batch_size=batch_size,
        data=data,
    )
    if as_json:
        typer.echo(json.dumps(check.to_dict()))
        return
    typer.echo(f"{check.parametrization}: final eval loss (nats/token) after {steps} steps, by {check.over} and lr")
    typer.echo(f"{'lr':<10}" + "".join(f"{s:>10}" for s in check.sizes))
    for lr in check.lrs:
        cells = "".join(
            f"{'-' if check.losses[s][lr] is None else f'{check.losses[s][lr]:.4f}':>10}" for s in check.sizes
        )
        typer.echo(f"{lr:<10.3g}" + cells + ("   near" if lr in check.near_lrs else ""))
    edge = any(check.optimum_at_edge.values())
    best = "".join(f"{check.optimum_lr[s]:>9.3g}{'*' if check.optimum_at_edge[s] else ' '}" for s in check.sizes)
    typer.echo(f"{'best lr':<10}" + best)
    typer.echo(f"drift of the best lr across {check.over}: {check.drift:.2f}x" + ("  (* at the grid's edge)" * edge))
    verdict = "yes" if check.wider_is_better else f"no ({check.why_not})"
    typer.echo(f"larger is better at every lr marked near (within 2x of the smallest size's best): {verdict}")


check_app.command("transfer")(transfer_command)


@user_errors
def export_command(
    results_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Results directory of a search or study.")],
    trial: Annotated[int, typer.Option("--trial", help="Trial to export: its trial_id in trials.parquet.")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="json: the architecture and training settings (any trial); "
            "hf: also a transformers model (config.json, model.safetensors) from the trial's checkpoint.",
        ),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Directory to write, new or empty (required for hf; json prints without it)."),
    ] = None,
) -> None:
    """Export one trial: its architecture and training settings, or its trained weights for transformers."""
    from archscale.trainers.export import DOCUMENT, export_trial

    document = export_trial(results_dir, trial, format, out)
    if format == "json" and out is None:
        typer.echo(json.dumps(document, indent=2, default=str, ensure_ascii=False))
        return
    if format == "json":
        typer.echo(f"trial {trial}: architecture and training settings written to {out / DOCUMENT}")
        return
    ckpt = document["checkpoint"]
    typer.echo(
        f"trial {trial} ({document['status']}, checkpoint at {ckpt['tokens']:,} tokens): "
        f"{document['hf_architecture']} with {document['params']:,} parameters written to {out} "
        f"(config.json, model.safetensors, {DOCUMENT})"
    )
    typer.echo(f"load it with transformers.AutoModelForCausalLM.from_pretrained({str(out)!r})")


def register(app: typer.Typer) -> None:
    """Add the `export` and `train` commands and the `check` group to the root `archscale` app."""
    app.command("export")(export_command)
    app.command("train")(train_command)
    app.add_typer(check_app, name="check")


if __name__ == "__main__":  # python -m archscale.trainers.commands ...: the train command alone
    _app = typer.Typer(add_completion=False)
    _app.callback()(lambda: None)  # a group, so the command is spelled `train` as under `archscale`
    register(_app)
    _app(sys.argv[1:])
