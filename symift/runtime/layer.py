"""The differentiable solution map of one problem: forward solve, status, implicit backward.

``make_layer(spec)`` returns ``layer(args, **options) -> dict``.  The solution is computed by
the problem's own forward solve (dual reduction, interior point) or a user's solver, inside a
``jax.custom_jvp`` whose tangent is dx = −(∂F/∂x)⁻¹ ∂F/∂θ·dθ: the derived closed form
(``spec.tangents``) or a checked linear solve on the derived ∂F/∂x (symift.runtime.implicit).
Every solution carries its status (symift.runtime.status): ``residual``, ``converged``, ``cond``,
``margin`` and ``regular``, per batch element under vmap; an optimization problem's also carries
``value``, the optimal value, whose tangent is the envelope theorem's ∂L/∂θ·dθ (spec.value_tangent).

No quiet numbers: in eager use a forward solve that did not converge, or a solution at which
∂F/∂x is singular or ill-conditioned, raises ``SolverError``; an eager jax.grad / jax.jvp also
raises where strict complementarity fails.  Under jit and vmap the status is the flag, and the
tangents of an irregular solution are NaN (``strict=False`` keeps them: the closed form on the
computed active set, an element of the generalized Jacobian at a degenerate point).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .batching import in_chunks
from .implicit import DENSE_LIMIT, backward_method, check_backward, concrete, implicit_tangents, kkt_operator
from .recovery import user_solve
from .spec import ACCELERATIONS, ProblemSpec, SolverError, constraint_values, max_abs, reduce_many
from .status import complementarity_requests, cond_limit, margin_and_floor

###{standalone
#: The entries of a layer's result besides the unknowns and the indicators: the status, and the
#: optimal value (optimization problems).
STATUS_KEYS = ("residual", "converged", "cond", "margin", "regular", "value")


def data_scale(args, largest=None):
    """max(1, max |θ|) over every parameter entry: the KKT residual is measured relative to it, so
    that tol means the same for data of size 1 and of size 1000 (rounding alone leaves a
    residual of about eps · |θ| · |x| · condition).  ``largest``: max |θ| when already reduced
    (with the status, see _forward_fn), else it is reduced here."""
    if largest is None:
        largest = max_abs(scale_entries(args))
    return jnp.maximum(jnp.ones((), jnp.result_type(float, *args)), largest)


def scale_entries(args):
    """The parameters whose entries the data scale reduces (the non-empty ones)."""
    return [p for p in args if jnp.size(p)]


def is_regular(status, tol):
    """Converged, ∂F/∂x well conditioned (or not estimated: NaN) and strictly complementary."""
    cond = status["cond"]
    return ((status["residual"] <= tol) & ~(cond > cond_limit(cond.dtype))
            & (status["margin"] > status["margin_floor"]))


def _forward_fn(spec: ProblemSpec, tol, maxiter, solver, callback, checks, warm=(), acceleration="auto"):
    """The forward solve and its status, as a function of the parameters and the starting values
    of the unknowns named in ``warm`` (never differentiated).

    The solve runs in cache-sized chunks under vmap (symift.runtime.batching.in_chunks), except a
    separable problem solved in closed form; the
    condition estimate runs after it, on the whole batch: its many small solves would otherwise be
    repeated as separate calls for every chunk.
    """
    def solve(*args):
        params = dict(zip(spec.params, args[:len(spec.params)], strict=True))
        start = dict(zip(warm, args[len(spec.params):], strict=True))  # a warm start, never differentiated
        # tol is relative to the size of the problem's data.  A separable solve's only tolerance is
        # on its dual equation aᵀx = b, in the units of x, not of θ: its data scale joins the
        # status's single pass below instead of costing a pass of its own before the solve
        late = solver is None and spec.separable is not None
        scale = None if late else data_scale(args[:len(spec.params)])
        if solver is not None:
            unknowns, indicators, res = user_solve(spec, solver, params, tol * scale, callback)
        else:
            options = {"acceleration": acceleration} if spec.fixed_point is not None else {}
            unknowns, indicators, res = spec.forward(spec, params, tol if late else tol * scale, maxiter,
                                                     start=start, **options)
        inside = dict(zip(spec.unknowns, _inside(spec, tuple(unknowns[u] for u in spec.unknowns)), strict=True))
        # every status reduction at once: one pass over each shape (runtime.spec.reduce_many)
        requests = complementarity_requests(spec, params, inside)
        if isinstance(res, list):  # the solve left its residual's parts to this pass
            requests.append(("max_abs", res))
        if spec.operator_pieces is not None:  # no entry at an operator's kink: its pieces are fixed nearby
            values, conditions = spec.operator_pieces(**params, **inside)
            indicators = {**indicators, **dict(zip(spec.operator_indicators, values, strict=True))}
            requests.append(("min", [jnp.abs(jnp.ravel(c)) for c in conditions]))
        if late:
            requests.append(("max_abs", scale_entries(args[:len(spec.params)])))
        reduced = reduce_many(requests)
        dtype = jnp.result_type(float, *inside.values())
        if late:
            scale = data_scale(args[:len(spec.params)], reduced.pop())
        if spec.operator_pieces is not None:
            distance = reduced.pop()
        if isinstance(res, list):
            res = reduced.pop()
        margin, floor = margin_and_floor(reduced, scale, dtype)
        if spec.operator_pieces is not None:
            margin = jnp.minimum(margin, distance.astype(margin.dtype))
            floor = jnp.maximum(floor, 10 * jnp.maximum(res, jnp.finfo(margin.dtype).eps * scale).astype(floor.dtype))
        dtype = jnp.result_type(res)
        status = {"residual": res / scale, "margin": margin.astype(dtype), "margin_floor": floor.astype(dtype)}
        return (tuple(unknowns[u] for u in spec.unknowns), tuple(indicators[s] for s in spec.indicators), status)

    sep = spec.separable
    if sep is None or solver is not None or (sep.equality is not None and sep.dual is None and sep.start is None):
        # chunks help a solve that iterates over its data (the interior point, the dual Newton):
        # each chunk stays in cache; a separable solve in closed form (box, softmax) is a few
        # elementwise passes, which the chunk loop would only keep XLA from fusing
        solve = in_chunks(solve)

    def forward(*args):
        sol, inds, status = solve(*args)
        cond = jnp.full((), jnp.nan, jnp.result_type(status["residual"]))
        inside = _inside(spec, sol)
        point = {**dict(zip(spec.params, args, strict=False)), **dict(zip(spec.unknowns, inside, strict=True))}
        if checks and spec.pivots is not None:
            cond = spec.pivots(**point, **dict(zip(spec.indicators, inds, strict=True))).astype(cond.dtype)
        elif checks and not spec.closed_form and sum(int(np.size(v)) for v in sol) <= DENSE_LIMIT:
            # no closed form (a coupled matrix variable): the condition of the LU of ∂F/∂x that the
            # backward solves with, so that `regular` says what the backward will find (a dual
            # solution that is not unique is singular there)
            params = dict(zip(spec.params, args, strict=False))
            unknowns = dict(zip(spec.unknowns, inside, strict=True))
            cond = kkt_operator(spec, params, unknowns, "lu")[3][1].astype(cond.dtype)
        value = None if spec.value is None else jnp.asarray(spec.value(**point), cond.dtype)
        return sol, inds, {**status, "cond": cond}, value

    return forward


def _inside(spec: ProblemSpec, sol):
    """The unknowns as the status and the tangent see them: a variable declared > 0 with its entries
    in [0, √tiny) raised to √tiny (1.5e-154 in float64).  An entry at 0 (an underflow, as softmax's
    of −1000, or a user's solver at a sparse solution) has no log, and one near the smallest normal
    number makes 1/x·dx overflow in the tangent's products.  At √tiny both stay finite, and mirror
    descent's derivative there is its limit (P/X → e^{−ημ} < 1).  The layer returns the solution
    as solved: the raised entries are for the derivative only."""
    def raised(v):
        floor = jnp.sqrt(jnp.finfo(v.dtype).tiny)
        return jnp.where((v >= 0) & (v < floor), floor, v)
    return tuple(raised(v) if u in spec.positive else v for u, v in zip(spec.unknowns, sol, strict=True))


def _make_core(spec: ProblemSpec, tol, maxiter, backward, backward_tol, backward_maxiter, solver, callback,
               checks, strict, warm=(), acceleration="auto"):
    """The solution as a function of (parameters…, starting values of the unknowns in ``warm``…):
    the solution does not depend on where the solve started, so those have no tangent."""
    forward = _forward_fn(spec, tol, maxiter, solver, callback, checks, warm, acceleration)

    def symmetric_part(values):
        """A symmetric (psd, pd) matrix parameter enters through its symmetric part (½zᵀQz sees
        nothing else, and the derived F writes Qz for ½(Q + Qᵀ)z): so does its tangent, and the
        gradient, the transpose, comes out symmetric."""
        n = len(spec.params)
        return tuple(0.5 * (t + jnp.swapaxes(t, -1, -2)) if name in spec.symmetric else t
                     for name, t in zip(spec.params, values[:n], strict=True)) + tuple(values[n:])

    @jax.custom_jvp
    def core(*args):
        return forward(*symmetric_part(args))

    @core.defjvp
    def core_jvp(primals, tangents):
        primals, tangents = symmetric_part(primals), symmetric_part(tangents)
        sol, inds, status, value = forward(*primals)
        params = dict(zip(spec.params, primals, strict=False))
        unknowns = dict(zip(spec.unknowns, _inside(spec, sol), strict=True))
        if backward == "closed_form":
            dsol = spec.tangents(**params, **unknowns, **dict(zip(spec.indicators, inds, strict=False)),
                                 **{f"t_{p}": t for p, t in zip(spec.params, tangents, strict=False)})
        else:
            dsol = implicit_tangents(spec, params, unknowns, dict(zip(spec.params, tangents, strict=False)),
                                     backward, backward_tol, backward_maxiter)
        dsol = tuple(jnp.asarray(t, v.dtype) for t, v in zip(dsol, sol, strict=False))
        if strict:  # never a quiet number: an irregular solution has no derivative
            # a NaN factor, not a NaN constant: the tangent stays linear, so reverse mode (the
            # transpose) gives NaN too rather than dropping the constant for a quiet zero
            flag = jnp.where(is_regular(status, tol), 1.0, jnp.nan)
            dsol = tuple(t * flag.astype(t.dtype) for t in dsol)
        dvalue = None
        if value is not None:  # the envelope theorem: dV = ±∂L/∂θ·dθ, no dx needed
            dvalue = jnp.asarray(spec.value_tangent(**params, **unknowns, **{
                f"t_{p}": t for p, t in zip(spec.params, tangents, strict=False)}), value.dtype)
            if strict:  # it needs a solution and unique multipliers, not strict complementarity
                unique = (status["residual"] <= tol) & ~(status["cond"] > cond_limit(status["cond"].dtype))
                dvalue = dvalue * jnp.where(unique, 1.0, jnp.nan).astype(value.dtype)
        zero = (tuple(jnp.zeros_like(s) for s in inds), jax.tree.map(jnp.zeros_like, status))
        return (sol, inds, status, value), (dsol, *zero, dvalue)

    return core


def _complementarity_report(spec: ProblemSpec, params, unknowns):
    """Which inequality fails strict complementarity, in words (eager use only)."""
    gs = constraint_values(spec, params, unknowns)
    worst = []
    for m in spec.inequalities:
        if m in spec.declared_inactive:
            continue
        lam, g = np.ravel(np.asarray(unknowns[m])), np.ravel(np.asarray(gs[m]))
        if lam.size:
            i = int(np.argmin(np.maximum(lam, -g)))
            worst.append((max(lam[i], -g[i]), m, i, lam[i], g[i]))
    if spec.operator_pieces is not None:  # the argument of a prox / projection at a kink
        _, conditions = spec.operator_pieces(**params, **unknowns)
        for name, value in zip(spec.operator_conditions, conditions, strict=True):
            c = np.ravel(np.abs(np.asarray(value)))
            if c.size:
                i = int(np.argmin(c))
                worst.append((c[i], f"{name}[{i}]" if np.ndim(value) else name, i, None, None))
    _, m, i, lam, g = min(worst, key=lambda w: w[0])
    if lam is None:
        return (f"the solution is at a kink or the boundary of an operator: the condition of {m} is (nearly) "
                "zero (a piece indicator about to change, or a mirror map's boundary), so the solution map "
                "has no derivative there "
                "(pass strict=False to accept the derivative on the current pieces)")
    where = f"{m}[{i}]" if np.ndim(unknowns[m]) else m
    return (f"strict complementarity fails for {where}: multiplier {lam:.3g} and constraint value g = {g:.3g} "
            "are both (nearly) zero, so the active set, and with it the solution map, changes there: "
            "it has no derivative (pass strict=False to accept the derivative on the computed active set)")


def make_layer(spec: ProblemSpec):
    """The layer of a problem: ``layer(args, tol=None, maxiter=100, ...) -> dict`` (see module docstring)."""
    cores, probes = {}, {}

    def layer(args, tol=None, maxiter=100, backward="auto", backward_tol=None, backward_maxiter=None,
              solver=None, callback=False, checks=True, strict=True, init=None, acceleration="auto"):
        if acceleration not in ACCELERATIONS:
            raise ValueError(f"acceleration must be one of {', '.join(map(repr, ACCELERATIONS))}, got {acceleration!r}")
        if acceleration != "auto" and spec.fixed_point is None:
            raise ValueError("acceleration applies to the iteration of a fixed point x == T(x, θ); "
                             f"{spec.filename} is not one")
        args = [jnp.asarray(a) for a in args]
        dtype = jnp.result_type(float, *args)
        args = [a.astype(dtype) for a in args]
        # a warm start: the unknowns of a previous result (other entries, e.g. the status, ignored)
        init = {} if init is None else {u: init[u] for u in spec.unknowns if u in init}
        warm = tuple(init)
        starts = [jax.lax.stop_gradient(jnp.asarray(init[u], dtype)) for u in warm]
        wide = dtype == jnp.float64
        tol = (1e-9 if wide else 1e-4) if tol is None else float(tol)
        backward_tol = (1e-8 if wide else 1e-3) if backward_tol is None else float(backward_tol)
        method = backward_method(spec, backward)
        if callback and solver is None:
            raise ValueError("callback=True needs a solver")
        key = (tol, int(maxiter), method, backward_tol, backward_maxiter, solver, bool(callback), bool(checks),
               bool(strict), warm, acceleration)
        if key not in cores:
            cores[key] = jax.jit(_make_core(spec, *key))  # compiled once per shape and dtype
        sol, inds, status, value = cores[key](*args, *starts)
        out = dict(zip(spec.unknowns, sol, strict=False))
        out.update(zip(spec.indicators, inds, strict=False))
        out["residual"] = status["residual"]
        out["converged"] = status["residual"] <= tol
        out["cond"] = status["cond"]
        out["margin"] = status["margin"]
        out["regular"] = is_regular(status, tol)
        if value is not None:
            out["value"] = value
        _check_eagerly(spec, probes, args, sol, status, tol, method, backward_tol, backward_maxiter, solver, strict)
        return out

    return layer


def whole_status(out, additive=True):
    """The result of a layer mapped over the rows of a matrix variable, with the whole solution's
    status: the worst row's residual and condition, the smallest margin, converged and regular when
    every row is; the optimal value is the sum of the rows' where the objective is a sum over the
    rows (``additive``), and left out otherwise."""
    whole = {**out, "residual": jnp.max(out["residual"]), "cond": jnp.max(out["cond"]),
             "margin": jnp.min(out["margin"]), "converged": jnp.all(out["converged"]),
             "regular": jnp.all(out["regular"])}
    if "value" in out and additive:
        whole["value"] = jnp.sum(out["value"], axis=-1)
    elif "value" in out:
        del whole["value"]
    return whole


def _check_eagerly(spec, probes, args, sol, status, tol, method, backward_tol, backward_maxiter, solver, strict):
    """Raise SolverError where the values are concrete (not under jit or vmap) and wrong."""
    res = concrete(status["residual"])
    if res is None:
        return
    if not res <= tol:
        if solver is None:
            hint = (f"; F is not differentiable where {' or '.join(spec.kinks)} has a zero entry (abs, sign, "
                    "norm1), and solutions of such problems usually lie there: their KKT conditions hold "
                    "with subgradients, which this solver does not handle") if spec.kinks else ""
            raise SolverError(f"the forward solve did not converge: KKT residual {float(res):.3g} > tol = {tol:g}"
                              + hint)
        raise SolverError(f"the solver's result is not optimal: KKT residual {float(res):.3g} > tol = {tol:g} "
                          "(stationarity with least-squares multipliers, feasibility, complementarity); "
                          "pass a larger tol= to accept a less accurate solver")
    cond, limit = concrete(status["cond"]), float(cond_limit(jnp.result_type(res)))
    singular = cond is not None and float(cond) > limit
    message = (f"dF/dx is singular or ill-conditioned at this solution: a pivot of its block elimination has "
               f"condition {float(cond):.3g} > {limit:.3g} (a '∂F/∂x nonsingular: holds if' condition of the "
               "derivation fails here), so the implicit function theorem does not apply. For a constrained "
               "problem: the gradients of the active constraints are linearly dependent, or the Hessian of the "
               "Lagrangian is singular on their null space") if singular else ""
    if strict and singular and solver is None:
        # the multipliers of the built-in solve are then arbitrary (a user solver's are recovered by
        # least squares: the minimum-norm ones, and only the derivative is missing)
        raise SolverError(message + "; the multipliers returned are not unique")
    if not any(isinstance(a, jax.core.Tracer) for a in args):
        return
    values = [concrete(v) for v in list(args) + list(_inside(spec, sol))]
    if any(v is None for v in values):
        return
    # an eager jax.grad / jax.jvp: the derivative is needed now
    if strict and singular:
        raise SolverError(message)
    params = dict(zip(spec.params, values, strict=False))
    unknowns = dict(zip(spec.unknowns, values[len(spec.params):], strict=False))
    margin, floor = concrete(status["margin"]), concrete(status["margin_floor"])
    if strict and margin is not None and not float(margin) > float(floor):
        raise SolverError(_complementarity_report(spec, params, unknowns))
    if method != "closed_form":
        check_backward(spec, probes, params, unknowns, method, backward_tol, backward_maxiter)
###}
