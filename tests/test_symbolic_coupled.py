"""Matrix variables whose rows are coupled (symbolic.coupled): the multiclass SVM dual, kept a matrix.

The KKT residual is derived in matrix form (gradients read off the differential by its adjoint),
checked against jax.grad of the Lagrangian written by hand; the tangent system the derivation prints
is checked against the layer's jvp; the layer's solution against an accelerated projected gradient
written here; its derivatives against central differences of re-solves, jacfwd against jacrev, and
check_grads in both modes; the value's envelope gradients against the printed closed forms.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EXAMPLES, evaluate, generated_module, layer_of
from jax.test_util import check_grads

import symift
from symift.errors import UnsupportedError
from symift.render.text import report as text_report

jax.config.update("jax_enable_x64", True)

M, P, K = 8, 3, 3


def svm_data(seed=0, m=M, p=P, k=K):
    rng = np.random.default_rng(seed)
    return dict(X=rng.normal(size=(m, p)), Y=np.eye(k)[rng.integers(0, k, m)], lam=1.0)


def project_rows(V):
    """Each row of V projected onto the simplex (sort-based)."""
    U = -np.sort(-V, axis=1)
    css = np.cumsum(U, axis=1) - 1
    idx = np.arange(1, V.shape[1] + 1)
    rho = np.sum(U - css / idx > 0, axis=1)
    tau = css[np.arange(V.shape[0]), rho - 1] / rho
    return np.maximum(V - tau[:, None], 0)


def svm_reference(X, Y, lam, iters=20000):
    """FISTA on minimize ‖Xᵀ(Y − B)‖²/(2 lam) − ⟨B, 1 − Y⟩ over row-simplex B (written here, not symift's)."""
    L = np.linalg.norm(X, 2) ** 2 / lam
    B = Z = np.full(Y.shape, 1.0 / Y.shape[1])
    t = 1.0
    for _ in range(iters):
        grad = -X @ (X.T @ (Y - Z)) / lam - (1 - Y)
        B_new = project_rows(Z - grad / L)
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        Z = B_new + (t - 1) / t_new * (B_new - B)
        B, t = B_new, t_new
    return B


@pytest.fixture(scope="module")
def d():
    return symift.derive(symift.load(EXAMPLES / "multiclass_svm.ift"))


@pytest.fixture(scope="module")
def layer():
    return layer_of("multiclass_svm")


def test_the_matrix_is_kept_whole_and_the_reason_stated(d):
    assert d.rows is None and d.coupled == "'X.T' turns the rows into columns of 'B'"
    report = text_report(d)
    assert "stationarity in B:  nu 1ᵀ + Y - mu - 1 - X Xᵀ (Y - B)/lam = 0" in report
    assert "Tangent system (no closed form: 'X.T' turns the rows into columns of 'B'" in report
    assert "primal feasibility (nu):  dB 1 = 0" in report
    assert d.ift.holds is None and "nonsingular at the solution" in str(d.ift)
    with pytest.raises(UnsupportedError, match="no closed form"):
        d.jacobian("B", "lam")


def test_stationarity_is_the_gradient_of_the_lagrangian(d):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(M, P)), rng.normal(size=(M, K))
    B, mu, nu, lam = rng.normal(size=(M, K)), rng.normal(size=(M, K)), rng.normal(size=M), 0.7

    def lagrangian(B):  # minimize −f: −⟨B, 1 − Y⟩ + ‖Xᵀ(Y − B)‖²/(2 lam) + νᵀ(B1 − 1) + ⟨μ, −B⟩
        return (-jnp.sum(B * (1 - Y)) + jnp.sum((X.T @ (Y - B)) ** 2) / (2 * lam)
                + nu @ (B.sum(axis=1) - 1) + jnp.sum(mu * -B))
    values = dict(X=X, Y=Y, B=B, mu=mu, nu=nu, lam=lam)
    got = evaluate(d.residual["stationarity in B"], values, dict(m=M, p=P, k=K))
    np.testing.assert_allclose(got, jax.grad(lagrangian)(B), atol=1e-12)


