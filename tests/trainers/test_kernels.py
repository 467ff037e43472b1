"""Fused Triton kernels against the plain-torch reference, on CPU under the Triton interpreter.

TRITON_INTERPRET=1 must be set before triton is first imported (its own jit functions are
decorated then) and while kernels run; so under a normal pytest session this file re-runs itself
in a subprocess with it set, and the rest of the session never sees it.
Shapes are small and odd (rows and widths not powers of two): the interpreter is slow.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

if not INTERPRETED:
    # This process may already have imported triton without the interpreter (torch does, lazily),
    # and triton's own jit functions (tl.sigmoid, ...) are decorated at import: run this file
    # again in a fresh process with TRITON_INTERPRET=1 from the start.
    def test_kernels_under_triton_interpreter():
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        r = subprocess.run(
            [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-x"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
        assert " passed" in r.stdout.splitlines()[-1], r.stdout[-500:]

else:
    from archscale.trainers import kernels
    from archscale.trainers.kernels import gated, rmsnorm

    # Tolerances against a float32 reference computed from the same (rounded) inputs. float32: a few
    # ulps of the kernel's different operation order. bfloat16: one bf16 rounding of the output
    # (2^-8 relative) plus a little for sums of many rounded terms.
    TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}
    DTYPES = [torch.float32, torch.bfloat16]

    def _grads(fn, inputs, dout):
        out = fn(*inputs)
        return (out, *torch.autograd.grad(out, inputs, dout))

    def _leaf(t: torch.Tensor) -> torch.Tensor:
        return t.detach().clone().requires_grad_(True)

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("name", ["swiglu", "geglu", "reglu"])
    @pytest.mark.parametrize("shape", [(3, 37), (2, 5, 129), (1,)])
    def test_gated_activation_matches_torch(name, dtype, shape):
        g = torch.Generator().manual_seed(0)
        gate, up = (torch.randn(shape, generator=g) * 3).to(dtype), torch.randn(shape, generator=g).to(dtype)
        dout = torch.randn(shape, generator=g).to(dtype)
        got = _grads(lambda a, b: gated.GatedActivation.apply(name, a, b), (_leaf(gate), _leaf(up)), dout)
        want = _grads(lambda a, b: gated.reference(name, a, b), (_leaf(gate.float()), _leaf(up.float())), dout.float())
        for a, b, what in zip(got, want, ("out", "d_gate", "d_up"), strict=True):
            assert a.dtype == dtype and a.shape == torch.Size(shape), what
            torch.testing.assert_close(a.float(), b, **TOL[dtype], msg=lambda m: f"{name} {what}: {m}")  # noqa: B023

    def test_gated_activation_non_contiguous_and_bad_name():
        base = torch.randn(4, 38)
        gate, up = base[:, ::2], base[:, 1::2]  # strided views
        torch.testing.assert_close(gated.gated_activation("swiglu", gate, up), gated.reference("swiglu", gate, up))
        with pytest.raises(ValueError, match="allowed"):
            gated.gated_activation("glu", gate, up)

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("shape", [(3, 37), (2, 9, 64), (17, 5), (1, 1)])
    def test_rms_norm_matches_torch(dtype, shape):
        g = torch.Generator().manual_seed(1)
        x = (torch.randn(shape, generator=g) * 2 + 0.5).to(dtype)
        w = (torch.randn(shape[-1], generator=g) + 1).to(dtype)
        dout = torch.randn(shape, generator=g).to(dtype)
        got = _grads(lambda a, b: rmsnorm.RMSNormFunction.apply(a, b, 1e-6), (_leaf(x), _leaf(w)), dout)
        want = _grads(lambda a, b: rmsnorm.reference(a, b, 1e-6), (_leaf(x.float()), _leaf(w.float())), dout.float())
        for a, b, what in zip(got, want, ("out", "d_x", "d_weight"), strict=True):
            assert a.dtype == dtype, what
            tol = TOL[dtype] if what != "d_weight" or dtype == torch.float32 else dict(rtol=3e-2, atol=5e-2)
            torch.testing.assert_close(a.float(), b, **tol, msg=lambda m: f"{what}: {m}")  # noqa: B023

    def test_rms_norm_mixed_dtypes_promote_like_torch():
        x, w = torch.randn(3, 37).to(torch.bfloat16), torch.randn(37)
        assert rmsnorm.rms_norm(x, w).dtype == rmsnorm.reference(x, w).dtype == torch.float32

    def test_model_uses_kernels_when_enabled(monkeypatch):
        """Layer 3: with `runs_on` forced on (as for CUDA tensors), a model built with fused kernels sends
        its RMSNorm and SwiGLU through the fused functions and gives the same loss and gradients as plain
        torch; a model built with `fused_kernels=False` never calls them."""
        from archscale.spaces import ArchConfig
        from archscale.trainers.model import build_model

        arch = ArchConfig(
            d_model=16,
            n_layers=1,
            n_heads=2,
            d_ff=24,
            seq_len=8,
            position="rope",
            norm="rmsnorm",
            ffn_activation="swiglu",
            vocab_size=32,
        )
        torch.manual_seed(0)
        model = build_model(arch)
        plain_model = build_model(arch, fused_kernels=False)
        plain_model.load_state_dict(model.state_dict())
        idx = torch.randint(0, 32, (2, 8))

        def loss_and_grads(m):
            m.zero_grad()
            loss = m(idx).logsumexp(-1).mean()
            loss.backward()
            return loss.detach(), [p.grad.clone() for p in m.parameters()]

        plain = loss_and_grads(model)  # CPU tensors: plain torch even though the modules are fused
        calls = []
        monkeypatch.setattr(kernels, "runs_on", lambda x: True)
        for fn in ("fused_gated_activation", "fused_rms_norm"):
            original = getattr(kernels, fn)
            monkeypatch.setattr(kernels, fn, lambda *a, _f=original, _n=fn: calls.append(_n) or _f(*a))
        unfused = loss_and_grads(plain_model)
        assert calls == []  # chosen at build time: no process-wide switch needed
        fused = loss_and_grads(model)
        assert set(calls) == {"fused_gated_activation", "fused_rms_norm"}
        torch.testing.assert_close(fused[0], plain[0], rtol=1e-5, atol=1e-5)
        for a, b in zip(fused[1], plain[1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(unfused[0], plain[0], rtol=0, atol=0)

    def test_kernel_choice_rules(monkeypatch):
        """Kernels run on CUDA tensors with Triton present, in modules built with them: `fused_kernels`
        and `ARCHSCALE_KERNELS=0` decide at build time, `runs_on` per tensor."""
        from archscale.spaces import ArchConfig
        from archscale.trainers.model import Activation, RMSNorm, build_model

        cpu = torch.zeros(2)
        assert not kernels.runs_on(cpu)  # CPU tensors always take plain torch

        class FakeCuda:
            is_cuda = True

        def fused_flags(**kw):
            arch = ArchConfig(
                d_model=16, n_layers=1, n_heads=2, d_ff=24, norm="rmsnorm", ffn_activation="geglu", qk_norm=True
            )
            flags = [m.fused for m in build_model(arch, **kw).modules() if isinstance(m, (RMSNorm, Activation))]
            assert len(flags) == 1 + 2 + 2 + 1  # FFN activation, qk norms, two block norms, final norm
            return set(flags)

        monkeypatch.setattr(kernels, "triton_available", lambda: True)
        monkeypatch.delenv("ARCHSCALE_KERNELS", raising=False)
        assert kernels.runs_on(FakeCuda())
        assert kernels.allowed(True) and fused_flags() == {True}
        monkeypatch.setenv("ARCHSCALE_KERNELS", "0")
        assert not kernels.allowed(True) and fused_flags() == {False}
        monkeypatch.delenv("ARCHSCALE_KERNELS")
        assert not kernels.allowed(False) and fused_flags(fused_kernels=False) == {False}
        monkeypatch.setattr(kernels, "triton_available", lambda: False)
        assert not kernels.runs_on(FakeCuda())
        # activations without a kernel are never marked fused
        assert not Activation("glu", fused=True).fused and Activation("swiglu", fused=True).fused

    def test_fused_activation_names_match_the_kernels():
        assert set(kernels.FUSED_GATED_ACTIVATIONS) == set(gated.ACTS)
