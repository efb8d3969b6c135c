"""Model expressions → sympy: the vocabulary every later stage works in.

Vectors are ``n×1`` matrix expressions, matrices ``m×n``; scalars are sympy scalars.  The
constructs of the language map to standard sympy classes:

==============  ==========================================================
``a * b``       ``HadamardProduct`` for two vectors, scalar scaling otherwise
``a / b``       ``HadamardProduct(a, HadamardPower(b, -1))`` for vectors
``v ^ p``       ``HadamardPower(v, p)`` (p scalar)
``log(v)``      ``ElementwiseApplyFunction(log, v)`` (``v.applyfunc(log)``)
``sum(v)``      ``Scalar(1ᵀ v)``; ``dot(a, b)`` → ``Scalar(aᵀ b)``; ``quad(x, Q)`` → ``Scalar(xᵀ Q x)``
``entropy(v)``  ``−Scalar(1ᵀ (v ∘ log v))``; ``logsumexp(v)`` → ``log(Scalar(1ᵀ exp v))``
==============  ==========================================================

:class:`Scalar` wraps a 1×1 matrix expression as a scalar; it evaluates itself as soon as
its argument becomes explicit, so ``J.subs({n: 4, z: Matrix(...)}).as_explicit()`` gives numbers.
"""
from __future__ import annotations

import sympy as sp
from sympy.core.symbol import Str
from sympy.matrices.expressions.matexpr import MatrixExpr

from ..errors import Source, UnsupportedError
from ..language.model import OPERATORS, Binary, Call, Name, Neg, Number, Problem, Transpose, unparse
from .operators import NAMES, Kink, Map, build_operator


class Scalar(sp.Expr):
    """The scalar value of a 1×1 matrix expression, e.g. ``Scalar(1ᵀz)`` = Σᵢ zᵢ."""

    is_commutative = True
    is_real = True

    def __new__(cls, matrix):
        if not isinstance(matrix, MatrixExpr) and not isinstance(matrix, sp.MatrixBase):
            return matrix
        if matrix.shape != (1, 1):
            raise ValueError(f"Scalar() needs a 1×1 matrix expression, got shape {matrix.shape}")
        if isinstance(matrix, sp.MatrixBase):
            return matrix[0, 0]
        if not matrix.atoms(sp.MatrixSymbol) and all(s.is_Integer for s in _shape_symbols(matrix)):
            return sp.simplify(matrix.as_explicit()[0, 0]) if matrix.free_symbols else matrix.as_explicit()[0, 0]
        return super().__new__(cls, matrix)

    @property
    def matrix(self):
        return self.args[0]

    def _eval_subs(self, old, new):
        if self == old:
            return new
        return Scalar(self.matrix.subs(old, new))

    def doit(self, **hints):
        return Scalar(self.matrix.doit(**hints))

    def _sympystr(self, printer):
        return f"({printer._print(self.matrix)})"

    def _eval_derivative(self, s):  # sympy's own diff is not used by symift
        raise NotImplementedError("use symift.symbolic.calculus")


class Named(MatrixExpr):
    """A quantity the derivation names once (K, S₂): printed by its name, equal to its definition.

    ``doit``, ``as_explicit`` and ``subs`` go through the definition, so a closed form that uses
    named quantities evaluates like the fully written one (SPEC: ``J.subs(...).as_explicit()``).
    """

    def __new__(cls, name, definition):
        return super().__new__(cls, name if isinstance(name, Str) else Str(name), definition)

    @property
    def name(self) -> str:
        return self.args[0].name

    @property
    def definition(self):
        return self.args[1]

    @property
    def shape(self):
        return self.args[1].shape

    def _entry(self, i, j, **kwargs):
        return self.definition._entry(i, j, **kwargs)

    def doit(self, **hints):
        if not hints.get("deep", True):
            return self
        inner = self.definition.doit(**hints)
        return Named(self.args[0], inner) if isinstance(inner, MatrixExpr) else inner

    def _eval_transpose(self):
        return None

    def _sympystr(self, printer):
        named = getattr(printer, "_print_Named", None)
        return named(self) if named is not None else self.name


