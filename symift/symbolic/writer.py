"""Canonical forms back to standard sympy classes (MatMul, MatAdd, DiagMatrix, Inverse, ...).

A mixin of :class:`symift.symbolic.algebra.Algebra`: it reads the algebra's placeholders
(``vectors``, ``opaque``) and reductions to write templates back as vector expressions.
"""
from __future__ import annotations

import itertools

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .canonical import Col, Diag, Lin, Mat, Row, Term
from .expr import Scalar, as_sympy


class SympyWriter:
    """``to_sympy`` and friends for an algebra (see the module docstring)."""

    def to_sympy(self, a: Lin):
        """Standard sympy classes: MatMul, MatAdd, DiagMatrix, Inverse, Identity, ..."""
        rows, cols = a.shape
        if a.is_scalar and all(t.factors == () for t in a.terms):
            return self.scalar_to_sympy(sp.Add(*[t.coeff for t in a.terms]))
        if a.is_zero:
            return sp.ZeroMatrix(rows, cols)
        terms = [self.term_to_sympy(t, a.shape) for t in compact(self, a).terms]
        return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)

    def term_to_sympy(self, t: Term, shape):
        coeff, factors = t.coeff, []
        for f in t.factors:  # −(s_lo∘s_hi) as a vector: the sign goes to the coefficient
            if isinstance(f, (Diag, Col, Row)):
                readable = self.readable_template(f.t)
                if readable != f.t and readable.could_extract_minus_sign():
                    coeff, f = -coeff, type(f)(-readable, f.size)
            factors.append(f)
        coeff = self.scalar_to_sympy(coeff)
        mats = [self.factor_to_sympy(f) for f in factors]
        if not mats:
            return coeff * sp.Identity(shape[0])
        return sp.MatMul(coeff, *mats) if coeff != 1 else (mats[0] if len(mats) == 1 else sp.MatMul(*mats))

    def factor_to_sympy(self, f):
        if isinstance(f, Mat):
            return f.m
        if isinstance(f, Diag):
            if f.t == 1:
                return sp.Identity(f.size)
            return sp.DiagMatrix(self.vector_to_sympy(f.t, f.size))
        if isinstance(f, Col):
            return self.vector_to_sympy(f.t, f.size)
        if isinstance(f, Row):
            return self.vector_to_sympy(f.t, f.size).T
        return sp.Inverse(self.to_sympy(f.lin))

    def scalar_to_sympy(self, c):
        c = self._readable_sums(as_sympy(c))
        if self.facts.exclusive and c.free_symbols & self.facts.indicators:  # scalar indicators
            c = self.readable_template(c)
        subs = {r: Scalar(self.to_sympy(self.reductions[r])) for r in c.free_symbols if r in self.reductions}
        return c.xreplace(subs) if subs else c

    def vector_to_sympy(self, t, size):
        """A template as a vector expression: Hadamard products, powers, elementwise functions."""
        t = self.readable_template(as_sympy(t))
        holders = self.placeholders_in(t)
        if not holders:
            return self.scalar_to_sympy(t) * sp.OneMatrix(size, 1)
        if t in self.vectors:
            if t in self.opaque:
                return self.to_sympy(self.opaque[t])
            return self.vectors[t][0]
        if isinstance(t, sp.Add):
            return sp.MatAdd(*[self.vector_to_sympy(a, size) for a in t.args])
        if isinstance(t, sp.Mul):
            c, rest = t.as_independent(*holders, as_Add=False)
            parts = [self.vector_to_sympy(a, size) for a in sp.Mul.make_args(rest)]
            v = parts[0] if len(parts) == 1 else sp.HadamardProduct(*parts)
            return v if c == 1 else self.scalar_to_sympy(c) * v
        if isinstance(t, sp.Pow) and not self.placeholders_in(t.exp):
            return sp.HadamardPower(self.vector_to_sympy(t.base, size), t.exp)
        if isinstance(t, sp.Function) and len(t.args) == 1:
            d = sp.Dummy("d")
            return ElementwiseApplyFunction(sp.Lambda(d, t.func(d)), self.vector_to_sympy(t.args[0], size))
        raise NotImplementedError(f"cannot write {t} as a vector expression")

    def _readable_sums(self, c):
        """n − 1ᵀs_lo − 1ᵀs_hi as −1ᵀ(s_lo∘s_hi) for exclusive indicators (see readable_template)."""
        if not self.facts.exclusive or not c.free_symbols & set(self.reductions):
            return c
        for a, b in sorted(self.facts.exclusive, key=str):
            size = self.vectors[a][1] if a in self.vectors else None
            if size is None:
                continue
            sums = {}
            for v in (a, b):
                key = (Row(sp.S.One, size), Col(v, size))
                sums[v] = self.reduction_of.get(key)
            if sums[a] is None or sums[a] not in c.free_symbols:
                continue
            both = self.reduction(Lin((1, 1), (Term(sp.S.One, (Row(sp.S.One, size), Col(a * b, size))),)))
            other = sums[b] if sums[b] is not None else sp.S.Zero
            candidate = sp.expand(c.subs(sums[a], both - other + size))  # Σa = Σ a∘b − Σb + n
            if _size(candidate) < _size(c):
                c = candidate
        return c

    def readable_template(self, t):
        """For two indicators a, b never 0 together (bounds l ≤ x ≤ u), the simplifier keeps templates
        linear in them (a·b = a + b − 1); written out, the form by the three possible cases
        t(1,1)·a∘b + t(0,1)·(1 − a) + t(1,0)·(1 − b) is used where it is shorter: s_lo∘s_hi, not
        s_lo + s_hi − 1."""
        for a, b in sorted(self.facts.exclusive, key=str):
            if a in t.free_symbols and b in t.free_symbols:
                def at(va, vb, a=a, b=b, t=t):
                    return sp.simplify(t.subs({a: va, b: vb}))
                cases = at(1, 1) * a * b + at(0, 1) * (1 - a) + at(1, 0) * (1 - b)
                if _size(cases) < _size(t):
                    t = cases
        factored = _factored(t)
        return factored if _size(factored) < _size(t) else t


