"""A safeguarded Newton method for the scalar dual equation of a separable problem.

h(ν) = aᵀx(ν) − b is nonincreasing in ν (see symift.runtime.separable), so Newton steps kept
inside the bracket of sign changes seen so far converge from any start.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

###{standalone


def dual_newton(h, nu0, tol, maxiter):
    """Safeguarded Newton on a nonincreasing scalar equation h(nu) = 0 (the separable dual).

    A Newton step nu - h/h' is taken when it stays inside the bracket [lo, hi] of sign changes
    seen so far; otherwise the bracket is bisected, or grown by doubling while a side is open.
    Aims at |h| <= tol / 1000 (tol is the acceptance threshold) or a bracket at rounding width.
    Returns (nu, |h(nu)|, iterations).
    """
    def value(nu):
        r, dr = jax.jvp(h, (nu,), (jnp.ones_like(nu),))
        return r, dr

    def step(state):
        nu, r, dr, lo, hi, width, k = state
        lo = jnp.where(r > 0, nu, lo)
        hi = jnp.where(r < 0, nu, hi)
        newton = nu - r / jnp.where(dr < 0, dr, -jnp.inf)
        inside = (newton > lo) & (newton < hi) & (dr < 0)
        bracketed = jnp.isfinite(lo) & jnp.isfinite(hi)
        grown = jnp.where(r > 0, nu + width, nu - width)
        nu = jnp.where(inside, newton, jnp.where(bracketed, 0.5 * (lo + hi), grown))
        width = jnp.where(inside | bracketed, width, 2 * width)
        r, dr = value(nu)
        return nu, r, dr, lo, hi, width, k + 1

    def cont(state):
        nu, r, dr, lo, hi, width, k = state
        stalled = hi - lo <= 4 * jnp.finfo(nu.dtype).eps * (1 + jnp.abs(nu))
        return (k < maxiter) & (jnp.abs(r) > 1e-3 * tol) & ~stalled & jnp.isfinite(r)

    r0, dr0 = value(nu0)
    inf = jnp.asarray(jnp.inf, nu0.dtype)
    nu, r, _, _, _, _, k = lax.while_loop(cont, step, (nu0, r0, dr0, -inf, inf, jnp.ones_like(nu0), 0))
    return nu, jnp.abs(r), k
###}
