"""Is a computed solution a point where the implicit function theorem applies?  Measured, per solution.

The IFT needs, at the solution x* of F(x, θ) = 0, that ∂F/∂x be nonsingular — with inequality
constraints, on the active set and under strict complementarity.  Exact zero pivots say nothing
about that in floating point (whether LAPACK meets an exact 0 depends on the machine's kernel), so
each condition is measured:

* ``cond`` — the condition of the pivots of the block elimination that derived the closed form
  (symift.symbolic.eliminate): ∂F/∂x is nonsingular exactly when every pivot is, and each pivot's
  condition is what the IFT report states as "holds if ...".  A scalar or diagonal pivot
  p = Σ terms is measured by its cancellation, max Σ|terms| / |p| (1 without cancellation, inf at
  p = 0); a matrix pivot (a declared-pd Q, a Schur complement A Q⁻¹ Aᵀ) by Skeel's condition
  number ‖ |P⁻¹| |P| ‖∞, estimated by Hager's method as refined by Higham (LAPACK's xLACN2) from
  the factorization the closed form uses: a few solves with it and its transpose.  Both are
  invariant to scaling a row, as the solution's sensitivity is (a pivot diag(1/z) has condition 1
  however small z gets).  Scalar and diagonal pivots that the derivation proves nonzero for every
  admissible value are not measured.  ``cond`` is the largest (1 when nothing is measured); regular while
  cond ≤ ``cond_limit(dtype)`` = 0.01/ε (4.5e13 in float64, 8.4e4 in float32), so a tangent
  keeps at least two correct digits.
* ``margin`` — strict complementarity: minᵢ max(λᵢ, −gᵢ) over the inequality constraints (λᵢ on
  the active set, −gᵢ off it); +inf without inequalities.  Regular while it exceeds
  ``margin_floor`` = 10·max(√maxᵢ|λᵢgᵢ|, ε·scale): at a degenerate pair both λᵢ and −gᵢ are about
  the square root of the complementarity residual, at a strictly complementary one the larger is
  not.
* ``converged`` — the KKT residual is within tol.

``regular`` is their conjunction.  jax and numpy only (copied into standalone modules).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from .spec import ProblemSpec, constraint_values

###{standalone


def cond_limit(dtype):
    """The largest condition number at which a solution counts as regular: 0.01 / ε."""
    return 0.01 / jnp.finfo(dtype).eps


def norm1_estimate(apply, apply_t, n, dtype, maxiter=5):
    """An estimate (a lower bound, usually within a factor 3) of ‖B‖₁ from products with B and Bᵀ.

    Hager (1984) with Higham's refinements (1988, LAPACK xLACN2): gradient ascent of ‖Bx‖₁ over
    the unit ball of the 1-norm, from x = 1/n, moving to the vertex e_j where |Bᵀ sign(Bx)| is
    largest until that no longer increases the estimate; then the alternating vector
    bᵢ = (−1)ⁱ(1 + i/(n−1)) as a safeguard against unlucky starts.  2–5 products each way.
    """
    def sign(y):
        return jnp.where(y >= 0, 1.0, -1.0).astype(dtype)

    x = jnp.full((n,), 1.0 / n, dtype)
    y = apply(x)
    est = jnp.sum(jnp.abs(y))
    z = apply_t(sign(y))

    def cont(state):
        k, est, z, x, done = state
        return (k < maxiter) & ~done

    def step(state):
        k, est, z, x, _ = state
        j = jnp.argmax(jnp.abs(z))
        converged = jnp.abs(z[j]) <= z @ x  # no vertex improves the bound
        e = jnp.zeros((n,), dtype).at[j].set(1.0)
        y = apply(e)
        new = jnp.sum(jnp.abs(y))
        better = (new > est) & ~converged
        z2 = apply_t(sign(y))
        return (k + 1, jnp.where(better, new, est), jnp.where(better, z2, z), jnp.where(better, e, x),
                ~better)

    _, est, _, _, _ = lax.while_loop(cont, step, (0, est, z, x, jnp.array(False)))
    i = jnp.arange(n, dtype=dtype)
    b = jnp.where(i % 2 == 0, 1.0, -1.0) * (1.0 + i / max(n - 1, 1))
    alt = 2 * jnp.sum(jnp.abs(apply(b))) / (3 * n)
    est = jnp.maximum(est, alt)
    return jnp.where(jnp.isfinite(est), est, jnp.inf)


def skeel_condition(solve, solve_t, row_abs, n, dtype):
    """An estimate of Skeel's condition number ‖ |A⁻¹| |A| ‖∞ = ‖A⁻¹ diag(g)‖∞ with g = |A|·1.

    It is invariant to scaling the rows of A, as a solution's sensitivity is: for softmax the
    stationarity rows hold diag(1/z), which alone would make κ(A) about 1/min z although the
    derivative diag(z) − zzᵀ is perfectly conditioned.  Rows with an infinite g (an entry like
    1/zᵢ at an underflowed zᵢ = 0) fix their unknown completely and count as exact.  ‖B‖∞ is
    estimated as ‖Bᵀ‖₁ (Hager–Higham) with Bᵀv = g∘A⁻ᵀv and Bv = A⁻¹(g∘v).
    """
    g = jnp.where(jnp.isfinite(row_abs), row_abs, 0.0).astype(dtype)
    return norm1_estimate(lambda v: g * solve_t(v), lambda v: solve(g * v), n, dtype)


def lu_condition(lu, row_abs):
    """Skeel's condition number of A from its LU factors (jax.scipy.linalg.lu_factor) and |A|·1."""
    factors = lu[0]

    def solve(v):
        return jax.scipy.linalg.lu_solve(lu, v)

    def solve_t(v):
        return jax.scipy.linalg.lu_solve(lu, v, trans=1)

    return skeel_condition(solve, solve_t, row_abs, factors.shape[0], factors.dtype)


