"""Bad input is refused in one line before any work starts, for every field and flag (docs/reliability.md).

Property-based: hypothesis generates malformed space, study and architecture files and flag values
(wrong types, negative and zero numbers, inverted ranges, empty choices, unknown keys and values,
impossible budgets, conditional axes naming unknown fields) and each is run through the real entry
point, `archscale.search.cli.main`, in this process. For every one: exit status 2, exactly one
`error: ...` line naming the file or flag and the field, no traceback, Ray never started, Optuna never
asked for a study, and no results directory written.

Ray and Optuna are not mocked: their entry points are wrapped by a probe that records a call and
refuses it, so a command that would start work fails the test instead of starting it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archscale.spaces.arch import ArchConfig
from archscale.spaces.schema import BudgetSpec
from archscale.spaces.training import TrainConfig

SPACE = {
    "name": "bad",
    "arch": {
        "vocab_size": 256,
        "seq_len": 32,
        "n_layers": 1,
        "n_heads": {"choices": [2, 4]},
        "n_kv_heads": {"choices": [1, 2]},
        "norm": "rmsnorm",
        "ffn_activation": {"choices": ["relu", "swiglu"]},
        "position": "rope",
    },
    "train": {"batch_size": 8, "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}},
    "budget": {"kind": "params", "value": 30000, "tolerance": 0.02},
}

# (key path, bad value, words one of which the error line must contain besides the file)
SPACE_MUTATIONS: list[tuple[tuple[str, ...], object, tuple[str, ...]]] = [
    # wrong types
    (("arch", "n_layers"), "two", ("n_layers",)),
    (("arch", "seq_len"), [1, "x"], ("seq_len",)),
    (("arch", "tie_embeddings"), "maybe", ("tie_embeddings",)),
    (("train", "lr"), "fast", ("lr",)),
    (("train", "batch_size"), 2.5, ("batch_size",)),
    (("budget", "value"), "lots", ("value", "budget")),
    (("arch",), [1, 2], ("arch",)),
    # negative and zero numbers
    (("arch", "n_layers"), 0, ("n_layers",)),
    (("arch", "n_layers"), -3, ("n_layers",)),
    (("arch", "vocab_size"), -5, ("vocab_size",)),
    (("arch", "seq_len"), 0, ("seq_len",)),
    (("train", "lr"), -0.1, ("lr",)),
    (("train", "lr"), 0, ("lr",)),
    (("train", "batch_size"), 0, ("batch_size",)),
    (("train", "weight_decay"), -1.0, ("weight_decay",)),
    (("train", "warmup_tokens"), -10, ("warmup_tokens",)),
    (("train", "grad_clip"), -1.0, ("grad_clip",)),
    (("budget", "value"), -1, ("value", "budget")),
    (("budget", "value"), 0, ("value", "budget")),
    (("budget", "tolerance"), -0.1, ("tolerance",)),
    # inverted ranges
    (("train", "lr"), {"low": 1.0e-2, "high": 1.0e-3, "log": True}, ("lr",)),
    (("arch", "n_layers"), {"low": 6, "high": 2}, ("n_layers",)),
    (("train", "lr"), {"low": -1.0, "high": 1.0e-3, "log": True}, ("lr",)),
    # empty choices
    (("arch", "ffn_activation"), {"choices": []}, ("ffn_activation",)),
    (("arch", "n_heads"), [], ("n_heads",)),
    # unknown keys and values
    (("arch", "bogus_field"), 1, ("bogus_field",)),
    (("train", "bogus_setting"), 1, ("bogus_setting",)),
    (("bogus_section",), 1, ("bogus_section",)),
    (("budget", "bogus"), 1, ("bogus",)),
    (("arch", "norm"), "batchnorm", ("norm", "batchnorm")),
    (("arch", "ffn_activation"), {"choices": ["relu", "mish"]}, ("ffn_activation", "mish")),
    (("arch", "position"), "spiral", ("position", "spiral")),
    (("budget", "kind"), "watts", ("kind", "watts")),
    (("train", "schedule"), "sawtooth", ("schedule", "sawtooth")),
    (("arch", "n_heads"), {"choices": [2, 4], "bogus": 1}, ("n_heads", "bogus")),
    # fixed values that can never be valid
    (("arch", "n_kv_heads"), 3, ("n_kv_heads",)),  # divides neither 2 nor 4
    (("arch", "head_dim"), 7, ("head_dim",)),  # RoPE needs an even head dimension
    (("arch",), {**SPACE["arch"], "norm": "none", "qk_norm": True}, ("qk_norm",)),  # nothing to normalise with
    (("arch",), {**SPACE["arch"], "ffn_type": "moe", "n_experts": 2, "experts_top_k": 4}, ("experts_top_k",)),
    # impossible budgets
    (("budget", "value"), 10, ("budget", "value")),
    (("budget", "value"), 1.0e15, ("budget", "value")),
    # conditional axes naming unknown fields
    (("arch", "ffn_activation"), {"choices": ["relu", "swiglu"], "when": {"bogus_field": "x"}}, ("bogus_field",)),
    (("arch", "ffn_activation"), {"choices": ["relu", "swiglu"], "when": {"position": "spiral"}}, ("spiral",)),
    # shape rules (spaces/shape_rule.py)
    (("shape",), {"rule": "fixed_ratio", "head_dim": 16}, ("aspect_ratio",)),
    (("shape",), {"rule": "cube", "head_dim": 16}, ("cube",)),
    (("shape",), {"rule": "width_only", "head_dim": 16, "aspect_ratio": 8}, ("aspect_ratio",)),
    (("shape",), {"rule": "width_only", "head_dim": 16, "wide": 1}, ("wide",)),
    (("shape",), {"rule": "width_only", "head_dim": 0}, ("head_dim",)),
    (("shape",), {"rule": "width_only", "head_dim": 16}, ("n_heads",)),  # the rule sets n_heads = d_model / 16
]

# `search run SPACE --out DIR ...`: (flag and value, words one of which the line must contain)
FLAG_MUTATIONS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("--tokens", "-5"), ("--tokens",)),
    (("--tokens", "0"), ("--tokens",)),
    (("--tokens", "abc"), ("--tokens",)),
    (("--trials", "0"), ("--trials",)),
    (("--trials", "-2"), ("--trials",)),
    (("--seeds", "0"), ("--seeds",)),
    (("--concurrency", "0"), ("--concurrency",)),
    (("--cpus-per-trial", "-1"), ("--cpus-per-trial",)),
    (("--cpus-per-trial", "0"), ("--cpus-per-trial",)),
    (("--gpus-per-trial", "lots"), ("--gpus-per-trial",)),
    (("--gpus-per-trial", "-1"), ("--gpus-per-trial",)),
    (("--budget-params", "-1"), ("--budget-params",)),
    (("--budget-params", "0"), ("--budget-params",)),
    (("--budget-params", "10"), ("--budget-params", "budget")),
    (("--tokens-per-param", "-2"), ("--tokens-per-param",)),
    (("--eval-every-tokens", "0"), ("--eval-every-tokens",)),
    (("--eval-every-tokens", "-100"), ("--eval-every-tokens",)),
    (("--sampler", "bayes"), ("--sampler",)),
    (("--scheduler", "hyperband"), ("--scheduler",)),
    (("--objectives", "eval_loss,watts"), ("--objectives",)),
    (("--objectives", ""), ("--objectives",)),
    (("--data", "nope"), ("--data", "nope")),
    (("--target-compute", "-1"), ("--target-compute",)),
    (("--storage", "nonsense://x"), ("--storage",)),
    (("--bogus-flag", "1"), ("--bogus-flag",)),
    (("--workers-per-trial", "0"), ("--workers-per-trial",)),
    (("--workers-per-trial", "3"), ("--workers-per-trial", "batch_size")),  # batch 8 does not split 3 ways
    (("--shard", "zero3"), ("--shard",)),
]

STUDY = {
    "name": "bad-study",
    "base": {"vocab_size": 256, "seq_len": 32, "n_layers": 1, "n_heads": 2, "norm": "rmsnorm"},
    "architectures": {"a": {"ffn_activation": "relu"}, "b": {"ffn_activation": "swiglu"}},
    "sizes": {"kind": "params", "values": [20000, 40000]},
    "tokens": [8192],
    "train": {"batch_size": 8, "lr": 3.0e-3},
}

STUDY_MUTATIONS: list[tuple[tuple[str, ...], object, tuple[str, ...]]] = [
    (("sizes", "values"), [-1, 40000], ("sizes", "values")),
    (("sizes", "values"), [], ("sizes", "values")),
    (("sizes", "kind"), "watts", ("kind", "watts")),
    (("tokens",), [0], ("tokens",)),
    (("tokens",), "many", ("tokens",)),
    (("train", "lr"), -0.1, ("lr",)),
    (("architectures",), {}, ("architectures",)),
    (("architectures", "a", "ffn_activation"), "mish", ("ffn_activation", "mish")),
    (("architectures", "a", "bogus_field"), 1, ("bogus_field",)),
    (("bogus_section",), 1, ("bogus_section",)),
    (("seeds",), 0, ("seeds",)),
    (("base", "n_heads"), 0, ("n_heads",)),
    (("data",), "nope", ("data", "nope")),
    (("train", "bogus_setting"), 1, ("bogus_setting",)),
    (("isoflop",), [-1.0], ("isoflop",)),
    (("shape",), {"rule": "fixed_ratio", "head_dim": 16}, ("aspect_ratio",)),
    (("shape",), {"rule": "width_only", "head_dim": 16}, ("n_heads",)),  # base gives n_heads, which the rule sets
]

ARCH = {"vocab_size": 256, "seq_len": 32, "d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64}

ARCH_MUTATIONS: list[tuple[tuple[str, ...], object, tuple[str, ...]]] = [
    (("d_model",), -32, ("d_model",)),
    (("n_heads",), 3, ("n_heads", "d_model")),  # 32 is not a multiple of 3
    (("n_kv_heads",), 3, ("n_kv_heads",)),
    (("ffn_activation",), "mish", ("ffn_activation", "mish")),
    (("bogus_field",), 1, ("bogus_field",)),
    (("d_ff",), "wide", ("d_ff",)),
]


# every key some section accepts (budget's too: `ffn_ratio` or `match_gated` would be a valid budget key)
KNOWN_KEYS = {*ArchConfig.model_fields, *BudgetSpec.model_fields, *(f.name for f in dataclasses.fields(TrainConfig))}


def mutated(base: dict, path: tuple[str, ...], value: object) -> dict:
    doc = copy.deepcopy(base)
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return doc


class Probe:
    """Wraps the entry points that start work (Ray, an Optuna study) so that calling one is recorded
    and refused: the command under test must never get that far."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        import optuna
        import ray

        self.calls: list[str] = []
        for module, name in ((ray, "init"), (optuna, "create_study"), (optuna, "load_study")):
            monkeypatch.setattr(module, name, self._refuse(f"{module.__name__}.{name}"))

    def _refuse(self, what: str):
        def refuse(*args, **kwargs):
            self.calls.append(what)
            raise RuntimeError(f"bad input reached {what}")

        return refuse


