"""The implicit backward of the generated layer: closed form, or a linear solve on ∂F/∂x.

The tangent of the solution map is

    dx = −(∂F/∂x)⁻¹ ∂F/∂θ · dθ,

with F the derived KKT residual (the generated ``residual``).  Where symift derived every
Jacobian in closed form the tangent is the closed form J·dθ (``_tangents``); otherwise — or on
request, ``backward="lu" | "gmres" | "bicgstab" | "cg"`` — it is a linear solve whose products
with ∂F/∂x and ∂F/∂θ are ``jax.linearize`` / ``jax.jvp`` of the generated residual:

* ``lu`` factors the dense ∂F/∂x (one jvp per unknown), for small systems;
* ``gmres`` / ``bicgstab`` are matrix-free Krylov solves (``jax.scipy.sparse.linalg``);
* ``cg`` needs ∂F/∂x symmetric positive definite: that is the Hessian of an unconstrained
  minimization at a strict minimum, never a KKT matrix with constraints (saddle point, and the
  complementarity rows λ∘g make it nonsymmetric), nor a root problem's Jacobian in general —
  it is refused there;
* ``auto`` uses the closed form when one was derived, else LU up to ``DENSE_LIMIT`` = 2000
  unknowns (a dense factorization of that size takes well under a second) and GMRES above.

Complementarity rows λᵢgᵢ are divided by |λᵢ| + |gᵢ| (a diagonal row scaling, same solution):
under strict complementarity an active row then reads ∇gᵢ·dx = −∂gᵢ/∂θ·dθ and an inactive one
dλᵢ = 0, so the system is nonsingular and well scaled.

No silent failure: the solve runs inside ``lax.custom_linear_solve`` with a residual check
‖∂F/∂x·dx + ∂F/∂θ·dθ‖ ≤ backward_tol·‖∂F/∂θ·dθ‖ (and, for LU, no zero pivot).  The check
runs on whatever is solved — the tangent under jvp/jacfwd, the cotangent with (∂F/∂x)ᵀ under
grad/jacrev — and a failed solve returns NaN, the loud flag under jit and vmap.  Tangents are
never concrete inside the jitted rule, so the eager check happens earlier: when the layer is
called with autodiff tracers whose values are concrete (an eager jax.grad / jax.jvp), it solves
the same system for a generic right-hand side and raises ``SolverError`` if that fails — which
catches a singular ∂F/∂x and a Krylov method that stops short.  A failure peculiar to the actual
right-hand side is still the NaN flag.  (Raising from inside the compiled solve would need a
host callback, whose error surfaces wrapped in a JaxRuntimeError under jit.)
"""
from __future__ import annotations

from .errors import SymiftError
from .expr import is_matrix

