"""The standalone module writer: a problem's residual, closed forms and layer as JAX source.

``codegen(problem)`` returns the text of a Python module that imports jax and numpy only:

* ``residual(**values)`` — the KKT residual F(x, θ) as named blocks;
* ``jacobian_<var>_<param>(**values)`` — each closed-form Jacobian as a dense array (for a
  matrix parameter P, the directional derivative along ``d<P>``);
* ``solve(**params)`` — the forward solver (primal-dual interior point on the KKT system, or
  damped Newton for a root problem) under ``lax.while_loop``;
* ``layer(**params)`` — the solution map with the implicit backward attached by
  ``jax.custom_jvp``: the tangent is the derived closed form J·dθ, or a linear solve on the
  derived ∂F/∂x (symift.backward), so jit, vmap, grad, jacfwd and jacrev all work; a user's
  solver can replace the forward solve (symift.recovery).  Non-convergence raises in eager use
  and is flagged under tracing.

``symift.compile`` imports this same text, so the in-process layer and the generated module
cannot disagree.
"""
from __future__ import annotations

import re

import sympy as sp

from .backward import BACKWARD, LayerWriter, closed_form_fns
from .derive import Derivation
from .errors import UnsupportedError
from .expr import is_matrix
from .forward import DUAL_NEWTON, SeparableWriter, separable_dual
from .jax import RUNTIME, Emitter, python_name
from .model import Problem
from .recovery import RECOVERY

