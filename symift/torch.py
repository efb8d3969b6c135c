"""symift layers for PyTorch: a ``torch.nn.Module`` whose forward and backward run the jitted JAX
layer (optional extra ``torch``; ``import symift.torch`` needs torch installed).

    import symift, symift.torch
    qp = symift.torch.layer(symift.load("examples/optnet_qp.ift"))      # outputs: the variables
    z = qp(Q, q, G, h, A, b)            # positional in declaration order, or by name
    z.sum().backward()                  # gradients for every input that requires them

A drop-in for qpth's ``QPFunction()(Q, p, G, h, A, b)`` and cvxpylayers' ``CvxpyLayer``:

* **Batches** as in qpth: a parameter with one more leading dimension than declared is batched
  (dimension 0), one with exactly its declared rank is shared by the whole batch; every batched
  parameter has the same batch size.  The JAX layer is ``jax.vmap``-ed accordingly and jitted
  once per pattern of batched parameters (and per shape and dtype, as jit does).
* **Outputs**: ``outputs=("z", "nu", "value")`` selects variables, multipliers and the optimal
  value (default: the variables); one output is returned as a tensor, several as a tuple.
* **Data** moves by DLPack (``jax.dlpack.from_dlpack`` / ``torch.from_dlpack``); results are
  copied once so that an in-place change of a returned tensor cannot reach the buffers the
  backward uses.  float64 tensors need ``jax_enable_x64`` (JAX would otherwise compute in float32:
  refused with an error, never silently).
* **Backward**: the forward keeps JAX's vjp of the batch (``jax.vjp`` under jit: the solve is
  not repeated) and the backward applies it, jitted: the derived closed form, or the checked
  linear solve, exactly as ``jax.grad`` of the layer.  Where no input requires a gradient (or
  under ``torch.no_grad``) the forward is the solve alone, without the vjp's residuals (on the
  OptNet QP, n = 100, batch 128: about 340 against 470 ms).
* **No quiet numbers**: a forward solve that does not converge raises ``MathError`` (with the
  batch elements); a gradient that comes out NaN — the implicit function theorem fails at that
  solution (degenerate active set, singular ∂F/∂x) — raises ``MathError`` in backward, naming
  the elements whose status ``regular`` is false.  ``strict=False`` (an option of
  ``symift.compile``) keeps the derivative on the computed active set instead.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import torch

from .api import compile
from .errors import ArgumentError, MathError
from .layer import Layer, RowLayer

__all__ = ["TorchLayer", "layer"]


def layer(problem, outputs=None, **options) -> TorchLayer:
    """The PyTorch layer of a problem, a derivation or a compiled symift layer.

    ``options`` are ``symift.compile``'s (tol, maxiter, backward, strict, ...)."""
    return TorchLayer(problem, outputs, **options)


