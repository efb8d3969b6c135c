"""JAX code from derived expressions, keeping their structure.

:class:`Emitter` prints sympy expressions as lines of JAX code.  The central operation is
``apply(M, v)``: the code of the matrix expression ``M`` applied to ``v`` (a scalar, a vector,
or a matrix of columns), evaluated right to left so that structure is kept:

* diag(z) − z zᵀ applied to v is ``z * v - z * (z @ v)``: O(n), no n×n matrix;
* an ``Inverse(X)`` becomes a factorization (Cholesky when X is proved pd from declared-pd symbols, LU
  otherwise) computed once and reused by every solve;
* a full Jacobian is ``apply(J, I)``, formed only when asked for.

Generated code is imported from a module file (``load_module``); nothing is ``exec``-ed, and
only validated, mangled identifiers reach it — never user text.
"""
from __future__ import annotations

import builtins
import itertools
import keyword
import re
from collections import Counter

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from ..errors import UnsupportedError
from ..runtime import HELPERS
from ..symbolic.expr import Named, Scalar, as_sympy
from ..symbolic.printing import text
from ..symbolic.vec import Vec

#: Names the generated code uses itself; user names equal to these are mangled.
RESERVED = {"jax", "jnp", "np", "lax", "os", "functools", "partial", "annotations", "Callable", "NamedTuple",
            # arguments and locals of the generated functions and layer
            "tol", "maxiter", "backward", "backward_tol", "backward_maxiter", "solver", "callback",
            "checks", "strict", "init", "solve", "matvec",
            "dtype", "sizes", "offsets", "unpack", "blocks", "gs", "x0", "positive", "direction",
            "cuts", "steps", "res", "iters", "values", "F",
            # the runtime helpers the printed code calls
            *HELPERS}

_FUNCTIONS = {sp.log: "jnp.log", sp.exp: "jnp.exp", sp.sin: "jnp.sin", sp.cos: "jnp.cos",
              sp.tanh: "jnp.tanh", sp.Abs: "jnp.abs", sp.sign: "jnp.sign", sp.tan: "jnp.tan",
              sp.cosh: "jnp.cosh", sp.sinh: "jnp.sinh"}

ONE = "1.0"


def python_name(name: str, taken: set) -> str:
    """A valid identifier for ``name``: keywords, builtins and our own names get a '_' suffix."""
    if not name.isidentifier():
        raise ValueError(f"not an identifier: {name!r}")
    out = name
    while (keyword.iskeyword(out) or out in dir(builtins) or out in RESERVED or out.startswith("_")
           or out in taken):
        out = out + "_" if not out.startswith("_") else "u" + out
    taken.add(out)
    return out


def _flat_factors(args):
    """The matrix factors of a product with nested products flattened (None if a nested
    product carries a scalar coefficient)."""
    out = []
    for a in args:
        if not isinstance(a, sp.MatMul):
            out.append(a)
            continue
        c, inner = a.as_coeff_mmul()
        flat = _flat_factors(inner.args) if c == 1 else None
        if flat is None:
            return None
        out += flat
    return out


def _projected(term):
    """Y when ``term`` is −Y Cᵀ (C Y Cᵀ)⁻¹ C Y (one factor Y, any product C), else None."""
    if not isinstance(term, sp.MatMul):
        return None
    coeff, mats = term.as_coeff_mmul()
    f = _flat_factors(mats.args)
    if coeff != -1 or not f or f[0] != f[-1]:
        return None
    for i, k in enumerate(f[2:-2], start=2):
        if isinstance(k, sp.Inverse):
            ct, c = sp.MatMul(*f[1:i]).doit(), sp.MatMul(*f[i + 1:-1]).doit()
            if ct == c.T.doit() and k.arg == sp.MatMul(c, f[0], ct).doit():
                return f[0]
    return None