SOLVER = '''
class SolverError(RuntimeError):
    """The forward solve did not converge (or met a singular KKT system)."""


def _tracing(x):
    return isinstance(x, jax.core.Tracer)


def _interior_point(F, x0, positive, n_pos, tol, maxiter, direction=None):
    """Primal-dual interior point on F(x, mu) = 0 with mu -> 0 (Mehrotra's centering rule).

    ``positive`` masks the entries that must stay > 0 (multipliers, slacks, positive variables);
    the last ``n_pos`` entries of x are slacks t, the ``n_pos`` before them their multipliers,
    and the last ``n_pos`` rows of F are lam * t - mu.  Each iteration takes an affine
    (predictor) step to measure how far the gap can fall, targets mu = sigma * gap with
    sigma = (gap_affine / gap)^3, and takes a damped Newton step on F(., mu) — with Mehrotra's
    second-order correction where that step decreases the residual norm.
    Each iteration factorizes dF/dx once: ``direction(x)`` returns the function r -> dF/dx^-1 r
    (default: dense LU of jax.jacfwd(F)), applied to the affine, centered and corrected
    right-hand sides.
    ``tol`` is the acceptance threshold: the loop aims at max |F(x, 0)| <= tol / 1000 and stops
    early once the residual is within tol and two iterations in a row did not halve it, or the
    (corrected) Newton step no longer decreases it (the rounding floor of an ill-conditioned problem:
    without this, one such problem keeps a whole vmapped batch iterating to maxiter).
    Returns (x, max |F(x, 0)|, iterations).
    """
    F0 = F

    def F(x, mu):  # noqa: F811 - the residual in the unknowns' dtype (float32 stays float32)
        return F0(x, mu).astype(x.dtype)

    def factor(x):
        """The Newton solve at x: factorized once, applied to several right-hand sides."""
        if direction is None:  # dense Newton step on the whole KKT Jacobian
            lu = _lu_factor(jax.jacfwd(F)(x, 0.0))
            return lambda r: _lu_solve(lu, r)
        solve = direction(x)  # the structured step from the block elimination
        return lambda r: solve(r).astype(x.dtype)

    def gap(x):
        return x[-n_pos:] @ x[-2 * n_pos:-n_pos] / n_pos if n_pos else jnp.zeros((), x.dtype)

    def shifted(r0, mu):  # F(x, mu) from F(x, 0): only the complementarity rows lam * t - mu move
        return r0.at[-n_pos:].add(-mu) if n_pos else r0

    def size(r):
        return jnp.max(jnp.abs(r)) if r.size else jnp.zeros((), r.dtype)

    def to_boundary(x, dx):
        ratio = jnp.where(positive & (dx < 0), -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
        return jnp.min(ratio, initial=jnp.inf)

    def step(state):  # F(x, 0) is carried from the previous step's line search
        x, r0, k, res, stuck = state
        solve = factor(x)
        mu = jnp.zeros((), x.dtype)
        if n_pos:
            dxa = solve(-r0)
            xa = x + jnp.minimum(1.0, to_boundary(x, dxa)) * dxa
            sigma = jnp.clip((gap(xa) / gap(x)) ** 3, 0.0, 1.0)
            # stay near the central path: the gap may not fall far below the infeasibility,
            # or pairs (lam, t) both reach 0 while the residual stalls
            infeasible = jnp.max(jnp.abs(r0[:-n_pos]), initial=0.0)
            mu = jnp.maximum(sigma * gap(x), 0.1 * jnp.minimum(gap(x), infeasible))
        r = shifted(r0, mu)
        norm_r = jnp.linalg.norm(r)
        # fraction to the boundary: 0.99 far out, closer to 1 as the gap closes (else every step
        # stops 1% short and the gap falls at most 100x per iteration)
        tau = jnp.clip(1.0 - gap(x), 0.99, 1.0 - 100 * jnp.finfo(x.dtype).eps) if n_pos else 0.99

        def newton_step():  # the plain (centered) Newton step and its fraction to the boundary
            dx = solve(-r)
            return jnp.minimum(1.0, tau * to_boundary(x, dx)), dx

        def trial(d, a):
            return F(x + a * d, jnp.zeros((), x.dtype))

        def ok(a, r_a):  # sufficient decrease of the residual norm
            return jnp.linalg.norm(shifted(r_a, mu)) <= (1 - 1e-4 * a) * norm_r

        if n_pos:  # Mehrotra's corrector (the second-order term dlam_aff * dt_aff) first
            dxc = solve(-r.at[-n_pos:].add(dxa[-2 * n_pos:-n_pos] * dxa[-n_pos:]))
            ac = jnp.minimum(1.0, tau * to_boundary(x, dxc))
            start = (ac, dxc, trial(dxc, ac), jnp.array(False))
        else:
            alpha, dx = newton_step()
            start = (alpha, dx, trial(dx, alpha), jnp.array(True))

        def halve(s):
            a, d, _, plain = s
            return 0.5 * a, d, trial(d, 0.5 * a), plain

        def switch(s):  # to the plain Newton step
            a, d = newton_step()
            return a, d, trial(d, a), jnp.array(True)

        # backtrack the corrector twice, then switch to the plain step (a loop of at most one
        # pass: under vmap it is solved only when some problem needs it), then backtrack that
        s = start
        if n_pos:
            s = lax.while_loop(lambda s: ~ok(s[0], s[2]) & (s[0] > 0.3 * ac), halve, s)
            s = lax.while_loop(lambda s: ~ok(s[0], s[2]) & ~s[3], switch, s)
        a, d, r_a, _ = lax.while_loop(lambda s: ~ok(s[0], s[2]) & (s[0] > 1e-8), halve, s)
        # no step without a decrease (nor into NaN: a failed factorization at the rounding floor)
        moved = ok(a, r_a)
        x, r0 = jnp.where(moved, x + a * d, x), jnp.where(moved, r_a, r0)
        new = size(r0)
        # within tol, a first step that does not decrease the residual marks the rounding floor
        floor = ~ok(start[0], start[2]) if n_pos else jnp.array(False)
        return x, r0, k + 1, new, jnp.where(floor, 2, jnp.where(new > 0.5 * res, stuck + 1, 0))

    def cont(state):
        _, _, k, res, stuck = state
        return (k < maxiter) & (res > 1e-3 * tol) & jnp.isfinite(res) & ~((res <= tol) & (stuck >= 2))

    zero = jnp.zeros((), x0.dtype)
    if n_pos:  # start from the affine step's point, with the positive entries pushed to >= 1
        x1 = x0 + factor(x0)(-F(x0, zero))
        x1 = jnp.where(positive, jnp.maximum(jnp.abs(x1), 1.0), x1)
        x0 = jnp.where(jnp.all(jnp.isfinite(x1)), x1, x0)
    r0 = F(x0, zero)
    x, _, k, res, _ = lax.while_loop(cont, step, (x0, r0, 0, size(r0), 0))
    return x, res, k
'''


