"""The implicit backward without a closed form: a checked linear solve on the derived ∂F/∂x.

The tangent of the solution map is

    dx = −(∂F/∂x)⁻¹ ∂F/∂θ · dθ,

with F the derived KKT residual (``spec.residual``).  Its products with ∂F/∂x and ∂F/∂θ are
``jax.linearize`` / ``jax.jvp`` of F:

* ``lu`` factors the dense ∂F/∂x (one jvp per unknown), for small systems;
* ``gmres`` / ``bicgstab`` are matrix-free Krylov solves (``jax.scipy.sparse.linalg``);
* ``cg`` needs ∂F/∂x symmetric positive definite: that is the Hessian of an unconstrained
  minimization at a strict minimum, never a KKT matrix with constraints (saddle point, and the
  complementarity rows λ∘g make it nonsymmetric), nor a root problem's Jacobian in general —
  it is refused there;
* ``auto`` uses the closed form when one was derived, else LU up to ``DENSE_LIMIT`` = 4000
  unknowns (a dense factorization of that size takes under a second on 2 cores) and GMRES above.

Complementarity rows λᵢgᵢ are divided by |λᵢ| + |gᵢ| (a diagonal row scaling, same solution):
under strict complementarity an active row then reads ∇gᵢ·dx = −∂gᵢ/∂θ·dθ and an inactive one
dλᵢ = 0, so the system is nonsingular and well scaled.

No silent failure: the solve runs inside ``lax.custom_linear_solve`` with a residual check
‖∂F/∂x·dx + ∂F/∂θ·dθ‖ ≤ backward_tol·‖∂F/∂θ·dθ‖ (and, for LU, a condition estimate of the
factors below the dtype's limit).  The check runs on whatever is solved — the tangent under
jvp/jacfwd, the cotangent with (∂F/∂x)ᵀ under grad/jacrev — and a failed solve returns NaN,
the loud flag under jit and vmap.  Tangents are never concrete inside the jitted rule, so the
eager check happens earlier: when the layer is called with autodiff tracers whose values are
concrete (an eager jax.grad / jax.jvp), it solves the same system for a generic right-hand side
and raises ``SolverError`` if that fails — which catches a singular ∂F/∂x and a Krylov method
that stops short.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .linalg import lu_factor
from .spec import ProblemSpec, SolverError, constraint_values
from .status import cond_limit, lu_condition

###{standalone
BACKWARD_METHODS = ("auto", "closed_form", "lu", "gmres", "bicgstab", "cg")
DENSE_LIMIT = 4000  # backward="auto" without a closed form: dense LU up to this many unknowns (0.8 s on 2 cores)


def concrete(x):
    """The value of x, or None where it is only known abstractly (under jit or vmap).

    The autodiff tracers of an eager jax.grad / jax.jvp carry a concrete primal value.
    """
    if not isinstance(x, jax.core.Tracer):
        return x
    return getattr(x, "to_concrete_value", lambda: None)()


def ravel(values):
    """The arrays as one flat vector, and the function that splits such a vector back."""
    shapes = [jnp.shape(v) for v in values]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unravel(x):
        return tuple(x[cuts[k]:cuts[k + 1]].reshape(s) for k, s in enumerate(shapes))
    return jnp.concatenate([jnp.ravel(v) for v in values]), unravel


def row_scale(spec: ProblemSpec, params, unknowns):
    """D = 1 on stationarity and equality rows, 1/(|λᵢ| + |gᵢ|) on complementarity rows λ∘g."""
    gs = constraint_values(spec, params, unknowns)
    rows = []
    for u in spec.unknowns:
        if u in gs:
            w = jnp.ravel(jnp.abs(unknowns[u]) + jnp.abs(gs[u]))
            rows.append(1.0 / jnp.where(w > 0, w, 1.0))
        else:
            rows.append(jnp.ones(jnp.size(unknowns[u]), jnp.result_type(unknowns[u])))
    return jnp.concatenate(rows)


def kkt_operator(spec: ProblemSpec, params, unknowns, method):
    """x, F(x, θ) = D·residual as flat vectors, v -> D ∂F/∂x v, (LU factors, κ₁ estimate) for "lu", unravel."""
    x, unravel = ravel([unknowns[u] for u in spec.unknowns])
    scale = row_scale(spec, params, unknowns)
    # At a strictly complementary solution one of λᵢ, gᵢ is 0; a solver leaves both small (an
    # interior point: λᵢgᵢ ≈ μ), and linearizing λ∘g there as λ dg + g dλ errs by about |g|/|λ|
    # (5e-5 relative was measured on the SVM dual).  So the rows are linearized at the limit:
    # λ̃ dg + g̃ dλ with the smaller of the pair set to 0 (the active set the closed forms use).
    g0 = constraint_values(spec, params, unknowns)
    active = {m: unknowns[m] >= -g0[m] for m in spec.inequalities}
    limit = {m: (jnp.where(active[m], unknowns[m], 0.0), jnp.where(active[m], 0.0, g0[m])) for m in spec.inequalities}

    def F(x, params):
        values = dict(zip(spec.unknowns, unravel(x), strict=False))
        blocks = list(spec.residual(**params, **values).values())
        if spec.inequalities:  # the complementarity blocks come last, in the order of spec.inequalities
            gs = constraint_values(spec, params, values)
            blocks = blocks[:-len(spec.inequalities)] + [limit[m][0] * gs[m] + limit[m][1] * values[m]
                                                         for m in spec.inequalities]
        return scale * jnp.concatenate([jnp.ravel(b) for b in blocks]).astype(x.dtype)

    _, matvec = jax.linearize(lambda v: F(v, params), x)
    lu = None
    if method == "lu":  # the dense ∂F/∂x, one column per jvp
        dense = jax.vmap(matvec, out_axes=1)(jnp.eye(x.size, dtype=x.dtype))
        factors = lu_factor(dense)
        lu = (factors, lu_condition(factors, jnp.sum(jnp.abs(dense), axis=1)))
    return x, F, matvec, lu, unravel


def resolve_method(spec: ProblemSpec, method, unknowns):
    """"auto" without a closed form: LU up to DENSE_LIMIT unknowns, GMRES above."""
    size = sum(int(np.size(unknowns[u])) for u in spec.unknowns)
    return ("lu" if size <= DENSE_LIMIT else "gmres") if method == "auto" else method


def solve_linear(matvec, b, method, tol, maxiter, lu=None, trans=0):
    """x ≈ A⁻¹b (Aᵀ for trans=1) and the relative residual ‖Ax − b‖/‖b‖ (inf if not finite).

    ``lu``: (LU factors, κ₁ estimate) of A.  The residual is inf as well when that estimate
    exceeds the dtype's limit (see symift.runtime.status): LU is backward stable, so a numerically
    singular ∂F/∂x gives a small residual with a meaningless x, and no zero pivot need show it.
    """
    n = b.size
    maxiter = 10 * n if maxiter is None else int(maxiter)
    if method == "lu":
        x = jax.scipy.linalg.lu_solve(lu[0], b, trans=trans)
    elif method == "gmres":
        restart = max(1, min(n, 50, maxiter))
        x, _ = jax.scipy.sparse.linalg.gmres(matvec, b, tol=tol / 10, atol=0.0, restart=restart,
                                              maxiter=-(-maxiter // restart))
    elif method == "bicgstab":  # from x0 = 0, r̂ = b breaks down on KKT rows (ω = 0): start off it
        x0 = 0.1 * jnp.linalg.norm(b) / np.sqrt(n) * jnp.cos(1.0 + jnp.arange(n, dtype=b.dtype))
        x, _ = jax.scipy.sparse.linalg.bicgstab(matvec, b, x0=x0, tol=tol / 10, atol=0.0, maxiter=maxiter)
    else:
        x, _ = jax.scipy.sparse.linalg.cg(matvec, b, tol=tol / 10, atol=0.0, maxiter=maxiter)
    norm_b = jnp.linalg.norm(b)
    # a right-hand side at rounding level (a derivative that vanishes at the solution, dx/dη of a
    # fixed point) is answered 0: a Krylov solve breaks down on it, and its relative error means nothing
    tiny = norm_b <= 1e3 * jnp.finfo(b.dtype).eps
    if method != "lu":
        x = jnp.where(tiny, jnp.zeros_like(x), x)
    err = jnp.where(tiny, 0.0, jnp.linalg.norm(matvec(x) - b) / jnp.where(norm_b > 0, norm_b, 1.0))
    if lu is not None:
        err = jnp.where(lu[1] <= cond_limit(b.dtype), err, jnp.inf)
    return x, jnp.where(jnp.isfinite(err), err, jnp.inf)


def checked_solve(matvec, b, method, tol, maxiter, lu):
    """A⁻¹b by lax.custom_linear_solve; NaN where the solve fails its residual check.

    The check sits inside the solve, so it runs on whatever is solved: the tangent under
    jvp / jacfwd, the cotangent (with Aᵀ) under grad / jacrev.
    """
    def solve(mv, rhs, trans=0):
        x, err = solve_linear(mv, rhs, method, tol, maxiter, lu, trans)
        return jnp.where(err <= tol, x, jnp.nan)

    def transpose_solve(mv, rhs):
        return solve(mv, rhs, 1)

    return lax.custom_linear_solve(matvec, b, solve, transpose_solve)


def implicit_tangents(spec: ProblemSpec, params, unknowns, tangents, method, tol, maxiter):
    """dx = −(∂F/∂x)⁻¹ ∂F/∂θ·dθ by a linear solve on the derived KKT Jacobian (row-scaled)."""
    method = resolve_method(spec, method, unknowns)
    x, F, matvec, lu, unravel = kkt_operator(spec, params, unknowns, method)
    b = -jax.jvp(lambda p: F(x, p), (params,), (tangents,))[1]
    return unravel(checked_solve(matvec, b, method, tol, maxiter, lu))


def backward_probe(spec: ProblemSpec, params, unknowns, method, tol, maxiter):
    """The backward solve's relative residual for a generic right-hand side.

    A singular ∂F/∂x, or a Krylov method that stops short, fails it whatever dθ is.
    """
    method = resolve_method(spec, method, unknowns)
    x, _, matvec, lu, _ = kkt_operator(spec, params, unknowns, method)
    return solve_linear(matvec, jnp.cos(1.0 + jnp.arange(x.size, dtype=x.dtype)), method, tol, maxiter, lu)[1]


def check_backward(spec: ProblemSpec, probes: dict, params, unknowns, method, tol, maxiter):
    """Eager check of the backward linear solve at a concrete solution (SolverError).

    ``probes`` caches the jitted probe per (method, tol, maxiter).
    """
    key = (method, tol, maxiter)
    if key not in probes:
        probes[key] = jax.jit(lambda p, u: backward_probe(spec, p, u, *key))
    err = float(probes[key](params, unknowns))
    if not err <= tol:
        method = resolve_method(spec, method, unknowns)
        hint = "" if method == "lu" else f", or {method} needs more iterations (backward_maxiter)"
        raise SolverError(f"the backward linear solve ({method}) fails at this solution: relative "
                          f"residual {err:.3g} > backward_tol {tol:g}. The KKT Jacobian dF/dx is "
                          "singular or ill-conditioned there (the implicit function theorem needs "
                          f"strict complementarity and linearly independent active constraints){hint}")


def backward_method(spec: ProblemSpec, backward):
    """The backward to use: "closed_form", a linear-solve method, or "auto" (resolved by size)."""
    if backward not in BACKWARD_METHODS:
        raise ValueError(f"backward must be one of {', '.join(BACKWARD_METHODS)}; got {backward!r}")
    if backward == "auto":
        return "closed_form" if spec.closed_form else "auto"
    if backward == "closed_form" and not spec.closed_form:
        raise ValueError(f"no closed-form Jacobian was derived ({spec.why_no_closed_form}); "
                         "use backward='auto', 'lu' or 'gmres'")
    if backward == "cg" and not spec.cg_applicable:
        raise ValueError("backward='cg' needs a symmetric positive definite dF/dx, which only an "
                         "unconstrained minimization has (a KKT matrix is indefinite and a root "
                         "problem's Jacobian nonsymmetric); use 'lu', 'gmres' or 'bicgstab'")
    return backward
###}