def test_adjoint_gradients_of_the_language_constructs():
    """∇_W of traces, transposes, Hadamard products, elementwise log/exp and a row-wise logsumexp."""
    src = ("dim m, k, p\nparam X[m, p]\nparam Y[m, k]\nparam C[k, k]\nvar W[p, k] > 0\n"
           "minimize sum(log(exp(X @ W) @ ones(k))) - dot(Y, X @ W @ C.T) + sumsq(W.T) / 2 - entropy(W)\n")
    d = symift.derive(symift.parse(src, "c.ift"))
    rng = np.random.default_rng(2)
    m, k, p = 5, 3, 4
    X, Y, C, W = rng.normal(size=(m, p)), rng.normal(size=(m, k)), rng.normal(size=(k, k)), rng.uniform(0.5, 2, (p, k))

    def f(W):
        return (jnp.sum(jax.nn.logsumexp(X @ W, axis=1)) - jnp.sum(Y * (X @ W @ C.T)) + jnp.sum(W ** 2) / 2
                + jnp.sum(W * jnp.log(W)))
    got = evaluate(d.residual["stationarity in W"], dict(X=X, Y=Y, C=C, W=W), dict(m=m, k=k, p=p))
    np.testing.assert_allclose(got, jax.grad(f)(W), atol=1e-10)


def test_forward_solution_against_a_reference(layer):
    params = svm_data(seed=3)
    out = layer(**params)
    assert bool(out["converged"]) and bool(out["regular"])
    np.testing.assert_allclose(out["B"], svm_reference(**params), atol=1e-7)
    np.testing.assert_allclose(np.sum(out["B"], axis=1), 1.0, atol=1e-12)
    B = out["B"]
    f = np.sum(B * (1 - params["Y"])) - np.sum((params["X"].T @ (params["Y"] - B)) ** 2) / (2 * params["lam"])
    np.testing.assert_allclose(out["value"], f, rtol=1e-12)


def test_the_printed_tangent_system_holds_for_the_layers_tangent(d, layer):
    params = svm_data(seed=4)
    directions = dict(X=np.random.default_rng(5).normal(size=(M, P)), Y=np.zeros((M, K)), lam=0.3)
    out, tangent = jax.jvp(lambda X, lam: layer(X=X, Y=params["Y"], lam=lam), (params["X"], params["lam"]),
                           (directions["X"], directions["lam"]))
    values = {**params, **{u: out[u] for u in ("B", "nu", "mu")}, **{"d" + u: tangent[u] for u in ("B", "nu", "mu")},
              **{"d" + p: v for p, v in directions.items()}}
    for name, e in d.tangent_system:
        np.testing.assert_allclose(evaluate(e, values, dict(m=M, p=P, k=K)), 0.0, atol=1e-9, err_msg=name)


def test_jacobians_against_finite_differences_jacfwd_and_jacrev(layer):
    params = svm_data(seed=0)
    rng = np.random.default_rng(7)
    E = rng.normal(size=(M, P))
    h = 1e-6

    def B_of(lam, X):
        return layer(X=X, Y=params["Y"], lam=lam)["B"]
    J_fwd = jax.jacfwd(B_of)(params["lam"], params["X"])
    J_rev = jax.jacrev(B_of)(params["lam"], params["X"])
    np.testing.assert_allclose(J_fwd, J_rev, atol=1e-11)
    fd = (B_of(params["lam"] + h, params["X"]) - B_of(params["lam"] - h, params["X"])) / (2 * h)
    np.testing.assert_allclose(J_fwd, fd, atol=1e-6)
    _, dX = jax.jvp(lambda X: B_of(params["lam"], X), (params["X"],), (E,))
    fd = (B_of(params["lam"], params["X"] + h * E) - B_of(params["lam"], params["X"] - h * E)) / (2 * h)
    np.testing.assert_allclose(dX, fd, atol=1e-6)
    assert np.abs(dX).max() > 1e-3  # the solution moves: the check is not vacuous


def test_a_singular_kkt_jacobian_is_an_error_or_nan(layer):
    """With more samples than features the dual need not have a unique solution: for this data
    ∂F/∂x is singular at the solution, and the derivative is refused, never a wrong number."""
    params = svm_data(seed=6)
    # the forward's status says so already: `cond` is the condition of the LU of ∂F/∂x
    flagged = jax.jit(lambda lam: layer(X=params["X"], Y=params["Y"], lam=lam))(params["lam"])
    assert bool(flagged["converged"]) and not bool(flagged["regular"]) and not float(flagged["cond"]) < 1e13
    with pytest.raises(symift.MathError, match="singular or ill-conditioned"):
        layer(**params)

    def loss(lam):
        return jnp.sum(layer(X=params["X"], Y=params["Y"], lam=lam)["B"][:, 0])
    with pytest.raises(symift.MathError, match="singular or ill-conditioned"):
        jax.grad(loss)(params["lam"])
    assert np.isnan(jax.jit(jax.grad(loss))(params["lam"]))


