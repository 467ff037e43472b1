"""`archscale check gpu`: what works on this GPU node or Ray cluster, item by item, in one command.

    archscale check gpu [--quick] [--json] [--out DIR] [--address ADDR]

The torch items (devices, peaks, attention backends, Triton kernels, training) are
`archscale.trainers.gpu_check`'s; this module adds the items that need `search`: the memory
estimate (`search/resources.py`) against `torch.cuda.max_memory_allocated`, fractional packing
(4 small trials sharing one GPU with `--gpus-per-trial auto`) and a 3-trial search end to end,
both through the real `run_search`. With `--address` the torch and memory items run as one Ray
task holding a whole GPU on the cluster, and the searches run on the cluster. Without CUDA (and
without a cluster with GPUs) the GPU items are skipped with the reason, and the check exits 0.
Exit status: 0 when no item failed, 1 when one did, 2 for bad input. Only typer, the standard
library and torch-free archscale modules are imported at module level: `--help` imports no torch.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from archscale.spaces.cli_options import Address, JsonFlag, user_errors
from archscale.spaces.errors import UserError
from archscale.trainers.commands import check_app
from archscale.trainers.gpu_check_report import JSON_NAME, NEEDS_CUDA, CheckItem, CheckReport, guarded

# (d_model, n_layers, n_heads, seq_len, batch_size, position, vocab_size): from a tiny search trial
# to GPT-2 small; alibi takes the score-bias path (FlexAttention on CUDA), the rest fused SDPA.
MEMORY_SHAPES = (
    (128, 2, 4, 128, 16, "rope", 256),
    (256, 4, 4, 256, 16, "alibi", 256),
    (512, 6, 8, 512, 8, "rope", 256),
    (768, 12, 12, 1024, 4, "learned", 50257),
    (1024, 8, 16, 1024, 8, "rope", 256),
)
RAY_ITEMS = ("ray.packing", "ray.search")
PACKED_TRIALS, SEARCH_TRIALS = 4, 3


def memory_item() -> CheckItem:
    """The estimate of a trial's tensors (the estimate less its CUDA-context allowance) against the
    peak torch allocated training it, for each of MEMORY_SHAPES; fails if it is ever below."""
    import torch

    from archscale.search.resources import CUDA_CONTEXT_BYTES, training_memory_bytes
    from archscale.spaces import ArchConfig
    from archscale.trainers.gpu_check_training import peak_training_memory

    if not torch.cuda.is_available():
        return CheckItem.skipped("memory.estimate", NEEDS_CUDA)
    numbers: dict[str, Any] = {}
    under = []
    for d, layers, heads, T, batch, position, vocab in MEMORY_SHAPES:
        arch = ArchConfig(
            vocab_size=vocab, seq_len=T, d_model=d, n_layers=layers, n_heads=heads, d_ff=4 * d, position=position
        )
        label = f"d{d}_L{layers}_T{T}_B{batch}_{position}"
        estimate = training_memory_bytes(arch, batch) - CUDA_CONTEXT_BYTES
        measured = peak_training_memory(arch, batch)
        numbers[f"{label}_estimate_over_measured"] = estimate / measured
        if estimate < measured:
            under.append(f"{label}: estimate {estimate / 2**30:.2f} GiB < measured {measured / 2**30:.2f} GiB")
    if under:
        reason = "the estimate is below what training allocated (packed trials could run out of memory): " + "; ".join(
            under
        )
        return CheckItem("memory.estimate", "fail", reason=reason, numbers=numbers, verdict=reason)
    ratios = list(numbers.values())
    verdict = f"estimate covers every shape: {min(ratios):.2f}-{max(ratios):.2f} x max_memory_allocated"
    return CheckItem("memory.estimate", "pass", numbers=numbers, verdict=verdict)


def gpu_node_items(quick: bool) -> tuple[list[CheckItem], dict]:
    """Everything that runs on the GPU node itself: the torch items, then the memory item."""
    from archscale.trainers.gpu_check import environment, torch_items

    items = torch_items(quick) + guarded("memory.estimate", lambda: [memory_item()])
    return items, environment(quick)


def search_item(name: str, trials: int, out: Path, quick: bool, address: str | None) -> CheckItem:
    """`trials` trials of the tiny space through `run_search` with `--gpus-per-trial auto`; passes
    when every trial completed (ray.packing: all at once, each asking at most 1/trials of a GPU)."""
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search

    packing = name == "ray.packing"
    opts = SearchOptions(
        space="tiny",
        out=str(out),
        trials=trials,
        budget=BudgetOptions(tokens=20_000 if quick else 100_000),
        strategy=StrategyOptions(scheduler="none" if packing else "asha"),
        execution=ExecutionOptions(
            gpus_per_trial="auto", concurrency=trials if packing else None, address=address, progress=False
        ),
    )
    summary = run_search(opts)
    by_status = summary["by_status"]
    done = by_status.get("completed", 0) + (0 if packing else by_status.get("pruned", 0))
    fraction = max(trial_gpu_fractions(out), default=float("nan"))
    numbers = {"trials": summary["trials"], **{f"trials_{k}": v for k, v in by_status.items()}}
    numbers.update(largest_gpu_fraction=fraction, wall_s=summary.get("wall_s"), out=str(out))
    problems = []
    if done != trials or summary["trials"] != trials:
        problems.append(f"{done} of {trials} trials finished ({by_status})")
    if packing and not fraction * trials <= 1:
        problems.append(f"a trial asked for {fraction:g} GPU: {trials} do not fit on one")
    if problems:
        reason = "; ".join(problems)
        return CheckItem(name, "fail", reason=reason, numbers=numbers, verdict=reason)
    what = (
        f"{trials} trials at <= {fraction:g} GPU each, all completed" if packing else f"{trials}-trial search finished"
    )
    return CheckItem(name, "pass", numbers=numbers, verdict=f"{what} in {summary.get('wall_s')} s ({out})")


def search_dir_name(item: str) -> str:
    """The results directory of a Ray item's search, under --out: ray-packing, ray-search."""
    return item.replace(".", "-")


