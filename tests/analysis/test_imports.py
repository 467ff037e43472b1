"""`import archscale.analysis` stays light: no torch, Ray or Triton, and the CLI module imports
only typer and the standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "analysis"
#: The layers of analysis/, lowest first: a module imports only from its own layer or lower ones.
LAYERS = ("data", "laws", "compare", "present")

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

    root = Path(an.__file__).parent
    modules = sorted(".".join(p.relative_to(root).with_suffix("").parts) for p in root.rglob("*.py"))
    loaded = _modules_after("; ".join(f"import archscale.analysis.{m}" for m in modules))
    assert len(modules) >= 30
    bad = sorted(m for m in loaded if m.startswith(("archscale.search", "archscale.trainers", "archscale.clusters")))
    assert not bad, bad


def _analysis_imports(path: Path) -> set[str]:
    """The ``archscale.analysis`` modules ``path`` imports, lazily inside functions too (dotted,
    relative to ``archscale.analysis``)."""
    package = path.relative_to(ROOT).parent.parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("archscale.analysis"):
                target = node.module.split(".")[2:]
            else:
                continue
            names = [a.name for a in node.names]
            subs = [n for n in names if (ROOT.joinpath(*target, n + ".py")).exists()]  # `from . import x`
            out |= {".".join([*target, n]) for n in subs} if subs else {".".join(target)}
        elif isinstance(node, ast.Import):
            out |= {
                a.name[len("archscale.analysis.") :] for a in node.names if a.name.startswith("archscale.analysis.")
            }
    return {m for m in out if m}


def _graph() -> dict[str, set[str]]:
    files = [p for p in ROOT.rglob("*.py")]
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): _analysis_imports(p) for p in files}


def test_imports_point_down_the_layers() -> None:
    """present -> compare -> laws -> data: no module imports a layer above its own."""
    bad = []
    for module, imports in _graph().items():
        layer = module.split(".")[0]
        if layer not in LAYERS:
            continue  # the package's lazy index and the CLI stand above every layer
        for imported in imports:
            other = imported.split(".")[0]
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(layer):
                bad.append(f"{module} imports {imported}")
    assert not bad, bad


def test_no_import_cycle_inside_a_folder() -> None:
    graph = _graph()
    folder = {m: m.rsplit(".", 1)[0] if "." in m else "" for m in graph}
    edges = {
        m: {i for i in imports if i in graph and folder[i] == folder[m] and i != m} for m, imports in graph.items()
    }
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in edges[m]:
            assert state.get(n) != 1, f"import cycle: {' -> '.join([*path, m, n])}"
            if n not in state:
                visit(n, [*path, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert len(graph) >= 30 and any(edges.values())  # the walk saw the package


def test_every_module_is_short_and_says_its_subject() -> None:
    for path in ROOT.rglob("*.py"):
        lines = path.read_text().splitlines()
        assert len(lines) <= 400, f"{path}: {len(lines)} lines"
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.splitlines()[0].strip(), f"{path}: no docstring saying its subject"