#: Runtime of the generated module: the linear-solve tangent, its checks, and ``_layer``.
BACKWARD = '''
BACKWARD_METHODS = ("auto", "closed_form", "lu", "gmres", "bicgstab", "cg")
DENSE_LIMIT = 2000  # backward="auto" without a closed form: dense LU up to this many unknowns


def _concrete(x):
    """The value of x, or None where it is only known abstractly (under jit or vmap).

    The autodiff tracers of an eager jax.grad / jax.jvp carry a concrete primal value.
    """
    if not isinstance(x, jax.core.Tracer):
        return x
    return getattr(x, "to_concrete_value", lambda: None)()


def _ravel(values):
    """The arrays as one flat vector, and the function that splits such a vector back."""
    shapes = [jnp.shape(v) for v in values]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def unravel(x):
        return tuple(x[cuts[k]:cuts[k + 1]].reshape(s) for k, s in enumerate(shapes))
    return jnp.concatenate([jnp.ravel(v) for v in values]), unravel


def _row_scale(params, unknowns):
    """D = 1 on stationarity and equality rows, 1/(|λᵢ| + |gᵢ|) on complementarity rows λ∘g."""
    gs = dict(zip(INEQUALITIES, _inequalities(**params, **{v: unknowns[v] for v in VARIABLES})))
    rows = []
    for u in UNKNOWNS:
        if u in gs:
            w = jnp.ravel(jnp.abs(unknowns[u]) + jnp.abs(gs[u]))
            rows.append(1.0 / jnp.where(w > 0, w, 1.0))
        else:
            rows.append(jnp.ones(jnp.size(unknowns[u]), jnp.result_type(unknowns[u])))
    return jnp.concatenate(rows)


def _operator(params, unknowns, method):
    """x, F(x, θ) = D·residual as flat vectors, v -> D ∂F/∂x v, LU factors ("lu"), unravel."""
    x, unravel = _ravel([unknowns[u] for u in UNKNOWNS])
    scale = _row_scale(params, unknowns)

    def F(x, params):
        blocks = residual(**params, **dict(zip(UNKNOWNS, unravel(x))))
        return scale * jnp.concatenate([jnp.ravel(b) for b in blocks.values()]).astype(x.dtype)

    _, matvec = jax.linearize(lambda v: F(v, params), x)
    lu = None
    if method == "lu":  # the dense ∂F/∂x, one column per jvp
        lu = _lu_factor(jax.vmap(matvec, out_axes=1)(jnp.eye(x.size, dtype=x.dtype)))
    return x, F, matvec, lu, unravel


def _resolve(method, unknowns):
    size = sum(int(np.size(unknowns[u])) for u in UNKNOWNS)
    return ("lu" if size <= DENSE_LIMIT else "gmres") if method == "auto" else method


def _solve_linear(matvec, b, method, tol, maxiter, lu=None, trans=0):
    """x ≈ A⁻¹b (Aᵀ for trans=1) and the relative residual ‖Ax − b‖/‖b‖ (inf if not finite)."""
    n = b.size
    maxiter = 10 * n if maxiter is None else int(maxiter)
    if method == "lu":
        x = jax.scipy.linalg.lu_solve(lu, b, trans=trans)
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
    err = jnp.linalg.norm(matvec(x) - b) / jnp.where(norm_b > 0, norm_b, 1.0)
    if lu is not None:  # a (numerically) zero pivot: ∂F/∂x is singular, whatever the residual
        pivots = jnp.abs(jnp.diagonal(lu[0]))
        err = jnp.where(jnp.min(pivots) > n * jnp.finfo(b.dtype).eps * jnp.max(pivots), err, jnp.inf)
    return x, jnp.where(jnp.isfinite(err), err, jnp.inf)


def _checked_solve(matvec, b, method, tol, maxiter, lu):
    """A⁻¹b by lax.custom_linear_solve; NaN where the solve fails its residual check.

    The check sits inside the solve, so it runs on whatever is solved: the tangent under
    jvp / jacfwd, the cotangent (with Aᵀ) under grad / jacrev.
    """
    def solve(mv, rhs, trans=0):
        x, err = _solve_linear(mv, rhs, method, tol, maxiter, lu, trans)
        return jnp.where(err <= tol, x, jnp.nan)

    def transpose_solve(mv, rhs):
        return solve(mv, rhs, 1)

    return lax.custom_linear_solve(matvec, b, solve, transpose_solve)


def _implicit_tangents(params, unknowns, tangents, method, tol, maxiter):
    """dx = −(∂F/∂x)⁻¹ ∂F/∂θ·dθ by a linear solve on the derived KKT Jacobian (row-scaled)."""
    method = _resolve(method, unknowns)
    x, F, matvec, lu, unravel = _operator(params, unknowns, method)
    b = -jax.jvp(lambda p: F(x, p), (params,), (tangents,))[1]
    return unravel(_checked_solve(matvec, b, method, tol, maxiter, lu))


def _backward_probe(params, unknowns, method, tol, maxiter):
    """The backward solve's relative residual for a generic right-hand side.

    A singular ∂F/∂x, or a Krylov method that stops short, fails it whatever dθ is.
    """
    method = _resolve(method, unknowns)
    x, _, matvec, lu, _ = _operator(params, unknowns, method)
    return _solve_linear(matvec, jnp.cos(1.0 + jnp.arange(x.size, dtype=x.dtype)), method, tol, maxiter, lu)[1]


_PROBES = {}


def _check_backward(params, unknowns, method, tol, maxiter):
    """Eager check of the backward linear solve at a concrete solution (SolverError)."""
    key = (method, tol, maxiter)
    if key not in _PROBES:
        _PROBES[key] = jax.jit(lambda p, u: _backward_probe(p, u, *key))
    err = float(_PROBES[key](params, unknowns))
    if not err <= tol:
        method = _resolve(method, unknowns)
        hint = "" if method == "lu" else f", or {method} needs more iterations (backward_maxiter)"
        raise SolverError(f"the backward linear solve ({method}) fails at this solution: relative "
                          f"residual {err:.3g} > backward_tol {tol:g}. The KKT Jacobian dF/dx is "
                          "singular or ill-conditioned there (the implicit function theorem needs "
                          f"strict complementarity and linearly independent active constraints){hint}")


def _backward_method(backward):
    """The backward to use: "closed_form", a linear-solve method, or "auto" (resolved by size)."""
    if backward not in BACKWARD_METHODS:
        raise ValueError(f"backward must be one of {', '.join(BACKWARD_METHODS)}; got {backward!r}")
    if backward == "auto":
        return "closed_form" if CLOSED_FORM else "auto"
    if backward == "closed_form" and not CLOSED_FORM:
        raise ValueError(f"no closed-form Jacobian was derived ({WHY_NO_CLOSED_FORM}); "
                         "use backward='auto', 'lu' or 'gmres'")
    if backward == "cg" and not CG_APPLICABLE:
        raise ValueError("backward='cg' needs a symmetric positive definite dF/dx, which only an "
                         "unconstrained minimization has (a KKT matrix is indefinite and a root "
                         "problem's Jacobian nonsymmetric); use 'lu', 'gmres' or 'bicgstab'")
    return backward


_CORES = {}


def _data_scale(params):
    """max(1, max |θ|) over every parameter entry: the KKT residual is measured relative to it, so
    that tol means the same for data of size 1 and of size 1000 (rounding alone leaves a
    residual of about eps · |θ| · |x| · condition)."""
    scale = jnp.ones((), jnp.result_type(float, *params))
    for p in params:
        if jnp.size(p):
            scale = jnp.maximum(scale, jnp.max(jnp.abs(p)))
    return scale


def _layer(args, tol, maxiter, backward, backward_tol, backward_maxiter, solver, callback):
    """layer() without the problem's signature: solve, attach the backward, check eagerly."""
    args = [jnp.asarray(a) for a in args]
    dtype = jnp.result_type(float, *args)
    args = [a.astype(dtype) for a in args]
    wide = dtype == jnp.float64
    tol = (1e-9 if wide else 1e-4) if tol is None else float(tol)
    backward_tol = (1e-8 if wide else 1e-3) if backward_tol is None else float(backward_tol)
    method = _backward_method(backward)
    if callback and solver is None:
        raise ValueError("callback=True needs a solver")
    key = (tol, int(maxiter), method, backward_tol, backward_maxiter, solver, bool(callback))
    if key not in _CORES:
        _CORES[key] = jax.jit(_make_core(*key))  # compiled once per shape and dtype
    sol = _CORES[key](*args)
    res = sol[-1]
    out = dict(zip(UNKNOWNS + INDICATORS, sol[:-1]))
    out["residual"] = res
    out["converged"] = res <= tol
    value = _concrete(res)
    if value is not None and not value <= tol:
        if solver is None:
            raise SolverError(f"the forward solve did not converge: KKT residual {float(value):.3g} > tol = {tol:g}")
        raise SolverError(f"the solver's result is not optimal: KKT residual {float(value):.3g} > tol = {tol:g} "
                          "(stationarity with least-squares multipliers, feasibility, complementarity); "
                          "pass a larger tol= to accept a less accurate solver")
    if method != "closed_form" and any(isinstance(a, jax.core.Tracer) for a in args):
        values = [_concrete(v) for v in args + list(sol[:len(UNKNOWNS)])]
        if all(v is not None for v in values):  # eager jax.grad / jax.jvp: check the solve now
            _check_backward(dict(zip(PARAMS, values)), dict(zip(UNKNOWNS, values[len(PARAMS):])),
                            method, backward_tol, backward_maxiter)
    return out
'''