def written_out(e):
    """``e`` with every :class:`Named` quantity replaced by its definition."""
    if not isinstance(e, sp.Basic) or not e.has(Named):
        return e
    if isinstance(e, Named):
        return written_out(e.definition)
    return e.func(*[written_out(a) for a in e.args])


def _shape_symbols(m):
    """Every size occurring in the shapes of a matrix expression's sub-expressions."""
    sizes = set()
    for node in sp.preorder_traversal(m):
        if isinstance(node, MatrixExpr):
            sizes.update(as_sympy(d) for d in node.shape)
    return sizes


def as_sympy(x) -> sp.Basic:
    """A sympy object for an internal value (sympy object, int or float) — never for text."""
    if isinstance(x, sp.Basic):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"expected a sympy object or a number, got {type(x).__name__}")
    return sp.Integer(x) if isinstance(x, int) else sp.Float(x)


def ones(rows, cols=1) -> MatrixExpr:
    return sp.OneMatrix(rows, cols)


def is_matrix(e) -> bool:
    return isinstance(e, MatrixExpr)


def shape(e) -> tuple:
    return e.shape if is_matrix(e) else (1, 1)


_FUNCTIONS = {"log": sp.log, "exp": sp.exp, "sqrt": sp.sqrt, "sin": sp.sin, "cos": sp.cos,
              "tanh": sp.tanh, "abs": sp.Abs}


def number(text: str) -> sp.Expr:
    """An exact rational for a literal (0.5 → 1/2), a Float for extreme exponents."""
    mantissa, _, exponent = text.lower().partition("e")
    if exponent and abs(int(exponent)) > 30:
        return sp.Float(text)
    return sp.Rational(text)


