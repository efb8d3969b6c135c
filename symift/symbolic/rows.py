"""Matrix variables whose problem separates by rows: one vector problem per row.

``var Z[m, k]`` with an objective that is a sum over the rows (``dot(Theta, Z)``, ``entropy(Z)``,
``sumsq(Z - Y)``, ``Z @ w`` for a shared ``w``) and constraints that hold row by row
(``Z @ ones(k) == 1``, ``Z >= 0``) is m independent problems in the rows zᵢ ∈ ℝᵏ: row-wise
softmax, sparsemax, entmax, box projections.  :func:`split_rows` rewrites such a problem into the
problem of one row — the same names, the rows dimension dropped: ``Theta[m, k]`` becomes
``Theta[k]`` (its row i), ``b[m]`` the scalar bᵢ, ``W[k, p]`` stays shared and ``Z @ W`` becomes
``W.T @ Z`` — which symift derives as any vector problem; the layer maps it over the rows
(O(mk) per tangent, never an mk × mk matrix), and every derived Jacobian holds row by row:
dZᵢ = (∂zᵢ/∂θᵢ) dΘᵢ.

Anything that couples rows — a left product ``X @ Z``, ``Z.T``, a reduction of Z inside a
constraint or a non-additive objective term (``log(sum(Z))``), a parameter with the rows
dimension in second place — is refused with the place in the file that couples them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import UnsupportedError
from ..language.model import (
    Binary,
    Call,
    Name,
    Neg,
    Number,
    Problem,
    ShapeChecker,
    Transpose,
    Variable,
    describe_shape,
    unparse,
)

#: Reductions that are sums over the entries, so a sum over the rows of the rows' reductions.
_ADDITIVE = ("sum", "sumsq", "norm1", "entropy", "dot")


@dataclass(frozen=True)
class Rows:
    """How a problem with a matrix variable splits into the problem of one row."""

    problem: Problem        # the user's problem (matrix variable)
    row_problem: Problem    # the problem of one row: same names, the rows dimension dropped
    variable: str           # the matrix variable Z
    dim: str | int          # its rows dimension m
    aligned: tuple          # the parameters with one row per row of Z (their first dimension is m)
    shared: tuple           # the parameters every row sees whole
    #: the objective is a sum over the rows (no term without Z added to it, which every row's
    #: problem would repeat): the optimal value is then the sum of the rows' values
    additive: bool = True

    @property
    def sentence(self) -> str:
        aligned = ", ".join(self.aligned)
        return (f"the problem separates by rows of {self.variable} ({self.dim} rows): row i of "
                f"{self.variable} solves the problem of one row, in which {self.variable}"
                + (f", {aligned}" if aligned else "")
                + " and the multipliers stand for their row i (an entry i of a vector of length "
                f"{self.dim})" + (f"; {', '.join(self.shared)} are shared by every row" if self.shared else "")
                + f". Every Jacobian holds row by row: d{self.variable}ᵢ = J d{(self.aligned or ('θ',))[0]}ᵢ.")


def has_matrix_variable(problem: Problem) -> bool:
    return any(len(v.shape) == 2 for v in problem.variables)


def split_rows(problem: Problem) -> Rows:
    """The row problem of a problem with one matrix variable (UnsupportedError where rows couple)."""
    return _Splitter(problem).split()


class _Splitter:
    def __init__(self, problem: Problem):
        self.problem = problem
        self.checker = ShapeChecker(problem)
        matrices = [v for v in problem.variables if len(v.shape) == 2]
        self.var = matrices[0]
        if len(problem.variables) > 1:
            other = next(v for v in problem.variables if v is not self.var)
            raise self.error(f"a matrix variable must be the problem's only variable (for now); "
                             f"'{other.name}' is declared too", other, f"'{other.name}' is a variable too")
        if problem.kind != "optimization":
            raise self.error("a matrix variable is supported in an optimization problem, not in 'solve'",
                             self.var, "a 'solve' block does not split by rows")
        self.m, self.k = self.var.shape
        if self.m == self.k:
            raise self.error(f"the rows and columns of '{self.var.name}' must have different sizes "
                             f"(both are {self.m}): a shared vector of length {self.k} and a column of "
                             "length m could not be told apart", self.var,
                             f"its rows and columns have the same size {self.m}")
        self.aligned = tuple(p.name for p in problem.params if p.shape[:1] == (self.m,))
        self.additive = True

    def error(self, message, node, reason=None):
        """An UnsupportedError; with a ``reason`` the rows do not separate, and symift.symbolic.coupled
        derives the problem with the matrix kept whole instead (Derivation)."""
        err = UnsupportedError(message, node.span, self.problem.source)
        err.reason = reason
        return err

    def couples(self, node, why="couples the rows"):
        reason = f"'{unparse(node)}' {why} of '{self.var.name}'"
        return self.error(f"{reason}: matrix variables are supported when the problem separates by rows", node,
                          reason)

    # ---- classification: "row" (one row per row of Z), "shared", "rowsum" (a sum over the rows)
    def shape(self, e):
        return self.checker.shape(e)

    def is_aligned(self, e) -> bool:
        s = self.shape(e)
        return len(s) > 0 and s[0] == self.m

    def row(self, e):
        """(row expression, kind)."""
        if isinstance(e, Number):
            return e, "shared"
        if isinstance(e, Name):
            shape = self.shape(e)
            if self.m in shape[1:]:
                raise self.error(f"'{e.id}' ({describe_shape(shape)}) has the rows dimension {self.m} of "
                                 f"'{self.var.name}' after its first place: it couples the rows", e,
                                 f"'{e.id}' has the rows dimension {self.m} of '{self.var.name}' after its first place")
            if e.id == self.var.name or e.id in self.aligned:
                return e, "row"
            return e, "shared"
        if isinstance(e, Neg):
            inner, kind = self.row(e.operand)
            return replace(e, operand=inner), kind
        if isinstance(e, Transpose):
            _, kind = self.row(e.operand)
            if kind != "shared":
                raise self.couples(e, "turns the rows into columns")
            return e, "shared"
        if isinstance(e, Call):
            return self.call(e)
        return self.binary(e)

    def call(self, e: Call):
        if e.func == "ones":
            if isinstance(e.args[0], Name) and e.args[0].id == self.m:
                return Number(e.span, "1"), "row"   # ones(m): 1 in every row
            return e, "shared"
        parts = [self.row(a) for a in e.args]
        kinds = {k for _, k in parts}
        if "rowsum" in kinds:
            raise self.couples(e, "applies a function to a sum over the rows")
        args = tuple(a for a, _ in parts)
        if "row" not in kinds:
            return e, "shared"
        if len(self.shape(e)) > 0:          # elementwise: row by row
            return replace(e, args=args), "row"
        if e.func in _ADDITIVE and all(self.is_aligned(a) for a in e.args):
            if len(self.shape(e.args[0])) == 1:      # a reduction of a column of length m: Σᵢ of scalars
                if e.func == "sum":
                    return args[0], "rowsum"
                if e.func == "sumsq":
                    return Binary(e.span, "^", args[0], Number(e.span, "2")), "rowsum"
                if e.func == "norm1":
                    return Call(e.span, "abs", args), "rowsum"
                if e.func == "dot":
                    return Binary(e.span, "*", *args), "rowsum"
                if e.func == "entropy":
                    return Neg(e.span, Binary(e.span, "*", args[0], Call(e.span, "log", args))), "rowsum"
            return replace(e, args=args), "rowsum"
        raise self.couples(e, f"takes {e.func}() over all the rows, which is not a sum over them,")

    def binary(self, e: Binary):
        (left, lk), (right, rk) = self.row(e.left), self.row(e.right)
        kinds = {lk, rk}
        if e.op == "@":
            if "rowsum" in kinds:
                raise self.couples(e)
            if rk == "row":
                raise self.couples(e, "multiplies from the left, which mixes the rows")
            if lk == "shared":
                return e, "shared"
            rshape = self.shape(e.right)
            if len(rshape) == 1:                     # row i of A @ w: aᵢᵀ w
                if isinstance(right, Call) and right.func == "ones":
                    return Call(e.span, "sum", (left,)), "row"
                return Call(e.span, "dot", (left, right)), "row"
            return Binary(e.span, "@", Transpose(e.span, right), left), "row"   # row i of A @ W: Wᵀ aᵢ
        out = replace(e, left=left, right=right)
        if "rowsum" in kinds:
            other = rk if lk == "rowsum" else lk
            if other == "row":
                raise self.couples(e)
            self.additive &= not (e.op in "+-" and other == "shared")
            if e.op in "+-" or (e.op == "*" and other == "shared" and self.shape(e) == ()) or \
                    (e.op == "/" and lk == "rowsum" and rk == "shared"):
                return out, "rowsum"
            raise self.couples(e, "combines a sum over the rows non-additively")
        return out, ("row" if "row" in kinds else "shared")

    # ---- the problem of one row
    def split(self) -> Rows:
        p = self.problem
        obj, kind = self.row(p.objective.expr)
        if kind == "row":  # pragma: no cover - the objective is a scalar
            raise self.couples(p.objective.expr)
        constraints = []
        for c in p.constraints:
            (lhs, lk), (rhs, rk) = self.row(c.lhs), self.row(c.rhs)
            if "rowsum" in (lk, rk):
                raise self.couples(c.lhs if lk == "rowsum" else c.rhs, "sums over the rows inside a constraint,")
            if self.var.name not in _names(c.lhs) | _names(c.rhs):
                raise self.error(f"the constraint '{unparse(c.lhs)} {c.relation} {unparse(c.rhs)}' does not "
                                 f"involve '{self.var.name}'", c)
            constraints.append(replace(c, lhs=lhs, rhs=rhs, shape=c.shape[1:] if c.shape[:1] == (self.m,) else c.shape))
        params = tuple(replace(q, shape=q.shape[1:]) if q.name in self.aligned else q for q in p.params)
        used = {s for q in params for s in q.shape} | set(self.var.shape[1:])
        dims = tuple(d for d in p.dims if d.name != self.m or d.name in used)
        variable = Variable(self.var.name, self.var.shape[1:], self.var.positive, self.var.span)
        row_problem = replace(p, dims=dims, params=params, variables=(variable,),
                              objective=replace(p.objective, expr=obj), constraints=tuple(constraints))
        shared = tuple(q.name for q in p.params if q.name not in self.aligned)
        return Rows(p, row_problem, self.var.name, self.m, self.aligned, shared, self.additive)



def _names(e) -> set:
    if isinstance(e, Name):
        return {e.id}
    if isinstance(e, (Neg, Transpose)):
        return _names(e.operand)
    if isinstance(e, Call):
        return set().union(*(_names(a) for a in e.args)) if e.args else set()
    if isinstance(e, Binary):
        return _names(e.left) | _names(e.right)
    return set()
