"""The interior-point Newton step of a KKT system, eliminated symbolically once for all iterates."""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import sympy as sp

from .algebra import Algebra
from .calculus import jacobian_lin
from .canonical import Facts
from .eliminate import Eliminator
from .expr import is_matrix
from .kkt import KKTSystem


@dataclass
class _Row:
    name: str
    expr: sp.Basic
    size: sp.Basic


@dataclass
class _Unknown:
    name: str
    symbol: sp.Basic
    size: sp.Basic


class NewtonSystem(Eliminator):
    """The interior-point Newton step, eliminated symbolically once for all iterations.

    With slacks t for the inequalities (g + t = 0, λ ∘ t = μ), the step solves

        [ ∇²L   Jₕᵀ  J_gᵀ  0    ] [dz]     [r_S]
        [ Jₕ    0    0     0    ] [dν]  =  [r_H]
        [ J_g   0    0     I    ] [dλ]     [r_P]
        [ 0     0    diag(t) diag(λ)] [dt]  [r_C]

    by the same block elimination as the IFT (no KKT facts: they do not hold mid-iteration),
    so the step inherits the problem's structure — O(n) for softmax.  ``solution`` maps each
    unknown to its step as a sympy expression in the current values and the ``rhs`` symbols.
    """

    def __init__(self, kkt: KKTSystem, constant_first: bool = False):
        self.kkt = kkt
        self.constant_first = constant_first
        self.source = kkt.problem.source
        self.facts = Facts()
        self.alg = Algebra(self.facts)
        # smooth maps (p = softmax(u)) move with their argument, exactly: a Newton step is taken
        # away from the solution, where p = x does not hold yet
        self.alg.maps = {p: replace(m, equals=None) for p, m in kkt.builder.maps.items()}
        builder = kkt.builder
        self.param_symbols = {builder.symbols[p.name] for p in kkt.problem.params}
        for p in kkt.problem.params:
            sym = builder.symbols[p.name]
            if p.attributes & {"symmetric", "psd", "pd"}:
                self.facts.symmetric.add(sym)
            if "pd" in p.attributes:
                self.facts.invertible.add(sym)
        for v in kkt.problem.variables:
            sym = builder.symbols[v.name]
            if v.positive and is_matrix(sym):
                self.alg.assumptions[sym] = {"positive": True}
        rows, unknowns, self.slacks = [], [], {}
        for block in kkt.residual:
            if block.kind in ("stationarity", "equation"):
                rows.append(_Row(block.name, block.expr, block.size))
        for m in kkt.multipliers:
            if m.kind == "equality":
                rows.append(_Row(f"h {m.name}", m.function, _size(m.function)))
        ineqs = [m for m in kkt.multipliers if m.kind == "inequality"]
        for m in ineqs:
            size = _size(m.function)
            t = sp.MatrixSymbol(f"slack_{m.name}", size, 1) if is_matrix(m.function) else \
                sp.Symbol(f"slack_{m.name}", positive=True)
            self.slacks[m.name] = t
            if is_matrix(t):
                self.alg.assumptions[t] = {"positive": True}
                self.alg.assumptions[m.symbol] = {"positive": True}
            rows.append(_Row(f"g {m.name}", m.function + t, size))
        for m in ineqs:
            t = self.slacks[m.name]
            cs = sp.HadamardProduct(m.symbol, t) if is_matrix(t) else m.symbol * t
            rows.append(_Row(f"cs {m.name}", cs, _size(m.function)))
        for u in kkt.unknowns:
            unknowns.append(_Unknown(u.name, u.symbol, u.size))
        for m in ineqs:
            unknowns.append(_Unknown(f"slack_{m.name}", self.slacks[m.name], _size(m.function)))
        self.rows, self.unknowns = rows, unknowns
        self.rhs = {r.name: (sp.MatrixSymbol(f"r{k}", r.size, 1) if r.size != 1 or is_matrix(r.expr)
                             else sp.Symbol(f"r{k}", real=True)) for k, r in enumerate(rows)}
        self.blocks = {(r.name, u.name): jacobian_lin(r.expr, u.symbol, self.alg)
                       for r in rows for u in unknowns}
        rhs = {r.name: self.alg.lin(self.rhs[r.name]) for r in rows}
        if constant_first:
            for m in ineqs:
                self._scale_complementarity(m, rhs)
        back, self.steps = self.forward_eliminate(rhs)
        self._back = back
        # the same step by back substitution on named steps, in solve order (for code)
        self.step_symbols = {u.name: (sp.MatrixSymbol(f"d_{u.name}", u.size, 1) if is_matrix(u.symbol)
                                      else sp.Symbol(f"d_{u.name}", real=True)) for u in unknowns}
        staged = self.back_substitute(back, self.step_symbols)
        self.staged = [(c, self.alg.to_sympy(staged[c])) for c, *_ in reversed(back)]
        #: the parameter pivots taken (constant_first): their factorizations do not change between
        #: iterates, so the interior point's loop computes them once (XLA hoists them out of it)
        self.constant_pivots = [st.pivot for st in self.steps
                                if st.kind == "symbol" and st.pivot in self.param_symbols]

    def _scale_complementarity(self, m, rhs: dict):
        """Row λ ∘ t = μ multiplied by diag(λ)⁻¹ (λ > 0 at every iterate), blocks and right-hand
        side: diag(t), diag(λ) become diag(t/λ), I.  The step is the same; the multipliers' Schur
        complement after a parameter pivot Q is then diag(t/λ) + G Q⁻¹ Gᵀ, symmetric and pd (a
        Cholesky factorization), not diag(t) + diag(λ) G Q⁻¹ Gᵀ (an LU)."""
        lam, row = m.symbol, f"cs {m.name}"
        scale = self.alg.lin(sp.DiagMatrix(sp.HadamardPower(lam, -1)) if is_matrix(lam) else 1 / lam)
        for key in [k for k in self.blocks if k[0] == row]:
            self.blocks[key] = self.alg.simplify(self.alg.mul(scale, self.blocks[key]))
        rhs[row] = self.alg.simplify(self.alg.mul(scale, rhs[row]))

    def _pivot_rank(self, kind: str, cond) -> int:
        """With ``constant_first``, a declared-pd parameter (Q of a QP) is a pivot as cheap as a
        scalar: eliminating the primal with it leaves the multipliers' Schur complement
        diag(t) + diag(λ) G Q⁻¹ Gᵀ, of size p, whose product G Q⁻¹ Gᵀ is the same at every iterate,
        instead of Q + Gᵀ diag(λ/t) G, of size n, formed again at each (2pn² flops)."""
        if self.constant_first and kind == "symbol" and cond in self.param_symbols and cond in self.facts.invertible:
            return 1
        return super()._pivot_rank(kind, cond)

    @functools.cached_property
    def solution(self) -> dict:
        """Each unknown's step as one expression of the right-hand sides (for reading; the code uses
        the named steps of ``staged``).  Made when asked: writing them readably took most of
        ``symift.compile`` for a problem with two bounds on one variable (~18 s of ~22 s)."""
        solution = self.back_substitute(self._back)
        return {u.name: self.alg.to_sympy(solution[u.name]) for u in self.unknowns}


def _size(e):
    return e.shape[0] if is_matrix(e) else sp.S.One