class SympyBuilder:
    """Builds sympy objects for a problem's declarations and expressions."""

    def __init__(self, problem: Problem, gradient=None):
        self.problem = problem
        #: ∇ₓf for grad(f, x): ``gradient(f, x_symbol)`` (symbolic.calculus, given by the caller)
        self.gradient = gradient
        self.source: Source = problem.source
        self.dims = {d.name: sp.Symbol(d.name, integer=True, positive=True) for d in problem.dims}
        self.symbols: dict[str, sp.Basic] = dict(self.dims)
        for p in problem.params:
            assumptions = {"positive": True} if p.sign == ">0" else (
                {"nonnegative": True} if p.sign == ">=0" else {})
            self.symbols[p.name] = self.declare(p.name, p.shape, assumptions)
        for v in problem.variables:
            self.symbols[v.name] = self.declare(v.name, v.shape, {"positive": True} if v.positive else {})
        #: the indicators of the pieces of the operators met (symbolic.operators.Kink), in order
        self.kinks: list = []
        #: the smooth maps met in a 'solve' block, named: {symbol: symbolic.operators.Map}
        self.maps: dict = {}
        self._operators: dict = {}

    def size(self, s):
        return self.dims[s] if isinstance(s, str) else sp.Integer(s)

    def declare(self, name, shp, assumptions):
        if shp == ():
            return sp.Symbol(name, real=True, **assumptions)
        rows = self.size(shp[0])
        cols = self.size(shp[1]) if len(shp) == 2 else sp.Integer(1)
        return sp.MatrixSymbol(name, rows, cols)

    def unsupported(self, message, node):
        return UnsupportedError(message, node.span, self.source)

    def build(self, e):
        """The sympy expression of a model expression (shapes were checked by the model)."""
        if isinstance(e, Number):
            return number(e.text)
        if isinstance(e, Name):
            return self.symbols[e.id]
        if isinstance(e, Neg):
            return -self.build(e.operand)
        if isinstance(e, Transpose):
            x = self.build(e.operand)
            return x.T if is_matrix(x) else x
        if isinstance(e, Call):
            return self.call(e, [self.build(a) for a in e.args])
        a, b = self.build(e.left), self.build(e.right)
        return self.binary(e, a, b)

    def relation(self, lhs, rhs):
        """``lhs − rhs`` with scalars broadcast against vectors."""
        a, b = self.build(lhs), self.build(rhs)
        return broadcast_sub(a, b)

    def binary(self, e: Binary, a, b):
        op = e.op
        if op == "@":
            return scalarize(sp.MatMul(a, b))
        if op in "+-":
            a, b = broadcast(a, b)
            return a + b if op == "+" else a - b
        if op == "*":
            if is_matrix(a) and is_matrix(b):
                return sp.HadamardProduct(a, b)
            return a * b
        if op == "/":
            if is_matrix(b):
                inv = sp.HadamardPower(b, -1)
                return sp.HadamardProduct(a, inv) if is_matrix(a) else a * inv
            return a / b
        if op == "^":
            if is_matrix(b):
                raise self.unsupported("an elementwise power with a vector exponent is not supported", e)
            if is_matrix(a):
                return sp.HadamardPower(a, b)
            return a ** b
        raise self.unsupported(f"operator '{op}'", e)  # pragma: no cover

    def call(self, e: Call, args):
        f = e.func
        if f in OPERATORS or (f == "pos" and self.problem.kind == "root"):
            return self.operator(e, args)
        if f == "pos":  # only as an epigraph (symift.symbolic.lowering): max(a, 0) has a kink at 0
            raise self.unsupported("pos() is supported as c * sum(pos(a)) with c > 0 in a minimized objective "
                                   "(a hinge loss, rewritten as an epigraph); elsewhere its kink at 0 has no "
                                   "derivative", e)
        if f in _FUNCTIONS:
            x = args[0]
            return x.applyfunc(_FUNCTIONS[f]) if is_matrix(x) else _FUNCTIONS[f](x)
        if f == "ones":
            (size,) = e.args
            return ones(self.size(size.id if isinstance(size, Name) else int(size.text)))
        x = args[0]
        if f == "sum":
            return total(x)
        if f == "dot":
            if x.shape[1] != 1:  # ⟨A, B⟩ = Σᵢⱼ AᵢⱼBᵢⱼ for matrices
                return total(sp.HadamardProduct(x, args[1]))
            return Scalar(sp.MatMul(x.T, args[1]))
        if f == "sumsq":
            return Scalar(sp.MatMul(x.T, x)) if x.shape[1] == 1 else total(sp.HadamardPower(x, 2))
        if f == "norm2":
            return sp.sqrt(Scalar(sp.MatMul(x.T, x)))
        if f == "quad":
            return Scalar(sp.MatMul(x.T, args[1], x))
        if f == "entropy":
            return -total(sp.HadamardProduct(x, x.applyfunc(sp.log)))
        if f == "logsumexp":
            return sp.log(total(x.applyfunc(sp.exp)))
        if f in ("softmax", "proj_simplex", "proj_l2ball") and self.problem.kind == "root":  # a map, its rule
            return self.map_symbol(e, x, args[1] if f == "proj_l2ball" else None)
        if f in ("proj_simplex", "proj_l2ball"):
            raise self.unsupported(f"{f}() is an operator of fixed points: use it in a 'solve' block "
                                   "(x == T(x, θ)); in an objective write the simplex constraints", e)
        if f == "softmax":  # exp(v) / 1ᵀexp(v), smooth
            e_x = x.applyfunc(sp.exp)
            return sp.MatMul(sp.Pow(total(e_x), -1), e_x)
        if f == "grad":
            if self.gradient is None:  # pragma: no cover - every builder of a system passes one
                raise self.unsupported("grad() here", e)
            return self.gradient(x, self.symbols[e.args[1].id])
        if f == "norm1":
            return total(x.applyfunc(sp.Abs))
        raise self.unsupported(f"function '{f}'", e)  # pragma: no cover


    def operator(self, e: Call, args):
        """A prox / projection of a fixed point, written with its pieces' indicators (symbolic.operators)."""
        if self.problem.kind != "root":
            raise self.unsupported(f"{e.func}() is an operator of fixed points: use it in a 'solve' block "
                                   "(x == T(x, θ)); in an objective write the problem itself (norm1, bounds)", e)
        key = (e.span, unparse(e))
        if key not in self._operators:
            func = "relu" if e.func == "pos" else e.func
            taken = set(self.symbols) | {k.name for k in self.kinks}
            number = len({k.call for k in self.kinks}) + 1
            names = []
            for base in NAMES[func]:
                name = base if number == 1 else base.replace("s", f"s{number}", 1)
                while name in taken:
                    name += "_"
                names.append(name)
            value, kinks = build_operator(func, args, names, unparse(e), e)
            self.kinks += kinks
            self._operators[key] = value
        return self._operators[key]


    def map_symbol(self, e: Call, u, radius=None):
        """softmax(u) or proj_simplex(u) in a 'solve' block: a symbol p with its rule (calculus);
        the projection also gets its support indicator s (a Kink: 1[u − τ1 > 0], τ = max(u − p))."""
        key = (e.span, unparse(e))
        if key not in self._operators:
            written = unparse(e)
            name = self.fresh("p", True)
            symbol = sp.MatrixSymbol(name, *u.shape)  # softmax of a matrix: row by row
            support = threshold = None
            if e.func == "proj_simplex":
                threshold = sp.Symbol(self.fresh("tau", False), real=True)
                support = sp.MatrixSymbol(self.fresh("s", False), u.shape[0], 1)
                self.kinks.append(Kink(support.name, support, u - threshold * sp.OneMatrix(*u.shape),
                                       f"{support.name} = 1[{name} > 0], the support of {written}", written,
                                       value=symbol, node=e))
            if e.func == "proj_l2ball":  # one scalar indicator: s = 1[‖u‖ > r]
                threshold = sp.Symbol(self.fresh("rho", False), positive=True)  # ρ = ‖u‖
                support = sp.Symbol(self.fresh("s", False), real=True, nonnegative=True)
                self.kinks.append(Kink(support.name, support, threshold - radius,
                                       f"{support.name} = 1[|u| > r], outside the ball of {written}", written,
                                       value=symbol, node=e))
            self.maps[symbol] = Map(name, symbol, e.func, u, written, e, support=support, threshold=threshold,
                                    radius=radius)
            self._operators[key] = symbol
        return self._operators[key]

    def fresh(self, base: str, numbered: bool) -> str:
        """A name not taken by the problem, an indicator or a map: base, base2, ... (or base_)."""
        taken = set(self.symbols) | {k.name for k in self.kinks} | {m.name for m in self.maps.values()} | \
            {str(m.threshold) for m in self.maps.values() if m.threshold is not None}
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}{k}" if numbered else base + "_" * (k - 1)
        return name


