"""Derived Jacobians: symbolic closed forms, and numbers against finite differences of re-solves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from catalogue import (
    circle_solve,
    eqqp_solve,
    fixed_point_solve,
    optnet_case,
    ridge_solve,
    softmax_solve,
    sparsemax_solve,
    spd,
)
from helpers import derive, evaluate, fd_jacobian, same
from scipy.optimize import brentq

import symift
from symift.render.text import report
from symift.symbolic.algebra import Algebra
from symift.symbolic.expr import Scalar
from symift.symbolic.printing import text

SIZES = (3, 5, 8)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def close(J, F, atol):
    np.testing.assert_allclose(np.reshape(J, np.shape(F)), F, atol=atol)


def fd_directional(solve, params, var, param, direction, h=1e-6):
    plus = dict(params, **{param: params[param] + h * direction})
    minus = dict(params, **{param: params[param] - h * direction})
    return (solve(plus)[var] - solve(minus)[var]) / (2 * h)


# --------------------------------------------------------------------------- softmax
def test_softmax_closed_form():
    d = derive("softmax")
    J = d.jacobian("z", "theta")
    z = d.symbols["z"]
    assert same(d, J, sp.DiagMatrix(z) - z * z.T)
    assert text(J) == "diag(z) - z zᵀ"


@pytest.mark.parametrize("n", SIZES)
def test_softmax_numeric(n):
    d = derive("softmax")
    rng = np.random.default_rng(n)
    p = {"theta": rng.standard_normal(n)}
    z = softmax_solve(p)["z"]
    J = evaluate(d.jacobian("z", "theta"), {"z": z}, {"n": n})
    np.testing.assert_allclose(J, fd_jacobian(softmax_solve, p, "z", "theta"), atol=1e-8)


def test_softmax_substitution_evaluates():
    """SPEC §2: J.subs({n: 4, z: Matrix(...)}).as_explicit() gives numbers."""
    d = derive("softmax")
    J = d.jacobian("z", "theta")
    n, z = d.symbols["n"], d.symbols["z"]
    vals = [0.1, 0.2, 0.3, 0.4]
    E = J.subs({n: 4, z: sp.Matrix(vals)}).as_explicit()
    np.testing.assert_allclose(np.array(E, dtype=float), np.diag(vals) - np.outer(vals, vals))


# --------------------------------------------------------------------------- separable regularizers
LOG_BARRIER = """
dim n
param theta[n]
var z[n] > 0
maximize dot(theta, z) + sum(log(z))
subject to
    nu: sum(z) == 1
    lam: z >= 0
