"""Synthetic tasks: character-level, examples packed back to back into each row; the loss is taken
only on answer characters (every other target is -100). Opened by `data.open_data("copy")`, etc.

    copy       `abc|abc;`     copy a string of 1..max_len letters
    addition   `12+345=357;`  add two numbers of 1..digits digits
    brackets   `([)]=N;`      is a string of 1..max_pairs bracket pairs balanced? (half are corrupted)

**Validation never overlaps training, by construction.** The example space is partitioned by a hash
of the prompt (the answer is a function of the prompt, so the prompt identifies the example): an
example whose prompt's BLAKE2b hash is 0 mod `HELD_OUT_EVERY` (~5% of the space) is a validation
example, every other one a training example. `train_batch` draws examples from the task's generator
and skips (redraws) validation ones; `val_batches` draws from a fixed seed and keeps only validation
ones. So no training seed, generator state or row length can ever produce a validation example: the
two sets are disjoint whatever the seeds, not merely unlikely to meet. A separate validation seed
alone is not enough: a training seed can reproduce its stream (validation once equalled the rows of
training seed 0), and small problems such as one-digit sums recur in every stream (10-50% of the
distinct validation examples occurred in the first 10,000 training rows of other seeds). A
validation row's last example may be cut at the row's end; its scored characters (the answer) come
after its complete prompt, so every scored validation token belongs to a held-out example.

The validation distribution is the task's distribution conditioned on the held-out part: for large
problem sizes it matches training, while a tiny stratum (the 26 one-letter copies, the 100 one-digit
sums) contributes only the few members that hash into the held-out part. A task too small to hold
anything out fails when opened, naming the option to raise.
"""

from __future__ import annotations

import hashlib

import torch

from archscale.trainers.source import IGNORE, Batch, DataSource

SYMBOLS = "\n0123456789abcdefghijklmnopqrstuvwxyz+=|;()[]{}YN"  # token i is SYMBOLS[i]; "\n" = padding
_ID = {c: i for i, c in enumerate(SYMBOLS)}

HELD_OUT_EVERY = 20  # an example whose prompt hash is 0 mod 20 is validation-only (~5% of the space)
MAX_DRAWS = 100_000  # draws without finding an example of the wanted split before giving up
VAL_SEED = 2**40  # validation draws from Generator(VAL_SEED + seed); disjointness does not rely on it


def encode_symbols(text: str) -> list[int]:
    return [_ID[c] for c in text]


def decode_symbols(ids) -> str:
    return "".join(SYMBOLS[int(i)] for i in ids)


