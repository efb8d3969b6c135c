"""Closed forms as a person writes them: common factors out of sums, long quantities named once.

The canonical algebra keeps a result expanded, Σₖ cₖ F₁F₂⋯ (:mod:`symift.symbolic.canonical`).
By hand, OptNet's dz/dh is one product, −K Gᵀ S₂⁻¹ diag(1 − s), with K = Q⁻¹ − Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹AQ⁻¹
and S₂ the Schur complement of the last pivot, each written once.  Two exact rules give that form:

* **A factor shared by a group of terms.**  Splitting each term of the group at a common factor X,
  Σ c_{LR} L X R = (Σ a_L L) X (Σ b_R R) whenever the table c_{LR} = a_L b_R has rank one (a common
  prefix or suffix is the case of a single L or R).  The split that removes most factors goes
  first, then each side is factored the same way.  A split that would leave I − (…) in a sum is
  not taken: Q⁻¹ − Q⁻¹X stays as it is (that is K), but S⁻¹ diag(s) − S⁻¹ = S⁻¹ diag(s − 1).
* **Names.**  The argument of an inverse that has no simpler form is a Schur complement of the
  block elimination: S_k, numbered in the order the elimination meets it, as in the LaTeX
  document.  A sum met more than once across the results and the Schur complements is K (K₁, K₂,
  … when there are several).  Only long quantities are named; (A Q⁻¹ Aᵀ)⁻¹ stays written out.

A sum inside a product is written with more positive than negative terms (its sign goes to the
product): −K Gᵀ S₂⁻¹ diag(1 − s), not K Gᵀ S₂⁻¹ diag(s − 1).
"""
from __future__ import annotations

import itertools

import sympy as sp

from .canonical import Col, Diag, Inv, Lin, Mat, Row, Term
from .expr import Named, as_sympy
from .printing import text
from .writer import compact

#: A quantity is named only if it prints longer than this (characters of the plain text).
LONG = 16


