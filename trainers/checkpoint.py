"""Checkpoints: one self-contained directory, written atomically.

    checkpoint/
      state.pt     model, optimizer, RNG states (tensors), step and tokens (plain ints)
      meta.json    arch, train config, data name + fingerprint, the curve so far, tokens, step

A directory is complete once it exists under its final name: it is written as a sibling temp dir
and renamed into place (the previous checkpoint is moved aside first and removed after). Nothing
in it refers to files outside it, so Ray Tune may copy it elsewhere and hand it back.
Loading uses `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

STATE, META = "state.pt", "meta.json"


def save_checkpoint(directory: str | Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write `state` (tensors, state dicts, plain scalars) and `meta` (JSON) to `directory` atomically."""
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        torch.save(state, tmp / STATE)
        (tmp / META).write_text(json.dumps(meta, indent=1, default=str))
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def find_checkpoint(directory: str | Path) -> Path | None:
    """`directory` if it holds a complete checkpoint; else the previous one left aside by a
    save interrupted between its two renames; else None."""
    d = Path(directory)
    if (d / STATE).is_file() and (d / META).is_file():
        return d
    for old in sorted(d.parent.glob(f".{d.name}.old-*")) if d.parent.exists() else []:
        if (old / STATE).is_file() and (old / META).is_file():
            return old
    return None


def load_checkpoint(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, meta) of the checkpoint in `directory`; ValueError if there is none."""
    d = find_checkpoint(directory)
    if d is None:
        raise ValueError(f"{directory}: not a checkpoint directory (expected {STATE} and {META})")
    state = torch.load(d / STATE, map_location="cpu", weights_only=True)
    meta = json.loads((d / META).read_text())
    return state, meta
