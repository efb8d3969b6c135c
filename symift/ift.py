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
from dataclasses import dataclass, field

import sympy as sp

from .algebra import Col, Diag, Lin, Term
from .calculus import directional
from .calculus import jacobian_lin as jacobian
from .errors import MathError
from .expr import as_sympy, is_matrix
from .kkt import Block, KKTSystem, Unknown

_KIND_COST = {"identity": 0, "scalar": 1, "diagonal": 2, "symbol": 3, "general": 5}


@dataclass
class Step:
    """One elimination step: unknown ``unknown`` is solved from row ``row`` with ``pivot``."""

    row: str
    unknown: str
    kind: str
    pivot: sp.Basic
    inverse: sp.Basic
    condition: str | None
    updated: list = field(default_factory=list)   # [(row, unknown, new block)] Schur complements
    facts: list = field(default_factory=list)


@dataclass
class Verdict:
    """One IFT condition: holds (True), fails (False) or holds under ``requirements`` (None)."""

    name: str
    holds: bool | None
    reason: str
    requirements: list = field(default_factory=list)

    def __str__(self):
        mark = {True: "holds", False: "FAILS", None: "holds if"}[self.holds]
        req = "" if not self.requirements else ": " + "; ".join(self.requirements)
        return f"{self.name}: {mark}{req} — {self.reason}"


@dataclass
class IFTReport:
    """The three conditions of the implicit function theorem for a derivation."""

    solution: Verdict
    smoothness: Verdict
    nonsingularity: Verdict
    assumptions: list = field(default_factory=list)

    @property
    def conditions(self):
        return [self.solution, self.smoothness, self.nonsingularity]

    @property
    def holds(self) -> bool | None:
        values = [c.holds for c in self.conditions]
        if False in values:
            return False
        return True if all(values) else None

    def __str__(self):
        lines = [str(c) for c in self.conditions]
        if self.assumptions:
            lines.append("assuming: " + "; ".join(self.assumptions))
        return "\n".join(lines)


def describe(alg, e) -> str:
    """A short text form of a sympy expression (for reports)."""
    from .printing import text

    return text(e)


