"""Canonical matrix algebra: sums of products of factors, simplified with named facts.

A matrix expression is put into the form  Σₖ cₖ · F₁ F₂ ⋯  (a :class:`Lin`), where the
coefficients cₖ are sympy scalars and each factor is one of

* ``Mat(M)``   — a matrix symbol, its transpose, ``Inverse`` of one (``Q⁻¹``), or a Kronecker
  product A ⊗ B (symbolic.vec);
* ``Diag(t)``  — diag(t) for an elementwise vector t;
* ``Col(t)`` / ``Row(t)`` — the vector t as a column / row;
* ``Inv(L)``   — the inverse of a canonical matrix that has no simpler inverse.

Elementwise vectors t are *templates*: sympy scalar expressions in one placeholder per vector
(``z`` ↦ zᵢ), so z ∘ log z, 1/(1/z) = z and s ∘ s = s for a 0/1 indicator are ordinary scalar
algebra.  Reductions are scalars: Row(u) Col(v) = Σᵢ uᵢvᵢ becomes a *reduction symbol*, to which
facts such as 1ᵀz = 1 apply.  Products simplify pairwise (diag(u) diag(v) = diag(u ∘ v),
diag(u) v = u ∘ v, uᵀ v = Σ u∘v) and like terms are collected.  :func:`Algebra.to_sympy`
writes the result back in standard sympy classes (DiagMatrix, MatMul, Inverse, ...).
"""
from __future__ import annotations

import itertools

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from .canonical import Col, Diag, Facts, Inv, Lin, Mat, Row, Term, identity, scalar, zero
from .expr import Named, Scalar, as_sympy, unnest_fractions
from .extract import Extraction
from .printing import text
from .vec import Vec, kron_product, kron_terms
from .writer import SympyWriter


