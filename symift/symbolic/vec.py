"""A coupled matrix problem in vec form: the KKT system of vec(B), with Kronecker products.

Where a matrix variable's rows are coupled (``X.T @ B`` in the multiclass SVM dual), the KKT
system stays in matrix form (:mod:`symift.symbolic.coupled`).  Its block elimination needs the
unknowns as vectors: vec stacks the columns (column-major),

    vec(A M C) = (Cᵀ ⊗ A) vec(M),    vec(M + N) = vec(M) + vec(N),    vec(H ∘ M) = vec(H) ∘ vec(M),

applied to each residual block with M the factor that holds an unknown.  The result is a vector
KKT system in vec(B), vec(Λ) and the vector multipliers, which :class:`~symift.symbolic.analysis.
Analysis` eliminates as any other: the SVM dual's stationarity in B,
ν1ᵀ + Y − Λ − 1 − XXᵀ(Y − B)/λ, becomes (1 ⊗ I)ν + vec(Y) − vec(Λ) − 1 − (I ⊗ XXᵀ)(vec(Y) − vec(B))/λ,
and, with the row sums added to stationarity times their transpose (Analysis.augment), the pivot of
vec(B) is diag(s)((11ᵀ ⊗ I) + (I ⊗ XXᵀ)/λ) − diag(1 − s) on the support s = 1[B > 0].

Products of two unknowns (B Bᵀ) and transposes of an unknown (a commutation matrix) are not
lowered: :class:`NotImplementedError`, and the derivation keeps the tangent system.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from .expr import Named, Scalar, is_matrix


class Vec(MatrixExpr):
    """vec(A): the columns of the m×k matrix A stacked, an (m·k)×1 vector (entry i + m·j is Aᵢⱼ)."""

    def __new__(cls, arg):
        return super().__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        rows, cols = self.arg.shape
        return (rows * cols, sp.S.One)

    @property
    def name(self) -> str:
        return f"vec({self.arg})"

    def _entry(self, i, j, **kwargs):
        rows = self.arg.shape[0]
        return self.arg._entry(i % rows, i // rows, **kwargs)

    def doit(self, **hints):
        arg = self.arg.doit(**hints) if hints.get("deep", True) else self.arg
        if isinstance(arg, sp.MatrixBase):
            return sp.Matrix(arg.T.reshape(arg.rows * arg.cols, 1))
        return Vec(arg)

    def _eval_transpose(self):
        return None

    def _sympystr(self, printer):
        return f"vec({printer._print(self.arg)})"


def kron(a, b):
    """a ⊗ b, with I ⊗ I = I (for a and b not 1×1: see :func:`kron_of`)."""
    if isinstance(a, sp.Identity) and isinstance(b, sp.Identity):
        return sp.Identity(a.shape[0] * b.shape[0])
    if isinstance(a, sp.OneMatrix) and isinstance(b, sp.OneMatrix):  # 1ᵀ_k ⊗ 1ᵀ_m = 1ᵀ_{km}
        return sp.OneMatrix(a.shape[0] * b.shape[0], a.shape[1] * b.shape[1])
    return sp.KroneckerProduct(a, b)


def _split(m):
    """[(c, M)] with m = Σ c·M: sums expanded, scalar factors pulled out."""
    if isinstance(m, sp.ZeroMatrix):
        return []
    if isinstance(m, sp.MatAdd):
        return [t for a in m.args for t in _split(a)]
    if isinstance(m, sp.MatMul):
        c = sp.Mul(*[a for a in m.args if not is_matrix(a)])
        mats = [a for a in m.args if is_matrix(a)]
        return [(c, sp.MatMul(*mats) if len(mats) > 1 else mats[0])]
    return [(sp.S.One, m)]


def _scalar_of(m):
    """A 1×1 matrix as a scalar (𝟏₁ₓ₁ ↦ 1)."""
    c, rest = sp.S.One, m
    if isinstance(m, sp.MatMul):
        c = sp.Mul(*[a for a in m.args if not is_matrix(a)])
        mats = [a for a in m.args if is_matrix(a)]
        rest = mats[0] if len(mats) == 1 else sp.MatMul(*mats)
    if isinstance(rest, (sp.OneMatrix, sp.Identity)):
        return c
    return c * Scalar(rest)


def kron_of(*factors):
    """A₁ ⊗ A₂ ⊗ ⋯ with 1×1 factors as scalars and I ⊗ I = I."""
    c, out = sp.S.One, None
    for a in factors:
        if a.shape == (1, 1):
            c *= _scalar_of(a)
        else:
            out = a if out is None else kron(out, a)
    if out is None:
        return c
    return out if c == 1 else sp.MatMul(c, out)


def kron_terms(e):
    """[(c, K)]: a Kronecker product of sums as a sum of Kronecker products of single terms."""
    out = []
    for combo in itertools.product(*[_split(a) for a in e.args]):
        c = sp.Mul(*[t[0] for t in combo])
        k = kron_of(*[t[1] for t in combo])
        if isinstance(k, sp.MatMul):
            c, k = c * sp.Mul(*[a for a in k.args if not is_matrix(a)]), [a for a in k.args if is_matrix(a)][0]
        out.append((c, k))
    return out


def _mul(a, c):
    if isinstance(a, sp.Identity):
        return c
    if isinstance(c, sp.Identity):
        return a
    if isinstance(a, sp.OneMatrix) and isinstance(c, sp.OneMatrix):
        return sp.MatMul(a.shape[1], sp.OneMatrix(a.shape[0], c.shape[1]))
    return sp.MatMul(a, c)


def kron_product(f, g):
    """(A ⊗ B)(C ⊗ D) = AC ⊗ BD where the factors conform, else None."""
    if len(f.args) != 2 or len(g.args) != 2:
        return None
    (a, b), (c, d) = f.args, g.args
    if a.shape[1] != c.shape[0] or b.shape[1] != d.shape[0]:
        return None
    return kron_of(_mul(a, c), _mul(b, d))


def _product(mats, n):
    """The product of ``mats`` (an n×n identity when empty)."""
    if not mats:
        return sp.Identity(n)
    return mats[0] if len(mats) == 1 else sp.MatMul(*mats)


class Vectorizer:
    """vec(·) of the residual blocks, with ``moving`` the unknowns (see the module docstring)."""

    def __init__(self, moving):
        self.moving = set(moving)

    def has_unknown(self, e) -> bool:
        return any(e.has(u) for u in self.moving)

    def scalar(self, e):
        """A scalar expression with the reductions inside it (Scalar(1ᵀ B 1)) in vec form."""
        if isinstance(e, Scalar):
            return Scalar(self.vec(e.matrix))
        if not e.args or not self.has_unknown(e):
            return e
        return e.func(*[self.scalar(a) for a in e.args])

    def vec(self, e):
        if not is_matrix(e):
            return self.scalar(e)
        rows, cols = e.shape
        if cols == 1 and not self.has_unknown(e):
            return e
        if isinstance(e, sp.MatrixSymbol):
            return Vec(e) if cols != 1 else e
        if isinstance(e, sp.OneMatrix):
            return sp.OneMatrix(rows * cols, 1)
        if isinstance(e, sp.ZeroMatrix):
            return sp.ZeroMatrix(rows * cols, 1)
        if isinstance(e, Named):
            return self.vec(e.definition)
        if isinstance(e, sp.MatAdd):
            return sp.MatAdd(*[self.vec(a) for a in e.args])
        if isinstance(e, sp.HadamardProduct):
            return sp.HadamardProduct(*[self.vec(a) for a in e.args])
        if isinstance(e, sp.HadamardPower):
            return sp.HadamardPower(self.vec(e.base), self.scalar(e.exp))
        if isinstance(e, ElementwiseApplyFunction):
            return self.vec(e.expr).applyfunc(e.function)
        if isinstance(e, sp.Transpose):
            if e.arg.shape[1] == 1 and not self.has_unknown(e):  # vec(vᵀ) = v
                return e.arg
            if self.has_unknown(e):
                raise NotImplementedError(f"the transpose {e} of an unknown (vec of it needs a commutation "
                                          "matrix)")
            return Vec(e)
        if isinstance(e, sp.MatMul):
            return self.product(e)
        raise NotImplementedError(f"no vec rule for {type(e).__name__}")

    def product(self, e):
        """vec(L M R) = (Rᵀ ⊗ L) vec(M), M the factor with the unknown (else the last factor)."""
        coeff = sp.Mul(*[self.scalar(a) for a in e.args if not is_matrix(a)])
        mats = [a for a in e.args if is_matrix(a)]
        if len(mats) == 1:
            return sp.MatMul(coeff, self.vec(mats[0])) if coeff != 1 else self.vec(mats[0])
        holding = [i for i, a in enumerate(mats) if self.has_unknown(a)]
        if len(holding) > 1:
            raise NotImplementedError(f"a product of two unknowns in {e}")
        i = holding[0] if holding else max(i for i, a in enumerate(mats) if a.shape[1] != 1 or i == 0)
        m = mats[i]
        left = _product(mats[:i], m.shape[0])
        right = _product(mats[i + 1:], m.shape[1])
        factor = kron_of(sp.transpose(right), left)
        inner = self.vec(m)
        if not is_matrix(factor):  # a 1×1 left and right: a scalar
            out = inner if factor == 1 else sp.MatMul(factor, inner)
        else:
            out = inner if isinstance(factor, sp.Identity) else sp.MatMul(factor, inner)
        return sp.MatMul(coeff, out) if coeff != 1 else out


VEC_SENTENCE = ("the Jacobians are of vec(B), the columns of B stacked (column-major), with "
                "vec(A M C) = (Cᵀ ⊗ A) vec(M): block elimination needs the unknowns as vectors")


def augmented_sentence(variable: str, row: str) -> str:
    return (f"'{row}' (A vec(d{variable}) = r) is added, times Aᵀ, to 'stationarity in {variable}' before the "
            f"elimination (an augmented Lagrangian): the pivot of {variable} is then the Hessian plus AᵀA on the "
            "support, for a convex objective (H ⪰ 0) nonsingular wherever ∂F/∂x is, where the Hessian alone (a "
            "Kronecker product of a low-rank Gram matrix) may be singular")


def vec_unknown(symbol):
    """The vector an unknown stands for in vec form: vec(B) for a matrix, the symbol otherwise."""
    return Vec(symbol) if is_matrix(symbol) and symbol.shape[1] != 1 else symbol


def vectorize(system):
    """The KKT system with every matrix unknown replaced by its vec (NotImplementedError if a block
    has no vec form here); the residual blocks, unknowns and multipliers keep their names."""
    v = Vectorizer(u.symbol for u in system.unknowns)
    residual = [replace(b, expr=v.vec(b.expr)) for b in system.residual]
    unknowns = [replace(u, symbol=vec_unknown(u.symbol)) for u in system.unknowns]
    multipliers = [replace(m, symbol=vec_unknown(m.symbol), function=v.vec(m.function)) for m in system.multipliers]
    return replace(system, residual=residual, unknowns=unknowns, multipliers=multipliers)
