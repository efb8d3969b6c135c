"""Matrix variables whose rows are coupled: the KKT system in matrix form, solved numerically.

A problem like the multiclass SVM dual

    minimize ‖Xᵀ(Y − B)‖²/(2λ) + ⟨B, Y⟩   s.t.  B 1 = 1,  B ≥ 0        (B ∈ ℝ^{m×k})

does not separate by rows (``X.T @ B`` mixes them), so :mod:`symift.symbolic.rows` cannot turn it
into a vector problem.  symift then keeps B a matrix:

* the gradient of a scalar f in a matrix X is read off the differential, df = ⟨G, dX⟩ = tr(Gᵀ dX),
  by pulling the cotangent 1 back through df — the adjoint of each linear step (reverse mode,
  done once on the formula): ⟨C, A dX B⟩ = ⟨AᵀCBᵀ, dX⟩, ⟨C, H ∘ dX⟩ = ⟨H ∘ C, dX⟩,
  ⟨C, dXᵀ⟩ = ⟨Cᵀ, dX⟩.  Here ∇_B L = −XXᵀ(Y − B)/λ + Y + ν1ᵀ − Λ;
* a matrix constraint G(X) ≤ 0 has a matrix multiplier Λ and the term ⟨Λ, G⟩ in the Lagrangian;
* the Jacobian is not put in closed form (inverting the block XXᵀ ⊗ I restricted to the active set
  has none in general): the derivation states the tangent system dF = ∂F/∂x dx + ∂F/∂θ dθ = 0 in
  matrix form, and the layer solves it numerically at each solution (dense LU or GMRES on ∂F/∂x,
  with a residual and condition check: runtime.implicit).
"""
from __future__ import annotations

import sympy as sp

from ..errors import UnsupportedError
from .calculus import differential, direction_for, is_zero, zero_like
from .expr import Scalar, is_matrix


def adjoint_gradient(f, x, maps=None):
    """∇ₓ f for a scalar f and a matrix (or vector) symbol x: G with df = ⟨G, dx⟩ (x's shape)."""
    dx = sp.MatrixSymbol("d" + x.name, *x.shape) if is_matrix(x) else sp.Symbol("d" + x.name, real=True)
    df = differential(f, {x: dx}, maps or {})
    parts = _pull(df, dx, sp.S.One)
    if not parts:
        return zero_like(x)
    if not is_matrix(x):
        return sp.Add(*parts)
    return _tidy(sp.MatAdd(*parts).doit() if len(parts) > 1 else parts[0])


def _pull(e, dx, cot) -> list:
    """The terms of the adjoint of the linear map dx -> e applied to ``cot`` (e's shape)."""
    if e == dx:
        return [cot]
    if not e.has(dx) or is_zero(e):
        return []
    if isinstance(e, (sp.Add, sp.MatAdd)):
        return [t for a in e.args for t in _pull(a, dx, cot)]
    if isinstance(e, Scalar):
        return _pull(e.matrix, dx, cot)
    if isinstance(e, sp.Transpose):
        return _pull(e.arg, dx, _transpose(cot))
    if isinstance(e, sp.MatMul):
        scalars = [a for a in e.args if not is_matrix(a)]
        mats = [a for a in e.args if is_matrix(a)]
        dep = _one_dependent(e.args, dx, e)
        if dep in scalars:  # s(dx) · M: ⟨C, s M⟩ = s ⟨C, M⟩
            coeff = sp.Mul(*[a for a in scalars if a is not dep])
            return _pull(dep, dx, coeff * _inner(cot, sp.MatMul(*mats) if len(mats) > 1 else mats[0]))
        k = mats.index(dep)
        coeff = sp.Mul(*scalars)
        factors = [_transpose(a) for a in reversed(mats[:k])] + [cot] + [_transpose(a) for a in reversed(mats[k + 1:])]
        factors = [a for a in factors if not (not is_matrix(a) and a == 1)]
        if not any(is_matrix(a) for a in factors):
            new = coeff * sp.Mul(*factors)
        else:
            new = sp.MatMul(coeff, *factors) if coeff != 1 else sp.MatMul(*factors)
        return _pull(dep, dx, new)
    if isinstance(e, sp.Mul):  # after MatMul, a subclass of Mul
        dep = _one_dependent(e.args, dx, e)
        rest = sp.Mul(*[a for a in e.args if a is not dep])
        return _pull(dep, dx, rest * cot)
    if isinstance(e, sp.HadamardProduct):
        dep = _one_dependent(e.args, dx, e)
        others = [a for a in e.args if a is not dep]
        scale, cot = _scale_of(cot)
        if not _all_ones(cot):
            others.append(cot)
        new = others[0] if len(others) == 1 else sp.HadamardProduct(*others)
        return _pull(dep, dx, new if scale == 1 else sp.MatMul(scale, new))
    if isinstance(e, sp.DiagMatrix):  # ⟨C, diag(v)⟩ = ⟨diag part of C, v⟩
        n = cot.shape[0]
        return _pull(e.args[0], dx, sp.MatMul(sp.HadamardProduct(sp.Identity(n), cot), sp.OneMatrix(n, 1)))
    raise NotImplementedError(f"no adjoint rule for {type(e).__name__} in a matrix gradient")