class _Layout:
    """Argument names, shapes and flat-vector layout of a derivation's unknowns and params."""

    def __init__(self, d: Derivation):
        self.d = d
        taken: set = set()
        self.py = {}
        syms = d.symbols
        order = [dim.name for dim in d.problem.dims] + d.parameters + d.unknowns + list(d.indicators)
        for name in order:
            if name not in self.py:
                self.py[name] = python_name(name, taken)
        self.symbols = {name: syms[name] for name in order}
        self.taken = taken

    def names(self) -> dict:
        return {self.symbols[k]: v for k, v in self.py.items()}


def codegen(problem: Problem) -> str:
    """The standalone JAX module for a problem (see the module docstring)."""
    return ModuleWriter(Derivation(problem)).source()


class ModuleWriter:
    """Writes the generated module for one derivation."""

    def __init__(self, d: Derivation):
        self.d = d
        self.layout = _Layout(d)
        self.kkt = d._kkt
        self.params = d.parameters
        self.unknowns = list(d.unknowns)  # every unknown, inactive multipliers included
        self.pd = {d.symbols[p.name] for p in d.problem.params if "pd" in p.attributes}
        self.separable = separable_dual(d)   # closed-form / 1-D dual forward solve, if any
        self.newton = None if self.separable else newton_system(d)

    # ---- helpers
    def py(self, name):
        return self.layout.py[name]

    def emitter(self):
        return Emitter(self.layout.names(), self.pd)

    def dims_code(self, em: Emitter, available: list) -> list:
        """Lines binding every dim to the shape of an available argument."""
        lines = []
        for dim in self.d.problem.dims:
            dsym = self.d.symbols[dim.name]
            for name in available:
                sym = self.layout.symbols[name]
                if is_matrix(sym) and dsym in sym.shape:
                    axis = list(sym.shape).index(dsym)
                    lines.append(f"    {self.py(dim.name)} = jnp.shape({self.py(name)})[{axis}]")
                    break
        return lines

    def function(self, name: str, args: list, build, doc: str, tangents: tuple = ()) -> str:
        """A generated function; ``tangents``: its arguments that are tangents (of a jvp rule)."""
        em = self.emitter()
        em.tangent_names |= set(tangents)
        result = build(em)
        head = [f"def {name}({', '.join(self.py(a) if a in self.layout.py else a for a in args)}):",
                f'    """{doc}"""']
        text = "\n".join(em.lines) + "\n" + result
        dims = [line for line in self.dims_code(em, [a for a in args if a in self.layout.py])
                if re.search(rf"\b{line.split()[0]}\b", text)]
        lines = head + dims + em.lines
        lines.append(f"    return {result}")
        return "\n".join(lines)

    # ---- pieces
    def residual_fn(self) -> str:
        blocks = self.kkt.residual
        args = self.params + self.unknowns

        def build(em):
            return "{" + ", ".join(f"{b.name!r}: {em.vec(b.expr)}" for b in blocks) + "}"
        return self.function("residual", ["*"] + args, build, "The KKT residual F(x, θ) as named blocks.")

    def constraint_fns(self) -> str:
        """h and g of each constraint, and the stationarity blocks, for the forward solver."""
        out = []
        variables = [v.name for v in self.d.problem.variables]
        mults = [m.name for m in self.kkt.multipliers]
        args = ["*"] + self.params + variables + mults

        def build(em):
            parts = []
            for b in self.kkt.residual:
                if b.kind == "stationarity" or b.kind == "equation":
                    parts.append(em.vec(b.expr))
            for m in self.kkt.multipliers:
                if m.kind == "equality":
                    parts.append(em.vec(m.function))
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

        out.append(self.function("_equations", args, build,
                                 "Stationarity (or the equations) and the equality constraints."))

        def build_g(em):
            parts = [em.vec(m.function) for m in self.kkt.multipliers if m.kind == "inequality"]
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        out.append(self.function("_inequalities", ["*"] + self.params + variables, build_g,
                                 "g of each inequality constraint (g <= 0)."))
        return "\n\n\n".join(out)

    def jacobian_fn(self, var: str, p: str) -> str:
        """``jacobian_<var>_<p>``; raises SymiftError where no closed form was derived."""
        J = self.d.jacobian(var, p)
        psym = self.d.symbols[p]
        directional = is_matrix(psym) and psym.shape[1] != 1
        args = ["*"] + self.params + self.d.unknowns + list(self.d.indicators)
        if directional:
            args.append("d" + p)
        fname = f"jacobian_{self.py(var)}_{self.py(p)}"

        def build(em):
            if directional:
                em.names[sp.MatrixSymbol("d" + p, *self.d.symbols[p].shape)] = "d" + p
                return em.vec(J)
            if not is_matrix(J):
                return em.scalar(J)
            return em.matrix(J) if J.shape[1] != 1 or J.shape[0] != 1 else em.scalar(J)
        what = f"d{var}[d{p}] (directional)" if directional else f"d{var}/d{p}"
        return self.function(fname, args, build, f"The closed form {what}{_short(J)}.")

    def tangent_fn(self) -> str:
        """Σ_p J_{u,p} · dp for every unknown u, sharing factorizations across outputs.

        With several parameters, one structured solve on the summed right-hand side instead
        (symift.tangent), when the elimination with symbolic right-hand sides succeeds.
        """
        if len(self.params) > 1:
            from .errors import SymiftError
            from .tangent import TangentSystem, tangent_fn

            try:
                return tangent_fn(self, TangentSystem(self.d))
            except (SymiftError, NotImplementedError):
                pass
        args = ["*"] + self.params + self.d.unknowns + list(self.d.indicators) + \
            [f"t_{self.py(p)}" for p in self.params]

        def build(em):
            outs = []
            for var in self.unknowns:
                terms = []
                for p in self.params:
                    J = self.d.jacobian(var, p)
                    if _is_zero(J):
                        continue
                    psym = self.d.symbols[p]
                    t = f"t_{self.py(p)}"
                    if is_matrix(psym) and psym.shape[1] != 1:
                        em.names[sp.MatrixSymbol("d" + p, *psym.shape)] = t
                        terms.append(em.vec(J))
                    else:
                        terms.append(em.apply(J, t))
                vsym = self.layout.symbols[var]
                zero = f"jnp.zeros_like({self.py(var)})" if var in self.d.unknowns else \
                    f"jnp.zeros({self.shape_expr(vsym, em)})"
                outs.append(" + ".join(terms) if terms else zero)
            return "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")"
        return self.function("_tangents", args, build, "The implicit tangents J·dθ of every unknown.",
                             tangents=[f"t_{self.py(p)}" for p in self.params])

    def newton_fn(self) -> str:
        """The structured Newton step of the forward solver (see symift.ift.NewtonSystem).

        ``_newton_direction(params, unknowns, slacks)`` does what does not depend on the
        right-hand side (the Schur complements and their factorizations) once per iterate and
        returns ``solve(_r0, _r1, ...)``, which the interior point applies to several right-hand
        sides.
        """
        ns = self.newton
        ineqs = [m for m in self.kkt.multipliers if m.kind == "inequality"]
        slack_args = [f"_t_{self.py(m.name)}" for m in ineqs]
        rhs = [f"_r{k}" for k in range(len(ns.rows))]
        args = ["*"] + self.params + [u for u in self.d.unknowns] + slack_args
        em = self.emitter()
        # interior-point iterates keep multipliers and slacks > 0: Q + Gᵀdiag(λ/t)G is pd
        em.positive |= {ns.slacks[m.name] for m in ineqs} | {m.symbol for m in ineqs}
        for m, name in zip(ineqs, slack_args):
            em.names[ns.slacks[m.name]] = name
        for k, r in enumerate(ns.rows):
            em.names[ns.rhs[r.name]] = rhs[k]
        steps = {}
        for u, expr in ns.staged:  # back substitution: later steps reuse the earlier ones
            code = em.vec(expr)
            steps[u] = code if code.isidentifier() else em.tmp(code, "d")
            em.names[ns.step_symbols[u]] = steps[u]
        result = "(" + ", ".join(steps[u.name] for u in ns.unknowns) + ("," if len(ns.unknowns) == 1 else "") + ")"
        dependent, once, per_rhs = set(rhs), [], []
        for line in em.lines:  # split the statements by their dependence on the right-hand side
            name, code = line.strip().split(" = ", 1)
            if dependent & set(re.findall(r"\w+", code)):
                dependent.add(name)
                per_rhs.append("    " + line)
            else:
                once.append(line)
        text = "\n".join(em.lines) + "\n" + result
        dims = [line for line in self.dims_code(em, [a for a in args if a in self.layout.py])
                if re.search(rf"\b{line.split()[0]}\b", text)]
        head = [f"def _newton_direction({', '.join(self.py(a) if a in self.layout.py else a for a in args)}):",
                '    """The Newton step of the interior point, by symift\'s block elimination: the',
                '    factorizations once per iterate, then solve(right-hand side) as often as needed."""']
        return "\n".join(head + dims + once + ["", f"    def solve({', '.join(rhs)}):"] + per_rhs +
                         [f"        return {result}", "    return solve"])

    def shape_expr(self, sym, em):
        if not is_matrix(sym):
            return "()"
        return f"({em.size(sym.shape[0])},)"

    # ---- the module
    def source(self) -> str:
        solver = SOLVER if self.separable is None else SOLVER[:SOLVER.index("\n\ndef _interior_point")]
        closed, why = closed_form_fns(self)  # why: no closed form for some pair (or None)
        parts = [self.header(), RUNTIME, solver, self.residual_fn(), self.constraint_fns(), *closed]
        if self.newton is not None:
            parts.append(self.newton_fn())
        if self.separable is not None:
            sw = SeparableWriter(self, self.separable)
            if self.separable.equality is not None and self.separable.dual is None:
                parts.append(DUAL_NEWTON)
            parts += sw.functions()
        lw = LayerWriter(self, why)
        parts += [self.solver_fn(), lw.constants(), lw.shapes_fn(), BACKWARD, RECOVERY, lw.core()]
        text = "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
        for name, line in (("np", "import numpy as np\n"), ("lax", "from jax import lax\n")):
            if not re.search(rf"(?<![\w.]){name}\.", text):  # a closed-form forward needs neither
                text = text.replace(line, "", 1)
        return text

    def header(self) -> str:
        d = self.d
        params = ", ".join(f"{self.py(p)!r}" for p in self.params)
        unknowns = ", ".join(f"{self.py(u)!r}" for u in self.unknowns)
        return (f'"""symift-generated JAX module for {d.problem.source.filename} — do not edit.\n\n'
                f"Solution map and implicit derivatives of the problem; regenerate with\n"
                f"``symift codegen {d.problem.source.filename} -o OUT.py``.\n"
                '"""\n'
                "import os\n\nimport jax\nimport jax.numpy as jnp\nimport numpy as np\nfrom jax import lax\n\n"
                f"PARAMS = ({params}{',' if len(self.params) == 1 else ''})\n"
                f"UNKNOWNS = ({unknowns}{',' if len(self.unknowns) == 1 else ''})\n"
                f"INDICATORS = {tuple(self.py(s) for s in d.indicators)!r}")

    def solver_fn(self) -> str:
        """The forward solve: unpack sizes, initial point, interior point / Newton, unpack."""
        if self.separable is not None:
            return SeparableWriter(self, self.separable).solver()
        d = self.d
        kkt = self.kkt
        variables = [v for v in d.problem.variables]
        eqs = [m for m in kkt.multipliers if m.kind == "equality"]
        ineqs = [m for m in kkt.multipliers if m.kind == "inequality"]
        em = self.emitter()
        lines = [f"def _solve({', '.join(self.py(p) for p in self.params)}, tol, maxiter):",
                 '    """Forward solve: returns the unknowns, the residual norm and the indicators."""']
        lines += self.dims_code(em, self.params)
        dtype = "jnp.result_type(" + ", ".join(["float"] + [self.py(p) for p in self.params]) + ")"
        lines.append(f"    dtype = {dtype}")
        sizes = []
        for v in variables:
            sym = d.symbols[v.name]
            sizes.append((v.name, em.size(sym.shape[0]) if is_matrix(sym) else "1", is_matrix(sym), v.positive))
        for m in eqs + ineqs:
            sym = m.symbol
            sizes.append((m.name, em.size(sym.shape[0]) if is_matrix(sym) else "1", is_matrix(sym), False))
        slacks = [(f"_t_{self.py(m.name)}", em.size(m.symbol.shape[0]) if is_matrix(m.symbol) else "1",
                   is_matrix(m.symbol)) for m in ineqs]
        order = [(self.py(n), s, vec) for n, s, vec, _ in sizes] + slacks
        lines.append("    sizes = [" + ", ".join(s for _, s, _ in order) + "]")
        lines.append("    offsets = np.cumsum([0] + sizes)")
        lines.append("")
        lines.append("    def unpack(_x):")
        for k, (name, _, vec) in enumerate(order):
            take = f"_x[offsets[{k}]:offsets[{k + 1}]]"
            lines.append(f"        {name} = {take}" + ("" if vec else "[0]"))
        lines.append("        return " + ", ".join(n for n, _, _ in order) + ("," if len(order) == 1 else ""))
        lines.append("")
        pargs = ", ".join(f"{self.py(p)}={self.py(p)}" for p in self.params)
        vargs = ", ".join(f"{self.py(v.name)}={self.py(v.name)}" for v in variables)
        margs = ", ".join(f"{self.py(m.name)}={self.py(m.name)}" for m in kkt.multipliers)
        lines.append("    def F(_x, _mu):")
        lines.append("        " + ", ".join(n for n, _, _ in order) + (", " if len(order) == 1 else "") + " = unpack(_x)")
        lines.append(f"        blocks = list(_equations({', '.join(a for a in (pargs, vargs, margs) if a)}))")
        if ineqs:
            lines.append(f"        gs = _inequalities({', '.join(a for a in (pargs, vargs) if a)})")
            for k, m in enumerate(ineqs):
                t = slacks[k][0]
                lines.append(f"        blocks.append(gs[{k}] + {t})")
            for k, m in enumerate(ineqs):
                t = slacks[k][0]
                lines.append(f"        blocks.append({self.py(m.name)} * {t} - _mu)")
        lines.append("        return jnp.concatenate([jnp.atleast_1d(b) for b in blocks])")
        lines.append("")
        # initial point: ones for positive variables, zeros otherwise; duals 0; λ = t = 1
        init, positive = [], []
        for name, s, vec, pos in sizes:
            m = next((m for m in ineqs if m.name == name), None)
            value = "1.0" if (pos or m is not None) else "0.0"
            init.append(f"jnp.full(({s},), {value}, dtype)")
            positive.append(f"jnp.full(({s},), {pos or m is not None})")
        for _, s, _ in slacks:
            init.append(f"jnp.full(({s},), 1.0, dtype)")
            positive.append(f"jnp.full(({s},), True)")
        lines.append("    x0 = jnp.concatenate([" + ", ".join(init) + "])")
        lines.append("    positive = jnp.concatenate([" + ", ".join(positive) + "])")
        n_pos = " + ".join(s for _, s, _ in slacks) or "0"
        direction = "None"
        if self.newton is not None:
            direction = "direction"
            row_sizes = [em.size(r.size) for r in self.newton.rows]
            lines.append("")
            lines.append("    def direction(_x):")
            lines.append("        " + ", ".join(n for n, _, _ in order) + (", " if len(order) == 1 else "") + " = unpack(_x)")
            kw = [f"{self.py(p)}={self.py(p)}" for p in self.params]
            kw += [f"{n}={n}" for n, _, _ in order]
            lines.append(f"        solve = _newton_direction({', '.join(kw)})")
            lines.append(f"        cuts = np.cumsum([0, {', '.join(row_sizes)}])")
            lines.append("")
            lines.append("        def step(_r):")
            takes = [f"_r[cuts[{k}]:cuts[{k + 1}]]" + ("" if _is_vector(self.newton.rhs[r.name]) else "[0]")
                     for k, r in enumerate(self.newton.rows)]
            lines.append(f"            steps = solve({', '.join(takes)})")
            lines.append("            return jnp.concatenate([jnp.atleast_1d(v) for v in steps])")
            lines.append("        return step")
            lines.append("")
        lines.append(f"    _x, res, iters = _interior_point(F, x0, positive, {n_pos}, tol, maxiter, {direction})")
        lines.append("    values = unpack(_x)")
        # multipliers in the order of the derivation's unknowns
        lines.append(f"    {', '.join(n for n, _, _ in order)}{',' if len(order) == 1 else ''} = values")
        inds = []
        for m in ineqs:
            name = m.name
            if name in d.analysis.indicators:
                s, _, _ = d.analysis.indicators[name]
                t = f"_t_{self.py(name)}"
                # inactive (sᵢ = 1) where the slack exceeds the multiplier
                inds.append(f"jnp.where({t} > {self.py(name)}, 1.0, 0.0).astype(dtype)")
        outs = [self.py(u) for u in self.unknowns]
        lines.append("    return (" + ", ".join(outs + inds + ["res"]) + ")")
        text = "\n".join(lines[2:])
        return "\n".join(line for line in lines if not _unused_dim(line, text))


