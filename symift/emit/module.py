"""The module writer: a problem's printed functions, its ProblemSpec and its layer, as JAX source.

A problem module holds only what is specific to the problem, printed from the derivation:

* ``residual(**values)`` — the KKT residual F(x, θ) as named blocks, and the pieces the forward
  solves need (``_equations``, ``_inequalities``, ``_unknown_shapes``, the interior point's
  ``_newton_direction``, a separable problem's ``_separable`` / ``_dual``);
* ``jacobian_<var>_<param>(**values)`` — each closed-form Jacobian as a dense array (for a
  matrix parameter P, the directional derivative along ``d<P>``), ``_tangents`` (J·dθ) and
  ``_pivot_conditions`` (the condition of ∂F/∂x's pivots at a solution, for its status);
* ``SPEC = ProblemSpec(...)`` and ``layer(**params)`` / ``solve(**params)`` over the runtime's
  ``make_layer(SPEC)`` (symift.runtime).

``source(standalone=True)`` (``symift codegen``) puts the runtime's standalone sections in front,
so the module imports jax and numpy only; ``source(standalone=False)`` (``symift.compile``)
imports them from ``symift.runtime`` — the same code either way.
"""
from __future__ import annotations

import re
from importlib import resources

import sympy as sp

from ..errors import SymiftError, UnsupportedError
from ..runtime import HELPERS, OPTIONAL_FILES, STANDALONE_FILES
from ..symbolic.conditions import domain_requirements
from ..symbolic.derivation import Derivation
from ..symbolic.expr import Scalar, is_matrix
from ..symbolic.newton import NewtonSystem
from ..symbolic.operators import fixed_point_map
from ..symbolic.printing import text
from ..symbolic.separable import separable_dual
from ..symbolic.tangent import TangentSystem
from .emitter import AbsoluteEmitter, Emitter, python_name
from .entry import layer_fns, rows_fn
from .operators import OperatorWriter
from .separable import SeparableWriter
from .tangent import tangent_fn
from .value import ValueWriter

#: The jax function of each smooth map of a 'solve' block (symbolic.operators.Map)
_MAP_CODE = {"softmax": "jax.nn.softmax", "proj_simplex": "proj_simplex", "proj_l2ball": "proj_l2ball"}


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


