"""The plain-text report of a derivation (``symift derive FILE``)."""
from __future__ import annotations

from ..errors import MathError
from ..symbolic.derivation import Derivation
from ..symbolic.expr import is_matrix
from ..symbolic.kkt import inner
from ..symbolic.printing import text


def lagrangian(d: Derivation) -> str:
    """L = f + Σ multiplier terms, in the order of the problem: objective, then the constraints."""
    parts = [text(d.system.objective)] + [text(inner(m.symbol, m.function)) for m in d.system.multipliers]
    out = parts[0]
    for t in parts[1:]:
        out += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return out


def report(d: Derivation, wrt=None, params=None) -> str:
    """Lagrangian, KKT conditions, residual, IFT report and the requested Jacobians, as text.

    Raises MathError (after nothing is printed) when the implicit function theorem fails; the
    text up to the IFT report is in the error's ``report`` attribute.
    """
    problem = d.problem
    out = [problem.summary(), ""]
    if d.rows is not None:  # the user's problem, then the problem of one row
        out = [d.rows.problem.summary(), "", "The problem of one row:", *problem.summary().splitlines()[1:], ""]
    if d.conventions:
        out += ["Conventions:"] + [f"  {c}" for c in d.conventions] + [""]
    if d.lagrangian is not None:
        out += ["Lagrangian:", f"  L = {lagrangian(d)}", ""]
    out.append("KKT conditions:" if problem.kind == "optimization" else "Equations:")
    for name, (lhs, rel, rhs) in d.kkt.items():
        out.append(f"  {name}:  {text(lhs)} {rel} {text(rhs)}")
    out += ["", f"Residual F(x, θ) with x = ({', '.join(d.unknowns)}):"]
    for name, e in d.residual.items():
        out.append(f"  {name}:  {text(e)}")
    for m in d.maps.values():
        out.append(f"  where {m.meaning}: {m.rule} for its argument u")
    out += ["", "Implicit function theorem:"] + [f"  {line}" for line in str(d.ift).splitlines()]
    for meaning in d.indicators.values():
        out.append(f"  indicator {meaning}")
    if d.ift.holds is False:
        failed = next(c for c in d.ift.conditions if c.holds is False)
        error = MathError(f"the implicit function theorem does not apply: {failed.name}: {failed.reason}",
                          None, problem.source)
        error.report = "\n".join(out)
        raise error
    for v in wrt or []:
        d.check_names(v, d.parameters[0] if d.parameters else "")
    if d.tangent_only:
        return "\n".join(out + tangent_lines(d) + value_lines(d, params))
    out += ["", "Jacobians:", "  (numerator layout: dz/dθ has a row for each entry of z; for a matrix parameter P, "
            "the directional derivative along dP)"]
    results = d.jacobians(wrt, params)
    for (v, p), J in results.items():
        sym = d.symbols[p]
        vv = f"vec({v})" if d.is_vec(v) else v
        label = f"d{vv}/d{p}" if not (is_matrix(sym) and sym.shape[1] != 1) else f"d{vv}[d{p}]"
        out.append(f"  {label} = {text(J)}")
        for step in d.steps(p):
            condition = d.step_condition(step)
            note = f" ({condition})" if condition else ""
            facts = f"; using {', '.join(step.facts)}" if step.facts else ""
            added = (f" after {'adding' if step.added[1] > 0 else 'subtracting'} '{step.added[0]}'"
                     if step.added else "")
            pivot = d.named_pivot(step) or (d.written(step.pivot_lin) if step.pivot_lin is not None else None)
            out.append(f"      eliminate {step.unknown} with the {step.kind} pivot {text(pivot or step.pivot)} "
                       f"from '{step.row}'{added}{note}{facts}")
    named = d.definitions_used(results.values())
    if named:
        out += ["", "where"] + [f"  {text(q)} = {text(q.definition)}" for q in named]
    out += value_lines(d, params)
    if d.facts:
        out += ["", "Facts used:"] + [f"  {f}" for f in d.facts]
    return "\n".join(out)


def tangent_lines(d: Derivation) -> list:
    """The tangent system in matrix form: the result where no closed form is derived."""
    unknowns = ", ".join(f"d{u}" for u in d.unknowns)
    params = ", ".join(f"d{p}" for p in d.parameters)
    out = ["", f"Tangent system (no closed form: {d.coupled}, so the matrix variable is kept whole; "
           f"the tangent ({unknowns}) solves these linear equations for given ({params}), "
           "numerically in the layer):"]
    for name, e in d.tangent_system:
        out.append(f"  {name}:  {text(e)} = 0")
    return out


def value_lines(d: Derivation, params=None) -> list:
    """The optimal value and its gradient by the envelope theorem (none for a root problem)."""
    if d.value is None:
        return []
    rule = "−∂L/∂θ (L is built on −f)" if d.envelope.sign < 0 else "∂L/∂θ"
    out = ["", f"Optimal value (envelope theorem: dV/dθ = {rule} at the solution, no dx*/dθ needed; "
           "each gradient has its parameter's shape):",
           f"  V = {text(d.value)}"]
    if d.rows is not None:
        out[-1] += ("   (of one row: the whole problem's value is the sum over the rows)" if d.rows.additive else
                    "   (of one row; the objective adds a term without the matrix variable, which every row "
                    "repeats: the layer gives no value)")
    for p in params or d.parameters:
        d.check_names(None, p)
        label = f"dV/d{p}" if d.envelope.gradients[p] is not None else f"dV[d{p}]"
        out.append(f"  {label} = {text(d.value_gradient(p))}")
    return out
