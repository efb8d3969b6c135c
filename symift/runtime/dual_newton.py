"""A safeguarded Newton method for the scalar dual equation of a separable problem.

h(ν) = aᵀx(ν) − b is nonincreasing in ν (see symift.runtime.separable), so Newton steps kept
inside the bracket of sign changes seen so far converge from any start.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

###{standalone


def dual_newton(h, nu0, tol, maxiter, active=True):
    """Safeguarded Newton on a nonincreasing scalar equation h(nu) = 0 (the separable dual).

    A Newton step nu - h/h' is taken when it stays inside the bracket [lo, hi] of sign changes
    seen so far; otherwise the bracket is bisected, or grown by doubling while a side is open.
    Aims at |h| <= tol / 1000 (tol is the acceptance threshold) or a bracket at rounding width.
    Returns (nu, |h(nu)|, steps taken).

    ``active`` false: no step and no evaluation of h (|h| is returned as inf).  h is evaluated at
    the top of the loop, so that under vmap a batch whose problems are all inactive costs nothing
    (the screened solve of symift.runtime.separable falls back here only where screening failed).
    """
    dtype = jnp.result_type(nu0)
    inf = jnp.asarray(jnp.inf, dtype)

    def step(state):
        nu, _, lo, hi, width, k, _ = state
        r, dr = jax.jvp(h, (nu,), (jnp.ones_like(nu),))
        lo = jnp.where(r > 0, nu, lo)
        hi = jnp.where(r < 0, nu, hi)
        stalled = hi - lo <= 4 * jnp.finfo(dtype).eps * (1 + jnp.abs(nu))
        done = (k >= maxiter) | (jnp.abs(r) <= 1e-3 * tol) | stalled | ~jnp.isfinite(r)
        newton = nu - r / jnp.where(dr < 0, dr, -jnp.inf)
        inside = (newton > lo) & (newton < hi) & (dr < 0)
        bracketed = jnp.isfinite(lo) & jnp.isfinite(hi)
        grown = jnp.where(r > 0, nu + width, nu - width)
        moved = jnp.where(inside, newton, jnp.where(bracketed, 0.5 * (lo + hi), grown))
        width = jnp.where(inside | bracketed, width, 2 * width)
        return (jnp.where(done, nu, moved), jnp.abs(r), lo, hi, width, jnp.where(done, k, k + 1), ~done)

    state = (jnp.asarray(nu0, dtype), inf, -inf, inf, jnp.ones((), dtype), 0, jnp.asarray(active))
    nu, r, _, _, _, k, _ = lax.while_loop(lambda s: s[-1], step, state)
    return nu, r, k
###}
