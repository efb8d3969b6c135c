"""The frozen Problem model: declarations, objective, constraints, equations, and shapes.

The parser (``symift.language.parse``) builds these objects; nothing else does.  Every node keeps its
source :class:`~symift.errors.Span`, so later stages can point at the text.

Shapes are tuples of sizes, a size being a dim name (``str``) or an ``int``:
``()`` is a scalar, ``("n",)`` a column vector, ``("m", "n")`` a matrix; ``x.T`` of a vector
is the row ``(1, "n")``.  A 1×1 result (``x.T @ y``) is a scalar.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import (
    DuplicateError,
    EquationCountError,
    ProblemError,
    ShapeError,
    Source,
    Span,
    UnknownNameError,
    UnsupportedError,
    did_you_mean,
)

Size = str | int

#: Entries of a layer's result besides the unknowns: the status of the solution (symift.runtime.layer).
STATUS_NAMES = ("residual", "converged", "cond", "margin", "regular", "value")
Shape = tuple  # tuple[Size, ...] of length 0, 1 or 2


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Expr:
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Number(Expr):
    text: str


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    """``left op right`` with op one of ``+ - * / @ ^``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple


@dataclass(frozen=True)
class Transpose(Expr):
    operand: Expr


# --------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Dim:
    name: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Param:
    """A parameter θ: shape, matrix attributes (symmetric, psd, pd), sign (``>0``, ``>=0``), or
    ``above``: the name of a parameter it exceeds entrywise (``param u[n] > l``)."""

    name: str
    shape: Shape
    attributes: frozenset = frozenset()
    sign: str | None = None
    span: Span = field(default=None, compare=False, repr=False)
    above: str | None = None


@dataclass(frozen=True)
class Variable:
    """A decision variable (or unknown of a root problem); ``positive`` for ``> 0``."""

    name: str
    shape: Shape
    positive: bool = False
    span: Span = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Objective:
    sense: str  # "minimize" | "maximize"
    expr: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Constraint:
    """``lhs relation rhs`` with relation ``<=``, ``>=`` or ``==``.

    ``multiplier`` is the name of its Lagrange multiplier: the label if there is one, else a
    stable default (``nu<k>`` for the k-th equality, ``lam<k>`` for the k-th inequality).
    ``shape`` is the shape of ``lhs − rhs`` (scalars broadcast).
    """

    lhs: Expr
    relation: str
    rhs: Expr
    multiplier: str
    labelled: bool
    shape: Shape
    span: Span = field(compare=False, repr=False)

    @property
    def is_equality(self) -> bool:
        return self.relation == "=="


@dataclass(frozen=True)
class Equation:
    """One equation ``lhs == rhs`` of a root problem."""

    lhs: Expr
    rhs: Expr
    label: str | None
    shape: Shape
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Problem:
    """A parsed, shape-checked problem: an optimization problem or a root problem."""

    source: Source = field(repr=False, compare=False)
    dims: tuple
    params: tuple
    variables: tuple
    objective: Objective | None = None
    constraints: tuple = ()
    equations: tuple = ()

    @property
    def kind(self) -> str:
        return "root" if self.objective is None else "optimization"

    @property
    def declarations(self) -> dict:
        return {d.name: d for d in (*self.dims, *self.params, *self.variables)}

    def param(self, name: str) -> Param:
        return {p.name: p for p in self.params}[name]

    def variable(self, name: str) -> Variable:
        return {v.name: v for v in self.variables}[name]

    def shape_of(self, expr: Expr) -> Shape:
        return ShapeChecker(self).shape(expr)

    def summary(self) -> str:
        """A one-screen, human-readable description of the problem."""
        lines = [f"{self.source.filename}: {self.kind} problem"]
        if self.dims:
            lines.append("  dims:       " + ", ".join(d.name for d in self.dims))
        for p in self.params:
            extra = " ".join(sorted(p.attributes)) + (f" {p.sign}" if p.sign else "") + \
                (f" > {p.above}" if p.above else "")
            lines.append(f"  param       {p.name}{format_shape(p.shape, ' ')}{' ' + extra if extra.strip() else ''}")
        for v in self.variables:
            lines.append(f"  var         {v.name}{format_shape(v.shape, ' ')}{' > 0' if v.positive else ''}")
        if self.objective is not None:
            lines.append(f"  objective:  {self.objective.sense} {unparse(self.objective.expr)}")
        for c in self.constraints:
            lines.append(
                f"  constraint  {c.multiplier}: {unparse(c.lhs)} {c.relation} {unparse(c.rhs)}"
                f"   [{describe_shape(c.shape)}]")
        for e in self.equations:
            lines.append(f"  equation    {unparse(e.lhs)} == {unparse(e.rhs)}   [{describe_shape(e.shape)}]")
        return "\n".join(lines)


