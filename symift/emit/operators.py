"""The printed pieces of fixed points and operators (symift.symbolic.operators).

``_fixed_point`` gives T(x, θ) of a ``solve`` block written x == T(x, θ) (iterated before Newton
by symift.runtime.fixed_point), ``_kinks`` the indicators of the operators' pieces at a solution
with their conditions (the layer returns the indicators, and the conditions' distance to 0 joins
the strict-complementarity margin).  Inside every other generated function an indicator that is
not an argument is computed from its condition at the current values (Emitter.computed).
"""
from __future__ import annotations


class OperatorWriter:
    """Writes the fixed-point map and the operators' indicators into a generated module."""

    def __init__(self, writer):
        self.w, self.d = writer, writer.d

    def functions(self) -> list:
        out = []
        if self.w.fixed_point is not None:
            out.append(self.fixed_point_fn())
        if self.d.analysis.kinks or self.domains():
            out.append(self.kinks_fn())
        return out

    def fixed_point_fn(self) -> str:
        """``_fixed_point``: T(x, θ) of x == T(x, θ), one value per variable."""
        fixed = self.w.fixed_point

        def build(em):
            return "(" + ", ".join(em.vec(t) for t in fixed.values()) + ",)"
        return self.w.function("_fixed_point", ["*", *self.w.params, *fixed], build,
                               "T(x, θ) of the fixed point x == T(x, θ).")

    def domains(self) -> list:
        """The maps of equations x == softmax(u) (mirror descent): x must stay inside the simplex,
        whose boundary holds fixed points that are not solutions (x∘(∇f − c1) = 0 there), so the
        entries of x join the margin."""
        return [m for m in self.d.analysis.alg.maps.values() if m.equals is not None and m.kind == "softmax"]

    def condition_names(self) -> list:
        if self.d.coupled:
            return list(self.d.analysis.kinks) + [f"max({m.equals}, 1 - {m.name}/{m.equals}) (no spurious or "
                                                  f"degenerate zero of {m.equals})" for m in self.domains()]
        return list(self.d.analysis.kinks) + [f"{m.equals} (inside the simplex of {m.name})" for m in self.domains()]

    def domain_condition(self, em, m) -> str:
        """> 0 where the solution is a regular one.  With the closed form (derived at x = p > 0) x
        must stay inside.  Without one (a coupled matrix variable: the tangent is solved on the
        exact ∂F/∂x), a solution on the boundary is fine where it is strictly complementary: an
        entry xᵢ → 0 of a minimizer has ρᵢ = pᵢ/xᵢ = e^{−ημᵢ} < 1 (μᵢ > 0 its multiplier), one
        with ρᵢ > 1 is a fixed point that is not a solution (the iteration would grow it back),
        one with ρᵢ = 1 degenerate: max(xᵢ, 1 − ρᵢ) is the margin."""
        x = em.vec(m.equals)
        if not self.d.coupled:
            return x
        return f"jnp.maximum({x}, 1 - {em.vec(m.symbol)} / {x})"

    def kinks_fn(self) -> str:
        """``_kinks``: the operators' indicators at a solution, and the arguments of their conditions
        (whose distance to 0 is the margin of the pieces: no entry at a kink)."""
        kinks = [k for _, _, k in self.d.analysis.kinks.values()]
        conditions = [k.condition for k in kinks]

        def build(em):
            values = "".join(em.vec(k.indicator) + ", " for k in kinks)
            written = [em.vec(c) for c in conditions] + [self.domain_condition(em, m) for m in self.domains()]
            return f"({values}), ({', '.join(written)},)"
        return self.w.function("_kinks", ["*", *self.w.params, *self.d.unknowns], build,
                               "The operators' piece indicators at a solution, and their conditions (1 where > 0).")
