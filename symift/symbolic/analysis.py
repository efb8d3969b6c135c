"""∂F/∂x and ∂F/∂θ blocks, the IFT condition report, and block elimination (Schur complements).

The implicit function theorem gives  dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ.  symift never inverts ∂F/∂x as
a whole: it solves (∂F/∂x) J = −∂F/∂θ block by block, each time choosing the cheapest pivot
(identity, scalar, diagonal, a declared-pd symbol, and only then a general block), replacing the
other rows by their Schur complements, and simplifying with the KKT facts:

* an inequality that cannot be active (g = −z < 0 because z > 0) has λ = 0 and dλ = 0;
* otherwise, under strict complementarity, the rows λ ∘ g are divided by λᵢ on the active set
  and by gᵢ off it, giving  diag(1 − s) ∂g + diag(s) dλ = 0  with the indicator s = 1[g < 0];
* a scalar equality constraint that fixes a reduction (1ᵀz = 1) is used wherever 1ᵀz appears.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from ..language.model import unparse
from .calculus import directional
from .calculus import jacobian_lin as jacobian
from .canonical import Col, Diag, Lin, Term
from .conditions import describe
from .eliminate import Eliminator
from .expr import is_matrix
from .kkt import Block, KKTSystem, Unknown


@dataclass
class Exclusive:
    """Two inequality blocks that cannot be active at the same entry: g₁ + α g₂ = c < 0 with α > 0 and
    c free of the variables (x ≥ l and x ≤ u: c = l − u).  Then (1 − s₁)(1 − s₂) = 0."""

    first: str               # multiplier names
    second: str
    c: sp.Basic              # c as a sympy scalar or vector expression
    size: sp.Basic
    proven: bool             # c < 0 follows from the declarations (else it is a condition)
    condition: str           # "l - u < 0 elementwise"
    sentence: str            # the fact as the derivation cites it


class Analysis(Eliminator):
    """The linearized KKT system of a derivation, with its facts and eliminations."""

    def __init__(self, kkt: KKTSystem):
        self.kkt = kkt
        self.source = kkt.problem.source
        self.alg = kkt.algebra
        self.facts = self.alg.facts
        self.assumptions: list = []          # stated in the report (strict complementarity, ...)
        self.inactive: dict = {}             # multiplier name -> reason
        self.indicators: dict = {}           # multiplier name -> (indicator, meaning)
        self.exclusive: list[Exclusive] = []  # pairs of inequality blocks never active together
        self.kinks: dict = {}                # operator indicator name -> (placeholder, size, Kink)
        self.rows: list[Block] = list(kkt.residual)
        self.unknowns: list[Unknown] = list(kkt.unknowns)
        self._declare_facts()
        self._operator_kinks()
        self._active_sets()
        self._exclusive_pairs()
        self._never_both_inactive()
        self.blocks = self._blocks()
        self.augmented: list = []            # (stationarity row, equality row, Aᵀ): see augment

    # ---- facts
    def _declare_facts(self):
        b = self.kkt.builder
        for p in self.kkt.problem.params:
            sym = b.symbols[p.name]
            if p.attributes & {"symmetric", "psd", "pd"}:
                self.facts.symmetric.add(sym)
                self.facts.cited[("symmetric", sym)] = f"{p.name} is symmetric"
            if "pd" in p.attributes:
                self.facts.invertible.add(sym)
        for m in self.kkt.multipliers:
            if m.kind != "equality" or is_matrix(m.function):
                continue
            value = self.alg.scalar(m.function)
            reds = [r for r in value.free_symbols if r in self.alg.reductions]
            if len(reds) == 1 and sp.degree(value, reds[0]) == 1:
                (r,) = reds
                solved = sp.solve(value, r)
                if len(solved) == 1:
                    self.facts.reductions[r] = solved[0]
                    c = m.constraint
                    self.facts.cited[("reduction", r)] = (
                        f"primal feasibility {unparse(c.lhs)} = {unparse(c.rhs)}")

    def _operator_kinks(self):
        """The indicators of the operators' pieces (symbolic.operators): 0/1 valued, and the two of
        one call never 1 together (v > t and v < −t exclude each other for t ≥ 0)."""
        for k in self.kkt.builder.kinks:
            sym = k.indicator
            p = self.alg.vector_placeholder(sym) if is_matrix(sym) else sym
            size = sym.shape[0] if is_matrix(sym) else sp.S.One
            self.facts.indicators.add(p)
            self.facts.cited[("indicator", p)] = f"{k.name} ∈ {{0, 1}} elementwise, so {k.name}∘{k.name} = {k.name}"
            self.kinks[k.name] = (p, size, k)
        for name, (p, _, k) in self.kinks.items():
            if k.partner and k.partner in self.kinks and (self.kinks[k.partner][0], p) not in self.facts.disjoint:
                q = self.kinks[k.partner][0]
                self.facts.disjoint.add((p, q))
                self.facts.cited[("disjoint", p, q)] = (f"{name} and {k.partner} are the indicators of two pieces "
                                                        f"of {k.call}, never 1 together: {name}∘{k.partner} = 0")
        calls = dict.fromkeys(k.call for _, _, k in self.kinks.values())
        for call in calls:
            names = " and ".join(n for n, (_, _, k) in self.kinks.items() if k.call == call)
            self.assumptions.append(f"no entry at a kink of {call}: {names} constant near the solution")

    def _active_sets(self):
        for m in self.kkt.multipliers:
            if m.kind != "inequality":
                continue
            g = self.alg.lin(m.function)
            t = self.alg.template_of(g) if is_matrix(m.function) else self.alg.as_scalar(g)
            if t is not None and t.is_negative:
                c = m.constraint
                value = self.alg.vector_to_sympy(t, g.shape[0]) if is_matrix(m.function) else t
                self.inactive[m.name] = (f"{m.name} = 0: the constraint {unparse(c.lhs)} {c.relation} "
                                         f"{unparse(c.rhs)} is inactive since its g = {describe(self.alg, value)} < 0 "
                                         "under the declared assumptions")
                continue
            name = "s" if sum(x.kind == "inequality" for x in self.kkt.multipliers) == 1 else f"s_{m.name}"
            if name in self.kkt.symbols:
                name += "_"
            if is_matrix(m.function):
                s = sp.Dummy(name, real=True, nonnegative=True)
                size = m.function.shape[0]
                self.alg.vectors[s] = (sp.MatrixSymbol(name, size, 1), size)
                self.alg.placeholder_of[self.alg.vectors[s][0]] = s
            else:
                s = sp.Symbol(name, real=True, nonnegative=True)
                size = sp.S.One
            self.facts.indicators.add(s)
            meaning = (f"{name} = 1[g < 0] with g = {describe(self.alg, m.function)}: the inactive set of "
                       f"'{m.name}' ({name}ᵢ = 0 where the constraint is active)")
            self.facts.cited[("indicator", s)] = f"{name} ∈ {{0, 1}} elementwise, so {name}∘{name} = {name}"
            self.indicators[m.name] = (s, size, meaning)
            self.assumptions.append(
                f"strict complementarity for {m.name}: {m.name}ᵢ > 0 wherever gᵢ = 0 ({name}ᵢ = 0)")

    def _exclusive_pairs(self):
        """Pairs of inequality blocks on the same entries whose g's add up, with a positive weight, to
        something free of the variables and not provably ≥ 0: two bounds l ≤ x ≤ u.  Where the sum is
        negative an entry cannot be at both bounds, which the elimination needs (both active at once
        makes ∂F/∂x singular); it is a fact when the declarations prove it, else a stated condition."""
        primal = set()
        for u in self.kkt.unknowns:
            if u.kind == "primal":
                primal.add(self.alg.vector_placeholder(u.symbol) if is_matrix(u.symbol) else u.symbol)
        blocks = [(m, self.indicators[m.name]) for m in self.kkt.multipliers if m.name in self.indicators]
        if len(blocks) < 2:
            return
        for (m1, (s1, size1, _)), (m2, (s2, size2, _)) in itertools.combinations(blocks, 2):
            if size1 != size2 or is_matrix(m1.function) != is_matrix(m2.function):
                continue
            t1, t2 = self.template(m1.function), self.template(m2.function)
            if t1 is None or t2 is None:
                continue
            shared = sorted((t1.free_symbols & t2.free_symbols) & primal, key=str)
            if not shared or (t1.free_symbols | t2.free_symbols) & primal - set(shared):
                continue
            alpha = sp.cancel(-sp.diff(t1, shared[0]) / sp.diff(t2, shared[0]))
            if alpha.free_symbols & primal or not alpha.is_positive:
                continue
            c = sp.expand(t1 + alpha * t2)
            if c.free_symbols & primal or c.is_nonnegative:
                continue
            value = self.alg.vector_to_sympy(c, size1) if is_matrix(m1.function) else c
            elementwise = " elementwise" if is_matrix(m1.function) else ""
            condition = f"{describe(self.alg, value)} < 0{elementwise}"
            proven = bool(c.is_negative) or bool(sp.expand(c.xreplace(self._orders())).is_negative)
            weight = "" if alpha == 1 else f"{alpha} times "
            sentence = (f"'{m1.name}' and '{m2.name}' are never active at the same entry: g of '{m1.name}' plus "
                        f"{weight}g of '{m2.name}' is {condition}{'' if proven else ' (assumed)'}, "
                        f"so (1 - {s1.name})∘(1 - {s2.name}) = 0")
            self.exclusive.append(Exclusive(m1.name, m2.name, value, size1, proven, condition, sentence))
            self.facts.exclusive.add((s1, s2))
            self.facts.cited[("exclusive", s1, s2)] = sentence

    def _never_both_inactive(self):
        """Pairs of inequality blocks whose multipliers a stationarity row ties to a nonzero constant,
        c − λ₁ − λ₂ = 0 (the epigraph of |w|: lam − abs_w_hi − abs_w_lo = 0): they cannot both be 0,
        so under strict complementarity the two constraints are not both inactive, s₁∘s₂ = 0."""
        holders = {}
        for m in self.kkt.multipliers:
            if m.name in self.indicators:
                holders[m.name] = self.alg.vector_placeholder(m.symbol) if is_matrix(m.symbol) else m.symbol
        if len(holders) < 2:
            return
        unknowns = {self.alg.vector_placeholder(u.symbol) if is_matrix(u.symbol) else u.symbol
                    for u in self.kkt.unknowns}
        for row in self.kkt.residual:
            if row.kind != "stationarity":
                continue
            t = self.template(row.expr)
            if t is None:
                continue
            present = [name for name, h in holders.items() if h in t.free_symbols]
            if len(present) != 2:
                continue
            (n1, h1), (n2, h2) = [(name, holders[name]) for name in present]
            k1, k2, rest = sp.diff(t, h1), sp.diff(t, h2), sp.expand(t.subs({h1: 0, h2: 0}))
            if not (k1.is_number and k2.is_number and k1 * k2 > 0) or rest.free_symbols & unknowns \
                    or not rest.is_nonzero:
                continue
            s1, s2 = self.indicators[n1][0], self.indicators[n2][0]
            self.facts.disjoint.add((s1, s2))
            self.facts.cited[("disjoint", s1, s2)] = (
                f"{row.name}: {describe(self.alg, row.expr)} = 0 ties '{n1}' and '{n2}' to a nonzero "
                f"constant, so they are not both 0 and the constraints not both inactive: {s1.name}∘{s2.name} = 0")

    def _orders(self) -> dict:
        """u ↦ l + gap (gap > 0) for every ``param u > l``: a substitution that proves l − u < 0."""
        out = {}
        for p in self.kkt.problem.params:
            if p.above:
                hi, lo = self.kkt.builder.symbols[p.name], self.kkt.builder.symbols[p.above]
                key = self.alg.vector_placeholder(hi) if is_matrix(hi) else hi
                low = self.alg.vector_placeholder(lo) if is_matrix(lo) else lo
                out[key] = low + sp.Dummy(f"gap_{p.name}", positive=True)
        return out

    def template(self, g):
        lin = self.alg.lin(g)
        return self.alg.template_of(lin) if is_matrix(g) else self.alg.as_scalar(lin)

    # ---- blocks
    def _blocks(self) -> dict:
        """∂F_row/∂x_unknown for every pair (canonical, possibly zero), after the active-set facts."""
        inactive = [u for u in self.unknowns if u.name in self.inactive]
        drop_rows = {f"complementary slackness ({u.name})" for u in inactive}
        self.rows = [r for r in self.rows if r.name not in drop_rows]
        self.unknowns = [u for u in self.unknowns if u.name not in self.inactive]
        zero_subs = {}
        for u in inactive:
            if is_matrix(u.symbol):
                zero_subs[self.alg.vector_placeholder(u.symbol)] = 0
            else:
                zero_subs[u.symbol] = 0
        self.zero_subs = zero_subs
        blocks = {}
        for row in self.rows:
            for u in self.unknowns:
                blocks[row.name, u.name] = self.derivative(row, lambda e, x=u.symbol: jacobian(e, x, self.alg), u)
        return blocks

    def augment(self, primal: str) -> list:
        """Add Aᵀ·(equality row) to the stationarity row of ``primal`` for each linear equality
        A dx = r (an augmented Lagrangian, exact): the pivot of x becomes H + AᵀA on the support,
        nonsingular whenever ∂F/∂x is for a convex problem (H ⪰ 0), where H alone may be singular
        (the SVM dual's I ⊗ XXᵀ with more samples than features).  Returns the equality rows used."""
        stat = f"stationarity in {primal}"
        names = {u.name for u in self.unknowns}
        used = []
        for row in self.rows:
            a = self.blocks.get((row.name, primal))
            if row.kind != "primal feasibility" or a is None or a.is_zero or \
                    any((row.name, u) in self.blocks and not self.blocks[row.name, u].is_zero
                        for u in names - {primal}):
                continue
            at = self.alg.transpose(a)
            for u in names:
                b = self.blocks.get((row.name, u))
                if b is not None and not b.is_zero:
                    self.blocks[stat, u] = self.alg.simplify(self.blocks[stat, u] + self.alg.mul(at, b))
            self.augmented.append((stat, row.name, at))
            used.append(row.name)
        return used

    def forward_eliminate(self, rhs: dict) -> tuple:
        for stat, eq, at in self.augmented:  # the same row operation on the right-hand side
            rhs = {**rhs, stat: self.alg.simplify(rhs[stat] + self.alg.mul(at, rhs[eq]))}
        return super().forward_eliminate(rhs)

    def _multiplier_of(self, row: Block):
        for m in self.kkt.multipliers:
            if row.name == f"complementary slackness ({m.name})":
                return m
        return None

    def derivative(self, row: Block, d, unknown: Unknown | None = None) -> Lin:
        """∂(row) by the differentiation ``d``, with CS rows normalized and inactive duals zeroed."""
        m = self._multiplier_of(row)
        if m is None:
            return self.subs(d(row.expr))
        s, size, _ = self.indicators[m.name]
        if unknown is not None and unknown.name == m.name:
            return self.alg.simplify(Lin((size, size), (Term(sp.S.One, (Diag(s, size),)) if is_matrix(m.symbol)
                                                         else Term(s, ()),)))
        dg = self.subs(d(m.function))
        if dg.is_zero:
            return dg
        active = Lin((size, size), (Term(sp.S.One, (Diag(1 - s, size),)),)) if is_matrix(m.symbol) \
            else Lin((1, 1), (Term(1 - s, ()),))
        return self.alg.mul(active, dg)

    def subs(self, lin: Lin) -> Lin:
        if not self.zero_subs:
            return lin
        terms = []
        for t in lin.terms:
            factors = tuple(type(f)(f.t.xreplace(self.zero_subs), f.size) if isinstance(f, (Diag, Col))
                            or type(f).__name__ == "Row" else f for f in t.factors)
            terms.append(Term(t.coeff.xreplace(self.zero_subs), factors))
        return self.alg.simplify(Lin(lin.shape, tuple(terms)))

    def rhs(self, param) -> tuple:
        """−∂F/∂θ per row; for a matrix parameter the directional form along dθ (one column)."""
        direction = None
        if is_matrix(param) and param.shape[1] != 1:
            if param in self.facts.symmetric:  # a symmetric parameter moves symmetrically
                self.facts.symmetric.add(sp.MatrixSymbol("d" + param.name, *param.shape))
            out = {}
            for row in self.rows:
                def d(e, p=param):
                    lin, dp = directional(e, p, self.alg)
                    return lin
                out[row.name] = -self.derivative(row, d)
            direction = sp.MatrixSymbol("d" + param.name, *param.shape)
            return out, direction
        return {row.name: -self.derivative(row, lambda e: jacobian(e, param, self.alg)) for row in self.rows}, None