"""


def log_barrier_solve(p):
    t = p["theta"]
    # stationarity θ + 1/z − ν = 0  →  z = 1/(ν − θ) with Σz = 1, ν > max θ
    f = lambda nu: np.sum(1 / (nu - t)) - 1  # noqa: E731
    nu = brentq(f, t.max() + 1e-12, t.max() + len(t) + 1, xtol=1e-15)
    return {"z": 1 / (nu - t)}


def test_separable_rule_log_barrier():
    """φ(z) = −log z: s = 1/φ''(z) = z², and J = diag(s) − s sᵀ/1ᵀs follows from the rules."""
    d = symift.derive(symift.parse(LOG_BARRIER))
    J = d.jacobian("z", "theta")
    z, n = d.symbols["z"], d.symbols["n"]
    s = sp.HadamardPower(z, 2)
    ones = sp.OneMatrix(1, n)
    expected = sp.DiagMatrix(s) - sp.MatMul(s, s.T) / Scalar(ones * s)
    assert same(d, J, expected)
    for k in SIZES:
        rng = np.random.default_rng(k)
        p = {"theta": rng.standard_normal(k)}
        zz = log_barrier_solve(p)["z"]
        num = evaluate(J, {"z": zz}, {"n": k})
        np.testing.assert_allclose(num, fd_jacobian(log_barrier_solve, p, "z", "theta"), atol=1e-6)


def test_separable_rule_quadratic():
    """φ(z) = z²/2 on the simplex interior: s = 1, J = I − 11ᵀ/n."""
    d = symift.derive(symift.parse(
        "dim n\nparam theta[n]\nvar z[n] > 0\nminimize sumsq(z)/2 - dot(theta, z)\n"
        "subject to\n nu: sum(z) == 1\n lam: z >= 0\n"))
    J = d.jacobian("z", "theta")
    n = d.symbols["n"]
    assert same(d, J, sp.Identity(n) - sp.OneMatrix(n, n) / n)


# --------------------------------------------------------------------------- sparsemax
def test_sparsemax_closed_form():
    d = derive("sparsemax")
    J = d.jacobian("z", "theta")
    s, n = d.symbols["s"], d.symbols["n"]
    expected = sp.DiagMatrix(s) - sp.MatMul(s, s.T) / Scalar(sp.OneMatrix(1, n) * s)
    assert same(d, J, expected)
    assert "s" in d.indicators and "inactive set" in d.indicators["s"]


@pytest.mark.parametrize("n", SIZES)
def test_sparsemax_numeric(n):
    d = derive("sparsemax")
    rng = np.random.default_rng(10 + n)
    p = {"theta": rng.standard_normal(n) * 2}
    z = sparsemax_solve(p)["z"]
    s = (z > 0).astype(float)
    J = evaluate(d.jacobian("z", "theta"), {"s": s}, {"n": n})
    np.testing.assert_allclose(J, fd_jacobian(sparsemax_solve, p, "z", "theta"), atol=1e-7)


# --------------------------------------------------------------------------- ridge
def ridge_point(rng, m, n):
    return {"X": rng.standard_normal((m, n)), "y": rng.standard_normal(m), "lam": 0.7}


def test_ridge_closed_forms():
    d = derive("ridge")
    X, w, lam, y = (d.symbols[k] for k in ("X", "w", "lam", "y"))
    n = d.symbols["n"]
    H = sp.Inverse(X.T * X + lam * sp.Identity(n))
    assert same(d, d.jacobian("w", "lam"), -H * w)
    assert same(d, d.jacobian("w", "y"), H * X.T)


@pytest.mark.parametrize("n", SIZES)
def test_ridge_numeric(n):
    d = derive("ridge")
    rng = np.random.default_rng(20 + n)
    m = n + 2
    p = ridge_point(rng, m, n)
    w = ridge_solve(p)["w"]
    vals = dict(p, w=w)
    for param in ("lam", "y"):
        J = evaluate(d.jacobian("w", param), vals, {"m": m, "n": n})
        np.testing.assert_allclose(np.reshape(J, (n, -1)), fd_jacobian(ridge_solve, p, "w", param), atol=1e-7)
    dX = rng.standard_normal((m, n))
    Jd = evaluate(d.jacobian("w", "X"), dict(vals, dX=dX), {"m": m, "n": n})
    np.testing.assert_allclose(Jd, fd_directional(ridge_solve, p, "w", "X", dX), atol=1e-7)


# --------------------------------------------------------------------------- equality-constrained QP
def test_eqqp_closed_forms():
    d = derive("eqqp")
    Q, A = d.symbols["Q"], d.symbols["A"]
    Qi = sp.Inverse(Q)
    S = sp.Inverse(A * Qi * A.T)
    assert same(d, d.jacobian("z", "q"), -(Qi - Qi * A.T * S * A * Qi))
    assert same(d, d.jacobian("z", "b"), Qi * A.T * S)


@pytest.mark.parametrize("n", SIZES)
def test_eqqp_numeric(n):
    d = derive("eqqp")
    rng = np.random.default_rng(30 + n)
    m = max(1, n // 2)
    p = {"Q": spd(rng, n), "q": rng.standard_normal(n), "A": rng.standard_normal((m, n)),
         "b": rng.standard_normal(m)}
    sol = eqqp_solve(p)
    vals = dict(p, **sol)
    dims = {"n": n, "m": m}
    for param in ("q", "b"):
        J = evaluate(d.jacobian("z", param), vals, dims)
        close(J, fd_jacobian(eqqp_solve, p, "z", param), atol=1e-7)
    for param in ("Q", "A"):
        D = rng.standard_normal(p[param].shape)
        if param == "Q":
            D = D + D.T
        Jd = evaluate(d.jacobian("z", param), dict(vals, **{"d" + param: D}), dims)
        close(Jd, fd_directional(eqqp_solve, p, "z", param, D), atol=1e-6)


# --------------------------------------------------------------------------- OptNet QP
@pytest.mark.parametrize("n", SIZES)
def test_optnet_numeric(n):
    """Gz ≤ h on its active set: data built with a known active set and strict complementarity."""
    d = derive("optnet_qp")
    rng = np.random.default_rng(40 + n)
    p, solve, active, z0 = optnet_case(rng, n)
    m, pp = 1, n
    sol = solve(p)
    np.testing.assert_allclose(sol["z"], z0, atol=1e-9)
    s = (~active).astype(float)
    vals = dict(p, **sol, s=s)
    dims = {"n": n, "m": m, "p": pp}
    for param in ("q", "h", "b"):
        J = evaluate(d.jacobian("z", param), vals, dims)
        close(J, fd_jacobian(solve, p, "z", param), atol=1e-6)
    for param in ("G", "A"):
        D = rng.standard_normal(p[param].shape)
        Jd = evaluate(d.jacobian("z", param), dict(vals, **{"d" + param: D}), dims)
        close(Jd, fd_directional(solve, p, "z", param, D), atol=1e-6)


# --------------------------------------------------------------------------- root problems
def test_circle():
    d = derive("circle")
    x, th = d.symbols["x"], d.symbols["theta"]
    J = d.jacobian("x", "theta")
    assert sp.simplify(J - (-th / x)) == 0
    for t in (-0.6, 0.1, 0.8):
        x0 = circle_solve({"theta": t})["x"]
        num = float(J.subs({x: x0, th: t}))
        assert num == pytest.approx(fd_jacobian(circle_solve, {"theta": t}, "x", "theta")[0, 0], rel=1e-7)


def test_circle_without_sign_names_x_nonzero():
    d = symift.derive(symift.parse("param theta\nvar x\nsolve\n theta^2 + x^2 == 1\n"))
    v = d.ift.nonsingularity
    assert v.holds is None and v.requirements == ["x ≠ 0"]
    assert d.ift.holds is None


def test_fixed_point():
    d = derive("fixed_point")
    x, th = d.symbols["x"], d.symbols["theta"]
    J = d.jacobian("x", "theta")
    assert sp.simplify(J - 1 / (1 + sp.sin(x))) == 0
    assert any("sin(x) + 1 ≠ 0" in r for r in d.ift.nonsingularity.requirements)
    for t in (-0.5, 0.3, 2.0):
        x0 = fixed_point_solve({"theta": t})["x"]
        num = float(J.subs({x: x0, th: t}))
        assert num == pytest.approx(fd_jacobian(fixed_point_solve, {"theta": t}, "x", "theta")[0, 0], rel=1e-6)


# --------------------------------------------------------------------------- IFT report
def test_softmax_report_names_positivity():
    d = derive("softmax")
    smooth = d.ift.smoothness
    assert smooth.holds is True and "z > 0" in smooth.reason
    assert d.ift.holds is True
    # without the declared positivity the report states the condition instead
    d2 = symift.derive(symift.parse(
        "dim n\nparam theta[n]\nvar z[n]\nmaximize dot(theta, z) + entropy(z)\n"
        "subject to\n nu: sum(z) == 1\n"))
    assert d2.ift.smoothness.holds is None
    assert any("z > 0" in r for r in d2.ift.smoothness.requirements)


def test_singular_system_is_reported():
    """An unknown that appears in no equation: ∂F/∂x singular, reported, never a number."""
    d = symift.derive(symift.parse("param theta\nvar x\nvar y\nsolve\n x + y == theta\n x - y == 1\n"))
    assert d.ift.holds is True
    d = symift.derive(symift.parse("param theta\nvar x\nvar y\nsolve\n x + y == theta\n 2*x + 2*y == 1\n"))
    with pytest.raises(symift.SymiftError):
        d.jacobian("x", "theta")


def test_unknown_names_are_errors():
    d = derive("softmax")
    with pytest.raises(symift.SymiftError, match="not a parameter"):
        d.jacobian("z", "thet")
    with pytest.raises(symift.SymiftError, match="not a variable"):
        d.jacobian("q", "theta")


def test_inactive_multiplier_has_zero_jacobian():
    d = derive("softmax")
    assert d.jacobian("lam", "theta").is_ZeroMatrix


def test_numeric_check_names_the_failing_points():
    """The numeric IFT check: softmax at the boundary zᵢ = 0, the circle at x = 0."""
    d = derive("softmax")
    inside = d.check_at({"z": [0.2, 0.3, 0.5], "nu": 0.1, "lam": [0, 0, 0], "theta": [1, 2, 3]}, {"n": 3})
    assert inside["finite"] and not inside["singular"] and inside["rank"] == 7
    boundary = d.check_at({"z": [0.0, 0.5, 0.5], "nu": 0.1, "lam": [0, 0, 0], "theta": [1, 2, 3]}, {"n": 3})
    assert not boundary["finite"] and "undefined" in boundary["message"]
    c = derive("circle")
    assert c.check_at({"x": 0.0, "theta": 1.0})["singular"]
    assert not c.check_at({"x": 0.6, "theta": 0.8})["singular"]


def test_public_calculus_returns_standard_sympy():
    """gradient / jacobian / hessian of Σ zᵢ log zᵢ: log z + 1 and diag(1/z) (sympy's own diff gives 0)."""
    from symift.symbolic.calculus import gradient, hessian
    from symift.symbolic.expr import total

    n = sp.Symbol("n", integer=True, positive=True)
    z = sp.MatrixSymbol("z", n, 1)
    f = total(sp.HadamardProduct(z, z.applyfunc(sp.log)))
    H = hessian(f, z)
    assert sp.DiagMatrix(sp.HadamardPower(z, -1)) == H
    vals = [0.5, 1.5, 2.0]
    g = gradient(f, z).subs({n: 3, z: sp.Matrix(vals)}).as_explicit()
    np.testing.assert_allclose(np.array(g, dtype=float).ravel(), np.log(vals) + 1)


def test_steps_cite_their_facts_whatever_ran_before():
    d = derive("softmax")
    assert d.ift.holds is True  # runs an elimination first
    cited = [f for s in d.steps("theta") for f in s.facts]
    assert any("sum(z) = 1" in f for f in cited)


def test_sigmoid_reads_as_its_derivative():
    """−entropy(x) − entropy(1 − x): the harmonic sum 1/(1/x + 1/(1 − x)) is written x∘(1 − x)."""
    d = symift.derive(symift.load(EXAMPLES / "sigmoid.ift"))
    x = d.symbols["x"]
    expected = sp.DiagMatrix(sp.HadamardProduct(x, sp.OneMatrix(*x.shape) - x))
    assert Algebra().lin(d.jacobian("x", "y") - expected).is_zero
    assert "dx/dy = diag(x∘(1 - x))" in report(d)


def test_lml_closed_forms():
    """Amos et al.'s LML: with r = x∘(1 − x), dx/dθ = diag(r) − r rᵀ/1ᵀr and dx/dk = r/1ᵀr, where
    1ᵀr = k − 1ᵀx² on the constraint 1ᵀx = k."""
    d = symift.derive(symift.load(EXAMPLES / "lml.ift"))
    rng = np.random.default_rng(4)
    x = rng.uniform(0.05, 0.95, 6)
    r = x * (1 - x)
    vals = {"x": x, "k": x.sum(), "theta": rng.standard_normal(6)}
    np.testing.assert_allclose(evaluate(d.jacobian("x", "theta"), vals, {"n": 6}),
                               np.diag(r) - np.outer(r, r) / r.sum(), atol=1e-12)
    np.testing.assert_allclose(evaluate(d.jacobian("x", "k"), vals, {"n": 6}), r / r.sum(), atol=1e-12)
