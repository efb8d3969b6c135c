"""``symift.compile``: the differentiable layer of a problem, over its generated module.

The layer is the generated problem module's ``layer`` (see :mod:`symift.emit.module`) over the
runtime (:mod:`symift.runtime`), the same code that ``symift codegen`` writes out; this wrapper
takes the user's names, checks the options once, and turns the runtime's errors into symift errors.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import jax
import jaxlib
import numpy as np

from . import runtime
from .emit.loader import problem_module
from .errors import ArgumentError, MathError, SolverOutputError, UnsupportedError
from .runtime.implicit import concrete

BACKWARDS = runtime.BACKWARD_METHODS


class Layer:
    """A differentiable solution map ``layer(**params) -> {name: array}`` (SPEC §2).

    Forward: the generated solver (primal-dual interior point, a symbolic dual reduction, or
    damped Newton for root problems), or the user's ``solver``.  Backward: ``jax.custom_jvp``
    whose tangent is dx = −(∂F/∂x)⁻¹ ∂F/∂θ·dθ — the derived closed form J·dθ, or a linear solve
    on the derived ∂F/∂x (:mod:`symift.runtime.implicit`) — so jit, vmap, grad, jacfwd and jacrev work.
    The result holds every variable and multiplier, the active-set indicators and the status of
    the solution (symift.runtime.status): ``residual``, ``converged``, ``cond`` (the condition
    of ∂F/∂x's pivots), ``margin`` (strict complementarity) and ``regular``.  Eager failures
    raise :class:`~symift.errors.MathError` (a non-converged or non-optimal forward solve, a
    singular or ill-conditioned ∂F/∂x, a failed backward solve, and under an eager jax.grad a
    degenerate active set); under jit the result is flagged (the status, NaN tangents).
    """

    def __init__(self, derivation, module, names: dict, tol=None, maxiter=100, *, backward="auto",
                 backward_tol=None, backward_maxiter=None, solver=None, callback=False, checks=True,
                 strict=True, acceleration="auto"):
        self.derivation = derivation
        self.module = module
        self._to_py = names                      # user name -> python name
        self._from_py = {v: k for k, v in names.items()}
        self.params = list(derivation.parameters)
        self.tol, self.maxiter = tol, maxiter
        self.spec = module.SPEC
        self.options = {"backward": backward, "backward_tol": backward_tol,
                        "backward_maxiter": backward_maxiter, "callback": callback, "checks": checks,
                        "strict": strict, "acceleration": acceleration,
                        "solver": None if solver is None else self._in_module_names(solver)}

    def __call__(self, **params):
        init = _pop_init(self.params, params)
        check_names(self.params, params)
        source = self.derivation.problem.source
        check_shapes(self.derivation.problem, params)
        kwargs = {self._to_py[p]: v for p, v in params.items()}
        if init is not None:
            init = self._warm_start(init, kwargs)
        try:
            out = self.module.layer(**kwargs, tol=self.tol, maxiter=self.maxiter, init=init, **self.options)
        except runtime.SolverError as exc:
            raise MathError(str(exc), None, source) from None
        except runtime.SolverOutputError as exc:
            raise SolverOutputError(str(exc), None, source) from None
        return {self._from_py.get(k, k): v for k, v in out.items()}

    def _warm_start(self, init, kwargs) -> dict:
        """``init=``: a previous result, or a dict of some unknowns, checked (names, shapes) and
        given the module's names; the status and the indicators of a result are not starting values."""
        source = self.derivation.problem.source
        _check_init(init, source)
        shapes = self.spec.shapes(**kwargs)
        known = set(self.derivation.indicators) | set(runtime.STATUS_KEYS)
        start = {}
        for name, value in init.items():
            py = self._to_py.get(name, name)
            if py not in shapes:
                if name in known:
                    continue
                raise ArgumentError(f"init= has {name!r}, which is not an unknown of this problem (its unknowns: "
                                    f"{', '.join(self._from_py.get(u, u) for u in shapes)})", None, source)
            got, want = tuple(jax.numpy.shape(value)), tuple(int(d) for d in shapes[py])
            if got != want:
                raise ArgumentError(f"init= gives {name} the shape {got}; these parameters make it {want}", None,
                                    source)
            start[py] = value
        return start

    def precision(self, at: dict | None = None, **params) -> dict:
        """How accurate the layer's Jacobians are at a solution (Blondel et al. 2021, Theorem 1).

        At the layer's own solution, or at ``at`` ({unknown: value}, e.g. from a loose solve of
        your own): ``solution_error`` (‖x̂ − x*‖, by one Newton step), Theorem 1's ``alpha``,
        ``R``, ``beta``, ``gamma``, its ``constant`` and ``bound`` = constant · solution_error
        on ‖J(x̂) − ∂x*‖, and ``jacobian_change`` (the Jacobian's change along that Newton step,
        its first-order error).  Dense: for problems up to a few thousand unknowns.
        """
        check_names(self.params, params)
        check_shapes(self.derivation.problem, params)
        unknowns = list(self.derivation.unknowns)
        if at is None:
            at = self(**params)
        missing = [u for u in unknowns if u not in at]
        if missing:
            raise ArgumentError(f"precision(at=...) needs every unknown: missing {', '.join(missing)}", None,
                                self.derivation.problem.source)
        return runtime.jacobian_precision(self.spec, {self._to_py[p]: v for p, v in params.items()},
                                          {self._to_py.get(u, u): at[u] for u in unknowns})

    def _in_module_names(self, solver):
        """The user's solver called by the module: keywords in its (mangled) names."""
        to_py, from_py, params = self._to_py, self._from_py, self.params
        positional = _convention(solver, params) == "positional"

        def call(**py_params):
            values = {from_py.get(k, k): v for k, v in py_params.items()}
            out = solver(*(values[p] for p in params)) if positional else solver(**values)
            return {to_py.get(k, k): v for k, v in out.items()} if isinstance(out, dict) else out
        return call

    @property
    def source(self) -> str:
        """The generated module's source (what ``symift.codegen`` writes)."""
        return Path(self.module.__file__).read_text(encoding="utf-8")


class RowLayer:
    """The layer of a problem that separates by the rows of its matrix variable (symift.symbolic.rows).

    The layer of one row, mapped over the rows with jax.vmap: parameters with one row per row of
    the variable are mapped, the others shared; the result holds the variable, the multipliers and
    the indicators with one row per row (Z[m, k], nu[m], lam[m, k]) and the status of the whole
    solution: ``residual`` and ``cond`` the worst row's, ``margin`` the smallest, ``converged`` and
    ``regular`` true when they are for every row.  Tangents cost O(mk): each row's closed form.
    """

    def __init__(self, derivation, row_layer: Layer):
        self.derivation = derivation
        self.rows = derivation.rows
        self.row_layer = row_layer
        self.params = [p.name for p in self.rows.problem.params]
        self.spec, self.module = row_layer.spec, row_layer.module
        axes = tuple(0 if p in self.rows.aligned else None for p in self.params)

        def rows(args, init):
            return row_layer(**dict(zip(self.params, args, strict=True)), **({} if init is None else {"init": init}))
        self._mapped = jax.vmap(rows, in_axes=(axes, 0))

    def __call__(self, **params):
        init = _pop_init(self.params, params)
        check_names(self.params, params)
        check_shapes(self.rows.problem, params)
        if init is not None:  # a previous result: its unknowns have one row per row (the status is whole)
            _check_init(init, self.rows.problem.source)
            skip = set(runtime.STATUS_KEYS) | set(self.row_layer.derivation.indicators)
            init = {k: jax.numpy.asarray(v) for k, v in init.items() if k not in skip}
        out = self._mapped(tuple(jax.numpy.asarray(params[p]) for p in self.params), init)
        converged = concrete(out["converged"])
        if converged is not None and not converged.all():
            bad = [int(i) for i in np.nonzero(~np.asarray(converged))[0]]
            raise MathError(f"the forward solve did not converge on rows {bad[:10]} of "
                            f"{self.rows.variable}", None, self.rows.problem.source)
        return runtime.whole_status(out, self.rows.additive)

    @property
    def source(self) -> str:
        return self.row_layer.source


def build_layer(d, solver=None, *, tol=None, maxiter=100, backward="auto",
                backward_tol=None, backward_maxiter=None, callback=False, checks=True, strict=True,
                acceleration="auto") -> Layer:
    """The differentiable layer of a derivation: ``symift.compile`` with its options."""
    if backward not in BACKWARDS:
        raise UnsupportedError(f"backward must be one of {', '.join(BACKWARDS)}; got {backward!r}")
    if acceleration not in runtime.ACCELERATIONS:
        raise UnsupportedError(f"acceleration must be one of {', '.join(runtime.ACCELERATIONS)}; "
                               f"got {acceleration!r}")

    if solver is not None:
        _convention(solver, [p.name for p in d.problem.params])
    if callback and solver is None:
        raise UnsupportedError("callback=True needs a solver")
    _warn_deadlocking_jaxlib()
    if getattr(d, "rows", None) is not None:
        if solver is not None:
            raise UnsupportedError("a solver= for a problem split by rows: pass the solver of one row to "
                                   "the row problem instead", None, d.problem.source)
        row = build_layer(d.one_row(), tol=tol, maxiter=maxiter, backward=backward,
                          backward_tol=backward_tol, backward_maxiter=backward_maxiter, checks=checks,
                          strict=strict, acceleration=acceleration)
        return RowLayer(d, row)
    module, writer = problem_module(d)
    source = d.problem.source
    if acceleration != "auto" and module.SPEC.fixed_point is None:
        raise UnsupportedError(f"acceleration={acceleration!r} is for the iteration of a fixed point x == T(x, θ) "
                               "(a 'solve' block of such equations); this problem has none", None, source)
    if backward == "closed_form" and not module.SPEC.closed_form:
        raise UnsupportedError(f"no closed-form Jacobian was derived ({module.SPEC.why_no_closed_form}); "
                               "use backward='auto', 'lu' or 'gmres'", None, source)
    if backward == "cg" and not module.SPEC.cg_applicable:
        raise UnsupportedError("backward='cg' needs a symmetric positive definite ∂F/∂x, which only an "
                               "unconstrained minimization has: a KKT matrix with constraints is "
                               "indefinite (and nonsymmetric with the complementarity rows), a root "
                               "problem's Jacobian nonsymmetric; use 'lu', 'gmres' or 'bicgstab'",
                               None, source)
    return Layer(d, module, dict(writer.layout.py), tol=tol, maxiter=maxiter, backward=backward,
                 backward_tol=backward_tol, backward_maxiter=backward_maxiter, solver=solver,
                 callback=callback, checks=checks, strict=strict, acceleration=acceleration)


def _pop_init(names: list, values: dict):
    """The ``init=`` keyword of a layer call (a problem with a parameter named init keeps it as that)."""
    return None if "init" in names else values.pop("init", None)


def _check_init(init, source) -> None:
    if not hasattr(init, "items"):
        raise ArgumentError(f"init= takes a previous result (a dict), got {type(init).__name__}", None, source)


def check_names(names: list, values: dict) -> None:
    """The layer is called with exactly its parameters, by name (ArgumentError)."""
    missing = [p for p in names if p not in values]
    extra = [p for p in values if p not in names]
    if missing or extra:
        raise ArgumentError(f"layer() takes the parameters {', '.join(names)}"
                            + (f"; missing {', '.join(missing)}" if missing else "")
                            + (f"; unknown {', '.join(extra)}" if extra else ""))


def check_shapes(problem, values: dict) -> None:
    """Every parameter's array has its declared shape, and each dim one size (ArgumentError)."""
    sizes = {}
    for p in problem.params:
        value = values[p.name]
        try:
            if isinstance(value, (str, bytes, dict, set)):
                raise TypeError
            shape = tuple(jax.numpy.shape(value))
        except TypeError:
            raise ArgumentError(f"{p.name} must be an array or a number, got {type(value).__name__}",
                                None, problem.source) from None
        declared = "[" + ", ".join(map(str, p.shape)) + "]" if p.shape else "a scalar"
        if len(shape) != len(p.shape):
            raise ArgumentError(f"{p.name} has shape {shape}; it is declared {declared}", None, problem.source)
        for size, got in zip(p.shape, shape, strict=True):
            want = sizes.setdefault(size, (got, p.name))[0] if isinstance(size, str) else size
            if got != want:
                known = f"{size} = {want} from {sizes[size][1]}" if isinstance(size, str) else f"size {size}"
                raise ArgumentError(f"{p.name} has shape {shape}, declared {declared}: {known}", None,
                                    problem.source)


_WARNED = []


def _warn_deadlocking_jaxlib():
    """Once per process: jaxlib 0.10.0-0.10.2 on CPU can hang a batched (vmapped) layer.

    Their batched LAPACK kernels (jax::ParallelBatchMap) block XLA's intra-op pool threads while
    waiting for chunks queued to the same pool; when as many independent batched factorizations
    or triangular solves run at once as the pool has threads, nothing runs again.  pyproject.toml
    excludes these versions; this warns whoever installed one anyway.
    """
    if _WARNED:
        return
    _WARNED.append(True)
    version = tuple(int(part) for part in jaxlib.__version__.split(".")[:3] if part.isdigit())
    if (0, 10, 0) <= version <= (0, 10, 2) and jax.default_backend() == "cpu":
        warnings.warn(f"jaxlib {jaxlib.__version__} on CPU can deadlock batched linear algebra: "
                      "jit(vmap(layer)) of a problem with matrix solves may hang at batch >= 16. "
                      "Install jax and jaxlib 0.9.2 (or a release after 0.10.2 that fixes it).",
                      RuntimeWarning, stacklevel=3)


def _convention(solver, params: list) -> str:
    """How the solver takes the parameters: "keywords" (by name) or "positional" (in order).

    Keywords where its signature accepts the names (or cannot be read); otherwise positionally
    in declaration order, so that ``solver=jax.nn.softmax`` works for ``param theta[n]``.
    """
    if not callable(solver):
        raise SolverOutputError(f"solver must be a function of the parameters; got {type(solver).__name__}")
    try:
        signature = inspect.signature(solver)
    except (TypeError, ValueError):
        return "keywords"
    try:
        signature.bind(**{p: None for p in params})
        return "keywords"
    except TypeError:
        pass
    try:
        signature.bind(*params)
        return "positional"
    except TypeError:
        raise SolverOutputError(f"the solver is called as solver({', '.join(p + '=...' for p in params)}) "
                                f"or solver({', '.join(params)}), but its signature is {signature}") from None