def _one_dependent(args, dx, e):
    dep = [a for a in args if a.has(dx)]
    if len(dep) != 1:  # pragma: no cover - differentials are linear in the direction
        raise NotImplementedError(f"the differential is not linear in {dx}: {e}")
    return dep[0]


def _transpose(a):
    return a.T if is_matrix(a) else a


def _inner(c, m):
    """⟨C, M⟩ as a scalar."""
    if not is_matrix(m):
        return c * m
    if m.shape == (1, 1):
        return Scalar(sp.MatMul(c, m)) if is_matrix(c) else c * Scalar(m)
    rows, cols = m.shape
    return Scalar(sp.MatMul(sp.OneMatrix(1, rows), sp.HadamardProduct(c, m), sp.OneMatrix(cols, 1)))


def _scale_of(m):
    """(c, M) with m = c·M for a scalar c."""
    if isinstance(m, sp.MatMul):
        scalars = [a for a in m.args if not is_matrix(a)]
        if scalars:
            mats = [a for a in m.args if is_matrix(a)]
            return sp.Mul(*scalars), mats[0] if len(mats) == 1 else sp.MatMul(*mats)
    return sp.S.One, m


def _all_ones(m) -> bool:
    """1 1ᵀ (or 𝟏): a Hadamard factor that changes nothing."""
    if isinstance(m, sp.OneMatrix):
        return True
    return isinstance(m, sp.MatMul) and all(isinstance(a, sp.OneMatrix) for a in m.args)


def _tidy(g):
    """Fold 1(1ᵀ…) products sympy leaves: 𝟏ₘₓ₁ 𝟏₁ₓₖ is 𝟏ₘₓₖ, and H ∘ 𝟏 is H."""
    def fold(e):
        if isinstance(e, sp.MatMul) and len(e.args) == 2 and all(isinstance(a, sp.OneMatrix) for a in e.args):
            return sp.OneMatrix(e.shape[0], e.shape[1])
        if isinstance(e, sp.HadamardProduct):
            kept = [a for a in e.args if not isinstance(a, sp.OneMatrix)]
            if len(kept) < len(e.args):
                return kept[0] if len(kept) == 1 else sp.HadamardProduct(*kept)
        return e
    return g.replace(lambda e: isinstance(e, (sp.MatMul, sp.HadamardProduct)), fold)


def tangent_equations(system) -> list:
    """[(block name, dF_block)]: the differential of each residual block when every unknown and
    every parameter moves (dF = ∂F/∂x dx + ∂F/∂θ dθ; the tangent solves dF = 0)."""
    alg = system.algebra
    seeds = {u.symbol: direction_for(u.symbol, alg)[0] for u in system.unknowns}
    for p in system.problem.params:
        sym = system.builder.symbols[p.name]
        seeds[sym] = direction_for(sym, alg)[0]
    return [(b.name, differential(b.expr, seeds, alg.maps)) for b in system.residual]


def coupled_sentence(why: str, variable: str) -> str:
    return (f"the rows of {variable} are coupled ({why}): {variable} is kept a matrix, with the inner product "
            f"⟨U, V⟩ = Σᵢⱼ UᵢⱼVᵢⱼ; a gradient G of f in {variable} is read off df = ⟨G, d{variable}⟩")


class CoupledAnalysis:
    """The analysis of a coupled matrix problem: its blocks and facts, no symbolic elimination.

    It answers what the report, LaTeX and module writers ask of an
    :class:`~symift.symbolic.analysis.Analysis` (no indicators, kinks or inactive multipliers
    are derived); an elimination raises :class:`UnsupportedError` with the reason, which the
    module writer records as ``why_no_closed_form`` (the layer then solves numerically).
    """

    def __init__(self, kkt, why: str):
        self.kkt = kkt
        self.why = why
        self.source = kkt.problem.source
        self.alg = kkt.algebra
        self.facts = self.alg.facts
        self.assumptions = []
        if any(m.kind == "inequality" for m in kkt.multipliers):
            self.assumptions.append("strict complementarity: no entry with both its multiplier and its g "
                                    "equal to 0 (the layer measures it at each solution)")
        self.inactive: dict = {}
        self.indicators: dict = {}
        self.exclusive: list = []
        self.kinks: dict = {}
        self.rows = list(kkt.residual)
        self.unknowns = list(kkt.unknowns)

    def no_elimination(self):
        return UnsupportedError(f"no closed form: {self.why}; the layer solves the tangent system "
                                "dF = 0 numerically at each solution", None, self.source)

    def eliminate(self, rhs):
        raise self.no_elimination()

    def rhs(self, symbol):
        raise self.no_elimination()