def run_main(args: list[str]) -> tuple[int, str, str]:
    """The real console entry point in this process: (exit status, stdout, stderr)."""
    from archscale.search.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["archscale", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def assert_refused_in_one_line(args: list[str], names: tuple[str, ...], words: tuple[str, ...], probe: Probe, out_dir):
    code, stdout, stderr = run_main(args)
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    shown = "\n".join(lines)
    assert code == 2, f"{args}: exit {code}\n{shown}"
    assert "Traceback" not in shown and "errors.pydantic.dev" not in shown, shown
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{args}: not one error line:\n{shown}"
    assert any(n in lines[0] for n in names), f"{args}: the line names neither of {names}: {lines[0]}"
    assert any(w in lines[0] for w in words), f"{args}: the line names neither of {words}: {lines[0]}"
    assert not probe.calls, f"{args}: work started before the error: {probe.calls}"
    assert out_dir is None or not Path(out_dir).exists(), f"{args}: {out_dir} was written"


FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def refused_space(tmp: Path, doc: dict, command: str, words: tuple[str, ...]) -> None:
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump(doc))
    out = tmp / "out"
    if command == "show":
        args = ["space", "show", str(space)]
    else:
        args = ["search", "run", str(space), "--out", str(out), "--trials", "2", "--tokens", "4096"]
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line(args, ("space.yaml",), words, Probe(mp), out)


