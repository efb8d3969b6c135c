"""The printed pieces of a separable problem's dual-reduction forward solve (symift.symbolic.separable).

``_separable`` gives x(ν) before clipping and the bounds, ``_dual_equality`` the equality
h(x), and ``_dual`` the equality multiplier in closed form where sympy solved the dual
equation; the runtime's ``separable_solve`` does the rest (symift.runtime.separable).
"""
from __future__ import annotations

from ..symbolic.separable import SeparableDual


class SeparableWriter:
    """Writes the forward solve of a :class:`SeparableDual` into a generated module."""

    def __init__(self, writer, plan: SeparableDual):
        self.w, self.plan = writer, plan
        self.d = writer.d
        self.x = self.d.symbols[plan.variable]
        self.params = writer.params

    def _bind_opaque(self, em):
        for s, e in self.plan.opaque.items():
            em.names[s] = em.vec(e)

    def _full(self, em, code):
        """A template value broadcast to the shape of x."""
        return f"jnp.broadcast_to({code}, ({em.size(self.x.shape[0])},))"

    def functions(self) -> list:
        """``_separable`` (ψ(ν) and the bounds), ``_dual_equality`` h(x), ``_dual`` (closed form)."""
        plan, w = self.plan, self.w
        nu = [plan.equality.name] if plan.equality is not None else []

        def separable(em):
            self._bind_opaque(em)
            u = em.tmp(self._full(em, em.scalar(plan.primal)), "u")
            for b in plan.bounds:
                if b.test is not None:  # active iff stationarity at the bound says so: u = bound − test
                    test = em.tmp(self._full(em, em.scalar(b.test)), "g")
                    u = em.tmp(f"jnp.where({test} {'>=' if b.sign < 0 else '<='} 0, "
                               f"{em.scalar(b.value)} - {test}, {u})", "u")
            lo = [em.scalar(b.value) for b in plan.bounds if b.sign < 0]
            hi = [em.scalar(b.value) for b in plan.bounds if b.sign > 0]
            lower, upper = (lo or ["-jnp.inf"])[0], (hi or ["jnp.inf"])[0]
            return (f"{u}, {self._full(em, f'jnp.asarray({lower}, {u}.dtype)')}, "
                    f"{self._full(em, f'jnp.asarray({upper}, {u}.dtype)')}")
        out = [w.function("_separable", ["*"] + self.params + nu, separable,
                          "x(ν) before clipping (stationarity solved for xᵢ) and the bounds on x.")]
        if plan.equality is None:
            return out

        def equality(em):
            return em.vec(plan.equality.function)
        out.append(w.function("_dual_equality", ["*"] + self.params + [plan.variable], equality,
                              "The equality constraint h(x) (= aᵀx − b)."))
        if plan.dual is None and plan.start is not None:
            def start(em):
                self._bind_opaque(em)
                pargs = ", ".join(f"{w.py(p)}={w.py(p)}" for p in self.params)
                h0 = em.tmp(f"_dual_equality({pargs}, {w.py(plan.variable)}={self._full(em, '0.0')})", "h")
                return f"max_of({self._full(em, em.scalar(plan.start, extra={plan.rhs: f'(-{h0})'}))})"
            out.append(w.function("_dual_start", ["*"] + self.params, start,
                                  "Where the dual Newton starts: the largest ν at which one entry alone "
                                  "meets the equality (left of the root)."))
        if plan.dual is None:
            return out

        def dual(em):
            self._bind_opaque(em)
            pargs = ", ".join(f"{w.py(p)}={w.py(p)}" for p in self.params)
            xs = w.py(plan.variable)
            # x = c∘q(ν*) and q(ν*) = w, so x = c·w: no second pass over x through ν
            if plan.exponent is not None:   # c = exp(e): aᵀc with a max shift (log-sum-exp)
                e = em.tmp(self._full(em, em.scalar(plan.exponent)), "e")
                shift = em.tmp(f"max_of({e})", "m")   # two stages: no full-size temporary
                c = em.tmp(f"jnp.exp({e} - {shift})", "c")
                h0 = em.tmp(f"_dual_equality({pargs}, {xs}=jnp.zeros_like({e}))", "h")
                logr = f"({shift} + jnp.log(_dual_equality({pargs}, {xs}={c}) - {h0}))"
                logw = em.tmp(f"jnp.log(-{h0}) - {logr}", "logw")
                x = f"{c} * jnp.exp({shift} + {logw})"
            else:
                c = em.tmp(self._full(em, em.scalar(plan.primal.subs(plan.nu, 0))), "c")
                h0 = em.tmp(f"_dual_equality({pargs}, {xs}=jnp.zeros_like({c}))", "h")
                logr = f"jnp.log(_dual_equality({pargs}, {xs}={c}) - {h0})"
                logw = em.tmp(f"jnp.log(-{h0}) - {logr}", "logw")
                x = f"{c} * jnp.exp({logw})"
            return f"{em.scalar(plan.dual, extra={plan.logw: logw})}, {x}"
        out.append(w.function("_dual", ["*"] + self.params, dual,
                              "The equality multiplier ν and x = c·q(ν) in closed form "
                              "(the dual equation solved by sympy)."))
        return out