def is_validation_example(prompt: str) -> bool:
    """The partition of the example space: True for the held-out (validation) part.
    A stable hash (not Python's salted `hash`), so every process and machine agrees."""
    digest = hashlib.blake2b(prompt.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % HELD_OUT_EVERY == 0


class _Draws:
    """Uniform integers for the example generators, taken from `generator` in blocks (one torch call
    per block rather than one per choice, which made generation the slow part of a training step).
    `below(k)` is a 30-bit value mod k: uniform up to a bias below k / 2**30. One `_Draws` lives for
    one batch, so the generator's state between batches (what checkpoints save) is exact."""

    BLOCK = 1024

    def __init__(self, generator: torch.Generator):
        self.generator, self._block = generator, iter(())

    def below(self, k: int) -> int:
        v = next(self._block, None)
        if v is None:
            self._block = iter(torch.randint(0, 2**30, (self.BLOCK,), generator=self.generator).tolist())
            v = next(self._block)
        return v % k


def _copy_example(r: _Draws, max_len: int) -> tuple[str, str]:
    n = 1 + r.below(max_len)
    s = "".join(SYMBOLS[11 + r.below(26)] for _ in range(n))
    return f"{s}|", f"{s};"


def _number(r: _Draws, max_digits: int) -> int:
    """Uniform in [0, 10**k - 1] (k uniform digits), with k uniform in 1..max_digits."""
    return int("".join(str(r.below(10)) for _ in range(1 + r.below(max_digits))))


def _addition_example(r: _Draws, digits: int) -> tuple[str, str]:
    a, b = _number(r, digits), _number(r, digits)
    return f"{a}+{b}=", f"{a + b};"


def _balanced(s: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for c in s:
        if c in "([{":
            stack.append(c)
        elif not stack or stack.pop() != pairs[c]:
            return False
    return not stack


def _brackets_example(r: _Draws, max_pairs: int) -> tuple[str, str]:
    n = 1 + r.below(max_pairs)
    out, stack, opened = [], [], 0
    close = {"(": ")", "[": "]", "{": "}"}
    for _ in range(2 * n):  # a random balanced string of n pairs over three bracket kinds
        if opened < n and (not stack or r.below(2)):
            c = "([{"[r.below(3)]
            stack.append(c)
            out.append(c)
            opened += 1
        else:
            out.append(close[stack.pop()])
    s = "".join(out)
    if r.below(2):  # corrupt half of them: change one character to a different bracket
        i = r.below(len(s))
        choices = [c for c in "()[]{}" if c != s[i]]
        s = s[:i] + choices[r.below(len(choices))] + s[i + 1 :]
    return f"{s}=", "Y;" if _balanced(s) else "N;"


class SyntheticTask(DataSource):
    """copy: `abc|abc;`  addition: `12+345=357;`  brackets: `([)]=N;` (Y if balanced).
    Each row is examples packed back to back (the last one cut at the row's end); targets are the
    answer characters (after `|` or `=`, terminator `;` included), -100 elsewhere. Options: the
    size of the problems (`max_len` for copy, `digits` for addition, `max_pairs` for brackets).
    Training and validation examples come from disjoint parts of the example space (module docstring)."""

    TASKS = {
        "copy": (_copy_example, "max_len", 16),
        "addition": (_addition_example, "digits", 3),
        "brackets": (_brackets_example, "max_pairs", 8),
    }

    def __init__(self, task: str, **options):
        fn, option, default = self.TASKS[task]
        unknown = set(options) - {option}
        if unknown:
            raise ValueError(f"{task}: unknown option(s) {sorted(unknown)}; allowed: {option}")
        self.size = int(options.get(option, default))
        if self.size < 1:
            raise ValueError(f"{task}: {option} must be >= 1, got {self.size}")
        self._example, self._option = fn, option
        self.name, self.vocab_size, self.bytes_per_token = task, len(SYMBOLS), None
        self.fingerprint = f"{task}-{option}{self.size}-v2"  # v2: held-out validation partition
        self._draw(_Draws(torch.Generator().manual_seed(VAL_SEED)), validation=True)  # fail now if nothing is held out

    def _draw(self, r: _Draws, validation: bool) -> tuple[str, str]:
        """The next example of the wanted split (examples of the other split are skipped)."""
        for _ in range(MAX_DRAWS):
            prompt, answer = self._example(r, self.size)
            if is_validation_example(prompt) == validation:
                return prompt, answer
        split = "validation" if validation else "training"
        raise ValueError(
            f"{self.name}: {self._option}={self.size} is too small to hold out validation examples "
            f"(no {split} example in {MAX_DRAWS} draws); raise {self._option}"
        )

    def _row(self, r: _Draws, length: int, validation: bool) -> tuple[list[int], list[bool]]:
        ids: list[int] = []
        answer: list[bool] = []
        while len(ids) < length:
            prompt, ans = self._draw(r, validation)
            ids += encode_symbols(prompt + ans)
            answer += [False] * len(prompt) + [True] * len(ans)
        return ids[:length], answer[:length]

    def _batch(self, g: torch.Generator, batch_size: int, seq_len: int, validation: bool) -> Batch:
        r = _Draws(g)
        rows = [self._row(r, seq_len + 1, validation) for _ in range(batch_size)]
        ids = torch.tensor([r[0] for r in rows], dtype=torch.int64)  # (B, T+1)
        is_answer = torch.tensor([r[1] for r in rows], dtype=torch.bool)
        y = ids[:, 1:].masked_fill(~is_answer[:, 1:], IGNORE)
        return ids[:, :-1].contiguous(), y.contiguous()

    def train_batch(self, batch_size: int, seq_len: int, generator: torch.Generator) -> Batch:
        return self._batch(generator, batch_size, seq_len, validation=False)

    def val_batches(self, seq_len: int, tokens: int, batch_size: int, seed: int = 0) -> list[Batch]:
        g = torch.Generator().manual_seed(VAL_SEED + seed)
        n_rows = max(1, -(-tokens // seq_len))
        return [
            self._batch(g, min(batch_size, n_rows - i), seq_len, validation=True) for i in range(0, n_rows, batch_size)
        ]