class ModuleWriter:
    """Writes the generated module for one derivation."""

    def __init__(self, d: Derivation):
        self.d = d
        self.layout = _Layout(d)
        self.kkt = d.system
        self.params = d.parameters
        self.unknowns = list(d.unknowns)  # every unknown, inactive multipliers included
        self.pd = {d.symbols[p.name] for p in d.problem.params if "pd" in p.attributes}
        self.separable = separable_dual(d)   # closed-form / 1-D dual forward solve, if any
        #: x == T(x, θ): iterate T before Newton (runtime.fixed_point)
        self.fixed_point = fixed_point_map(d.problem, d.system.builder)
        self.newton = None if self.separable else newton_system(d)
        #: the same step with the parameters' pd pivots first (a QP's dual Schur complement),
        #: where there are such pivots; the interior point takes the cheaper of the two per iterate
        self.newton_constant = None if self.newton is None or not self.pd else newton_system(d, constant_first=True)
        alt = self.newton_constant
        if alt is not None and (not alt.constant_pivots or _order(alt) == _order(self.newton)):
            self.newton_constant = None  # no parameter pivot, or the primal step already takes it first

    # ---- helpers
    def py(self, name):
        return self.layout.py[name]

    def emitter(self):
        em = Emitter(self.layout.names(), self.pd)
        em.indicators = self.indicator_symbols
        # an operator's indicators are computed from the current values unless they are arguments
        em.computed = {k.indicator: k.condition for _, _, k in self.d.analysis.kinks.values()}
        maps = self.d.analysis.alg.maps.values()
        em.computed.update({m.symbol: (_MAP_CODE[m.kind], m.arg, *([m.radius] if m.radius is not None else []))
                            for m in maps})
        em.computed.update({m.threshold: ("jnp.max", m.arg - m.symbol) if m.kind == "proj_simplex" else
                            ("jnp.linalg.norm", m.arg) for m in maps if m.threshold is not None})
        for symbol in em.computed:
            em.names.pop(symbol, None)
        return em

    @property
    def indicator_symbols(self) -> set:
        alg = self.d.analysis.alg
        out = {alg.vectors[s][0] for s, _, _ in self.d.analysis.indicators.values() if s in alg.vectors}
        return out | {k.indicator for _, _, k in self.d.analysis.kinks.values() if is_matrix(k.indicator)}

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
        for kink in self.d.analysis.kinks:
            if kink in args:  # the indicators at a solution, passed in
                symbol = self.layout.symbols[kink]
                em.names[symbol] = self.py(kink)
                em.computed.pop(symbol)
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
        variables = [v.name for v in self.d.lowered_problem.variables]
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
        (symift.symbolic.tangent), when the elimination with symbolic right-hand sides succeeds.
        """
        if len(self.params) > 1:
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
                outs.append(self.in_shape(var, " + ".join(terms), em) if terms else zero)
            return "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")"
        return self.function("_tangents", args, build, "The implicit tangents J·dθ of every unknown.",
                             tangents=[f"t_{self.py(p)}" for p in self.params])

    def in_shape(self, var: str, code: str, em) -> str:
        """The tangent ``code`` of ``var`` in var's shape: d vec(B) back to an m×k matrix."""
        if not self.d.is_vec(var):
            return code
        rows, cols = self.layout.symbols[var].shape
        return f"unvec({code}, {em.size(rows)}, {em.size(cols)})"

    def newton_fn(self, ns=None, fn_name="_newton_direction") -> str:
        """The structured Newton step of the forward solver (see symift.symbolic.newton.NewtonSystem).

        ``_newton_direction(params, unknowns, slacks)`` does what does not depend on the
        right-hand side (the Schur complements and their factorizations) once per iterate and
        returns ``solve(_r0, _r1, ...)``, which the interior point applies to several right-hand
        sides.
        """
        ns = ns or self.newton
        ineqs = [m for m in self.kkt.multipliers if m.kind == "inequality"]
        slack_args = [f"_t_{self.py(m.name)}" for m in ineqs]
        rhs = [f"_r{k}" for k in range(len(ns.rows))]
        args = ["*", *self.params, *self.d.unknowns, *slack_args]
        em = self.emitter()
        # interior-point iterates keep multipliers and slacks > 0: Q + Gᵀdiag(λ/t)G is pd
        em.positive |= {ns.slacks[m.name] for m in ineqs} | {m.symbol for m in ineqs}
        # a parameter pivot is the same at every iterate: its inverse is computed once (XLA hoists it
        # out of the loop) and each solve with it is a matrix product
        em.inverted = set(ns.constant_pivots) & set(self.pd)
        for m, name in zip(ineqs, slack_args, strict=False):
            em.names[ns.slacks[m.name]] = name
        for k, r in enumerate(ns.rows):
            em.names[ns.rhs[r.name]] = rhs[k]
        result = self._staged(em, ns.staged, ns.step_symbols, [u.name for u in ns.unknowns])
        once, per_rhs = _split_by_inputs(em.lines, rhs)
        doc = ["    \"\"\"The Newton step of the interior point, by symift's block elimination: the",
               "    factorizations once per iterate, then solve(right-hand side) as often as needed."]
        if ns.constant_pivots:
            doc += [f"    Its first pivots, {', '.join(map(str, ns.constant_pivots))}, are parameters: their "
                    "factorizations and products", "    are the same at every iterate (computed once)."]
        doc[-1] += '"""'
        return self._two_stage(fn_name, args, doc, em, once,
                               [("solve", rhs, per_rhs, result)])

    def pivots_fn(self) -> str:
        """``_pivot_conditions``: the largest condition among the pivots of ∂F/∂x's block elimination.

        Scalar and diagonal pivots by their cancellation (the pivot, and the pivot printed with
        absolute values: symift.runtime.status.pivot_condition); matrix pivots by Skeel's condition
        number from the factorization the closed form uses (factor_condition).  These are the
        conditions the IFT report states symbolically, measured at a solution; a scalar or diagonal
        pivot the derivation proves nonzero (softmax's diag(1/z) with z > 0) is not measured.  Two bounds
        l ≤ x ≤ u that the elimination assumes never active together add the condition of l − u.
        """
        args = ["*", *self.params, *self.d.unknowns, *self.d.indicators]

        def build(em):
            absolute = AbsoluteEmitter(self.layout.names(), self.pd)
            absolute.indicators = absolute.plain.indicators = self.indicator_symbols
            absolute.counter = em.counter  # one numbering: the temporaries share the function's scope
            conditions = []
            for step in self.d.pivots:
                P = step.pivot
                if step.kind == "identity" or (step.kind in ("scalar", "diagonal") and step.condition is None):
                    continue  # proven nonzero for every admissible value: nothing to measure
                if step.kind == "scalar":
                    value = Scalar(P) if is_matrix(P) else P
                    code = em.scalar(value)
                    try:
                        bound = absolute.scalar(value)
                    except UnsupportedError:  # 1ᵀ M⁻¹ s: no modulus bound; M's own factorization is measured
                        bound = f"jnp.abs({code})"
                    conditions.append(f"pivot_condition({code}, {bound})")
                elif step.kind == "diagonal":  # P·1 is its diagonal
                    ones = f"jnp.ones(({em.size(P.shape[0])},))"
                    conditions.append(f"pivot_condition({em.apply(P, ones)}, {absolute.apply(P, ones)})")
                else:  # a scalar factor does not change the condition: −A Q⁻¹ Aᵀ is factorized as A Q⁻¹ Aᵀ
                    P = P.as_coeff_mmul()[1].doit() if isinstance(P, sp.MatMul) else P
                    kind, factors, dense = em.factorization(P)
                    conditions.append(f"factor_condition({kind!r}, {factors}, {dense})")
            for pair in self.d.exclusive_used:  # l − u < 0: how well l and u are told apart
                conditions.append(f"pivot_condition({em.vec(pair.c)}, {absolute.vec(pair.c)})")
            em.lines += absolute.lines
            if not conditions:
                return "jnp.ones(())"
            return "jnp.max(jnp.stack([" + ", ".join(conditions) + "]))"
        return self.function("_pivot_conditions", args, build,
                             "The largest condition among the pivots of dF/dx at a solution (symift.runtime.status).")

    def _staged(self, em, staged, step_symbols, order) -> str:
        """Back substitution on named steps (later unknowns reuse the earlier ones): the result tuple."""
        steps = {}
        for u, expr in staged:
            code = em.vec(expr)
            steps[u] = code if code.isidentifier() else em.tmp(code, "d")
            em.names[step_symbols[u]] = steps[u]
        return "(" + ", ".join(steps[u] for u in order) + ("," if len(order) == 1 else "") + ")"

    def _two_stage(self, name, args, doc, em, once, inner) -> str:
        """``def name(args)``: the ``once`` statements, then inner functions returned as a tuple."""
        body = "\n".join(once) + "\n" + "\n".join(r for *_, r in inner) + \
            "\n".join("\n".join(lines) for _, _, lines, _ in inner)
        dims = [line for line in self.dims_code(em, [a for a in args if a in self.layout.py])
                if re.search(rf"\b{line.split()[0]}\b", body)]
        out = [f"def {name}({', '.join(self.py(a) if a in self.layout.py else a for a in args)}):", *doc,
               *dims, *once]
        for fname, fargs, lines, result in inner:
            out += ["", f"    def {fname}({', '.join(fargs)}):", *lines, f"        return {result}"]
        out.append("    return " + ", ".join(f for f, *_ in inner))
        return "\n".join(out)

    def shapes_fn(self) -> str:
        """``_unknown_shapes(**params)``: the shape of every variable and multiplier."""
        names = [v.name for v in self.d.lowered_problem.variables] + [m.name for m in self.kkt.multipliers]

        def build(em):
            items = []
            for name in names:
                sym = self.layout.symbols[name]
                shape = "()" if not is_matrix(sym) else "(" + ", ".join(
                    em.size(s) for s in (sym.shape if sym.shape[1] != 1 else sym.shape[:1])) + ",)"
                items.append(f"{self.py(name)!r}: {shape}")
            return "{" + ", ".join(items) + "}"
        return self.function("_unknown_shapes", ["*", *self.params], build,
                             "The shape of every variable and multiplier for these parameters.")

    def shape_expr(self, sym, em):
        if not is_matrix(sym):
            return "()"
        return f"({em.size(sym.shape[0])},)"

    # ---- the module
    def source(self, standalone: bool = True) -> str:
        """The module: header, (the runtime's sections,) the problem's functions, SPEC and layer."""
        closed, why = closed_form_fns(self)  # why: no closed form for some pair (or None)
        parts = [self.header(standalone)]
        if standalone:
            parts.append(runtime_source(self.runtime_names()))
        parts += [self.residual_fn(), self.constraint_fns(), self.shapes_fn(), *closed]
        has_pivots = why is None and self.pivot_steps() is not None
        if has_pivots:
            parts.append(self.pivots_fn())
        if self.newton is not None:
            parts.append(self.newton_fn())
        if self.newton_constant is not None:
            parts.append(self.newton_fn(self.newton_constant, "_newton_direction_constant"))
        parts += OperatorWriter(self).functions()
        if self.separable is not None:
            parts += SeparableWriter(self, self.separable).functions()
        parts += ValueWriter(self).functions()
        parts += [self.spec_code(why, has_pivots), layer_fns(self)]
        if getattr(self.d, "rows", None) is not None:
            parts.append(rows_fn(self))
        return "\n\n\n".join(p.strip("\n") for p in parts) + "\n"

    def pivot_steps(self):
        """The pivots of ∂F/∂x's block elimination, or None where it fails."""
        try:
            return self.d.pivots
        except (SymiftError, NotImplementedError, ValueError):
            return None

    def header(self, standalone: bool) -> str:
        d = self.d
        filename = _docstring_safe(d.problem.source.filename)
        doc = (f'"""symift-generated JAX module for {filename} — do not edit.\n\n'
               f"Solution map and implicit derivatives of the problem; regenerate with\n"
               f"``symift codegen {filename} -o OUT.py``.\n"
               '"""\n')
        names = {self.py(n) for n in [*self.params, *d.unknowns]}
        if names & {"l", "O", "I"}:  # the user's names are the keyword arguments: keep them
            doc = "# ruff: noqa: E741\n" + doc
        if standalone:
            return (doc + "from __future__ import annotations\n\nimport os\nfrom typing import Callable, NamedTuple\n\n"
                    "import jax\nimport jax.numpy as jnp\nimport numpy as np\nfrom jax import lax")
        names = ", ".join(sorted(set(HELPERS) | self.runtime_names()))
        return doc + f"import jax\nimport jax.numpy as jnp\n\nfrom symift.runtime import {names}"

    def runtime_names(self) -> set:
        """The runtime names SPEC refers to: which forward solve, and its pieces."""
        plan = self.separable
        rows = {"whole_status"} if getattr(self.d, "rows", None) is not None else set()
        if plan is None:
            return {"ProblemSpec", "make_layer", "kkt_solve"} | rows | \
                ({"fixed_point_solve"} if self.fixed_point is not None else set())
        names = {"ProblemSpec", "make_layer", "separable_solve", "SeparableSpec"} | rows
        if plan.equality is not None and plan.dual is None:
            names.add("dual_newton")
        if plan.equality is not None and (plan.dual is not None or plan.start is not None):
            names.add("max_of")
        return names

    def spec_code(self, why: str | None, has_pivots: bool) -> str:
        """``SPEC = ProblemSpec(...)``: the problem's names and structure for the runtime."""
        d, py = self.d, self.py
        kkt = self.kkt
        mults = kkt.multipliers
        indicator_of = {py(m): py(s.name) for m, (s, _, _) in d.analysis.indicators.items()}
        fields = [
            ("filename", repr(d.problem.source.filename)),
            ("params", _tuple(py(p) for p in self.params)),
            ("variables", _tuple(py(v.name) for v in d.lowered_problem.variables)),
            ("equalities", _tuple(py(m.name) for m in mults if m.kind == "equality")),
            ("inequalities", _tuple(py(m.name) for m in mults if m.kind == "inequality")),
            ("indicator_of", repr(indicator_of)),
            ("declared_inactive", _tuple(py(m) for m in d.analysis.inactive)),
            ("positive", _tuple(py(v.name) for v in d.lowered_problem.variables if v.positive)),
            ("stationarity", repr(tuple(b.name for b in kkt.residual if b.kind == "stationarity"))),
            ("symmetric", _tuple(py(q.name) for q in d.problem.params if q.attributes & {"symmetric", "psd", "pd"})),
            ("why_no_closed_form", repr(why or "")),
            ("forward", "separable_solve" if self.separable is not None else
             "fixed_point_solve" if self.fixed_point is not None else "kkt_solve"),
            ("cg_applicable", str(d.problem.kind == "optimization" and not mults)),
            ("residual", "residual"),
            ("equations", "_equations"),
            ("constraints", "_inequalities"),
            ("shapes", "_unknown_shapes"),
            ("tangents", "_tangents" if why is None else "None"),
            ("newton_direction", "_newton_direction" if self.newton is not None else "None"),
            ("newton_direction_constant", "_newton_direction_constant" if self.newton_constant is not None else "None"),
            ("separable", self.separable_spec()),
            ("pivots", "_pivot_conditions" if has_pivots else "None"),
            ("kinks", _tuple(self.kinks())),
            ("operator_indicators", _tuple(py(n) for n in d.analysis.kinks)),
            ("operator_pieces", "_kinks" if d.analysis.kinks or OperatorWriter(self).domains() else "None"),
            ("operator_conditions", _tuple(OperatorWriter(self).condition_names())),
            ("fixed_point", "_fixed_point" if self.fixed_point is not None else "None"),
            ("value", "_value" if d.envelope is not None else "None"),
            ("value_tangent", "_value_tangent" if d.envelope is not None else "None"),
        ]
        return "SPEC = ProblemSpec(\n" + "".join(f"    {k}={v},\n" for k, v in fields) + ")\n_layer = make_layer(SPEC)"

    def kinks(self) -> list:
        """The arguments of abs and sign in F, as text: F is not C¹ where one has a zero entry."""
        found = [text(arg) for b in self.kkt.residual for arg, _, what in domain_requirements(b.expr)
                 if what in ("sign", "abs")]
        return list(dict.fromkeys(found))

    def separable_spec(self) -> str:
        """``SeparableSpec(...)`` of the dual reduction, or ``None``."""
        plan = self.separable
        if plan is None:
            return "None"
        py = self.py
        eq = plan.equality is not None
        bounds = _tuple((py(b.multiplier), b.sign) for b in plan.bounds)
        fields = [("variable", repr(py(plan.variable))), ("equality", repr(py(plan.equality.name)) if eq else "None"),
                  ("bounds", bounds), ("inactive", _tuple(py(m) for m in plan.inactive)), ("primal", "_separable"),
                  ("dual_equality", "_dual_equality" if eq else "None"),
                  ("dual", "_dual" if eq and plan.dual is not None else "None"),
                  ("newton", "dual_newton" if eq and plan.dual is None else "None"),
                  ("start", "_dual_start" if eq and plan.dual is None and plan.start is not None else "None")]
        return "SeparableSpec(" + ", ".join(f"{k}={v}" for k, v in fields) + ")"

