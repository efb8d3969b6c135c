"""The forward solve of a fixed point x = T(x, θ): the accelerated iteration, then Newton to finish.

A ``solve`` block whose equations are ``x == T(x, θ)`` (one per variable) is the optimality
mapping of proximal or projected gradient (Blondel et al. 2021, §2.2).  Its own iteration
converges from anywhere when T is (averaged) nonexpansive — a step η ≤ 1/L — but only linearly;
Newton on F = x − T(x) converges in a few steps once the pieces of T's operators are right (the
steps are semismooth Newton steps: the generated F computes each piece's indicator at the
iterate) but may stall from far away.  So: FISTA's extrapolation on the iteration (Beck &
Teboulle 2009) with adaptive restart (O'Donoghue & Candès 2015: restart where the fixed-point
residual grows), averaged (x + α(T(x) − x), α halved) where T expands — prox-gradient with a step
η > 2/L — up to a loose residual or an iteration budget, then the damped Newton of
:func:`kkt_solve` from there to tol.  Variables declared > 0 are iterated without extrapolation
(an extrapolated point may leave the domain of a log).  ``acceleration="anderson"`` mixes the last
few iterates instead (Anderson acceleration, which also accelerates mirror descent: the default,
"auto", uses it where a variable is declared > 0).
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .interior_point import kkt_solve
from .spec import ProblemSpec, max_abs

###{standalone
ANDERSON_MEMORY = 5  # acceleration="anderson": how many iterates are mixed


def fixed_point_solve(spec: ProblemSpec, params: dict, tol, maxiter, start=None, acceleration="auto"):
    """({unknown: value}, {indicator: value}, max |F|): accelerated iteration of T, then Newton;
    ``start``: a warm start (the iteration starts from its values of the variables)."""
    dtype = jnp.result_type(float, *params.values())
    shapes = spec.shapes(**params)
    names = spec.variables
    positive = set(spec.positive)
    start = start or {}

    def first(v):  # a warm start's value (a positive variable's entries kept > 0), else 1 or 0
        if v not in start:
            return jnp.full(shapes[v], 1.0 if v in positive else 0.0, dtype)
        x = jnp.asarray(start[v], dtype)
        return jnp.where(x > 0, x, 1.0) if v in positive else x
    x0 = tuple(first(v) for v in names)

    def T(x):
        return tuple(jnp.asarray(t, dtype) for t in spec.fixed_point(**params, **dict(zip(names, x, strict=True))))

    loose = 1e3 * tol  # Newton finishes from here
    budget = 20 * maxiter
    if acceleration == "auto":  # FISTA does not extrapolate mirror descent (it may leave the domain of log)
        acceleration = "anderson" if positive else "fista"
    iterate = _anderson if acceleration == "anderson" else _fista
    x = iterate(T, x0, [v in positive for v in names], loose, budget)
    return kkt_solve(spec, params, tol, maxiter, start=dict(zip(names, x, strict=True)))


def _gap(x, tx):
    return max_abs([a - b for a, b in zip(x, tx, strict=True)])


def _fista(T, x0, positive, loose, budget):
    """FISTA's extrapolation with adaptive restart, and averaging where T expands: the best iterate.
    Variables declared > 0 are iterated without extrapolation (an extrapolated point may leave the
    domain of a log)."""
    extrapolate = not any(positive)

    def cont(state):
        k, rbest = state[0], state[7]
        return (k < budget) & (rbest > loose)

    def step(state):
        k, x, y, t, res, alpha, best, rbest, grew_before = state
        ty = T(y)
        res_y = _gap(y, ty)            # the residual at the extrapolated point (NaN if it blew up)
        better = res_y < rbest
        best = tuple(jnp.where(better, a, b) for a, b in zip(y, best, strict=True))
        rbest = jnp.where(better, res_y, rbest)
        grew = ~(res_y <= res)         # the residual grew (or is not finite): drop the momentum
        # grown twice running, once without momentum: T is not contractive at this step length
        # (prox-gradient with η > 2/L); go back to the best point with the averaged map
        # x + α(T(x) − x), whose fixed points are T's, α halved
        shrink = grew & grew_before
        alpha = jnp.where(shrink, 0.5 * alpha, alpha)
        x_new = tuple(a + alpha * (b - a) for a, b in zip(y, ty, strict=True))
        t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
        beta = (t - 1) / t_new if extrapolate else 0.0
        y_new = tuple(jnp.where(grew, a, a + beta * (a - b)) for a, b in zip(x_new, x, strict=True))
        x_new = tuple(jnp.where(shrink, b, a) for a, b in zip(x_new, best, strict=True))
        y_new = tuple(jnp.where(shrink, b, a) for a, b in zip(y_new, best, strict=True))
        return (k + 1, x_new, y_new, jnp.where(grew, 1.0, t_new), jnp.where(shrink, rbest, res_y), alpha,
                best, rbest, grew & ~shrink)

    r0 = _gap(x0, T(x0))
    one = jnp.ones((), r0.dtype)
    state = (0, x0, x0, one, r0, one, x0, r0, jnp.array(False))
    return lax.while_loop(cont, step, state)[6]


def _anderson(T, x0, positive, loose, budget, memory=ANDERSON_MEMORY):
    """Anderson acceleration (type II; Walker & Ni 2011): the next iterate mixes the last ``memory``
    values T(xᵢ) with the weights (Σαᵢ = 1) that minimize ‖Σ αᵢ (T(xᵢ) − xᵢ)‖.  Safeguards: where
    the residual grows past 10× the best one (or is not finite) the memory is cleared and the
    iteration goes on from the best point with the averaged map x + α(T(x) − x), α halved (T
    expands: prox-gradient with η > 2/L); a positive variable's mixed entry is kept ≥ T(x)/10 (and
    > 0): mirror descent's entries that tend to 0 do so geometrically, and a mixture may not cross 0."""
    shapes = [a.shape for a in x0]
    cuts = [0]
    for a in x0:
        cuts.append(cuts[-1] + a.size)
    flat = jnp.concatenate([jnp.ravel(a) for a in x0])
    pos = jnp.concatenate([jnp.full(a.size, p) for a, p in zip(x0, positive, strict=True)])
    n, dtype = flat.size, flat.dtype

    def unflat(v):
        return tuple(v[cuts[i]:cuts[i + 1]].reshape(s) for i, s in enumerate(shapes))

    def G(v, alpha):  # the averaged map, flat
        tv = jnp.concatenate([jnp.ravel(a) for a in T(unflat(v))])
        return v + alpha * (tv - v)

    def cont(state):
        return (state[0] < budget) & (state[7] > loose)

    def step(state):
        k, x, xs, gs, count, alpha, best, rbest = state
        g = G(x, alpha)
        res = jnp.max(jnp.abs(g - x)) / alpha
        ok = res <= 10 * rbest
        better = res < rbest
        best = jnp.where(better, x, best)
        rbest = jnp.where(better, res, rbest)
        slot = k % memory
        xs = xs.at[slot].set(x)
        gs = gs.at[slot].set(g)
        count = jnp.where(ok, jnp.minimum(count + 1, memory), 0)
        valid = jnp.roll(jnp.arange(memory) < count, slot + 1 - count)  # the last ``count`` slots written
        fs = jnp.where(valid[:, None], gs - xs, 0.0)
        gram = fs @ fs.T
        gram = gram + jnp.diag(jnp.where(valid, 1e-10 * jnp.trace(gram) + jnp.finfo(dtype).tiny, 1.0))
        w = jnp.linalg.solve(gram, valid.astype(dtype))
        mixed = jnp.where(valid[:, None], gs, 0.0).T @ (w / jnp.sum(w))
        mixed = jnp.where(pos, jnp.maximum(jnp.maximum(mixed, 0.1 * g), jnp.finfo(dtype).tiny), mixed)
        mixed = jnp.where(jnp.all(jnp.isfinite(mixed)), mixed, g)
        return k + 1, jnp.where(ok, mixed, best), xs, gs, count, jnp.where(ok, alpha, 0.5 * alpha), best, rbest

    zeros = jnp.zeros((memory, n), dtype)
    state = (0, flat, zeros, zeros, 0, jnp.ones((), dtype), flat, jnp.asarray(jnp.inf, dtype))
    return unflat(lax.while_loop(cont, step, state)[6])
###}