class TorchLayer(torch.nn.Module):
    """A differentiable solution map for torch tensors (see the module docstring)."""

    def __init__(self, problem, outputs=None, **options):
        super().__init__()
        if isinstance(problem, (Layer, RowLayer)):
            if options:
                raise ArgumentError(f"options {sorted(options)} go to symift.compile; this layer is compiled already")
            self.jax_layer = problem
        else:
            self.jax_layer = compile(problem, **options)
        d = self.jax_layer.derivation
        rows = getattr(d, "rows", None)
        user = rows.problem if rows is not None else d.problem
        self.source = user.source
        self.params = [p.name for p in user.params]
        self.ranks = {p.name: len(p.shape) for p in user.params}
        has_value = d.envelope is not None and (rows is None or rows.additive)
        available = list(d.unknowns) + (["value"] if has_value else [])
        self.outputs = tuple(outputs) if outputs is not None else tuple(v.name for v in user.variables)
        unknown = [o for o in self.outputs if o not in available]
        if unknown or not self.outputs:
            raise ArgumentError(f"outputs must name some of {', '.join(available)}; got {list(self.outputs)}",
                                None, self.source)
        self._compiled: dict = {}

    def forward(self, *args, **kwargs):
        tensors = self._bind(args, kwargs)
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            outs = _Solve.apply(self, *tensors)
        else:  # no gradient asked for: the solve alone, without the residuals a backward needs
            outs = tuple(_to_torch(o) for o in self._solve(tensors, grad=False)[0])
        return outs if len(self.outputs) > 1 else outs[0]

    def _solve(self, tensors, grad: bool):
        """(outputs, vjp or None, regular, backward) as JAX values; MathError if a solve failed."""
        forward, backward, plain = self._functions(self._axes(tensors))
        arrays = [_to_jax(t) for t in tensors]
        if grad:
            outs, vjp, (converged, regular) = forward(*arrays)
        else:
            (outs, (converged, regular)), vjp = plain(*arrays), None
        if not np.all(np.asarray(converged)):
            raise MathError(f"the forward solve did not converge{_elements(converged)}", None, self.source)
        return outs, vjp, regular, backward

    # ---- helpers
    def _bind(self, args, kwargs) -> list:
        """The parameters in declaration order, from positional and keyword arguments."""
        if len(args) > len(self.params):
            raise ArgumentError(f"the layer takes {len(self.params)} parameters ({', '.join(self.params)}); "
                                f"got {len(args)} positional", None, self.source)
        given = dict(zip(self.params, args, strict=False))
        for k, v in kwargs.items():
            if k not in self.params:
                raise ArgumentError(f"unknown parameter {k!r} (the parameters: {', '.join(self.params)})",
                                    None, self.source)
            if k in given:
                raise ArgumentError(f"parameter {k!r} given twice", None, self.source)
            given[k] = v
        missing = [p for p in self.params if p not in given]
        if missing:
            raise ArgumentError(f"missing parameters: {', '.join(missing)}", None, self.source)
        out = []
        for p in self.params:
            t = given[p]
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t, dtype=torch.get_default_dtype())
            if not t.is_floating_point():
                t = t.to(torch.get_default_dtype())
            out.append(t)
        return out

    def _axes(self, tensors) -> tuple:
        """0 for a batched parameter (one more leading dimension than declared), None for a shared one."""
        axes, sizes = [], set()
        for p, t in zip(self.params, tensors, strict=True):
            rank = self.ranks[p]
            if t.dim() == rank + 1:
                axes.append(0)
                sizes.add(t.shape[0])
            elif t.dim() == rank:
                axes.append(None)
            else:
                raise ArgumentError(f"{p} is declared with {rank} dimension(s); got a tensor of shape "
                                    f"{tuple(t.shape)} (allowed: {rank}, or {rank + 1} with a leading batch "
                                    "dimension)", None, self.source)
        if len(sizes) > 1:
            raise ArgumentError(f"batched parameters have different batch sizes {sorted(sizes)}", None, self.source)
        return tuple(axes)

    def _functions(self, axes):
        """(forward with vjp, backward, forward alone) jitted for this pattern of batched parameters."""
        if axes not in self._compiled:
            params, outputs, jl = self.params, self.outputs, self.jax_layer

            def one(*arrays):
                out = jl(**dict(zip(params, arrays, strict=True)))
                return tuple(out[k] for k in outputs), (out["converged"], out["regular"])
            run = jax.vmap(one, in_axes=axes) if any(a is not None for a in axes) else one
            forward = jax.jit(lambda *arrays: jax.vjp(run, *arrays, has_aux=True))
            backward = jax.jit(lambda vjp, cotangents: vjp(cotangents))
            self._compiled[axes] = (forward, backward, jax.jit(run))
        return self._compiled[axes]


def _to_jax(t: torch.Tensor):
    if t.dtype == torch.float64 and not jax.config.jax_enable_x64:
        raise ArgumentError("float64 tensors need JAX's 64-bit mode: jax.config.update('jax_enable_x64', True) "
                            "before the first call (without it JAX would compute in float32)")
    return jnp.array(jax.dlpack.from_dlpack(t.detach().contiguous()))  # a copy JAX owns


def _to_torch(a) -> torch.Tensor:
    return torch.from_dlpack(a).clone()


def _elements(mask) -> str:
    bad = np.nonzero(~np.atleast_1d(np.asarray(mask)))[0]
    return f" (batch elements {[int(i) for i in bad[:10]]}{', ...' if bad.size > 10 else ''})" if np.ndim(mask) else ""


class _Solve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, owner: TorchLayer, *tensors):
        outs, ctx.vjp, ctx.regular, ctx.backward = owner._solve(tensors, grad=True)
        ctx.owner = owner
        ctx.inputs = [(t.dtype, t.device) for t in tensors]
        return tuple(_to_torch(o) for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        cotangents = tuple(_to_jax(g) for g in grads)
        result = ctx.backward(ctx.vjp, cotangents)
        out = []
        for g, (dtype, device) in zip(result, ctx.inputs, strict=True):
            g = _to_torch(g).to(dtype=dtype, device=device)
            out.append(g)
        if any(not torch.isfinite(g).all() for g in out):
            raise MathError("the gradient is NaN: the implicit function theorem does not hold at the solution"
                            f"{_elements(ctx.regular)} (strict complementarity fails or dF/dx is singular there); "
                            "compile with strict=False to take the derivative on the computed active set",
                            None, ctx.owner.source)
        return (None, *out)