def test_check_grads_in_both_modes(layer):
    params = svm_data(seed=8)
    W = np.random.default_rng(9).normal(size=(M, K))

    def loss(lam, X):
        return jnp.sum(W * layer(X=X, Y=params["Y"], lam=lam)["B"])
    check_grads(loss, (params["lam"], params["X"]), order=1, modes=("fwd", "rev"), eps=1e-6, atol=1e-5, rtol=1e-5)


def test_value_gradients_are_the_printed_envelope_forms(d, layer):
    params = svm_data(seed=10)
    out = layer(**params)
    values = {**params, **{u: out[u] for u in ("B", "nu", "mu")}}
    grads = jax.grad(lambda X, Y, lam: layer(X=X, Y=Y, lam=lam)["value"], argnums=(0, 1, 2))(
        params["X"], params["Y"], params["lam"])
    for p, g in zip(("X", "Y", "lam"), grads, strict=True):
        np.testing.assert_allclose(evaluate(d.value_gradient(p), values, dict(m=M, p=P, k=K)), g, atol=1e-9)


def test_under_jit_and_vmap(layer):
    params = svm_data(seed=11)
    lams = jnp.array([0.5, 1.0, 2.0])
    batched = jax.jit(jax.vmap(lambda lam: layer(X=params["X"], Y=params["Y"], lam=lam)["B"]))(lams)
    for lam, B in zip(lams, batched, strict=True):
        np.testing.assert_allclose(B, svm_reference(params["X"], params["Y"], float(lam)), atol=1e-7)
    grads = jax.vmap(jax.grad(lambda lam: jnp.sum(layer(X=params["X"], Y=params["Y"], lam=lam)["B"][:, 0])))(lams)
    assert np.all(np.isfinite(grads))


def test_generated_module_solves_the_same(tmp_path, layer):
    module = generated_module("multiclass_svm", tmp_path)
    params = svm_data(seed=12)
    np.testing.assert_allclose(module.layer(**params)["B"], layer(**params)["B"], atol=1e-10)
    assert module.SPEC.why_no_closed_form.startswith("dB/dX: no closed form")


def test_latex_states_the_tangent_system(d):
    doc = d.to_latex()
    assert r"\section{The tangent system}" in doc and r"\mathrm{d}\nu" in doc
    assert r"\langle \mu, g_{\mu} \rangle" in doc
    assert "derives no closed form" in doc


@pytest.mark.parametrize("source, x", [
    ("dim m\nparam T[m, m]\nvar Z[m, m]\nminimize sumsq(Z - T)\n", "T"),                      # square
    ("dim m, k\nparam T[m, k]\nvar Z[m, k]\nsolve\n    Z + Z^3 == T\n", None),                  # a root problem
    ("dim m, k, p\nparam X[m, p]\nparam Y[m, k]\nparam lam > 0\nvar W[p, k]\n"                  # multi-output ridge
     "minimize sumsq(X @ W - Y) / 2 + lam * sumsq(W) / 2\n", "ridge"),
])
def test_other_coupled_problems_solve_and_differentiate(source, x):
    rng = np.random.default_rng(13)
    layer = symift.compile(symift.parse(source, "c.ift"))
    if x == "ridge":
        X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
        W = layer(X=X, Y=Y, lam=0.5)["W"]
        np.testing.assert_allclose(W, np.linalg.solve(X.T @ X + 0.5 * np.eye(3), X.T @ Y), atol=1e-10)
        g = jax.grad(lambda lam: jnp.sum(layer(X=X, Y=Y, lam=lam)["W"]))(0.5)
        exact = -np.sum(np.linalg.solve(X.T @ X + 0.5 * np.eye(3), W))  # dW/dlam = −(XᵀX + lam I)⁻¹ W
        np.testing.assert_allclose(g, exact, rtol=1e-9)
        return
    T = rng.normal(size=(3, 3) if x == "T" else (3, 2))
    out = layer(T=T)
    Z = out["Z"]
    if x == "T":
        np.testing.assert_allclose(Z, T, atol=1e-10)
    else:
        np.testing.assert_allclose(Z + Z ** 3, T, atol=1e-10)
        J = jax.jacfwd(lambda T: layer(T=T)["Z"])(T)
        np.testing.assert_allclose(J.reshape(6, 6), np.diag(1 / (1 + 3 * Z.ravel() ** 2)), atol=1e-10)
