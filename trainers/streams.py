"""Token streams in memory maps: `TokenStream`, the cache its corpora are built in, and nanoGPT's `bin:DIR`.

Corpora live in memory maps under the cache directory (`$XDG_CACHE_HOME/archscale`, else
`~/.cache/archscale`); batches are random crops read from the map, so a corpus is never held as
Python objects. Caches are built atomically (a private temp dir renamed into place), so several
processes (Ray trials) may build the same cache at once: one rename wins, the others discard theirs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from archscale.trainers.source import Batch, DataSource


class TokenStream(DataSource):
    """A train and a validation token array (memory maps); batches are uniform random crops."""

    def __init__(
        self,
        name: str,
        train_path: Path,
        val_path: Path,
        dtype: np.dtype,
        vocab_size: int,
        fingerprint: str,
        bytes_per_token: float | None,
    ):
        self.name, self.vocab_size, self.fingerprint = name, vocab_size, fingerprint
        self.bytes_per_token = bytes_per_token
        self._paths, self._dtype = (train_path, val_path), np.dtype(dtype)
        self._maps: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def train_tokens(self) -> int:  # type: ignore[override]  # from the file's size: no map opened
        return self._paths[0].stat().st_size // self._dtype.itemsize

    @property
    def _train(self) -> np.ndarray:
        return self._open()[0]

    @property
    def _val(self) -> np.ndarray:
        return self._open()[1]

    def _open(self) -> tuple[np.ndarray, np.ndarray]:
        if self._maps is None:
            self._maps = tuple(np.memmap(p, dtype=self._dtype, mode="r") for p in self._paths)  # type: ignore[assignment]
        return self._maps  # type: ignore[return-value]

    def __getstate__(self) -> dict:  # picklable (Ray ships objects between processes): drop the maps
        return {**self.__dict__, "_maps": None}

    @staticmethod
    def _crops(arr: np.ndarray, starts: np.ndarray, seq_len: int) -> Batch:
        rows = torch.from_numpy(arr[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))  # (B, T+1)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()

    def train_batch(self, batch_size: int, seq_len: int, generator: torch.Generator) -> Batch:
        arr = self._train
        if len(arr) < seq_len + 2:
            raise ValueError(f"{self.name}: training split has {len(arr)} tokens, fewer than seq_len+1={seq_len + 1}")
        starts = torch.randint(0, len(arr) - seq_len - 1, (batch_size,), generator=generator).numpy()
        return self._crops(arr, starts, seq_len)

    def val_batches(self, seq_len: int, tokens: int, batch_size: int, seed: int = 0) -> list[Batch]:
        # Evenly spaced crops over the whole validation split: deterministic, no RNG, and the same
        # text for every architecture. `seed` shifts the grid by a fraction of a stride.
        arr = self._val
        if len(arr) < seq_len + 2:
            raise ValueError(f"{self.name}: validation split has {len(arr)} tokens, fewer than seq_len+1={seq_len + 1}")
        n_rows = max(1, -(-tokens // seq_len))
        last = len(arr) - seq_len - 1
        offset = (seed * 7919) % max(1, last // n_rows) if seed else 0
        starts = np.linspace(0, last - offset, n_rows).astype(np.int64) + offset
        return [self._crops(arr, starts[i : i + batch_size], seq_len) for i in range(0, n_rows, batch_size)]


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/archscale`, else `~/.cache/archscale`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archscale"


def _build_atomically(final: Path, build) -> Path:
    """Run `build(tmp_dir)` in a private temp dir next to `final`, then rename it into place.
    If another process got there first, keep theirs (identical content) and discard ours."""
    if (final / "done").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        (tmp / "done").write_text("ok\n")
        try:
            os.rename(tmp, final)
        except OSError:  # final exists (another builder won, or a stale incomplete dir)
            if not (final / "done").exists():
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


class TokenFiles(TokenStream):
    """nanoGPT's `train.bin` / `val.bin`. The vocab size comes from the `vocab_size` option, else
    `meta.json` ({"vocab_size": V, "dtype": "uint16"}) or nanoGPT's `meta.pkl` in DIR. The dtype
    is uint16 unless the vocab needs more (or the option / meta says otherwise)."""

    def __init__(self, path: str, vocab_size: int | None = None, dtype: str | None = None):
        d = Path(path).expanduser().resolve()
        missing = [n for n in ("train.bin", "val.bin") if not (d / n).is_file()]
        if missing:
            raise ValueError(
                f"bin:{path}: missing {', '.join(missing)} (expected nanoGPT token files train.bin and val.bin)"
            )
        meta = {}
        if (d / "meta.json").is_file():
            meta = json.loads((d / "meta.json").read_text())
        elif (d / "meta.pkl").is_file():
            import pickle

            with open(d / "meta.pkl", "rb") as f:
                meta = pickle.load(f)  # nanoGPT's own format; a local file the user pointed us at
        vocab_size = vocab_size or meta.get("vocab_size")
        if not vocab_size:
            raise ValueError(
                f"bin:{path}: vocab size unknown; pass vocab_size=V or put meta.json with "
                '{"vocab_size": V} in the folder'
            )
        dtype = dtype or meta.get("dtype") or ("uint16" if vocab_size <= 2**16 else "uint32")
        if dtype not in ("uint16", "uint32"):
            raise ValueError(f"bin:{path}: dtype={dtype!r}; allowed: 'uint16', 'uint32'")
        st = [(d / n).stat() for n in ("train.bin", "val.bin")]
        h = hashlib.sha1(f"{d}|{st[0].st_size}|{st[0].st_mtime_ns}|{st[1].st_size}|{st[1].st_mtime_ns}".encode())
        super().__init__(
            f"bin:{d}",
            d / "train.bin",
            d / "val.bin",
            np.dtype(dtype),
            int(vocab_size),
            f"bin-{dtype}-{h.hexdigest()[:12]}",
            meta.get("bytes_per_token"),
        )
