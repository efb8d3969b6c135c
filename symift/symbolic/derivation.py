"""The derivation of a problem: Lagrangian, KKT system, IFT report and closed-form Jacobians.

:class:`Derivation` is the symbolic stage's result; the public ``symift.Derivation``
(symift.api) adds its outputs: LaTeX, JAX functions and the numerical verification.
"""
from __future__ import annotations

import copy
from functools import cached_property

import sympy as sp

from ..errors import MathError, ProblemError, SymiftError, UnsupportedError
from ..language.model import Problem
from .analysis import Analysis
from .canonical import Lin
from .conditions import IFTReport, Verdict, domain_requirements
from .coupled import CoupledAnalysis, coupled_sentence, tangent_equations
from .envelope import Envelope, envelope
from .expr import Named, is_matrix
from .factor import Factorizer, clash
from .kkt import build_kkt
from .lowering import lower_nonsmooth
from .numeric import numeric_check
from .printing import text as plain
from .rows import has_matrix_variable, split_rows
from .vec import VEC_SENTENCE, Vec, augmented_sentence, vectorize


class Derivation:
    """Lagrangian, KKT system, IFT report and closed-form Jacobians of a problem.

    dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ, computed block-wise (see :mod:`symift.symbolic.eliminate`).
    """

    def __init__(self, problem: Problem):
        #: a matrix variable whose problem separates by rows: derived as the problem of one row
        #: (symbolic.rows); ``rows.problem`` is the user's problem, ``self.problem`` the row problem
        self.rows = None
        #: why a matrix variable's rows do not separate (symbolic.coupled: no closed form, the
        #: tangent system in matrix form, solved numerically), or None
        self.coupled: str | None = None
        #: why a coupled problem has no vec form (symbolic.vec), or None
        self.why_not_vec: str | None = None
        if has_matrix_variable(problem):
            try:
                self.rows = split_rows(problem)
            except UnsupportedError as exc:
                if getattr(exc, "reason", None) is None:  # not a coupling: an error in the problem
                    raise
                self.coupled = exc.reason
        if self.rows is not None:
            problem = self.rows.row_problem
        self.problem = problem
        #: the problem the KKT system is built from: norm1 terms as epigraphs (symbolic.lowering)
        self.lowered_problem, self.lowered = lower_nonsmooth(problem)
        try:
            self.system = build_kkt(self.lowered_problem, coupled=self.coupled is not None)
            self.system.conventions.extend(x.sentence for x in self.lowered)
            if self.rows is not None:
                self.system.conventions.insert(0, self.rows.sentence)
            if self.coupled is not None:
                matrix = next(v.name for v in problem.variables if len(v.shape) == 2)
                self.system.conventions.insert(0, coupled_sentence(self.coupled, matrix))
                self.analysis = self._coupled_analysis()
            else:
                self.analysis = Analysis(self.system)
        except NotImplementedError as exc:
            raise UnsupportedError(f"cannot differentiate this problem: {exc}", None, problem.source) from None
        self._jacobians: dict = {}
        self._steps: dict = {}
        self._ift: IFTReport | None = None
        self._pivots: list | None = None
        self._closed: dict | None = None
        self._factorizer: Factorizer | None = None

    def _coupled_analysis(self):
        """The vec form's block elimination (symbolic.vec), or, where a block has no vec form here,
        the tangent system in matrix form (symbolic.coupled) with the reason in ``why_not_vec``."""
        try:
            if self.system.algebra.maps:  # row-wise maps move with B, not with vec(B)
                raise NotImplementedError("a row-wise map (softmax of a matrix) has no vec rule here")
            analysis = Analysis(vectorize(self.system))
            for p in self.problem.params:  # every ∂F/∂θ must have a vec form too
                analysis.rhs(self.system.builder.symbols[p.name])
        except NotImplementedError as exc:
            self.why_not_vec = str(exc)
            return CoupledAnalysis(self.system, "the rows of the matrix variable are coupled")
        self.system.conventions.insert(1, VEC_SENTENCE)
        for u in self.system.unknowns:
            if u.kind == "primal" and isinstance(u.symbol, sp.MatrixSymbol) and u.symbol.shape[1] != 1:
                for eq in analysis.augment(u.name):
                    self.system.conventions.insert(2, augmented_sentence(u.name, eq))
        shapes = {m.name: m.symbol.shape for m in self.system.multipliers if is_matrix(m.symbol)}
        for name, (s, size, _) in analysis.indicators.items():
            if name in shapes and shapes[name][1] != 1:  # s of B ≥ 0 is an m×k matrix, used as vec(s)
                vector = analysis.alg.vectors[s][0]
                del analysis.alg.placeholder_of[vector]
                vector = Vec(sp.MatrixSymbol(vector.name, *shapes[name]))
                analysis.alg.vectors[s] = (vector, size)
                analysis.alg.placeholder_of[vector] = s
        return analysis

    @property
    def tangent_only(self) -> bool:
        """No closed form: a coupled matrix variable without a vec form; the tangent system is the result."""
        return self.coupled is not None and not self.vectorized

    @property
    def vectorized(self) -> bool:
        """A coupled matrix variable derived in vec form: closed forms in vec(B), with Kronecker products."""
        return self.coupled is not None and isinstance(self.analysis, Analysis)

    def is_vec(self, var: str) -> bool:
        """Is the closed form of ``var`` one of vec(var) (a coupled matrix variable in vec form)?"""
        sym = self.symbols.get(var)
        return self.vectorized and is_matrix(sym) and sym.shape[1] != 1

    def one_row(self) -> Derivation:
        """For a problem split by rows: this derivation as the row problem's own (same analysis)."""
        row = copy.copy(self)
        row.rows = None
        return row

    # ---- SPEC §2 attributes
    @property
    def symbols(self) -> dict:
        out = dict(self.system.symbols)
        for s, _, _ in self.analysis.indicators.values():
            symbol = self.analysis.alg.vectors[s][0] if s in self.analysis.alg.vectors else s
            symbol = symbol.arg if isinstance(symbol, Vec) else symbol
            out[symbol.name] = symbol
        for name, (_, _, kink) in self.analysis.kinks.items():
            out[name] = kink.indicator
        return out

    @property
    def lagrangian(self):
        return self.system.lagrangian

    @property
    def conventions(self) -> list:
        return list(self.system.conventions)

    @property
    def kkt(self) -> dict:
        """Named KKT conditions: name -> (lhs, relation, rhs)."""
        return {c.name: (c.lhs, c.relation, c.rhs) for c in self.system.conditions}

    @property
    def residual(self) -> dict:
        """F(x, θ) as named blocks, in the order of x = (primal, equality duals, inequality duals)."""
        return {b.name: b.expr for b in self.system.residual}

    @property
    def unknowns(self) -> list:
        return [u.name for u in self.system.unknowns]

    @property
    def parameters(self) -> list:
        return [p.name for p in self.problem.params]

    @property
    def maps(self) -> dict:
        """Name -> the smooth map (symbolic.operators.Map) a symbol of F stands for (p = softmax(u))."""
        return {m.name: m for m in self.analysis.alg.maps.values()}

    @property
    def indicators(self) -> dict:
        """Indicator name -> its meaning (e.g. s = 1[g < 0], the inactive set)."""
        out = {s.name: meaning for s, _, meaning in self.analysis.indicators.values()}
        out.update({name: kink.meaning for name, (_, _, kink) in self.analysis.kinks.items()})
        return out

    @property
    def facts(self) -> list:
        """Facts the simplifier used, as sentences (feasibility, inactive multipliers, ...)."""
        return list(self.analysis.inactive.values()) + list(self.analysis.facts.used)

    @cached_property
    def envelope(self) -> Envelope | None:
        """The optimal value and its envelope-theorem derivative (symbolic.envelope); None for a
        root (``solve``) problem."""
        return envelope(self.system, coupled=self.coupled is not None)

    @property
    def value(self):
        """The optimal value V(θ) = f(x*(θ), θ) as a sympy expression over :attr:`symbols` (the
        objective as written: a maximized f is f), or None for a root problem."""
        return None if self.envelope is None else self.envelope.value

    def value_gradient(self, param: str):
        """∇_param V by the envelope theorem: ∂L/∂param at the solution (−∂L/∂param for a
        maximization), e.g. z for softmax's θ and −ν for the right side b of Ax = b; for a matrix
        parameter the matrix G with dV = tr(Gᵀ dP) (e.g. ½zzᵀ for Q in ½zᵀQz), or the directional
        derivative dV[dP] where G is not read off.  Layout: ∇_θ V has θ's shape."""
        if self.envelope is None:
            raise UnsupportedError("a root ('solve') problem has no optimal value", None, self.problem.source)
        if param not in self.envelope.gradients:
            self.check_names(None, param)
        g = self.envelope.gradients[param]
        chosen = g if g is not None else self.envelope.differentials[param]
        if self.coupled is not None:
            return chosen
        written = self.written(self.analysis.alg.lin(chosen))
        return written if len(plain(written)) <= len(plain(chosen)) else chosen

    @cached_property
    def tangent_system(self) -> list:
        """[(block name, dF_block)]: the linearized residual, dF = ∂F/∂x dx + ∂F/∂θ dθ, with every
        unknown u moving along d<u> and every parameter p along d<p>.  The tangent dx of the
        solution solves dF = 0 for given dθ; for a coupled matrix variable (no closed form) this is
        the derivation's result, which the layer solves numerically."""
        return tangent_equations(self.system)

    @property
    def ift(self) -> IFTReport:
        if self._ift is None:
            self._ift = self._report()
        return self._ift

    def jacobian(self, var: str, param: str, expand: bool = False):
        """Closed form of d var*/d param as a sympy (matrix) expression over :attr:`symbols`.

        Common factors are taken out and long quantities named once (:attr:`definitions`; a
        named quantity evaluates as its definition), e.g. OptNet's dz/dh = −K Gᵀ S₂⁻¹ diag(1 − s).
        ``expand=True`` gives the fully expanded sum of products instead.
        For a matrix parameter P the result is the directional derivative along ``dP``
        (a MatrixSymbol named ``"d" + P``), e.g. dz[dQ] = −Q⁻¹ dQ z + ….
        """
        self.check_names(var, param)
        if (var, param) not in self._jacobians:
            solution, _ = self._solve(param)
            self._jacobians[var, param] = self.analysis.alg.to_sympy(solution[var]) if var in solution \
                else self._inactive_jacobian(var, param)
        if expand:
            return self._jacobians[var, param]
        closed = self._closed_forms()
        if (var, param) not in closed:
            solution, _ = self._solve(param)
            closed[var, param] = self._factorizer.closed_form(solution[var]) \
                if var in solution else self._jacobians[var, param]
        expanded = self._jacobians[var, param]
        if len(plain(closed[var, param])) > len(plain(expanded)):  # factoring that does not shorten
            closed[var, param] = expanded
        return closed[var, param]

    @property
    def definitions(self) -> dict:
        """The quantities the closed forms name, name -> :class:`~symift.symbolic.expr.Named`
        (its ``definition`` is the expression), each listed after those it uses: the Schur
        complements S_k of the block elimination and the sums met more than once (K)."""
        self._closed_forms()
        return dict(self._factorizer.definitions)

    def definitions_used(self, exprs) -> list:
        """The named quantities the expressions use, directly or through other names, each after
        those it uses (the order of :attr:`definitions`)."""
        seen, todo = set(), list(exprs)
        while todo:
            for node in sp.preorder_traversal(todo.pop()):
                if isinstance(node, Named) and node.name not in seen:
                    seen.add(node.name)
                    todo.append(node.definition)
        return [q for name, q in self.definitions.items() if name in seen]

    def written(self, lin: Lin):
        """Any canonical expression of this derivation factored and written with its names."""
        self._closed_forms()
        return self._factorizer.closed_form(lin)

    def _closed_forms(self) -> dict:
        """The factored closed form of every primal variable for every parameter, named together
        (a name is given by what the whole derivation repeats, so one call fixes them all)."""
        if self._closed is None:
            taken = set(self.symbols) | {x.name for x in self.problem.dims}
            f = Factorizer(self.analysis.alg, taken, self.schur_letter)
            try:
                for step in self.pivots:
                    f.meet(step.inverse_lin)
            except SymiftError:
                pass
            results = {}
            for p in self.parameters:
                try:
                    solution, _ = self._solve(p)
                except SymiftError:
                    continue
                for v in self.problem.variables:
                    if v.name in solution:
                        results[v.name, p] = solution[v.name]
            self._factorizer, self._closed = f, f.closed_forms(results)
        return self._closed

    def named_pivot(self, step):
        """The pivot of an elimination step by the name of its Schur complement (S₂), or None."""
        try:
            self._closed_forms()
        except SymiftError:
            return None
        return self._factorizer.named_pivot(step.inverse_lin) if step.inverse_lin is not None else None

    def step_condition(self, step) -> str | None:
        """A step's condition, with the pivot by its name where it has one (S₂ is nonsingular)."""
        named = self.named_pivot(step) if step.kind == "general" else None
        return f"{plain(named)} is nonsingular" if named is not None else step.condition

    @property
    def schur_letter(self) -> str:
        """The letter of the Schur complements (S, unless the problem uses it)."""
        taken = set(self.system.symbols) | {x.name for x in self.problem.dims}
        return next((x for x in "SKWN" if not clash(x, taken)), "Sigma")

    def jacobians(self, wrt=None, params=None) -> dict:
        """{(var, param): closed form} for every requested pair (primal variables by default)."""
        wrt = wrt or [v.name for v in self.problem.variables]
        params = params or self.parameters
        return {(v, p): self.jacobian(v, p) for v in wrt for p in params}

    def steps(self, param: str) -> list:
        """The elimination steps used for d·/d param, in order (pivot, Schur complements, facts)."""
        self.check_names(None, param)
        return self._solve(param)[1]

    @property
    def pivots(self) -> list:
        """The steps of the block elimination of ∂F/∂x (pivots and their conditions); MathError where
        no invertible pivot is left.  The same for every right-hand side, so for every parameter."""
        if self._pivots is None:
            self._pivots = self.analysis.eliminate({r.name: _zero_rhs(r) for r in self.analysis.rows})[1]
        return self._pivots

    @property
    def exclusive_used(self) -> list:
        """Pairs of inequality blocks never active at the same entry (two bounds l ≤ x ≤ u) that the
        elimination relies on.  Where the declarations do not prove it (l < u), it is a condition of
        the IFT; either way the layer measures it at a solution like the pivots (l = u passed to a
        'param u > l' is caught too)."""
        used = {fact for step in self.pivots for fact in step.facts}
        return [p for p in self.analysis.exclusive if p.sentence in used]

    def check_at(self, values: dict, dims: dict | None = None) -> dict:
        """Numeric IFT check at a point: is ∂F/∂x finite and nonsingular there (rank, condition)?"""
        return numeric_check(self.system, values, dims or {})

    # ---- internals
    def check_names(self, var, param):
        names = self.unknowns + list(self.analysis.inactive)
        if var is not None and var not in names:
            raise ProblemError(f"'{var}' is not a variable or multiplier of this problem "
                               f"(have: {', '.join(names)})", None, self.problem.source)
        if param not in self.parameters:
            raise ProblemError(f"'{param}' is not a parameter of this problem "
                               f"(have: {', '.join(self.parameters) or 'none'})", None, self.problem.source)

    def _solve(self, param: str):
        if param not in self._steps:
            symbol = self.system.symbols[param]
            rhs, _ = self.analysis.rhs(symbol)
            try:
                self._steps[param] = self.analysis.eliminate(rhs)
            except NotImplementedError as exc:
                raise UnsupportedError(f"cannot eliminate: {exc}", None, self.problem.source) from None
        return self._steps[param]

    def _inactive_jacobian(self, var, param):
        u = next(m for m in self.system.multipliers if m.name == var)
        p = self.system.symbols[param]
        rows = u.symbol.shape[0] if is_matrix(u.symbol) else 1
        cols = p.shape[0] if is_matrix(p) and p.shape[1] == 1 else 1
        return sp.ZeroMatrix(rows, cols) if (rows, cols) != (1, 1) else sp.S.Zero

    def _report(self) -> IFTReport:
        a = self.analysis
        if self.problem.kind == "root":
            solution = Verdict("F(x*, θ) = 0", True, "the equations of the 'solve' block are F itself")
        else:
            solution = Verdict("F(x*, θ) = 0", True, "at every KKT point: F stacks stationarity, the equality "
                               "constraints and complementary slackness")
        smooth = self._smoothness()
        if self.coupled is not None and not self.vectorized:
            nonsing = Verdict("∂F/∂x nonsingular", None, "not decided symbolically (the matrix variable's rows are "
                              "coupled: no block elimination); the layer measures it at each solution (the "
                              "condition of the LU factors of ∂F/∂x, or the residual of its Krylov solve)",
                              ["∂F/∂x is nonsingular at the solution"])
            return IFTReport(solution, smooth, nonsing, list(a.assumptions))
        try:
            steps = self.pivots
        except MathError as exc:
            nonsing = Verdict("∂F/∂x nonsingular", False, exc.message)
        else:
            conditions = [self.step_condition(s) for s in steps if s.condition]
            conditions += [f"{p.condition} ('{p.first}' and '{p.second}' never active together)"
                           for p in self.exclusive_used if not p.proven]
            pivots = ", ".join(f"{s.kind} pivot for {s.unknown}" for s in steps)
            nonsing = Verdict("∂F/∂x nonsingular", True if not conditions else None,
                              f"block elimination: {pivots}", [_tidy(c) for c in conditions])
        assumptions = list(a.assumptions) + list(a.inactive.values())
        return IFTReport(solution, smooth, nonsing, assumptions)

    def _bound_at_zero(self, value):
        """The indicator of an inequality block g = −value ≤ 0 (value ≥ 0 is a constraint), if any."""
        a = self.analysis
        for m in self.system.multipliers:
            if m.name in a.indicators and _negated(a.template(m.function), value):
                s = a.indicators[m.name][0]
                return a.alg.vectors[s][0].name if s in a.alg.vectors else s.name
        return None

    def _smoothness(self) -> Verdict:
        reqs, failed, why = [], [], []
        alg = self.analysis.alg
        for block in self.system.residual:
            for arg, relation, what in domain_requirements(block.expr):
                if self.coupled is not None and is_matrix(arg) and arg.shape[1] != 1:
                    # no templates for matrices: a declared-positive variable is all it reads
                    value = None
                    ok = True if alg.assumptions.get(arg, {}).get("positive") else None
                else:
                    value = alg.template_of(alg.lin(arg)) if is_matrix(arg) else alg.scalar(arg)
                    ok = value.is_positive if relation == ">" else value.is_nonzero
                text = f"{plain(arg)} {relation} 0" + (" elementwise" if is_matrix(arg) else "")
                bound = self._bound_at_zero(value) if relation == ">" and not ok else None
                if ok:
                    why.append(f"{what} needs {text}, which the declarations give")
                elif bound is not None:  # p^1.5 with p ≥ 0: smooth where p > 0, i.e. off the active set
                    why.append(f"{what} needs {text}: it holds where '{plain(arg)} >= 0' is inactive ({bound} = 1) "
                               f"under strict complementarity; where it is active, {plain(arg)} = 0 is fixed "
                               "and the IFT applies to F without those entries' stationarity")
                elif ok is False:
                    failed.append(text)
                elif text not in reqs:
                    reqs.append(text)
                    if what in ("sign", "abs"):  # a kink: norm1, abs
                        why.append(f"{what}({plain(arg)}) is not differentiable where an entry is 0 "
                                   "(a solution there, usual for norm1, is not covered)")
        for kink in self.kink_conditions():
            reqs.append(kink)
            why.append("an operator is linear between its kinks")
        if failed:
            return Verdict("F continuously differentiable", False, "violated: " + "; ".join(failed))
        reason = "; ".join(dict.fromkeys(why)) or "F is built from smooth functions"
        return Verdict("F continuously differentiable", True if not reqs else None, reason, reqs)


    def kink_conditions(self) -> list:
        """'v ≠ t elementwise'-like requirements: no entry of an operator's argument at a kink."""
        out = []
        for name, (_, _, kink) in self.analysis.kinks.items():
            text = f"{plain(kink.condition)} ≠ 0" + (" elementwise" if is_matrix(kink.condition) else "")
            out.append(f"{text} (the kink of {name} in {kink.call})")
        return out


def _negated(a, b) -> bool:
    return a is not None and b is not None and sp.expand(a + b) == 0


def _zero_rhs(row):
    return Lin((row.size, sp.S.One))


def _tidy(condition: str) -> str:
    return condition.replace("**", "^")
