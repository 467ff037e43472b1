"""The GPU check's record: one `CheckItem` per thing checked, a `CheckReport` of them, its JSON and Markdown.

    item = CheckItem("attention.sdpa", "pass", numbers={"worst_error_ratio": 0.93}, verdict="...")
    report = CheckReport(items, environment)
    report.write(out_dir)      # out_dir/gpu_check.json and out_dir/gpu_check.md
    report.exit_code           # 0: nothing failed (skips are fine); 1: something failed

Torch-free: the command and the writers import this without torch; the items are built by
`archscale.trainers.gpu_check` (torch) and `archscale.search.gpu_check` (Ray).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "fail", "skipped"]
STATUSES: tuple[str, ...] = ("pass", "fail", "skipped")
JSON_NAME, MARKDOWN_NAME = "gpu_check.json", "gpu_check.md"
NEEDS_CUDA = "needs CUDA: torch sees no CUDA device here"


@dataclass(frozen=True)
class CheckItem:
    """One named check: its status, why (always for fail and skipped), its measured numbers and one line
    a person reads. Numbers are plain floats, ints or strings so the JSON needs no encoder."""

    name: str
    status: Status
    reason: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: got {self.status!r}; allowed: {', '.join(STATUSES)}")
        if self.status != "pass" and not self.reason:
            raise ValueError(f"{self.name}: a {self.status} item needs a reason")

    @classmethod
    def skipped(cls, name: str, reason: str) -> CheckItem:
        return cls(name, "skipped", reason=reason, verdict=f"skipped: {reason}")

    @classmethod
    def failed(cls, name: str, error: BaseException) -> CheckItem:
        """An item whose code raised: the error's last line, no traceback."""
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        return cls(name, "fail", reason=message, verdict=f"error: {message}")


def guarded(name: str, run: Callable[[], list[CheckItem]]) -> list[CheckItem]:
    """`run()`'s items, or one failed item named `name` carrying the error if it raised: one broken
    path never hides the others, and no traceback reaches the user."""
    try:
        return run()
    except Exception as e:
        return [CheckItem.failed(name, e)]


@dataclass(frozen=True)
class CheckReport:
    """Every item of one run of the check, in the order they ran, with what ran them."""

    items: tuple[CheckItem, ...]
    environment: dict[str, Any] = field(default_factory=dict)  # versions, devices, where it ran, --quick

    @property
    def failed(self) -> tuple[CheckItem, ...]:
        return tuple(i for i in self.items if i.status == "fail")

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def verdict(self) -> str:
        counts = {s: sum(i.status == s for i in self.items) for s in STATUSES}
        line = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped"
        if self.failed:
            return f"{line}: failing {', '.join(i.name for i in self.failed)}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "environment": self.environment,
            "items": [{**asdict(i), "numbers": {k: _strict(v) for k, v in i.numbers.items()}} for i in self.items],
        }

    def to_markdown(self) -> str:
        """A short table: one row per item (status, verdict), then every number, one line per item."""
        env = self.environment
        lines = [
            "# archscale check gpu",
            "",
            f"{env.get('device_name') or 'no CUDA device'}; torch {env.get('torch')}, "
            f"CUDA {env.get('cuda')}, Triton {env.get('triton')}; quick={env.get('quick')}; {self.verdict}",
            "",
            "| item | status | verdict |",
            "| --- | --- | --- |",
        ]
        lines += [f"| {i.name} | {i.status} | {_cell(i.verdict)} |" for i in self.items]
        lines += ["", "## Numbers", ""]
        for i in self.items:
            if i.numbers:
                parts = ", ".join(f"{k} {_number(v)}" for k, v in i.numbers.items())
                lines.append(f"- **{i.name}**: {_cell(parts)}")
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> tuple[Path, Path]:
        """out/gpu_check.json and out/gpu_check.md, each written whole then renamed into place."""
        out.mkdir(parents=True, exist_ok=True)
        paths = out / JSON_NAME, out / MARKDOWN_NAME
        for path, text in zip(paths, (json.dumps(self.to_dict(), indent=2) + "\n", self.to_markdown()), strict=True):
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, path)
        return paths


def _strict(v: Any) -> Any:
    """A number JSON can hold: NaN and infinities become the strings "nan", "inf", "-inf"."""
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


def _number(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
