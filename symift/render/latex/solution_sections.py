"""Sections 5 to 7 of the document, the solution: the Jacobians ∂F/∂x and ∂F/∂θ as block
matrices, the block elimination step by step, and the results for every parameter (forward
elimination of the right-hand side, back substitution).  :class:`SolutionSections` is a mixin of
:class:`~.document.Document` and uses its helpers (``self.m``, ``self.lines``, ``self.since``,
``self._pivot_conditions``, ...).
"""
from __future__ import annotations

from .layout import LINE, align, width
from .printer import join_terms
from .problem import is_matrix_param
from .replay import Update, fact_keys


class SolutionSections:
    """The sections on the solution (a mixin of :class:`~.document.Document`)."""

    # ---- 5. the blocks of ∂F/∂x and ∂F/∂θ
    def section_blocks(self) -> str:
        rows, cols = self.a.rows, self.a.unknowns
        out = [r"\section{The Jacobians of $F$}",
               r"Numbering the block rows $F_1, \ldots, F_{%d}$ (%s) and the unknowns (%s), the Jacobian "
               r"$@M@ = \partial F / \partial x$ has the blocks $@M@_{i,j} = \partial F_i / \partial x_j$:" % (
                   len(rows), "; ".join(self.label(r.name) for r in rows),
                   ", ".join("$%s$" % self.name(u.name) for u in cols)) if len(rows) > 1 else
               r"The Jacobian $@M@ = @M@_{1,1} = \partial F / \partial x$ is"]
        cells = [[self.a.blocks[r.name, u.name] for u in cols] for r in rows]
        out.append(self.block_matrix(r"\frac{\partial F}{\partial x}", cells, lambda i, j: "@M@_{%d,%d}" % (i, j)))
        if self.block_facts:
            out.append("(using %s)." % ", ".join(self.fact(k) for k in fact_keys(self.facts, self.block_facts)))
        for p in self.params:
            symbol = self.d.symbols[p]
            column = [[-self.rhs[p][r.name]] for r in rows]
            if is_matrix_param(symbol):
                out.append(r"$F$ depends on the matrix $%s$; its derivative along a direction $\mathrm{d}%s$ is"
                           % (self.name(p), self.name(p)))
                lhs = r"\frac{\partial F}{\partial %s}[\mathrm{d}%s]" % (self.name(p), self.name(p))
            else:
                lhs = r"\frac{\partial F}{\partial %s}" % self.name(p)
            out.append(self.block_matrix(lhs, column, lambda i, j, p=p: r"\frac{\partial F_{%d}}{\partial %s}"
                                         % (i, self.name(p))))
        if self.params and self.rhs_facts:
            out.append("(using %s)." % ", ".join(self.fact(k) for k in fact_keys(self.facts, self.rhs_facts)))
        return "\n".join(out)

    # ---- 6. block elimination
    def section_elimination(self) -> str:
        out = [r"\section{Block elimination}"]
        if self.trace is None:
            out.append(r"The elimination stops: %s." % self._failure_text())
            return "\n".join(out)
        if len(self.trace.pivots) == 1:
            out.append(r"There is a single block: symift solves "
                       r"$@M@ \, \partial x / \partial \theta = -\partial F / \partial \theta$ with the pivot "
                       r"$@P@_1 = @M@_{1,1}$.")
        else:
            out.append(r"Rather than inverting $@M@ = \partial F / \partial x$, symift solves "
                       r"$@M@ \, \partial x / \partial \theta = -\partial F / \partial \theta$ block by block: each "
                       r"step solves one block row $F_i$ for one unknown $x_j$ through the pivot $@P@ = @M@_{i,j}$, "
                       r"and replaces every block of the remaining rows by its Schur complement "
                       r"$@M@_{k,l} - @M@_{k,j} @P@^{-1} @M@_{i,l}$, simplified with the KKT facts.")
        for k, pivot in enumerate(self.trace.pivots, 1):
            i, j = self.row_index[pivot.step.row], self.col_index[pivot.step.unknown]
            out.append(r"\paragraph{Step %d: $%s$ from $F_{%d}$ (%s).}" % (
                k, self.name(pivot.step.unknown), i, self.label(pivot.step.row)))
            if pivot.step.added is not None:
                other, sign = pivot.step.added
                out.append(r"No block of $%s$ alone is invertible, but their sum is: first $F_{%d}$ is replaced by "
                           r"$F_{%d} %s F_{%d}$ (this does not change the solution)." % (
                               self.name(pivot.step.unknown), i, i, "+" if sign > 0 else "-", self.row_index[other]))
            where = self.introduce([pivot.step.pivot_lin])
            if where:
                out.append("Writing the pivot below with the quantity" + ("" if where.count("&=") == 1 else "ies")
                           + " " + where)
            out.append(self._pivot_text(k, i, j, pivot))
            self.sequence += self.defined.get(pivot.step.unknown, [])
            for u in pivot.updates:
                i2, j2 = self.row_index[u.row], self.col_index[u.unknown]
                lhs = r"@M@_{%d,%d} - @M@_{%d,%d} @P@_{%d}^{-1} @M@_{%d,%d}" % (i2, j2, i2, j, k, i, j2)
                out.append(r"The block $@M@_{%d,%d}$ becomes" % (i2, j2))
                names = ("@M@_{%d,%d}" % (i2, j), "@P@_{%d}^{-1}" % k, "@M@_{%d,%d}" % (i, j2))
                out.append(align([self._update_display(lhs, u, pivot, names)]))
            where = self.introduce([x for u in pivot.updates for x in (u.plain, u.new)])
            if where:
                out.append(where)
            if not pivot.updates:
                out.append("No other remaining row involves $%s$: the blocks are unchanged."
                           % self.name(pivot.step.unknown) if k < len(self.trace.pivots) else
                           "This is the last unknown.")
        return "\n".join(out)

    def _pivot_text(self, k, i, j, pivot) -> str:
        value = pivot.step.pivot_lin if pivot.step.pivot_lin is not None else pivot.step.pivot
        P = r"$@P@_{%d} = @M@_{%d,%d} = %s$" % (k, i, j, self.m(value))
        if width(P) > LINE // 2:
            P = "\n" + self.display(r"@P@_{%d} = @M@_{%d,%d}" % (k, i, j), [value]) + "\n"
        inverse = r"$@P@_{%d}^{-1} = %s$" % (k, self.m(pivot.inverse))
        names = self.defined.get(pivot.step.unknown, [])
        cond = self._pivot_conditions(k, pivot)
        if pivot.kind == "general" and names:
            defs = align([self.lines(self.m(s), [v]) for s, v in names])
            note = self.since(pivot.facts)
            return ("The pivot %s is a general block. We name\n%s\nnonsingular by condition (iii), so that "
                    "%s%s." % (P, defs, inverse, " (%s)" % note if note else ""))
        if pivot.kind == "general":
            what = "is a general block, nonsingular by condition (iii), and"
        elif pivot.kind == "symbol":
            what = ("is positive definite, hence nonsingular, and" if not pivot.step.condition
                    else "is nonsingular by condition (iii), and")
        elif pivot.kind == "identity":
            what = "is a multiple of the identity, so"
        elif cond:
            what = "is %s, invertible where %s (condition (iii)), so" % (
                "a scalar" if pivot.kind == "scalar" else "diagonal", cond[0])
        else:
            what = "is a nonzero scalar, so" if pivot.kind == "scalar" else "is diagonal with nonzero entries, so"
        note = self.since(pivot.facts)
        return "The pivot %s %s %s%s." % (P, what, inverse, " (%s)" % note if note else "")

    def _update_display(self, lhs, u: Update, pivot, names) -> str:
        """``lhs = old − left·P⁻¹·right = …`` (a factor too wide for a line appears by its name)."""
        factors = [self.factor(x) for x in (u.left, pivot.inverse, u.right)]
        factors = [f if width(f) <= LINE // 2 else n for f, n in zip(factors, names, strict=False)]
        raw = (self.terms(u.old) if u.old is not None and not u.old.is_zero else []) + [(True, " ".join(factors))]
        stages = [raw]
        for value in (u.plain, u.new):
            if value is not None:
                stages.append(self._sympy(value))
        return self.lines(lhs, _distinct(self, stages), self.since(u.facts))

    # ---- 7. results
    def section_results(self) -> str:
        out = [r"\section{Results}"]
        if self.trace is None or self.failure is not None:
            out.append("There is no Jacobian: the implicit function theorem does not apply (" + self.ref("ift") + ").")
            return "\n".join(out)
        if not self.params:
            out.append("The problem has no parameters.")
            return "\n".join(out)
        out.append(r"Jacobians are in numerator layout: $\partial z / \partial \theta$ has a row for each entry "
                   r"of $z$ and a column for each entry of $\theta$; for a matrix parameter $P$ the result is the "
                   r"directional derivative along $\mathrm{d}P$.")
        for p in self.params:
            out += self._results_for(p)
        if self.sequence:
            defs = ", ".join("$%s = %s$" % (self.m(s), self.m(v)) for s, v in self.sequence)
            out.append(r"Here, as in %s, %s." % (self.ref("elimination"), defs))
        return "\n".join(out)

    # ---- 8. the optimal value (optimization problems)
    def section_tangent(self) -> str:
        """The linearized residual, the result where no closed form is derived (coupled matrix variable)."""
        d = self.d
        moving = ", ".join(r"\mathrm{d}%s" % self.name(u) for u in d.unknowns)
        given = ", ".join(r"\mathrm{d}%s" % self.name(p) for p in d.parameters)
        out = [r"\section{The tangent system}",
               r"Each unknown moving along $\mathrm{d}u$ and each parameter along $\mathrm{d}\theta$, the "
               r"residual changes by $\mathrm{d}F = \frac{\partial F}{\partial x}\mathrm{d}x + "
               r"\frac{\partial F}{\partial \theta}\mathrm{d}\theta$; on the solution map it stays 0. The "
               r"tangent $(%s)$ of the solution therefore solves, for given $(%s)$, the linear equations"
               % (moving, given)]
        rows = [self.lines(r"\mathrm{d}F_{%d}" % k, [self.terms(e, False)], None)
                for k, (_, e) in enumerate(d.tangent_system, 1)]
        out.append(align(rows))
        out.append("with the rows " + ", ".join(r"$\mathrm{d}F_{%d}$ of %s" % (k, self.label(name))
                                               for k, (name, _) in enumerate(d.tangent_system, 1)) +
                   r", each equal to 0. They are the result: for a coupled matrix variable no block elimination "
                   r"gives $\mathrm{d}x$ in closed form (it would invert the stationarity block restricted to the "
                   r"active set), so the layer solves them at each solution.")
        return "\n".join(out)

    def section_value(self) -> str:
        env = self.d.envelope
        out = [r"\section{The optimal value}",
               r"The optimal value is $V(\theta) = f(x^\star(\theta), \theta)$, the objective as written:"]
        out.append(self.display("V", [self.terms(env.value, False)]))
        rule = r"-\frac{\partial L}{\partial \theta}" if env.sign < 0 else r"\frac{\partial L}{\partial \theta}"
        out.append("At a KKT point stationarity makes the Lagrangian's derivative in $x$ vanish, the "
                   "equality constraints hold and complementary slackness makes every term "
                   r"$\lambda_i g_i$ zero, so by the envelope theorem its derivative needs no derivative "
                   r"of the solution: $\mathrm{d}V/\mathrm{d}\theta = %s$ at $(x^\star, \nu^\star, "
                   r"\lambda^\star)$%s. It holds where the multipliers are unique; strict complementarity "
                   "is not needed. Gradients have the shape of their parameter:" % (
                       rule, " (the maximized $f$ is minimized as $-f$, " + self.ref("lagrangian") + ")"
                       if env.sign < 0 else ""))
        rows = []
        for p in self.params:
            lhs = (r"\nabla_{%s} V" % self.name(p) if env.gradients[p] is not None
                   else r"\mathrm{d}V[\mathrm{d}%s]" % self.name(p))
            rows.append(self.lines(lhs, [self.terms(self.d.value_gradient(p), False)]))
        out.append(align(rows))
        return "\n".join(out)

    def _results_for(self, p) -> list:
        trace = self.traces[p]
        self.cited = set()
        out = [r"\subsection*{With respect to $%s$}" % self.name(p),
               r"The right-hand side is $@b@ = -\partial F / \partial %s%s$%s." % (
                   self.name(p), r"[\mathrm{d}%s]" % self.name(p) if is_matrix_param(self.d.symbols[p]) else "",
                   r", with rows $@b@_1, \ldots, @b@_{%d}$" % len(self.a.rows) if len(self.a.rows) > 1 else
                   " (written $@b@_1$ below)")]
        updates = [(k, pivot, u) for k, pivot in enumerate(trace.pivots, 1) for u in pivot.rhs_updates]
        if updates:
            out.append("Forward elimination applies the steps of " + self.ref("elimination") + " to it:")
            groups = []
            for k, pivot, u in updates:
                i2, i = self.row_index[u.row], self.row_index[pivot.step.row]
                j = self.col_index[pivot.step.unknown]
                lhs = r"@b@_{%d} - @M@_{%d,%d} @P@_{%d}^{-1} @b@_{%d}" % (i2, i2, j, k, i)
                names = ("@M@_{%d,%d}" % (i2, j), "@P@_{%d}^{-1}" % k, "@b@_{%d}" % i)
                groups.append(self._update_display(lhs, u, pivot, names))
            out.append(align(groups))
        elif len(trace.pivots) > 1:
            out.append("Forward elimination leaves $@b@$ unchanged.")
        out.append("Back substitution, from the last unknown to the first, gives" if len(trace.pivots) > 1
                   else "Solving for $%s$ gives" % self.name(trace.pivots[0].step.unknown))
        out.append(align([self._back_display(p, k, trace.pivots[k - 1], trace)
                           for k in range(len(trace.pivots), 0, -1)]))
        for v in self.wrt:
            if v in self.a.inactive:
                out.append(self.display(self.derivative(v, p), [self.terms(self.d.jacobian(v, p), False)],
                                        "(an inactive multiplier)"))
            elif v in self.col_index and self._abbreviated(self.d.jacobian(v, p)):
                full, lhs = self.m(self.d.jacobian(v, p), False), self.derivative(v, p)
                if width(full) + width(lhs) <= LINE:
                    out.append("that is,\n\\[\n\\boxed{%s = %s}\n\\]" % (lhs, full))
                elif width(full) + width(lhs) <= 2 * LINE:
                    out.append("that is,")
                    out.append(self.display(lhs, [self.terms(self.d.jacobian(v, p), False)]))
        return out

    def _back_display(self, p, k, pivot, trace) -> str:
        blocks, b = pivot.back
        i = self.row_index[pivot.step.row]
        unknown = pivot.step.unknown
        formula = [(False, "@b@_{%d}" % i)] + [
            (True, "@M@_{%d,%d} %s" % (i, self.col_index[c2], self.derivative(c2, p))) for c2 in blocks]
        values = ([] if b is None or b.is_zero else self.terms(b)) + [
            (True, "%s %s" % (_short(self.factor(blk), "@M@_{%d,%d}" % (i, self.col_index[c2])),
                              self.derivative(c2, p))) for c2, blk in blocks.items()]
        if not values:
            values = [(False, "0")]
        if pivot.kind == "scalar":
            symbolic = r"\frac{%s}{@P@_{%d}}" % (join_terms(formula), k)
            raw = r"\frac{%s}{%s}" % (join_terms(values), self.m(pivot.step.pivot))
        else:
            symbolic = r"@P@_{%d}^{-1} %s" % (k, _group(formula))
            raw = r"%s %s" % (self.factor(pivot.inverse), _group(values))
        value = self.d.jacobian(unknown, p)  # the same elimination (tests check it), cached there
        stages = _distinct(self, [symbolic, raw, self._sympy(value)])
        tex = self.m(value)
        if unknown in self.wrt and not self._abbreviated(value) and \
                width(tex) + width(self.derivative(unknown, p)) + 4 <= LINE:
            stages[-1] = r"\boxed{%s}" % tex  # a requested result
        return self.lines(self.derivative(unknown, p), stages, self.since(trace.back_facts.get(unknown, [])))


def _short(tex: str, name: str) -> str:
    """``tex``, or ``name`` where tex is too wide to share a line."""
    return tex if width(tex) <= LINE // 2 else name


def _group(terms) -> str:
    tex = join_terms(terms)
    return r"\left(%s\right)" % tex if len(terms) > 1 or terms[0][0] else tex


def _distinct(doc, stages) -> list:
    """Drop a stage that prints the same as the one before it."""
    out, last = [], None
    for s in stages:
        tex = s if isinstance(s, str) else join_terms(s) if isinstance(s, list) else doc.m(s)
        if tex != last:
            out.append(s)
        last = tex
    return out
