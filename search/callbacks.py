"""Ray Tune callbacks on the driver: live progress of a search or study (display only).

The results files and the Optuna study are written by the searcher alone (`search/searcher.py`),
which Ray calls before these callbacks; a trial's final status here comes from the same
`trial.ended_as` rule, so the display and the files never disagree.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray.tune import Callback

from archscale.search.trial import TrialReport, ended_as
from archscale.spaces.record import TrialStatus


def _report(trial) -> TrialReport | None:
    result = trial.last_result or {}
    return TrialReport.from_result(result) if "trial_number" in result else None


def _label(trial) -> str:
    from archscale.spaces import ArchConfig

    arch = trial.config.get("arch")
    return ArchConfig(**arch).label if arch else "(infeasible)"


class ProgressCallback(Callback):
    """Running trials, tokens/s, best so far, ETA (rich live table on a TTY; plain lines otherwise)."""

    def __init__(self, total: int, enabled: bool = True, out: str | None = None):
        self.total, self.enabled, self.out = total, enabled, out
        self.start = time.monotonic()
        self.running: dict[int, dict[str, Any]] = {}
        self.done = 0
        self.best: tuple[float, str] | None = None
        self._live = None

    def __getstate__(self):
        return {**self.__dict__, "_live": None}

    def setup(self, **info):
        if not self.enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            from rich.live import Live

            self._live = Live(self._render(), console=console, refresh_per_second=2, transient=False)
            self._live.start()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        report = TrialReport.from_result(result) if "trial_number" in result else None
        if report is not None and report.status == TrialStatus.RUNNING:
            self.running[report.trial_number] = {"label": _label(trial), "report": report}
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trial, worker_error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trial, worker_error=True)

    def _finished(self, trial, worker_error: bool) -> None:
        from archscale.search.searcher import WRITE_FAILURES

        if self.out in WRITE_FAILURES:  # the search is stopping with one error; trials end as collateral
            return
        report = _report(trial)
        number = int(trial.config["number"])
        self.running.pop(number, None)
        self.done += 1
        status = ended_as(report, worker_error)
        loss = report.final_loss if report else None
        if status == TrialStatus.COMPLETED and loss is not None and (self.best is None or loss < self.best[0]):
            self.best = (loss, f"#{number} {_label(trial)}")
        if self.enabled and self._live is None:
            loss_text = f"{loss:.4f}" if loss is not None and math.isfinite(loss) else "-"
            why = _error_text(trial, report) if status == TrialStatus.FAILED else ""
            print(
                f"[{self.done}/{self.total}] trial {number} {status.value:9s} eval_loss {loss_text}  "
                f"tokens {report.tokens if report else 0:,}  {_label(trial)}{why}",
                file=sys.stderr,
                flush=True,
            )
        self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self):
        from rich.table import Table

        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        best = f"best {self.best[0]:.4f} ({self.best[1]})" if self.best else "best -"
        title = (
            f"{self.done}/{self.total} trials done · {len(self.running)} running · {best} · "
            f"{elapsed:.0f}s elapsed" + (f" · ETA {eta:.0f}s" if eta is not None else "")
        )
        table = Table(title=title, title_justify="left")
        for col in ("trial", "architecture", "tokens", "eval_loss", "tokens/s"):
            table.add_column(col)
        for number, r in sorted(self.running.items()):
            report: TrialReport = r["report"]
            loss = report.final_loss
            table.add_row(
                str(number),
                r["label"],
                f"{report.tokens:,}/{report.target_tokens:,}",
                f"{loss:.4f}" if loss is not None else "-",
                f"{report.tokens_per_s or 0:,.0f}",
            )
        return table

    def on_experiment_end(self, trials, **info):
        if self._live is not None:
            self._live.stop()
            self._live = None


def _error_text(trial, report: TrialReport | None) -> str:
    if report is not None and report.error:
        return f"  {report.error}"
    try:
        return "  " + str(trial.get_error()).strip().splitlines()[-1][:300]
    except Exception:
        return ""
