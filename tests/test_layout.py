"""The source layout's rules, read from the files (never by importing them): no import cycle among
the modules of a folder, no source file over 400 lines, and a docstring on every module.

Imports are read with `ast`, including imports inside functions (a lazy import is still an edge):
`from archscale.X.m import y`, `import archscale.X.m`, `from .m import y`, `from . import m` and
`from archscale.X import m` (an edge to `m` when `m` is a module of the folder, else to the package's
`__init__`). A subpackage belongs to its top folder: `analysis/laws/power.py` is module
`laws.power` of `analysis`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("spaces", "trainers", "search", "analysis", "clusters")
MAX_LINES = 400


def module_name(folder: Path, path: Path) -> str:
    """`a/b.py` -> "a.b", `a/__init__.py` -> "a", the folder's own `__init__.py` -> "__init__"."""
    parts = list(path.relative_to(folder).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _package_of(module: str, is_package: bool) -> list[str]:
    """The package a module sits in, as a list of names relative to the folder."""
    if module == "__init__":
        return []
    parts = module.split(".")
    return parts if is_package else parts[:-1]


def imported_modules(folder: Path, path: Path, modules: set[str]) -> set[str]:
    """The modules of `folder` that `path` imports anywhere in its body (`modules`: every module name)."""
    top = f"archscale.{folder.name}"
    me = module_name(folder, path)
    package = _package_of(me, path.name == "__init__.py")

    def resolve(dotted: list[str]) -> str | None:
        """The longest prefix of `dotted` (relative to the folder) that is a module; [] = `__init__`."""
        for n in range(len(dotted), 0, -1):
            name = ".".join(dotted[:n])
            if name in modules:
                return name
        return "__init__" if "__init__" in modules else None

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == top or alias.name.startswith(top + "."):
                    targets.append(alias.name.split(".")[2:])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
                if node.level - 1 > len(package):
                    continue  # above the folder: another folder's business
            elif node.module == top or (node.module or "").startswith(top + "."):
                base = []
            else:
                continue
            within = base + (node.module.split(".")[2:] if not node.level else (node.module or "").split("."))
            within = [p for p in within if p]
            for alias in node.names:  # `from pkg import m`: m may be a module of the folder
                candidate = ".".join([*within, alias.name])
                targets.append(candidate.split(".") if candidate in modules else within)
        for dotted in targets:
            target = resolve(dotted) if dotted else ("__init__" if "__init__" in modules else None)
            if target is not None and target != me:
                found.add(target)
    return found


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same folder it imports."""
    paths = {module_name(folder, p): p for p in sorted(folder.rglob("*.py"))}
    modules = set(paths)
    return {name: imported_modules(folder, path, modules) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None. A package's `__init__` importing its own
    submodules (a re-export) is an edge like any other."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def long_files(folder: Path, limit: int = MAX_LINES) -> list[str]:
    return [
        f"{p.relative_to(folder.parent)}: {n} lines"
        for p in sorted(folder.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > limit
    ]


def undocumented(folder: Path) -> list[str]:
    return [
        str(p.relative_to(folder.parent))
        for p in sorted(folder.rglob("*.py"))
        if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()
    ]


# ---- the real tree ---------------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_import_cycle_within_a_folder(folder):
    cycle = find_cycle(import_graph(ROOT / folder))
    assert cycle is None, f"{folder}/: import cycle {' -> '.join(cycle)}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_source_file_over_the_line_cap(folder):
    assert not long_files(ROOT / folder), f"over {MAX_LINES} lines: {long_files(ROOT / folder)}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_module_has_a_docstring(folder):
    assert not undocumented(ROOT / folder), f"no module docstring: {undocumented(ROOT / folder)}"


# ---- the checker itself: it can fail -----------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "pkg"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def test_a_cycle_through_every_import_form_is_found(tmp_path):
    folder = _tree(
        tmp_path,
        {
            "__init__.py": '"""pkg."""\n',
            "a.py": '"""a."""\nfrom archscale.pkg.b import x\n',
            "b.py": '"""b."""\nimport archscale.pkg.sub.c\n',
            "sub/__init__.py": '"""sub."""\n',
            "sub/c.py": '"""c."""\nfrom . import d\n',
            "sub/d.py": '"""d."""\ndef f():\n    from ..a import y  # lazy, relative, two levels\n',
        },
    )
    graph = import_graph(folder)
    assert graph["a"] == {"b"} and graph["b"] == {"sub.c"} and graph["sub.c"] == {"sub.d"}
    assert graph["sub.d"] == {"a"}
    assert find_cycle(graph) == ["a", "b", "sub.c", "sub.d", "a"]


def test_a_package_import_is_an_edge_to_its_module_or_its_init(tmp_path):
    folder = _tree(
        tmp_path,
        {
            "__init__.py": '"""pkg."""\nfrom archscale.pkg.a import f\n',
            "a.py": '"""a."""\nfrom archscale.pkg import b, thing\n',
            "b.py": '"""b."""\nimport os\nfrom archscale.other import z\n',
        },
    )
    graph = import_graph(folder)
    assert graph == {"__init__": {"a"}, "a": {"b", "__init__"}, "b": set()}
    assert find_cycle(graph) == ["__init__", "a", "__init__"]


def test_an_acyclic_tree_passes_and_long_or_undocumented_files_are_named(tmp_path):
    folder = _tree(
        tmp_path,
        {
            "a.py": '"""a."""\nfrom .b import x\n',
            "b.py": "x = 1\n" + "y = 2\n" * MAX_LINES,
        },
    )
    assert find_cycle(import_graph(folder)) is None
    assert long_files(folder) == [f"pkg/b.py: {MAX_LINES + 1} lines"]
    assert undocumented(folder) == ["pkg/b.py"]
