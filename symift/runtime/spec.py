"""What the runtime knows about one problem: its names, its structure and its generated functions.

A generated module (``symift codegen``, or the in-process module behind ``symift.compile``)
ends with ``SPEC = ProblemSpec(...)``; every runtime function takes that spec, so the runtime is
the same code for every problem and is tested directly with hand-written specs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
from jax import lax

###{standalone
#: how a fixed point's iteration is accelerated (runtime.fixed_point): FISTA's extrapolation
#: (none for variables declared > 0: mirror descent), Anderson's mixing of the last iterates, or
#: "auto": Anderson where a variable is declared > 0, FISTA otherwise
ACCELERATIONS = ("auto", "fista", "anderson")


class SolverError(RuntimeError):
    """The forward solve did not converge, its solution is not regular, or a backward solve failed."""


class SolverOutputError(TypeError):
    """A user solver's result is not a solution of this problem's shape, or it cannot be traced."""


class SeparableSpec(NamedTuple):
    """The forward solve of a separable problem by its dual reduction (symift.symbolic.separable).

    x(ν) = clip(ψ(ν), lo, hi) elementwise; ν solves the scalar dual equation h(x(ν)) = 0, in
    closed form (``dual``) or by safeguarded Newton; the bound multipliers are read off
    stationarity on the clipped entries.
    """

    variable: str                 # the (vector) variable x
    equality: str | None          # the scalar equality multiplier ν, if any
    bounds: tuple                 # ((multiplier, -1 lower | +1 upper), ...)
    inactive: tuple               # inequality multipliers that are 0 at every solution
    primal: Callable              # (**params, [ν]) -> (ψ(ν), lo, hi)
    dual_equality: Callable | None  # (**params, x) -> h(x)
    dual: Callable | None         # (**params) -> (ν, x), the dual equation solved by sympy
    newton: Callable | None = None  # the scalar solver of the dual equation where sympy did not solve it
    start: Callable | None = None   # (**params) -> where that solver starts (left of the root), if derived


class ProblemSpec(NamedTuple):
    """Names, structure and generated functions of one problem (python names throughout)."""

    filename: str
    params: tuple                 # parameters, in declaration order
    variables: tuple              # primal variables
    equalities: tuple             # equality multipliers
    inequalities: tuple           # inequality multipliers
    indicator_of: dict            # inequality multiplier -> its active-set indicator
    declared_inactive: tuple      # inequality multipliers that are 0 by the declarations
    positive: tuple               # variables declared > 0
    stationarity: tuple           # the names of the residual's stationarity blocks
    symmetric: tuple              # symmetric (symmetric, psd, pd) matrix parameters
    why_no_closed_form: str       # "" when every Jacobian was derived in closed form
    cg_applicable: bool           # dF/dx is a Hessian (unconstrained minimization)
    forward: Callable             # the forward solve: (spec, params, tol, maxiter) -> (unknowns, indicators, residual)
    residual: Callable            # (**params, **unknowns) -> {block name: F block}
    equations: Callable           # (**params, **unknowns) -> (stationarity or equations..., h...)
    constraints: Callable         # (**params, **variables) -> (g of each inequality, ...)
    shapes: Callable              # (**params) -> {unknown: shape}
    tangents: Callable | None = None          # closed form: (**params, **unknowns, **indicators, t_<p>...) -> dx
    newton_direction: Callable | None = None  # (**params, **unknowns, t_<ineq>...) -> solve(*rows)
    separable: SeparableSpec | None = None    # the dual reduction, when the problem has one
    pivots: Callable | None = None            # (**params, **unknowns, **indicators) -> the pivots' condition
    kinks: tuple = ()             # arguments of abs / sign in F (text): F is not C¹ where one has a 0 entry
    operator_indicators: tuple = ()  # the indicators of the pieces of F's operators (soft_threshold, ...)
    operator_pieces: Callable | None = None  # (**params, **unknowns) -> (indicators, conditions > 0)
    operator_conditions: tuple = ()  # what each condition is (an indicator's name, x inside a simplex)
    fixed_point: Callable | None = None      # x == T(x, θ): (**params, **variables) -> T, one per variable
    value: Callable | None = None            # (**params, **unknowns) -> V = f(x, θ), optimization problems
    value_tangent: Callable | None = None    # (**params, **unknowns, t_<p>...) -> dV = ±∂L/∂θ·dθ (envelope)

    @property
    def unknowns(self) -> tuple:
        """x = (primal, equality duals, inequality duals)."""
        return self.variables + self.equalities + self.inequalities

    @property
    def multipliers(self) -> tuple:
        return self.equalities + self.inequalities

    @property
    def indicators(self) -> tuple:
        return tuple(self.indicator_of[m] for m in self.inequalities if m in self.indicator_of) + \
            self.operator_indicators

    @property
    def closed_form(self) -> bool:
        return not self.why_no_closed_form


def max_abs(arrays):
    """max |a| over every entry of the arrays (0 for none), NaN if any entry is NaN.

    Arrays of one shape are combined elementwise first, so there is one reduction per shape, and
    each reduction of a large array runs in two stages (see _two_stage)."""
    return _reduce_by_shape([jnp.abs(jnp.asarray(a)) for a in arrays], jnp.maximum, jnp.max, 0.0)


def min_of(arrays, empty=jnp.inf):
    """min over every entry of the arrays (``empty`` for none), one reduction per shape."""
    return _reduce_by_shape([jnp.asarray(a) for a in arrays], jnp.minimum, jnp.min, empty)


#: arrays of at least this many entries are reduced in two stages; the window of the first stage
_TWO_STAGE_FROM, _WINDOW = 4096, 32


def _two_stage(v, reduce, empty):
    """reduce(v) over all entries as reduce over windows of 32 entries, then over the windows.

    XLA:CPU rewrites a long reduction into a chain of reduce-windows that cannot fuse the
    elementwise expression being reduced: that expression is written out in full first, and
    each such temporary of a large problem is fresh memory, page-faulted on every call. With
    several in one status (residual, margin, data scale) the status cost ~10× the solution
    (the box projection at n = 10⁵, batch 32: 45 ms against 1.4 ms). A first stage over
    windows of 32 fuses the expression into the reduction, and the barrier keeps XLA from
    folding the two stages back into one: four such reductions went from 42 to 3.7 ms.
    """
    v = jnp.ravel(v)
    pad = (-v.size) % _WINDOW
    if pad:
        v = jnp.concatenate([v, jnp.full((pad,), empty, v.dtype)])
    partial = lax.optimization_barrier(reduce(v.reshape(-1, _WINDOW), axis=1))
    return reduce(partial, initial=empty)


def max_of(v):
    """max over every entry of one array, in two stages where it is large (see _two_stage)."""
    return _reduce_by_shape([jnp.asarray(v)], jnp.maximum, jnp.max, -jnp.inf)


#: sums (dot products in generated code, also inside the dual Newton's loop) take two stages only
#: from here: at n = 10⁴ (batch 32) the barrier in the loop made sparsemax's forward 3× slower,
#: while at n = 10⁵ two stages halve softmax's fwd+bwd
_SUM_TWO_STAGE_FROM = 32768


def sum_of(v):
    """Σ over every entry of one array, in two stages where it is large (see _two_stage): the
    product a dot product sums fuses into the first stage instead of being written out."""
    v = jnp.asarray(v)
    if v.size >= _SUM_TWO_STAGE_FROM:
        return _two_stage(v, jnp.sum, jnp.asarray(0, v.dtype))
    return jnp.sum(v)


def _reduce_by_shape(arrays, combine, reduce, empty):
    groups: dict = {}
    for a in arrays:
        groups[a.shape] = combine(groups[a.shape], a) if a.shape in groups else a
    dtype = jnp.result_type(float, *arrays) if arrays else float
    out = jnp.asarray(empty, dtype)
    for g in groups.values():
        if g.size >= _TWO_STAGE_FROM:
            out = combine(out, _two_stage(g, reduce, jnp.asarray(empty, g.dtype)))
        else:
            out = combine(out, reduce(g, initial=empty))
    return out


def constraint_values(spec: ProblemSpec, params: dict, unknowns: dict) -> dict:
    """{inequality multiplier: g} at the primal of ``unknowns`` (g ≤ 0 is feasible)."""
    gs = spec.constraints(**params, **{v: unknowns[v] for v in spec.variables})
    return dict(zip(spec.inequalities, gs, strict=True))
###}
