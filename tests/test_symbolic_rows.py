"""Matrix variables whose problem separates by rows (the breadth issue, part 4; symift.symbolic.rows).

Row-wise softmax and sparsemax, a per-row right-hand side b[m] and a shared weight W[k, p]:
the row problem derives the vector closed forms, the layer maps them over the rows, and the
results are checked against references written without symift (jax.nn.softmax per row, the
sort-based sparsemax per row), finite differences of those re-solves, jacfwd/jacrev and
check_grads.  Problems that couple rows are refused with a caret at the coupling.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from catalogue import sparsemax_solve
from helpers import EXAMPLES, evaluate, generated_module
from jax.test_util import check_grads

import symift
from symift.render.text import report

ROW_SOFTMAX = """dim m, k
param Theta[m, k]
var Z[m, k] > 0
maximize dot(Theta, Z) + entropy(Z)
subject to
    nu: Z @ ones(k) == ones(m)
"""

# each row: the projection of Thetaᵢ onto {z ≥ 0, 1ᵀz = bᵢ}, scored through a shared W
SHARED = """dim m, k, p
param Theta[m, k]
param b[m] > 0
param W[k, p]
param c[m, p]
var Z[m, k]
minimize 0.5 * sumsq(Z - Theta) + 0.5 * sumsq(Z @ W - c)
subject to
    nu: Z @ ones(k) == b
    lam: Z >= 0