def format_shape(shape: Shape, lead: str = "") -> str:
    return f"{lead}[{', '.join(map(str, shape))}]" if shape else ""


def describe_shape(shape: Shape) -> str:
    if shape == ():
        return "scalar"
    if len(shape) == 1:
        return f"vector[{shape[0]}]"
    return f"matrix[{shape[0]}, {shape[1]}]"


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "^": 4}


def unparse(e: Expr, outer: int = 0) -> str:
    """The expression as text in the language (for summaries and messages)."""
    if isinstance(e, Number):
        return e.text
    if isinstance(e, Name):
        return e.id
    if isinstance(e, Neg):
        s = "-" + unparse(e.operand, 3)
        return f"({s})" if outer > 1 else s
    if isinstance(e, Transpose):
        inner = unparse(e.operand, 5)
        # '2.T' would lex as the number '2.' followed by 'T': keep a number in parentheses
        return (f"({inner})" if isinstance(e.operand, Number) else inner) + ".T"
    if isinstance(e, Call):
        return f"{e.func}({', '.join(unparse(a) for a in e.args)})"
    p = _PRECEDENCE[e.op]
    right = p + 1 if e.op != "^" else p
    s = f"{unparse(e.left, p if e.op != '^' else p + 1)} {e.op} {unparse(e.right, right)}"
    return f"({s})" if p < outer else s


# --------------------------------------------------------------------------- functions
#: Elementwise functions: shape in = shape out.
ELEMENTWISE = ("log", "exp", "sqrt", "sin", "cos", "tanh", "abs", "pos")
#: Reductions of one vector (or matrix) argument to a scalar.
REDUCTIONS = ("sum", "norm2", "sumsq", "entropy", "logsumexp", "norm1")
#: Piecewise-linear operators of fixed points (prox and projections), elementwise in their first
#: argument; the others are scalars or of its shape.  name -> number of arguments.
OPERATORS = {"soft_threshold": 2, "relu": 1, "proj_box": 3}
MAPS = ("softmax", "proj_simplex", "proj_l2ball", "grad")  # vector maps, and grad(f, x) = ∇ₓf
#: Every function name of the language; none of them can name a declaration.
FUNCTIONS = ELEMENTWISE + REDUCTIONS + tuple(OPERATORS) + MAPS + ("dot", "quad", "ones")
#: Words of the language's statements ("subject to" is two); none of them can name a declaration.
KEYWORDS = ("dim", "param", "var", "minimize", "maximize", "subject", "to", "solve",
            "symmetric", "psd", "pd")


# --------------------------------------------------------------------------- shape checking
def as2d(shape: Shape) -> tuple:
    if shape == ():
        return (1, 1)
    if len(shape) == 1:
        return (shape[0], 1)
    return shape


def from2d(shape: tuple) -> Shape:
    rows, cols = shape
    if rows == 1 and cols == 1:
        return ()
    if cols == 1:
        return (rows,)
    return (rows, cols)


