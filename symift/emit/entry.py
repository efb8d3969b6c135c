"""The generated module's entry points: ``layer``, ``solve`` and, for a problem split by rows,
``rows_layer`` — the runtime's layer with the problem's own signature."""
from __future__ import annotations

#: The docstring of every generated ``layer`` (prose: the options of symift.runtime.layer).
LAYER_DOC = '''    """The solution map: a dict of unknowns (variables and multipliers), differentiable.

    An optimization problem's result also holds ``value``, the optimal value f(x*, θ), whose
    derivative is the envelope theorem's ∂L/∂θ (no implicit solve; NaN under strict where the
    solve failed or dF/dx is singular: the multipliers are then not unique).

    Also returns the active-set indicators and the solution's status: ``residual`` (max |F| at
    the solution, relative to the size of the data: divided by max(1, max |θ|)), ``converged``
    (residual <= tol; default 1e-9 in float64, 1e-4 in float32; the solver aims 1000 times
    lower, or stops at the rounding floor once within tol), ``cond`` (the condition of
    dF/dx's pivots there, the IFT report's "holds if"; NaN where not estimated), ``margin`` (strict
    complementarity: min over the inequalities of max(multiplier, -g)) and ``regular`` (all of
    them as the implicit function theorem needs).  In eager use a non-converged solve, or a
    singular or ill-conditioned dF/dx, raises SolverError, and an eager jax.grad / jax.jvp
    also raises where strict complementarity fails; under jit or vmap the status is the flag,
    and the tangents of an irregular solution are NaN (strict=False keeps them).  checks=False
    skips the pivots' condition.

    backward: "auto" (the closed form where one was derived, else a linear solve on dF/dx),
    "closed_form", or a linear solve "lu" | "gmres" | "bicgstab" | "cg".  A backward solve whose
    relative residual exceeds backward_tol (default 1e-8 in float64, 1e-3 in float32) gives NaN
    tangents; an eager jax.grad / jax.jvp first checks the solve on a generic right-hand side
    and raises SolverError if it fails.  backward_maxiter bounds the Krylov iterations
    (default 10 x the unknowns).

    solver: a function of the parameters (keywords) returning the primal solution — an array
    when the problem has one variable, else a dict by variable name — and optionally multipliers
    (dict entries by multiplier name).  It is called under jax.jit and jax.vmap on
    non-differentiated values, so it must be JAX-traceable; callback=True calls a NumPy / SciPy /
    CVXPY solver through jax.pure_callback instead.  Missing multipliers are recovered from
    stationarity by least squares; a solution whose KKT residual exceeds tol raises
    SolverError in eager use and is flagged by ``converged`` under jit.  init: a previous result
    (or a dict of some unknowns) to start the solve from, a warm start (never differentiated).
    acceleration: a fixed point's iteration, "auto", "fista" or "anderson" (symift.runtime.fixed_point).
    """
'''


def layer_fns(mw) -> str:
    """``layer(<params>, *, options)`` and ``solve(<params>)``: the runtime's layer with the
    problem's own signature."""
    plist = ", ".join(mw.py(p) for p in mw.params)
    packed = f"({plist}{',' if len(mw.params) == 1 else ''})"
    options = ("tol", "maxiter", "backward", "backward_tol", "backward_maxiter", "solver", "callback",
               "checks", "strict", "init", "acceleration")
    return "\n".join([
        f"def layer({plist}, *, tol=None, maxiter=100, backward=\"auto\", backward_tol=None,",
        "          backward_maxiter=None, solver=None, callback=False, checks=True, strict=True, init=None,",
        "          acceleration=\"auto\"):",
        LAYER_DOC.rstrip("\n"),
        f"    return _layer({packed}, " + ", ".join(f"{o}={o}" for o in options) + ")",
        "", "",
        f"def solve({plist}, *, tol=None, maxiter=100, init=None, acceleration=\"auto\"):",
        '    """Forward solve only (the same numbers as layer, without the implicit backward)."""',
        f"    return layer({plist}, tol=tol, maxiter=maxiter, init=init, acceleration=acceleration)"])


def rows_fn(mw) -> str:
    """``rows_layer``: the row problem's layer mapped over the rows of the matrix variable."""
    rows = mw.d.rows
    plist = ", ".join(mw.py(p) for p in mw.params)
    axes = ", ".join("0" if p in rows.aligned else "None" for p in mw.params)
    return "\n".join([
        f"def rows_layer({plist}, **options):",
        f'    """The whole {rows.variable}: ``layer`` (one row) mapped over its {rows.dim} rows with jax.vmap.',
        "",
        f"    {', '.join(rows.aligned) or 'No parameter'} {'have' if len(rows.aligned) > 1 else 'has'} one row "
        f"per row of {rows.variable}; the others are shared. The status is the whole solution's: the",
        "    worst residual and condition, the smallest margin, converged and regular for every row.",
        '    """',
        f"    mapped = jax.vmap(lambda {plist}: layer({plist}, **options), in_axes=({axes},))",
        f"    return whole_status(mapped({plist}){'' if rows.additive else ', additive=False'})"])