class Emitter:
    """Prints sympy expressions as JAX code, with temporaries for shared work."""

    def __init__(self, names: dict, pd: set = frozenset(), indent: str = "    "):
        self.names = dict(names)      # sympy symbol (Symbol / MatrixSymbol / Dummy) -> code
        self.pd = set(pd)             # MatrixSymbols declared positive definite
        self.positive: set = set()    # vector symbols known to be > 0 (interior-point iterates)
        #: 0/1 active-set indicators: s∘v is printed jnp.where(s != 0, v, 0), so that an entry of v
        #: that is infinite where s = 0 (p^-1/2 at an active bound p = 0) does not give inf·0 = NaN
        self.indicators: set = set()
        #: symbols that are not arguments, computed where first met: an indicator -> c, printed as
        #: 1[c > 0] (the pieces of an operator at the current values: symbolic.operators), or a
        #: smooth map -> (jax function, its argument), e.g. p = softmax(u)
        self.computed: dict = {}
        self.indent = indent
        self.lines: list[str] = []
        self.cache: dict = {}
        self.products: dict = {}      # (F, terms, v) -> name of F (Σ terms) v
        self.counter = itertools.count()
        #: names carrying tangents (the inputs of a custom_jvp rule, and what is computed from
        #: them): their solves stay jax.scipy's, which reverse mode can transpose; every other
        #: solve goes through _cho_solve/_lu_solve, cut across cores under vmap
        self.tangent_names: set = set()
        #: pd symbols applied as X⁻¹ v through an explicit inverse, computed once (a Newton step's
        #: parameter pivots: the loop of the interior point applies them at every iterate)
        self.inverted: set = set()

    # ---- statements
    def tmp(self, code: str, hint: str = "t") -> str:
        if code in self.cache:
            return self.cache[code]
        name = f"_{hint}{next(self.counter)}"
        if self.carries_tangents(code):
            self.tangent_names.add(name)
        self.lines.append(f"{self.indent}{name} = {code}")
        self.cache[code] = name
        return name

    def carries_tangents(self, code: str) -> bool:
        return bool(self.tangent_names) and not self.tangent_names.isdisjoint(re.findall(r"\w+", code))

    def body(self) -> str:
        return "\n".join(self.lines)

    # ---- sizes and scalars
    def size(self, s) -> str:
        s = as_sympy(s)
        return str(int(s)) if s.is_Integer else self.scalar(s)

    def scalar(self, e, extra: dict | None = None) -> str:
        """Code of a sympy scalar (0-d array or Python number)."""
        if extra:
            saved = dict(self.names)
            self.names.update(extra)
            try:
                return self.scalar(e)
            finally:
                self.names = saved
        if e in self.names or e in self.computed:
            return self.name(e)
        if isinstance(e, Scalar):
            return self.apply(e.matrix, ONE)
        if e.is_Integer:
            return f"{int(e)}"
        if e.is_Rational:
            return f"({e.p} / {e.q})"
        if e.is_Float:
            return repr(float(e))
        if e is sp.pi:
            return "jnp.pi"
        if e is sp.E:
            return "jnp.e"
        if isinstance(e, sp.Add):
            return "(" + " + ".join(self.scalar(a) for a in e.args) + ")"
        if isinstance(e, sp.Mul):
            num, den = [], []
            for a in e.args:
                if isinstance(a, sp.Pow) and a.exp.is_number and a.exp.is_negative:
                    den.append(self.scalar(a.base ** -a.exp))
                else:
                    num.append(self.scalar(a))
            top = " * ".join(num) if num else "1.0"
            return f"({top})" if not den else f"({top} / ({' * '.join(den)}))"
        if isinstance(e, sp.Pow):
            base = self.scalar(e.base)
            if e.exp == sp.Rational(1, 2):
                return f"jnp.sqrt({base})"
            if e.exp == -1:
                return f"(1.0 / {base})"
            return f"({base} ** {self.scalar(e.exp)})"
        if isinstance(e, sp.Function) and e.func in _FUNCTIONS and len(e.args) == 1:
            return f"{_FUNCTIONS[e.func]}({self.scalar(e.args[0])})"
        raise UnsupportedError(f"no JAX translation for {text(e)}")

    # ---- vectors and matrices
    def vec(self, e) -> str:
        """Code of an n×1 expression as a 1-D array (a scalar expression as 0-d)."""
        if not isinstance(e, MatrixExpr):
            return self.scalar(e)
        if e.shape[0] != 1 and e.shape[1] != 1:  # a matrix-valued block (a coupled matrix variable)
            code = self.entries(e)
            return code if code.isidentifier() else self.tmp(code, "m")
        code = self.apply(e, ONE)
        if isinstance(e, (sp.MatrixSymbol,)) or code.isidentifier():
            return code
        return self.tmp(code, "v")

    def name(self, symbol) -> str:
        """The code of a symbol: its argument name, or an indicator computed here from its condition."""
        if symbol not in self.names and symbol in self.computed:
            how = self.computed[symbol]
            if isinstance(how, tuple):
                function, *args = how
                self.names[symbol] = self.tmp(f"{function}({', '.join(self.vec(a) for a in args)})", "p")
            else:
                self.names[symbol] = self.tmp(f"jnp.heaviside({self.vec(how)}, 0.0)", "s")  # 1 where c > 0
        return self.names[symbol]

    def matrix(self, e) -> str:
        """Code of a matrix expression as a dense 2-D array (I applied to it)."""
        if isinstance(e, sp.MatrixSymbol):
            return self.name(e)
        return self.tmp(self.apply(e, f"jnp.eye({self.size(e.shape[1])})"), "m")

    def entries(self, e) -> str:
        """Code of a matrix expression as a 2-D array, built entrywise (sums, products right to
        left, elementwise operations) — for the m×k blocks of a coupled matrix variable."""
        if not isinstance(e, MatrixExpr):
            return self.scalar(e)
        rows, cols = e.shape
        if isinstance(e, Named):
            return self.entries(e.definition)
        if isinstance(e, sp.MatrixSymbol) or e in self.computed:
            return self.name(e) if cols != 1 else f"{self.name(e)}[:, None]"
        if isinstance(e, sp.Transpose):
            return f"{self.entries(e.arg)}.T"
        if isinstance(e, sp.Identity):
            return f"jnp.eye({self.size(rows)})"
        if isinstance(e, (sp.ZeroMatrix, sp.OneMatrix)):
            return f"jnp.{'zeros' if isinstance(e, sp.ZeroMatrix) else 'ones'}(({self.size(rows)}, {self.size(cols)}))"
        if isinstance(e, sp.MatAdd):
            return "(" + " + ".join(self.entries(a) for a in e.args) + ")"
        if isinstance(e, sp.MatMul):
            coeff, mats = e.as_coeff_mmul()
            acc = self.entries(mats.args[-1])
            for f in reversed(mats.args[:-1]):
                acc = f"({self.entries(f)} @ {acc})"
            return acc if coeff == 1 else f"({self.scalar(coeff)} * {acc})"
        if isinstance(e, sp.HadamardProduct):
            return "(" + " * ".join(self.entries(a) for a in e.args) + ")"
        if isinstance(e, sp.HadamardPower):
            return f"({self.entries(e.base)} ** {self.scalar(e.exp)})"
        if isinstance(e, ElementwiseApplyFunction):
            (var,) = e.function.variables
            return self.scalar(e.function.expr, extra={var: self.entries(e.expr)})
        if isinstance(e, sp.DiagMatrix):
            return f"jnp.diag({self.vec(e.args[0])})"
        if isinstance(e, sp.KroneckerProduct):
            return f"jnp.kron({', '.join(self.entries(a) for a in e.args)})"
        if cols == 1:
            return f"{self.vec(e)}[:, None]"
        raise UnsupportedError(f"no JAX translation for {text(e)}")

    def apply(self, M, v: str) -> str:
        """Code of M v, right to left; ``v`` is code of a scalar, vector or matrix of columns."""
        if not isinstance(M, MatrixExpr):
            s = self.scalar(M)
            return s if v == ONE else f"({s} * {v})"
        rows, cols = M.shape
        if isinstance(M, sp.MatrixSymbol):
            name = self.name(M)
            if cols == 1:
                return name if v == ONE else f"col({name}, {v})"
            return name if _is_eye(v) else f"({name} @ {v})"
        if isinstance(M, Named):  # a named quantity: its definition, one temporary per operand
            code = self.apply(M.definition, v)
            return code if code.isidentifier() else self.tmp(code, "named")
        if isinstance(M, sp.Transpose):
            X = M.arg
            if isinstance(X, Named):
                return self.apply(sp.Transpose(X.definition), v)
            if X.shape[1] == 1:
                return f"row({self.vec(X)}, {v})"
            if isinstance(X, sp.MatrixSymbol):
                return f"{self.names[X]}.T" if _is_eye(v) else f"({self.names[X]}.T @ {v})"
            pushed = X.T.doit(deep=False) if hasattr(X.T, "doit") else X.T
            if isinstance(pushed, sp.Transpose):
                raise UnsupportedError(f"no JAX translation for the transpose of {X}")
            return self.apply(pushed, v)
        if isinstance(M, sp.Identity):
            return v
        if isinstance(M, Vec):
            code = self.tmp(f"vec_cols({self.entries(M.arg)})", "v")
            return code if v == ONE else f"col({code}, {v})"
        if isinstance(M, sp.KroneckerProduct):  # (A ⊗ B) v = vec(B V Aᵀ), never the mk × mk matrix
            a, b = M.args[0], sp.KroneckerProduct(*M.args[1:]) if len(M.args) > 2 else M.args[1]
            return f"kron_apply({self.entries(a)}, {self.entries(b)}, {v})"
        if isinstance(M, sp.ZeroMatrix):
            return f"zeros({self.size(rows)}, {v})"
        if isinstance(M, sp.OneMatrix):
            if cols == 1:
                return f"col(jnp.ones({self.size(rows)}), {v})"
            if rows == 1:
                return f"ones_row({v})"
            return f"col(jnp.ones({self.size(rows)}), _ones_row({v}))"
        if isinstance(M, sp.DiagMatrix):
            if _is_eye(v):
                return f"jnp.diag({self.vec(M.args[0])})"
            return f"diag({self.vec(M.args[0])}, {v})"
        if isinstance(M, sp.MatMul):
            coeff, mats = M.as_coeff_mmul()
            f = _flat_factors(mats.args)
            if f is not None and _is_eye(v) and len(f) == 3 and f[0] == f[2].T and self._positive_diag(f[1]):
                gram = f"gram({self.apply(f[2], v)}, {self.vec(f[1].args[0])})"
                return gram if coeff == 1 else f"({self.scalar(coeff)} * {gram})"
            acc = v
            for f in reversed(mats.args):
                acc = self.apply(f, acc)
            return acc if coeff == 1 else f"({self.scalar(coeff)} * {acc})"
        if isinstance(M, sp.MatAdd):
            return self.apply_sum(M.args, v)
        if isinstance(M, sp.Inverse):
            return self.solve(M.arg, v)
        if isinstance(M, sp.MatPow) and M.exp.is_Integer:
            acc = v
            for _ in range(abs(int(M.exp))):
                acc = self.apply(M.base, acc) if M.exp > 0 else self.solve(M.base, acc)
            return acc
        if cols == 1 and isinstance(M, (sp.HadamardProduct, sp.HadamardPower, ElementwiseApplyFunction)):
            code = self.tmp(self.elementwise(M), "v")
            return code if v == ONE else f"col({code}, {v})"
        if rows == 1 and isinstance(M, (sp.HadamardProduct, sp.HadamardPower, ElementwiseApplyFunction)):
            return f"row({self.vec(_elementwise_column(M))}, {v})"   # (z∘z)ᵀ v without a matrix
        if isinstance(M, (sp.HadamardProduct, sp.HadamardPower, ElementwiseApplyFunction)) and v != ONE:
            code = self.tmp(self.entries(M), "m")  # an m×k elementwise matrix (coupled matrix variable)
            return code if _is_eye(v) else f"({code} @ {v})"
        raise UnsupportedError(f"no JAX translation for {text(M)}")

    def apply_sum(self, terms, v: str) -> str:
        """Σ Mₖ v with common left factors taken out: F A v + F B v = F (A + B) v, so each
        factorization or product with F is applied once (the Newton step has many such terms)."""
        groups: dict = {}
        for t in terms:
            args = t.args if isinstance(t, sp.MatMul) else (t,)
            mats = [a for a in args if isinstance(a, MatrixExpr)]
            if len(mats) < 2:
                groups.setdefault(None, []).append(t)
                continue
            scalars = [a for a in args if not isinstance(a, MatrixExpr)]
            groups.setdefault(mats[0], []).append(sp.MatMul(*scalars, *mats[1:]))
        codes = []
        for first, rests in groups.items():
            if first is None:
                codes += [self.apply(t, v) for t in rests]
            elif len(rests) == 1:
                codes.append(self.apply(sp.MatMul(first, rests[0]), v))
            else:
                codes.append(self.factored(first, rests, v))
        return codes[0] if len(codes) == 1 else "(" + " + ".join(codes) + ")"

    def factored(self, first, rests, v: str) -> str:
        """F (Σ rests) v, computed once: a block elimination meets F (−Σ rests) v too (the same
        Schur-complement column with the other sign), which is then the negated name."""
        key = (first, frozenset(Counter(rests).items()), v)
        if key in self.products:
            return self.products[key]
        negated = (first, frozenset(Counter(-r for r in rests).items()), v)
        if negated in self.products:
            return f"(-1 * {self.products[negated]})"
        inner = self.apply_sum(rests, v)
        code = self.apply(first, inner if inner.isidentifier() else self.tmp(inner, "s"))
        self.products[key] = code if code.isidentifier() else self.tmp(code, "s")
        return self.products[key]

    def elementwise(self, e) -> str:
        if isinstance(e, sp.HadamardProduct):
            # factors in one order, so u∘v and v∘u are one temporary
            masks = sorted((a for a in e.args if a in self.indicators), key=str)
            rest = [a for a in e.args if a not in self.indicators]
            if masks and rest and any(not self._finite(a) for a in rest):
                where = " & ".join(f"({self.vec(m)} != 0)" for m in masks)
                return f"jnp.where({where}, ({' * '.join(sorted(self.vec(a) for a in rest))}), 0.0)"
            return "(" + " * ".join(sorted(self.vec(a) for a in e.args)) + ")"
        if isinstance(e, sp.HadamardPower):
            base, p = self.vec(e.base), e.exp
            if p == -1:
                return f"(1.0 / {base})"
            if p == sp.Rational(1, 2):
                return f"jnp.sqrt({base})"
            return f"({base} ** {self.scalar(p)})"
        lam = e.function
        (var,) = lam.variables
        return self.scalar(lam.expr, extra={var: self.vec(e.expr)})

    def _finite(self, e) -> bool:
        """Is every entry of the vector expression finite wherever its symbols are (no negative
        powers, no functions with poles)?  Then s∘e needs no mask."""
        if isinstance(e, (sp.MatrixSymbol, sp.OneMatrix)):
            return True
        if isinstance(e, sp.HadamardPower):
            return e.exp.is_nonnegative is True and self._finite(e.base)
        if isinstance(e, (sp.HadamardProduct, sp.MatAdd)):
            return all(self._finite(a) for a in e.args if isinstance(a, MatrixExpr))
        if isinstance(e, sp.MatMul):
            return all(self._finite(a) for a in e.args if isinstance(a, MatrixExpr))
        if isinstance(e, sp.Transpose):
            return self._finite(e.arg)
        if isinstance(e, ElementwiseApplyFunction):
            return e.function.expr.func in (sp.exp, sp.sin, sp.cos, sp.tanh) and self._finite(e.expr)
        return False

    # ---- positive definiteness, for Cholesky instead of LU
    def is_pd(self, X) -> bool:
        """X is pd: a declared pd symbol, its inverse, P + (psd terms), or B P Bᵀ with P pd.

        B P Bᵀ is pd only for B of full row rank; where it is not, the system is singular
        anyway and the Cholesky factorization returns NaN, which the solver flags.
        """
        if X in self.pd:
            return True
        if isinstance(X, Named):
            return self.is_pd(X.definition)
        if isinstance(X, sp.Inverse):
            return self.is_pd(X.arg)
        if isinstance(X, sp.MatAdd):
            return self._sum_definite(X) == "pd"
        if isinstance(X, sp.MatMul):
            coeff, mats = X.as_coeff_mmul()
            f = mats.args
            return (coeff.is_positive and len(f) == 3 and f[0] == f[2].T
                    and (self.is_pd(f[1]) or self._positive_diag(f[1])))
        return False

    def is_psd(self, X) -> bool:
        if isinstance(X, sp.MatAdd):
            return self._sum_definite(X) is not None
        if self.is_pd(X) or self._positive_diag(X):
            return True
        if isinstance(X, sp.MatMul):
            coeff, mats = X.as_coeff_mmul()
            f = mats.args
            return (coeff.is_nonnegative and len(f) == 3 and f[0] == f[2].T
                    and (self.is_psd(f[1])))
        return False

    def _sum_definite(self, X) -> str | None:
        """A sum is "pd" (or "psd") when its terms are psd and one is pd, where two kinds of terms
        count together: Y − Y Cᵀ (C Y Cᵀ)⁻¹ C Y with Y pd is psd (Y^½ (I − a projector) Y^½), and
        the terms B Mᵢ Bᵀ with one outer factor B are B (Σ Mᵢ) Bᵀ.  So the multipliers' complement
        of a QP with equalities, diag(t/λ) + G Q⁻¹ Gᵀ − G Q⁻¹ Aᵀ (A Q⁻¹ Aᵀ)⁻¹ A Q⁻¹ Gᵀ, is pd."""
        terms, parts = list(X.args), []
        for a in list(terms):
            y = _projected(a)
            if y is not None and a in terms and y in terms and self.is_pd(y):
                terms.remove(a)
                terms.remove(y)
                parts.append("psd")
        groups: dict = {}
        for a in terms:
            coeff, mats = a.as_coeff_mmul() if isinstance(a, sp.MatMul) else (1, None)
            f = mats.args if mats is not None else ()
            if len(f) >= 3 and f[0] == f[-1].T:
                inner = f[1] if coeff == 1 and len(f) == 3 else sp.MatMul(coeff, *f[1:-1])
                groups.setdefault(f[0], []).append((a, inner))
            else:
                parts.append(self._definite(a))
        for group in groups.values():
            parts.append(self._definite(group[0][0] if len(group) == 1 else
                                        sp.MatAdd(*(inner for _, inner in group))))
        if None in parts:
            return None
        return "pd" if "pd" in parts else "psd"

    def _definite(self, X) -> str | None:
        if isinstance(X, sp.MatAdd):
            return self._sum_definite(X)
        if self.is_pd(X) or self._positive_diag(X):
            return "pd"
        return "psd" if self.is_psd(X) else None

    def _positive_diag(self, X) -> bool:
        return isinstance(X, sp.DiagMatrix) and self._positive_vector(X.args[0])

    def _positive_vector(self, e) -> bool:
        if e in self.positive:
            return True
        if isinstance(e, sp.HadamardProduct):
            return all(self._positive_vector(a) for a in e.args)
        if isinstance(e, sp.HadamardPower):
            return e.exp.is_integer and self._positive_vector(e.base)
        return False

    def factorization(self, X) -> tuple:
        """("cho" or "lu", the name of X's cached factorization, the name of X as a dense matrix)."""
        dense = self.matrix(X)
        if self.is_pd(X):
            return "cho", self.tmp(f"cho_factor({dense})", "chol"), dense
        return "lu", self.tmp(f"lu_factor({dense})", "lu"), dense

    def solve(self, X, v: str) -> str:
        """X⁻¹ v through a cached factorization (an explicit inverse only for the ``inverted``)."""
        if X.shape == (1, 1):
            return f"({v} / {self.scalar(Scalar(X))})"
        if X in self.inverted and not self.carries_tangents(v):
            return f"({self.tmp(f'pd_inverse({self.matrix(X)})', 'inv')} @ {v})"
        kind, fac, _ = self.factorization(X)
        if kind == "cho":
            return f"jax.scipy.linalg.cho_solve(({fac}, False), {v})" if self.carries_tangents(v) else \
                f"cho_solve({fac}, {v})"
        return f"jax.scipy.linalg.lu_solve({fac}, {v})" if self.carries_tangents(v) else f"lu_solve({fac}, {v})"