# ---- every class of bad input, each case once (the table in docs/reliability.md) ----


@pytest.mark.parametrize("command", ["show", "run"])
@pytest.mark.parametrize("mutation", SPACE_MUTATIONS, ids=lambda m: ".".join(m[0]) + "=" + repr(m[1])[:20])
def test_a_malformed_space_file_is_refused_in_one_line(mutation, command, tmp_path):
    path, value, words = mutation
    refused_space(tmp_path, mutated(SPACE, path, value), command, words)


SHAPED = {
    **SPACE,
    "arch": {k: v for k, v in SPACE["arch"].items() if k not in ("n_heads", "n_layers")},
    "shape": {"rule": "fixed_ratio", "ffn_ratio": 4, "head_dim": 16, "aspect_ratio": 32},
}


@pytest.mark.parametrize("command", ["show", "run"])
@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        (("budget", "value"), 5000, ("shape rule fixed_ratio", "needs d_model >= 32")),  # below the rule's minimum
        (("budget", "free"), ["d_model", "d_ff"], ("budget.free",)),  # the rule decides the free dimensions
        (("arch", "n_layers"), 2, ("arch.n_layers",)),  # fixed_ratio grows the depth
    ],
)
def test_a_shape_rule_the_budget_cannot_honour_is_refused_in_one_line(path, value, words, command, tmp_path):
    refused_space(tmp_path, mutated(SHAPED, path, value), command, words)


