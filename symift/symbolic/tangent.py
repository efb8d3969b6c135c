"""The implicit tangent as one structured solve:  dx = (∂F/∂x)⁻¹ r,  r = −Σ_p ∂F/∂p · dp.

Summing the closed forms J_p·dp costs one chain of solves per parameter (the OptNet QP has six),
and reverse mode transposes every chain.  By linearity the right-hand sides can be summed first:
symift eliminates ∂F/∂x once with symbolic right-hand sides r_k (one per block row of F) —
the same block elimination, pivots and KKT facts as the closed forms — so the generated tangent
forms r from the parameters' tangents and applies (∂F/∂x)⁻¹ once: OptNet's backward, derived.
"""
from __future__ import annotations

import sympy as sp

from .expr import is_matrix


class TangentSystem:
    """The block elimination of ∂F/∂x with symbolic right-hand sides (see module docstring)."""

    def __init__(self, d):
        a = d.analysis
        alg = a.alg
        self.rows = list(a.rows)
        self.rhs = {}
        for k, row in enumerate(self.rows):
            size = row.size
            vector = is_matrix(row.expr) or size != 1
            self.rhs[row.name] = sp.MatrixSymbol(f"_tangent_r{k}", size, 1) if vector else \
                sp.Symbol(f"_tangent_r{k}", real=True)
        back, _ = a.forward_eliminate({r.name: alg.lin(self.rhs[r.name]) for r in self.rows})
        self.solution = {u: alg.to_sympy(lin) for u, lin in a.back_substitute(back).items()}
        # the same solution by back substitution on named steps, in solve order (for code: the
        # later unknowns reuse the earlier ones instead of solving for them again)
        unknowns = {u.name: u for u in a.unknowns}
        self.step_symbols = {}
        for k, (c, *_) in enumerate(back):
            u = unknowns[c]
            self.step_symbols[c] = sp.MatrixSymbol(f"_tangent_d{k}", u.size, 1) if is_matrix(u.symbol) \
                else sp.Symbol(f"_tangent_d{k}", real=True)
        staged = a.back_substitute(back, self.step_symbols)
        self.staged = [(c, alg.to_sympy(staged[c])) for c, *_ in reversed(back)]
        self.parts = {}   # row name -> [(param, −∂F_row/∂p as sympy, direction symbol or None)]
        for p in d.parameters:
            rhs, direction = a.rhs(d.symbols[p])
            for row in self.rows:
                lin = rhs[row.name]
                if not lin.is_zero:
                    self.parts.setdefault(row.name, []).append((p, alg.to_sympy(lin), direction))