class AbsoluteEmitter(Emitter):
    """Prints entrywise upper bounds of |M| v instead of M v: every symbol and number by its
    absolute value, every function value by its modulus (its argument printed as it is), so a sum
    or product of terms becomes the sum or product of their moduli (≥ the modulus of the result).
    For the cancellation of a pivot (symift.runtime.status.pivot_condition)."""

    def __init__(self, names: dict, pd: set = frozenset(), indent: str = "    "):
        # dims (positive integer symbols) are sizes, not entries
        super().__init__({k: v if getattr(k, "is_integer", False) else f"jnp.abs({v})" for k, v in names.items()},
                         pd, indent)
        self.plain = Emitter(names, pd, indent)  # for function arguments: f(x), not f(|x|)
        self.plain.lines = self.lines
        self.plain.counter = self._counter

    @property
    def counter(self):
        return self._counter

    @counter.setter
    def counter(self, value):  # one numbering with the plain emitter: their temporaries share a scope
        self._counter = value
        if hasattr(self, "plain"):
            self.plain.counter = value

    def scalar(self, e, extra: dict | None = None) -> str:
        if extra is None and e not in self.names and isinstance(e, sp.Number):
            return super().scalar(abs(e))
        if extra is None and isinstance(e, sp.Function) and e.func in _FUNCTIONS:
            return f"jnp.abs({self.plain.scalar(e)})"
        return super().scalar(e, extra)

    def elementwise(self, e) -> str:
        if isinstance(e, ElementwiseApplyFunction):
            return f"jnp.abs({self.plain.elementwise(e)})"
        return super().elementwise(e)

    def factored(self, first, rests, v: str) -> str:
        """F (Σ rests) v without reusing F (−Σ rests) v negated: moduli have no sign."""
        key = (first, frozenset(Counter(rests).items()), v)
        if key not in self.products:
            inner = self.apply_sum(rests, v)
            code = self.apply(first, inner if inner.isidentifier() else self.tmp(inner, "s"))
            self.products[key] = code if code.isidentifier() else self.tmp(code, "s")
        return self.products[key]

    def solve(self, X, v: str) -> str:
        raise UnsupportedError("no modulus of an inverse")


def _is_eye(v: str) -> bool:
    """Is ``v`` the code of an identity matrix (applying M to it just forms M)?"""
    return v.startswith("jnp.eye(") and v.count("(") == 1


def _elementwise_column(M):
    """The column vector whose transpose is the elementwise row expression M."""
    if isinstance(M, sp.HadamardProduct):
        return sp.HadamardProduct(*[a.T for a in M.args])
    if isinstance(M, sp.HadamardPower):
        return sp.HadamardPower(M.base.T, M.exp)
    return ElementwiseApplyFunction(M.function, M.expr.T)
