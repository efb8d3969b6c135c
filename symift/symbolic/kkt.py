"""Lagrangian, KKT conditions and the residual F(x, θ) as named blocks (SPEC §1 conventions).

* ``maximize f`` is handled as ``minimize −f``;
* ``a <= b`` becomes g = a − b ≤ 0, ``a >= b`` becomes g = b − a ≤ 0, ``a == b`` becomes h = a − b = 0;
* L = f + Σ λᵢᵀ gᵢ + Σ νⱼᵀ hⱼ with λ ≥ 0;
* F stacks stationarity ∇_z L, the equality constraints h and complementary slackness λ ∘ g;
  x = (primal, equality duals, inequality duals).  A root problem's F is its equations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp

from ..language.model import Name, Problem
from .algebra import Algebra
from .calculus import gradient
from .canonical import Facts
from .coupled import adjoint_gradient
from .expr import Scalar, SympyBuilder, broadcast_sub, is_matrix, total


@dataclass(frozen=True)
class Multiplier:
    name: str
    symbol: sp.Basic
    kind: str            # "equality" | "inequality"
    function: sp.Basic   # h (== 0) or g (<= 0)
    constraint: object   # the model Constraint


@dataclass(frozen=True)
class Condition:
    """A named KKT condition, as text-ready sympy: ``lhs  relation  rhs``."""

    name: str
    lhs: sp.Basic
    relation: str
    rhs: sp.Basic
    note: str = ""


@dataclass(frozen=True)
class Block:
    """One block row of the residual F, and the unknown it is paired with (for printing)."""

    name: str
    kind: str            # "stationarity" | "primal feasibility" | "complementary slackness" | "equation"
    expr: sp.Basic
    size: sp.Basic


@dataclass(frozen=True)
class Unknown:
    name: str
    symbol: sp.Basic
    kind: str            # "primal" | "equality dual" | "inequality dual"
    size: sp.Basic


@dataclass
class KKTSystem:
    problem: Problem
    builder: SympyBuilder
    algebra: Algebra
    objective: sp.Basic | None          # the function minimized (−f for maximize)
    conventions: list
    multipliers: list
    lagrangian: sp.Basic | None
    conditions: list
    residual: list
    unknowns: list

    @property
    def symbols(self) -> dict:
        out = dict(self.builder.symbols)
        out.update({m.name: m.symbol for m in self.multipliers})
        return out


def size_of(x) -> sp.Basic:
    """The number of entries of a block or unknown (m·k for an m×k matrix)."""
    return x.shape[0] * x.shape[1] if is_matrix(x) else sp.S.One


def multiplier_symbol(name, shape, kind):
    if shape == (1, 1):
        return sp.Symbol(name, real=True, **({"nonnegative": True} if kind == "inequality" else {}))
    return sp.MatrixSymbol(name, *shape)


def inner(a, b):
    """aᵀ b for vectors, ⟨A, B⟩ = Σᵢⱼ AᵢⱼBᵢⱼ for matrices, a·b for scalars."""
    if is_matrix(a) and a.shape[1] != 1:
        return total(sp.HadamardProduct(a, b))
    return Scalar(sp.MatMul(a.T, b)) if is_matrix(a) else a * b


def elementwise_product(a, b):
    return sp.HadamardProduct(a, b) if is_matrix(a) else a * b


def build_kkt(problem: Problem, algebra: Algebra | None = None, coupled: bool = False) -> KKTSystem:
    """The Lagrangian, KKT conditions and residual of a problem.

    ``coupled``: a matrix variable whose rows are coupled (symbolic.coupled): gradients in matrix
    variables are read off the differential by its adjoint, not by the vector algebra.
    """
    alg = algebra or Algebra(Facts())

    def grad(f, x):
        if coupled or (is_matrix(x) and x.shape[1] != 1):  # a matrix x: read off the adjoint
            return adjoint_gradient(f, x, alg.maps)
        return gradient(f, x, alg)
    builder = SympyBuilder(problem, gradient=grad)
    for v in problem.variables:
        sym = builder.symbols[v.name]
        if is_matrix(sym) and v.positive:
            alg.assumptions[sym] = {"positive": True}
    for p in problem.params:
        sym = builder.symbols[p.name]
        if p.attributes & {"symmetric", "psd", "pd"}:  # ∇(½zᵀQz) = Qz, not ½Qz + ½Qᵀz
            alg.facts.symmetric.add(sym)
            alg.facts.cited[("symmetric", sym)] = f"{p.name} is symmetric"
        # a vector parameter's entries carry its sign (scalars already do)
        if is_matrix(sym) and p.sign in (">0", ">=0"):
            alg.assumptions[sym] = {"positive": True} if p.sign == ">0" else {"nonnegative": True}
    variables = [builder.symbols[v.name] for v in problem.variables]
    if problem.kind == "root":
        return _root_system(problem, builder, alg, variables)

    f = builder.build(problem.objective.expr)
    conventions = []
    if problem.objective.sense == "maximize":
        f = -f
        conventions.append("maximize f is handled as minimize −f")
    multipliers = []
    for c in problem.constraints:
        if c.relation == "==":
            fn, kind = builder.relation(c.lhs, c.rhs), "equality"
        elif c.relation == "<=":
            fn, kind = builder.relation(c.lhs, c.rhs), "inequality"
        else:  # a >= b  ->  b - a <= 0
            fn, kind = broadcast_sub(builder.build(c.rhs), builder.build(c.lhs)), "inequality"
            if not is_matrix(fn) and is_matrix(builder.build(c.lhs)):
                fn = -builder.build(c.lhs)
        shape = fn.shape if is_matrix(fn) else (1, 1)
        multipliers.append(Multiplier(c.multiplier, multiplier_symbol(c.multiplier, shape, kind), kind, fn, c))
    if any(c.relation != "==" for c in problem.constraints):
        conventions.append("a ≤ b is written g = a − b ≤ 0 and a ≥ b as g = b − a ≤ 0")
    if any(c.relation == "==" for c in problem.constraints):
        conventions.append("a = b is written h = a − b = 0")

    lagrangian = f
    for m in multipliers:
        lagrangian = lagrangian + inner(m.symbol, m.function)

    residual, conditions = [], []
    for z in variables:
        g = grad(lagrangian, z)
        residual.append(Block(f"stationarity in {z.name}", "stationarity", g, size_of(z)))
        conditions.append(Condition(f"stationarity in {z.name}", g, "=", _zero_like(g)))
    for m in multipliers:
        if m.kind == "equality":
            residual.append(Block(f"primal feasibility ({m.name})", "primal feasibility", m.function,
                                  size_of(m.function)))
            conditions.append(Condition(f"primal feasibility ({m.name})", m.function, "=",
                                        _zero_like(m.function)))
    for m in multipliers:
        if m.kind == "inequality":
            conditions.append(Condition(f"primal feasibility ({m.name})", m.function, "≤",
                                        _zero_like(m.function)))
    for m in multipliers:
        if m.kind == "inequality":
            conditions.append(Condition(f"dual feasibility ({m.name})", m.symbol, "≥", _zero_like(m.symbol)))
    for m in multipliers:
        if m.kind == "inequality":
            cs = elementwise_product(m.symbol, m.function)
            residual.append(Block(f"complementary slackness ({m.name})", "complementary slackness", cs,
                                  size_of(m.function)))
            conditions.append(Condition(f"complementary slackness ({m.name})", cs, "=", _zero_like(cs)))

    unknowns = [Unknown(z.name, z, "primal", size_of(z)) for z in variables]
    unknowns += [Unknown(m.name, m.symbol, "equality dual", size_of(m.symbol))
                 for m in multipliers if m.kind == "equality"]
    unknowns += [Unknown(m.name, m.symbol, "inequality dual", size_of(m.symbol))
                 for m in multipliers if m.kind == "inequality"]
    return KKTSystem(problem, builder, alg, f, conventions, multipliers, lagrangian, conditions,
                     residual, unknowns)


def _root_system(problem, builder, alg, variables) -> KKTSystem:
    residual, conditions = [], []
    for k, e in enumerate(problem.equations, 1):
        fn = builder.relation(e.lhs, e.rhs)
        name = e.label or (f"equation {k}" if len(problem.equations) > 1 else "equation")
        residual.append(Block(name, "equation", fn, size_of(fn)))
        conditions.append(Condition(name, fn, "=", _zero_like(fn)))
    # softmax(u) as a symbol p with its own differential (calculus); x == softmax(u) says p = x
    for e in problem.equations:
        p = builder.build(e.rhs) if isinstance(e.lhs, Name) else None
        if p in builder.maps and builder.symbols.get(e.lhs.id) in variables:
            builder.maps[p] = replace(builder.maps[p], equals=builder.symbols[e.lhs.id])
    alg.maps.update(builder.maps)
    unknowns = [Unknown(z.name, z, "primal", size_of(z)) for z in variables]
    return KKTSystem(problem, builder, alg, None, [], [], None, conditions, residual, unknowns)


def _zero_like(e):
    return sp.ZeroMatrix(*e.shape) if is_matrix(e) else sp.S.Zero
