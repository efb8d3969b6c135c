"""The canonical form of a matrix expression: Σₖ cₖ · F₁ F₂ ⋯ (a :class:`Lin`).

The coefficients cₖ are sympy scalars and each factor is one of

* ``Mat(M)``   — a matrix symbol, its transpose, ``Inverse`` of one (``Q⁻¹``), or a Kronecker
  product A ⊗ B (symbolic.vec);
* ``Diag(t)``  — diag(t) for an elementwise vector t;
* ``Col(t)`` / ``Row(t)`` — the vector t as a column / row;
* ``Inv(L)``   — the inverse of a canonical matrix that has no simpler inverse.

Elementwise vectors t are *templates*: sympy scalar expressions in one placeholder per vector
(``z`` ↦ zᵢ); see :mod:`symift.symbolic.algebra` for the rules that simplify them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from .expr import as_sympy


@dataclass(frozen=True)
class Mat:
    m: sp.Basic

    @property
    def shape(self):
        return self.m.shape


@dataclass(frozen=True)
class Diag:
    t: sp.Expr
    size: sp.Expr

    @property
    def shape(self):
        return (self.size, self.size)


@dataclass(frozen=True)
class Col:
    t: sp.Expr
    size: sp.Expr

    @property
    def shape(self):
        return (self.size, sp.S.One)


@dataclass(frozen=True)
class Row:
    t: sp.Expr
    size: sp.Expr

    @property
    def shape(self):
        return (sp.S.One, self.size)


@dataclass(frozen=True)
class Inv:
    lin: Lin

    @property
    def shape(self):
        return self.lin.shape


@dataclass(frozen=True)
class Term:
    coeff: sp.Expr
    factors: tuple


@dataclass(frozen=True)
class Lin:
    """Σ coeff · product(factors), of a fixed shape; no factors means coeff · I."""

    shape: tuple
    terms: tuple = ()

    @property
    def is_zero(self):
        return not self.terms

    @property
    def is_scalar(self):
        return self.shape == (1, 1)

    def __add__(self, other: Lin) -> Lin:
        return Lin(self.shape, self.terms + other.terms)

    def __neg__(self) -> Lin:
        return self.scale(-1)

    def __sub__(self, other: Lin) -> Lin:
        return self + (-other)

    def scale(self, c) -> Lin:
        if c == 0:
            return Lin(self.shape)
        return Lin(self.shape, tuple(Term(t.coeff * c, t.factors) for t in self.terms))

    def single(self):
        """The only term, or None."""
        return self.terms[0] if len(self.terms) == 1 else None


def zero(rows, cols) -> Lin:
    return Lin((rows, cols))


def identity(size) -> Lin:
    return Lin((size, size), (Term(sp.S.One, ()),))


def scalar(c) -> Lin:
    return Lin((sp.S.One, sp.S.One), (Term(as_sympy(c), ()),) if c != 0 else ())


@dataclass
class Facts:
    """What the simplifier may use, each with the words the derivation cites."""

    symmetric: set = field(default_factory=set)       # MatrixSymbols with Mᵀ = M
    invertible: set = field(default_factory=set)      # MatrixSymbols known nonsingular (pd)
    indicators: set = field(default_factory=set)      # placeholders with values in {0, 1}
    exclusive: set = field(default_factory=set)       # pairs (a, b) of indicators with (1 − a)(1 − b) = 0
    disjoint: set = field(default_factory=set)        # pairs (a, b) of indicators with a·b = 0
    reductions: dict = field(default_factory=dict)    # reduction symbol -> value (1ᵀz = 1)
    cited: dict = field(default_factory=dict)         # fact key -> sentence
    used: list = field(default_factory=list)          # sentences used, in order

    trace: list = field(default_factory=list)         # every use, in order (per-step citations)

    def use(self, key):
        sentence = self.cited.get(key)
        if sentence:
            self.trace.append(sentence)
            if sentence not in self.used:
                self.used.append(sentence)