def trial_gpu_fractions(out: Path) -> list[float]:
    """The GPU fraction `--gpus-per-trial auto` gave each trial in results directory `out`, recomputed
    from its row (architecture columns and batch size) by the same rule Ray was given."""
    import polars as pl

    from archscale.search.resources import gpu_fraction_for
    from archscale.spaces.record import ARCH_COLUMNS

    rows = pl.read_parquet(out / "trials.parquet").to_dicts()
    return [
        gpu_fraction_for({"arch": {k: row[k] for k in ARCH_COLUMNS}, "train": {"batch_size": row["batch_size"]}})
        for row in rows
    ]


def run_check(quick: bool, out: Path | None, address: str | None) -> CheckReport:
    """Every item: on this machine, or with `address` on that Ray cluster's GPU workers."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    gpus = 0.0
    if address:
        from archscale.clusters.connect import connect, scrub

        try:
            gpus = connect(address)["gpus"]
        except Exception as e:  # whatever Ray raises for an address it cannot join (it varies by cause)
            raise UserError(f"--address {address}: cannot join the Ray cluster ({scrub(str(e), address)})") from e
    if address and gpus >= 1:
        import ray

        items, env = ray.get(ray.remote(num_gpus=1)(gpu_node_items).remote(quick))
    else:
        items, env = gpu_node_items(quick)
        if env["device"] == "cuda":  # give the trials this process's cached GPU memory back
            import torch

            torch.cuda.empty_cache()
    if not address:  # the embedded Ray started for the searches sees this machine's GPUs
        gpus = float(env["device"] == "cuda")
    cluster = cluster_item(address, gpus, env)
    items.append(cluster)
    env = {**env, "ran_on": f"Ray cluster {address}" if address else "this machine", "cluster_gpus": gpus}
    if gpus < 1 or env["device"] != "cuda":
        reason = NEEDS_CUDA if not address else (cluster.reason or "no GPU task ran")
        items += [CheckItem.skipped(name, reason) for name in RAY_ITEMS]
        return CheckReport(tuple(items), env)
    with tempfile.TemporaryDirectory(prefix="archscale-check-gpu-") as scratch:
        base = out if out is not None else Path(scratch)
        for name, trials in zip(RAY_ITEMS, (PACKED_TRIALS, SEARCH_TRIALS), strict=True):
            target = base / search_dir_name(name)
            items += guarded(name, lambda n=name, t=trials, o=target: [search_item(n, t, o, quick, address)])
    return CheckReport(tuple(items), env)


def cluster_item(address: str | None, gpus: float, env: dict) -> CheckItem:
    """With --address: whether the cluster has GPUs and a task holding one sees CUDA through torch."""
    if not address:
        return CheckItem.skipped(
            "cluster", "no --address: everything ran on this machine (searches on an embedded Ray)"
        )
    numbers = {"cluster_gpus": gpus, "task_device": env["device"], "task_device_name": env.get("device_name")}
    if gpus < 1:
        reason = f"the Ray cluster at {address} has no GPUs: the torch items ran on this machine"
        return CheckItem.skipped("cluster", reason)
    if env["device"] != "cuda":
        reason = f"the cluster has {gpus:g} GPUs but torch in a task holding one sees no CUDA (a CPU-only torch?)"
        return CheckItem("cluster", "fail", reason=reason, numbers=numbers, verdict=reason)
    verdict = f"{gpus:g} GPUs in the cluster; the GPU items ran in a Ray task on a {env.get('device_name')}"
    return CheckItem("cluster", "pass", numbers=numbers, verdict=verdict)


@user_errors
def gpu_command(
    quick: Annotated[
        bool, typer.Option("--quick", help="Shrink every item (meant to finish in under 5 minutes on one GPU).")
    ] = False,
    as_json: JsonFlag = False,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", metavar="DIR", help="Write DIR/gpu_check.json and DIR/gpu_check.md (and the searches' results)."
        ),
    ] = None,
    address: Address = None,
) -> None:
    """Check every GPU path (bf16, attention backends, Triton kernels, torch.compile, memory estimate,
    fractional GPUs, a search): pass, fail or skipped with the reason, and the numbers. Exit 1 if any failed."""
    if out is not None and (out / JSON_NAME).exists():
        raise UserError(f"--out: {out} already holds a check ({JSON_NAME}); results are never overwritten")
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is a file; give a directory")
    held = [out / search_dir_name(n) for n in RAY_ITEMS if out is not None and (out / search_dir_name(n)).exists()]
    if held:
        raise UserError(f"--out: {held[0]} already exists (an earlier check's search); choose a new --out")
    report = run_check(quick, out, address)
    paths = report.write(out) if out is not None else ()
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "files": [str(p) for p in paths]}))
    else:
        for item in report.items:
            typer.echo(f"{item.status:<8} {item.name:<24} {item.verdict}")
        typer.echo(report.verdict + (f"; written: {', '.join(str(p) for p in paths)}" if paths else ""))
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Add `gpu` to the `check` group (which `archscale.trainers.commands` puts on the root app)."""
    check_app.command("gpu")(gpu_command)
