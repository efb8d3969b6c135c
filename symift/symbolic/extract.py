"""The coefficient of a direction in a linear canonical form: J with a = J · d (Jacobians).

A mixin of :class:`symift.symbolic.algebra.Algebra`: ``coefficient`` reads the direction d off
each term — as the last column factor, an elementwise template, a scalar coefficient or inside a
reduction — and refuses (NotImplementedError) a term where d sits out of its reach (a matrix
factor such as A ⊗ B, an inverse, a vector that is not elementwise) rather than dropping it.
"""
from __future__ import annotations

import sympy as sp

from .canonical import Col, Diag, Inv, Lin, Mat, Row, Term
from .expr import as_sympy
from .printing import text


class Extraction:
    """``coefficient`` and its helpers (see the module docstring)."""

    def coefficient(self, a: Lin, direction, size) -> Lin:
        """The matrix J with a = J · d, for ``a`` linear in the direction ``d``.

        ``direction`` is a scalar symbol (J is a column block) or a placeholder of a vector
        direction of length ``size`` (J has ``size`` columns).
        """
        rows = a.shape[0]
        out = []
        vector = self.is_placeholder(direction)
        moving = self.vectors[direction][0] if vector else direction
        pending = list(a.terms)
        while pending:  # never drop a term whose direction is out of the extraction's reach
            t = pending.pop()
            if self._hidden(t, direction, moving):
                brought = self._bring_out(t, direction, moving)
                if brought is None:
                    raise NotImplementedError(
                        f"the direction {text(moving)} is inside a matrix factor or a vector that is not "
                        f"elementwise, in {text(self.to_sympy(Lin(a.shape, (t,))))}")
                pending.extend(self.simplify(Lin(a.shape, tuple(brought))).terms)
                continue
            out.extend(self._coefficient_term(t, direction, vector, size))
        return self.simplify(Lin((rows, size if vector else sp.S.One), tuple(out)))

    def _contains(self, lin: Lin, d, moving) -> bool:
        """Does the direction occur anywhere in ``lin`` (templates, opaque vectors, reductions, matrices)?"""
        return any(self._hidden(t, d, moving) or d in self._symbols(t) for t in lin.terms)

    def _hidden(self, t: Term, d, moving) -> bool:
        """Does d occur in t where the extraction cannot see it: in a matrix factor (A ⊗ B), an
        inverse, an opaque (not elementwise) vector, or a reduction over one of those?"""
        for f in t.factors:
            if isinstance(f, Mat) and f.m.has(moving) or isinstance(f, Inv) and self._contains(f.lin, d, moving):
                return True
        for q in self._symbols(t):
            inner = self.opaque.get(q) if q in self.opaque else self.reductions.get(q)
            if inner is not None and (q in self.opaque or any(self._hidden(u, d, moving) for u in inner.terms)) \
                    and self._contains(inner, d, moving):
                return True
        return False

    def _bring_out(self, t: Term, d, moving):
        """t with a non-elementwise vector w that holds d brought out as the last factors, where w
        enters a diagonal or the last column linearly: diag(c∘w) v = diag(c∘v) w, and c∘w = diag(c) w
        (the Jacobian of a row-wise softmax, diag(p) − ppᵀ in vec form); None where it does not."""
        factors = t.factors
        for i, f in enumerate(factors):
            if not isinstance(f, (Diag, Col)) or isinstance(f, Col) and i != len(factors) - 1:
                continue
            for q in sorted(f.t.free_symbols & set(self.opaque), key=str):
                if not self._contains(self.opaque[q], d, moving):
                    continue
                slope = sp.diff(f.t, q)
                if q in slope.free_symbols:
                    return None
                if isinstance(f, Diag):
                    if i == len(factors) - 1:
                        return None
                    tail = Lin((f.size, sp.S.One), (Term(sp.S.One, factors[i + 1:]),))
                    slope = slope * self.template_of(tail)
                out = [Term(t.coeff * u.coeff, factors[:i] + (Diag(slope, f.size),) + u.factors)
                       for u in self.opaque[q].terms]
                rest = sp.expand(f.t - sp.diff(f.t, q) * q)
                if rest != 0:
                    out.append(Term(t.coeff, factors[:i] + (type(f)(rest, f.size),) + factors[i + 1:]))
                return out
        return None

    @staticmethod
    def _symbols(t: Term) -> set:
        out = set(as_sympy(t.coeff).free_symbols)
        for f in t.factors:
            out |= getattr(f, "t", sp.S.Zero).free_symbols
        return out

    def _coefficient_term(self, t: Term, d, vector: bool, size) -> list:
        coeff, factors = t.coeff, t.factors
        addends = sp.Add.make_args(sp.expand(coeff))
        if len(addends) > 1:
            return [p for a in addends for p in self._coefficient_term(Term(a, factors), d, vector, size)]
        # the direction inside a reduction Σ (u∘d) or uᵀA d:  c·red·F = c · F · (chain)
        for red in [r for r in coeff.free_symbols if r in self.reductions]:
            chain = self.reductions[red].terms[0].factors
            if self.depends(chain, d):
                c = sp.cancel(coeff / red)
                if not (isinstance(chain[-1], Col) and d in chain[-1].t.free_symbols):
                    # a scalar equals its transpose: bring the direction to the right end
                    chain = tuple(self.transpose_factor(f) for f in reversed(chain))
                pieces = self._coefficient_term(Term(sp.S.One, chain), d, vector, size)
                return [Term(c * p.coeff, factors + p.factors) for p in pieces]
        if not vector:
            if d in coeff.free_symbols:
                return [Term(sp.diff(coeff, d), factors)]
            if factors and isinstance(factors[-1], Col) and d in factors[-1].t.free_symbols:
                last = factors[-1]
                return [Term(coeff, factors[:-1] + (Col(sp.diff(last.t, d), last.size),))]
            if any(d in getattr(f, "t", sp.S.Zero).free_symbols for f in factors):
                raise ValueError(f"cannot extract a scalar direction from {t}")
            return []
        if not factors:
            return []
        last = factors[-1]
        if isinstance(last, Col) and d in last.t.free_symbols:
            a = sp.diff(last.t, d)
            return [Term(coeff, factors[:-1] + (Diag(a, size),))]
        if isinstance(last, (Mat, Inv)) or not self._term_depends(t, d):
            if self._term_depends(t, d):
                raise ValueError(f"direction inside a matrix factor: {t}")
            return []
        if isinstance(last, Row):
            # a scalar chain ending in a row cannot hold the direction after folding
            return []
        # Diag(u ∘ d) · (rest) — rewrite as Diag(u ∘ rest) · d
        for i, f in enumerate(factors):
            if isinstance(f, Diag) and d in f.t.free_symbols:
                rest = Lin((f.size, sp.S.One), (Term(1, factors[i + 1:]),))
                w = self.template_of(rest)
                a = sp.diff(f.t, d)
                return [Term(coeff, factors[:i] + (Diag(a * w, size),))]
        raise ValueError(f"cannot extract the direction from {t}")

    def depends(self, factors, d) -> bool:
        return any(d in getattr(f, "t", sp.S.Zero).free_symbols for f in factors)

    def _term_depends(self, t: Term, d) -> bool:
        if d in t.coeff.free_symbols or self.depends(t.factors, d):
            return True
        return any(self.depends(self.reductions[r].terms[0].factors, d)
                   for r in t.coeff.free_symbols if r in self.reductions)
