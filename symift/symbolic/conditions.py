"""The conditions of the implicit function theorem: verdicts, the report, smoothness of F.

F(x*, θ) = 0, F continuously differentiable near (x*, θ), ∂F/∂x nonsingular there: each is a
:class:`Verdict` — holds, fails, or holds under stated requirements (z > 0, Q⁻¹ exists, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from .printing import text


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
    return text(e)


def _nodes(e):
    """Sub-expressions of e, not descending into the Lambda of an elementwise function."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ElementwiseApplyFunction):
            stack.append(node.expr)
        elif isinstance(node, sp.Basic):
            stack.extend(node.args)


def domain_requirements(e):
    """(argument, '>' or '≠', construct) for every place where F stops being C¹."""
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
            for arg, rel, what in domain_requirements(body):
                if arg == var:
                    out.append((node.expr, rel, what))
    return out
