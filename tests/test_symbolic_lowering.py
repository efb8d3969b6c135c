"""Non-smooth terms as epigraphs (symift.symbolic.lowering): the lasso and the elastic net.

With λ > 0 declared, λ‖w‖₁ becomes λ1ᵀt under −t ≤ w ≤ t; the two bounds are never inactive
together (stationarity in t: λ − μ_hi − μ_lo = 0), the elimination adds their rows, and the
Jacobian is the generalized one on the support s = 1[w ≠ 0], zero off it:
dw/dy = D_s (D_s XᵀX D_s + I − D_s)⁻¹ D_s Xᵀ (the breadth issue's hand form).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import lasso_solve
from helpers import EXAMPLES, evaluate, layer_of

import symift
from symift.render.text import report


def hand_form(X, s, extra=0.0):
    D = np.diag(s.astype(float))
    n = X.shape[1]
    return D @ np.linalg.solve(D @ (X.T @ X + extra * np.eye(n)) @ D + np.eye(n) - D, D @ X.T)


def data(seed=0, m=30, n=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)), rng.standard_normal(m)


def test_lasso_is_lowered_and_its_derivation_says_so():
    d = symift.derive(symift.load(EXAMPLES / "lasso.ift"))
    text = report(d)
    assert "lam * norm1(w) is written with a new variable abs_w ≥ |w|" in text
    assert "exact because lam > 0" in text
    assert d.unknowns == ["w", "abs_w", "abs_w_hi", "abs_w_lo"]
    assert d.ift.holds is not False and d.ift.smoothness.holds is True   # no kink left in F
    assert "DiracDelta" not in text and "not both inactive" in text
    assert any(step.added is not None for step in d.pivots)          # the two bound rows added
    assert [v.name for v in d.problem.variables] == ["w"]             # the user's problem is unchanged


@pytest.mark.parametrize("lam", [0.05, 2.0, 6.0, 40.0])
def test_lasso_layer_matches_the_exact_active_set_solution(lam):
    layer = layer_of("lasso")
    X, y = data()
    out = layer(X=X, y=y, lam=lam)
    ref = lasso_solve({"X": X, "y": y, "lam": lam})["w"]
    np.testing.assert_allclose(out["w"], ref, atol=1e-9)
    assert bool(out["converged"]) and bool(out["regular"])
    support = ref != 0
    np.testing.assert_array_equal(np.asarray(out["s_abs_w_hi"] + out["s_abs_w_lo"]), support.astype(float))
    J = jax.jacfwd(lambda v: layer(X=X, y=v, lam=lam)["w"])(jnp.asarray(y))
    np.testing.assert_allclose(J, jax.jacrev(lambda v: layer(X=X, y=v, lam=lam)["w"])(jnp.asarray(y)),
                               atol=1e-10)
    np.testing.assert_allclose(J, hand_form(X, support), atol=1e-8)
    # the symbolic closed form, evaluated at the solution, is the same matrix
    d = layer.derivation
    values = {k: np.asarray(v) for k, v in out.items() if k in d.symbols} | {"X": X, "y": y, "lam": lam}
    np.testing.assert_allclose(evaluate(d.jacobian("w", "y"), values, {"m": 30, "n": 8}),
                               hand_form(X, support), atol=1e-8)
    if support.any():  # dw/dλ = −(X_SᵀX_S)⁻¹ sign(w_S) on the support
        g = jax.jacfwd(lambda v: layer(X=X, y=y, lam=v)["w"])(lam)
        expected = np.zeros(8)
        expected[support] = -np.linalg.solve(X[:, support].T @ X[:, support], np.sign(ref[support]))
        np.testing.assert_allclose(g, expected, atol=1e-8)


def test_lasso_gradient_by_finite_differences_of_the_re_solve():
    layer = layer_of("lasso")
    X, y = data(1)
    lam, eps = 3.0, 1e-6
    J = np.asarray(jax.jacfwd(lambda v: layer(X=X, y=v, lam=lam)["w"])(jnp.asarray(y)))
    fd = np.stack([(lasso_solve({"X": X, "y": y + eps * e, "lam": lam})["w"] -
                    lasso_solve({"X": X, "y": y - eps * e, "lam": lam})["w"]) / (2 * eps)
                   for e in np.eye(len(y))], axis=1)
    np.testing.assert_allclose(J, fd, atol=1e-6)


def test_lasso_under_jit_and_vmap():
    layer = layer_of("lasso")
    X, _ = data(2)
    ys = np.random.default_rng(3).standard_normal((4, 30))
    out = jax.jit(jax.vmap(lambda v: layer(X=X, y=v, lam=2.0)))(ys)
    for k in range(4):
        np.testing.assert_allclose(out["w"][k], lasso_solve({"X": X, "y": ys[k], "lam": 2.0})["w"], atol=1e-9)
    grads = jax.jit(jax.vmap(jax.grad(lambda v: jnp.sum(layer(X=X, y=v, lam=2.0)["w"] ** 2))))(ys)
    assert np.all(np.isfinite(grads))


def test_elastic_net():
    d = symift.derive(symift.load(EXAMPLES / "elastic_net.ift"))
    layer = symift.compile(d)
    X, y = data(4)
    out = layer(X=X, y=y, lam=2.0, gam=0.5)
    w = np.asarray(out["w"])
    support = np.asarray(out["s_abs_w_hi"] + out["s_abs_w_lo"]) > 0.5
    assert 0 < support.sum() < 8 and np.all(w[~support] == pytest.approx(0, abs=1e-9))
    # optimality: Xᵀ(y − Xw) − λ₂w = λ₁ sign(w) on the support, |·| ≤ λ₁ off it
    g = X.T @ (y - X @ w) - 0.5 * w
    np.testing.assert_allclose(g[support], 2.0 * np.sign(w[support]), atol=1e-8)
    assert np.all(np.abs(g[~support]) <= 2.0)
    J = jax.jacfwd(lambda v: layer(X=X, y=v, lam=2.0, gam=0.5)["w"])(jnp.asarray(y))
    np.testing.assert_allclose(J, hand_form(X, support, extra=0.5), atol=1e-8)
    # the derived closed form itself, evaluated at the solution, is the hand form
    values = {"X": X, "y": y, "lam": 2.0, "gam": 0.5, **{k: np.asarray(v) for k, v in out.items()}}
    closed = evaluate(d.jacobian("w", "y"), values, {"m": X.shape[0], "n": X.shape[1]})
    np.testing.assert_allclose(closed, hand_form(X, support, extra=0.5), atol=1e-8)


@pytest.mark.parametrize("objective, lowered", [
    ("minimize 0.5 * sumsq(X @ w - y) + lam * norm1(w)", True),
    ("minimize 0.5 * sumsq(X @ w - y) + 2 * lam * sum(abs(w))", True),
    ("minimize 0.5 * sumsq(X @ w - y) + norm1(w) / 2", True),
    ("maximize -0.5 * sumsq(X @ w - y) - lam * norm1(w)", True),
    ("minimize 0.5 * sumsq(X @ w - y) - lam * norm1(w)", False),     # concave: not an epigraph
    ("minimize 0.5 * sumsq(X @ w - y) + mu * norm1(w)", False),      # sign of mu unknown
])
def test_which_terms_are_rewritten(objective, lowered):
    source = f"dim m, n\nparam X[m, n]\nparam y[m]\nparam lam > 0\nparam mu\nvar w[n]\n{objective}\n"
    d = symift.derive(symift.parse(source, "t.ift"))
    assert bool(d.lowered) is lowered


def test_the_new_names_do_not_clash_with_the_users():
    source = ("dim n\nparam theta[n]\nparam lam > 0\nvar w[n]\nvar abs_w[n]\n"
              "minimize 0.5 * sumsq(w - theta) + 0.5 * sumsq(abs_w) + lam * norm1(w)\n")
    d = symift.derive(symift.parse(source, "t.ift"))
    assert d.lowered[0].variable == "abs_w_" and "abs_w_" in d.unknowns


def test_generalized_lasso_total_variation_verifies():
    """norm1 of an expression (D x, total variation): the new variable has D x's shape."""
    source = ("dim n, m\nparam theta[n]\nparam D[m, n]\nparam lam > 0\nvar x[n]\n"
              "minimize 0.5 * sumsq(x - theta) + lam * norm1(D @ x)\n")
    d = symift.derive(symift.parse(source, "tv.ift"))
    assert d.lowered[0].variable == "abs0" and d.lowered[0].argument == "D @ x"
    report = d.verify(seed=2, dims={"n": 5, "m": 4})
    assert report.ok, str(report)