def _factored(t):
    """t as a product where that is shorter, a sum factor written with its sign inside:
    x − x² → x ∘ (1 − x), not −x ∘ (x − 1)."""
    if not t.is_Add:
        return t
    f = sp.factor(t)
    if any(a.is_Pow and a.exp.is_negative for a in sp.Mul.make_args(f)):
        return t  # p^-1/2∘(…): a factor that is infinite where the sum it multiplies is 0 (entmax at p = 0)
    coeff, rest = f.as_coeff_Mul()
    sums = [a for a in sp.Mul.make_args(rest) if a.is_Add]
    if coeff < 0 and sums:
        rest = rest.xreplace({sums[0]: sp.expand(-sums[0])})
        coeff = -coeff
    return coeff * rest


def _size(t) -> tuple:
    return len(sp.Add.make_args(t)), sp.count_ops(t)


def compact(alg, a: Lin) -> Lin:
    """Merge terms that differ only in one template factor: I − diag(s) → diag(1 − s)."""
    terms = list(a.terms)
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(terms)), 2):
            m = _merge(alg, terms[i], terms[j])
            if m is not None:
                terms[i] = m
                del terms[j]
                merged = True
                break
    return Lin(a.shape, tuple(terms))


def _merge(alg, s: Term, t: Term):
    fs, ft = list(s.factors), list(t.factors)
    if not fs and len(ft) == 1 and isinstance(ft[0], Diag):
        fs = [Diag(sp.S.One, ft[0].size)]
    if not ft and len(fs) == 1 and isinstance(fs[0], Diag):
        ft = [Diag(sp.S.One, fs[0].size)]
    if len(fs) != len(ft):
        return None
    diff = [k for k in range(len(fs)) if fs[k] != ft[k]]
    if len(diff) != 1:
        return None
    k = diff[0]
    f, g = fs[k], ft[k]
    if type(f) is not type(g) or not isinstance(f, (Diag, Col, Row)):
        return None
    symbolic = s.coeff.free_symbols - set(alg.vectors) or t.coeff.free_symbols - set(alg.vectors)
    # symbolic coefficients merge when they are equal or opposite: their ratio cancels to ±1 (a
    # rational-function test, where sympy's simplify on both the sum and the difference took most
    # of a compile: 1342 calls, two thirds of the elastic net's)
    if symbolic and sp.cancel(t.coeff / s.coeff) not in (sp.S.One, sp.S.NegativeOne):
        return None
    if s.coeff.is_number and t.coeff.is_number:  # numbers go into the template: diag(1 − s)
        fs[k] = type(f)(sp.expand(s.coeff * f.t + t.coeff * g.t), f.size)
        return Term(sp.S.One, tuple(fs))
    ratio = sp.cancel(t.coeff / s.coeff)
    if ratio.free_symbols:
        return None
    fs[k] = type(f)(sp.expand(f.t + ratio * g.t), f.size)
    return Term(s.coeff, tuple(fs))
