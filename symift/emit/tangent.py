"""The printed implicit tangent as one structured solve (see symift.symbolic.tangent)."""
from __future__ import annotations

from ..symbolic.expr import is_matrix
from ..symbolic.tangent import TangentSystem


def tangent_fn(mw, system: TangentSystem) -> str:
    """``_tangents``: r from the parameters' tangents, then the structured solve."""
    d = mw.d
    args = ["*"] + mw.params + d.unknowns + list(d.indicators) + [f"t_{mw.py(p)}" for p in mw.params]

    def build(em):
        for row in system.rows:
            terms = []
            for p, M, direction in system.parts.get(row.name, []):
                t = f"t_{mw.py(p)}"
                if direction is not None:
                    em.names[direction] = t
                    terms.append(em.vec(M))
                else:
                    terms.append(em.apply(M, t))
            sym = system.rhs[row.name]
            zero = f"jnp.zeros(({em.size(row.size)},))" if is_matrix(sym) else "0.0"
            em.names[sym] = em.tmp(" + ".join(terms) if terms else zero, "r")
        steps = {}
        for var, expr in system.staged:  # back substitution: later unknowns reuse the earlier ones
            code = em.vec(expr)
            steps[var] = code if code.isidentifier() else em.tmp(code, "d")
            em.names[system.step_symbols[var]] = steps[var]
        outs = []
        for var in mw.unknowns:
            if var in steps:
                outs.append(mw.in_shape(var, steps[var], em))
            else:   # an inactive multiplier: its tangent is 0
                outs.append(f"jnp.zeros({mw.shape_expr(mw.layout.symbols[var], em)})")
        return "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")"
    return mw.function("_tangents", args, build,
                       "The implicit tangents dx = (∂F/∂x)⁻¹ r with r = −Σ ∂F/∂θ·dθ, one structured solve.",
                       tangents=[f"t_{mw.py(p)}" for p in mw.params])
