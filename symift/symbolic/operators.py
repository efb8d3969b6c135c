"""Piecewise-linear operators (prox and projections) written with locally constant indicators.

A fixed point x = T(x, θ) of proximal or projected gradient (Blondel et al. 2021, §2.2) applies an
operator with kinks: ``soft_threshold(v, t)`` (the prox of t‖·‖₁), ``relu(v)`` = ``pos(v)`` =
max(v, 0), ``proj_box(v, l, u)`` (clip).  Each is linear on the pieces between its kinks, so it is
written exactly with 0/1 indicators of the pieces:

    soft_threshold(v, t) = hi ∘ (v − t) + lo ∘ (v + t)       hi = 1[v > t],  lo = 1[v < −t]
    relu(v)              = s ∘ v                               s = 1[v > 0]
    proj_box(v, l, u)    = v + lo ∘ (l − v) + hi ∘ (u − v)     lo = 1[v < l],  hi = 1[v > u]

Where no entry sits at a kink (v ≠ ±t; v ≠ 0; v ≠ l, u) the indicators are constant near the
point, so the differential holds them fixed: d soft_threshold = (hi + lo) ∘ dv − (hi − lo) ∘ dt,
the generalized Jacobian on the support, and the block elimination then simplifies with
hi ∘ hi = hi and hi ∘ lo = 0 like the active-set indicators of a KKT system.  The generated code
computes each indicator from its condition (``Kink.condition`` > 0) at the current values: the
forward solve's Newton steps are semismooth Newton steps, and the layer returns the indicators of
the solution with the distance to the nearest kink as part of its strict-complementarity margin.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from ..language.model import Name


@dataclass(frozen=True)
class Kink:
    """One indicator of a piece of an operator: ``indicator`` = 1[``condition`` > 0] elementwise."""

    name: str
    indicator: sp.Basic    # MatrixSymbol (n × 1) or a scalar Symbol
    condition: sp.Basic    # sympy, of the operator argument's shape
    meaning: str           # "s_hi = 1[v > t] for soft_threshold(v, t)"
    call: str              # the operator call as written
    partner: str = ""      # the other indicator of the same call (never 1 together), if any
    value: sp.Basic = field(default=None, compare=False)  # the operator written with its indicators
    node: object = field(default=None, compare=False)     # the call in the model tree (LaTeX document)


@dataclass(frozen=True)
class Map:
    """A vector map named by a symbol: ``symbol`` = softmax(``arg``) or proj_simplex(``arg``).  Its
    differential is a rule (symbolic.calculus), so the derivation writes dp = p∘du − p (pᵀdu)
    instead of differentiating exp(u)/1ᵀexp(u) term by term, and at a fixed point x = p it uses
    p = x.  The projection onto the simplex, max(u − τ1, 0) with 1ᵀp = 1, is piecewise linear:
    its rule dp = s∘du − s (sᵀdu)/1ᵀs holds its support s = 1[u − τ1 > 0] (a Kink) fixed, with
    τ = max(u − p) computed (``threshold``)."""

    name: str
    symbol: sp.Basic        # MatrixSymbol (n × 1)
    kind: str               # "softmax"
    arg: sp.Basic
    call: str
    node: object = field(default=None, compare=False)
    #: the unknown x of an equation x == softmax(u): at the solution p = x, used in the derivatives
    equals: sp.Basic = field(default=None, compare=False)
    support: sp.Basic = field(default=None, compare=False)    # the indicator s (proj_simplex, proj_l2ball)
    threshold: sp.Basic = field(default=None, compare=False)  # τ (proj_simplex), ‖u‖ (proj_l2ball): computed
    radius: sp.Basic = field(default=None, compare=False)     # r of proj_l2ball(u, r)

    @property
    def rule(self) -> str:
        p = self.name
        if self.kind == "proj_simplex":
            s = str(self.support)
            return f"d{p} = {s}∘du - {s} ({s}ᵀdu)/(1ᵀ{s})"
        if self.kind == "proj_l2ball":
            s, n = str(self.support), str(self.threshold)
            return f"d{p} = (1 - {s}) du + {s} (r/{n}) (du - {p} {p}ᵀdu/r²) + {s} {p} dr/r"
        if self.symbol.shape[1] != 1:  # softmax of a matrix, row by row
            return f"d{p} = {p}∘du - {p}∘(({p}∘du) 1 1ᵀ) (row by row)"
        return f"d{p} = {p}∘du - {p} ({p}ᵀdu)"

    @property
    def meaning(self) -> str:
        at = f" (= {self.equals} at the solution)" if self.equals is not None else ""
        return f"{self.name} = {self.call}{at}"


def indicator_symbol(name: str, like) -> sp.Basic:
    if is_matrix(like):
        return sp.MatrixSymbol(name, like.shape[0], 1)
    return sp.Symbol(name, real=True, nonnegative=True)


def times(s, x):
    """s ∘ x (s an indicator, x of its shape or a scalar)."""
    if is_matrix(s):
        _, x = broadcast(s, x)
        return sp.HadamardProduct(s, x)
    return s * x


def build_operator(func: str, args: list, names: list, written: str, node=None):
    """(the operator's sympy value, [Kink]) — ``names`` the fresh indicator names to use."""
    value, kinks = _pieces(func, args, names, written)
    return value, [replace(k, value=value, node=node) for k in kinks]


def _pieces(func: str, args: list, names: list, written: str):
    v = args[0]
    if func == "relu":
        (s_name,) = names
        s = indicator_symbol(s_name, v)
        return times(s, v), [Kink(s_name, s, v, f"{s_name} = 1[v > 0] for {written}", written)]
    hi_name, lo_name = names
    hi, lo = indicator_symbol(hi_name, v), indicator_symbol(lo_name, v)
    if func == "soft_threshold":
        t = args[1]
        value = times(hi, broadcast_sub(v, t)) + times(lo, _add(v, t))
        kinks = [Kink(hi_name, hi, broadcast_sub(v, t), f"{hi_name} = 1[v > t] for {written}", written, lo_name),
                 Kink(lo_name, lo, broadcast_sub(-v, t) if is_matrix(v) else -v - t,
                      f"{lo_name} = 1[v < -t] for {written}", written, hi_name)]
        return value, kinks
    if func == "proj_box":
        low, up = args[1], args[2]
        value = _add(v, times(lo, broadcast_sub(low, v)) + times(hi, broadcast_sub(up, v)))
        kinks = [Kink(hi_name, hi, broadcast_sub(v, up), f"{hi_name} = 1[v > u] for {written}", written, lo_name),
                 Kink(lo_name, lo, broadcast_sub(low, v), f"{lo_name} = 1[v < l] for {written}", written, hi_name)]
        return value, kinks
    raise ValueError(func)  # pragma: no cover - the model checks the names


def is_matrix(e) -> bool:
    return isinstance(e, MatrixExpr)


def broadcast(a, b):
    """Scalars against matrices: ``c`` becomes ``c·𝟏`` (as symbolic.expr.broadcast, which builds on
    this module: the sympy builder calls :func:`build_operator`)."""
    if is_matrix(a) and not is_matrix(b):
        b = b * sp.OneMatrix(*a.shape)
    elif is_matrix(b) and not is_matrix(a):
        a = a * sp.OneMatrix(*b.shape)
    return a, b


def broadcast_sub(a, b):
    a, b = broadcast(a, b)
    return a - b


def _add(a, b):
    a, b = broadcast(a, b)
    return a + b


#: The fresh indicator names of each operator (a number is added for the second call on).
NAMES = {"relu": ("s",), "soft_threshold": ("s_hi", "s_lo"), "proj_box": ("s_hi", "s_lo")}


def fixed_point_map(problem, builder) -> dict | None:
    """{variable: T} when every equation of a 'solve' block is ``x == T`` for a distinct variable x
    (a fixed point, solved by iterating T), else None."""
    if problem.kind != "root":
        return None
    out = {}
    for e in problem.equations:
        if not isinstance(e.lhs, Name) or e.lhs.id not in {v.name for v in problem.variables} or e.lhs.id in out:
            return None
        out[e.lhs.id] = builder.build(e.rhs)
    return out if len(out) == len(problem.variables) else None
