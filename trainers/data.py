"""Data sources: where training tokens come from, looked up by a spec string.

    open_data("pystdlib")             the running Python's standard library, bytes (the default)
    open_data("text:PATH")            a text file or a folder of text files; tokenizer="bytes"|"bpe"
    open_data("bin:DIR")              nanoGPT token files train.bin / val.bin (uint16 or uint32)
    open_data("copy"|"addition"|"brackets")   synthetic tasks (trainers/synthetic.py), loss on answer tokens only
    open_data("text:PATH?tokenizer=bpe&vocab_size=8192")   options may ride in the spec string

Corpora live in memory maps under the cache directory (`$XDG_CACHE_HOME/archscale`, else
`~/.cache/archscale`); batches are random crops read from the map, so a corpus is never held as
Python objects. Caches are built atomically (a private temp dir renamed into place), so several
processes (Ray trials) may build the same cache at once: one rename wins, the others discard theirs.

How text is split (pystdlib, text:PATH), so that validation text is never training text:
1. Files are split whole: a file whose relative path's SHA-1 is 0 mod `VAL_EVERY` is validation
   (a folder with no such file gives its last file; a single file gives its last `VAL_FRACTION`,
   cut at a line break).
2. Near-identical lines are then removed from validation: a validation line is dropped when its
   normalised form (runs of whitespace collapsed to one space, ends stripped, so re-indented copies
   match) is at least `DEDUP_MIN_CHARS` long and is also a normalised line of the training split.
   Splitting by file alone leaks: the standard library repeats license headers, boilerplate and
   vendored or copied code across files, and 19% of pystdlib's validation lines of >= 20 characters
   occurred in training. Matching exact normalised lines (a set of bytes, no hash collisions) makes
   the check provable: after the build, no validation line of >= 20 characters has a normalised
   form that occurs in training (tested). Shorter lines (`else:`, `return None`, `)`, blank lines)
   stay: they are the language's common idioms rather than copied text, carry little information,
   and removing them would shred the code's structure. Lines that differ by more than whitespace
   (a renamed identifier) are not matched; that is new text to predict, not a copy.
   The training split is never changed, and the validation split stays ~4% of the corpus.
`SPLIT_VERSION` is part of every text fingerprint and cache name, so caches built under older split
rules are never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from archscale.trainers.splits import (
    SPLIT_VERSION,
    _file_list_hash,
    _is_val_file,
    _read_files,
    _write_split,
)

IGNORE = -100  # target value excluded from the loss (F.cross_entropy's ignore_index)
VAL_FRACTION = 0.05  # a single text file: its last 5% of bytes are validation


Batch = tuple[Tensor, Tensor]


class DataSource:
    """The contract every data source keeps (written once, here).

    - `name`, `vocab_size`, `fingerprint` and `bytes_per_token` are plain attributes, known as
      soon as the source is opened (before any batch), and never change.
      `fingerprint` identifies the exact token stream (recorded with every run);
      `bytes_per_token` is the mean number of UTF-8 bytes per token on the validation split
      (1.0 for byte-level data; None when tokens are not text, e.g. synthetic tasks), so
      nats/token / bytes_per_token / ln 2 = bits per byte.
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
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, fingerprint={self.fingerprint!r})"
        )


# --------------------------------------------------------------------------------------------
# Token streams in memory maps


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


# --------------------------------------------------------------------------------------------
# pystdlib


STDLIB_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})