def closed_form_fns(mw) -> tuple:
    """(the closed-form functions that could be derived, why there is no full closed form or None).

    ``Derivation.jacobian`` raises MathError where the block elimination finds no invertible
    pivot (e.g. box constraints) and UnsupportedError where it cannot eliminate; the printer
    raises UnsupportedError for a construct it cannot translate.  Then ``_tangents`` is left out
    and ``backward="auto"`` takes the linear solve.
    """
    out, why = [], None
    for var in mw.unknowns:
        for p in mw.params:
            try:
                out.append(mw.jacobian_fn(var, p))
            except (SymiftError, NotImplementedError) as exc:
                why = why or f"d{var}/d{p}: {getattr(exc, 'message', exc)}"
    if why is None:
        try:
            out.append(mw.tangent_fn())
        except (SymiftError, NotImplementedError) as exc:
            why = f"the tangent: {getattr(exc, 'message', exc)}"
    return out, why


def runtime_source(used: set) -> str:
    """The standalone sections of the runtime files, in dependency order (see symift.runtime),
    without the optional files whose entry point is not in ``used``."""
    parts = []
    for name in STANDALONE_FILES:
        if name in OPTIONAL_FILES and OPTIONAL_FILES[name] not in used:
            continue
        text = resources.files("symift.runtime").joinpath(name).read_text(encoding="utf-8")
        for section in re.findall(r"^###\{standalone\n(.*?)^###\}$", text, flags=re.S | re.M):
            parts.append(section.strip("\n"))
    return "\n\n\n".join(parts)