def total(x) -> sp.Expr:
    """Σ of all entries: ``Scalar(1ᵀ x)`` for a vector, ``Scalar(1ᵀ X 1)`` for a matrix."""
    rows, cols = x.shape
    if cols == 1:
        return Scalar(sp.MatMul(ones(1, rows), x))
    return Scalar(sp.MatMul(ones(1, rows), x, ones(cols, 1)))


def scalarize(m):
    """A 1×1 matrix expression as a :class:`Scalar`; anything else unchanged."""
    if is_matrix(m) and m.shape == (1, 1):
        return Scalar(m)
    return m


def broadcast(a, b):
    """Scalars against matrices: ``c`` becomes ``c·𝟏``."""
    if is_matrix(a) and not is_matrix(b):
        b = b * ones(*a.shape) if b != 0 else sp.ZeroMatrix(*a.shape)
    elif is_matrix(b) and not is_matrix(a):
        a = a * ones(*b.shape) if a != 0 else sp.ZeroMatrix(*b.shape)
    return a, b


def broadcast_sub(a, b):
    a, b = broadcast(a, b)
    if is_matrix(b) and isinstance(b, sp.ZeroMatrix):
        return a
    if not is_matrix(b) and b == 0:
        return a
    return a - b


def unnest_fractions(t):
    """A reciprocal of a sum of reciprocals over one denominator: 1/(1/(1 − x) + 1/x) = x(1 − x).

    The derivative of −entropy(x) − entropy(1 − x) is such a harmonic sum; written over one
    denominator it is the form a person writes (sigmoid′ = x ∘ (1 − x)).  Kept only when shorter.
    """
    def nested(e):
        return (e.is_Pow and e.exp.is_negative and e.base.is_Add
                and any(a.is_Pow and a.exp.is_negative for b in e.base.args for a in sp.Mul.make_args(b)))

    def unnest(e):
        flat = sp.together(e)
        return flat if sp.count_ops(flat) < sp.count_ops(e) else e

    return t.replace(nested, unnest) if t.has(sp.Pow) else t
