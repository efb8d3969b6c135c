"""∂F/∂x at a concrete point, numerically: finiteness, rank and condition number."""
from __future__ import annotations

import numpy as np
import sympy as sp

from .calculus import jacobian_lin
from .expr import as_sympy
from .kkt import KKTSystem


def numeric_check(kkt: KKTSystem, values: dict, dims: dict) -> dict:
    """∂F/∂x at a concrete point: finiteness, rank and condition number.

    ``values`` maps names (variables, multipliers, parameters) to numbers or numpy arrays and
    ``dims`` maps dim names to ints.  This is the raw Jacobian of F (no active-set facts), so a
    singular or undefined KKT Jacobian at that point is seen as it is.
    """
    alg = kkt.algebra
    sizes = {kkt.builder.dims[k]: sp.Integer(v) for k, v in dims.items() if k in kkt.builder.dims}
    symbols = kkt.symbols
    numbers = {}
    for name, value in values.items():
        sym = symbols.get(name)
        if sym is None:
            continue
        if isinstance(sym, sp.MatrixSymbol):
            shape = tuple(int(as_sympy(s).xreplace(sizes)) for s in sym.shape)
            numbers[sym.xreplace(sizes)] = sp.ImmutableMatrix(np.asarray(value, float).reshape(shape).tolist())
        else:
            numbers[sym] = sp.Float(float(value))
    rows = []
    with np.errstate(all="ignore"):
        for block in kkt.residual:
            cells = []
            for u in kkt.unknowns:
                e = alg.to_sympy(jacobian_lin(block.expr, u.symbol, alg)).xreplace(sizes)
                val = e.xreplace(numbers).doit()
                arr = np.array(val.as_explicit().tolist() if hasattr(val, "as_explicit") else [[val]],
                               dtype=complex)
                cells.append(np.where(np.isfinite(arr), arr.real, np.nan))
            rows.append(np.hstack(cells))
        K = np.vstack(rows)
    if not np.all(np.isfinite(K)):
        return {"finite": False, "rank": None, "size": K.shape[0], "condition": np.inf, "singular": True,
                "message": "∂F/∂x is undefined at this point (F is not differentiable there)"}
    rank = int(np.linalg.matrix_rank(K))
    cond = float(np.linalg.cond(K))
    singular = rank < K.shape[0]
    message = (f"∂F/∂x is singular at this point (rank {rank} < {K.shape[0]})" if singular
               else f"∂F/∂x is nonsingular at this point (condition number {cond:.3g})")
    return {"finite": True, "rank": rank, "size": K.shape[0], "condition": cond, "singular": singular,
            "message": message, "matrix": K}
