"""`import archscale.analysis` stays light: no torch, Ray or Triton, and the CLI module imports
only typer and the standard library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "ray", "triton")


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}; import sys; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_import_analysis_does_not_import_torch_ray_triton() -> None:
    code = (
        "import archscale.analysis as an, sys; "
        "an.load_trials; an.fit_chinchilla; an.pareto_front; an.build_chart; an.write_report; an.open_study; "
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_module_imports_only_typer_and_stdlib() -> None:
    loaded = _modules_after("import archscale.analysis.commands")
    for heavy in (*HEAVY, "polars", "altair", "scipy", "numpy", "optuna"):
        assert heavy not in loaded, f"archscale.analysis.commands imports {heavy} at module level"


def test_analysis_imports_only_spaces_of_archscale() -> None:
    """One-way imports: analysis reads result files and may use `archscale.spaces` (the trial
    record), never `search`, `trainers` or `clusters`."""
    from pathlib import Path

    import archscale.analysis as an

    modules = sorted(p.stem for p in Path(an.__file__).parent.glob("*.py") if p.stem != "__init__")
    loaded = _modules_after("; ".join(f"import archscale.analysis.{m}" for m in modules))
    assert len(modules) >= 10
    bad = sorted(m for m in loaded if m.startswith(("archscale.search", "archscale.trainers", "archscale.clusters")))
    assert not bad, bad
