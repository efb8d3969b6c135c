"""The emitter's proof that a matrix is positive definite (a Cholesky instead of an LU): every
matrix it calls pd is pd on random data, and the sums that are not psd stay unproved."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symift.emit.emitter import Emitter

n, m, p = sp.symbols("n m p", positive=True, integer=True)
Q = sp.MatrixSymbol("Q", n, n)
R = sp.MatrixSymbol("R", n, n)
A = sp.MatrixSymbol("A", m, n)
G = sp.MatrixSymbol("G", p, n)
d = sp.MatrixSymbol("d", p, 1)


def _emitter():
    em = Emitter({}, pd={Q, R})
    em.positive.add(d)
    return em


def _projected(Y, C):
    return Y - Y * C.T * (C * Y * C.T).I * C * Y


#: expression -> (proved pd, pd on the data below: A, G of full row rank, Q, R pd, d > 0)
CASES = {
    "projected complement": (sp.DiagMatrix(d) + G * _projected(Q.I, A) * G.T, True, True),
    "projected, Q itself": (sp.DiagMatrix(d) + G * _projected(Q, A) * G.T, True, True),
    "projection plus Q": (Q + _projected(Q.I, A), True, True),
    "projection alone": (_projected(Q.I, A), False, False),  # psd and singular
    # pd, but not proved (an LU: slower, not wrong)
    "plus the projection": (sp.DiagMatrix(d) + G * (Q.I + Q.I * A.T * (A * Q.I * A.T).I * A * Q.I) * G.T,
                            False, True),
    "minus a Gram": (sp.DiagMatrix(d) + G * Q.I * G.T - G * R.I * G.T, False, False),
    "other inner matrix": (sp.DiagMatrix(d) + G * (Q.I - Q.I * A.T * (A * R.I * A.T).I * A * Q.I) * G.T,
                           False, False),
    "other outer factor": (sp.DiagMatrix(d) + G * Q.I * G.T - G * Q.I * A.T * (A * Q.I * A.T).I * A * R.I * G.T,
                           False, False),
    "diag minus": (sp.DiagMatrix(d) - G * Q.I * G.T, False, False),
}


def _numeric(e, values):
    """The value of a matrix expression on numpy data (sympy's own substitution of dense
    matrices into symbolic shapes does not evaluate these)."""
    if e in values:
        return values[e]
    if isinstance(e, sp.MatAdd):
        return sum(_numeric(a, values) for a in e.args)
    if isinstance(e, sp.MatMul):
        c, mats = e.as_coeff_mmul()
        out = float(c) * np.eye(_numeric(mats.args[0], values).shape[0])
        for a in mats.args:
            out = out @ _numeric(a, values)
        return out
    if isinstance(e, sp.Inverse):
        return np.linalg.inv(_numeric(e.arg, values))
    if isinstance(e, sp.Transpose):
        return _numeric(e.arg, values).T
    if isinstance(e, sp.DiagMatrix):
        return np.diag(_numeric(e.args[0], values).ravel())
    raise TypeError(e)


@pytest.mark.parametrize("name", CASES)
def test_pd_proof_agrees_with_the_eigenvalues(name):
    expr, proved, pd = CASES[name]
    assert _emitter().is_pd(expr) == proved
    rng = np.random.default_rng(0)
    values = {}
    for X in (Q, R):
        L = rng.standard_normal((6, 6))
        values[X] = L @ L.T + 0.1 * np.eye(6)
    values[A] = rng.standard_normal((2, 6))
    values[G] = rng.standard_normal((4, 6))
    values[d] = rng.uniform(0.01, 0.1, (4, 1))
    dense = _numeric(expr, values)
    eig = np.linalg.eigvalsh(0.5 * (dense + dense.T))
    symmetric = np.allclose(dense, dense.T)
    assert (symmetric and eig.min() > 0) == pd
    if proved:  # sound
        assert pd
