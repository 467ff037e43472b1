"""One Ray Tune trial: train the architecture in `config` and report every evaluation.

Runs inside a Ray worker. Python errors and divergence end the trial with a final result whose
`status` is "failed" and whose `error` says why (retrying a deterministic error is pointless);
only a dead worker (SIGKILL, a lost node) makes Ray retry the trial, from its last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import traceback
from pathlib import Path
from typing import Any

from ray import tune


def run_trial(config: dict[str, Any]) -> None:
    base = {"trial_number": config["trial_id"], "seed": config["seed"], "counts": config.get("counts"),
            "target_tokens": config["target_tokens"]}
    if config.get("error"):  # infeasible architecture: recorded as failed, never trains
        tune.report({**base, "status": "failed", "error": config["error"], "tokens": 0, "eval_loss": math.inf})
        return

    from archscale.trainers import train

    trial_dir = Path(tune.get_context().get_trial_dir())
    checkpoint = tune.get_checkpoint()
    resume_from = None
    if checkpoint is not None:
        resume_from = checkpoint.to_directory(str(trial_dir / f"restored-{os.getpid()}"))
    train_config = dict(config["train"])
    cpus = _assigned_cpus()
    if cpus:
        train_config.setdefault("threads", cpus)

    def report(metrics: dict[str, Any]) -> None:
        payload = {**base, **{k: v for k, v in metrics.items() if k not in ("checkpoint", "final")},
                   "status": "running"}
        ckpt_dir = metrics.get("checkpoint")
        if ckpt_dir:
            tune.report(payload, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
        else:
            tune.report(payload)

    try:
        summary = train(config["arch"], train_config, config["data"], report=report, out=trial_dir / "run",
                        resume_from=resume_from)
    except Exception as e:  # noqa: BLE001
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        tune.report({**base, "status": "failed", "error": last, "tokens": 0, "eval_loss": math.inf})
        return
    status = summary["status"]
    final = {
        **base, "tokens": summary["tokens"], "compute": summary["compute"],
        "eval_loss": summary["eval_loss"] if summary["eval_loss"] is not None else math.inf,
        "eval_bpb": summary.get("eval_bpb"), "tokens_per_s": summary.get("tokens_per_s"),
        "wall_s": summary.get("wall_s"), "eval_loss_by_length": json.dumps(summary.get("eval_loss_by_length") or {}),
        "status": "completed" if status == "completed" else "failed",
        "error": None if status == "completed" else f"{status}: {summary.get('reason')}",
    }
    tune.report(final)


def _assigned_cpus() -> int | None:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        return max(1, int(cpus)) if cpus else None
    except Exception:  # noqa: BLE001
        return None
