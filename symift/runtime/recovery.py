"""User solvers: any solver's primal becomes a differentiable layer (``compile(p, solver=fn)``).

This is the ``custom_root`` pattern of Blondel et al. 2021 ("Efficient and Modular Implicit
Differentiation"), with the optimality condition F derived by symift instead of written by
hand.  The user's function maps the parameters to the primal solution (and optionally some
multipliers); the runtime then

1. validates its result — names, shapes — with a clear ``SolverOutputError``;
2. recovers the missing multipliers from stationarity.  ∇ₓL(x, ν, λ) = ∇f + Jhᵀν + Jgᵀλ is
   affine in y = (ν, λ), so with M = ∂(∇ₓL)/∂y (``jax.jacfwd`` of the generated stationarity)
   and r = ∇ₓL(x, y₀) at the given multipliers (zero where missing), the free entries solve

       min_δ ‖M δ + r‖     (dense least squares, minimum-norm δ),

   where an entry is fixed if the solver gave it, if its constraint is inactive
   (gᵢ < −tol, so λᵢ = 0), or if the problem declares it inactive (``var z > 0``);
3. sets the active-set indicators from the recovered solution (sᵢ = 1 where −gᵢ > λᵢ, as the
   built-in solver does) and checks the KKT residual — stationarity, equality constraints,
   complementarity, and the violations of g ≤ 0 and λ ≥ 0.  A non-optimal solution raises
   ``SolverError`` in eager use and is flagged (``converged`` false) under jit, like a forward
   solve that did not converge.

The solver is called inside the ``custom_jvp`` primal function, on values that are never
differentiated, under ``jax.jit`` and ``jax.vmap``: it must be JAX-traceable.  A NumPy / SciPy /
CVXPY solver runs with ``callback=True`` through ``jax.pure_callback`` (sequentially under vmap);
its result is checked on the host, so a bad result raises from inside the callback.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .implicit import ravel
from .spec import ProblemSpec, SolverOutputError, constraint_values

###{standalone
_NOT_TRACEABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)


def solver_values(spec: ProblemSpec, out, shapes, xp):
    """The solver's result as {unknown: array} (0 where not given) and {unknown: given?}."""
    expected = (f"the variables {', '.join(spec.variables)}"
                + (f" and optionally the multipliers {', '.join(spec.multipliers)}" if spec.multipliers else ""))
    if not isinstance(out, dict):
        if len(spec.variables) != 1:
            raise SolverOutputError(f"the solver must return a dict with {expected}; got {type(out).__name__}")
        out = {spec.variables[0]: out}
    unknown = [str(k) for k in out if k not in shapes]
    if unknown:
        raise SolverOutputError(f"the solver returned {', '.join(map(repr, unknown))}: expected {expected}")
    missing = [v for v in spec.variables if v not in out]
    if missing:
        raise SolverOutputError(f"the solver's result misses the variable(s) {', '.join(missing)}: expected {expected}")
    values, given = {}, {}
    for name, shape in shapes.items():
        given[name] = name in out
        if not given[name]:
            values[name] = xp.zeros(shape)
            continue
        try:
            values[name] = xp.asarray(out[name])
        except (TypeError, ValueError) as exc:
            raise SolverOutputError(f"the solver's {name!r} is not an array: {exc}") from None
        if tuple(values[name].shape) != tuple(shape):
            raise SolverOutputError(f"the solver's {name!r} has shape {tuple(values[name].shape)}; "
                                    f"expected {tuple(shape)} for these parameters")
    return values, given