class Eliminator:
    """Block Gaussian elimination of a linear system (∂F/∂x) X = R with symbolic blocks.

    Needs ``alg``, ``facts``, ``blocks`` {(row, unknown): Lin}, ``rows`` and ``unknowns``
    (objects with ``.name``) and ``source`` (for errors).
    """

    def eliminate(self, rhs: dict) -> tuple:
        """Solve (∂F/∂x) X = rhs block-wise; returns ({unknown: Lin}, [Step])."""
        back, steps = self.forward_eliminate(rhs)
        return self.back_substitute(back), steps

    def forward_eliminate(self, rhs: dict) -> tuple:
        """The pivots of (∂F/∂x) X = rhs, eliminated in turn: ([(unknown, pivot inverse, the
        pivot row's other blocks, its reduced right-hand side)], [Step])."""
        alg = self.alg
        M = {k: v for k, v in self.blocks.items() if not v.is_zero}
        R = dict(rhs)
        rows = [r.name for r in self.rows]
        cols = [u.name for u in self.unknowns]
        steps, back = [], []
        while cols:
            choice = self._choose_pivot(M, rows, cols)
            if choice is None:
                missing = ", ".join(cols)
                raise MathError(f"∂F/∂x is singular: no invertible pivot for {missing} "
                                f"(rows left: {', '.join(rows)})", None, self.source)
            r, c, inv, kind, cond = choice
            used_before = len(self.facts.trace)
            step = Step(r, c, kind, alg.to_sympy(M[r, c]), alg.to_sympy(inv), cond)
            others = [c2 for c2 in cols if c2 != c and (r, c2) in M]
            for r2 in rows:
                if r2 == r or (r2, c) not in M:
                    continue
                factor = alg.mul(M[r2, c], inv)
                for c2 in others:
                    new = alg.simplify(M.get((r2, c2), Lin(factor.shape[:1] + M[r, c2].shape[1:])) -
                                       alg.mul(factor, M[r, c2]))
                    if new.is_zero:
                        M.pop((r2, c2), None)
                    else:
                        M[r2, c2] = new
                    step.updated.append((r2, c2, alg.to_sympy(new) if not new.is_zero else 0))
                R[r2] = alg.simplify(R[r2] - alg.mul(factor, R[r]))
                del M[r2, c]
            back.append((c, inv, {c2: M[r, c2] for c2 in others}, R[r]))
            for c2 in others:
                del M[r, c2]
            del M[r, c]
            rows.remove(r)
            cols.remove(c)
            step.facts = list(dict.fromkeys(self.facts.trace[used_before:]))
            steps.append(step)
        return back, steps

    def back_substitute(self, back, named=None) -> dict:
        """{unknown: Lin} from the eliminated rows, last pivot first.  With ``named`` (unknown ->
        symbol), each unknown is written in terms of the symbols of those solved before it rather
        than their full expressions (code then reuses the computed steps)."""
        alg, solution = self.alg, {}
        for c, inv, row_blocks, r_rhs in reversed(back):
            acc = r_rhs
            for c2, blk in row_blocks.items():
                acc = acc - alg.mul(blk, alg.lin(named[c2]) if named else solution[c2])
            solution[c] = alg.mul(inv, alg.simplify(acc))
        return solution

    def _choose_pivot(self, M, rows, cols):
        best = None
        for r in rows:
            for c in cols:
                blk = M.get((r, c))
                if blk is None or blk.shape[0] != blk.shape[1]:
                    continue
                try:
                    inv, kind, cond = self.alg.inverse(blk)
                except ZeroDivisionError:
                    continue
                verdict = self.nonzero(cond) if kind in ("scalar", "diagonal") else True
                if verdict is False:
                    continue
                if kind == "symbol" and cond is not None and cond not in self.facts.invertible:
                    kind = "general"
                fill = sum((r, c2) in M for c2 in cols) + sum((r2, c) in M for r2 in rows)
                cost = (_KIND_COST[kind] + (verdict is None), fill, rows.index(r), cols.index(c))
                if best is None or cost < best[0]:
                    text = None
                    if kind in ("scalar", "diagonal") and verdict is None:
                        value = self.alg.scalar_to_sympy(cond)
                        if kind == "scalar":  # 2x ≠ 0 is x ≠ 0
                            number, rest = sp.factor_terms(value).as_coeff_Mul()
                            value = rest if number != 0 else value
                        text = f"{describe(self.alg, value)} ≠ 0"
                    elif kind == "general":
                        text = f"{describe(self.alg, self.alg.to_sympy(blk))} is nonsingular"
                    elif kind == "symbol" and cond not in self.facts.invertible:
                        text = f"{cond} is nonsingular"
                    best = (cost, (r, c, inv, kind, text))
        return None if best is None else best[1]

    def nonzero(self, t) -> bool | None:
        """Is the template/scalar t nonzero everywhere? (0/1 indicators are enumerated)."""
        t = as_sympy(t)
        inds = sorted(t.free_symbols & self.facts.indicators, key=str)
        cases = [t] if not inds else [t.subs(dict(zip(inds, v))) for v in itertools.product((0, 1), repeat=len(inds))]
        verdicts = []
        for case in cases:
            case = sp.simplify(case)
            verdicts.append(True if case.is_nonzero else (False if case.is_zero else None))
        if False in verdicts:
            return False
        return True if all(verdicts) else None



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
        self.rows: list[Block] = list(kkt.residual)
        self.unknowns: list[Unknown] = list(kkt.unknowns)
        self._declare_facts()
        self._active_sets()
        self.blocks = self._blocks()

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
                    from .model import unparse
                    self.facts.cited[("reduction", r)] = (
                        f"primal feasibility {unparse(c.lhs)} = {unparse(c.rhs)}")

    def _active_sets(self):
        for m in self.kkt.multipliers:
            if m.kind != "inequality":
                continue
            g = self.alg.lin(m.function)
            t = self.alg.template_of(g) if is_matrix(m.function) else self.alg.as_scalar(g)
            if t is not None and t.is_negative:
                from .model import unparse
                c = m.constraint
                self.inactive[m.name] = (f"{m.name} = 0: the constraint {unparse(c.lhs)} {c.relation} "
                                         f"{unparse(c.rhs)} is inactive since its g = {describe(self.alg, self.alg.vector_to_sympy(t, g.shape[0]) if is_matrix(m.function) else t)} < 0 "
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

def numeric_check(kkt: KKTSystem, values: dict, dims: dict) -> dict:
    """∂F/∂x at a concrete point: finiteness, rank and condition number.

    ``values`` maps names (variables, multipliers, parameters) to numbers or numpy arrays and
    ``dims`` maps dim names to ints.  This is the raw Jacobian of F (no active-set facts), so a
    singular or undefined KKT Jacobian at that point is seen as it is.
    """
    import numpy as np

    alg = kkt.algebra
    sizes = {kkt.builder.dims[k]: sp.Integer(v) for k, v in dims.items() if k in kkt.builder.dims}
    symbols = kkt.symbols
    numbers = {}
    for name, value in values.items():
        sym = symbols.get(name)
        if sym is None:
            continue
        if isinstance(sym, sp.MatrixSymbol):
            shape = tuple(int(as_sympy(s).xreplace(sizes)) for s in sym.shape)
            numbers[sym.xreplace(sizes)] = sp.ImmutableMatrix(np.asarray(value, float).reshape(shape).tolist())
        else:
            numbers[sym] = sp.Float(float(value))
    rows = []
    with np.errstate(all="ignore"):
        for block in kkt.residual:
            cells = []
            for u in kkt.unknowns:
                e = alg.to_sympy(jacobian(block.expr, u.symbol, alg)).xreplace(sizes)
                val = e.xreplace(numbers).doit()
                arr = np.array(val.as_explicit().tolist() if hasattr(val, "as_explicit") else [[val]],
                               dtype=complex)
                cells.append(np.where(np.isfinite(arr), arr.real, np.nan))
            rows.append(np.hstack(cells))
        K = np.vstack(rows)
    if not np.all(np.isfinite(K)):
        return {"finite": False, "rank": None, "size": K.shape[0], "condition": np.inf, "singular": True,
                "message": "∂F/∂x is undefined at this point (F is not differentiable there)"}
    rank = int(np.linalg.matrix_rank(K))
    cond = float(np.linalg.cond(K))
    singular = rank < K.shape[0]
    message = (f"∂F/∂x is singular at this point (rank {rank} < {K.shape[0]})" if singular
               else f"∂F/∂x is nonsingular at this point (condition number {cond:.3g})")
    return {"finite": True, "rank": rank, "size": K.shape[0], "condition": cond, "singular": singular,
            "message": message, "matrix": K}


# --------------------------------------------------------------------------- Newton steps
@dataclass
class _Row:
    name: str
    expr: sp.Basic
    size: sp.Basic


@dataclass
class _Unknown:
    name: str
    symbol: sp.Basic
    size: sp.Basic


class NewtonSystem(Eliminator):
    """The interior-point Newton step, eliminated symbolically once for all iterations.

    With slacks t for the inequalities (g + t = 0, λ ∘ t = μ), the step solves

        [ ∇²L   Jₕᵀ  J_gᵀ  0    ] [dz]     [r_S]
        [ Jₕ    0    0     0    ] [dν]  =  [r_H]
        [ J_g   0    0     I    ] [dλ]     [r_P]
        [ 0     0    diag(t) diag(λ)] [dt]  [r_C]

    by the same block elimination as the IFT (no KKT facts: they do not hold mid-iteration),
    so the step inherits the problem's structure — O(n) for softmax.  ``solution`` maps each
    unknown to its step as a sympy expression in the current values and the ``rhs`` symbols.
    """

    def __init__(self, kkt: KKTSystem):
        from .algebra import Algebra, Facts

        self.kkt = kkt
        self.source = kkt.problem.source
        self.facts = Facts()
        self.alg = Algebra(self.facts)
        builder = kkt.builder
        for p in kkt.problem.params:
            sym = builder.symbols[p.name]
            if p.attributes & {"symmetric", "psd", "pd"}:
                self.facts.symmetric.add(sym)
            if "pd" in p.attributes:
                self.facts.invertible.add(sym)
        for v in kkt.problem.variables:
            sym = builder.symbols[v.name]
            if v.positive and is_matrix(sym):
                self.alg.assumptions[sym] = {"positive": True}
        rows, unknowns, self.slacks = [], [], {}
        for block in kkt.residual:
            if block.kind in ("stationarity", "equation"):
                rows.append(_Row(block.name, block.expr, block.size))
        for m in kkt.multipliers:
            if m.kind == "equality":
                rows.append(_Row(f"h {m.name}", m.function, _size(m.function)))
        ineqs = [m for m in kkt.multipliers if m.kind == "inequality"]
        for m in ineqs:
            size = _size(m.function)
            t = sp.MatrixSymbol(f"slack_{m.name}", size, 1) if is_matrix(m.function) else \
                sp.Symbol(f"slack_{m.name}", positive=True)
            self.slacks[m.name] = t
            if is_matrix(t):
                self.alg.assumptions[t] = {"positive": True}
                self.alg.assumptions[m.symbol] = {"positive": True}
            rows.append(_Row(f"g {m.name}", m.function + t, size))
        for m in ineqs:
            t = self.slacks[m.name]
            cs = sp.HadamardProduct(m.symbol, t) if is_matrix(t) else m.symbol * t
            rows.append(_Row(f"cs {m.name}", cs, _size(m.function)))
        for u in kkt.unknowns:
            unknowns.append(_Unknown(u.name, u.symbol, u.size))
        for m in ineqs:
            unknowns.append(_Unknown(f"slack_{m.name}", self.slacks[m.name], _size(m.function)))
        self.rows, self.unknowns = rows, unknowns
        self.rhs = {r.name: (sp.MatrixSymbol(f"r{k}", r.size, 1) if r.size != 1 or is_matrix(r.expr)
                             else sp.Symbol(f"r{k}", real=True)) for k, r in enumerate(rows)}
        from .calculus import jacobian_lin

        self.blocks = {(r.name, u.name): jacobian_lin(r.expr, u.symbol, self.alg)
                       for r in rows for u in unknowns}
        back, self.steps = self.forward_eliminate({r.name: self.alg.lin(self.rhs[r.name]) for r in rows})
        solution = self.back_substitute(back)
        self.solution = {u.name: self.alg.to_sympy(solution[u.name]) for u in unknowns}
        # the same step by back substitution on named steps, in solve order (for code)
        self.step_symbols = {u.name: (sp.MatrixSymbol(f"d_{u.name}", u.size, 1) if is_matrix(u.symbol)
                                      else sp.Symbol(f"d_{u.name}", real=True)) for u in unknowns}
        staged = self.back_substitute(back, self.step_symbols)
        self.staged = [(c, self.alg.to_sympy(staged[c])) for c, *_ in reversed(back)]


def _size(e):
    return e.shape[0] if is_matrix(e) else sp.S.One
