"""`archscale check gpu` in CPU mode: every item reported, GPU items skipped naming CUDA, files written;
the float64-reference rule fails a wrong backend; the record, the report and the throughput rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from archscale.trainers import attention as attention_module
from archscale.trainers.gpu_check_attention import (
    ERROR_MULTIPLE,
    _backend_item,
    case_arch,
    compare_to_reference,
    run_case,
)
from archscale.trainers.gpu_check_report import JSON_NAME, MARKDOWN_NAME, CheckItem, CheckReport
from archscale.trainers.gpu_check_training import steady_throughput

ITEMS = {
    "devices": "cpu",
    "peaks": "cpu",
    "attention.materialised": "cpu",
    "attention.sdpa": "cpu",
    "attention.flex_eager": "cpu",
    "attention.flex_compiled": "gpu",
    "kernels.swiglu": "gpu",
    "kernels.geglu": "gpu",
    "kernels.reglu": "gpu",
    "kernels.rmsnorm": "gpu",
    "training.cpu_tiny": "cpu",
    "training.gpt2_124m": "gpu",
    "training.compiled_variants": "gpu",
    "memory.estimate": "gpu",
    "cluster": "no --address",
    "ray.packing": "gpu",
    "ray.search": "gpu",
}


def _cpu_only_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU mode on any machine
    return env


def test_check_gpu_cpu_mode_runs_every_item_and_writes_json_and_markdown(tmp_path):
    out = tmp_path / "check"
    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "check", "gpu", "--quick", "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_cpu_only_env(),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    document = json.loads(r.stdout.strip().splitlines()[-1])
    items = {i["name"]: i for i in document["items"]}
    assert set(items) == set(ITEMS)
    for name, kind in ITEMS.items():
        item = items[name]
        if kind == "gpu":
            assert item["status"] == "skipped" and "CUDA" in item["reason"], item
        elif kind == "no --address":
            assert item["status"] == "skipped" and item["reason"].startswith(kind), item
        else:
            assert item["status"] == "pass", item
        assert item["verdict"]
    assert items["training.cpu_tiny"]["numbers"]["tokens_per_s"] > 0
    assert items["attention.sdpa"]["numbers"]["cases"] == 8  # --quick: 4 codings x (full, windowed + global)
    assert document["verdict"].startswith(f"{sum(k == 'cpu' for k in ITEMS.values())} passed, 0 failed")
    written = json.loads((out / JSON_NAME).read_text())
    assert [i["name"] for i in written["items"]] == [i["name"] for i in document["items"]]
    markdown = (out / MARKDOWN_NAME).read_text()
    assert all(f"| {name} |" in markdown for name in ITEMS)
    assert document["files"] == [str(out / JSON_NAME), str(out / MARKDOWN_NAME)]


def test_check_gpu_refuses_an_out_dir_holding_a_check_and_help_imports_no_torch(tmp_path):
    (tmp_path / JSON_NAME).write_text("{}")
    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "check", "gpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_cpu_only_env(),
    )
    assert r.returncode == 2 and r.stderr.startswith("error: --out:") and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / JSON_NAME).unlink()
    (tmp_path / "ray-search").mkdir()  # a search an interrupted check left behind
    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "check", "gpu", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_cpu_only_env(),
    )
    assert r.returncode == 2 and "ray-search already exists" in r.stderr
    code = (
        "import sys; from typer.testing import CliRunner; from archscale.search.cli import app; "
        "r = CliRunner().invoke(app, ['check', 'gpu', '--help']); assert r.exit_code == 0, r.output; "
        "assert '--quick' in r.output and '--address' in r.output; "
        "bad = [m for m in ('torch', 'ray', 'triton') if m in sys.modules]; assert not bad, bad"
    )
    help_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert help_run.returncode == 0, help_run.stderr


def test_reference_rule_passes_a_faithful_result_and_fails_a_wrong_one():
    g = torch.Generator().manual_seed(0)
    golden = torch.randn(64, 64, generator=g, dtype=torch.float64)
    baseline = golden.float()  # one fp32 rounding
    faithful = compare_to_reference(golden, baseline, baseline.clone(), torch.float32, "out")
    assert faithful.ok and faithful.ratio == pytest.approx(1.0)
    off_by_1e4 = compare_to_reference(golden, baseline, baseline * (1 + 1e-4), torch.float32, "out")
    assert not off_by_1e4.ok and off_by_1e4.ratio > ERROR_MULTIPLE[torch.float32]
    nan = compare_to_reference(golden, baseline, baseline.clone().fill_(float("nan")), torch.float32, "out")
    assert not nan.ok


class _IgnoresWindow(attention_module.SDPA):
    """A deliberately wrong backend: full causal attention even in windowed layers."""

    def attend(self, q, k, v, window, shared):
        return super().attend(q, k, v, None, shared)


class _SlightlyOff(attention_module.SDPA):
    """A deliberately wrong backend: outputs 1e-4 too large (far above fp32 rounding)."""

    def attend(self, q, k, v, window, shared):
        return super().attend(q, k, v, window, shared) * (1 + 1e-4)


@pytest.mark.parametrize("wrong", [_IgnoresWindow, _SlightlyOff])
def test_a_wrong_backend_fails_the_attention_item(monkeypatch, wrong):
    arch = case_arch("alibi", (8, 2), on_cuda=False)
    _, right = run_case(arch, {"sdpa": True}, torch.device("cpu"), torch.float32)
    assert _backend_item("attention.sdpa", {"alibi": right["sdpa"]}, "fp32").status == "pass"
    monkeypatch.setitem(attention_module.BACKEND_CLASSES, "sdpa", wrong)
    _, broken = run_case(arch, {"sdpa": True}, torch.device("cpu"), torch.float32)
    item = _backend_item("attention.sdpa", {"alibi": broken["sdpa"]}, "fp32")
    assert item.status == "fail" and "over PyTorch's rule" in item.reason
    assert any(not c.ok and c.what == "logits" for c in broken["sdpa"].comparisons)


def test_a_backend_that_raises_fails_its_item_alone(monkeypatch):
    class Raises(attention_module.SDPA):
        def attend(self, q, k, v, window, shared):
            raise RuntimeError("no kernel image is available")

    monkeypatch.setitem(attention_module.BACKEND_CLASSES, "sdpa", Raises)
    arch = case_arch("rope", (None, None), on_cuda=False)
    _, runs = run_case(arch, {"sdpa": True, "flex": False}, torch.device("cpu"), torch.float32)
    assert runs["sdpa"].error == "RuntimeError: no kernel image is available" and runs["flex"].error is None
    item = _backend_item("attention.sdpa", {"rope": runs["sdpa"]}, "fp32")
    assert item.status == "fail" and "no kernel image" in item.reason
    assert _backend_item("attention.flex_eager", {"rope": runs["flex"]}, "fp32").status == "pass"


def test_items_and_report():
    with pytest.raises(ValueError, match="needs a reason"):
        CheckItem("x", "fail")
    with pytest.raises(ValueError, match="allowed: pass, fail, skipped"):
        CheckItem("x", "ok")  # type: ignore[arg-type]
    failed = CheckItem.failed("kernels.swiglu", RuntimeError("compile error\nCUDA out of memory"))
    assert failed.status == "fail" and failed.reason == "RuntimeError: CUDA out of memory"
    passing = CheckReport((CheckItem("a", "pass", verdict="fine"), CheckItem.skipped("b", "needs CUDA")))
    assert passing.exit_code == 0 and passing.verdict == "1 passed, 0 failed, 1 skipped"
    failing = CheckReport((*passing.items, failed))
    assert failing.exit_code == 1 and failing.verdict.endswith("failing kernels.swiglu")
    assert "| kernels.swiglu | fail |" in failing.to_markdown()
    odd = CheckReport((CheckItem("a", "pass", numbers={"ratio": float("inf"), "rate": float("nan"), "n": 3}),))
    assert json.loads(json.dumps(odd.to_dict(), allow_nan=False))["items"][0]["numbers"] == {
        "ratio": "inf",
        "rate": "nan",
        "n": 3,
    }


def test_steady_throughput_excludes_the_steps_before_the_first_evaluation():
    # 10 steps of 100 tokens took 5 s (compilation); the next 40 took 2 s: 2000 tokens/s
    reports = [{"tokens": 1000, "tokens_per_s": 1000 / 5.0}, {"tokens": 5000, "tokens_per_s": 5000 / 7.0}]
    measured = steady_throughput(reports, {"steps": 50, "status": "completed", "train_loss": 3.0})
    assert measured.tokens_per_s == pytest.approx(2000.0)
    single = steady_throughput(reports[:1], {"steps": 10, "status": "completed", "tokens_per_s": 200.0})
    assert single.tokens_per_s == 200.0
    assert measured.problem is None
    diverged = steady_throughput(reports, {"steps": 20, "status": "diverged", "train_loss": None})
    assert diverged.problem == "the run ended diverged (final train loss None)"
