"""``symift.derive``: the Derivation object (SPEC §2) and the ``symift derive`` command."""
from __future__ import annotations

import sympy as sp

from .errors import MathError, ProblemError, UnsupportedError
from .expr import is_matrix
from .ift import Analysis, IFTReport, Verdict
from .kkt import build_kkt
from .model import Problem


class Derivation:
    """Lagrangian, KKT system, IFT report and closed-form Jacobians of a problem.

    dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ, computed block-wise (see :mod:`symift.ift`).
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        try:
            self._kkt = build_kkt(problem)
            self.analysis = Analysis(self._kkt)
        except NotImplementedError as exc:
            raise UnsupportedError(f"cannot differentiate this problem: {exc}", None, problem.source) from None
        self._jacobians: dict = {}
        self._steps: dict = {}
        self._ift: IFTReport | None = None

    # ---- SPEC §2 attributes
    @property
    def symbols(self) -> dict:
        out = dict(self._kkt.symbols)
        for s, size, _ in self.analysis.indicators.values():
            symbol = self.analysis.alg.vectors[s][0] if s in self.analysis.alg.vectors else s
            out[symbol.name] = symbol
        return out

    @property
    def lagrangian(self):
        return self._kkt.lagrangian

    @property
    def conventions(self) -> list:
        return list(self._kkt.conventions)

    @property
    def kkt(self) -> dict:
        """Named KKT conditions: name -> (lhs, relation, rhs)."""
        return {c.name: (c.lhs, c.relation, c.rhs) for c in self._kkt.conditions}

    @property
    def residual(self) -> dict:
        """F(x, θ) as named blocks, in the order of x = (primal, equality duals, inequality duals)."""
        return {b.name: b.expr for b in self._kkt.residual}

    @property
    def unknowns(self) -> list:
        return [u.name for u in self._kkt.unknowns]

    @property
    def parameters(self) -> list:
        return [p.name for p in self.problem.params]

    @property
    def indicators(self) -> dict:
        """Indicator name -> its meaning (e.g. s = 1[g < 0], the inactive set)."""
        return {s.name: meaning for s, _, meaning in self.analysis.indicators.values()}

    @property
    def facts(self) -> list:
        """Facts the simplifier used, as sentences (feasibility, inactive multipliers, ...)."""
        return list(self.analysis.inactive.values()) + list(self.analysis.facts.used)

    @property
    def ift(self) -> IFTReport:
        if self._ift is None:
            self._ift = self._report()
        return self._ift

    def jacobian(self, var: str, param: str):
        """Closed form of d var*/d param as a sympy (matrix) expression over :attr:`symbols`.

        For a matrix parameter P the result is the directional derivative along ``dP``
        (a MatrixSymbol named ``"d" + P``), e.g. dz[dQ] = −Q⁻¹ dQ z + ….
        """
        self._check_names(var, param)
        if (var, param) not in self._jacobians:
            solution, _ = self._solve(param)
            self._jacobians[var, param] = self.analysis.alg.to_sympy(solution[var]) if var in solution \
                else self._inactive_jacobian(var, param)
        return self._jacobians[var, param]

    def jacobians(self, wrt=None, params=None) -> dict:
        """{(var, param): closed form} for every requested pair (primal variables by default)."""
        wrt = wrt or [v.name for v in self.problem.variables]
        params = params or self.parameters
        return {(v, p): self.jacobian(v, p) for v in wrt for p in params}

    def steps(self, param: str) -> list:
        """The elimination steps used for d·/d param, in order (pivot, Schur complements, facts)."""
        self._check_names(None, param)
        return self._solve(param)[1]

    def check_at(self, values: dict, dims: dict | None = None) -> dict:
        """Numeric IFT check at a point: is ∂F/∂x finite and nonsingular there (rank, condition)?"""
        from .ift import numeric_check

        return numeric_check(self._kkt, values, dims or {})

    def jacobian_function(self, var: str, param: str):
        """A JAX function of keyword arrays -> the Jacobian array d var/d param (see symift.jax)."""
        from .jax import jacobian_function

        return jacobian_function(self, var, param)

    def to_latex(self, wrt=None, params=None) -> str:
        """The whole derivation as a complete LaTeX document (see :mod:`symift.latex`)."""
        from .latex import document

        for v in wrt or [] if self.parameters else []:
            self._check_names(v, self.parameters[0])
        for p in params or []:
            self._check_names(None, p)
        return document(self, wrt, params)

    def _repr_latex_(self) -> str:
        """The Jacobians as display math, for Jupyter."""
        from .latex import summary

        return summary(self)

    # ---- internals
    def _check_names(self, var, param):
        names = self.unknowns + list(self.analysis.inactive)
        if var is not None and var not in names:
            raise ProblemError(f"'{var}' is not a variable or multiplier of this problem "
                               f"(have: {', '.join(names)})", None, self.problem.source)
        if param not in self.parameters:
            raise ProblemError(f"'{param}' is not a parameter of this problem "
                               f"(have: {', '.join(self.parameters) or 'none'})", None, self.problem.source)

    def _solve(self, param: str):
        if param not in self._steps:
            symbol = self._kkt.symbols[param]
            rhs, _ = self.analysis.rhs(symbol)
            try:
                self._steps[param] = self.analysis.eliminate(rhs)
            except NotImplementedError as exc:
                raise UnsupportedError(f"cannot eliminate: {exc}", None, self.problem.source) from None
        return self._steps[param]

    def _inactive_jacobian(self, var, param):
        u = next(m for m in self._kkt.multipliers if m.name == var)
        p = self._kkt.symbols[param]
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
        try:
            _, steps = a.eliminate({r.name: _zero_rhs(r) for r in a.rows})
        except MathError as exc:
            nonsing = Verdict("∂F/∂x nonsingular", False, exc.message)
        else:
            conditions = [s.condition for s in steps if s.condition]
            pivots = ", ".join(f"{s.kind} pivot for {s.unknown}" for s in steps)
            nonsing = Verdict("∂F/∂x nonsingular", True if not conditions else None,
                              f"block elimination: {pivots}", [_tidy(c) for c in conditions])
        assumptions = list(a.assumptions) + list(a.inactive.values())
        return IFTReport(solution, smooth, nonsing, assumptions)

    def _smoothness(self) -> Verdict:
        reqs, failed, why = [], [], []
        alg = self.analysis.alg
        for block in self._kkt.residual:
            for arg, relation, what in _domain_requirements(block.expr):
                value = alg.template_of(alg.lin(arg)) if is_matrix(arg) else alg.scalar(arg)
                ok = value.is_positive if relation == ">" else value.is_nonzero
                text = f"{_text(arg)} {relation} 0" + (" elementwise" if is_matrix(arg) else "")
                if ok:
                    why.append(f"{what} needs {text}, which the declarations give")
                elif ok is False:
                    failed.append(text)
                elif text not in reqs:
                    reqs.append(text)
        if failed:
            return Verdict("F continuously differentiable", False, "violated: " + "; ".join(failed))
        reason = "; ".join(dict.fromkeys(why)) or "F is built from smooth functions"
        return Verdict("F continuously differentiable", True if not reqs else None, reason, reqs)


def _zero_rhs(row):
    from .algebra import Lin
    return Lin((row.size, sp.S.One))


def _tidy(condition: str) -> str:
    return condition.replace("**", "^")


def _nodes(e):
    """Sub-expressions of e, not descending into the Lambda of an elementwise function."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ElementwiseApplyFunction):
            stack.append(node.expr)
        elif isinstance(node, sp.Basic):
            stack.extend(node.args)