def newton_system(d: Derivation):
    """The symbolic Newton step, or None (the solver then takes dense Newton steps)."""
    from .errors import SymiftError
    from .ift import NewtonSystem

    try:
        return NewtonSystem(d._kkt)
    except (SymiftError, NotImplementedError, ValueError):
        return None


def _is_vector(sym) -> bool:
    return is_matrix(sym)


def _short(J, limit: int = 40) -> str:
    """``: <text of J>`` for a small expression (docstrings stay readable), else nothing."""
    from .printing import text

    size = sum(1 for _ in sp.preorder_traversal(J))
    return f": {text(J)}" if size <= limit else " (see the derivation)"


def _unused_dim(line: str, text: str) -> bool:
    """A ``n = jnp.shape(...)`` line whose name is used nowhere else."""
    m = re.match(r"\s+(\w+) = jnp\.shape\(", line)
    return bool(m) and len(re.findall(rf"\b{m.group(1)}\b", text)) == 1


def _is_zero(J) -> bool:
    return (is_matrix(J) and isinstance(J, sp.ZeroMatrix)) or (not is_matrix(J) and J == 0)


def codegen_command(problem: Problem, args) -> int:
    """``symift codegen FILE -o OUT.py``."""
    from pathlib import Path

    source = codegen(problem)
    try:
        Path(args.output).write_text(source, encoding="utf-8")
    except OSError as exc:
        raise UnsupportedError(f"cannot write '{args.output}': {exc.strerror or exc}", None,
                               problem.source) from None
    print(f"wrote {args.output}")
    return 0