def hinge_reference(X, y, lam):
    """The SVM primal by its dual: max 1ᵀa − ‖Xᵀ(y∘a)‖²/(2λ) over 0 ≤ a ≤ 1, projected gradient to
    convergence, then w = Xᵀ(y∘a)/λ refined on the margin set M exactly (equality-constrained QP)."""
    K = (X * y[:, None]) @ (X * y[:, None]).T / lam
    a = np.zeros(len(y))
    step = 1 / np.linalg.norm(K, 2)
    for _ in range(20000):
        a = np.clip(a - step * (K @ a - 1), 0, 1)
    margin = (a > 1e-6) & (a < 1 - 1e-6)
    bound = a >= 1 - 1e-6
    # on M: y_M∘(X_M w) = 1, w = Xᵀ(y∘a)/λ with a fixed at 1 on the bound set: solve for a_M
    A = (X * y[:, None])
    rhs = 1 - A[margin] @ (A[bound].sum(0) / lam)
    a_m = np.linalg.solve(A[margin] @ A[margin].T / lam, rhs)
    a = np.where(bound, 1.0, 0.0)
    a[margin] = a_m
    assert np.all((a_m > 0) & (a_m < 1)), "the margin set changed"
    return {"w": A.T @ a / lam, "a": a, "margin": margin}


