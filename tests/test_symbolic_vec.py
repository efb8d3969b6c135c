"""The vec form of coupled matrix problems (symbolic.vec): the rules, the Kronecker algebra, the helpers.

vec stacks the columns: vec(A M C) = (Cᵀ ⊗ A) vec(M).  Each rule is evaluated numerically against
numpy's own vec and kron; the runtime's kron_apply against the formed Kronecker product; the
differential of a Kronecker product against central differences.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
import sympy as sp
from helpers import EXAMPLES, evaluate

import symift
from symift.runtime.linalg import kron_apply, unvec, vec_cols
from symift.symbolic.algebra import Algebra
from symift.symbolic.calculus import differential
from symift.symbolic.vec import Vec, Vectorizer, kron_of

jax.config.update("jax_enable_x64", True)

m, k, p = sp.symbols("m k p", integer=True, positive=True)
A, M, C, H = sp.MatrixSymbol("A", p, m), sp.MatrixSymbol("M", m, k), sp.MatrixSymbol("C", k, 2), \
    sp.MatrixSymbol("H", m, k)
DIMS = dict(m=4, k=3, p=5)


def numpy_vec(a):
    return np.asarray(a).T.reshape(-1)


@pytest.fixture
def values():
    rng = np.random.default_rng(0)
    return dict(A=rng.normal(size=(5, 4)), M=rng.normal(size=(4, 3)), C=rng.normal(size=(3, 2)),
                H=rng.normal(size=(4, 3)))


@pytest.mark.parametrize("expr, expected", [
    (A * M * C, lambda v: v["A"] @ v["M"] @ v["C"]),
    (A * M, lambda v: v["A"] @ v["M"]),
    (M * C, lambda v: v["M"] @ v["C"]),
    (sp.HadamardProduct(H, M) + 2 * M, lambda v: v["H"] * v["M"] + 2 * v["M"]),
    (M * sp.OneMatrix(k, 1), lambda v: v["M"].sum(axis=1)),
    (A * (H - M) * C, lambda v: v["A"] @ (v["H"] - v["M"]) @ v["C"]),
])
def test_vec_rules_against_numpy(values, expr, expected):
    lowered = Vectorizer([M]).vec(expr)
    assert lowered.has(Vec(M)) and not lowered.has(M.T)
    got = np.ravel(evaluate(lowered, values, DIMS))
    np.testing.assert_allclose(got, numpy_vec(expected(values)), atol=1e-12)


def test_a_transpose_or_a_product_of_unknowns_has_no_vec_rule():
    with pytest.raises(NotImplementedError, match="transpose"):
        Vectorizer([M]).vec(M.T * A.T)
    with pytest.raises(NotImplementedError, match="two unknowns"):
        Vectorizer([M, H]).vec(M * H.T)


def test_kronecker_products_simplify():
    alg = Algebra()
    one_k, eye_m = sp.OneMatrix(k, 1), sp.Identity(m)
    prod = alg.to_sympy(alg.lin(kron_of(one_k.T, eye_m) * kron_of(one_k, eye_m)))
    assert prod == k * sp.Identity(m)  # (1ᵀ ⊗ I)(1 ⊗ I) = (1ᵀ1) ⊗ I
    assert kron_of(sp.Identity(k), sp.Identity(m)) == sp.Identity(k * m)
    assert kron_of(sp.OneMatrix(1, k), sp.OneMatrix(1, m)) == sp.OneMatrix(1, k * m)
    t = alg.to_sympy(alg.transpose(alg.lin(sp.KroneckerProduct(one_k, A))))
    assert t == sp.KroneckerProduct(one_k.T, A.T)


def test_the_differential_of_a_kronecker_product(values):
    X = sp.MatrixSymbol("X", m, p)
    dX = sp.MatrixSymbol("dX", m, p)
    e = sp.KroneckerProduct(sp.Identity(k), X * X.T) * Vec(M)
    de = differential(e, {X: dX})
    rng = np.random.default_rng(1)
    Xv, E = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    vals = {**values, "X": Xv, "dX": E}

    def f(Xn):
        return np.kron(np.eye(3), Xn @ Xn.T) @ numpy_vec(values["M"])
    fd = (f(Xv + 1e-6 * E) - f(Xv - 1e-6 * E)) / 2e-6
    np.testing.assert_allclose(np.ravel(evaluate(de, vals, DIMS)), fd, atol=1e-7)


def test_kron_apply_and_vec_helpers():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(4, 5))
    v, V = rng.normal(size=10), rng.normal(size=(10, 6))
    np.testing.assert_allclose(kron_apply(a, b, v), np.kron(a, b) @ v, atol=1e-12)
    np.testing.assert_allclose(kron_apply(a, b, V), np.kron(a, b) @ V, atol=1e-12)
    Mv = rng.normal(size=(4, 3))
    np.testing.assert_allclose(vec_cols(Mv), numpy_vec(Mv))
    np.testing.assert_allclose(unvec(vec_cols(Mv), 4, 3), Mv)


def test_vec_evaluates_explicitly():
    Mv = sp.Matrix([[1, 2], [3, 4], [5, 6]])
    assert Vec(sp.MatrixSymbol("Q", 3, 2)).subs(sp.MatrixSymbol("Q", 3, 2), Mv).doit() == sp.Matrix([1, 3, 5, 2, 4, 6])
    assert Vec(sp.MatrixSymbol("Q", 3, 2)).shape == (6, 1)


def test_a_direction_out_of_reach_is_refused_never_dropped():
    """d vec(c wᵀ)/dc: the direction sits inside I ⊗ dc, a matrix factor; the extraction refuses
    (the derivation keeps the tangent system, which the layer solves) instead of dropping the term."""
    src = ("dim m, k\nparam X[m, m]\nparam Y[m, k]\nparam w[k]\nparam c[m]\nvar B[m, k]\n"
           "minimize sumsq(X @ B - Y) / 2 + dot(B @ w, c)\n")
    d = symift.derive(symift.parse(src, "c.ift"))
    assert d.tangent_only and "the direction dc is inside a matrix factor" in d.why_not_vec
    rng = np.random.default_rng(4)
    vals = dict(X=rng.normal(size=(3, 3)) + 3 * np.eye(3), Y=rng.normal(size=(3, 2)), w=rng.normal(size=2),
                c=rng.normal(size=3))
    layer = symift.compile(d)
    B = layer(**vals)["B"]   # XᵀX B = XᵀY − c wᵀ
    XtX = vals["X"].T @ vals["X"]
    np.testing.assert_allclose(B, np.linalg.solve(XtX, vals["X"].T @ vals["Y"] - np.outer(vals["c"], vals["w"])),
                               atol=1e-9)
    J = jax.jacfwd(lambda c: layer(**{**vals, "c": c})["B"])(vals["c"])
    exact = -np.einsum("ij,l->ilj", np.linalg.inv(XtX), vals["w"])  # dB/dc_j = −(XᵀX)⁻¹ e_j wᵀ
    np.testing.assert_allclose(J, exact, atol=1e-9)


def test_a_row_wise_softmax_is_brought_out_of_its_opaque_vector():
    """Multiclass logistic regression: the Hessian Xᵀ(diag(p) − p pᵀ)X per row in vec form (the
    direction inside a non-elementwise vector, brought out by diag(c∘w) v = diag(c∘v) w); the closed
    form against the layer's LU backward and central differences of re-solves."""
    d = symift.derive(symift.load(EXAMPLES / "bilevel" / "multiclass_logreg.ift"))
    assert d.vectorized
    rng = np.random.default_rng(5)
    vals = dict(X=rng.normal(size=(6, 4)), Y=np.eye(3)[rng.integers(0, 3, 6)], lam=0.3)
    closed, lu = symift.compile(d), symift.compile(d, backward="lu")
    E = rng.normal(size=(6, 4))

    def W_of(layer, X):
        return layer(**{**vals, "X": X})["W"]
    _, t_closed = jax.jvp(lambda X: W_of(closed, X), (vals["X"],), (E,))
    _, t_lu = jax.jvp(lambda X: W_of(lu, X), (vals["X"],), (E,))
    fd = (W_of(closed, vals["X"] + 1e-6 * E) - W_of(closed, vals["X"] - 1e-6 * E)) / 2e-6
    np.testing.assert_allclose(t_closed, t_lu, atol=1e-10)
    np.testing.assert_allclose(t_closed, fd, atol=1e-6)
    assert np.abs(t_closed).max() > 1e-2
