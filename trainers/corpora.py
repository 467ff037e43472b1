"""Text corpora: the standard library's sources (`pystdlib`) and text files (`text:PATH`), split without leaks.

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
import sys
import sysconfig
from pathlib import Path

import numpy as np

from archscale.trainers.splits import (
    SPLIT_VERSION,
    _file_list_hash,
    _is_val_file,
    _read_files,
    _write_split,
)
from archscale.trainers.streams import TokenStream, _build_atomically, cache_dir

VAL_FRACTION = 0.05  # a single text file: its last 5% of bytes are validation


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