def test_hinge_svm_is_lowered_and_matches_its_dual():
    d = symift.derive(symift.load(EXAMPLES / "hinge_svm.ift"))
    text = report(d)
    assert "pos0 ≥ max(1 - y * (X @ w), 0)" in text and "'pos0 >= 0' (pos0_lo)" in text
    assert d.ift.smoothness.holds is True
    layer = symift.compile(d)
    rng = np.random.default_rng(7)
    m, n = 30, 5
    X = rng.standard_normal((m, n))
    y = np.sign(X @ rng.standard_normal(n) + 0.5 * rng.standard_normal(m))
    ref = hinge_reference(X, y, 0.3)
    out = layer(X=X, y=y, lam=0.3)
    assert bool(out["converged"]) and bool(out["regular"])
    np.testing.assert_allclose(out["w"], ref["w"], atol=1e-8)
    np.testing.assert_allclose(out["pos0_hi"], ref["a"], atol=1e-8)   # the hinge multipliers are the dual
    # derivatives: the closed form against finite differences of the dual re-solve, and jacfwd/jacrev
    for name, value in (("lam", 0.3), ("y", y)):
        def solve(v, name=name):
            return hinge_reference(X, y if name != "y" else v, 0.3 if name != "lam" else v)["w"]
        h = 1e-6
        if name == "lam":
            num = (solve(value + h) - solve(value - h)) / (2 * h)
        else:  # y enters through y∘(Xw): the margin set is stable under small moves of y
            num = np.stack([(solve(y + h * e) - solve(y - h * e)) / (2 * h) for e in np.eye(m)], -1)
        f = lambda v, name=name: layer(**{"X": X, "y": y, "lam": 0.3, name: v})["w"]  # noqa: E731
        Jf, Jr = jax.jacfwd(f)(jnp.asarray(value)), jax.jacrev(f)(jnp.asarray(value))
        np.testing.assert_allclose(Jf, num, atol=1e-6)
        np.testing.assert_allclose(Jr, Jf, atol=1e-10)
        values = {"X": X, "y": y, "lam": 0.3, **{k: np.asarray(v) for k, v in out.items()}}
        closed = evaluate(d.jacobian("w", name), values, {"m": m, "n": n})
        np.testing.assert_allclose(np.reshape(closed, np.shape(Jf)), Jf, atol=1e-8)


@pytest.mark.parametrize("objective", [
    "minimize sumsq(w) + pos(1 - dot(w, w))",         # not inside a sum
    "maximize -sumsq(w) + sum(pos(w))",               # maximized: not an epigraph
])
def test_pos_elsewhere_is_refused(objective):
    with pytest.raises(symift.SymiftError, match="pos\\(\\) is supported as c \\* sum\\(pos\\(a\\)\\)"):
        symift.derive(symift.parse(f"dim n\nvar w[n]\n{objective}\n", "p.ift"))