class ShapeChecker:
    """Computes and checks the shape of every expression node (recursive; the parser bounds depth)."""

    def __init__(self, problem_or_env):
        if isinstance(problem_or_env, Problem):
            env = {d.name: () for d in problem_or_env.dims}
            env.update({p.name: p.shape for p in problem_or_env.params})
            env.update({v.name: v.shape for v in problem_or_env.variables})
            self.source = problem_or_env.source
            self.dims = {d.name for d in problem_or_env.dims}
        else:
            env, self.source, self.dims = problem_or_env
        self.env = env

    def error(self, cls, message, node):
        return cls(message, node.span, self.source)

    def shape(self, e: Expr) -> Shape:
        if isinstance(e, Number):
            return ()
        if isinstance(e, Name):
            if e.id in self.env:
                return self.env[e.id]
            if e.id in FUNCTIONS:
                raise self.error(UnknownNameError, f"'{e.id}' is a function; call it as {e.id}(...)", e)
            raise self.error(UnknownNameError, f"unknown name '{e.id}'" + did_you_mean(e.id, self.env), e)
        if isinstance(e, Neg):
            return self.shape(e.operand)
        if isinstance(e, Transpose):
            rows, cols = as2d(self.shape(e.operand))
            return from2d((cols, rows))
        if isinstance(e, Call):
            return self.call(e)
        left, right = self.shape(e.left), self.shape(e.right)
        if e.op == "@":
            return self.matmul(e, left, right)
        if e.op == "^":
            if right != () and right != left:
                raise self.error(ShapeError, f"exponent must be a scalar (or match the base), "
                                 f"got {describe_shape(right)} for a {describe_shape(left)} base", e.right)
            return left
        return self.broadcast(e, left, right)

    def broadcast(self, e, left: Shape, right: Shape) -> Shape:
        if left == right or right == ():
            return left
        if left == ():
            return right
        verb = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}.get(e.op, "compare")
        hint = " (use @ for a matrix product)" if e.op == "*" and len(left) == 2 else ""
        raise self.error(ShapeError, f"cannot {verb} {describe_shape(left)} and {describe_shape(right)}: "
                         f"elementwise operations need equal shapes or a scalar{hint}", e)

    def matmul(self, e, left: Shape, right: Shape) -> Shape:
        if left == () or right == ():
            raise self.error(ShapeError, "'@' needs vectors or matrices on both sides; use '*' to scale "
                             f"(got {describe_shape(left)} @ {describe_shape(right)})", e)
        (r, k1), (k2, c) = as2d(left), as2d(right)
        if k1 != k2:
            raise self.error(ShapeError, f"matrix product {describe_shape(left)} @ {describe_shape(right)}: "
                             f"inner sizes {k1} and {k2} differ", e)
        return from2d((r, c))

    def call(self, e: Call) -> Shape:
        if e.func not in FUNCTIONS:
            if e.func in self.env:
                raise self.error(UnknownNameError, f"'{e.func}' is not a function", e)
            raise self.error(UnknownNameError, f"unknown function '{e.func}'" + did_you_mean(e.func, FUNCTIONS), e)
        arity = 2 if e.func in ("dot", "quad", "grad", "proj_l2ball") else OPERATORS.get(e.func, 1)
        if len(e.args) != arity:
            raise self.error(ShapeError, f"{e.func}() takes {arity} argument{'s' * (arity > 1)}, "
                             f"got {len(e.args)}", e)
        if e.func == "ones":
            return (self.size_argument(e.args[0]),)
        shapes = [self.shape(a) for a in e.args]
        if e.func in ELEMENTWISE:
            return shapes[0]
        if e.func in OPERATORS:
            for a, s in zip(e.args[1:], shapes[1:], strict=True):
                if s not in ((), shapes[0]):
                    raise self.error(ShapeError, f"{e.func}() needs its arguments after the first to be scalars "
                                     f"or of the first's shape {describe_shape(shapes[0])}, got "
                                     f"{describe_shape(s)}", a)
            return shapes[0]
        if e.func == "grad":
            return self.gradient(e, shapes)
        if e.func in ("norm2", "logsumexp", "proj_simplex", "proj_l2ball") and len(shapes[0]) != 1:
            raise self.error(ShapeError, f"{e.func}() needs a vector, got {describe_shape(shapes[0])}", e.args[0])
        if e.func == "softmax" and shapes[0] == ():  # of a matrix: of each row
            raise self.error(ShapeError, "softmax() needs a vector or a matrix (by rows), got scalar", e.args[0])
        if e.func == "proj_l2ball" and shapes[1] != ():
            raise self.error(ShapeError, f"proj_l2ball(v, r) needs a scalar r, got {describe_shape(shapes[1])}", e)
        if e.func in ("softmax", "proj_simplex", "proj_l2ball"):
            return shapes[0]
        if e.func in ("sum", "sumsq", "norm1", "entropy") and shapes[0] == ():
            raise self.error(ShapeError, f"{e.func}() needs a vector or matrix, got a scalar", e.args[0])
        if e.func == "dot":
            a, b = shapes
            if a == () or a != b:
                raise self.error(ShapeError, f"dot() needs two vectors (or matrices) of the same shape, got "
                                 f"{describe_shape(a)} and {describe_shape(b)}", e)
        if e.func == "quad":
            x, q = shapes
            if len(x) != 1 or q != (x[0], x[0]):
                raise self.error(ShapeError, f"quad(x, Q) needs a vector[k] and a matrix[k, k], got "
                                 f"{describe_shape(x)} and {describe_shape(q)}", e)
        return ()

    def gradient(self, e: Call, shapes) -> Shape:
        """grad(f, x): a scalar f, differentiated with respect to a declared scalar or vector x."""
        f, x = e.args
        if not isinstance(x, Name) or x.id in self.dims:
            raise self.error(ShapeError, "grad(f, x) differentiates with respect to a declared variable or "
                             "parameter: its second argument must be its name", x)
        if shapes[0] != ():
            raise self.error(ShapeError, f"grad(f, x) needs a scalar f, got {describe_shape(shapes[0])}", f)
        return shapes[1]

    def size_argument(self, e: Expr):
        """The size in ``ones(k)``: a dim's name or a positive integer."""
        if isinstance(e, Name) and self.env.get(e.id) == () and e.id in self.dims:
            return e.id
        if isinstance(e, Number) and e.text.isdigit() and int(e.text) > 0:
            return int(e.text)
        raise self.error(ShapeError, "ones() takes a size: a dim's name or a positive integer", e)