"""


def row_sparsemax(T):
    return np.stack([sparsemax_solve({"theta": t})["z"] for t in T])


def fd(f, x, h=1e-6):
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        cols.append((f(x + e.reshape(x.shape)) - f(x - e.reshape(x.shape))) / (2 * h))
    return np.stack(cols, -1).reshape(f(x).shape + x.shape)


def test_row_softmax_derives_softmax_row_by_row():
    d = symift.derive(symift.parse(ROW_SOFTMAX, "rows.ift"))
    Z = d.symbols["Z"]
    assert Z.shape[1] == 1   # the row problem's variable: one row, a vector of length k
    alg = d.analysis.alg
    assert alg.simplify(alg.lin(d.jacobian("Z", "Theta")) - alg.lin(sp.DiagMatrix(Z) - Z * Z.T)).is_zero
    text = report(d)
    assert "separates by rows of Z (m rows)" in text and "The problem of one row:" in text
    assert "constraint  nu: sum(Z) == 1" in text


def test_row_softmax_layer():
    layer = symift.compile(symift.parse(ROW_SOFTMAX, "rows.ift"))
    T = np.random.default_rng(0).standard_normal((6, 4))
    out = layer(Theta=T)
    np.testing.assert_allclose(out["Z"], jax.nn.softmax(T, axis=1), atol=1e-12)
    assert out["nu"].shape == (6,) and bool(out["converged"]) and bool(out["regular"])
    w = np.random.default_rng(1).standard_normal(T.shape)
    g = jax.grad(lambda t: jnp.sum(w * layer(Theta=t)["Z"]))(T)
    np.testing.assert_allclose(g, jax.grad(lambda t: jnp.sum(w * jax.nn.softmax(t, axis=1)))(T), atol=1e-12)


def test_row_sparsemax_example():
    d = symift.derive(symift.load(EXAMPLES / "rowwise_sparsemax.ift"))
    s = d.symbols["s"]
    ones = sp.OneMatrix(1, s.shape[0])
    expected = sp.DiagMatrix(s) - s * s.T / (ones * s)[0, 0]
    vals = {"s": np.array([1.0, 0, 1, 1, 0])}
    np.testing.assert_allclose(evaluate(d.jacobian("Z", "Theta"), vals, {"k": 5}),
                               evaluate(expected, vals, {"k": 5}), atol=1e-14)
    layer = symift.compile(d)
    T = 2 * np.random.default_rng(2).standard_normal((5, 4))
    out = layer(Theta=T)
    np.testing.assert_allclose(out["Z"], row_sparsemax(T), atol=1e-10)
    assert out["lam"].shape == (5, 4) and out["s"].shape == (5, 4)
    f = lambda t: layer(Theta=t)["Z"]  # noqa: E731
    Jf, Jr = jax.jacfwd(f)(T), jax.jacrev(f)(T)
    np.testing.assert_allclose(Jf, fd(row_sparsemax, T), atol=1e-7)
    np.testing.assert_allclose(Jr, Jf, atol=1e-12)
    # the closed form of one row, evaluated at that row's solution, is that row's block
    for i in range(5):
        block = evaluate(d.jacobian("Z", "Theta"), {"s": np.asarray(out["s"][i])}, {"k": 4})
        np.testing.assert_allclose(Jf[i, :, i, :], block, atol=1e-12)
    w = np.random.default_rng(3).standard_normal(T.shape)
    check_grads(lambda t: jnp.sum(w * f(t)), (T,), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_per_row_and_shared_parameters():
    """b[m] is a scalar per row, W[k, p] shared: Z @ W becomes Wᵀ z in the row problem."""
    d = symift.derive(symift.parse(SHARED, "shared.ift"))
    assert d.rows.aligned == ("Theta", "b", "c") and d.rows.shared == ("W",)
    assert [p.shape for p in d.problem.params] == [("k",), (), ("k", "p"), ("p",)]
    layer = symift.compile(d)
    rng = np.random.default_rng(4)
    m, k, p = 4, 5, 3
    prm = {"Theta": rng.standard_normal((m, k)), "b": rng.uniform(0.5, 2, m), "W": rng.standard_normal((k, p)),
           "c": rng.standard_normal((m, p))}
    out = layer(**prm)
    assert bool(out["converged"])
    # each row is the same problem solved alone (its own layer call, no mapping)
    row = symift.compile(symift.parse(SHARED.replace("Theta[m, k]", "Theta[k]").replace("b[m]", "b")
                                      .replace("c[m, p]", "c[p]").replace("Z[m, k]", "Z[k]")
                                      .replace("Z @ ones(k)", "sum(Z)").replace("Z @ W", "W.T @ Z"), "row.ift"))
    for i in range(m):
        one = row(Theta=prm["Theta"][i], b=prm["b"][i], W=prm["W"], c=prm["c"][i])
        np.testing.assert_allclose(out["Z"][i], one["Z"], atol=1e-9)
    # gradients through the shared W and the per-row b, by finite differences of the solves
    w = rng.standard_normal((m, k))
    for name in ("W", "b"):
        def loss(x, name=name):
            return jnp.sum(w * layer(**dict(prm, **{name: x}))["Z"])
        g = jax.grad(loss)(jnp.asarray(prm[name]))
        num = fd(lambda x, loss=loss: np.asarray(loss(x)), np.asarray(prm[name]))
        np.testing.assert_allclose(g, num, atol=1e-6)


def test_rows_under_jit_and_vmap():
    layer = symift.compile(symift.load(EXAMPLES / "rowwise_sparsemax.ift"))
    T = np.random.default_rng(5).standard_normal((3, 4, 6))
    batched = jax.jit(jax.vmap(lambda t: layer(Theta=t)["Z"]))(T)
    np.testing.assert_allclose(batched, np.stack([row_sparsemax(t) for t in T]), atol=1e-10)


def test_codegen_maps_the_row_layer(tmp_path):
    module = generated_module("rowwise_sparsemax", tmp_path)
    T = np.random.default_rng(6).standard_normal((4, 5))
    out = module.rows_layer(T)
    np.testing.assert_allclose(out["Z"], row_sparsemax(T), atol=1e-10)
    assert bool(out["converged"]) and out["nu"].shape == (4,)


def test_latex_says_the_problem_separates():
    doc = symift.derive(symift.load(EXAMPLES / "rowwise_sparsemax.ift")).to_latex()
    assert r"$Z \in \mathbb{R}^{m \times k}$ is a matrix, and the problem separates by its rows" in doc


@pytest.mark.parametrize("objective, constraint, reason", [
    ("minimize sumsq(X @ Z - Y)", "Z >= 0", "'X' has the rows dimension m of 'Z' after its first place"),
    ("minimize sumsq(Z - Y) + log(sum(Z))", "Z >= 0", "'log(sum(Z))' applies a function to a sum over the rows"),
    ("minimize sumsq(Z - Y)", "sum(Z) == 1", "'sum(Z)' sums over the rows inside a constraint"),
    ("minimize sumsq(Z.T - Y.T)", "Z >= 0", "'Z.T' turns the rows into columns"),
    ("minimize sumsq(Z - Y) * sumsq(Z)", "Z >= 0", "combines a sum over the rows non-additively"),
    ("minimize norm2(Z @ ones(k) - 1)", "Z >= 0", "takes norm2() over all the rows"),
])
def test_coupled_rows_keep_the_matrix_whole_and_say_why(objective, constraint, reason):
    """Where the rows do not separate, the matrix is kept whole (symbolic.coupled, tests in
    test_symbolic_coupled.py): the report says which construct couples them."""
    source = f"dim m, k\nparam X[m, m]\nparam Y[m, k]\nvar Z[m, k]\n{objective}\nsubject to\n    {constraint}\n"
    d = symift.derive(symift.parse(source, "coupled.ift"))
    assert d.rows is None and reason in d.coupled
    text = report(d)
    assert f"the rows of Z are coupled ({d.coupled})" in text
    # in vec form where every block has one (symbolic.vec), else the tangent system in matrix form
    assert ("Jacobians:" in text) == d.vectorized and ("Tangent system" in text) == d.tangent_only


@pytest.mark.parametrize("source, reason", [
    ("dim m\nparam T[m, m]\nvar Z[m, m]\nminimize sumsq(Z - T)\n", "its rows and columns have the same size m"),
    ("dim m, k\nparam T[m, k]\nvar Z[m, k]\nvar t\nminimize sumsq(Z - T) + t^2\n", "'t' is a variable too"),
    ("dim m, k\nparam T[k, m]\nvar Z[m, k]\nminimize sumsq(Z - T.T)\n", "after its first place"),
])
def test_matrix_problems_that_do_not_split_are_kept_whole(source, reason):
    d = symift.derive(symift.parse(source, "m.ift"))
    assert reason in d.coupled


def test_a_constraint_without_the_variable_is_still_an_error():
    source = "dim m, k\nparam T[m, k]\nvar Z[m, k]\nminimize sumsq(Z - T)\nsubject to\n    T >= 0\n"
    with pytest.raises(symift.SymiftError, match="does not involve 'Z'"):
        symift.derive(symift.parse(source, "m.ift"))


def test_ones_needs_a_size():
    with pytest.raises(symift.SymiftError, match="ones\\(\\) takes a size"):
        symift.parse("dim n\nparam t[n]\nvar x[n]\nminimize sumsq(x - t) + dot(x, ones(t))\n", "o.ift")