class Factorizer:
    """Factored, named closed forms of the results of one derivation (see the module docstring).

    Use: :meth:`meet` each pivot's inverse (numbering the Schur complements), :meth:`closed_forms`
    on every result at once (names depend on what the whole derivation repeats), then
    :meth:`write` (:meth:`factor`) for any other expression, with the same names.
    """

    def __init__(self, alg, taken: set, schur: str):
        self.alg = alg
        self.schur = schur                        # the letter of the Schur complements (S)
        self.other = next(x for x in "KHWVUT" if x != schur and not clash(x, taken))
        self.tokens: dict = {}                    # Inv factor -> stand-in MatrixSymbol
        self.inverses: dict = {}                  # stand-in -> (sign, factored argument)
        self.order: list = []                     # stand-ins in the order the elimination meets them
        self.found: dict = {}                     # sums met as factors: key -> terms
        self.atoms: list = []                     # [(coefficients by factors, stand-in)]: known sums
        self.quantities: dict = {}                # stand-in -> (sign, factored sum)
        self.labels: dict = {}                    # repeated sum or stand-in -> its name
        self.memo: dict = {}
        self.definitions: dict = {}               # name -> Named, in the order they may be read

    # ---- the rules
    def factor(self, lin: Lin, skip=None):
        """(sign, expression): ``lin`` = sign · expression, common factors taken out; inverses of
        general blocks and known sums appear as stand-ins until :meth:`write` replaces them."""
        return _signed(self._sum(list(self._tokenized(lin).terms), lin.shape, skip))

    def meet(self, lin: Lin):
        """Register the general inverses of ``lin`` (a pivot's inverse) in the order met."""
        self._tokenized(lin)

    def closed_forms(self, lins: dict) -> dict:
        """Every result factored and written with names.  Two passes: the first finds the sums
        that products share (K in K Gᵀ S₂⁻¹ and in S₂); the second treats each as one factor, so
        that a sum whose terms include K's is written with K (dz/dq = −K + K Gᵀ S₂⁻¹ ⋯ G K)."""
        scalars = {k: self.alg.to_sympy(lin) for k, lin in lins.items() if lin.is_scalar or lin.is_zero}
        lins = {k: lin for k, lin in lins.items() if k not in scalars}
        for lin in lins.values():
            self.factor(lin)
        for k, (terms, shape) in enumerate(self.found.values()):  # sums that stay sums
            token = sp.MatrixSymbol(f"_sum{k}", *shape)
            value = _signed(self._sum(terms, shape))
            if isinstance(value[1], sp.MatAdd):
                self.atoms.append(({t.factors: t.coeff for t in terms}, token))
                self.quantities[token] = value
        self.atoms.sort(key=lambda a: -len(a[0]))  # the largest known sum first
        for inv, token in list(self.tokens.items()):  # the Schur complements again, with the known sums
            self.inverses[token] = self.factor(inv.lin)
        for coeffs, token in self.atoms:
            terms = [Term(c, f) for f, c in coeffs.items()]
            self.quantities[token] = _signed(self._sum(terms, self.quantities[token][1].shape, token))
        return {**scalars, **self.name({k: self.factor(lin) for k, lin in lins.items()})}

    def closed_form(self, lin: Lin):
        """One more expression, factored and written with the names already given."""
        return self.alg.to_sympy(lin) if lin.is_scalar or lin.is_zero else self.write(self.factor(lin))

    def named_pivot(self, inverse: Lin):
        """The pivot whose inverse is ``inverse`` as c·S_k where its Schur complement is named, else None."""
        t = inverse.single()
        if t is None or len(t.factors) != 1 or not isinstance(t.factors[0], Inv) or t.factors[0] not in self.tokens:
            return None
        named = self.definitions.get(f"{self.schur}_{self.order.index(self.tokens[t.factors[0]]) + 1}")
        return None if named is None else _scaled(1 / t.coeff, named)

    def _tokenized(self, lin: Lin) -> Lin:
        terms = []
        for t in lin.terms:
            terms.append(Term(t.coeff, tuple(Mat(self._token(f)) if isinstance(f, Inv) else f for f in t.factors)))
        return Lin(lin.shape, tuple(terms))

    def _token(self, f: Inv):
        if f not in self.tokens:
            token = sp.MatrixSymbol(f"_inverse{len(self.tokens)}", *f.shape)
            self.tokens[f] = token
            self.order.append(token)
            self.inverses[token] = self.factor(f.lin)
        return self.tokens[f]

    def _sum(self, terms, shape, skip=None) -> list:
        """The terms as pieces [(coefficient, coefficient-free matrix expression)]."""
        if len(terms) > 1:
            terms = self._with_atoms(terms, skip)
        if len(terms) > 1:
            split = _best_split(terms, shape)
            if split is not None:
                group, X, lefts, rights = split
                rest = [t for t in terms if t not in group]
                left = _signed(self._side(lefts, (shape[0], X.shape[0]), skip))
                right = _signed(self._side(rights, (X.shape[1], shape[1]), skip))
                piece = (sp.Integer(left[0] * right[0]), _product(left[1], self.alg.factor_to_sympy(X), right[1]))
                return (self._sum(rest, shape, skip) if rest else []) + [piece]
        lin = compact(self.alg, Lin(shape, tuple(terms)))
        return [_piece(self.alg.term_to_sympy(_positive_templates(t), shape)) for t in lin.terms]

    def _side(self, terms, shape, skip):
        """A factor sum of a split; a square one that is not diagonal is remembered (first pass)."""
        if len(terms) > 1 and shape[0] == shape[1] and not self.atoms and not _diagonal(terms):
            first = min(terms, key=lambda t: repr(t.factors))  # the terms up to a common factor
            normal = [Term(sp.cancel(t.coeff / first.coeff), t.factors) for t in terms]
            self.found.setdefault(frozenset((t.factors, t.coeff) for t in normal), (normal, shape))
        return self._sum(terms, shape, skip)

    def _with_atoms(self, terms, skip):
        """The terms with every known sum among them (up to a factor) as one stand-in factor."""
        for coeffs, token in self.atoms:
            if token == skip or len(coeffs) > len(terms):
                continue
            have = {t.factors: t.coeff for t in terms}
            if not all(f in have for f in coeffs):
                continue
            first = next(iter(coeffs))
            ratio = sp.cancel(have[first] / coeffs[first])
            if any(sp.cancel(have[f] - ratio * c) != 0 for f, c in coeffs.items()):
                continue
            terms = [t for t in terms if t.factors not in coeffs] + [Term(ratio, (Mat(token),))]
        return terms

    # ---- names
    def name(self, results: dict) -> dict:
        """Name the long Schur complements and the long sums met twice; ``results`` maps keys to
        (sign, expression) from :meth:`factor`; returns them written with the names."""
        count: dict = {}
        exprs = list(results.values()) + list(self.inverses.values()) + list(self.quantities.values())
        for _, e in exprs:
            for node in sp.preorder_traversal(e):
                if _matrix_sum(node) or node in self.quantities:
                    count[node] = count.get(node, 0) + 1

        def long(s):
            return len(text(self.quantities[s][1] if s in self.quantities else s)) > LONG
        repeated = sorted((s for s, k in count.items() if k > 1 and long(s)), key=lambda s: len(text(s)))
        labels = [self.other] if len(repeated) == 1 else [f"{self.other}_{i}" for i in range(1, len(repeated) + 1)]
        self.labels = dict(zip(repeated, labels, strict=True))
        self.memo = {}
        out = {key: self.write(value) for key, value in results.items()}
        self.definitions = dict(sorted(self.definitions.items(), key=lambda kv: _depth(kv[1])))
        return out

    def write(self, signed):
        """A (sign, expression) pair as one sympy expression with the names (after :meth:`name`)."""
        sign, e = signed
        e = self._rewrite(e)
        if sign == 1:
            return e
        if isinstance(e, sp.MatAdd):  # a whole sum: its terms negated, not −(…)
            return sp.MatAdd(*[_scaled(-1, a) for a in e.args])
        return _scaled(-1, e)

    def _rewrite(self, e):
        """``e`` with stand-ins written out and the repeated sums by their names, bottom-up."""
        if e in self.memo:
            return self.memo[e]
        if e in self.inverses:
            sign, arg = self.inverses[e]
            # the argument's own parts by their names; itself, where long, as S_k (not K)
            arg = arg.func(*[self._rewrite(a) for a in arg.args]) if isinstance(arg, sp.MatAdd) else self._rewrite(arg)
            if len(text(arg)) > LONG:
                arg = self._define(f"{self.schur}_{self.order.index(e) + 1}", arg)
            out = _scaled(sign, sp.Inverse(arg))
        elif e in self.quantities:
            sign, value = self.quantities[e]
            value = value.func(*[self._rewrite(a) for a in value.args])
            out = _scaled(sign, self._define(self.labels[e], value) if e in self.labels else value)
        elif e.args and isinstance(e, sp.MatrixExpr):
            out = e.func(*[self._rewrite(a) for a in e.args])
            if isinstance(out, sp.MatMul):  # a stand-in written as −K: one product, one coefficient
                c, mats = _flat(out)
                out = _scaled(c, mats[0] if len(mats) == 1 else sp.MatMul(*mats))
            if e in self.labels:
                out = self._define(self.labels[e], out)
        else:
            out = e
        self.memo[e] = out
        return out

    def _define(self, name, definition):
        if name not in self.definitions:
            self.definitions[name] = Named(name, definition)
        return self.definitions[name]


