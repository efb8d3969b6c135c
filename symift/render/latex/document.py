"""The derivation as a document.

:func:`document` writes the whole derivation as it would be done by hand: the problem, the
Lagrangian, the KKT system F(x, θ) = 0, the three conditions of the implicit function theorem,
∂F/∂x and ∂F/∂θ as block matrices, the block elimination with its Schur complements and the
KKT facts each one uses, and dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ for every requested pair.  This module
holds the core of :class:`Document` (what it computes, its printing helpers, the summary) and
the entry points :func:`document` and :func:`summary`; the sections come from the mixins of
:mod:`.problem_sections` and :mod:`.solution_sections`.
"""
from __future__ import annotations

import re
from pathlib import Path

import sympy as sp

from ...errors import MathError, SymiftError
from ...symbolic.calculus import jacobian_lin
from ...symbolic.canonical import Lin
from ...symbolic.expr import is_matrix
from .layout import LINE, align, matrix, text, width
from .printer import LatexPrinter, join_terms, symbol_name
from .problem import ModelLatexPrinter, is_matrix_param
from .problem_sections import ProblemSections
from .replay import fact_keys, recording, replay
from .solution_sections import SolutionSections

# --------------------------------------------------------------------------- the document
_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2.5cm]{geometry}
\usepackage{amsmath,amssymb}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
\renewcommand{\labelitemi}{$\bullet$}
"""

_ORDINAL = {1: "first", 2: "second", 3: "third"}


class Document(ProblemSections, SolutionSections):
    """The derivation of one problem as a LaTeX document (see :func:`document`)."""

    def __init__(self, d, wrt=None, params=None):
        self.d = d
        self.a = d.analysis
        self.alg = self.a.alg
        self.problem = d.problem
        self.kkt = d.system  # the KKT system as derived (matrix form for a coupled variable)
        self.facts = self.a.facts
        self.params = list(params or d.parameters)
        self.wrt = list(wrt or [v.name for v in self.problem.variables])
        symbols = d.symbols
        self.directions = {"d" + p for p in d.parameters if is_matrix_param(symbols[p])}
        if d.coupled is not None:  # the tangent system moves every unknown and parameter
            self.directions |= {"d" + n for n in [*d.unknowns, *d.parameters]}
        self.abbrev: dict = {}        # Inverse(X) -> Inverse(S_k), as the elimination names them
        # the document's own letters (Schur complements S_k, blocks M_ij, pivots P_k, right-hand side b)
        # must not be the name of anything in the problem
        taken = set(symbols) | {x.name for x in self.problem.dims}

        def free(candidates):
            return next((x for x in candidates if not any(n == x or n.startswith(x + "_") for n in taken)), None)

        self.letter = d.schur_letter  # the derivation's: its named S_k are the document's
        self.notation = {"@M@": free("MJKN") or r"\mathcal{M}", "@P@": free("PDER") or r"\mathcal{P}",
                         "@b@": free("brce") or r"\mathcal{B}"}
        self.printer = LatexPrinter({"directions": tuple(self.directions)})
        self.model = ModelLatexPrinter(self.problem)
        self.row_index = {r.name: i for i, r in enumerate(self.a.rows, 1)}
        self.col_index = {u.name: j for j, u in enumerate(self.a.unknowns, 1)}
        self.trace = self.failure = None
        self.results, self.traces, self.defined = {}, {}, {}
        self.introduced: list = []    # the derivation's named quantities (K) defined so far
        self.sequence: list = []      # (symbol, value) of every name, in the order the document defines them
        self.sections = {}
        self.cited = set()            # facts cited so far in the current section
        self._converted, self._printed = {}, {}

    # ---- printing helpers
    def m(self, e, abbreviate=True) -> str:
        """LaTeX of a sympy expression or a canonical Lin (with the named Schur complements)."""
        e = self._sympy(e, abbreviate)
        if e not in self._printed:
            self._printed[e] = self.printer.doprint(e)
        return self._printed[e]

    def _sympy(self, e, abbreviate=True):

        if isinstance(e, Lin):  # converting back to sympy simplifies: once per Lin
            if id(e) not in self._converted:  # factored, with the derivation's names (K, S₂)
                self._converted[id(e)] = (e, self.d.written(e))
            e = self._converted[id(e)][1]
        return e.xreplace(self.abbrev) if abbreviate and self.abbrev else e

    def terms(self, e, abbreviate=True) -> list:
        return self.printer.terms(self._sympy(e, abbreviate))

    def factor(self, e) -> str:
        return self.printer.factor(self._sympy(e))

    def name(self, n: str) -> str:
        return symbol_name(n)

    def label(self, row: str) -> str:
        """A row or condition name with its symbols in math: 'primal feasibility ($\\nu$)'."""
        m = re.fullmatch(r"(stationarity in )(\w+)", row)
        if m:
            return text(m.group(1)) + "$%s$" % self.name(m.group(2))
        m = re.fullmatch(r"(.*) \((\w+)\)", row)
        if m:
            return text(m.group(1)) + " ($%s$)" % self.name(m.group(2))
        return text(row)

    def derivative(self, var: str, param: str) -> str:
        """∂var/∂param, or ∂var/∂P[dP] (a directional derivative) for a matrix parameter."""
        p = self.d.symbols[param]
        top = self.name(var)
        if self.d.is_vec(var):  # the closed form is of vec(B)
            top = r"\operatorname{vec}(%s)" % top
        frac = r"\frac{\partial %s}{\partial %s}" % (top, self.name(param))
        if is_matrix_param(p):
            return frac + r"[\mathrm{d}%s]" % self.name(param)
        return frac

    def display(self, lhs: str, stages, note: str | None = None) -> str:
        """``lhs = stage₁ = stage₂ …`` as ``align*`` (see :meth:`lines`)."""
        return align([self.lines(lhs, stages, note)])

    def lines(self, lhs: str, stages, note: str | None = None) -> list:
        """The lines of ``lhs = stage₁ = stage₂ …`` in an ``align*``: stages share a line while they
        fit, and a long sum is broken after whole terms.

        A stage is a sympy expression, a Lin, a list of (negative, LaTeX) terms or LaTeX; a stage
        of LaTeX too wide for a line is left out unless it is the last."""
        lines, line, used = [], lhs + " &= ", width(lhs)
        started = False
        for k, stage in enumerate(stages):
            terms = stage if isinstance(stage, list) else ([(False, stage)] if isinstance(stage, str)
                                                           else self.terms(stage))
            whole = join_terms(terms)
            if isinstance(stage, str) and width(whole) > LINE and k < len(stages) - 1:
                continue
            if started and used + width(whole) + 2 <= LINE:
                line, used = line + " = " + whole, used + width(whole) + 2
                continue
            if started:
                lines.append(line)
                line, used = " &= ", 0
            chunk = []
            for t in terms:
                if chunk and used + width(join_terms(chunk + [t])) > LINE:
                    lines.append(line + join_terms(chunk))
                    line, used, chunk = r" &\quad " + ("" if t[0] else "+ "), 6, []
                chunk.append(t)
            line, used, started = line + join_terms(chunk), used + width(join_terms(chunk)), True
        if note:
            if used + width(note) + 4 <= LINE:
                line += r" \qquad \text{%s}" % note
            else:
                lines.append(line)
                line = r" &\qquad \text{%s}" % note
        lines.append(line)
        return lines

    def _abbreviated(self, e) -> bool:
        """Does e print with a named Schur complement?"""
        return bool(self.abbrev) and self._sympy(e) != e

    def block_matrix(self, lhs: str, cells, name, tail: str = "") -> str:
        """``lhs = [cells]`` as a display; blocks too wide for the page are named (``name(i, j)``)
        in the matrix and written out below it."""
        tex = [[self.m(c, False) for c in row] for row in cells]
        named = []
        while max(sum(width(t) + 3 for t in row) for row in tex) + width(lhs) > LINE:
            i, j = max(((i, j) for i, row in enumerate(tex) for j in range(len(row))),
                       key=lambda ij: width(tex[ij[0]][ij[1]]))
            if (i, j) in [k for k, _ in named]:
                break
            named.append(((i, j), cells[i][j]))
            tex[i][j] = name(i + 1, j + 1)
        out = "\\[\n%s = %s%s\n\\]" % (lhs, matrix(tex), tail)
        if named:
            named.sort()
            out += "\nwhere\n" + align([self.lines(name(i + 1, j + 1), [self._sympy(c, False)])
                                          for (i, j), c in named])
        return out

    def ref(self, name: str) -> str:
        return "Section~%d" % self.sections.get(name, 0)

    def fact(self, key) -> str:
        """A fact the simplifier used, as a sentence with math (for 'since …')."""
        kind, what = key[0], key[1]
        if kind == "exclusive":  # two bounds never active together
            a, b = self._vector(key[1]), self._vector(key[2])
            pair = next(p for p in self.d.analysis.exclusive
                        if self.facts.cited.get(key) == p.sentence)
            return (r"$(1 - %s) \odot (1 - %s) = 0$, as \texttt{%s} and \texttt{%s} are never active at the "
                    r"same entry ($%s < 0$%s)" % (a, b, pair.first.replace("_", r"\_"),
                                                  pair.second.replace("_", r"\_"), self.m(pair.c),
                                                  "" if pair.proven else ", assumed"))
        if kind == "disjoint":  # two constraints never inactive together (the epigraph of |w|)
            a, b = self._vector(key[1]), self._vector(key[2])
            return (r"$%s \odot %s = 0$, as stationarity ties their multipliers to a nonzero constant, so "
                    r"the two constraints are never inactive together" % (a, b))
        if kind == "reduction":
            value = self.facts.reductions.get(what)
            return r"$%s = %s$ (primal feasibility)" % (self.m(self.alg.reductions[what], False), self.m(value))
        if kind == "symmetric":
            return r"$%s^{\top} = %s$ (symmetric)" % (self.m(what), self.m(what))
        if kind == "indicator":
            s = self._vector(what)
            return r"$%s \odot %s = %s$, as $%s \in \{0, 1\}$ elementwise" % (s, s, s, s)
        return text(what)

    def _vector(self, placeholder) -> str:
        vec = self.alg.vectors.get(placeholder, (placeholder,))[0]
        return self.m(vec)

    def since(self, sentences) -> str | None:
        """'since …' for the facts not cited yet in this section (None when there are none)."""
        keys = [k for k in fact_keys(self.facts, sentences) if k not in self.cited]
        self.cited.update(keys)
        if not keys:
            return None
        return "since " + ", ".join(r"\mbox{%s}" % self.fact(k) for k in keys)

    # ---- the whole document
    def render(self) -> str:
        self._compute()
        title = text(Path(self.problem.source.filename).name)
        solution = ["tangent"] if self.d.tangent_only else ["blocks", "elimination", "results"]
        order = ["problem"] + (["lagrangian"] if self.problem.kind == "optimization" else []) + [
            "kkt", "ift", *solution] + (
            ["value"] if self.d.envelope is not None and self.failure is None and self.params else [])
        self.sections = {name: k for k, name in enumerate(order, 1)}
        parts = [_PREAMBLE,
                 r"\title{Implicit differentiation of \texttt{%s}}" % title,
                 r"\author{derived by symift}", r"\date{}", r"\begin{document}", r"\maketitle",
                 self.summary()]
        for name in order:
            self.cited = set()
            parts.append(getattr(self, "section_" + name)())
        parts += [r"\end{document}", ""]
        out = "\n\n".join(p for p in parts if p)
        for token, letter in self.notation.items():
            out = out.replace(token, letter)
        return out

    def _compute(self):
        """Everything the document shows, with the facts each piece uses recorded separately.

        The derivation's own results come first (so ``d.facts`` is what they used); what the
        document recomputes afterwards leaves ``d.facts`` as it was."""
        d = self.d
        if d.ift.holds is False:
            self.failure = next(c for c in d.ift.conditions if c.holds is False)
        elif d.tangent_only:  # no elimination: the tangent system is the result
            return
        else:
            for p in self.params:
                for v in self.wrt:
                    self.results[v, p] = d.jacobian(v, p)
        used = list(self.facts.used)
        try:
            self._recompute()
        finally:
            self.facts.used[:] = used

    def _recompute(self):
        d = self.d
        self.rhs = {}
        with recording(self.facts) as used:
            for p in self.params:
                self.rhs[p] = self.a.rhs(d.symbols[p])[0]
        self.rhs_facts = list(used)
        with recording(self.facts) as used:
            self._block_lins()
        self.block_facts = list(used)
        if self.failure is not None and self.failure.name.startswith("∂F/∂x"):
            return
        try:
            steps = d.steps(self.params[0]) if self.params else self._zero_steps()
        except MathError as exc:
            self.failure = exc
            return
        self.trace = replay(self.a, steps)
        self._name_schur_complements()
        for p in self.params:
            self.traces[p] = replay(self.a, steps, self.rhs[p])

    def _zero_steps(self):

        with recording(self.facts):
            return self.a.eliminate({r.name: Lin((r.size, sp.S.One)) for r in self.a.rows})[1]

    def _block_lins(self):

        for row in self.a.rows:
            for u in self.a.unknowns:
                self.a.derivative(row, lambda e, x=u.symbol: jacobian_lin(e, x, self.alg), u)

    def _name_schur_complements(self):
        """S_k for the argument of every general inverse, in the order the elimination meets them
        (the derivation's numbering); the derivation's own factored S_k where it names one."""
        k = 0
        self.defined = {}
        for pivot in self.trace.pivots:
            inverse = self.alg.to_sympy(pivot.inverse)
            for node in sp.preorder_traversal(inverse):
                if isinstance(node, sp.Inverse) and not isinstance(node.arg, (sp.MatrixSymbol, sp.Transpose)) \
                        and node not in self.abbrev:
                    k += 1
                    symbol = self.d.definitions.get("%s_%d" % (self.letter, k))
                    value = symbol.definition if symbol is not None else node.arg.xreplace(self.abbrev)
                    if symbol is None:
                        symbol = sp.MatrixSymbol("%s_%d" % (self.letter, k), *node.arg.shape)
                    self.defined.setdefault(pivot.step.unknown, []).append((symbol, value))
                    self.abbrev[node] = sp.Inverse(symbol)

    def introduce(self, exprs) -> str | None:
        """'where K = …' for the derivation's named quantities that ``exprs`` use and that are
        not yet defined (the Schur complements are named by their pivots)."""
        schur = {s.name for vs in self.defined.values() for s, _ in vs}
        new = [q for q in self.d.definitions_used([self._sympy(e) for e in exprs if e is not None])
               if q.name not in schur and q not in self.introduced]
        if not new:
            return None
        self.introduced += new
        self.sequence += [(q, q.definition) for q in new]
        return "where\n" + align([self.lines(self.m(q), [self.terms(q.definition)]) for q in new])

    # ---- 0. the result first, as an abstract
    def summary(self) -> str:
        if self.failure is not None:
            return (r"\paragraph{Result.} The implicit function theorem does not apply to this problem: %s "
                    r"(%s)." % (self._failure_text(), self.ref("ift")))
        if not self.params:
            return r"\paragraph{Result.} The problem has no parameters: there is nothing to differentiate."
        if self.d.tangent_only:
            return (r"\paragraph{Result.} The rows of the matrix variable are coupled (%s), so symift keeps it "
                    r"a matrix and derives no closed form: where the conditions of %s hold, the solution is "
                    r"locally a differentiable function of the parameters, and its tangent solves the linear "
                    r"system of %s, which the layer solves numerically at each solution." % (
                        text(self.d.coupled), self.ref("ift"), self.ref("tangent")))
        shown, later = [], []
        for (v, p), J in self.results.items():
            lhs = self.derivative(v, p)
            if width(self.m(J, False)) <= 2 * LINE:
                shown.append(self.display(lhs, [self.terms(J, False)]))
            else:
                later.append("$%s$" % lhs)
        out = [r"\paragraph{Result.} Where the conditions of %s hold, the solution " % self.ref("ift") +
               r"is locally a differentiable function of the parameters, with"]
        out += shown
        if later:
            out.append(("and " if shown else "") + ", ".join(later) + " as derived in %s." % self.ref("results"))
        named = self.d.definitions_used(J for _, J in self.results.items())
        if named:
            out.append("where")
            out.append(align([self.lines(self.m(q), [self.terms(q.definition, False)]) for q in named]))
        return "\n".join(out)

    def _failure_text(self) -> str:
        if isinstance(self.failure, SymiftError):
            return text(self.failure.message)
        return text(self.failure.reason)

    # ---- shared by the sections: what condition (iii) asks of a pivot
    def _pivot_conditions(self, k, pivot, define=False) -> list:
        if pivot.condition is not None:
            return ["$%s \\neq 0$%s" % (self.m(pivot.condition), " elementwise" if is_matrix(pivot.condition)
                                         else "")]
        if pivot.kind == "general":
            out = []
            schur = {s.name for vs in self.defined.values() for s, _ in vs}
            for symbol, value in self.defined.get(pivot.step.unknown, []):
                full = self.m(value)
                short = define and width(full) < LINE // 2
                uses = [q for q in self.d.definitions_used([value]) if q.name not in schur] if short else []
                out.append("$%s%s$ is nonsingular%s" % (self.m(symbol), " = " + full if short else "", "".join(
                    ", with $%s = %s$" % (self.m(q), self.m(q.definition)) for q in uses)))
            return out or ["$@P@_{%d}$ is nonsingular" % k]
        if pivot.kind == "symbol" and pivot.step.condition:
            return ["$%s$ is nonsingular" % self.m(pivot.step.pivot)]
        return []


# --------------------------------------------------------------------------- entry points
def document(d, wrt=None, params=None) -> str:
    """The derivation ``d`` as a complete LaTeX document (pdflatex, amsmath only)."""
    try:
        return Document(d, wrt, params).render()
    except SymiftError as exc:
        raise exc.located(d.problem.source) from None


def summary(d) -> str:
    """The Jacobians as display math for Jupyter (``Derivation._repr_latex_``); MathJax renders it."""
    doc = Document(d)
    doc._compute()
    if doc.failure is not None:
        what = getattr(doc.failure, "name", "")
        condition = {"F(x*, θ) = 0": r"F(x^\star, \theta) = 0", "F continuously differentiable": r"F \in C^1",
                     }.get(what, r"\partial F / \partial x \text{ nonsingular}")
        return r"$$\text{The implicit function theorem does not apply: } %s \text{ fails.}$$" % condition
    groups = [doc.lines(doc.derivative(v, p), [doc.terms(J, False)]) if width(doc.m(J, False)) <= 3 * LINE
              else doc.lines(doc.derivative(v, p), [J]) for (v, p), J in doc.results.items()]
    if any(width(doc.m(J, False)) > 3 * LINE for J in doc.results.values()):
        groups += [doc.lines(doc.m(s), [v]) for vs in doc.defined.values() for s, v in vs]
    else:  # the quantities the results name (K, S₂)
        groups += [doc.lines(doc.m(q), [doc.terms(q.definition, False)])
                   for q in d.definitions_used(doc.results.values())]
    if not groups:
        return r"$$\text{No parameters: nothing to differentiate.}$$"
    return "$$\\begin{aligned}\n" + " \\\\\n".join(line for g in groups for line in g) + "\n\\end{aligned}$$"