def call_solver(spec: ProblemSpec, solver, params, dtype, callback):
    """Call the user's solver (traced, or through jax.pure_callback) and validate its result."""
    shapes = spec.shapes(**params)
    names = tuple(shapes)
    if callback:
        def host(*arrays):
            out = solver(**dict(zip(spec.params, (np.asarray(a) for a in arrays), strict=False)))
            values, given = solver_values(spec, out, shapes, np)
            return tuple(np.asarray(values[k], dtype) for k in names) + (np.array([given[k] for k in names]),)

        result = tuple(jax.ShapeDtypeStruct(shapes[k], dtype) for k in names)
        result += (jax.ShapeDtypeStruct((len(names),), jnp.bool_),)
        *arrays, flags = jax.pure_callback(host, result, *(params[k] for k in spec.params),
                                           vmap_method="sequential")
        return dict(zip(names, arrays, strict=False)), {k: flags[i] for i, k in enumerate(names)}
    try:
        out = solver(**params)
    except _NOT_TRACEABLE as exc:
        raise SolverOutputError(
            f"the solver is not JAX-traceable ({type(exc).__name__}): symift calls it under jax.jit "
            "and jax.vmap, so write it with jax.numpy, or pass callback=True to run a NumPy / SciPy "
            "solver through jax.pure_callback") from None
    values, given = solver_values(spec, out, shapes, jnp)
    return {k: v.astype(dtype) for k, v in values.items()}, given


def recover_multipliers(spec: ProblemSpec, params, values, given, tol):
    """The multipliers the solver did not give, from stationarity by least squares."""
    primal = {v: values[v] for v in spec.variables}
    gs = dict(zip(spec.inequalities, spec.constraints(**params, **primal), strict=False))
    y, unravel = ravel([jnp.where(given[m], values[m], 0.0) for m in spec.multipliers])
    free = []
    for m in spec.multipliers:
        f = jnp.broadcast_to(jnp.logical_not(given[m]), jnp.shape(values[m]))
        if m in spec.declared_inactive:
            f = jnp.zeros_like(f)
        elif m in gs:  # inactive constraints keep λᵢ = 0
            f = f & (gs[m] >= -tol)
        free.append(f)
    free, _ = ravel(free)

    def stationarity(y):
        blocks = spec.residual(**params, **primal, **dict(zip(spec.multipliers, unravel(y), strict=False)))
        return jnp.concatenate([jnp.ravel(blocks[k]) for k in spec.stationarity])

    M = jax.jacfwd(stationarity)(y)  # ∂(∇ₓL)/∂y: stationarity is affine in the multipliers
    delta = jnp.linalg.lstsq(jnp.where(free, M, 0.0), -stationarity(y))[0]
    return dict(zip(spec.multipliers, unravel(y + jnp.where(free, delta, 0.0)), strict=False))


def kkt_error(spec: ProblemSpec, params, unknowns):
    """max |F| and the violations of g <= 0 and λ >= 0: 0 exactly at a KKT point."""
    rows = [jnp.ravel(b) for b in spec.residual(**params, **unknowns).values()]
    rows += [jnp.ravel(jnp.maximum(g, 0.0))
             for g in spec.constraints(**params, **{v: unknowns[v] for v in spec.variables})]
    rows += [jnp.ravel(jnp.maximum(-unknowns[m], 0.0)) for m in spec.inequalities]
    return jnp.max(jnp.abs(jnp.concatenate(rows)))


def user_solve(spec: ProblemSpec, solver, params, tol, callback):
    """({unknown: value}, {indicator: value}, KKT residual) from a user solver's primal."""
    dtype = jnp.result_type(float, *params.values())
    values, given = call_solver(spec, solver, params, dtype, callback)
    unknowns = {v: values[v] for v in spec.variables}
    if spec.multipliers:
        unknowns.update(recover_multipliers(spec, params, values, given, tol))
    gs = constraint_values(spec, params, unknowns)
    # sᵢ = 1 on the inactive set, where the slack −gᵢ exceeds the multiplier
    indicators = {s: jnp.where(-gs[m] > unknowns[m], 1.0, 0.0).astype(dtype) for m, s in spec.indicator_of.items()}
    return unknowns, indicators, kkt_error(spec, params, unknowns).astype(dtype)
###}
