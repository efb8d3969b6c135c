"""The optimal value and its envelope-theorem tangent in the generated module.

``_value(**params, **unknowns)`` is V = f(x, θ) (the objective as written) and
``_value_tangent(**params, **unknowns, t_<p>...)`` is dV = ±∂L/∂θ·dθ at (x, ν, λ)
(symift.symbolic.envelope): the layer gives the value this tangent, so its gradient costs one
evaluation of ∂L/∂θ — no implicit solve — and is exact wherever the multipliers are.
"""
from __future__ import annotations


class ValueWriter:
    def __init__(self, mw):
        self.mw = mw
        self.envelope = mw.d.envelope

    def functions(self) -> list:
        """The two functions, or none for a root (``solve``) problem."""
        env, mw = self.envelope, self.mw
        if env is None:
            return []
        args = ["*"] + mw.params + mw.unknowns
        tangents = [f"t_{mw.py(p)}" for p in mw.params]
        value = mw.function("_value", args, lambda em: em.scalar(env.value),
                            "The optimal value V = f(x, θ) at a solution (the objective as written).")

        def build(em):
            for p, direction in env.directions.items():
                em.names[direction] = f"t_{mw.py(p)}"
            return em.scalar(env.differential)
        tangent = mw.function("_value_tangent", args + tangents, build,
                              "dV at a solution by the envelope theorem: "
                              + ("−∂L/∂θ·dθ (maximize)." if env.sign < 0 else "∂L/∂θ·dθ."),
                              tangents=tangents)
        return [value, tangent]