def stdlib_files() -> tuple[Path, list[Path]]:
    """The `.py` files of the running Python's standard library, sorted by relative path.
    Excluded: site-packages (third-party code), test suites (`test`, `tests`, `idle_test` dirs:
    large generated-looking fixtures that would dominate the corpus) and `config-*` build dirs."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in STDLIB_EXCLUDED_DIRS and not x.startswith("config-"))
        files += [Path(d) / n for n in names if n.endswith(".py")]
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


class PyStdlib(TokenStream):
    """The standard library's sources as bytes, split by the rules in the module docstring.
    Fingerprint: `py<version>-<hash of the relative paths and sizes>-v<SPLIT_VERSION>`."""

    def __init__(self):
        root, files = stdlib_files()
        if not files:
            raise ValueError(f"pystdlib: no .py files found under {root}")
        listing = "\n".join(f"{p.relative_to(root).as_posix()}\0{p.stat().st_size}" for p in files)
        h = hashlib.sha1(listing.encode()).hexdigest()[:12]
        version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
        fingerprint = f"py{version}-{h}-v{SPLIT_VERSION}"

        def build(tmp: Path) -> None:
            val = [p for p in files if _is_val_file(p.relative_to(root).as_posix())]
            train = [p for p in files if not _is_val_file(p.relative_to(root).as_posix())]
            counts = _write_split(_read_files(train), _read_files(val), tmp / "train.u8", tmp / "val.u8")
            (tmp / "meta.json").write_text(
                json.dumps(
                    {
                        "root": str(root),
                        "fingerprint": fingerprint,
                        "train_files": len(train),
                        "val_files": len(val),
                        **counts,
                    }
                )
            )

        d = _build_atomically(cache_dir() / f"pystdlib-{fingerprint}", build)
        super().__init__("pystdlib", d / "train.u8", d / "val.u8", np.uint8, 256, fingerprint, 1.0)


# --------------------------------------------------------------------------------------------
# text:PATH


def _text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(
        (
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    return [p for p in files if b"\0" not in p.read_bytes()[:8192]]  # skip binary files


class TextFiles(TokenStream):
    """A text file (last 5% is validation) or a folder (split by file, ~5% of files validation), with
    near-duplicate lines dropped from validation (module docstring); a text with nothing left to
    hold out is an error. tokenizer="bytes": vocab 256. tokenizer="bpe": a byte-level BPE of `vocab_size` tokens trained
    locally with `tokenizers` on the training split, saved as tokenizer.json beside the cache."""

    def __init__(self, path: str, tokenizer: str = "bytes", vocab_size: int = 4096):
        p = Path(path).expanduser().resolve()
        if not p.exists():
            raise ValueError(f"text:{path}: no such file or folder")
        if tokenizer not in ("bytes", "bpe"):
            raise ValueError(f"text:{path}: tokenizer={tokenizer!r}; allowed: 'bytes', 'bpe'")
        files = _text_files(p)
        if not files:
            raise ValueError(f"text:{path}: no text files found")
        if tokenizer == "bpe" and not 257 <= vocab_size <= 2**32 - 1:
            raise ValueError(f"text:{path}: bpe vocab_size must be > 256, got {vocab_size}")
        key = f"{'bytes' if tokenizer == 'bytes' else f'bpe{vocab_size}'}-{_file_list_hash(p, files)}-v{SPLIT_VERSION}"
        path_tag = hashlib.sha1(str(p).encode()).hexdigest()[:8]
        if len(files) == 1:
            val_files, train_files = [], files
        else:
            val_files = [f for f in files if _is_val_file(f.relative_to(p).as_posix())] or files[-1:]
            train_files = [f for f in files if f not in val_files]

        def build(tmp: Path) -> None:
            if val_files:
                counts = _write_split(
                    _read_files(train_files), _read_files(val_files), tmp / "train.raw", tmp / "val.raw"
                )
            else:  # one file: the last VAL_FRACTION of its bytes, cut at a line break
                raw = files[0].read_bytes()
                cut = raw.rfind(b"\n", 0, int(len(raw) * (1 - VAL_FRACTION))) + 1 or int(len(raw) * (1 - VAL_FRACTION))
                counts = _write_split([raw[:cut]], [raw[cut:]], tmp / "train.raw", tmp / "val.raw")
            if not counts["val_bytes"]:
                raise ValueError(
                    f"text:{path}: every validation line also occurs in the training split (after "
                    f"normalising whitespace), so nothing is held out; give more distinct text"
                )
            meta = {"path": str(p), "tokenizer": tokenizer, "files": len(files), **counts}
            if tokenizer == "bytes":
                os.rename(tmp / "train.raw", tmp / "train.bin")
                os.rename(tmp / "val.raw", tmp / "val.bin")
                meta.update(dtype="uint8", vocab_size=256, val_tokens=meta["val_bytes"])
            else:
                meta.update(_bpe_encode(tmp, vocab_size))
            (tmp / "meta.json").write_text(json.dumps(meta))

        d = _build_atomically(cache_dir() / f"text-{path_tag}-{key}", build)
        meta = json.loads((d / "meta.json").read_text())
        super().__init__(
            f"text:{p}",
            d / "train.bin",
            d / "val.bin",
            np.dtype(meta["dtype"]),
            meta["vocab_size"],
            f"{tokenizer}-{key}",
            meta["val_bytes"] / max(1, meta["val_tokens"]),
        )
        self.tokenizer_path = d / "tokenizer.json" if tokenizer == "bpe" else None


def _bpe_encode(tmp: Path, vocab_size: int) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )

    def lines(path: Path, chunk: int = 1 << 20):
        with open(path, "rb") as f:
            while block := f.read(chunk):
                yield block.decode("utf-8", errors="replace")

    tok.train_from_iterator(lines(tmp / "train.raw"), trainer=trainer)
    tok.save(str(tmp / "tokenizer.json"))
    real_vocab = tok.get_vocab_size()
    dtype = np.uint16 if real_vocab <= 2**16 else np.uint32
    counts = {}
    for split in ("train", "val"):
        with open(tmp / f"{split}.bin", "wb") as out:
            n = 0
            for text in lines(tmp / f"{split}.raw"):
                ids = np.asarray(tok.encode(text).ids, dtype=dtype)
                ids.tofile(out)
                n += len(ids)
        counts[split] = n
        (tmp / f"{split}.raw").unlink()
    return {"dtype": np.dtype(dtype).name, "vocab_size": real_vocab, "val_tokens": counts["val"]}


# --------------------------------------------------------------------------------------------
# bin:DIR (nanoGPT)


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


# --------------------------------------------------------------------------------------------
# The registry

SPECS = "pystdlib, text:PATH, bin:DIR, copy, addition, brackets (options after '?', e.g. text:PATH?tokenizer=bpe)"


def open_data(spec: str, **options) -> DataSource:
    """Open the data source named by `spec` (see the module docstring). Options may also be given
    inside the spec, after `?`, so a plain string reaches every option from the CLI and search
    files: `text:docs/?tokenizer=bpe&vocab_size=8192`, `addition?digits=5`, `bin:owt?vocab_size=50257`.
    Unknown specs or options raise ValueError naming the spec and what is allowed."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data spec {spec!r}: expected one of {SPECS}")
    base, _, query = spec.partition("?")
    if query:
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            if not key or not eq:
                raise ValueError(f"data spec {spec!r}: options after '?' must be key=value pairs joined by '&'")
            if key in options:
                raise ValueError(f"data spec {spec!r}: option {key!r} given twice")
            options[key] = int(value) if value.isdigit() else value
    kind, _, arg = base.partition(":")
    if kind == "pystdlib" and not arg:
        _no_options(spec, options, set())
        return PyStdlib()
    if kind == "text" and arg:
        _no_options(spec, options, {"tokenizer", "vocab_size"})
        return TextFiles(arg, **options)
    if kind == "bin" and arg:
        _no_options(spec, options, {"vocab_size", "dtype"})
        return TokenFiles(arg, **options)
    from archscale.trainers.synthetic import SyntheticTask  # imports this module: import here, not at the top

    if kind in SyntheticTask.TASKS and not arg:
        return SyntheticTask(kind, **options)
    raise ValueError(f"data spec {spec!r}: unknown; allowed: {SPECS}")


def _no_options(spec: str, options: dict, allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"data spec {spec!r}: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed) or 'none'}"
        )