@pytest.mark.parametrize("mutation", FLAG_MUTATIONS, ids=lambda m: "=".join(m[0]))
def test_a_bad_flag_is_refused_in_one_line(mutation, tmp_path):
    flag, words = mutation
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "out"
    base = ["search", "run", str(space), "--out", str(out), "--trials", "2"]
    if flag[0] not in ("--tokens", "--tokens-per-param"):
        base += ["--tokens", "4096"]
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line([*base, *flag], (flag[0],), words, Probe(mp), out)


# a ladder search's own flags (`search run ... --target-compute C`)
LADDER_FLAG_MUTATIONS: list[tuple[str, ...]] = [
    ("--ladder", "2"),
    ("--ladder-ratio", "1"),
    ("--risk", "reckless"),
    ("--ladder-prune-margin", "-0.1"),
    ("--validate-top", "-1"),
    ("--validate-compute", "-5"),
    ("--target-compute", "0"),
]


@pytest.mark.parametrize("flag", LADDER_FLAG_MUTATIONS, ids="=".join)
def test_a_bad_ladder_flag_is_refused_in_one_line(flag, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "out"
    base = ["search", "run", str(space), "--out", str(out), "--trials", "2", "--tokens-per-param", "2"]
    base += ["--target-compute", "1e12"] if flag[0] != "--target-compute" else []
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line([*base, *flag], (flag[0],), (flag[0],), Probe(mp), out)


@pytest.mark.parametrize("mutation", STUDY_MUTATIONS, ids=lambda m: ".".join(m[0]) + "=" + repr(m[1])[:20])
def test_a_malformed_study_file_is_refused_in_one_line(mutation, tmp_path):
    path, value, words = mutation
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(mutated(STUDY, path, value)))
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line(
            ["study", "run", str(study), "--out", str(out)], ("study.yaml",), words, Probe(mp), out
        )


@pytest.mark.parametrize("mutation", ARCH_MUTATIONS, ids=lambda m: ".".join(m[0]) + "=" + repr(m[1])[:20])
def test_a_malformed_arch_file_is_refused_in_one_line(mutation, tmp_path):
    path, value, words = mutation
    arch = tmp_path / "arch.yaml"
    arch.write_text(yaml.safe_dump(mutated(ARCH, path, value)))
    out = tmp_path / "out"
    args = ["train", "--arch", str(arch), "--tokens", "4096", "--out", str(out)]
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line(args, ("arch.yaml",), words, Probe(mp), out)


# `archscale COMMAND ...` with every other command's flags: {space}, {study}, {arch}, {out} are filled in
OTHER_FLAG_MUTATIONS: list[tuple[tuple[str, ...], str]] = [
    (("train", "--arch", "{arch}", "--tokens", "4096", "--out", "{out}", "--lr", "-1"), "--lr"),
    (("train", "--arch", "{arch}", "--tokens", "0", "--out", "{out}"), "--tokens"),
    (("train", "--arch", "{arch}", "--tokens", "4096", "--out", "{out}", "--batch-size", "0"), "--batch-size"),
    (("space", "show", "{space}", "--budget-params", "-1"), "--budget-params"),
    (("space", "show", "{space}", "--budget-params", "10"), "--budget-params"),
    (("space", "show", "{space}", "--samples", "0"), "--samples"),
    (("study", "run", "{study}", "--out", "{out}", "--concurrency", "0"), "--concurrency"),
    (("study", "run", "{study}", "--out", "{out}", "--cpus-per-trial", "0"), "--cpus-per-trial"),
    (("study", "run", "{study}", "--out", "{out}", "--storage", "nonsense://x"), "--storage"),
    (("search", "resume", "{out}", "--trials", "0"), "--trials"),
]


