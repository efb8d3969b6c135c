"""The forward solve of a separable problem by its dual reduction (see symift.symbolic.separable).

For  min Σᵢ φ(xᵢ; θᵢ)  s.t.  aᵀx = b,  l ≤ x ≤ u,  stationarity gives x(ν) = clip(ψ(ν), l, u)
elementwise, with ψ found by sympy; what is left is the scalar dual equation h(x(ν)) = 0, which
is nonincreasing in ν.  It is solved in closed form where sympy could (softmax: log-sum-exp), else
by a safeguarded Newton method (``spec.separable.newton``, symift.runtime.dual_newton), started
where one entry alone meets the equality when that is left of the root (``spec.separable.start``).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .spec import ProblemSpec

###{standalone

#: screening (see _screened_newton) from this many entries: below, x is in cache and a Newton
#: pass over it costs little more than the screening would
SCREEN_FROM = 32768
SCREEN_WINDOW = 32
SCREEN_ROUNDS = 3


def _screened_newton(sep, params, h, nu0, tol, maxiter):
    """The dual Newton on the entries that can move, or None where screening does not apply.

    Screening: ψ is nonincreasing in ν, so an entry clipped to its lower bound at a point ν_L
    left of the root stays there at every ν ≥ ν_L and adds a constant to h.  Only the windows of
    SCREEN_WINDOW entries that hold an entry above its bound at ν_L are kept (at most ``budget``
    of them, gathered at a fixed size), and Newton runs from ν_L on
        h̃(ν) = h(ν_L) + h_kept(ν) − h_kept(ν_L),
    which equals h on [ν_L, ∞), where the safeguarded iterates stay once h(ν_L) ≥ 0: each of
    its passes reads the kept windows only.

    ν_L starts at the derived start ν₀ (``sep.start``: one entry alone meets the equality).
    Where more windows are live than the budget, a closer ν_L is found without a pass over x:
    the start's conditions make every entry add a·xᵢ ≥ 0 to h, so the root of h restricted to
    any subset of the entries is left of the root of h; the root on the ``budget`` windows that
    rise highest above their bounds is the next ν_L (at most SCREEN_ROUNDS rounds).  Whatever
    still fails, or finds h(ν_L) < 0 in rounding, falls back to the Newton on all of x; under
    vmap each round and the fallback run only if some problem of the batch needs them.  The
    solve's residual is measured on all of x afterwards, as for any solve.

    Measured (benchmarks/RESULTS.md): sparsemax of θ ~ N(0, 1) at n = 10⁵ keeps about a hundred
    windows of 3125 at ν₀; 1.5-entmax about 800 at ν₀ and few after one round.
    """
    sizes = {jnp.shape(v)[0] for v in params.values() if jnp.ndim(v) == 1}
    if any(jnp.ndim(v) > 1 for v in params.values()) or len(sizes) != 1:
        return None  # gathering windows needs every parameter elementwise (a vector of x's length) or scalar
    n = sizes.pop()
    window = SCREEN_WINDOW
    m = n // window
    budget = max(64, m // 16)
    if n < SCREEN_FROM or budget >= m // 2 or jnp.shape(sep.primal(**params, **{sep.equality: nu0})[0]) != (n,):
        return None
    full = m * window
    dtype = jnp.result_type(nu0)

    def screen(nu_low):  # the kept windows at ν_L: (h̃, h on them alone, h(ν_L), live windows)
        u, lo, _ = sep.primal(**params, **{sep.equality: nu_low})
        # how far each window's entries rise above their bound at ν_L (NaN: live, and kept first)
        strength = jnp.max((u - lo)[:full].reshape(m, window), axis=1)
        strength = jnp.where(jnp.isnan(strength), jnp.inf, strength)
        live = jnp.sum(strength > 0)
        # where more are live than the budget, the strongest windows: the threshold τ by bisection
        # over the window maxima (a few passes over m values, not over x)
        def halve(_, bracket):
            low, high = bracket
            mid = 0.5 * (low + high)
            few = jnp.sum(strength > mid) <= budget
            return jnp.where(few, low, mid), jnp.where(few, mid, high)
        top = jnp.max(jnp.where(jnp.isinf(strength), 0.0, strength))
        tau = lax.fori_loop(0, 24, halve, (jnp.zeros((), strength.dtype), top))[1]
        tau = jnp.where(live <= budget, 0.0, tau)
        chosen = strength > tau
        count = jnp.cumsum(chosen.astype(jnp.int32))
        slots = jnp.minimum(jnp.searchsorted(count, jnp.arange(1, budget + 1), side="left"), m - 1)
        kept = jnp.concatenate([jnp.repeat(jnp.arange(budget) < count[-1], window), jnp.ones(n - full, bool)])
        sub = {k: v if jnp.ndim(v) == 0 else jnp.concatenate([v[:full].reshape(m, window)[slots].reshape(-1), v[full:]])
               for k, v in params.items()}

        def h_kept(nu):  # h on the kept windows; the slots past the chosen count add a constant 0
            u, lo, hi = sep.primal(**sub, **{sep.equality: nu})
            return sep.dual_equality(**sub, **{sep.variable: jnp.where(kept, jnp.clip(u, lo, hi), 0.0)})
        h_low = h(nu_low)
        base = h_low - h_kept(nu_low)
        return (lambda nu: base + h_kept(nu)), h_kept, h_low, live

    def round_(state):
        nu_low, safe, nu, found, stop, k = state
        h_tilde, h_sub, h_low, live = screen(nu_low)
        left = h_low >= 0  # ν_L is left of the root (NaN: not)
        here = ~stop & (jnp.abs(h_low) <= 1e-3 * tol)  # ν_L is the root (the last round's subset held the support)
        ok = ~stop & ~here & (live <= budget) & left
        nu = jnp.where(ok, sep.newton(h_tilde, nu_low, tol, maxiter, active=ok)[0], jnp.where(here, nu_low, nu))
        more = ~stop & ~here & ~ok & left
        closer = sep.newton(h_sub, nu_low, tol, maxiter, active=more)[0]
        return (jnp.where(more, jnp.maximum(nu_low, closer), nu_low), jnp.where(~stop & left, nu_low, safe),
                nu, found | ok | here, stop | ok | here | ~left, k + 1)

    nu0 = jnp.asarray(nu0, dtype)
    false = jnp.zeros((), bool)
    state = (nu0, nu0, nu0, false, false, 0)
    _, safe, nu, found, _, _ = lax.while_loop(lambda s: ~s[4] & (s[5] < SCREEN_ROUNDS), round_, state)
    whole, _, _ = sep.newton(h, safe, tol, maxiter, active=~found)
    return jnp.where(found, nu, whole)


def separable_solve(spec: ProblemSpec, params: dict, tol, maxiter, start=None):
    """The dual-reduction forward solve: ({unknown: value}, {indicator: value}, the KKT residual's
    parts: a list of arrays whose max |·| is the residual, reduced with the status in one pass).

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
        screened = None
        if sep.start is not None and not (start and sep.equality in start):
            screened = _screened_newton(sep, params, h, nu0, tol, maxiter)
        if screened is None:
            values[sep.equality], _, _ = sep.newton(h, nu0, tol, maxiter)
        else:
            values[sep.equality] = screened
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
    # the residual's parts, left to the status's single pass (runtime.layer, runtime.spec.reduce_many)
    return {k: values[k] for k in spec.unknowns}, indicators, parts
###}
