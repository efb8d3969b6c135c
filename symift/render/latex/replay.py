"""Facts, recorded per step: :func:`replay` repeats the block elimination of a derivation (the
same pivots, the same algebra) and keeps every intermediate block with the facts it used
(:class:`Trace`, :class:`Pivot`, :class:`Update`); :func:`recording` collects those facts and
:func:`fact_keys` identifies them.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import sympy as sp

from ...symbolic.canonical import Lin
from ...symbolic.expr import as_sympy


# --------------------------------------------------------------------------- facts, recorded per step
@contextmanager
def recording(facts, reductions: bool = True):
    """Collect the facts the simplifier uses inside the block (and nothing else); with
    ``reductions=False`` the values of reductions (1ᵀz = 1) are not applied."""
    used, values = facts.used, facts.reductions
    facts.used = []
    if not reductions:
        facts.reductions = {}
    try:
        yield facts.used
    finally:
        facts.used, facts.reductions = used, values


@dataclass
class Update:
    """One block replaced by its Schur complement, M' = M − M_c P⁻¹ M_r, or a right-hand side row."""

    row: str
    unknown: str | None            # None for the right-hand side
    old: object                    # Lin or None (a zero block)
    left: object                   # M[row, pivot column]
    right: object                  # M[pivot row, unknown] (or the pivot row's right-hand side)
    plain: object                  # the result before reduction facts apply (or None)
    new: object                    # the result
    facts: list


@dataclass
class Pivot:
    step: object                   # symift.symbolic.eliminate.Step
    lin: object
    inverse: object
    kind: str
    condition: object              # sympy scalar or vector that must be nonzero, or None
    facts: list
    updates: list = field(default_factory=list)
    rhs_updates: list = field(default_factory=list)
    back: tuple = ()               # (row blocks {unknown: Lin}, right-hand side Lin)


@dataclass
class Trace:
    """The block elimination of (∂F/∂x) X = b, replayed from the derivation's steps with the
    facts of every Schur complement recorded where they are used."""

    pivots: list
    solution: dict                 # unknown -> Lin
    back_facts: dict               # unknown -> facts


def replay(analysis, steps, rhs=None) -> Trace:
    """Replay :meth:`symift.symbolic.analysis.Analysis.eliminate` along ``steps`` (the same pivots, the same
    algebra), keeping each intermediate block and the facts it used."""
    alg, facts = analysis.alg, analysis.facts
    M = {k: v for k, v in analysis.blocks.items() if not v.is_zero}
    R = dict(rhs) if rhs is not None else None
    rows = [r.name for r in analysis.rows]
    cols = [u.name for u in analysis.unknowns]
    pivots = []
    for step in steps:
        r, c = step.row, step.unknown
        if step.added is not None:  # the row operation the elimination made before this pivot
            analysis.add_row(M, R, cols, r, *step.added)
        with recording(facts) as used:
            inv, kind, cond = alg.inverse(M[r, c])
        pivot = Pivot(step, M[r, c], inv, step.kind, _condition(analysis, kind, cond), list(used))
        others = [c2 for c2 in cols if c2 != c and (r, c2) in M]
        for r2 in rows:
            if r2 == r or (r2, c) not in M:
                continue
            with recording(facts) as used:
                factor = alg.mul(M[r2, c], inv)
            row_facts = list(used)
            for c2 in others:
                old = M.get((r2, c2))
                new, plain, used = _schur(alg, facts, old, factor, M[r, c2], M[r2, c].shape[0])
                pivot.updates.append(Update(r2, c2, old, M[r2, c], M[r, c2], plain, new,
                                            _unique(row_facts + used)))
                if new.is_zero:
                    M.pop((r2, c2), None)
                else:
                    M[r2, c2] = new
            if R is not None:
                new, plain, used = _schur(alg, facts, R[r2], factor, R[r], R[r2].shape[0])
                if not R[r].is_zero:
                    pivot.rhs_updates.append(Update(r2, None, R[r2], M[r2, c], R[r], plain, new,
                                                    _unique(row_facts + used)))
                R[r2] = new
            del M[r2, c]
        pivot.back = ({c2: M[r, c2] for c2 in others}, R[r] if R is not None else None)
        for c2 in others:
            del M[r, c2]
        del M[r, c]
        rows.remove(r)
        cols.remove(c)
        pivots.append(pivot)
    solution, back_facts = {}, {}
    if R is not None:
        for pivot in reversed(pivots):
            blocks, acc = pivot.back
            with recording(facts) as used:
                for c2, blk in blocks.items():
                    acc = acc - alg.mul(blk, solution[c2])
                solution[pivot.step.unknown] = alg.mul(pivot.inverse, alg.simplify(acc))
            back_facts[pivot.step.unknown] = list(used)
    return Trace(pivots, solution, back_facts)


def _schur(alg, facts, old, factor, right, rows):
    """old − factor·right, simplified with the facts (and once without the reduction facts)."""

    base = old if old is not None else Lin((rows, right.shape[1]))
    with recording(facts) as used:
        new = alg.simplify(base - alg.mul(factor, right))
    plain = None
    if any(k[0] == "reduction" for k in fact_keys(facts, used)):
        with recording(facts, reductions=False):
            plain = alg.simplify(base - alg.mul(factor, right))
    return new, plain, list(used)


def _condition(analysis, kind, cond):
    """What must be nonzero for a scalar or diagonal pivot, as sympy (None when it always is)."""
    if kind not in ("scalar", "diagonal") or analysis.nonzero(cond) is True:
        return None
    alg = analysis.alg
    if kind == "scalar":
        value = alg.scalar_to_sympy(cond)
        number, rest = sp.factor_terms(value).as_coeff_Mul()
        return rest if number != 0 else value
    holders = alg.placeholders_in(as_sympy(cond))
    size = alg.vectors[next(iter(holders))][1] if holders else sp.S.One
    return alg.vector_to_sympy(cond, size)


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def fact_keys(facts, sentences) -> list:
    by_sentence = {v: k for k, v in facts.cited.items()}
    return [by_sentence.get(s, ("text", s)) for s in sentences]