def _split_by_inputs(lines, inputs) -> tuple:
    """Statements that do not depend on ``inputs`` (once), and those that do (indented one level)."""
    dependent, once, per_input = set(inputs), [], []
    for line in lines:
        name, code = line.strip().split(" = ", 1)
        if dependent & set(re.findall(r"\w+", code)):
            dependent.add(name)
            per_input.append("    " + line)
        else:
            once.append(line)
    return once, per_input


def _docstring_safe(text: str) -> str:
    """A file name as it may appear inside a generated docstring (no quotes, escapes or controls)."""
    return "".join(c if c.isprintable() and c not in "\"\\" else "?" for c in text)


def _tuple(items) -> str:
    items = list(items)
    return "(" + ", ".join(repr(i) for i in items) + ("," if len(items) == 1 else "") + ")"


def _order(ns) -> list:
    """The (row, unknown) pivots of a Newton system's elimination, in order."""
    return [(s.row, s.unknown) for s in ns.steps]


def newton_system(d: Derivation, constant_first: bool = False):
    """The symbolic Newton step, or None (the solver then takes dense Newton steps)."""
    try:
        return NewtonSystem(d.system, constant_first=constant_first)
    except (SymiftError, NotImplementedError, ValueError):
        return None


def _short(J, limit: int = 40) -> str:
    """``: <text of J>`` for a small expression (docstrings stay readable), else nothing."""
    size = sum(1 for _ in sp.preorder_traversal(J))
    return f": {text(J)}" if size <= limit else " (see the derivation)"


def _is_zero(J) -> bool:
    return (is_matrix(J) and isinstance(J, sp.ZeroMatrix)) or (not is_matrix(J) and J == 0)
