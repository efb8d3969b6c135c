"""The forward solve of a KKT system: a primal-dual interior point (Mehrotra's centering rule).

With slacks t for the inequalities, the solver finds x = (primal, ν, λ, t) with

    stationarity (or a root problem's equations) = 0,   h = 0,   g + t = 0,   λ ∘ t = μ → 0,

λ, t > 0.  Each Newton step is symift's block elimination of this system, derived once for
every iterate (the generated ``newton_direction``), or a dense LU of its Jacobian.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .linalg import lu_factor, lu_solve
from .spec import ProblemSpec, max_abs

###{standalone
#: How far from 0 a warm start's multipliers and slacks are put: the interior point needs them > 0,
#: and from a solution's exact zeros it would take many steps to move an entry that should grow.
WARM_FLOOR = 1e-6


def interior_point(F, x0, positive, n_pos, tol, maxiter, direction=None, warm=False):
    """Primal-dual interior point on F(x, mu) = 0 with mu -> 0 (Mehrotra's centering rule).

    ``positive`` masks the entries that must stay > 0 (multipliers, slacks, positive variables);
    the last ``n_pos`` entries of x are slacks t, the ``n_pos`` before them their multipliers,
    and the last ``n_pos`` rows of F are lam * t - mu.  Each iteration takes an affine
    (predictor) step to measure how far the gap can fall, targets mu = sigma * gap with
    sigma = (gap_affine / gap)^3, and takes a damped Newton step on F(., mu) — with Mehrotra's
    second-order correction where that step decreases the residual norm.
    Each iteration factorizes dF/dx once: ``direction(x)`` returns the function r -> dF/dx^-1 r
    (default: dense LU of jax.jacfwd(F)), applied to the affine, centered and corrected
    right-hand sides.
    ``tol`` is the acceptance threshold: the loop aims at max |F(x, 0)| <= tol / 1000 and stops
    early once the residual is within tol and two iterations in a row did not halve it, or the
    (corrected) Newton step no longer decreases it (the rounding floor of an ill-conditioned problem:
    without this, one such problem keeps a whole vmapped batch iterating to maxiter).
    A cold start is moved to the affine step's point with its positive entries pushed to >= 1; a
    ``warm`` start (near a solution, positive entries already > 0) is taken as it is.
    Returns (x, max |F(x, 0)|, iterations).
    """
    def residual_at(x, mu):  # in the unknowns' dtype (float32 stays float32)
        return F(x, mu).astype(x.dtype)

    def factor(x):
        """The Newton solve at x: factorized once, applied to several right-hand sides."""
        if direction is None:  # dense Newton step on the whole KKT Jacobian
            lu = lu_factor(jax.jacfwd(residual_at)(x, 0.0))
            return lambda r: lu_solve(lu, r)
        solve = direction(x)  # the structured step from the block elimination
        return lambda r: solve(r).astype(x.dtype)

    def gap(x):
        return x[-n_pos:] @ x[-2 * n_pos:-n_pos] / n_pos if n_pos else jnp.zeros((), x.dtype)

    def shifted(r0, mu):  # F(x, mu) from F(x, 0): only the complementarity rows lam * t - mu move
        return r0.at[-n_pos:].add(-mu) if n_pos else r0

    def size(r):
        return jnp.max(jnp.abs(r)) if r.size else jnp.zeros((), r.dtype)

    def to_boundary(x, dx):
        ratio = jnp.where(positive & (dx < 0), -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
        return jnp.min(ratio, initial=jnp.inf)

    def step(state):  # F(x, 0) is carried from the previous step's line search
        x, r0, k, res, stuck = state
        # under vmap the loop runs until the batch's slowest problem is done, and the step of a
        # problem already done is discarded: its line search must not keep the batch's backtracking
        # loops going (one at its rounding floor never decreases, and would halve 27 times a step)
        live = cont(state)
        solve = factor(x)
        mu = jnp.zeros((), x.dtype)
        if n_pos:
            dxa = solve(-r0)
            xa = x + jnp.minimum(1.0, to_boundary(x, dxa)) * dxa
            sigma = jnp.clip((gap(xa) / gap(x)) ** 3, 0.0, 1.0)
            # stay near the central path: the gap may not fall far below the infeasibility,
            # or pairs (lam, t) both reach 0 while the residual stalls
            infeasible = jnp.max(jnp.abs(r0[:-n_pos]), initial=0.0)
            mu = jnp.maximum(sigma * gap(x), 0.1 * jnp.minimum(gap(x), infeasible))
        r = shifted(r0, mu)
        norm_r = jnp.linalg.norm(r)
        # fraction to the boundary: 0.99 far out, closer to 1 as the gap closes (else every step
        # stops 1% short and the gap falls at most 100x per iteration)
        tau = jnp.clip(1.0 - gap(x), 0.99, 1.0 - 100 * jnp.finfo(x.dtype).eps) if n_pos else 0.99

        def newton_step():  # the plain (centered) Newton step and its fraction to the boundary
            dx = solve(-r)
            return jnp.minimum(1.0, tau * to_boundary(x, dx)), dx

        def trial(d, a):
            return residual_at(x + a * d, jnp.zeros((), x.dtype))

        def ok(a, r_a):  # sufficient decrease of the residual norm
            return jnp.linalg.norm(shifted(r_a, mu)) <= (1 - 1e-4 * a) * norm_r

        if n_pos:  # Mehrotra's corrector (the second-order term dlam_aff * dt_aff) first
            dxc = solve(-r.at[-n_pos:].add(dxa[-2 * n_pos:-n_pos] * dxa[-n_pos:]))
            ac = jnp.minimum(1.0, tau * to_boundary(x, dxc))
            start = (ac, dxc, trial(dxc, ac), jnp.array(False))
        else:
            alpha, dx = newton_step()
            start = (alpha, dx, trial(dx, alpha), jnp.array(True))

        def halve(s):
            a, d, _, plain = s
            return 0.5 * a, d, trial(d, 0.5 * a), plain

        def switch(s):  # to the plain Newton step
            a, d = newton_step()
            return a, d, trial(d, a), jnp.array(True)

        # backtrack the corrector twice, then switch to the plain step (a loop of at most one
        # pass: under vmap it is solved only when some problem needs it), then backtrack that
        s = start
        if n_pos:
            s = lax.while_loop(lambda s: live & ~ok(s[0], s[2]) & (s[0] > 0.3 * ac), halve, s)
            s = lax.while_loop(lambda s: live & ~ok(s[0], s[2]) & ~s[3], switch, s)
        a, d, r_a, _ = lax.while_loop(lambda s: live & ~ok(s[0], s[2]) & (s[0] > 1e-8), halve, s)
        # no step without a decrease (nor into NaN: a failed factorization at the rounding floor)
        moved = ok(a, r_a)
        x, r0 = jnp.where(moved, x + a * d, x), jnp.where(moved, r_a, r0)
        new = size(r0)
        # within tol, a first step that does not decrease the residual marks the rounding floor
        floor = ~ok(start[0], start[2]) if n_pos else jnp.array(False)
        return x, r0, k + 1, new, jnp.where(floor, 2, jnp.where(new > 0.5 * res, stuck + 1, 0))

    def cont(state):
        _, _, k, res, stuck = state
        return (k < maxiter) & (res > 1e-3 * tol) & jnp.isfinite(res) & ~((res <= tol) & (stuck >= 2))

    zero = jnp.zeros((), x0.dtype)
    if n_pos and not warm:  # start from the affine step's point, with the positive entries pushed to >= 1
        x1 = x0 + factor(x0)(-residual_at(x0, zero))
        x1 = jnp.where(positive, jnp.maximum(jnp.abs(x1), 1.0), x1)
        x0 = jnp.where(jnp.all(jnp.isfinite(x1)), x1, x0)
    r0 = residual_at(x0, zero)
    x, _, k, res, _ = lax.while_loop(cont, step, (x0, r0, 0, size(r0), 0))
    return x, res, k


def reduced_direction(spec: ProblemSpec, params: dict, unpack, sizes):
    """The interior point's Newton step without a derived one: the multipliers λ and slacks t
    eliminated numerically, so only the primal and equality-dual block y = (z, ν) is factorized.

    With rows E (stationarity, h), G = g + t and C = λ∘t − μ, the step solves
    E_y dy + E_λ dλ = r_E,  J_g dz + dt = r_G,  t∘dλ + λ∘dt = r_C.  C and G give
    dλ = w∘(J_g dz − r_G) + r_C / t with w = λ / t, so (E_y + E_λ diag(w) J_g) dy =
    r_E − E_λ (r_C / t − w∘r_G): a dense LU of size dim y instead of dim y + 2·dim λ
    (a multiclass SVM dual with m×k variables: m(k + 1) instead of m(3k + 1), 20× fewer flops).
    """
    n_y = sum(sizes[:len(spec.variables) + len(spec.equalities)])
    n_pos = sum(sizes[len(spec.unknowns):])

    def direction(x):
        y, lam, t = x[:n_y], x[n_y:n_y + n_pos], x[n_y + n_pos:]

        def E(y, lam):
            values = unpack(jnp.concatenate([y, lam, t]))
            return jnp.concatenate([jnp.ravel(b) for b in spec.equations(
                **params, **{u: values[u] for u in spec.unknowns})]).astype(x.dtype)

        def g(y):
            values = unpack(jnp.concatenate([y, lam, t]))
            return jnp.concatenate([jnp.ravel(c) for c in spec.constraints(
                **params, **{v: values[v] for v in spec.variables})]).astype(x.dtype)

        _, e_y = jax.linearize(lambda v: E(v, lam), y)
        _, e_lam = jax.linearize(lambda v: E(y, v), lam)
        _, j_g = jax.linearize(g, y)
        w = lam / t
        reduced = jax.vmap(lambda v: e_y(v) + e_lam(w * j_g(v)), out_axes=1)(jnp.eye(n_y, dtype=x.dtype))
        lu = lu_factor(reduced)

        def step(r):
            r_e, r_g, r_c = r[:n_y], r[n_y:n_y + n_pos], r[n_y + n_pos:]
            dy = lu_solve(lu, r_e - e_lam(r_c / t - w * r_g))
            dlam = w * (j_g(dy) - r_g) + r_c / t
            return jnp.concatenate([dy, dlam, (r_c - t * dlam) / lam])
        return step
    return direction


def _factored_sizes(jaxpr, varying, total=None) -> dict:
    """The total order of the matrix factorizations in ``jaxpr`` that depend on the inputs flagged in
    ``varying``, by kind ({"cholesky": .., "lu": ..}): a Newton step's work per iterate, without
    what XLA computes once."""
    total = {"cholesky": 0, "lu": 0} if total is None else total
    dep = {v for v, f in zip(jaxpr.invars, varying, strict=True) if f}
    for eqn in jaxpr.eqns:
        flags = [type(v).__name__ != "Literal" and v in dep for v in eqn.invars]
        if not any(flags):
            continue
        dep.update(eqn.outvars)
        subs = [getattr(v, "jaxpr", v) for v in eqn.params.values()]
        subs = [j for j in subs if hasattr(j, "eqns") and len(getattr(j, "invars", ())) == len(flags)]
        if subs:  # a call (jit, custom_jvp, custom_vmap): its body, with the same inputs
            _factored_sizes(subs[0], flags, total)
        elif eqn.primitive.name in total:
            total[eqn.primitive.name] += int(eqn.invars[0].aval.shape[-1])
    return total


def _cheaper_per_iterate(constant, newton, params, values, row_shapes) -> bool:
    """Take the Newton step whose parameter pivots come first (inverted once, outside the loop)
    when the matrices it factorizes at every iterate are at most half the size of the other's, or
    no larger and all by Cholesky.  For a QP with p inequalities, n unknowns and m equalities it
    factorizes diag(t/λ) + G P Gᵀ by Cholesky (p × p, P = Q⁻¹ − Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹AQ⁻¹ psd, G P Gᵀ
    formed once) instead of Q + Gᵀ diag(λ/t) G and A (·)⁻¹ Aᵀ (n × n and m × m, the Gram product
    formed at every iterate), and applies Q⁻¹ as a product: taken for p ≤ n + m.  Measured
    (OptNet QP, fwd+bwd, batch 64 and 128, benchmarks/RESULTS.md): at p = n/4 1.1-1.9x faster at
    n = 25..200; at p = n 1.1-1.5x with the Cholesky, 0.6-0.9x with the LU; at p = 2n 0.6-0.75x."""
    primal = sum(per_iterate_sizes(newton, params, values, row_shapes).values())
    sizes = per_iterate_sizes(constant, params, values, row_shapes)
    return 2 * sum(sizes.values()) <= primal or (sizes["lu"] == 0 and sizes["cholesky"] <= primal)


def per_iterate_sizes(step, params, values, row_shapes) -> dict:
    """The total order of the factorizations a Newton step (``step(**params, **values)(*rows)``)
    redoes at every iterate, by kind ({"cholesky": .., "lu": ..}), read off its jaxpr for these
    shapes (what depends on the parameters alone, XLA computes once)."""
    def abstract(v):
        return jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v))
    fixed = {k: abstract(v) for k, v in params.items()}
    moving = {k: abstract(v) for k, v in values.items()}
    rows = [jax.ShapeDtypeStruct(s, jnp.result_type(float, *params.values())) for s in row_shapes]
    closed = jax.make_jaxpr(lambda p, x, r: step(**p, **x)(*r))(fixed, moving, rows)
    n_fixed = len(jax.tree.leaves(fixed))
    return _factored_sizes(closed.jaxpr, [i >= n_fixed for i in range(len(closed.jaxpr.invars))])


def kkt_solve(spec: ProblemSpec, params: dict, tol, maxiter, start=None):
    """The forward solve of a problem's KKT system (or a root problem's equations); ``start``: the
    starting values of some unknowns (by name), the others start as below.

    Returns ({unknown: value}, {indicator: 1 on the inactive set}, max |F(x, 0)|).
    """
    dtype = jnp.result_type(float, *params.values())
    shapes = spec.shapes(**params)
    slacks = tuple(f"_t_{m}" for m in spec.inequalities)
    names = spec.unknowns + slacks
    shape_of = dict(shapes, **{t: shapes[m] for t, m in zip(slacks, spec.inequalities, strict=False)})
    sizes = [int(np.prod(shape_of[k])) for k in names]
    offsets = np.cumsum([0] + sizes)

    def unpack(x):
        return {k: x[offsets[i]:offsets[i + 1]].reshape(shape_of[k]) for i, k in enumerate(names)}

    def blocks(values, mu):
        out = list(spec.equations(**params, **{u: values[u] for u in spec.unknowns}))
        gs = spec.constraints(**params, **{v: values[v] for v in spec.variables})
        out += [g + values[t] for g, t in zip(gs, slacks, strict=False)]
        out += [values[m] * values[t] - mu for m, t in zip(spec.inequalities, slacks, strict=False)]
        return out

    def F(x, mu):
        return jnp.concatenate([jnp.ravel(b) for b in blocks(unpack(x), mu)])

    # the start: ones for positive variables, zeros otherwise; equality duals 0; λ = t = 1
    positive = set(spec.positive) | set(spec.inequalities) | set(slacks)
    start = dict(start or {})

    def first(k):  # a cold start's value
        return jnp.full(shape_of[k], float(k in positive), dtype)
    warm = bool(start) and bool(spec.inequalities)
    if warm:
        # a warm start: every unknown (those not given as in a cold start), the slacks from the
        # constraints at its point, and multipliers and slacks kept >= r² (r: the stationarity
        # residual there) and >= WARM_FLOOR.  Measured on a QP (n = p = 30) against the cold start's
        # 7-12 iterations: the solution for q' = q + δ·N(0, 1) as start takes 3 for δ = 0.005,
        # 4-9 for δ = 0.05, and as many as cold for δ = 1 (a plain floor of 1e-6 took 2 for
        # δ = 0.005, but 11-17 for δ = 1: a wrong active set held near the boundary)
        full = {k: jnp.asarray(start[k], dtype) if k in start else first(k) for k in spec.unknowns}
        gs = spec.constraints(**params, **{v: full[v] for v in spec.variables})
        full.update({t: -g for t, g in zip(slacks, gs, strict=True)})
        residual = max_abs(spec.equations(**params, **{u: full[u] for u in spec.unknowns}))
        floor = jnp.clip(residual ** 2, WARM_FLOOR, 1.0)
        start = {k: jnp.maximum(v, floor) if k in positive else v for k, v in full.items()}
    x0 = jnp.concatenate([jnp.ravel(start[k] if k in start else first(k)).astype(dtype) for k in names])
    mask = jnp.concatenate([jnp.full((s,), k in positive) for k, s in zip(names, sizes, strict=True)])

    direction = None
    if spec.newton_direction is not None:
        row_shapes = [jnp.shape(b) for b in jax.eval_shape(lambda x: blocks(unpack(x), 0.0), x0)]
        cuts = np.cumsum([0] + [int(np.prod(s)) for s in row_shapes])
        newton = spec.newton_direction
        constant = spec.newton_direction_constant
        if constant is not None and _cheaper_per_iterate(constant, newton, params, unpack(x0), row_shapes):
            newton = constant

        def direction(x):
            values = unpack(x)
            solve = newton(**params, **values)

            def step(r):
                rows = [r[cuts[k]:cuts[k + 1]].reshape(s) for k, s in enumerate(row_shapes)]
                return jnp.concatenate([jnp.ravel(v) for v in solve(*rows)])
            return step

    elif spec.inequalities:
        direction = reduced_direction(spec, params, unpack, sizes)
    x, res, _ = interior_point(F, x0, mask, sum(sizes[len(spec.unknowns):]), tol, maxiter, direction, warm)
    values = unpack(x)
    # sᵢ = 1 on the inactive set, where the slack exceeds the multiplier
    indicators = {spec.indicator_of[m]: jnp.where(values[t] > values[m], 1.0, 0.0).astype(dtype)
                  for m, t in zip(spec.inequalities, slacks, strict=False) if m in spec.indicator_of}
    return {u: values[u] for u in spec.unknowns}, indicators, res
###}