# --------------------------------------------------------------------------- the split
def _best_split(terms, shape):
    """(group, X, left terms, right terms, coefficient) of the split removing most factors, or None."""
    best, best_score = None, (0, 0)
    seen = []
    for t in terms:
        for f in t.factors:
            if f not in seen:
                seen.append(f)
    for X in seen:
        group = [t for t in terms if X in t.factors]
        if len(group) < 2:
            continue
        for last in (False, True):
            split = _rank_one(group, X, last)
            if split is None:
                continue
            lefts, rights = split
            saving = sum(len(t.factors) for t in group) - 1 - sum(len(t.factors) for t in lefts + rights)
            # on a tie, square sums (operators such as K = Q⁻¹ − Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹AQ⁻¹) over oblong ones
            square = (len(lefts) > 1 and shape[0] == X.shape[0]) + (len(rights) > 1 and X.shape[1] == shape[1])
            if saving > 0 and (saving, square) > best_score:
                best, best_score = (group, X, lefts, rights), (saving, square)
    return best


def _rank_one(group, X, last):
    """Σ c_{LR} L X R over the group as (Σ a_L L, Σ b_R R, c), if the table c_{LR} has rank one."""
    table = {}
    for t in group:
        i = len(t.factors) - 1 - t.factors[::-1].index(X) if last else t.factors.index(X)
        table[t.factors[:i], t.factors[i + 1:]] = t.coeff
    Ls = list(dict.fromkeys(L for L, _ in table))
    Rs = list(dict.fromkeys(R for _, R in table))
    if len(Ls) * len(Rs) != len(table):
        return None
    L0, R0 = Ls[0], Rs[0]
    a = {L: sp.cancel(table[L, R0] / table[L0, R0]) for L in Ls}
    had = set().union(*(sp.fraction(sp.together(c))[1].free_symbols for c in table.values()))
    if any(not x.is_positive and x not in had for L in Ls for x in sp.fraction(a[L])[1].free_symbols):
        return None  # a ratio that newly divides by what may be 0 (an indicator: "S⁻¹/s") is no factor
    b = {R: table[L0, R] for R in Rs}
    if any(sp.cancel(table[L, R] - a[L] * b[R]) != 0 for L, R in itertools.product(Ls, Rs)):
        return None
    lefts = [Term(a[L], L) for L in Ls]
    rights = [Term(b[R], R) for R in Rs]
    if not (_readable(lefts) and _readable(rights)):
        return None
    return lefts, rights


