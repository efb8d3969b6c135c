"""Forward solves found symbolically: the dual reduction of separable problems.

For a problem  min Σᵢ φ(xᵢ; θᵢ)  s.t.  aᵀx = b,  l ≤ x ≤ u  with φ strictly convex in xᵢ,
stationarity is elementwise,

    φ'(xᵢ; θᵢ) + aᵢ ν − λᵢˡ + λᵢᵘ = 0,

so symift solves  φ'(xᵢ) + aᵢν = 0  for xᵢ with sympy (xᵢ = ψ(ν)) and clips it to the bounds:
x(ν) = clip(ψ(ν), l, u).  What is left is one scalar equation in ν, the dual equation

    h(ν) = aᵀx(ν) − b = 0,        h'(ν) = −Σᵢ aᵢ² / φ''(xᵢ) ≤ 0  (free i only),

which is nonincreasing, so a safeguarded Newton method solves it in a few O(n) steps
(semismooth Newton for sparsemax).  When ν enters multiplicatively, x(ν) = c ∘ q(ν), the dual
equation is q(ν)·(aᵀc) = b and sympy solves it too: softmax becomes
ν = log 1ᵀexp(θ − 1), z = exp(θ − 1 − ν), computed with a max-shift (log-sum-exp) so that
large scores do not overflow.  The multipliers of the bounds are read off stationarity and the
active-set indicators off the clip.  Problems outside this class use the interior point.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from .calculus import jacobian
from .expr import is_matrix


class NotSeparable(Exception):
    """The problem is outside the dual-reduction class (the interior point is used)."""


@dataclass(frozen=True)
class Bound:
    """x ≥ value (sign −1, g = value − x) or x ≤ value (sign +1, g = x − value)."""

    multiplier: str
    sign: int
    value: sp.Expr           # scalar template over the opaque symbols
    #: stationarity at the bound (λ = 0) where ψ(ν) is defined only inside the domain (xᵢ^1.5 with
    #: xᵢ ≥ 0: ψ = (θ + 4/3 − ν)²/4 turns back up past the bound): the bound is active iff the test
    #: is ≥ 0 (lower) or ≤ 0 (upper), which is right for any strictly convex φ; None: plain clip
    test: sp.Expr | None = None


@dataclass(frozen=True)
class SeparableDual:
    """The symbolic forward solve of a separable problem (see the module docstring)."""

    variable: str
    xi: sp.Symbol                    # the scalar stand-in for xᵢ
    opaque: dict                     # scalar symbol -> x-free vector expression it stands for
    primal: sp.Expr                  # ψ(ν): xᵢ before clipping
    nu: sp.Symbol | None             # the equality multiplier (scalar), if any
    equality: object                 # its kkt Multiplier, if any
    bounds: tuple                    # Bound, ...
    inactive: tuple                  # multipliers that are zero at the solution
    dual: sp.Expr | None             # closed-form ν in terms of logw = log(w), w = −h(0)/(aᵀc)
    logw: sp.Symbol
    exponent: sp.Expr | None         # e when c = exp(e) (stable log-sum-exp of aᵀc)
    #: where the dual Newton starts: νᵢ at which entry i alone meets the equality, a·ψᵢ(νᵢ) = b
    #: (b = ``rhs``), maximized over i by the runtime; None where that start is not known to be
    #: left of the root (see _one_entry_start)
    start: sp.Expr | None = None
    rhs: sp.Symbol | None = None


class _Scalarizer:
    """An elementwise vector expression in x as the scalar expression of its i-th entry."""

    def __init__(self, x, xi, transparent: set, zero: set, signs: dict):
        self.x, self.xi = x, xi
        self.signs = signs               # vector parameter -> sympy assumptions (``> 0``)
        self.transparent = transparent   # scalars to keep (the multiplier ν)
        self.zero = zero                 # vectors that are 0 here (bound and inactive multipliers)
        self.opaque: dict = {}           # vector expression -> scalar symbol

    def symbol_for(self, e):
        if e not in self.opaque:
            self.opaque[e] = sp.Dummy(f"o{len(self.opaque)}", real=True, **self.signs.get(e, {}))
        return self.opaque[e]

    def __call__(self, e):
        if not isinstance(e, MatrixExpr):
            if self.x in e.free_symbols:
                raise NotSeparable("a reduction of x couples its entries")
            return e
        if e in self.zero or isinstance(e, sp.ZeroMatrix):
            return sp.S.Zero
        if e == self.x:
            return self.xi
        if e.shape[1] != 1:
            raise NotSeparable("a matrix-valued term")
        if isinstance(e, sp.OneMatrix):
            return sp.S.One
        if not (e.free_symbols & ({self.x} | self.transparent | self.zero)):
            return self.symbol_for(e)
        if isinstance(e, sp.MatAdd):
            return sp.Add(*[self(a) for a in e.args])
        if isinstance(e, sp.MatMul):
            mats = [a for a in e.args if isinstance(a, MatrixExpr)]
            scalars = [a for a in e.args if not isinstance(a, MatrixExpr)]
            if len(mats) != 1:
                raise NotSeparable("a matrix product couples the entries of x")
            return sp.Mul(*[self(a) for a in scalars]) * self(mats[0])
        if isinstance(e, sp.HadamardProduct):
            return sp.Mul(*[self(a) for a in e.args])
        if isinstance(e, sp.HadamardPower):
            return self(e.base) ** e.exp
        if isinstance(e, ElementwiseApplyFunction):
            return e.function(self(e.expr))
        raise NotSeparable(f"{type(e).__name__} is not elementwise")


def separable_dual(d) -> SeparableDual | None:
    """The dual reduction of a derivation, or None when the problem is outside its class."""
    try:
        return _reduce(d)
    except (NotSeparable, NotImplementedError, TypeError, ValueError):
        return None


def _reduce(d) -> SeparableDual:
    kkt = d.system
    variables = d.lowered_problem.variables
    if kkt.objective is None or len(variables) != 1:
        raise NotSeparable("one vector variable with an objective")
    var = variables[0]
    x = d.symbols[var.name]
    if not is_matrix(x) or x.shape[1] != 1:
        raise NotSeparable("a vector variable")
    eqs = [m for m in kkt.multipliers if m.kind == "equality"]
    ineqs = [m for m in kkt.multipliers if m.kind == "inequality"]
    if len(eqs) > 1 or any(is_matrix(m.symbol) for m in eqs):
        raise NotSeparable("at most one scalar equality")
    inactive = tuple(m.name for m in ineqs if m.name in d.analysis.inactive)
    xi = sp.Symbol(f"{var.name}_i", real=True, positive=True if var.positive else None)
    nu = eqs[0].symbol if eqs else None
    zero = {m.symbol for m in ineqs}
    signs = {d.symbols[p.name]: {">0": {"positive": True}, ">=0": {"nonnegative": True}}[p.sign]
             for p in d.problem.params if p.sign in (">0", ">=0")}
    sc = _Scalarizer(x, xi, {nu} if nu is not None else set(), zero, signs)

    bounds = []
    for m in ineqs:
        if m.name in inactive:
            continue
        if not is_matrix(m.function):
            raise NotSeparable("a scalar inequality")
        g = sc(m.function)
        sign = sp.diff(g, xi)
        if sign not in (1, -1) or xi in (g - sign * xi).free_symbols:
            raise NotSeparable("an inequality that is not a bound on x")
        bounds.append(Bound(m.name, int(sign), sp.expand(-sign * (g - sign * xi))))

    if len({b.sign for b in bounds}) < len(bounds):
        raise NotSeparable("two bounds on the same side of x")
    (stationarity,) = [b for b in kkt.residual if b.kind == "stationarity"]
    stat = sc(stationarity.expr)
    curvature = sp.diff(stat, xi)
    if curvature.is_positive:   # φ'' > 0: one solution, and clipping is the projection
        solutions = sp.solve(stat, xi, dict=False)
    else:
        # strictly convex on its domain only (p^1.5 and sqrt above 0, binary entropy on (0, 1)):
        # solve there, and decide each bound by the sign of stationarity at it, not by clipping ψ
        low, high = _domain(stat, xi, var.positive, bounds)
        t = sp.Dummy("t", positive=True)
        inside = (low + (high - low) * t / (1 + t) if low is not None and high is not None and high > low
                  else low + t if low is not None else high - t if high is not None else None)
        if inside is None or not (curvature.subs(xi, inside).is_positive
                                  or sp.simplify(curvature.subs(xi, inside)).is_positive):
            raise NotSeparable("the objective is not provably strictly convex in each entry")
        end = low if low is not None else high
        sign = 1 if low is not None else -1
        solutions = [end + sign * r for r in sp.solve(stat.subs(xi, end + sign * t), t, dict=False)]
        tests = {}
        for b in bounds:
            test = stat.subs(xi, b.value) if b.value.is_number else None
            tests[b] = None if test is None or test.has(sp.zoo, sp.nan, sp.oo, -sp.oo) else test  # a barrier
        bounds = [Bound(b.multiplier, b.sign, b.value, tests[b]) for b in bounds]
    if len(solutions) != 1 or solutions[0].has(sp.I, sp.Piecewise, sp.LambertW):
        raise NotSeparable("stationarity has no unique closed-form solution")
    primal = solutions[0]
    if not _satisfies(stat.subs(xi, primal), next((b.test for b in bounds if b.test is not None), None), nu):
        raise NotSeparable("sympy's solution does not satisfy stationarity")
    # ψ must be real for every ν (and positive for a '> 0' variable unless a bound clips it), so
    # that the dual equation is defined on the whole line the Newton method searches
    if not primal.is_real or (var.positive and not bounds and not primal.is_positive):
        raise NotSeparable("x(ν) is not defined for every ν")
    if eqs:
        h = eqs[0].function
        if x in jacobian(h, x).free_symbols:
            raise NotSeparable("the equality is not linear in x")
        if nu not in primal.free_symbols:
            raise NotSeparable("x does not depend on the equality multiplier")
    logw = sp.Symbol("logw", real=True)
    dual, exponent, start, rhs = None, None, None, None
    if eqs and not bounds:
        dual, exponent = _closed_form_dual(primal, nu, logw)
    if eqs and dual is None:
        rhs = sp.Symbol("rhs", positive=True)
        start = _one_entry_start(primal, nu, _ones_multiple(jacobian(eqs[0].function, x)), bounds, rhs)
    return SeparableDual(var.name, xi, {s: e for e, s in sc.opaque.items()}, primal, nu,
                         eqs[0] if eqs else None, tuple(bounds), inactive, dual, logw, exponent,
                         start, rhs if start is not None else None)


def _ones_multiple(a):
    """c where the row a = c·1ᵀ with c a number (the equality c·1ᵀx = b), else None."""
    if isinstance(a, sp.OneMatrix):
        return sp.S.One
    if isinstance(a, sp.MatMul):
        mats = [f for f in a.args if isinstance(f, MatrixExpr)]
        scalars = [f for f in a.args if not isinstance(f, MatrixExpr)]
        if len(mats) == 1 and isinstance(mats[0], sp.OneMatrix) and all(f.is_number for f in scalars):
            return sp.Mul(*scalars)
    return None


def _one_entry_start(primal, nu, a, bounds, rhs):
    """A start for the dual Newton: νᵢ solving a·ψᵢ(ν) = b for one entry alone, on the branch
    where ψ decreases in ν (the one stationarity uses), or None.

    The runtime starts at ν₀ = maxᵢ νᵢ.  Where a > 0 and every entry adds a·xⱼ ≥ 0 to aᵀx (a lower
    bound ≥ 0, or ψ ≥ 0) and no upper bound clips x, h(ν₀) ≥ a·x_{i*}(ν₀) − b = 0: the start is
    left of the root, and Newton's steps on the convex piecewise h of sparsemax do not overshoot
    (Michelot's method).  Measured on sparsemax, θ ~ N(0, 1): 4 steps at n = 10⁵ against 13
    from ν = 0 (benchmarks/RESULTS.md).  Any start is safe: the Newton method is safeguarded.
    """
    if a is None or not (a.is_number and a > 0) or any(b.sign > 0 for b in bounds):
        return None
    lower = [b.value for b in bounds if b.sign < 0]
    if not (any(v.is_number and v >= 0 for v in lower) or primal.is_nonnegative):
        return None
    try:
        roots = sp.solve(sp.Eq(a * primal, rhs), nu, dict=False)
    except NotImplementedError:
        return None
    slope = sp.diff(primal, nu)
    branch = [r for r in roots if not r.has(sp.I) and slope.subs(nu, r).is_negative]
    return branch[0] if len(branch) == 1 else None


def _domain(stat, xi, positive: bool, bounds) -> tuple:
    """The interval (low, high) of xᵢ where stationarity is defined: a '> 0' variable, numeric
    bounds, and the linear arguments of its logarithms and fractional powers (log(1 − x): x < 1)."""
    lows, highs = [sp.S.Zero] if positive else [], []
    for b in bounds:
        if b.value.is_number:
            (lows if b.sign < 0 else highs).append(b.value)
    args = [a.args[0] for a in stat.atoms(sp.log)] + \
        [a.base for a in stat.atoms(sp.Pow) if a.exp.is_number and not a.exp.is_integer]
    for arg in args:
        slope = sp.diff(arg, xi)
        rest = sp.expand(arg - slope * xi)
        if xi in arg.free_symbols and slope.is_number and slope != 0 and rest.is_number:
            (lows if slope > 0 else highs).append(-rest / slope)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _satisfies(residual, test, nu) -> bool:
    """Stationarity at ψ is 0; with a bound test, where it is used (test < 0, the bound inactive):
    test = −w with w > 0 is solved for ν (or a parameter) and substituted (√((θ+4/3−ν)²) = θ+4/3−ν).
    What sympy cannot simplify to 0 (log(eᶿ) = θ) is evaluated at random points."""
    if sp.simplify(residual) == 0:
        return True
    if test is not None:
        w = sp.Dummy("w", positive=True)
        for symbol in ([nu] if nu is not None else []) + sorted(test.free_symbols - {nu}, key=str):
            if symbol is None or symbol not in test.free_symbols:
                continue
            roots = sp.solve(test + w, symbol, dict=False)
            if len(roots) == 1:
                residual = residual.subs(symbol, roots[0])
                break
        else:
            return False
    return _numerically_zero(residual)


def _numerically_zero(e, trials: int = 6) -> bool:
    rng = random.Random(0)
    for _ in range(trials):
        values = {s: rng.uniform(0.1, 2.0) if (s.is_positive or s.is_nonnegative) else rng.uniform(-2.0, 2.0)
                  for s in e.free_symbols}
        try:
            value = complex(e.evalf(subs=values))
        except (TypeError, ValueError):
            return False
        if not abs(value) <= 1e-9:
            return False
    return True


def _closed_form_dual(primal, nu, logw):
    """ν solving q(ν)·(aᵀc) = b when ψ(ν) = c·q(ν); with w = b/(aᵀc), in terms of log w."""
    c = primal.subs(nu, 0)
    if c == 0:
        return None, None
    q = sp.simplify(primal / c)
    if q.free_symbols != {nu}:
        return None, None
    w = sp.Symbol("w", positive=True)
    roots = [r for r in sp.solve(sp.Eq(q, w), nu) if not r.has(sp.I)]
    if len(roots) != 1:
        return None, None
    dual = sp.expand_log(roots[0].subs(w, sp.exp(logw)), force=True)
    exponent = sp.expand(c.args[0]) if isinstance(c, sp.exp) else None
    return dual, exponent
