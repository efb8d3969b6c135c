"""The optimal value V(θ) = f(x*(θ), θ) and its derivative by the envelope theorem.

At a KKT point the Lagrangian's derivative in x vanishes (stationarity), the constraints hold
and λ ∘ g = 0, so the total derivative of the value needs no derivative of the solution:

    dV = ∂L/∂θ (x*, ν*, λ*, θ) · dθ         (minimize f;  −∂L/∂θ · dθ for maximize f, L built on −f)

— the envelope theorem, with L = f + νᵀh + λᵀg as in SPEC §1.  It holds where the multipliers are
unique (the condition ∂F/∂x nonsingular gives that); strict complementarity is not needed.
For a scalar or vector θ the gradient ∇_θ V is printed; for a matrix parameter P the directional
derivative dV[dP] (e.g. ½ zᵀ dQ z for ½ zᵀQz).  The sign conventions are SPEC's: h = a − b for
a = b, g = a − b for a ≤ b, so ∂V/∂b = −ν for Ax = b.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .calculus import differential, direction_for, gradient
from .coupled import adjoint_gradient
from .expr import Scalar
from .kkt import KKTSystem


@dataclass(frozen=True)
class Envelope:
    """The value of an optimization problem and, per parameter, its derivative at a solution."""

    value: sp.Basic          # V = the objective as the user wrote it (maximize f: f, not −f)
    sign: int                # V = sign · (the minimized objective); dV = sign · ∂L/∂θ · dθ
    differential: sp.Basic   # dV when every parameter p moves along its direction d<p>
    directions: dict         # parameter name -> its direction symbol (d<p>)
    differentials: dict      # parameter name -> dV[d<p>], p alone moving (canonical: simplified)
    gradients: dict          # parameter name -> ∇_p V (scalar and vector p), None for a matrix p


def envelope(system: KKTSystem, coupled: bool = False) -> Envelope | None:
    """The optimal value and its envelope derivative; None for a root (``solve``) problem.

    ``coupled``: a coupled matrix variable (symbolic.coupled), whose terms the vector algebra does
    not canonicalize: every gradient, a matrix parameter's too, is read off by the adjoint."""
    if system.objective is None:
        return None
    sign = -1 if system.problem.objective.sense == "maximize" else 1
    alg = system.algebra
    lagrangian = sign * system.lagrangian
    if coupled:
        return _coupled(system, sign, lagrangian)
    directions, gradients = {}, {}
    for p in system.problem.params:
        sym = system.builder.symbols[p.name]
        directions[p.name], _ = direction_for(sym, alg)
        is_matrix_param = isinstance(sym, sp.MatrixSymbol) and sym.shape[1] != 1
        gradients[p.name] = None if is_matrix_param else gradient(lagrangian, sym, alg)
    raw = {p: differential(lagrangian, {system.builder.symbols[p]: d}, alg.maps) for p, d in directions.items()}
    dV = sp.Add(*raw.values())   # every parameter moving: the sum of the parameters' differentials
    each = {p: alg.to_sympy(alg.lin(e)) for p, e in raw.items()}
    for p, g in gradients.items():
        if g is None:
            g = matrix_gradient(each[p], directions[p])
            gradients[p] = None if g is None else alg.to_sympy(alg.lin(g))
    return Envelope(sign * system.objective, sign, dV, directions, each, gradients)


def matrix_gradient(dV, dP):
    """G with dV = tr(Gᵀ dP) = Σᵢⱼ Gᵢⱼ dPᵢⱼ, from a differential whose terms read c · a dP b or
    c · a dPᵀ b (a a row, b a column): a dP b = tr(b a dP) gives G = aᵀbᵀ, a dPᵀ b gives G = b a.
    None where a term has another form (the directional derivative is printed then)."""
    terms = []
    for term in sp.Add.make_args(dV):
        coeff, rest = term.as_coeff_mul()
        if len(rest) != 1 or not isinstance(rest[0], Scalar) or not isinstance(rest[0].args[0], sp.MatMul):
            return None
        factors = list(rest[0].args[0].args)
        if factors and not getattr(factors[0], "is_Matrix", True):  # a scalar factor inside the product
            coeff, factors = coeff * factors[0], factors[1:]
        where = [k for k, f in enumerate(factors) if f == dP or f == dP.T]
        if len(where) != 1 or any(f.has(dP) for k, f in enumerate(factors) if k != where[0]):
            return None
        k = where[0]
        a, b = sp.MatMul(*factors[:k]).doit(), sp.MatMul(*factors[k + 1:]).doit()
        if a.shape[0] != 1 or b.shape[1] != 1:
            return None
        terms.append(coeff * (sp.MatMul(a.T, b.T) if factors[k] == dP else sp.MatMul(b, a)))
    return sp.MatAdd(*terms) if terms else None


def _coupled(system, sign, lagrangian) -> Envelope:
    alg = system.algebra
    directions, gradients, each = {}, {}, {}
    for p in system.problem.params:
        sym = system.builder.symbols[p.name]
        directions[p.name], _ = direction_for(sym, alg)
        each[p.name] = differential(lagrangian, {sym: directions[p.name]}, alg.maps)
        gradients[p.name] = adjoint_gradient(lagrangian, sym, alg.maps)
    return Envelope(sign * system.objective, sign, sp.Add(*each.values()), directions, each, gradients)
