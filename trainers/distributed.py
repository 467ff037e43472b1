"""Data-parallel training on several workers: the one place a model is wrapped (DDP or FSDP2) and a batch is split.

The model stays single-device (STYLE.md 6); `Workers.wrap` is the only place it meets
torch.distributed. The loop (`trainers/loop.py`) asks a `Workers` for four things:

- `wrap(model)`: the module the training step calls. DDP wraps it (gradients averaged over the
  workers in backward); FSDP2 (`fully_shard`, per block and then the whole model) shards its
  parameters in place, so it must run before the optimizer is built, and the loop calls it there.
- `split(x, y)`: this worker's rows of the step's batch. Every worker draws the same whole batch
  from the same data generator and keeps its `batch_size / world_size` rows, so W workers see
  exactly the batch one worker would, the token budget and counts do not depend on W, and a
  worker's data position is the shared generator's (one data state to checkpoint).
- `mean(t)`: a scalar averaged over the workers (the reported training loss; the mean of the
  workers' mean losses over equal slices is the whole batch's mean loss).
- `states` / `load_states`: the model's and the optimizer's full (unsharded) states, so a
  checkpoint has one format for every W and shard mode (FSDP gathers collectively: every worker
  calls them; only the main worker writes the files).

One worker (`Workers()`, the default) is a no-op throughout: the single-process loop is unchanged.
The process group is the caller's (Ray Train's `TorchTrainer` sets it up on every worker; the
tests start it with gloo on CPU). No Ray here: `trainers` must not import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Shard = Literal["ddp", "fsdp"]
SHARDS: tuple[str, ...] = ("ddp", "fsdp")


@dataclass(frozen=True)
class Workers:
    """This process's place among the trial's workers."""

    rank: int = 0
    world_size: int = 1
    shard: Shard = "ddp"

    def __post_init__(self):
        if self.shard not in SHARDS:
            raise ValueError(f"shard: got {self.shard!r}; allowed: {', '.join(SHARDS)}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside 0..{self.world_size - 1}")

    @classmethod
    def from_process_group(cls, shard: Shard = "ddp") -> Workers:
        """The workers of the initialised default process group (one worker when there is none)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls(shard=shard)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), shard=shard)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The worker that writes the run's files and checkpoints (rank 0)."""
        return self.rank == 0

    @classmethod
    def for_run(cls, workers: Workers | None, batch_size: int) -> Workers:
        """The given workers (one when None), checked against the batch they split."""
        workers = workers or cls()
        if batch_size % workers.world_size:
            raise ValueError(
                f"batch_size {batch_size} does not split over {workers.world_size} workers; "
                f"use a multiple of {workers.world_size} (or fewer --workers-per-trial)"
            )
        return workers

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls (the model itself for one worker)."""
        if not self.distributed:
            return model
        if self.shard == "fsdp":
            from torch.distributed.fsdp import fully_shard

            for block in model.blocks:
                fully_shard(block)
            return fully_shard(model)
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This worker's rows of a whole batch (B, T) -> (B / world_size, T)."""
        if not self.distributed:
            return x, y
        rows = x.shape[0] // self.world_size
        part = slice(self.rank * rows, (self.rank + 1) * rows)
        return x[part], y[part]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """A scalar averaged over the workers (all-reduce; every worker calls it)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size

    def clip_grad_norm(self, params: list[nn.Parameter], max_norm: float) -> float:
        """Clip the gradients to `max_norm`; the total norm before clipping (the same on every worker)."""
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor over the shards
            norm = norm.full_tensor()
        return float(norm)

    # ---- full states for checkpoints (collective under FSDP) ---------------------------------
    def states(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """{"model": ..., "optimizer": ...}: full state dicts, as one worker's would be."""
        if self.shard != "fsdp" or not self.distributed:
            return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
        return {"model": model_state, "optimizer": optimizer_state}

    def load_states(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Load what `states` returned (a checkpoint's "model" and "optimizer") into this worker's model."""
        if self.shard != "fsdp" or not self.distributed:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
        set_state_dict(
            model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"], options=options
        )