# --------------------------------------------------------------------------- the algebra
class Algebra(SympyWriter, Extraction):
    """Placeholders, reduction symbols and the simplifier for one derivation."""

    def __init__(self, facts: Facts | None = None):
        self.facts = facts or Facts()
        self.vectors: dict = {}        # placeholder -> (sympy vector, size)
        self.placeholder_of: dict = {}  # sympy vector -> placeholder
        self.reductions: dict = {}     # reduction symbol -> Lin (1×1, not folded)
        self.reduction_of: dict = {}   # key -> reduction symbol
        self.opaque: dict = {}         # opaque-vector placeholder -> Lin
        self.assumptions: dict = {}    # vector MatrixSymbol -> sympy assumptions of its entries
        self.maps: dict = {}           # symbol -> symbolic.operators.Map (p = softmax(u)), for calculus

    # ---- sympy → canonical
    def lin(self, e) -> Lin:
        """The canonical form of a sympy matrix expression (a scalar gives a 1×1 Lin)."""
        if not isinstance(e, MatrixExpr):
            return scalar(self.scalar(e))
        rows, cols = e.shape
        if isinstance(e, sp.ZeroMatrix):
            return zero(rows, cols)
        if isinstance(e, sp.Identity):
            return identity(rows)
        if isinstance(e, sp.OneMatrix):
            if cols == 1:
                return self._one(Col(sp.S.One, rows), e.shape)
            if rows == 1:
                return self._one(Row(sp.S.One, cols), e.shape)
            return self._one((Col(sp.S.One, rows), Row(sp.S.One, cols)), e.shape)
        if isinstance(e, sp.MatrixSymbol):
            if cols == 1:
                return self._one(Col(self.vector_placeholder(e), rows), e.shape)
            return self._one(Mat(e), e.shape)
        if isinstance(e, sp.Transpose):
            return self.transpose(self.lin(e.arg))
        if isinstance(e, sp.MatAdd):
            out = zero(rows, cols)
            for a in e.args:
                out = out + self.lin(a)
            return self.simplify(out)
        if isinstance(e, sp.MatMul):
            coeff = sp.Mul(*[self.scalar(a) for a in e.args if not isinstance(a, MatrixExpr)])
            mats = [self.lin(a) for a in e.args if isinstance(a, MatrixExpr)]
            return self.mul_all(*mats).scale(coeff)
        if isinstance(e, sp.HadamardProduct):
            return self.hadamard([self.lin(a) for a in e.args], e.shape)
        if isinstance(e, sp.HadamardPower):
            base = self.template_of(self.lin(e.base))
            return self.simplify(self._one(Col(base ** self.scalar(e.exp), rows), e.shape))
        if isinstance(e, ElementwiseApplyFunction):
            t = self.template_of(self.lin(e.expr))
            return self.simplify(self._one(Col(e.function(t), rows), e.shape))
        if isinstance(e, sp.DiagMatrix):
            t = self.template_of(self.lin(e.args[0]))
            return self.simplify(self._one(Diag(t, rows), e.shape))
        if isinstance(e, sp.Inverse):
            return self.inverse(self.lin(e.arg))[0]
        if isinstance(e, Named):
            return self.lin(e.definition)
        if isinstance(e, Vec):
            return self._one(Col(self.vector_placeholder(e), rows), e.shape)
        if isinstance(e, sp.KroneckerProduct):
            out = zero(rows, cols)
            for c, k in kron_terms(e):
                out = out + (self._one(Mat(k), e.shape) if isinstance(k, sp.KroneckerProduct) else self.lin(k)).scale(c)
            return self.simplify(out)
        raise NotImplementedError(f"no canonical form for {text(e)}")

    @staticmethod
    def _one(factors, shape) -> Lin:
        factors = factors if isinstance(factors, tuple) else (factors,)
        return Lin(tuple(shape), (Term(sp.S.One, factors),))

    def hadamard(self, lins, shape) -> Lin:
        """u ∘ v: elementwise templates multiply; one non-elementwise w gives diag(u) w."""
        if shape[1] != 1:
            raise NotImplementedError("elementwise products of matrices")
        pure, other = sp.S.One, []
        for lin in lins:
            t = self._pure_template(lin)
            if t is None:
                other.append(lin)
            else:
                pure *= t
        if not other:
            return self.simplify(self._one(Col(pure, shape[0]), shape))
        rest = other[0]
        for extra in other[1:]:
            pure *= self.template_of(extra)
        return self.mul(self._one(Diag(pure, shape[0]), (shape[0], shape[0])), rest)

    def _pure_template(self, v: Lin):
        total = sp.S.Zero
        for t in v.terms:
            if len(t.factors) == 1 and isinstance(t.factors[0], Col):
                total += t.coeff * t.factors[0].t
            else:
                return None
        return total

    def scalar(self, e) -> sp.Expr:
        """A sympy scalar with every ``Scalar(M)`` replaced by its simplified value."""
        e = as_sympy(e)
        atoms = [a for a in e.atoms(Scalar)]
        if not atoms:
            return e
        subs = {}
        for a in atoms:
            value = self.lin(a.matrix)
            subs[a] = self.as_scalar(value) if value.terms else sp.S.Zero
        return e.xreplace(subs)

    # ---- placeholders
    def placeholder(self, vector, size, assumptions=None) -> sp.Symbol:
        if vector in self.placeholder_of:
            return self.placeholder_of[vector]
        name = str(vector) if isinstance(vector, (sp.MatrixSymbol, Vec)) else f"v{len(self.vectors)}"
        p = sp.Dummy(name, real=True, **(assumptions or {}))
        self.vectors[p] = (vector, size)
        self.placeholder_of[vector] = p
        return p

    def vector_placeholder(self, v: sp.MatrixSymbol) -> sp.Symbol:
        return self.placeholder(v, v.shape[0], self.assumptions.get(v))

    def is_placeholder(self, s) -> bool:
        return s in self.vectors

    def placeholders_in(self, t) -> set:
        return {s for s in t.free_symbols if s in self.vectors}

    # ---- templates
    def simplify_template(self, t):
        """Normal form of an elementwise template, using 0/1 indicators (s ∘ s = s)."""
        t = as_sympy(t)
        tied = self._tied(t.free_symbols & self.facts.indicators)
        if tied:
            t = self._cases(t, tied)
        for a in sorted(t.free_symbols & self.facts.indicators, key=str):  # vector and scalar indicators
            if a in t.free_symbols:
                t0, t1 = t.subs(a, 0), t.subs(a, 1)
                if t0.has(sp.zoo, sp.nan) or t1.has(sp.zoo, sp.nan):
                    continue
                t = t0 * (1 - a) + t1 * a
                self.facts.use(("indicator", a))
        t = unnest_fractions(sp.expand(sp.powsimp(t)))
        if self.facts.disjoint and t.free_symbols & self.facts.indicators:
            t = self._disjoint(t)
        if self.facts.exclusive and t.free_symbols & self.facts.indicators:
            t = self._exclusive(t)
        return t

    def _tied(self, present) -> list:
        """The indicators of ``present`` that a fact ties to another one present (l ≤ x ≤ u, |w|)."""
        out = set()
        if not (self.facts.exclusive or self.facts.disjoint):  # the common case: nothing to tie
            return []
        for a, b in self.facts.exclusive | self.facts.disjoint:
            if a in present and b in present:
                out |= {a, b}
        return sorted(out, key=str)

    def _cases(self, t, inds):
        """t as Σ over the possible values v of the tied indicators of t(v)·Π(a or 1 − a): the values
        the facts exclude are left out, so 1/(s_hi + s_lo − 2) is fine although it is 1/0 at (1, 1)."""
        total = sp.S.Zero
        for values in itertools.product((0, 1), repeat=len(inds)):
            v = dict(zip(inds, values, strict=True))
            if any(v.get(a) == 0 and v.get(b) == 0 for a, b in self.facts.exclusive) or \
                    any(v.get(a) == 1 and v.get(b) == 1 for a, b in self.facts.disjoint):
                continue
            case = t.subs(v)
            if case.has(sp.zoo, sp.nan):
                return t  # 0 in a possible case: leave it to the per-indicator rule
            total += case * sp.Mul(*[a if v[a] else 1 - a for a in inds])
        for a in inds:
            self.facts.use(("indicator", a))
        for a, b in self.facts.exclusive:
            if a in inds and b in inds:
                self.facts.use(("exclusive", a, b))
        for a, b in self.facts.disjoint:
            if a in inds and b in inds:
                self.facts.use(("disjoint", a, b))
        return total

    def _disjoint(self, t):
        """Two constraints never inactive together (a·b = 0): the terms with both vanish."""
        terms = []
        for term in sp.Add.make_args(t):
            pair = _pair_in(term, self.facts.disjoint)
            if pair is None:
                terms.append(term)
            else:
                self.facts.use(("disjoint", *pair))
        return sp.Add(*terms)

    def _exclusive(self, t):
        """Two constraints that cannot both be active ((1 − a)(1 − b) = 0, e.g. l ≤ x ≤ u with
        l < u): a·b = a + b − 1, so a multilinear template has no product of such a pair."""
        changed = True
        while changed:
            changed = False
            terms = []
            for term in sp.Add.make_args(t):
                pair = _pair_in(term, self.facts.exclusive)
                if pair is None:
                    terms.append(term)
                    continue
                a, b = pair
                rest = sp.Mul(*[f for f in sp.Mul.make_args(term) if f not in (a, b)])
                terms.append(sp.expand(rest * (a + b - 1)))
                self.facts.use(("exclusive", a, b))
                changed = True
            t = sp.Add(*terms)
        return t

    def split_template(self, t):
        """t = Σ cₖ mₖ with cₖ free of placeholders: [(cₖ, mₖ)]."""
        out = []
        for term in sp.Add.make_args(self.simplify_template(t)):
            c, m = term.as_independent(*self.placeholders_in(term), as_Add=False)
            out.append((c, m))
        return out

    # ---- reductions
    def reduction(self, lin_1x1: Lin) -> sp.Expr:
        """A scalar symbol for a 1×1 chain (Σ u∘v, or uᵀAv), with known values applied."""
        (term,) = lin_1x1.terms
        key = term.factors
        if key not in self.reduction_of:
            label = _chain_label(term.factors)
            sym = sp.Dummy(label, real=True, **self._reduction_assumptions(term.factors))
            self.reduction_of[key] = sym
            self.reductions[sym] = Lin(lin_1x1.shape, (Term(sp.S.One, key),))
        sym = self.reduction_of[key]
        if sym in self.facts.reductions:
            self.facts.use(("reduction", sym))
            return self.facts.reductions[sym]
        return sym

    def _reduction_assumptions(self, factors):
        if len(factors) == 2 and isinstance(factors[0], Row) and isinstance(factors[1], Col):
            t = factors[0].t * factors[1].t
            if t.is_positive:
                return {"positive": True}
            if t.is_nonnegative:
                return {"nonnegative": True}
        return {}

    def vsum(self, t, size) -> sp.Expr:
        """Σᵢ tᵢ for a template t: linear, Σ 1 = n."""
        total = sp.S.Zero
        for c, m in self.split_template(t):
            if m == 1:
                total += c * size
            else:
                total += c * self.reduction(Lin((1, 1), (Term(1, (Row(sp.S.One, size), Col(m, size))),)))
        return total

    # ---- products
    def mul(self, a: Lin, b: Lin) -> Lin:
        shape = (a.shape[0], b.shape[1])
        terms = []
        for s, t in itertools.product(a.terms, b.terms):
            terms.append(Term(s.coeff * t.coeff, s.factors + t.factors))
        return self.simplify(Lin(shape, tuple(terms)))

    def mul_all(self, *lins: Lin) -> Lin:
        out = lins[0]
        for b in lins[1:]:
            out = self.mul(out, b)
        return out

    def transpose(self, a: Lin) -> Lin:
        terms = [Term(t.coeff, tuple(self.transpose_factor(f) for f in reversed(t.factors))) for t in a.terms]
        return self.simplify(Lin((a.shape[1], a.shape[0]), tuple(terms)))

    def transpose_factor(self, f):
        if isinstance(f, Diag):
            return f
        if isinstance(f, Col):
            return Row(f.t, f.size)
        if isinstance(f, Row):
            return Col(f.t, f.size)
        if isinstance(f, Inv):
            return Inv(self.transpose(f.lin))
        m = f.m
        if isinstance(m, sp.KroneckerProduct):  # (A ⊗ B)ᵀ = Aᵀ ⊗ Bᵀ
            return Mat(sp.KroneckerProduct(*[sp.transpose(a) for a in m.args]))
        if isinstance(m, sp.Transpose):
            return Mat(m.arg)
        if isinstance(m, sp.Inverse):
            inner = self.transpose_factor(Mat(m.arg))
            return Mat(sp.Inverse(inner.m))
        if m in self.facts.symmetric:
            self.facts.use(("symmetric", m))
            return f
        return Mat(sp.Transpose(m))

    # ---- simplification
    def simplify(self, a: Lin) -> Lin:
        collected: dict = {}
        for term in a.terms:
            for t in self.simplify_term(term):
                collected[t.factors] = collected.get(t.factors, 0) + t.coeff
        terms = []
        for factors, c in collected.items():
            c = as_sympy(c)  # an int where every term's coefficient was
            if c.free_symbols & self.facts.indicators:
                c = self.simplify_template(c)
            c = sp.cancel(sp.expand(c)) if c.free_symbols else c
            if c != 0:
                terms.append(Term(c, factors))
        terms.sort(key=lambda t: (len(t.factors), repr(t.factors)))  # a canonical order
        return Lin(a.shape, tuple(terms))

    def simplify_term(self, term: Term) -> list:
        """Pairwise product rules, then expand templates into monomials: a list of terms."""
        coeff, factors = term.coeff, list(term.factors)
        if coeff == 0:
            return []
        changed = True
        while changed:
            changed = False
            for i in range(len(factors)):
                f = factors[i]
                if isinstance(f, (Diag, Col, Row)):
                    t = self.simplify_template(f.t)
                    if t == 0:
                        return []
                    if t != f.t:
                        factors[i] = type(f)(t, f.size)
                        changed = True
                        break
                    if isinstance(f, Diag) and t == 1 and len(factors) > 1:
                        del factors[i]
                        changed = True
                        break
                if i + 1 < len(factors):
                    merged = self.pair(factors[i], factors[i + 1])
                    if merged is not None:
                        c, repl = merged
                        coeff *= c
                        factors[i:i + 2] = repl
                        changed = True
                        break
            if not changed:
                folded = self.fold_chain(factors)
                if folded is not None:
                    c, factors = folded
                    coeff *= c
                    changed = True
        # expand every template into monomials (scalar factors move to the coefficient)
        out = [Term(coeff, ())]
        for f in factors:
            if isinstance(f, (Diag, Col, Row)):
                parts = self.split_template(f.t)
                out = [Term(t.coeff * c, t.factors + (type(f)(m, f.size),)) for t in out for c, m in parts]
            else:
                out = [Term(t.coeff, t.factors + (f,)) for t in out]
        return [Term(t.coeff, _drop_identity(t.factors)) for t in out]

    def pair(self, f, g):
        """The rule for adjacent factors f g, as (scalar, [replacement factors]), or None."""
        if isinstance(f, Diag) and isinstance(g, Diag):
            return 1, [Diag(f.t * g.t, f.size)]
        if isinstance(f, Diag) and isinstance(g, Col):
            return 1, [Col(f.t * g.t, f.size)]
        if isinstance(f, Row) and isinstance(g, Diag):
            return 1, [Row(f.t * g.t, f.size)]
        if isinstance(f, Row) and isinstance(g, Col):
            return self.vsum(f.t * g.t, f.size), []
        if isinstance(f, Mat) and isinstance(g, Mat) and isinstance(g.m, sp.Inverse) and g.m.arg == f.m:
            return 1, []
        if isinstance(f, Mat) and isinstance(g, Mat) and isinstance(f.m, sp.KroneckerProduct) \
                and isinstance(g.m, sp.KroneckerProduct):
            prod = kron_product(f.m, g.m)
            lin = None if prod is None else self.lin(prod)
            if lin is not None and len(lin.terms) == 1:
                return lin.terms[0].coeff, list(lin.terms[0].factors)
        if isinstance(f, Mat) and isinstance(g, Mat) and isinstance(f.m, sp.Inverse) and f.m.arg == g.m:
            return 1, []
        return None

    def fold_chain(self, factors):
        """Fold a 1×1 sub-chain Row ⋯ Col (e.g. uᵀ A v) into a reduction symbol."""
        for i, f in enumerate(factors):
            if isinstance(f, Row):
                for j in range(i + 1, len(factors)):
                    if isinstance(factors[j], Row):
                        break
                    if isinstance(factors[j], Col):
                        if j == i + 1:
                            break
                        chain = tuple(factors[i:j + 1])
                        value = self.reduction(Lin((1, 1), (Term(1, chain),)))
                        return value, factors[:i] + factors[j + 1:]
        return None

    # ---- collapse: Σ cₖ diag(tₖ) + c I  →  diag(Σ cₖ tₖ + c)
    def as_diag(self, a: Lin):
        """The template t with a = diag(t), if a is diagonal; else None."""
        if a.shape[0] != a.shape[1]:
            return None
        total = sp.S.Zero
        for t in a.terms:
            if t.factors == ():
                total += t.coeff
            elif len(t.factors) == 1 and isinstance(t.factors[0], Diag):
                total += t.coeff * t.factors[0].t
            else:
                return None
        return self.simplify_template(total)

    def as_scalar(self, a: Lin):
        if not a.is_scalar:
            return None
        assert all(t.factors == () for t in a.terms), a
        return sp.Add(*[t.coeff for t in a.terms])

    # ---- inverses
    def inverse(self, a: Lin):
        """(inverse Lin, kind, condition) — kind in {'scalar', 'diagonal', 'symbol', 'general'}.

        ``condition`` is a sympy expression that must be nonzero (scalar/diagonal) or None.
        """
        if a.is_scalar:
            s = self.as_scalar(a)
            if s.free_symbols & self.facts.indicators:
                # case by case in the indicators (1/(s e^t + 2s − 1) = s/(e^t + 1) − (1 − s)): a
                # rational function of them could cancel a factor that is 0 in one of the cases
                return scalar(self.simplify_template(1 / s)), "scalar", s
            return scalar(sp.cancel(1 / s)), "scalar", s
        d = self.as_diag(a)
        if d is not None:
            inv = self.simplify_template(1 / d)
            n = a.shape[0]
            lin = self.simplify(Lin(a.shape, (Term(1, (Diag(inv, n),)),)))
            return lin, ("identity" if d.is_number else "diagonal"), d
        t = a.single()
        if t is not None and len(t.factors) == 1 and isinstance(t.factors[0], Mat):
            m = t.factors[0].m
            inv_m = m.arg if isinstance(m, sp.Inverse) else sp.Inverse(m)
            return Lin(a.shape, (Term(1 / t.coeff, (Mat(inv_m),)),)), "symbol", m
        if t is not None and len(t.factors) == 1 and isinstance(t.factors[0], Inv):
            return t.factors[0].lin.scale(1 / t.coeff), "symbol", None
        if t is not None and t.coeff != 1:
            inner, kind, cond = self.inverse(Lin(a.shape, (Term(1, t.factors),)))
            return inner.scale(1 / t.coeff), kind, cond
        return Lin(a.shape, (Term(1, (Inv(a),)),)), "general", None

    # ---- elementwise view of a vector
    def template_of(self, v: Lin) -> sp.Expr:
        """v as an elementwise template: Σ c·t for pure Col terms, else an opaque placeholder."""
        total = sp.S.Zero
        for t in v.terms:
            if len(t.factors) == 1 and isinstance(t.factors[0], Col):
                total += t.coeff * t.factors[0].t
            elif t.factors == () and v.shape == (1, 1):
                total += t.coeff
            else:
                return self.opaque_placeholder(v)
        return total

    def opaque_placeholder(self, v: Lin) -> sp.Symbol:
        key = ("opaque", v.terms)
        if key in self.placeholder_of:
            return self.placeholder_of[key]
        p = sp.Dummy(f"w{len(self.opaque)}", real=True)
        self.vectors[p] = (None, v.shape[0])
        self.placeholder_of[key] = p
        self.opaque[p] = v
        return p


def _pair_in(term, pairs):
    """The first pair (a, b) of ``pairs`` whose members are both plain factors of the monomial
    ``term`` (a·b·c; never inside a power or a fraction), or None."""
    factors = sp.Mul.make_args(term)
    return next(((a, b) for a, b in sorted(pairs, key=str) if a in factors and b in factors), None)


def _drop_identity(factors):
    """diag(1) is the identity: drop it (no factors at all means coeff · I)."""
    return tuple(f for f in factors if not (isinstance(f, Diag) and f.t == 1))


def _chain_label(factors) -> str:
    return "·".join(type(f).__name__ for f in factors)
