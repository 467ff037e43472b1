"""Packaging: every package folder is installed, and building says nothing a user must act on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("spaces", "trainers", "search", "analysis", "clusters")


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    """A subpackage missing from pyproject's explicit `packages` imports from a checkout (the editable
    finder maps only the folders) but is absent from a wheel: list every folder holding modules."""
    config = setuptools_config()
    on_disk = {
        "archscale." + ".".join(d.relative_to(ROOT).parts)
        for top in FOLDERS
        for d in [ROOT / top, *(ROOT / top).rglob("*")]
        if d.is_dir() and "__pycache__" not in d.parts and any(d.glob("*.py"))
    }
    assert on_disk <= set(config["packages"]), sorted(on_disk - set(config["packages"]))
    for name in config["packages"]:
        assert (ROOT / config["package-dir"][name]).is_dir(), name


@pytest.mark.slow
def test_building_a_wheel_prints_no_warning(tmp_path):
    # build from a copy: an in-tree build would leave build/ in the checkout
    source = tmp_path / "src"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "results", "*.egg-info", ".*_cache")
    )
    tmp_path = tmp_path / "dist"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [line for line in (r.stdout + r.stderr).splitlines() if "Warning" in line]
    assert not warnings, "\n".join(warnings)
    (wheel,) = tmp_path.glob("archscale-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "archscale/clusters/k8s/raycluster.yaml" in names and "archscale/spaces/tiny.yaml" in names