def pivot_condition(value, bound):
    """How well a scalar or diagonal pivot p = Σ terms is determined: max over entries of Σ|terms| / |p|.

    ``bound`` ≥ Σ|terms| entrywise (the pivot printed with every sign dropped).  1 where no
    cancellation happens, inf where the pivot is 0; an infinite entry (1/zᵢ at an underflowed zᵢ)
    fixes its unknown exactly and counts as 1.
    """
    value, bound = jnp.abs(jnp.ravel(value)), jnp.ravel(bound)
    ratio = jnp.where(value > 0, bound / jnp.where(value > 0, value, 1.0), jnp.inf)
    ratio = jnp.where(jnp.isinf(value), 1.0, ratio)
    return jnp.max(ratio, initial=1.0)


def factor_condition(kind, factors, dense):
    """Skeel's condition number of a matrix pivot from its factorization ("cho": upper Cholesky
    factor, "lu": jax.scipy.linalg.lu_factor's) and the pivot as a dense matrix."""
    n, dtype = dense.shape[0], dense.dtype
    if n == 0:
        return jnp.ones((), dtype)
    if kind == "cho":
        def solve(v):
            return jax.scipy.linalg.cho_solve((factors, False), v)
        solve_t = solve  # a Cholesky pivot is symmetric
    else:
        def solve(v):
            return jax.scipy.linalg.lu_solve(factors, v)

        def solve_t(v):
            return jax.scipy.linalg.lu_solve(factors, v, trans=1)
    return skeel_condition(solve, solve_t, jnp.sum(jnp.abs(dense), axis=1), n, dtype)


def complementarity_requests(spec: ProblemSpec, params, unknowns):
    """The reductions the complementarity margin needs (for runtime.spec.reduce_many, which reads
    them in one pass with the other status reductions): [] without live inequalities."""
    live = [m for m in spec.inequalities if m not in spec.declared_inactive]
    if not live:
        return []
    gs = constraint_values(spec, params, unknowns)
    pairs = [(jnp.ravel(unknowns[m]), jnp.ravel(gs[m])) for m in live]
    return [("min", [jnp.maximum(lam, -g) for lam, g in pairs]), ("max_abs", [lam * g for lam, g in pairs])]


def margin_and_floor(values, scale, dtype):
    """(margin, floor) from the values of complementarity_requests (+inf and 0 for none)."""
    if not values:
        return jnp.asarray(jnp.inf, dtype), jnp.zeros((), dtype)
    margin, product = (jnp.asarray(v, dtype) for v in values)
    return margin, 10 * jnp.maximum(jnp.sqrt(product), jnp.finfo(dtype).eps * scale)
###}
