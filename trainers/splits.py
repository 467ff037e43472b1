"""Train/validation splits of text corpora that never leak (the rules are in `archscale.trainers.corpora`).

Files are split whole by path hash; then a validation line whose whitespace-normalised form is at
least `DEDUP_MIN_CHARS` long and also occurs as a training line is dropped from validation, so
copied files, vendored modules and boilerplate cannot put training text into the validation split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

VAL_EVERY = 20  # a file whose path hash is 0 mod 20 is validation (~5%)
DEDUP_MIN_CHARS = 20  # a validation line this long (normalised) is dropped if training has it too
SPLIT_VERSION = 2  # in text fingerprints and cache names; 2: near-duplicate lines dropped from validation


def _normalised(line: bytes) -> bytes:
    """A line with runs of whitespace collapsed to one space and its ends stripped."""
    return b" ".join(line.split())


def _lines(data: bytes) -> list[bytes]:
    """`data` cut after each b"\n" (the newline stays with its line; "".join gives `data` back)."""
    parts = data.split(b"\n")
    return [line + b"\n" for line in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _write_split(train_parts: Iterable[bytes], val_parts: Iterable[bytes], train_out: Path, val_out: Path) -> dict:
    """Write the training parts (byte strings, e.g. files) to `train_out` unchanged, and the
    validation parts to `val_out` minus every line whose normalised form is at least
    `DEDUP_MIN_CHARS` long and occurs in training (rule 2 of the module docstring).
    Parts are handled one by one, so a file's last line never merges with the next file's first.
    Returns byte and line counts for meta.json."""
    seen: set[bytes] = set()
    train_bytes = 0
    with open(train_out, "wb") as f:
        for data in train_parts:
            f.write(data)
            train_bytes += len(data)
            seen.update(key for line in _lines(data) if len(key := _normalised(line)) >= DEDUP_MIN_CHARS)
    val_bytes = dropped_bytes = dropped_lines = 0
    with open(val_out, "wb") as f:
        for data in val_parts:
            for line in _lines(data):
                key = _normalised(line)
                if len(key) >= DEDUP_MIN_CHARS and key in seen:
                    dropped_bytes += len(line)
                    dropped_lines += 1
                else:
                    f.write(line)
                    val_bytes += len(line)
    return {
        "train_bytes": train_bytes,
        "val_bytes": val_bytes,
        "val_dropped_bytes": dropped_bytes,
        "val_dropped_lines": dropped_lines,
    }


def _read_files(files: list[Path]) -> Iterator[bytes]:
    return (p.read_bytes() for p in files)


def _is_val_file(relpath: str) -> bool:
    return int(hashlib.sha1(relpath.encode()).hexdigest(), 16) % VAL_EVERY == 0


def _file_list_hash(root: Path, files: list[Path]) -> str:
    h = hashlib.sha1()
    for p in files:
        h.update(
            f"{p.relative_to(root) if p != root else p.name}\0{p.stat().st_size}\0{p.stat().st_mtime_ns}\n".encode()
        )
    return h.hexdigest()[:12]
