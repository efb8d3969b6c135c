"""What the runtime knows about one problem: its names, its structure and its generated functions.

A generated module (``symift codegen``, or the in-process module behind ``symift.compile``)
ends with ``SPEC = ProblemSpec(...)``; every runtime function takes that spec, so the runtime is
the same code for every problem and is tested directly with hand-written specs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
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
    forward: Callable             # the forward solve: (spec, params, tol, maxiter) -> (unknowns, indicators,
    #                               residual, or a list of arrays whose max |·| it is)
    residual: Callable            # (**params, **unknowns) -> {block name: F block}
    equations: Callable           # (**params, **unknowns) -> (stationarity or equations..., h...)
    constraints: Callable         # (**params, **variables) -> (g of each inequality, ...)
    shapes: Callable              # (**params) -> {unknown: shape}
    tangents: Callable | None = None          # closed form: (**params, **unknowns, **indicators, t_<p>...) -> dx
    newton_direction: Callable | None = None  # (**params, **unknowns, t_<ineq>...) -> solve(*rows)
    #: the same step eliminated with the parameters' pd pivots first (runtime.interior_point picks
    #: the cheaper per iterate)
    newton_direction_constant: Callable | None = None
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
    return reduce_many([("max_abs", arrays)])[0]


def min_of(arrays, empty=jnp.inf):
    """min over every entry of the arrays (``empty`` for none), one reduction per shape."""
    return reduce_many([("min", arrays)], empty)[0]


#: arrays of at least this many entries are reduced in two stages; the window of the first stage
_TWO_STAGE_FROM, _WINDOW = 4096, 32


def max_of(v):
    """max over every entry of one array, in two stages where it is large (see _two_stage)."""
    return reduce_many([("max", [v])])[0]


#: sums (dot products in generated code, also inside the dual Newton's loop) take two stages only
#: from here: at n = 10⁴ (batch 32) the barrier in the loop made sparsemax's forward 3× slower,
#: while at n = 10⁵ two stages halve softmax's fwd+bwd
_SUM_TWO_STAGE_FROM = 32768


def sum_of(v):
    """Σ over every entry of one array, in two stages where it is large (see _two_stage): the
    product a dot product sums fuses into the first stage instead of being written out."""
    v = jnp.asarray(v)
    if v.size >= _SUM_TWO_STAGE_FROM:
        return reduce_many([("sum", [v])])[0]
    return jnp.sum(v)


#: kind -> (elementwise map, combine, empty value)
#: (lax's own max / min / add with their identities: jax then knows the single-operand
#: reductions as reduce_max / reduce_min / reduce_sum, which it differentiates)
_KINDS = {"max_abs": (jnp.abs, lax.max, -jnp.inf), "min": (None, lax.min, jnp.inf),
          "max": (None, lax.max, -jnp.inf), "sum": (None, lax.add, 0.0)}
_EMPTY = {"max_abs": 0.0}  # what a request without entries gives, where not the identity


def reduce_many(requests, empty=None):
    """One scalar per request (kind, arrays), kind one of "max_abs", "min", "max", "sum": the
    reduction of every entry of the arrays.  ``empty`` overrides the value of a request without
    entries (the kind's identity otherwise).  NaN propagates through max and min.

    All requests are read in one pass per array shape: a request's arrays of one shape are
    combined elementwise (a sum adds them), and the large shapes are reduced in two stages, the
    first a single variadic reduction over windows of _WINDOW entries that computes every
    request at once.  XLA:CPU fuses an elementwise expression into such a reduction, but it
    does not fuse sibling reductions of one array: five status reductions of a (32, 10⁵) batch
    took 11.6 ms as five passes and 2.6 ms as one (benchmarks/RESULTS.md).
    """
    shapes: dict = {}   # shape -> {request index: combined operand}
    dtypes = [jnp.result_type(float, *arrays) if arrays else jnp.result_type(float) for _, arrays in requests]
    for k, (kind, arrays) in enumerate(requests):
        pre, combine, _ = _KINDS[kind]
        for a in arrays:
            a = jnp.asarray(a, dtypes[k])
            a = pre(a) if pre is not None else a
            group = shapes.setdefault(a.shape, {})
            group[k] = combine(group[k], a) if k in group else a
    out = [jnp.asarray(_EMPTY.get(kind, _KINDS[kind][2]) if empty is None else empty, dtypes[k])
           for k, (kind, _) in enumerate(requests)]
    for group in shapes.values():
        ks = list(group)
        operands = [group[k] for k in ks]
        # numpy identities: concrete, so that jax sees a monoid (reduce_sum, ...) it can differentiate
        identities = [np.array(_KINDS[requests[k][0]][2], operands[i].dtype) for i, k in enumerate(ks)]
        combines = [_KINDS[requests[k][0]][1] for k in ks]
        if operands[0].size >= _TWO_STAGE_FROM:
            values = _two_stage(operands, combines, identities)
        else:
            values = [lax.reduce(v, e, c, tuple(range(v.ndim)))
                      for v, c, e in zip(operands, combines, identities, strict=True)]
        for k, v, c in zip(ks, values, combines, strict=True):
            out[k] = c(out[k], v.astype(out[k].dtype))
    return out


def _two_stage(operands, combines, identities):
    """Each operand reduced over all its entries: over windows of _WINDOW entries in one variadic
    reduction, then over the windows.

    XLA:CPU rewrites a long reduction into a chain of reduce-windows that cannot fuse the
    elementwise expression being reduced: that expression is written out in full first, and
    each such temporary of a large problem is fresh memory, page-faulted on every call. With
    several in one status (residual, margin, data scale) the status cost ~10× the solution
    (the box projection at n = 10⁵, batch 32: 45 ms against 1.4 ms). A first stage over
    windows of 32 fuses the expression into the reduction, and the barrier keeps XLA from
    folding the two stages back into one: four such reductions went from 42 to 3.7 ms.
    """
    flat = []
    for v, e in zip(operands, identities, strict=True):
        v = jnp.ravel(v)
        pad = (-v.size) % _WINDOW
        if pad:
            v = jnp.concatenate([v, jnp.full((pad,), e, v.dtype)])
        flat.append(v.reshape(-1, _WINDOW))

    if len(flat) == 1:  # jax's reduce_sum / reduce_max / reduce_min, which it differentiates
        partial = (lax.reduce(flat[0], identities[0], combines[0], (1,)),)
    else:
        def combine(a, b):
            return tuple(c(x, y) for c, x, y in zip(combines, a, b, strict=True))
        partial = lax.reduce(tuple(flat), tuple(identities), combine, (1,))
    partial = lax.optimization_barrier(partial)
    return [lax.reduce(p, e, c, (0,)) for p, c, e in zip(partial, combines, identities, strict=True)]


def constraint_values(spec: ProblemSpec, params: dict, unknowns: dict) -> dict:
    """{inequality multiplier: g} at the primal of ``unknowns`` (g ≤ 0 is feasible)."""
    gs = spec.constraints(**params, **{v: unknowns[v] for v in spec.variables})
    return dict(zip(spec.inequalities, gs, strict=True))
###}
