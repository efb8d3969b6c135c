"""How accurate is a Jacobian taken at an approximate solution? (Blondel et al. 2021, Theorem 1.)

The layer differentiates at the solution x̂ its forward solve returned, not at the exact x*: the
Jacobian estimate J(x̂) solves A(x̂) J = B(x̂) with A = −∂F/∂x and B = ∂F/∂θ.  Theorem 1 bounds its
error, where A is well conditioned (‖Av‖ ≥ α‖v‖) and Lipschitz (γ), and B is bounded (R) and
Lipschitz (β) near x*:

    ‖J(x̂) − ∂x*‖ ≤ (β/α + γR/α²) ‖x̂ − x*‖.

:func:`jacobian_precision` estimates each ingredient at x̂ from the derived F (dense Jacobians of
the generated residual, so for problems of up to a few thousand unknowns and parameter entries):
‖x̂ − x*‖ by the Newton step δ = A⁻¹F(x̂) (exact to first order; exact for F linear in x), α as
A's smallest singular value, R = ‖B‖ at x̂ + δ, γ and β as the change of A and B along δ over
‖δ‖ — and, beside the bound, the change of the Jacobian estimate itself along that step,
‖J(x̂ + δ) − J(x̂)‖, its first-order error.  Norms are spectral (operator 2-norms) over the
unknowns and the parameters' entries flattened in their declared order.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .spec import ProblemSpec


def _flat(values: dict, names) -> tuple:
    arrays = [jnp.asarray(values[n], float) for n in names]
    shapes = [a.shape for a in arrays]
    flat = jnp.concatenate([jnp.ravel(a) for a in arrays]) if arrays else jnp.zeros(0)

    def unflat(v):
        out, k = {}, 0
        for n, s in zip(names, shapes, strict=True):
            size = int(np.prod(s))
            out[n] = v[k:k + size].reshape(s)
            k += size
        return out
    return flat, unflat


def jacobian_precision(spec: ProblemSpec, params: dict, unknowns: dict) -> dict:
    """Theorem 1's ingredients and bound at the approximate solution ``unknowns`` (floats)."""
    x, unflat_x = _flat(unknowns, spec.unknowns)
    th, unflat_th = _flat(params, spec.params)

    def F(xv, tv):
        blocks = spec.residual(**unflat_th(tv), **unflat_x(xv))
        return jnp.concatenate([jnp.ravel(jnp.asarray(b, float)) for b in blocks.values()])

    def pieces(xv):
        return -jax.jacfwd(F, 0)(xv, th), jax.jacfwd(F, 1)(xv, th)

    A, B = pieces(x)
    delta = jnp.linalg.solve(A, F(x, th))
    A2, B2 = pieces(x + delta)
    J, J2 = jnp.linalg.solve(A, B), jnp.linalg.solve(A2, B2)
    step = float(jnp.linalg.norm(delta))
    alpha = float(jnp.linalg.svd(A, compute_uv=False)[-1])
    R = float(jnp.linalg.norm(B2, 2))
    gamma = float(jnp.linalg.norm(A2 - A, 2)) / step if step > 0 else 0.0
    beta = float(jnp.linalg.norm(B2 - B, 2)) / step if step > 0 else 0.0
    return {"solution_error": step, "alpha": alpha, "R": R, "beta": beta, "gamma": gamma,
            "constant": beta / alpha + gamma * R / alpha ** 2,
            "bound": (beta / alpha + gamma * R / alpha ** 2) * step,
            "jacobian_change": float(jnp.linalg.norm(J2 - J, 2)),
            "jacobian_norm": float(jnp.linalg.norm(J, 2))}