def closed_form_fns(mw) -> tuple:
    """(the closed-form functions that could be derived, why there is no full closed form or None).

    ``Derivation.jacobian`` raises MathError where the block elimination finds no invertible
    pivot (e.g. box constraints) and UnsupportedError where it cannot eliminate; the printer
    raises UnsupportedError for a construct it cannot translate.  Then ``_tangents`` is left out
    and ``backward="auto"`` takes the linear solve.
    """
    out, why = [], None
    for var in mw.unknowns:
        for p in mw.params:
            try:
                out.append(mw.jacobian_fn(var, p))
            except (SymiftError, NotImplementedError) as exc:
                why = why or f"d{var}/d{p}: {getattr(exc, 'message', exc)}"
    if why is None:
        try:
            out.append(mw.tangent_fn())
        except (SymiftError, NotImplementedError) as exc:
            why = f"the tangent: {getattr(exc, 'message', exc)}"
    return out, why


class LayerWriter:
    """The generated module's constants for the backward and user solvers, ``_make_core``, ``layer``."""

    def __init__(self, mw, why_no_closed_form: str | None):
        self.mw = mw
        self.why = why_no_closed_form
        d = mw.d
        self.variables = [v.name for v in d.problem.variables]
        self.multipliers = [u for u in mw.unknowns if u not in self.variables]
        self.inequalities = [m.name for m in mw.kkt.multipliers if m.kind == "inequality"]

    def constants(self) -> str:
        mw, d = self.mw, self.mw.d
        py = mw.py
        indicator_of = {py(m): py(s.name) for m, (s, _, _) in d.analysis.indicators.items()}
        stationarity = tuple(b.name for b in mw.kkt.residual if b.kind == "stationarity")
        cg = d.problem.kind == "optimization" and not mw.kkt.multipliers
        return "\n".join([
            f"VARIABLES = {_tuple(py(v) for v in self.variables)}",
            f"MULTIPLIERS = {_tuple(py(m) for m in self.multipliers)}",
            f"INEQUALITIES = {_tuple(py(m) for m in self.inequalities)}",
            f"DECLARED_INACTIVE = {_tuple(py(m) for m in d.analysis.inactive)}",
            f"INDICATOR_OF = {indicator_of!r}",
            f"STATIONARITY = {stationarity!r}",
            f"CLOSED_FORM = {self.why is None}",
            f"WHY_NO_CLOSED_FORM = {(self.why or '')!r}",
            f"CG_APPLICABLE = {cg}",
            f"SYMMETRIC = {_tuple(py(q.name) for q in d.problem.params if q.attributes & {'symmetric', 'psd', 'pd'})}"])

    def shapes_fn(self) -> str:
        """``_unknown_shapes(**params)``: the shape of every variable and multiplier."""
        mw = self.mw

        def build(em):
            items = []
            for name in self.variables + self.multipliers:
                sym = mw.layout.symbols[name]
                shape = "()" if not is_matrix(sym) else "(" + ", ".join(
                    em.size(s) for s in (sym.shape if sym.shape[1] != 1 else sym.shape[:1])) + ",)"
                items.append(f"{mw.py(name)!r}: {shape}")
            return "{" + ", ".join(items) + "}"
        return mw.function("_unknown_shapes", ["*"] + mw.params, build,
                           "The shape of every variable and multiplier for these parameters.")

    def core(self) -> str:
        mw = self.mw
        params = [mw.py(p) for p in mw.params]
        plist = ", ".join(params)
        unpack = f"{plist}{',' if len(params) == 1 else ''}"
        n_out = len(mw.unknowns)
        closed = ""
        if self.why is None:
            inds = [mw.py(s) for s in mw.d.indicators]
            kwargs = ", ".join([f"{p}={p}" for p in params]
                               + [f"{mw.py(u)}=sol[{k}]" for k, u in enumerate(mw.unknowns)]
                               + [f"{s}=sol[{n_out + k}]" for k, s in enumerate(inds)]
                               + [f"t_{p}=t_{p}" for p in params])
            closed = (f'''        if backward == "closed_form":
            {unpack} = primals
            {", ".join("t_" + p for p in params)}{"," if len(params) == 1 else ""} = tangents
            return sol, _tangent_outputs(sol, _tangents({kwargs}))
''')
        return f'''
def _tangent_outputs(sol, dsol):
    """Tangents in the dtypes of the solution; the indicators and the residual have none."""
    dsol = tuple(jnp.asarray(t, v.dtype) for t, v in zip(dsol, sol))
    return dsol + tuple(jnp.zeros_like(v) for v in sol[{n_out}:])


def _make_core(tol, maxiter, backward, backward_tol, backward_maxiter, solver, callback):
    def forward({plist}):
        scale = _data_scale(({unpack}))  # tol is relative to the size of the problem's data
        if solver is None:
            sol = _solve({plist}, tol * scale, maxiter)
        else:
            sol = _user_solve(solver, dict(zip(PARAMS, ({unpack}))), tol * scale, callback)
        return tuple(sol[:-1]) + (sol[-1] / scale,)

    forward = _in_chunks(forward)  # under vmap: the batch in cache-sized chunks (never differentiated)

    @jax.custom_jvp
    def core({plist}):
        return forward({plist})

    @core.defjvp
    def core_jvp(primals, tangents):
        sol = forward(*primals)
        # a symmetric (psd, pd) matrix parameter enters through its symmetric part: so does its
        # tangent (and the gradient, the transpose, comes out symmetric)
        tangents = tuple(0.5 * (t + jnp.swapaxes(t, -1, -2)) if name in SYMMETRIC else t
                         for name, t in zip(PARAMS, tangents))
{closed}        dsol = _implicit_tangents(dict(zip(PARAMS, primals)), dict(zip(UNKNOWNS, sol)),
                                  dict(zip(PARAMS, tangents)), backward, backward_tol, backward_maxiter)
        return sol, _tangent_outputs(sol, dsol)

    return core


def layer({plist}, *, tol=None, maxiter=100, backward="auto", backward_tol=None,
          backward_maxiter=None, solver=None, callback=False):
    """The solution map: a dict of unknowns (variables and multipliers), differentiable.

    Also returns the active-set indicators, ``residual`` (max |F| at the solution, relative to the
    size of the data: divided by max(1, max |θ|)) and ``converged`` (residual <= tol; default
    1e-9 in float64, 1e-4 in float32; the solver aims 1000 times lower, or stops at the rounding
    floor once within tol).  In eager use a non-converged solve raises SolverError; under jit or vmap
    ``converged`` is the flag.

    backward: "auto" (the closed form where one was derived, else a linear solve on dF/dx),
    "closed_form", or a linear solve "lu" | "gmres" | "bicgstab" | "cg" (see BACKWARD_METHODS).
    A backward solve whose relative residual exceeds backward_tol (default 1e-8 in float64,
    1e-3 in float32) gives NaN tangents; an eager jax.grad / jax.jvp first checks the solve on a
    generic right-hand side and raises SolverError if it fails (a singular dF/dx, too few
    iterations).  backward_maxiter bounds the Krylov iterations (default 10 x the unknowns).

    solver: a function of the parameters (keywords) returning the primal solution — an array
    when the problem has one variable, else a dict by variable name — and optionally multipliers
    (dict entries by multiplier name).  It is called under jax.jit and jax.vmap on
    non-differentiated values, so it must be JAX-traceable; callback=True calls a NumPy / SciPy /
    CVXPY solver through jax.pure_callback instead.  Missing multipliers are recovered from
    stationarity by least squares; a solution whose KKT residual exceeds tol raises
    SolverError in eager use and is flagged by ``converged`` under jit.
    """
    return _layer(({unpack}), tol, maxiter, backward, backward_tol, backward_maxiter, solver, callback)


def solve({plist}, *, tol=None, maxiter=100):
    """Forward solve only (the same numbers as layer, without the implicit backward)."""
    return layer({plist}, tol=tol, maxiter=maxiter)
'''


def _tuple(items) -> str:
    items = list(items)
    return "(" + ", ".join(repr(i) for i in items) + ("," if len(items) == 1 else "") + ")"

