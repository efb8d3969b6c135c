"""The public entry points (SPEC §2): ``derive``, ``compile``, ``codegen`` and :class:`Derivation`.

:class:`Derivation` is the symbolic stage's result (symift.symbolic.derivation) with its outputs
attached: the LaTeX document (symift.render.latex), the closed forms as JAX functions
(symift.emit) and the numerical verification (symift.verify).
"""
from __future__ import annotations

from .emit.loader import jacobian_function
from .emit.module import ModuleWriter
from .errors import SymiftError
from .language.model import Problem
from .layer import Layer, build_layer
from .render.latex import document, summary
from .symbolic import derivation
from .verify import Report, verify


class Derivation(derivation.Derivation):
    """Lagrangian, KKT system, IFT report and closed-form Jacobians of a problem, and their outputs.

    dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ, computed block-wise (see :mod:`symift.symbolic.eliminate`).
    """

    def jacobian_function(self, var: str, param: str):
        """A JAX function of keyword arrays -> the Jacobian array d var/d param (symift.emit)."""
        return jacobian_function(self, var, param)

    def to_latex(self, wrt=None, params=None) -> str:
        """The whole derivation as a complete LaTeX document (see :mod:`symift.render.latex`)."""
        for v in wrt or [] if self.parameters else []:
            self.check_names(v, self.parameters[0])
        for p in params or []:
            self.check_names(None, p)
        try:
            return document(self, wrt, params)
        except SymiftError as exc:
            raise exc.located(self.problem.source) from None

    def _repr_latex_(self) -> str:
        """The Jacobians as display math, for Jupyter."""
        return summary(self)

    def verify(self, *, seed: int = 0, dims: dict | None = None, wrt=None, params=None, attempts: int = 20,
               **options) -> Report:
        """Check every derived Jacobian at random data satisfying the declarations (symift.verify).

        The closed form is compared with central finite differences of re-solves and with
        jax.jacfwd / jacrev of the layer; ``report.ok`` says whether all agree, ``print(report)``
        shows the table.  ``options`` go to the layer (``symift.compile``).
        """
        d = self.one_row() if self.rows is not None else self  # the row problem's derivation: one row
        return verify(d, build_layer(d, **options), seed=seed, dims=dims, wrt=wrt, params=params,
                      attempts=attempts)


def derive(problem: Problem) -> Derivation:
    """Derive the Lagrangian, KKT system, IFT report and Jacobians of a problem."""
    return Derivation(problem)


def compile(problem, solver=None, *, tol=None, maxiter=100, backward="auto", backward_tol=None,
            backward_maxiter=None, callback=False, checks=True, strict=True, acceleration="auto") -> Layer:
    """The differentiable layer of a problem or a derivation (see :class:`symift.layer.Layer`).

    solver: optional ``fn(**params)`` (or ``fn(*params)`` in declaration order, when its
        signature does not name the parameters) returning the primal solution — an array when the
        problem has one variable, else a dict by variable name — and optionally multipliers
        (dict entries by multiplier name).  The implicit backward is attached to it (the
        ``custom_root`` pattern of Blondel et al. 2021, with F derived by symift); missing
        multipliers are recovered from stationarity by least squares (:mod:`symift.runtime.recovery`).
        ``fn`` is called under jax.jit / jax.vmap on non-differentiated values and must be
        JAX-traceable; ``callback=True`` runs a NumPy / SciPy / CVXPY solver through
        ``jax.pure_callback`` instead.  With a solver, ``tol`` is the acceptance threshold:
        a KKT residual above tol is reported as a non-optimal solution.
    backward: "auto" (the closed form where every Jacobian was derived, else a linear solve:
        LU up to 4000 unknowns, GMRES above), "closed_form", or a linear solve on the derived
        ∂F/∂x: "lu", "gmres", "bicgstab", "cg" (unconstrained minimization only).
    backward_tol: the backward solve's relative residual threshold (default 1e-8 in float64,
        1e-3 in float32); backward_maxiter: Krylov iterations (default 10 × the unknowns).
    checks: measure the condition of ∂F/∂x's pivots at every solution (the ``cond`` status: the
        IFT report's "holds if ..." conditions, with the factorizations the closed form uses);
        False skips it.
    strict: irregular solutions (status ``regular`` false) get NaN tangents under jit and raise
        under an eager jax.grad; False keeps their tangents (the derivative on the computed active
        set), flagged only by the status.
    acceleration: how the forward iterates a fixed point x == T(x, θ) before Newton finishes:
        "fista" (FISTA's extrapolation with adaptive restart; the plain iteration for variables
        declared > 0, whose extrapolation may leave the domain of log), "anderson" (Anderson
        acceleration, mixing the last 5 iterates; mirror descent too), or "auto" (the default:
        Anderson where a variable is declared > 0, FISTA otherwise).  Other problems take "auto" only.
    """
    d = problem if isinstance(problem, Derivation) else Derivation(problem)
    return build_layer(d, solver, tol=tol, maxiter=maxiter, backward=backward, backward_tol=backward_tol,
                       backward_maxiter=backward_maxiter, callback=callback, checks=checks, strict=strict,
                       acceleration=acceleration)


def codegen(problem: Problem) -> str:
    """The standalone JAX module of a problem: imports jax and numpy only (symift.emit.module)."""
    return ModuleWriter(Derivation(problem)).source()
