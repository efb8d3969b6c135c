"""Non-smooth terms rewritten as smooth constraints before the KKT system is built (epigraphs).

``c · sum(pos(a))`` (the hinge loss, pos(a) = max(a, 0)) becomes ``c · sum(t)`` under ``a <= t`` and
``t >= 0`` the same way: at a solution t = max(a, 0), and stationarity in t, c − λ_hi − λ_lo = 0,
keeps the two from being inactive together.

``c · norm1(a)`` (or ``c · sum(abs(a))``) in a minimized objective with
c provably positive is replaced by ``c · sum(t)`` with a new variable ``t`` (``abs_a``) and the
constraints ``a <= t`` and ``a >= -t``: at a solution t = |a|, so the problems have the same
solutions, and the KKT system of the new one is smooth.  Where an entry of a is 0 both constraints
are active; stationarity in t, c − λ_hi − λ_lo = 0, keeps them from being inactive together, which
the analysis uses (symift.symbolic.analysis) — the generalized Jacobian on the support
s = 1[a ≠ 0] comes out of the ordinary block elimination.  A term whose coefficient's sign is not
known is left alone (the derivation then states 'holds if a ≠ 0' and the layer stops at a kink).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..language.model import Binary, Call, Constraint, Name, Neg, Number, Problem, Variable, unparse


@dataclass(frozen=True)
class Lowered:
    """One rewritten term: ``coefficient · norm1(argument)`` became ``coefficient · sum(variable)``."""

    term: str          # the term as written
    argument: str      # a, as written
    variable: str      # the new variable t ≥ |a| (t ≥ max(a, 0) for pos)
    upper: str         # the multiplier of a <= t
    lower: str         # the multiplier of a >= -t (t >= 0 for pos)
    why: str           # why the rewriting is exact ("lam > 0")
    positive: tuple = ()  # the parameters declared > 0 that make the coefficient positive
    term_node: object = field(default=None, compare=False, repr=False)       # the model trees, for printers
    argument_node: object = field(default=None, compare=False, repr=False)
    kind: str = "abs"  # "abs" (norm1, sum(abs(a))) or "pos" (sum(pos(a)))

    @property
    def sentence(self) -> str:
        if self.kind == "pos":
            return (f"{self.term} is written with a new variable {self.variable} ≥ max({self.argument}, 0): "
                    f"sum({self.variable}) under '{self.argument} <= {self.variable}' ({self.upper}) and "
                    f"'{self.variable} >= 0' ({self.lower}); exact because {self.why} and the objective is "
                    f"minimized, so {self.variable} = max({self.argument}, 0) at a solution")
        return (f"{self.term} is written with a new variable {self.variable} ≥ |{self.argument}|: "
                f"sum({self.variable}) under '{self.argument} <= {self.variable}' ({self.upper}) and "
                f"'{self.argument} >= -{self.variable}' ({self.lower}); exact because {self.why} and the "
                f"objective is minimized, so {self.variable} = |{self.argument}| at a solution")


def lower_nonsmooth(problem: Problem) -> tuple[Problem, list]:
    """(the problem with its norm1/abs terms rewritten, [Lowered]); the problem itself if none is."""
    if problem.kind != "optimization":
        return problem, []
    rewriter = _Rewriter(problem)
    sign = 1 if problem.objective.sense == "minimize" else -1
    expr = rewriter.terms(problem.objective.expr, sign)
    if not rewriter.lowered:
        return problem, []
    lowered = replace(problem, objective=replace(problem.objective, expr=expr),
                      variables=problem.variables + tuple(rewriter.variables),
                      constraints=problem.constraints + tuple(rewriter.constraints))
    return lowered, rewriter.lowered


class _Rewriter:
    def __init__(self, problem: Problem):
        self.problem = problem
        self.taken = set(problem.declarations) | {c.multiplier for c in problem.constraints}
        self.variables, self.constraints, self.lowered = [], [], []

    def terms(self, e, sign: int):
        """``e`` with each additive term of sign ``sign`` (minimized) that is c·norm1(a) rewritten."""
        if isinstance(e, Binary) and e.op in "+-":
            right_sign = sign if e.op == "+" else -sign
            return replace(e, left=self.terms(e.left, sign), right=self.terms(e.right, right_sign))
        if isinstance(e, Neg):
            return replace(e, operand=self.terms(e.operand, -sign))
        return self.term(e, sign)

    def term(self, e, sign: int):
        factors, atom = self._split(e)
        if atom is None:
            return e
        reasons = [self._positive(f) for f in factors]
        negative = sum(isinstance(f, Neg) for f in factors) % 2 == 1
        if sign * (-1 if negative else 1) < 0 or any(r is None for r in reasons):
            return e  # a maximized |a| or a coefficient of unknown sign: not convex, left alone
        return self._rewrite(e, atom, factors, [r for r in reasons if r])

    @staticmethod
    def _split(e):
        """(coefficient factors, the norm1/abs call) for c₁ * … * norm1(a) (also norm1(a) * c, /c)."""
        factors = []
        while isinstance(e, Binary) and e.op in "*/":
            if e.op == "*" and _is_atom(e.right):
                factors.append(e.left)
                e = e.right
            elif _is_atom(e.left):
                factors.append(e.right if e.op == "*" else Binary(e.span, "^", e.right, Number(e.span, "-1")))
                e = e.left
            else:
                return [], None
        return (factors, e) if _is_atom(e) else ([], None)

    def _positive(self, f) -> str | None:
        """Why the factor is positive ("" for a positive number), or None where it is not known."""
        if isinstance(f, Neg):
            return self._positive(f.operand)
        if isinstance(f, Number):
            return "" if float(f.text) > 0 else None
        if isinstance(f, Name):
            p = next((p for p in self.problem.params if p.name == f.id), None)
            return f"{f.id} > 0" if p is not None and p.sign == ">0" and not p.shape else None
        if isinstance(f, Binary) and f.op == "^" and isinstance(f.right, Number):
            return self._positive(f.left)
        if isinstance(f, Binary) and f.op in "*/":
            left, right = self._positive(f.left), self._positive(f.right)
            return None if left is None or right is None else ", ".join(r for r in (left, right) if r)
        return None

    def _rewrite(self, e, atom, factors, reasons):
        arg = atom.args[0] if atom.func == "norm1" else (atom.args[0].args[0] if atom.func == "sum" else atom.args[0])
        kind = "pos" if atom.func == "sum" and atom.args[0].func == "pos" else "abs"
        shape = self.problem.shape_of(arg)
        base = f"{kind}_{arg.id}" if isinstance(arg, Name) else f"{kind}{len(self.lowered)}"
        name = self._fresh(base)
        upper, lower = self._fresh(f"{name}_hi"), self._fresh(f"{name}_lo")
        span = atom.span
        t = Name(span, name)
        self.variables.append(Variable(name, shape, False, span))
        self.constraints.append(Constraint(arg, "<=", t, upper, True, shape, span))
        if kind == "pos":
            self.constraints.append(Constraint(t, ">=", Number(span, "0"), lower, True, shape, span))
        else:
            self.constraints.append(Constraint(arg, ">=", Neg(span, t), lower, True, shape, span))
        why = ", ".join(reasons) if reasons else "its coefficient is positive"
        self.lowered.append(Lowered(unparse(e), unparse(arg), name, upper, lower, why,
                                    tuple(dict.fromkeys(f.id for f in _names(factors))), e, arg, kind))
        new = Call(span, "sum", (t,)) if shape else t
        for f in reversed(factors):
            new = Binary(span, "*", f, new)
        return new

    def _fresh(self, base: str) -> str:
        name = base
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name


def _names(factors) -> list:
    """The parameter names in coefficient factors, in order."""
    out = []
    for f in factors:
        if isinstance(f, Name):
            out.append(f)
        elif isinstance(f, Neg):
            out += _names([f.operand])
        elif isinstance(f, Binary):
            out += _names([f.left, f.right])
    return out


def _is_atom(e) -> bool:
    """norm1(a), sum(abs(a)) or sum(pos(a))."""
    if not isinstance(e, Call) or len(e.args) != 1:
        return False
    if e.func == "norm1":
        return True
    if e.func == "sum":
        inner = e.args[0]
        return isinstance(inner, Call) and inner.func in ("abs", "pos") and len(inner.args) == 1
    return False