def _diagonal(terms) -> bool:
    return all(len(t.factors) <= 1 and all(isinstance(f, Diag) for f in t.factors) for t in terms)


def _readable(terms) -> bool:
    """A sum with an identity term reads well only if it is diagonal (diag(s) − I = diag(s − 1))."""
    return len(terms) < 2 or all(t.factors for t in terms) or _diagonal(terms)


# --------------------------------------------------------------------------- pieces and signs
def _piece(e):
    """(coefficient, the rest) of a sympy matrix term."""
    if isinstance(e, sp.MatMul):
        c, rest = e.as_coeff_mmul()
        args = rest.args
        return c, args[0] if len(args) == 1 else sp.MatMul(*args)
    return sp.S.One, e


def _signed(pieces):
    """(sign, expression) with the sum's terms mostly positive."""
    pieces = [(as_sympy(c), e) for c, e in pieces]
    if len(pieces) == 1:
        c, e = pieces[0]
        if c == 1:
            return 1, e
        if c == -1:
            return -1, e
        return (-1, _scaled(-c, e)) if c.could_extract_minus_sign() else (1, _scaled(c, e))
    negative = [c.could_extract_minus_sign() for c, _ in pieces]
    simplest = min(range(len(pieces)), key=lambda i: _size(pieces[i][1]))
    flip = 2 * sum(negative) > len(pieces) or (2 * sum(negative) == len(pieces) and negative[simplest])
    sign = -1 if flip else 1
    return sign, sp.MatAdd(*[_scaled(sign * c, e) for c, e in pieces])


def _scaled(c, e):
    if c == 1:
        return e
    if isinstance(e, sp.MatMul):
        c0, rest = e.as_coeff_mmul()
        c, e = c * c0, (rest.args[0] if len(rest.args) == 1 else sp.MatMul(*rest.args))
        if c == 1:
            return e
    return sp.MatMul(c, e) if not isinstance(e, sp.MatMul) else sp.MatMul(c, *e.args)


def _flat(e):
    """(coefficient, matrix factors) of a product, nested products and coefficients flattened."""
    if not isinstance(e, sp.MatMul):
        return (e, []) if not isinstance(e, sp.MatrixExpr) else (sp.S.One, [e])
    c, mats = sp.S.One, []
    for a in e.args:
        c2, m2 = _flat(a)
        c, mats = c * c2, mats + m2
    return c, mats


def _product(*parts):
    c, mats = _flat(sp.MatMul(*parts))
    kept = [m for m in mats if not isinstance(m, sp.Identity)]
    if not kept:
        return _scaled(c, mats[0])
    return _scaled(c, kept[0] if len(kept) == 1 else sp.MatMul(*kept))


def _positive_templates(t: Term) -> Term:
    """diag(s − 1) as −diag(1 − s): a template with mostly negative terms changes sign, unless its
    number is positive (1 − s_hi − s_lo is written as a person writes a complement)."""
    coeff, factors = t.coeff, []
    for f in t.factors:
        if isinstance(f, (Diag, Col, Row)) and f.t.is_Add:
            args = sp.Add.make_args(f.t)
            negative = [a.could_extract_minus_sign() for a in args]
            simplest = min(range(len(args)), key=lambda i: (not args[i].is_number, sp.count_ops(args[i])))
            if any(a.is_number and a.is_positive for a in args):
                pass
            elif 2 * sum(negative) > len(args) or (2 * sum(negative) == len(args) and negative[simplest]):
                coeff, f = -coeff, type(f)(sp.expand(-f.t), f.size)
        factors.append(f)
    return Term(coeff, tuple(factors))


def _matrix_sum(e) -> bool:
    return isinstance(e, sp.MatAdd) and 1 not in e.shape


def _size(e) -> int:
    return len(text(e))


def _depth(named) -> int:
    """How many named quantities a definition reads through (so that each is defined before use)."""
    inner = [n for n in sp.preorder_traversal(named.definition) if isinstance(n, Named)]
    return 1 + max((_depth(n) for n in inner), default=0)


def clash(letter, taken) -> bool:
    """Is ``letter`` a name in ``taken``, or the stem of one (S_1)?"""
    return any(n == letter or n.startswith(letter + "_") for n in taken)
