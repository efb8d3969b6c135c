"""Block Gaussian elimination of (∂F/∂x) X = R with symbolic blocks (Schur complements).

symift never inverts ∂F/∂x as a whole: it solves (∂F/∂x) X = R block by block, each time choosing
the cheapest pivot (identity, scalar, diagonal, a declared-pd symbol, and only then a general
block), replacing the other rows by their Schur complements, and simplifying with the facts.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import sympy as sp

from ..errors import MathError
from .canonical import Lin
from .conditions import describe
from .expr import as_sympy

_KIND_COST = {"identity": 0, "scalar": 1, "diagonal": 2, "symbol": 3, "general": 5}


@dataclass
class Step:
    """One elimination step: unknown ``unknown`` is solved from row ``row`` with ``pivot``."""

    row: str
    unknown: str
    kind: str
    pivot: sp.Basic
    inverse: sp.Basic
    condition: str | None
    updated: list = field(default_factory=list)   # [(row, unknown, new block)] Schur complements
    facts: list = field(default_factory=list)
    #: (other row, ±1): before the pivot, ``row`` += ± ``other row`` (two rows whose blocks in this
    #: unknown are each singular but add up to an invertible diagonal: the epigraph of |w|)
    added: tuple | None = None
    #: the pivot's inverse in the canonical algebra (``inverse`` is its sympy form)
    inverse_lin: Lin | None = None
    pivot_lin: Lin | None = None


class Eliminator:
    """Block Gaussian elimination of a linear system (∂F/∂x) X = R with symbolic blocks.

    Needs ``alg``, ``facts``, ``blocks`` {(row, unknown): Lin}, ``rows`` and ``unknowns``
    (objects with ``.name``) and ``source`` (for errors).
    """

    def eliminate(self, rhs: dict) -> tuple:
        """Solve (∂F/∂x) X = rhs block-wise; returns ({unknown: Lin}, [Step])."""
        back, steps = self.forward_eliminate(rhs)
        return self.back_substitute(back), steps

    def forward_eliminate(self, rhs: dict) -> tuple:
        """The pivots of (∂F/∂x) X = rhs, eliminated in turn: ([(unknown, pivot inverse, the
        pivot row's other blocks, its reduced right-hand side)], [Step])."""
        alg = self.alg
        M = {k: v for k, v in self.blocks.items() if not v.is_zero}
        R = dict(rhs)
        rows = [r.name for r in self.rows]
        cols = [u.name for u in self.unknowns]
        steps, back = [], []
        while cols:
            choice = self._choose_pivot(M, rows, cols)
            if choice is None:
                missing = ", ".join(cols)
                raise MathError(f"∂F/∂x is singular: no invertible pivot for {missing} "
                                f"(rows left: {', '.join(rows)})", None, self.source)
            r, c, inv, kind, cond, added = choice
            used_before = len(self.facts.trace)
            if added is not None:
                self.add_row(M, R, cols, r, *added)
            step = Step(r, c, kind, alg.to_sympy(M[r, c]), alg.to_sympy(inv), cond, added=added, inverse_lin=inv,
                        pivot_lin=M[r, c])
            others = [c2 for c2 in cols if c2 != c and (r, c2) in M]
            for r2 in rows:
                if r2 == r or (r2, c) not in M:
                    continue
                factor = alg.mul(M[r2, c], inv)
                for c2 in others:
                    new = alg.simplify(M.get((r2, c2), Lin(factor.shape[:1] + M[r, c2].shape[1:])) -
                                       alg.mul(factor, M[r, c2]))
                    if new.is_zero:
                        M.pop((r2, c2), None)
                    else:
                        M[r2, c2] = new
                    step.updated.append((r2, c2, alg.to_sympy(new) if not new.is_zero else 0))
                R[r2] = alg.simplify(R[r2] - alg.mul(factor, R[r]))
                del M[r2, c]
            back.append((c, inv, {c2: M[r, c2] for c2 in others}, R[r]))
            for c2 in others:
                del M[r, c2]
            del M[r, c]
            rows.remove(r)
            cols.remove(c)
            step.facts = list(dict.fromkeys(self.facts.trace[used_before:]))
            steps.append(step)
        return back, steps

    def back_substitute(self, back, named=None) -> dict:
        """{unknown: Lin} from the eliminated rows, last pivot first.  With ``named`` (unknown ->
        symbol), each unknown is written in terms of the symbols of those solved before it rather
        than their full expressions (code then reuses the computed steps)."""
        alg, solution = self.alg, {}
        for c, inv, row_blocks, r_rhs in reversed(back):
            acc = r_rhs
            for c2, blk in row_blocks.items():
                acc = acc - alg.mul(blk, alg.lin(named[c2]) if named else solution[c2])
            solution[c] = alg.mul(inv, alg.simplify(acc))
        return solution

    def add_row(self, M, R, cols, row, other, sign):
        """Row ``row`` += sign · row ``other`` (blocks and right-hand side)."""
        alg = self.alg
        for c2 in cols:
            a, b = M.get((row, c2)), M.get((other, c2))
            if b is None:
                continue
            new = alg.simplify((a if a is not None else Lin(b.shape)) + b.scale(sign))
            if new.is_zero:
                M.pop((row, c2), None)
            else:
                M[row, c2] = new
        if R is not None:
            R[row] = alg.simplify(R[row] + R[other].scale(sign))

    def _combined(self, M, rows, cols):
        """Pivots from two rows added: their blocks in one unknown are singular diagonals (diag(1 − s₁),
        diag(1 − s₂)) whose sum or difference is provably invertible under the facts (s₁∘s₂ = 0)."""
        out = []
        for c in cols:
            diagonal = [r for r in rows if (r, c) in M and self.alg.as_diag(M[r, c]) is not None]
            for r1, r2 in itertools.permutations(diagonal, 2):
                for sign in (1, -1):
                    blk = self.alg.simplify(M[r2, c] + M[r1, c].scale(sign))
                    if blk.is_zero:
                        continue
                    inv, kind, cond = self.alg.inverse(blk)
                    if kind not in ("identity", "diagonal") or (kind == "diagonal" and self.nonzero(cond) is not True):
                        continue
                    fill = sum((r2, c2) in M or (r1, c2) in M for c2 in cols) + sum((r, c) in M for r in rows)
                    out.append(((_KIND_COST[kind] + 1, fill, rows.index(r2), cols.index(c)),
                                (r2, c, inv, kind, cond, True, blk, (r1, sign))))
        return out

    def _choose_pivot(self, M, rows, cols):
        """The cheapest invertible pivot: by kind (identity < scalar < diagonal < declared pd <
        general; unproven nonzero after proven), then by what its Schur complements do to the blocks
        left (a scalar pivot that turns a diagonal block into diagonal + rank one comes after a
        diagonal pivot that keeps it diagonal: capped simplex), then by fill and position."""
        candidates = []
        for r in rows:
            for c in cols:
                blk = M.get((r, c))
                if blk is None or blk.shape[0] != blk.shape[1]:
                    continue
                try:
                    inv, kind, cond = self.alg.inverse(blk)
                except ZeroDivisionError:
                    continue
                verdict = self.nonzero(cond) if kind in ("scalar", "diagonal") else True
                if verdict is False:
                    continue
                if kind == "symbol" and cond is not None and cond not in self.facts.invertible:
                    kind = "general"
                fill = sum((r, c2) in M for c2 in cols) + sum((r2, c) in M for r2 in rows)
                rank = self._pivot_rank(kind, cond) + (verdict is None)
                candidates.append(((rank, fill, rows.index(r), cols.index(c)),
                                   (r, c, inv, kind, cond, verdict, blk, None)))
        if not candidates or min(cost[0] for cost, _ in candidates) >= _KIND_COST["symbol"]:
            trace, used = list(self.facts.trace), list(self.facts.used)
            combined = self._combined(M, rows, cols)
            if combined:
                candidates += combined
            else:
                self.facts.trace[:], self.facts.used[:] = trace, used
        if not candidates:
            return None
        first = min(cost[0] for cost, _ in candidates)
        tied = [(cost, cand) for cost, cand in candidates if cost[0] == first]
        if len(tied) > 1:
            tied = [((cost[0], self._degradation(M, rows, cols, cand), *cost[1:]), cand) for cost, cand in tied]
        r, c, inv, kind, cond, verdict, blk, added = min(tied, key=lambda x: x[0])[1]
        text = None
        if kind == "scalar" and verdict is None:
            value = self.alg.scalar_to_sympy(cond)
            try:
                number, rest = sp.factor_terms(value).as_coeff_Mul()  # 2x ≠ 0 is x ≠ 0
            except TypeError:  # sympy cannot factor some sums of Scalar(matrix) terms: say it as it is
                number, rest = sp.S.One, value
            text = f"{describe(self.alg, rest if number != 0 else value)} ≠ 0"
        elif kind == "diagonal" and verdict is None:  # the template as the vector it stands for
            text = f"{describe(self.alg, self.alg.vector_to_sympy(cond, blk.shape[0]))} ≠ 0 elementwise"
        elif kind == "general":
            text = f"{describe(self.alg, self.alg.to_sympy(blk))} is nonsingular"
        elif kind == "symbol" and cond not in self.facts.invertible:
            text = f"{cond} is nonsingular"
        return r, c, inv, kind, text, added

    def _pivot_rank(self, kind: str, cond) -> int:
        """The cost of a pivot of this kind (the first key of the choice; ``cond`` is what
        ``alg.inverse`` says must be nonzero or invertible: the symbol itself for a symbol pivot)."""
        return _KIND_COST[kind]

    def _degradation(self, M, rows, cols, candidate) -> int:
        """How much worse the square blocks left get if ``candidate`` is the pivot: the sum of their
        kinds' costs after its Schur complements minus before (a block that appears counts whole)."""
        r, c, inv = candidate[:3]
        trace, used = list(self.facts.trace), list(self.facts.used)  # a trial: cite nothing
        if candidate[-1] is not None:  # a pivot after adding two rows: judge the rows as they would be
            M = dict(M)
            self.add_row(M, None, cols, r, *candidate[-1])
        try:
            total = 0
            for r2 in rows:
                if r2 == r or (r2, c) not in M:
                    continue
                factor = self.alg.mul(M[r2, c], inv)
                for c2 in cols:
                    if c2 == c or (r, c2) not in M:
                        continue
                    old = M.get((r2, c2))
                    new = self.alg.simplify((old if old is not None else Lin(M[r2, c].shape[:1] + M[r, c2].shape[1:]))
                                            - self.alg.mul(factor, M[r, c2]))
                    if new.shape[0] != new.shape[1]:
                        continue
                    total += self._kind_cost(new) - (self._kind_cost(old) if old is not None else 0)
            return total
        finally:
            self.facts.trace[:], self.facts.used[:] = trace, used

    def _kind_cost(self, blk) -> int:
        if blk.is_zero:
            return 0
        try:
            _, kind, cond = self.alg.inverse(blk)
        except ZeroDivisionError:
            return _KIND_COST["general"]
        if kind == "symbol" and cond is not None and cond not in self.facts.invertible:
            kind = "general"
        return _KIND_COST[kind]

    def nonzero(self, t) -> bool | None:
        """Is the template/scalar t nonzero everywhere? (0/1 indicators are enumerated)."""
        t = as_sympy(t)
        inds = sorted(t.free_symbols & self.facts.indicators, key=str)
        exclusive = [(inds.index(a), inds.index(b)) for a, b in self.facts.exclusive if a in inds and b in inds]
        disjoint = [(inds.index(a), inds.index(b)) for a, b in self.facts.disjoint if a in inds and b in inds]
        values = [v for v in itertools.product((0, 1), repeat=len(inds))
                  if not any(v[i] == 0 and v[j] == 0 for i, j in exclusive)    # not both active
                  and not any(v[i] == 1 and v[j] == 1 for i, j in disjoint)]   # not both inactive
        cases = [t.subs(dict(zip(inds, v, strict=True))) for v in values] if inds else [t]
        verdicts = []
        for case in cases:
            case = sp.simplify(case)
            verdicts.append(True if case.is_nonzero else (False if case.is_zero else None))
        if False in verdicts:
            return False
        return True if all(verdicts) else None
