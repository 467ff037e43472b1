"""Data sources: where training tokens come from, looked up by a spec string.

    open_data("pystdlib")             the running Python's standard library, bytes (the default)
    open_data("text:PATH")            a text file or a folder of text files; tokenizer="bytes"|"bpe"
    open_data("bin:DIR")              nanoGPT token files train.bin / val.bin (uint16 or uint32)
    open_data("copy"|"addition"|"brackets")   synthetic tasks (trainers/synthetic.py), loss on answer tokens only
    open_data("text:PATH?tokenizer=bpe&vocab_size=8192")   options may ride in the spec string

Where each kind lives: the contract every source keeps in `source.py`, memory-mapped token streams
and their cache (and `bin:DIR`) in `streams.py`, the text corpora and their leak-free splits in
`corpora.py`, the synthetic tasks in `synthetic.py`; this module only opens them by name.
"""

from __future__ import annotations

from archscale.trainers.corpora import STDLIB_EXCLUDED_DIRS, VAL_FRACTION, PyStdlib, TextFiles, stdlib_files
from archscale.trainers.source import IGNORE, Batch, DataSource
from archscale.trainers.streams import TokenFiles, TokenStream, cache_dir
from archscale.trainers.synthetic import SyntheticTask

__all__ = [
    "IGNORE",
    "SPECS",
    "STDLIB_EXCLUDED_DIRS",
    "VAL_FRACTION",
    "Batch",
    "DataSource",
    "PyStdlib",
    "SyntheticTask",
    "TextFiles",
    "TokenFiles",
    "TokenStream",
    "cache_dir",
    "open_data",
    "stdlib_files",
]

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
    if kind in SyntheticTask.TASKS and not arg:
        return SyntheticTask(kind, **options)
    raise ValueError(f"data spec {spec!r}: unknown; allowed: {SPECS}")


def _no_options(spec: str, options: dict, allowed: set[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"data spec {spec!r}: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed) or 'none'}"
        )
