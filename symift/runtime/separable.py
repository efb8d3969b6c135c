"""The forward solve of a separable problem by its dual reduction (see symift.symbolic.separable).

For  min Σᵢ φ(xᵢ; θᵢ)  s.t.  aᵀx = b,  l ≤ x ≤ u,  stationarity gives x(ν) = clip(ψ(ν), l, u)
elementwise, with ψ found by sympy; what is left is the scalar dual equation h(x(ν)) = 0, which
is nonincreasing in ν.  It is solved in closed form where sympy could (softmax: log-sum-exp), else
by a safeguarded Newton method (``spec.separable.newton``, symift.runtime.dual_newton), started
where one entry alone meets the equality when that is left of the root (``spec.separable.start``).
"""
from __future__ import annotations

import jax.numpy as jnp

from .spec import ProblemSpec, max_abs

###{standalone


def separable_solve(spec: ProblemSpec, params: dict, tol, maxiter, start=None):
    """The dual-reduction forward solve: ({unknown: value}, {indicator: value}, KKT residual).

    ``start``: a warm start; its value of the equality's multiplier starts the dual Newton (the
    closed forms need none).

    x = ψ(ν) solves stationarity identically (checked symbolically when the plan was made), so
    what can fail is the dual equation h = 0, the signs of the bound multipliers and overflow:
    the residual measures those, and a failed solve is flagged, never a quiet number.
    """
    sep = spec.separable
    dtype = jnp.result_type(float, *params.values())
    values = {}
    if sep.equality is None:
        u, lo, hi = sep.primal(**params)
    elif sep.dual is not None:
        values[sep.equality], x = sep.dual(**params)
    else:
        def h(nu):
            u, lo, hi = sep.primal(**params, **{sep.equality: nu})
            return sep.dual_equality(**params, **{sep.variable: jnp.clip(u, lo, hi)})

        nu0 = jnp.zeros((), dtype)
        if sep.start is not None:  # one entry alone meets the equality: left of the root
            first = jnp.asarray(sep.start(**params), dtype)
            nu0 = jnp.where(jnp.isfinite(first), first, nu0)
        if start and sep.equality in start:
            nu0 = jnp.where(jnp.isfinite(start[sep.equality]), start[sep.equality], nu0).astype(dtype)
        values[sep.equality], _, _ = sep.newton(h, nu0, tol, maxiter)
        u, lo, hi = sep.primal(**params, **{sep.equality: values[sep.equality]})
    if sep.dual is None:
        x = jnp.clip(u, lo, hi)
    values[sep.variable] = x
    shapes = spec.shapes(**params)
    zero = {m: jnp.zeros(shapes[m], dtype) for m in spec.inequalities}
    equations = spec.equations(**params, **values, **zero)
    indicators, parts = {}, []
    for m, sign in sep.bounds:
        active = u < lo if sign < 0 else u > hi
        # stationarity ∇f + aν + σλ = 0 gives λ = −σ·(∇f + aν) on the active set
        values[m] = jnp.where(active, equations[0] if sign < 0 else -equations[0], 0.0)
        parts.append(jnp.maximum(-values[m], 0.0))
        if m in spec.indicator_of:
            indicators[spec.indicator_of[m]] = jnp.where(active, 0.0, 1.0).astype(dtype)
    for m in sep.inactive:
        values[m] = zero[m]
    # overflow: inf where an entry is not finite, elementwise, so that it joins the max over the
    # other parts of x's shape (one reduction: each costs a pass over x, see max_abs)
    parts.insert(0, jnp.where(jnp.isfinite(x), 0.0, jnp.inf))
    if sep.equality is not None:
        parts.append(jnp.where(jnp.isfinite(values[sep.equality]), 0.0, jnp.inf))
        parts.append(equations[1])
    if spec.inequalities:
        parts += [jnp.maximum(g, 0.0) for g in spec.constraints(**params, **{sep.variable: x})]
    res = max_abs(parts)
    return {k: values[k] for k in spec.unknowns}, indicators, res
###}
