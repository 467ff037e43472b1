"""The data-source contract: `DataSource`, the `(x, y)` `Batch` it returns, and the `IGNORE` target.

Every source (token streams in `streams.py`, text corpora in `corpora.py`, synthetic tasks in
`synthetic.py`) implements `DataSource`; `data.open_data` opens one by its spec string.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE = -100  # target value excluded from the loss (F.cross_entropy's ignore_index)


Batch = tuple[Tensor, Tensor]


class DataSource:
    """The contract every data source keeps (written once, here).

    - `name`, `vocab_size`, `fingerprint` and `bytes_per_token` are plain attributes, known as
      soon as the source is opened (before any batch), and never change.
      `fingerprint` identifies the exact token stream (recorded with every run);
      `bytes_per_token` is the mean number of UTF-8 bytes per token on the validation split
      (1.0 for byte-level data; None when tokens are not text, e.g. synthetic tasks), so
      nats/token / bytes_per_token / ln 2 = bits per byte.
    - `train_tokens` is the number of tokens in the training split, or None when training data is
      unlimited (synthetic tasks draw fresh examples); a run's `epochs` is its tokens over this.
    - `train_batch(batch_size, seq_len, generator)` returns (x, y), int64 tensors of shape
      (B, T) on CPU; y is x shifted by one token, with -100 where no loss is taken. All
      randomness comes from `generator`, so a fixed generator state gives the same batch
      (this is what makes training deterministic and resumable).
    - `val_batches(seq_len, tokens, batch_size, seed=0)` returns a fixed list of (x, y)
      batches covering about `tokens` target positions. It depends only on its arguments, never
      on the model, so every architecture is evaluated on the same text and losses compare.
    - Sources are read-only after opening and safe to share between threads; each process
      opens its own (memory maps are opened lazily and are cheap).
    """

    name: str
    vocab_size: int
    fingerprint: str
    bytes_per_token: float | None
    train_tokens: int | None = None

    def train_batch(self, batch_size: int, seq_len: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def val_batches(self, seq_len: int, tokens: int, batch_size: int, seed: int = 0) -> list[Batch]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "vocab_size": self.vocab_size,
            "bytes_per_token": self.bytes_per_token,
            "train_tokens": self.train_tokens,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, fingerprint={self.fingerprint!r})"
        )
