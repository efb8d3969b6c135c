"""Two-sided bounds and nonnegativity with a power not smooth at 0 (the breadth issue, parts 1-2).

The closed forms are checked symbolically against the forms from the literature: the box
projection's diag(1[l < x < u]), the capped simplex's sparsemax-like form on the free set, and
1.5-entmax's diag(r) − r rᵀ / 1ᵀr with r = √p; the layers are checked numerically in
tests/test_runtime_bounds.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from catalogue import BOX_QP
from helpers import EXAMPLES, evaluate

import symift
from symift.render.text import report

BOX_ASSUMED = """dim n
param theta[n]
param l[n]
param u[n]
var x[n]
minimize 0.5 * sumsq(x - theta)
subject to
    lo: x >= l
    hi: x <= u
"""

CAPPED = """dim n
param theta[n]
param k > 0
var z[n]
minimize 0.5 * sumsq(z - theta)
subject to
    nu: sum(z) == k
    lo: z >= 0
    hi: z <= 1
"""

def _vec(name, n=None):
    return sp.MatrixSymbol(name, n or sp.Symbol("n", integer=True, positive=True), 1)


def _patterns(rng, n=6, count=6):
    """Random indicator patterns (s_lo, s_hi) with no entry at both bounds."""
    for _ in range(count):
        lo = rng.integers(0, 2, n).astype(float)
        yield lo, np.where(lo == 0, 1.0, rng.integers(0, 2, n)).astype(float)


def test_box_projection_closed_forms():
    d = symift.derive(symift.load(EXAMPLES / "box_projection.ift"))
    s_lo, s_hi = d.symbols["s_lo"], d.symbols["s_hi"]
    n = s_lo.shape[0]
    assert d.jacobian("x", "theta") == sp.DiagMatrix(sp.HadamardProduct(s_hi, s_lo))  # 1[l < x < u]
    for lo, hi in _patterns(np.random.default_rng(1)):
        vals = {"s_lo": lo, "s_hi": hi}
        np.testing.assert_array_equal(evaluate(d.jacobian("x", "l"), vals, {"n": 6}), np.diag(1 - lo))
        np.testing.assert_array_equal(evaluate(d.jacobian("x", "u"), vals, {"n": 6}), np.diag(1 - hi))
    assert str(d.jacobian("x", "l")) == "DiagMatrix(-s_lo + 1)" and n is not None
    # 'param u[n] > l' proves that no entry is at both bounds: no condition left, the fact cited
    assert d.ift.nonsingularity.holds is True
    assert any("never active at the same entry" in f and "l - u < 0" in f for f in d.facts)


def test_two_bounds_without_the_order_declared_is_a_stated_condition():
    d = symift.derive(symift.parse(BOX_ASSUMED, "box.ift"))
    assert d.ift.nonsingularity.holds is None
    assert d.ift.nonsingularity.requirements == ["l - u < 0 elementwise ('lo' and 'hi' never active together)"]
    assert d.jacobian("x", "theta") == sp.DiagMatrix(sp.HadamardProduct(d.symbols["s_hi"], d.symbols["s_lo"]))
    assert "(assumed)" in report(d)


def test_capped_simplex_is_sparsemax_on_the_free_set():
    d = symift.derive(symift.parse(CAPPED, "capped.ift"))
    f = sp.HadamardProduct(d.symbols["s_hi"], d.symbols["s_lo"])
    ones = sp.OneMatrix(1, f.shape[0])
    expected = sp.DiagMatrix(f) - f * f.T / (ones * f)[0, 0]
    J = d.jacobian("z", "theta")
    # the pivots: diagonal for the bounds, then one scalar (1ᵀf); never a general n×n block
    assert [s.kind for s in d.pivots] == ["identity", "diagonal", "diagonal", "scalar"]
    for lo, hi in _patterns(np.random.default_rng(3)):  # the two forms agree wherever both are defined
        if (lo * hi).sum() == 0:
            continue
        vals = {"s_lo": lo, "s_hi": hi}
        np.testing.assert_allclose(evaluate(J, vals, {"n": 6}), evaluate(expected, vals, {"n": 6}), atol=1e-12)
    # 0 ≤ z ≤ 1: the declarations themselves prove that the bounds exclude each other
    assert any("-1 < 0" in fact for fact in d.facts)


def test_box_qp_derives_with_matrix_pivots():
    d = symift.derive(symift.parse(BOX_QP, "boxqp.ift"))
    assert {s.unknown for s in d.pivots} == {"x", "lo", "hi"}
    assert d.jacobian("x", "c").shape == (d.symbols["c"].shape[0],) * 2


def test_entmax15_closed_form():
    d = symift.derive(symift.load(EXAMPLES / "entmax15.ift"))
    p, s = d.symbols["p"], d.symbols["s"]
    r = sp.HadamardProduct(sp.HadamardPower(p, sp.Rational(1, 2)), s)
    ones = sp.OneMatrix(1, p.shape[0])
    expected = sp.DiagMatrix(r) - r * r.T / (ones * r)[0, 0]
    rng = np.random.default_rng(0)
    pv = rng.uniform(0.1, 1.0, 7) * (rng.random(7) < 0.7)
    vals = {"p": pv, "s": (pv > 0).astype(float)}
    np.testing.assert_allclose(evaluate(d.jacobian("p", "theta"), vals, {"n": 7}),
                               evaluate(expected, vals, {"n": 7}), atol=1e-12)


@pytest.mark.parametrize("source, message", [
    ("param l\nparam u > m\n", "'m' must be a parameter declared before it"),
    ("dim n\nparam l[n]\nparam u[2] > l\n", "the shapes must agree"),
    ("dim n\nparam l[n]\nvar x[n] > l\n", "write a bound 'x >= l' under 'subject to'"),
])
def test_order_declaration_errors_point_at_the_text(source, message):
    with pytest.raises(symift.SymiftError, match=message) as info:
        symift.parse(source, "bad.ift")
    assert info.value.span is not None and "^" in str(info.value)


def test_constrained_softmax_is_softmax_on_the_free_set():
    """Martins & Kreutzer's form: with f = s∘z (s = 1[z < u]), dz/dθ = diag(f) − f fᵀ / 1ᵀf and
    dz/du = diag(1 − s) − f (1 − s)ᵀ / 1ᵀf."""
    d = symift.derive(symift.load(EXAMPLES / "constrained_softmax.ift"))
    rng = np.random.default_rng(3)
    for _ in range(4):
        z = rng.uniform(0.05, 0.3, 7)
        s = (rng.random(7) < 0.6).astype(float)
        f = s * z
        vals = {"z": z, "s": s, "u": z + rng.uniform(0, 1, 7), "theta": rng.standard_normal(7)}
        np.testing.assert_allclose(evaluate(d.jacobian("z", "theta"), vals, {"n": 7}),
                                   np.diag(f) - np.outer(f, f) / f.sum(), atol=1e-12)
        np.testing.assert_allclose(evaluate(d.jacobian("z", "u"), vals, {"n": 7}),
                                   np.diag(1 - s) - np.outer(f, 1 - s) / f.sum(), atol=1e-12)
    assert "s∘z" in report(d)