def size_count(shape: Shape, dims: dict) -> sp.Expr:
    """Number of scalar entries of a shape, as a sympy expression in the dims."""
    count = sp.Integer(1)
    for s in shape:
        count *= dims[s] if isinstance(s, str) else sp.Integer(s)
    return count


# --------------------------------------------------------------------------- building
def build_problem(source: Source, statements: list) -> Problem:
    """Check and assemble parsed statements into a :class:`Problem`.

    ``statements`` is a list of ``(kind, payload, span)`` from the parser.
    """
    return _Builder(source).build(statements)


class _Builder:
    def __init__(self, source: Source):
        self.source = source
        self.names: dict[str, Span] = {}
        self.dims, self.params, self.variables = [], [], []
        self.objective = None
        self.block = None  # None | "subject to" | "solve"
        self.block_span = None
        self.raw_constraints, self.raw_equations = [], []

    def error(self, cls, message, span):
        return cls(message, span, self.source)

    def declare(self, name: str, span: Span, what: str):
        if name in FUNCTIONS:
            raise self.error(DuplicateError, f"'{name}' is a function name and cannot name a {what}", span)
        if name in KEYWORDS:
            raise self.error(DuplicateError, f"'{name}' is a keyword and cannot name a {what}", span)
        if name in STATUS_NAMES and what in ("variable", "multiplier"):
            raise self.error(DuplicateError, f"'{name}' names an entry of the layer's result (the status and "
                             f"value of a solution: {', '.join(STATUS_NAMES)}) and cannot name a {what}", span)
        if name in self.names:
            first = self.names[name]
            raise self.error(DuplicateError, f"'{name}' is already declared (line {first.line})", span)
        self.names[name] = span

    def build(self, statements) -> Problem:
        if not statements:
            raise self.error(ProblemError, "empty problem: expected declarations and a 'minimize', "
                             "'maximize' or 'solve' block", Span(1, 1))
        for kind, payload, span in statements:
            getattr(self, "on_" + kind)(payload, span)
        return self.finish(statements[-1][2])

    def check_size(self, size, span):
        if isinstance(size, str) and size not in {d.name for d in self.dims}:
            known = [d.name for d in self.dims]
            raise self.error(UnknownNameError, f"undeclared dim '{size}' (declare it with 'dim {size}')"
                             + did_you_mean(size, known), span)
        if isinstance(size, int) and size < 1:
            raise self.error(ShapeError, f"sizes must be positive, got {size}", span)

    def in_header(self, span, what):
        if self.block is not None or self.objective is not None:
            raise self.error(ProblemError, f"{what} must come before the objective and constraints", span)

    def on_dim(self, names, span):
        self.in_header(span, "declarations")
        for name, nspan in names:
            self.declare(name, nspan, "dim")
            self.dims.append(Dim(name, nspan))

    def on_param(self, p, span):
        self.in_header(span, "declarations")
        name, nspan, shape, sizespans, attrs, sign, sign_span = p
        above = None
        if sign not in (None, ">0", ">=0"):
            above, sign = sign[1:], None
            other = next((q for q in self.params if q.name == above), None)
            if other is None:
                raise self.error(ProblemError, f"'{name} > {above}': '{above}' must be a parameter declared "
                                 "before it", sign_span)
            if other.shape not in (shape, ()):
                raise self.error(ShapeError, f"'{name} > {above}' compares {describe_shape(shape)} with "
                                 f"{describe_shape(other.shape)}: the shapes must agree (or '{above}' be a scalar)",
                                 sign_span)
            if other.attributes or attrs:
                raise self.error(ProblemError, f"'{name} > {above}' orders vectors or scalars, not matrices",
                                 sign_span)
        self.declare(name, nspan, "param")
        for s, sspan in zip(shape, sizespans, strict=False):
            self.check_size(s, sspan)
        for attr, aspan in attrs:
            if len(shape) != 2 or shape[0] != shape[1]:
                raise self.error(ShapeError, f"'{attr}' needs a square matrix parameter, but '{name}' is "
                                 f"{describe_shape(shape)}", aspan)
        self.params.append(Param(name, shape, frozenset(a for a, _ in attrs), sign, nspan, above))

    def on_var(self, v, span):
        self.in_header(span, "declarations")
        name, nspan, shape, sizespans, sign, sign_span = v
        if sign not in (None, ">0", ">=0"):
            raise self.error(ProblemError, f"a variable takes '> 0' only; write a bound '{name} {sign[0]}= "
                             f"{sign[1:]}' under 'subject to' instead", sign_span)
        self.declare(name, nspan, "variable")
        for s, sspan in zip(shape, sizespans, strict=False):
            self.check_size(s, sspan)
        if sign == ">=0":
            raise self.error(ProblemError, "a variable takes '> 0' (strictly positive solutions); "
                             f"write the constraint '{name} >= 0' under 'subject to' instead", sign_span)
        self.variables.append(Variable(name, shape, sign == ">0", nspan))

    def on_objective(self, payload, span):
        sense, expr = payload
        if self.objective is not None:
            raise self.error(ProblemError, "a problem has one objective "
                             f"(the first is on line {self.objective.span.line})", span)
        if self.block == "solve":
            raise self.error(ProblemError, "a 'solve' problem has no objective", span)
        self.objective = Objective(sense, expr, span)

    def on_subject_to(self, _, span):
        if self.objective is None:
            raise self.error(ProblemError, "'subject to' needs a 'minimize' or 'maximize' line before it", span)
        if self.block is not None:
            raise self.error(ProblemError, f"a second '{self.block}' block", span)
        self.block, self.block_span = "subject to", span

    def on_solve(self, _, span):
        if self.objective is not None:
            raise self.error(ProblemError, "a problem is either an optimization problem or a 'solve' "
                             "block, not both", span)
        if self.block is not None:
            raise self.error(ProblemError, f"a second '{self.block}' block", span)
        self.block, self.block_span = "solve", span

    def on_constraint(self, payload, span):
        label, lspan, lhs, relation, rhs = payload
        if self.block is None:
            raise self.error(ProblemError, "a constraint or equation must be inside a 'subject to' "
                             "or 'solve' block", span)
        if label is not None:
            self.declare(label, lspan, "multiplier" if self.block == "subject to" else "equation label")
        if self.block == "solve":
            if relation != "==":
                raise self.error(ProblemError, f"a 'solve' block holds equations (==), not '{relation}'", span)
            self.raw_equations.append((label, lhs, rhs, span))
        else:
            self.raw_constraints.append((label, lhs, relation, rhs, span))

    def finish(self, last_span) -> Problem:
        if not self.variables:
            raise self.error(ProblemError, "no variables: declare the unknowns with 'var'", last_span)
        if self.objective is None and self.block != "solve":
            raise self.error(ProblemError, "no problem: expected a 'minimize', 'maximize' or 'solve' block",
                             last_span)
        env = {d.name: () for d in self.dims}
        env.update({p.name: p.shape for p in self.params})
        env.update({v.name: v.shape for v in self.variables})
        checker = ShapeChecker((env, self.source, {d.name for d in self.dims}))
        if self.objective is not None:
            shape = checker.shape(self.objective.expr)
            if shape != ():
                raise self.error(ShapeError, f"the objective must be a scalar, got {describe_shape(shape)}",
                                 self.objective.expr.span)
        constraints = self.constraints(checker)
        equations = self.equations(checker)
        problem = Problem(self.source, tuple(self.dims), tuple(self.params), tuple(self.variables),
                          self.objective, tuple(constraints), tuple(equations))
        if problem.kind == "root":
            self.check_counts(problem)
        return problem

    def relation_shape(self, checker, lhs, rhs, span) -> Shape:
        node = Binary(span, "==", lhs, rhs)
        shape = checker.broadcast(node, checker.shape(lhs), checker.shape(rhs))
        if len(shape) == 2 and not any(len(v.shape) == 2 for v in self.variables):
            raise self.error(UnsupportedError, f"matrix-valued constraints are supported on a matrix variable "
                             f"only ({describe_shape(shape)}); write them per column", span)
        return shape

    def constraints(self, checker) -> list:
        out, counters, taken = [], {"==": 0, "ineq": 0}, set(self.names)
        for label, lhs, relation, rhs, span in self.raw_constraints:
            shape = self.relation_shape(checker, lhs, rhs, span)
            key = "==" if relation == "==" else "ineq"
            counters[key] += 1
            name = label
            if name is None:
                name = f"{'nu' if key == '==' else 'lam'}{counters[key]}"
                while name in taken:  # a user name took the default: keep it stable, add '_'
                    name += "_"
                taken.add(name)
            out.append(Constraint(lhs, relation, rhs, name, label is not None, shape, span))
        return out

    def equations(self, checker) -> list:
        return [Equation(lhs, rhs, label, self.relation_shape(checker, lhs, rhs, span), span)
                for label, lhs, rhs, span in self.raw_equations]

    def check_counts(self, problem: Problem):
        dims = {d.name: sp.Symbol(d.name, integer=True, positive=True) for d in problem.dims}
        unknowns = sum((size_count(v.shape, dims) for v in problem.variables), sp.Integer(0))
        equations = sum((size_count(e.shape, dims) for e in problem.equations), sp.Integer(0))
        if not problem.equations:
            raise self.error(EquationCountError, "the 'solve' block has no equations", self.block_span)
        if sp.expand(unknowns - equations) != 0:
            raise self.error(EquationCountError, f"the 'solve' block has {equations} scalar equation(s) "
                             f"for {unknowns} unknown(s); a root problem needs as many equations as "
                             "unknowns", self.block_span)