def _domain_requirements(e):
    """(argument, '>' or '≠', construct) for every place where F stops being C¹."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    out = []
    for node in _nodes(e):
        if isinstance(node, sp.log):
            out.append((node.args[0], ">", "log"))
        elif isinstance(node, (sp.Abs, sp.sign)):
            out.append((node.args[0], "≠", node.func.__name__.lower()))
        elif isinstance(node, sp.Pow) and node.exp.is_number and node.exp < 0:
            out.append((node.base, "≠", "a negative power"))
        elif isinstance(node, sp.Pow) and node.exp.is_number and not node.exp.is_integer:
            out.append((node.base, ">", "a fractional power"))
        elif isinstance(node, sp.HadamardPower) and node.exp.is_number and node.exp < 0:
            out.append((node.base, "≠", "an elementwise negative power"))
        elif isinstance(node, sp.HadamardPower) and node.exp.is_number and not node.exp.is_integer:
            out.append((node.base, ">", "an elementwise fractional power"))
        elif isinstance(node, ElementwiseApplyFunction):
            body = node.function.expr
            (var,) = node.function.variables
            for arg, rel, what in _domain_requirements(body):
                if arg == var:
                    out.append((node.expr, rel, what))
    return out


from .printing import text  # noqa: E402

_text = text


def derive(problem: Problem) -> Derivation:
    """Derive the Lagrangian, KKT system, IFT report and Jacobians of a problem."""
    return Derivation(problem)


def derive_command(problem: Problem, args) -> int:
    """``symift derive FILE``: print the derivation; exit 1 if the IFT fails."""
    if getattr(args, "latex", None) or getattr(args, "pdf", False):
        from .latex import latex_command

        return latex_command(Derivation(problem), args)
    d = Derivation(problem)
    out = [problem.summary(), ""]
    if d.conventions:
        out += ["Conventions:"] + [f"  {c}" for c in d.conventions] + [""]
    if d.lagrangian is not None:
        out += ["Lagrangian:", f"  L = {text(d.lagrangian)}", ""]
    out.append("KKT conditions:" if problem.kind == "optimization" else "Equations:")
    for name, (lhs, rel, rhs) in d.kkt.items():
        out.append(f"  {name}:  {text(lhs)} {rel} {text(rhs)}")
    out += ["", f"Residual F(x, θ) with x = ({', '.join(d.unknowns)}):"]
    for name, e in d.residual.items():
        out.append(f"  {name}:  {text(e)}")
    out += ["", "Implicit function theorem:"] + [f"  {line}" for line in str(d.ift).splitlines()]
    for name, meaning in d.indicators.items():
        out.append(f"  indicator {meaning}")
    if d.ift.holds is False:
        print("\n".join(out))
        failed = next(c for c in d.ift.conditions if c.holds is False)
        raise MathError(f"the implicit function theorem does not apply: {failed.name}: {failed.reason}",
                        None, problem.source)
    wrt = args.wrt or None
    params = args.param or None
    for v in wrt or []:
        d._check_names(v, d.parameters[0] if d.parameters else "")
    out += ["", "Jacobians:"]
    for (v, p), J in d.jacobians(wrt, params).items():
        sym = d.symbols[p]
        label = f"d{v}/d{p}" if not (is_matrix(sym) and sym.shape[1] != 1) else f"d{v}[d{p}]"
        out.append(f"  {label} = {text(J)}")
        for step in d.steps(p):
            note = f" ({step.condition})" if step.condition else ""
            facts = f"; using {', '.join(step.facts)}" if step.facts else ""
            out.append(f"      eliminate {step.unknown} with the {step.kind} pivot {text(step.pivot)} "
                       f"from '{step.row}'{note}{facts}")
    if d.facts:
        out += ["", "Facts used:"] + [f"  {f}" for f in d.facts]
    print("\n".join(out))
    return 0
