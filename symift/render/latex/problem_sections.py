"""Sections 1 to 4 of the document, the problem and its conditions: the problem as stated, the
Lagrangian, the system F(x, θ) = 0 (with the active sets) and the implicit function theorem.
:class:`ProblemSections` is a mixin of :class:`~.document.Document` and uses its helpers
(``self.m``, ``self.lines``, ``self.since``, ...).
"""
from __future__ import annotations

import re
from pathlib import Path

import sympy as sp

from ...language.model import Binary, Call, Neg, Transpose
from ...symbolic.conditions import domain_requirements
from ...symbolic.expr import is_matrix
from ...symbolic.kkt import inner
from ...symbolic.printing import text as plain
from .layout import LINE, pack, text, width
from .printer import index
from .problem import DEFINITIONS, ModelLatexPrinter, space


class ProblemSections:
    """The sections on the problem (a mixin of :class:`~.document.Document`)."""

    # ---- 1. the problem as stated
    def section_problem(self) -> str:
        p, mp = self.problem, self.model
        rows = []
        variables = ", ".join(self.name(v.name) for v in p.variables)
        if p.kind == "optimization":
            chunks = pack(mp.terms(p.objective.expr), LINE - 25)
            rows.append(r"\underset{%s}{\text{%s}} & %s &" % (variables, p.objective.sense, chunks[0]))
            rows += [r" & \quad %s &" % c for c in chunks[1:]]
            for k, c in enumerate(p.constraints):
                rel = {"==": "=", "<=": r"\leq", ">=": r"\geq"}[c.relation]
                rows.append(r"%s & %s %s %s & \text{multiplier } %s \in %s" % (
                    r"\text{subject to}" if k == 0 else "", mp.doprint(c.lhs), rel, mp.doprint(c.rhs),
                    self.name(c.multiplier), space(c.shape)))
        else:
            for k, e in enumerate(p.equations):
                label = r"\text{(%s)}" % text(e.label) if e.label else ""
                rows.append(r"%s & %s = %s & %s" % (r"\text{solve for } %s:" % variables if k == 0 else "",
                                                    mp.doprint(e.lhs), mp.doprint(e.rhs), label))
        out = [r"\section{The problem}", self._rows_text() or
               r"As stated in \texttt{%s}:" % text(Path(p.source.filename).name),
               "\\[\n\\begin{array}{r@{\\quad}l@{\\qquad}l}\n" + " \\\\[2pt]\n".join(rows) + "\n\\end{array}\n\\]"]
        used = sorted(f for f in _functions(p) if f in DEFINITIONS)
        if used:
            out.append("Here " + " and ".join("$%s$" % DEFINITIONS[f] for f in used) + ".")
        items = []
        if len(p.dims) == 1:
            items.append(r"size $%s$, a symbolic positive integer;" % self.name(p.dims[0].name))
        elif p.dims:
            items.append(r"sizes $%s$, symbolic positive integers;" % ", ".join(self.name(x.name) for x in p.dims))
        params = []
        for prm in p.params:
            extra = []
            if "pd" in prm.attributes:
                extra.append("symmetric positive definite")
            elif "psd" in prm.attributes:
                extra.append("symmetric positive semidefinite")
            elif "symmetric" in prm.attributes:
                extra.append("symmetric")
            if prm.sign:
                extra.append("$%s %s 0$" % (self.name(prm.name), ">" if prm.sign == ">0" else r"\geq"))
            if prm.above:
                extra.append("$%s > %s$ entrywise" % (self.name(prm.name), self.name(prm.above)))
            params.append(r"$%s \in %s$%s" % (self.name(prm.name), space(prm.shape),
                                             " (%s)" % ", ".join(extra) if extra else ""))
        if params:
            items.append("parameter%s %s;" % ("s" if len(params) > 1 else "", ", ".join(params)))
        variables = []
        for v in p.variables:
            variables.append(r"$%s \in %s$%s" % (self.name(v.name), space(v.shape), r" with $%s > 0$" %
                                                self.name(v.name) if v.positive else ""))
        items.append("variable%s %s%s;" % ("s" if len(variables) > 1 else "", ", ".join(variables),
                                           ": only strictly positive solutions are considered"
                                           if any(v.positive for v in p.variables) else ""))
        items[-1] = items[-1][:-1] + "."
        listed = "\n".join(r"\item " + i for i in items)
        out.append("The declarations are\n\\begin{itemize}\n" + listed + "\n\\end{itemize}")
        return "\n".join(out)

    def _rows_text(self) -> str:
        """A matrix variable whose problem separates by rows: say so, and that the row problem follows."""
        rows = getattr(self.d, "rows", None)
        if rows is None:
            return ""
        var = next(v for v in rows.problem.variables if v.name == rows.variable)
        aligned = ", ".join("$%s$" % self.name(a) for a in rows.aligned)
        shared = ", ".join("$%s$" % self.name(a) for a in rows.shared)
        return ("In \\texttt{%s} the variable $%s \\in %s$ is a matrix, and the problem separates by its rows: "
                "row $i$ of $%s$ solves a problem of its own, with row $i$ of %s%s. Below, $%s$%s and the "
                "multipliers stand for their row $i$, and every Jacobian holds row by row, "
                "$\\mathrm{d}%s_i = J\\,\\mathrm{d}%s_i$. The problem of one row:"
                % (text(Path(rows.problem.source.filename).name), self.name(var.name), space(var.shape),
                   self.name(var.name), aligned or "no parameter", "; " + shared + " shared by every row" if shared
                   else "", self.name(var.name), ", " + aligned if aligned else "", self.name(var.name),
                   self.name(rows.aligned[0]) if rows.aligned else r"\theta"))

    # ---- 2. conventions and the Lagrangian
    def section_lagrangian(self) -> str:
        p, kkt = self.d.lowered_problem, self.kkt   # norm1 terms as epigraphs (symbolic.lowering)
        primal = [self.name(v.name) for v in p.variables]
        out = [r"\section{Conventions and the Lagrangian}"]
        lowered = ModelLatexPrinter(p)
        for x in self.d.lowered:
            term, arg = lowered.doprint(x.term_node), lowered.doprint(x.argument_node)
            t = self.name(x.variable)
            why = ", ".join("$%s > 0$" % self.name(q) for q in x.positive) or "its coefficient is positive"
            if x.kind == "pos":
                out.append(r"The term $%s$ is not differentiable where an entry of $%s$ is 0. Since %s and the "
                           r"objective is minimized, symift writes it with a new variable $%s$ as "
                           r"$\mathbf{1}^{\top} %s$ under the constraints $%s \leq %s$ (multiplier $%s$) and "
                           r"$%s \geq 0$ (multiplier $%s$): at a solution $%s = \max(%s, 0)$, so the problems "
                           r"have the same solutions, and the new one has a smooth KKT system." % (
                               term, arg, why, t, t, arg, t, self.name(x.upper), t, self.name(x.lower), t, arg))
                continue
            out.append(r"The term $%s$ is not differentiable where an entry of $%s$ is 0. Since %s and the "
                       r"objective is minimized, symift writes the norm with a new variable $%s$ as "
                       r"$\mathbf{1}^{\top} %s$ under the constraints $%s \leq %s$ (multiplier $%s$) and "
                       r"$%s \geq -%s$ (multiplier $%s$): at a solution $%s = |%s|$, so the problems have the "
                       r"same solutions, and the new one has a smooth KKT system." % (
                           term, arg, why, t, t, arg, t, self.name(x.upper), arg, t,
                           self.name(x.lower), t, arg))
        f = r"f(%s)" % ", ".join(primal)
        if p.objective.sense == "maximize":
            out.append(r"The objective is maximized; as usual, symift minimizes its negative instead,")
        else:
            out.append(r"The objective is")
        out.append(self.display(f, [kkt.objective]))
        forms = []
        if any(c.relation != "==" for c in p.constraints):
            forms.append(r"an inequality $a \leq b$ is written $g = a - b \leq 0$ and $a \geq b$ as "
                         r"$g = b - a \leq 0$")
        if any(c.relation == "==" for c in p.constraints):
            forms.append(r"an equality $a = b$ is written $h = a - b = 0$")
        if forms:
            out.append("By convention, " + "; ".join(forms) + ". Here")
            lines = []
            for m in kkt.multipliers:
                letter = "h" if m.kind == "equality" else "g"
                rel = "=" if m.kind == "equality" else r"\leq"
                lines.append(r"%s_{%s}(%s) &= %s %s 0" % (letter, self.name(m.name), ", ".join(primal),
                                                         self.m(m.function), rel))
            out.append("\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}")
            duals = [r"$%s \in %s$%s" % (self.name(m.name), space(_model_shape(m.symbol)),
                                         r", $%s \geq 0$" % self.name(m.name) if m.kind == "inequality" else "")
                     for m in kkt.multipliers]
            pieces = [f] + [r"\langle %s, %s_{%s} \rangle" % (self.name(m.name), "h" if m.kind == "equality" else "g",
                                                             self.name(m.name))
                            if is_matrix(m.symbol) and m.symbol.shape[1] != 1
                            else r"%s^{\top} %s_{%s}" % (self.name(m.name), "h" if m.kind == "equality" else "g",
                                                         self.name(m.name)) if is_matrix(m.symbol)
                            else r"%s\, %s_{%s}" % (self.name(m.name), "h" if m.kind == "equality" else "g",
                                                    self.name(m.name)) for m in kkt.multipliers]
            out.append("With the multipliers %s, the Lagrangian $L = %s$ is" % (", ".join(duals), " + ".join(pieces)))
        else:
            out.append("There are no constraints: the Lagrangian is the objective itself,")

        terms = self.terms(kkt.objective)
        for m in kkt.multipliers:
            terms.append(self.printer.signed(inner(m.symbol, m.function)))
        args = ", ".join(primal + [self.name(m.name) for m in kkt.multipliers])
        params = ", ".join(self.name(x) for x in self.d.parameters)
        out.append(self.display(r"L(%s%s)" % (args, "; " + params if params else ""), [terms]))
        return "\n".join(out)

    # ---- 3. the KKT system
    def section_kkt(self) -> str:
        out = [r"\section{The system $F(x, \theta) = 0$}"]
        params = ", ".join(self.name(x) for x in self.d.parameters) or r"\theta"
        if self.problem.kind == "optimization":
            lines = []
            for name, (lhs, rel, rhs) in self.d.kkt.items():
                head = r"\nabla_{%s} L = " % self.name(name[len("stationarity in "):]) \
                    if name.startswith("stationarity in ") else ""
                relation = {"=": "=", "≤": r"\leq", "≥": r"\geq"}[rel]
                # a long left-hand side breaks after whole terms (right-aligned continuation lines)
                chunks = pack(self.terms(lhs, False), LINE - 30 - width(head))
                chunks[0] = head + chunks[0]
                lines += chunks[:-1]
                lines.append(r"%s &%s %s && \text{%s}" % (chunks[-1], relation, self.m(rhs, False),
                                                          self.label(name)))
            out.append("A solution and its multipliers satisfy the Karush--Kuhn--Tucker conditions")
            out.append("\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}")
            stationarity = [b.expr for b in self.kkt.residual if b.kind == "stationarity"]
            symmetric = sorted((q for q in self.facts.symmetric if q.name in self.d.parameters
                                and any(q in e.free_symbols for e in stationarity)), key=str)
            if symmetric:  # ∇(½zᵀQz) = ½(Q + Qᵀ)z = Qz
                out.append("(stationarity uses %s)." % ", ".join(self.fact(("symmetric", q)) for q in symmetric))
            kinds = list(dict.fromkeys(b.kind for b in self.kkt.residual))
            names = {"stationarity": "stationarity", "primal feasibility": "the equality constraints",
                     "complementary slackness": "complementary slackness"}
            listed = [names[k] for k in kinds]
            listed = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
            out.append(r"The equations among them (%s) form the residual $F$, with %s and %s:"
                       % (listed, self._unknowns_text(), self._parameters_text()))
        else:
            out.append(r"The equations are the system itself, with %s and %s:"
                       % (self._unknowns_text(), self._parameters_text()))
        rows = [[b.expr] for b in self.kkt.residual]
        out.append(self.block_matrix("F(x, %s)" % params, rows, lambda i, j: "F_{%d}" % i, " = 0"))
        if len(self.kkt.residual) > 1:
            out.append("(rows: %s)." % "; ".join(self.label(b.name) for b in self.kkt.residual))
        if self.problem.kind == "optimization" and any(m.kind == "inequality" for m in self.kkt.multipliers):
            out.append(r"The inequalities (primal feasibility $g \leq 0$ and dual feasibility) are not part of "
                       r"$F$; they decide which constraints are active at the solution.")
            out += self._active_sets()
        out += self._operator_pieces() + self._maps()
        if [u.name for u in self.a.unknowns] != list(self.d.unknowns):
            out.append(r"The unknowns that remain are $x = (%s)$." %
                       ", ".join(self.name(u.name) for u in self.a.unknowns))
        return "\n\n".join(out)

    def _parameters_text(self) -> str:
        names = [self.name(x) for x in self.d.parameters]
        if not names:
            return "no parameters"
        return "the parameter $%s$" % names[0] if len(names) == 1 else "parameters $%s$" % ", ".join(names)

    def _unknowns_text(self) -> str:
        names = [self.name(u) for u in self.d.unknowns]
        return "the unknown $x = %s$" % names[0] if len(names) == 1 else "unknowns $x = (%s)$" % ", ".join(names)

    def _active_sets(self) -> list:
        out = []
        by_name = {m.name: m for m in self.kkt.multipliers}
        signs = [r"$%s > 0$" % self.name(v.name) for v in self.problem.variables if v.positive]
        signs += [r"$%s %s 0$" % (self.name(x.name), ">" if x.sign == ">0" else r"\geq")
                  for x in self.problem.params if x.sign]
        for name in self.a.inactive:
            m = by_name[name]
            c, lam = m.constraint, self.name(name)
            rel = {"<=": r"\leq", ">=": r"\geq"}[c.relation]
            out.append(r"The constraint $%s %s %s$ is inactive: $g_{%s} = %s < 0$ under the declared signs (%s). "
                       r"By complementary slackness $%s = 0$ near the solution, so $%s$ and its complementary "
                       r"slackness row drop out of $F$ (and $\partial %s / \partial \theta = 0$)." % (
                           self.model.doprint(c.lhs), rel, self.model.doprint(c.rhs), lam,
                           self.m(m.function, False), ", ".join(signs), lam, lam, lam))
        for name, (s, size, _) in self.a.indicators.items():
            m = by_name[name]
            lam, g = self.name(name), m.function
            s_tex = self._vector(s) if s in self.alg.vectors else self.m(s)
            simple = ""
            if self.printer._negative(g):
                simple = r" = \mathbb{I}[%s > 0]" % self.m(-g, False)
            vector = is_matrix(m.symbol)
            domain = r"\{0, 1\}^{%s}" % self.m(size) if vector else r"\{0, 1\}"
            si, li = (index(s_tex, "i"), index(lam, "i")) if vector else (s_tex, lam)
            gi = "g_i" if vector else "g_{%s}" % lam
            out.append(
                (r"Which of the constraints $g_{%s} = %s \leq 0$ are active depends on the data. " if vector else
                 r"Whether the constraint $g_{%s} = %s \leq 0$ is active depends on the data. ") % (
                    lam, self.m(g, False)) +
                r"Let $%s = \mathbb{I}[g_{%s} < 0]%s \in %s$%s: $%s = 1$ where the constraint is inactive "
                r"(so $%s = 0$) and $%s = 0$ where it is active ($%s = 0$). Under strict complementarity "
                r"($%s > 0$ wherever $%s = 0$), differentiating $%s %s = 0$ gives $\mathrm{d}%s = 0$ where "
                r"the constraint is active and $\mathrm{d}%s = 0$ where it is not: the complementary "
                r"slackness row is divided by $%s$ or by $%s$, and reads "
                r"$(1 - %s)\,\mathrm{d}%s + %s\,\mathrm{d}%s = 0$." % (
                    s_tex, lam, simple, domain, " (elementwise)" if vector else "", si, li, si, gi, li, gi, li, gi,
                    gi, li, li, gi, si, gi, si, li))
        return out

    # ---- 4. the implicit function theorem
    def _operator_pieces(self) -> list:
        """Each prox / projection of a fixed point, written exactly with its pieces' indicators."""
        out = []
        for call, kinks in self._kinks_by_call().items():
            if call.func in ("softmax", "proj_simplex", "proj_l2ball"):
                continue  # a map: said by _maps
            kinks = list(kinks)
            vector = is_matrix(kinks[0].indicator)
            names = [self._vector(self.a.kinks[k.name][0]) if vector else self.m(k.indicator) for k in kinks]
            defs = ", ".join(r"$%s = \mathbb{I}[%s > 0]$" % (n, self.m(k.condition, False))
                             for n, k in zip(names, kinks, strict=True))
            conds = ", ".join(r"$%s \neq 0$" % self.m(k.condition, False) for k in kinks)
            both = " (never both 1)" if len(kinks) == 2 else ""
            out.append(
                r"The operator $%s$ is linear between its kinks. With the indicators of its pieces %s%s"
                r"%s, it is exactly $%s$. Where no entry is at a kink (%s%s) the indicators are constant "
                r"nearby: $F$ is differentiable there, and its derivative holds them fixed (the generalized "
                r"Jacobian of the operator, on each piece)." % (
                    self.model.doprint(call), defs, r" $\in \{0, 1\}^{%s}$ elementwise" % self.m(
                        kinks[0].indicator.shape[0]) if vector else "", both, self.m(kinks[0].value, False),
                    conds, " elementwise" if vector else ""))
        return out

    def _maps(self) -> list:
        out = []
        for m in self.d.maps.values():
            p = self.m(m.symbol)
            at = (r" At the solution $%s = %s$ (the equation), and the derivatives below use it." % (
                p, self.m(m.equals)) if m.equals is not None else "")
            if m.kind == "proj_simplex":
                s, tau, u = self.m(m.support), self.m(m.threshold), self.m(m.arg, False)
                out.append(r"Here $%s = %s = \max(u - %s \mathbf{1}, 0)$ with $u = %s$ and $%s$ such that "
                           r"$\mathbf{1}^{\top} %s = 1$. It is linear between its kinks: with its support "
                           r"$%s = \mathbb{I}[u - %s \mathbf{1} > 0] \in \{0, 1\}^{%s}$, constant where no entry of "
                           r"$u - %s \mathbf{1}$ is 0, its differential is $\mathrm{d}%s = %s \odot \mathrm{d}u - "
                           r"%s\,(%s^{\top} \mathrm{d}u) / \mathbf{1}^{\top} %s$.%s" % (
                               p, self.model.doprint(m.node), tau, u, tau, p, s, tau, self.m(m.arg.shape[0]), tau,
                               p, s, s, s, s, at))
                continue
            if m.kind == "proj_l2ball":
                s, norm, r = self.m(m.support), self.m(m.threshold), self.m(m.radius)
                out.append(r"Here $%s = %s$ with $u = %s$ and $%s = \lVert u \rVert_{2}$: $u$ inside the ball, "
                           r"$%s u / %s$ outside. With $%s = \mathbb{I}[%s > %s] \in \{0, 1\}$, constant where "
                           r"$%s \neq %s$, its differential is $\mathrm{d}%s = (1 - %s)\,\mathrm{d}u + %s \frac{%s}{%s}"
                           r"(\mathrm{d}u - %s %s^{\top} \mathrm{d}u / %s^{2}) + %s\, %s\, \mathrm{d}%s / %s$.%s" % (
                               p, self.model.doprint(m.node), self.m(m.arg, False), norm, r, norm, s, norm, r, norm,
                               r, p, s, s, r, norm, p, p, r, s, p, r, r, at))
                continue
            if m.symbol.shape[1] != 1:  # of a matrix, row by row; the tangent keeps p (calculus.d_map)
                out.append(r"Here $%s = %s$, the softmax of each row of its argument $u$, with the differential "
                           r"$\mathrm{d}%s = %s \odot \mathrm{d}u - %s \odot ((%s \odot \mathrm{d}u) \mathbf{1} "
                           r"\mathbf{1}^{\top})$. At the solution $%s = %s$ (the equation); the tangent below keeps "
                           r"$%s$, since $%s \oslash %s \to e^{-\eta \mu} < 1$, not 1, where an entry of $%s$ tends "
                           r"to 0 ($\mu$ its multiplier on the simplex)." % (
                               p, self.model.doprint(m.node), p, p, p, p, p, self.m(m.equals), p, p,
                               self.m(m.equals), self.m(m.equals)))
                continue
            out.append(r"Here $%s = %s$, a smooth map of its argument $u$ with the differential "
                       r"$\mathrm{d}%s = %s \odot \mathrm{d}u - %s\,(%s^{\top} \mathrm{d}u)$.%s" % (
                           p, self.model.doprint(m.node), p, p, p, p, at))
        return out

    def _kinks_by_call(self) -> dict:
        out = {}
        for _, _, k in self.a.kinks.values():
            out.setdefault(k.node, []).append(k)
        return out

    def section_ift(self) -> str:
        ift = self.d.ift
        out = [r"\section{The implicit function theorem}",
               (r"If (i) $F(x^\star, \theta) = 0$ at a solution $x^\star$, (ii) $F$ is continuously "
                r"differentiable near $(x^\star, \theta)$ and (iii) $\partial F / \partial x$ is nonsingular "
                r"there, then near $\theta$ the solution $x^\star(\theta)$ is a continuously differentiable "
                r"function of the parameters, with"),
               (r"\[ \frac{\partial x^\star}{\partial \theta} = -\left(\frac{\partial F}{\partial x}\right)^{-1} "
                r"\frac{\partial F}{\partial \theta}. \]")]
        if self.problem.kind == "root":
            first = "the equations of the problem are $F$ itself."
        else:
            first = ("at every KKT point, since $F$ stacks stationarity, the equality constraints and "
                     "complementary slackness.")
        items = [(ift.solution, first), (ift.smoothness, self._smoothness()),
                 (ift.nonsingularity, self._nonsingularity())]
        lines = []
        for k, (verdict, why) in enumerate(items):
            mark = {True: "holds", False: "fails", None: "holds if"}[verdict.holds]
            lines.append(r"\item[(%s)] \textbf{%s}%s %s" % ("i" * (k + 1), mark, "" if verdict.holds is None
                                                             else ":", why))
        out.append("\\begin{itemize}\n" + "\n".join(lines) + "\n\\end{itemize}")
        assumptions = self._assumptions()
        if assumptions:
            out.append("This rests on: " + "; ".join(assumptions) + ".")
        return "\n".join(out)

    def _smoothness(self) -> str:

        verdict = self.d.ift.smoothness
        given, required, failed = [], [], []
        seen = set()
        for block in self.kkt.residual:
            for arg, relation, what in domain_requirements(block.expr):
                key = f"{plain(arg)} {relation} 0" + (" elementwise" if is_matrix(arg) else "")
                if key in seen:
                    continue
                seen.add(key)
                math = "$%s %s 0$%s" % (self.m(arg, False), ">" if relation == ">" else r"\neq",
                                        " elementwise" if is_matrix(arg) else "")
                phrase = "%s needs %s" % (_CONSTRUCT.get(what, text(what)), math)
                if key in verdict.requirements:
                    required.append(math)
                elif verdict.holds is False and key in verdict.reason:
                    failed.append(phrase)
                else:
                    given.append(phrase + ", which the declarations give")
        for _, _, k in self.a.kinks.values():
            required.append(r"$%s \neq 0$%s" % (self.m(k.condition, False),
                                                 " elementwise" if is_matrix(k.condition) else ""))
        if failed:
            return "; ".join(failed) + "."
        if required:
            return ", ".join(required) + (" (%s)." % "; ".join(given) if given else ".")
        return ("; ".join(given) + ".") if given else "$F$ is built from smooth functions."

    def _nonsingularity(self) -> str:
        if self.d.tangent_only:
            return (r"$\partial F / \partial x$ is nonsingular at the solution. symift does not decide it "
                    r"symbolically here (no block elimination for a coupled matrix variable): the layer measures "
                    r"it at each solution, by the condition of the LU factors of $\partial F / \partial x$ or the "
                    r"residual of its Krylov solve, and flags a singular system.")
        if self.trace is None:
            return self._failure_text() + "."
        parts, conditions = [], []
        for k, pivot in enumerate(self.trace.pivots, 1):
            parts.append(r"%s pivot $@P@_{%d}$ for $%s$" % (_KIND[pivot.kind], k, self.name(pivot.step.unknown)))
            conditions += self._pivot_conditions(k, pivot, define=True)
        head = ("; ".join(conditions) + ". " if conditions else "")
        if len(parts) == 1:
            return head + "The elimination of %s inverts %s%s" % (
                self.ref("elimination"), parts[0], ", which is invertible." if not conditions else ".")
        return head + ("The block elimination of " + self.ref("elimination") + " inverts one pivot per unknown: "
                       + ", ".join(parts) + ("; each of them is invertible." if not conditions else "."))

    def _assumptions(self) -> list:
        out = []
        for a in self.a.assumptions:
            m = re.match(r"strict complementarity for (\w+):", a)
            if m:
                lam = self.name(m.group(1))
                out.append(r"strict complementarity for $%s$ ($%s > 0$ wherever $g_i = 0$)" % (lam, index(lam, "i")))
            elif a.startswith("no entry at a kink of "):
                continue  # said below, with the operator in its mathematical form
            else:
                out.append(text(a))
        for call, kinks in self._kinks_by_call().items():
            names = " and ".join("$%s$" % self.m(k.indicator) for k in kinks)
            out.append(r"no entry at a kink of $%s$ (%s constant near the solution)" % (self.model.doprint(call),
                                                                                      names))
        for name in self.a.inactive:
            out.append(r"$%s = 0$ (an inactive constraint, %s)" % (self.name(name), self.ref("kkt")))
        return out


_CONSTRUCT = {"log": r"$\log$", "abs": r"$\lvert\cdot\rvert$", "sign": r"$\operatorname{sign}$"}
_KIND = {"identity": "a scaled identity", "scalar": "a scalar", "diagonal": "a diagonal",
         "symbol": "a matrix", "general": "a general"}


def _model_shape(symbol) -> tuple:
    if not is_matrix(symbol):
        return ()
    shape = tuple(s.name if isinstance(s, sp.Symbol) else int(s) for s in symbol.shape)
    return shape[:1] if shape[1] == 1 else shape


def _functions(problem) -> set:
    """Names of the functions called anywhere in the problem."""
    found, stack = set(), []
    if problem.objective is not None:
        stack.append(problem.objective.expr)
    for c in (*problem.constraints, *problem.equations):
        stack += [c.lhs, c.rhs]
    while stack:
        e = stack.pop()
        if isinstance(e, Call):
            found.add(e.func)
            stack += list(e.args)
        elif isinstance(e, Binary):
            stack += [e.left, e.right]
        elif isinstance(e, (Neg, Transpose)):
            stack.append(e.operand)
    return found