@pytest.mark.parametrize("mutation", OTHER_FLAG_MUTATIONS, ids=lambda m: " ".join(m[0][:2]) + m[1])
def test_a_bad_flag_of_another_command_is_refused_in_one_line(mutation, tmp_path):
    args, flag = mutation
    paths = {name: tmp_path / f"{name}.yaml" for name in ("space", "study", "arch")}
    for path, doc in zip(paths.values(), (SPACE, STUDY, ARCH), strict=True):
        path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    filled = [a.format(out=out, **paths) for a in args]
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line(filled, (flag,), (flag,), Probe(mp), out)


# ---- generated: any value of a class, not only the ones in the tables ----

POSITIVE = [
    ("arch", "vocab_size"),
    ("arch", "seq_len"),
    ("arch", "n_layers"),
    ("train", "batch_size"),
    ("budget", "value"),
]
NAMED = {
    ("arch", "norm"): "norm",
    ("arch", "position"): "position",
    ("budget", "kind"): "kind",
    ("train", "schedule"): "schedule",
}
identifier = st.from_regex(r"[a-z]{2,8}_[a-z]{2,8}", fullmatch=True)


@FAST
@given(field=st.sampled_from(POSITIVE), value=st.integers(max_value=0), command=st.sampled_from(["show", "run"]))
def test_any_non_positive_count_is_refused(field, value, command, tmp_path_factory):
    refused_space(tmp_path_factory.mktemp("n"), mutated(SPACE, field, value), command, (field[-1],))


@FAST
@given(field=st.sampled_from(sorted(NAMED)), value=identifier, command=st.sampled_from(["show", "run"]))
def test_any_unknown_variant_name_is_refused(field, value, command, tmp_path_factory):
    refused_space(tmp_path_factory.mktemp("v"), mutated(SPACE, field, value), command, (value,))


@FAST
@given(
    section=st.sampled_from(["arch", "train", "budget"]),
    key=identifier.filter(lambda k: k not in KNOWN_KEYS),
    value=st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
    command=st.sampled_from(["show", "run"]),
)
def test_any_unknown_key_is_refused(section, key, value, command, tmp_path_factory):
    refused_space(tmp_path_factory.mktemp("k"), mutated(SPACE, (section, key), value), command, (key,))


@FAST
@given(
    low=st.floats(min_value=1e-5, max_value=1.0),
    factor=st.floats(min_value=1.5, max_value=100.0),
    command=st.sampled_from(["show", "run"]),
)
def test_any_inverted_range_is_refused(low, factor, command, tmp_path_factory):
    bad = {"low": low * factor, "high": low, "log": True}
    refused_space(tmp_path_factory.mktemp("r"), mutated(SPACE, ("train", "lr"), bad), command, ("lr",))


@FAST
@given(flag=st.sampled_from(["--tokens", "--trials", "--seeds", "--eval-every-tokens"]), value=st.integers(max_value=0))
def test_any_non_positive_count_flag_is_refused(flag, value, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("f")
    space = tmp / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    out = tmp / "out"
    args = ["search", "run", str(space), "--out", str(out), "--trials", "2", "--tokens", "4096", flag, str(value)]
    with pytest.MonkeyPatch.context() as mp:
        assert_refused_in_one_line(args, (flag,), (flag,), Probe(mp), out)


def test_the_probe_can_fail(tmp_path):
    """The harness itself: a valid command that would start work is caught by the probe, so a bad
    input that slipped through to Ray or Optuna would fail the tests above."""
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    out = tmp_path / "out"
    args = ["search", "run", str(space), "--out", str(out), "--trials", "1", "--tokens", "4096"]
    with pytest.MonkeyPatch.context() as mp:
        probe = Probe(mp)
        with pytest.raises(AssertionError):
            assert_refused_in_one_line(args, ("space.yaml",), ("x",), probe, out)
        assert probe.calls  # the valid search got as far as Ray or Optuna, and was stopped there
