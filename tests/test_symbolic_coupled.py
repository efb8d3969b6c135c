"""Matrix variables whose rows are coupled (symbolic.coupled, symbolic.vec): the multiclass SVM dual.

The KKT residual is derived in matrix form (gradients read off the differential by its adjoint),
checked against jax.grad of the Lagrangian written by hand; the tangent system the derivation prints
is checked against the layer's jvp; the layer's solution against an accelerated projected gradient
written here; its derivatives against central differences of re-solves, jacfwd against jacrev, and
check_grads in both modes; the value's envelope gradients against the printed closed forms.  The
closed form in vec(B) (Kronecker products, an augmented pivot) is evaluated symbolically against the
layer with the numerical LU backward and finite differences.
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


def test_the_closed_form_is_derived_in_vec_form(d):
    assert d.rows is None and d.coupled == "'X.T' turns the rows into columns of 'B'"
    assert d.vectorized and not d.tangent_only
    report = text_report(d)
    assert "stationarity in B:  nu 1ᵀ + Y - mu - 1 - X Xᵀ (Y - B)/lam = 0" in report
    assert "the Jacobians are of vec(B), the columns of B stacked" in report
    assert "(an augmented Lagrangian)" in report
    assert "dvec(B)/dlam = " in report and "dvec(B)[dX] = " in report
    assert "S₁ = diag(vec(s)) (1_k 1ᵀ_k ⊗ I_m) + diag(vec(s)) (I_k ⊗ X Xᵀ)/lam - diag(1 - vec(s))" in report
    assert "S₂ = (1ᵀ_k ⊗ I_m) S₁⁻¹ diag(vec(s)) (1_k ⊗ I_m)" in report
    assert "∂F/∂x nonsingular: holds if: S₁ is nonsingular" in str(d.ift)
    assert "Tangent system (no closed form" not in report


def _vec(A):
    return np.asarray(A).T.reshape(-1)


def evaluate_vec(e, values, dims):
    return np.ravel(evaluate(e, values, dims))


def test_the_closed_form_is_the_derivative_where_the_hessian_alone_is_singular(d, layer):
    """The closed form, evaluated symbolically at the solution, equals the layer's tangent with the
    numerical LU backward and central differences of re-solves.  On this data a column of B has more
    entries on its support than X has features, so diag(s)(I ⊗ XXᵀ)diag(s) is singular on the support:
    the pivot needs the augmented term (1 1ᵀ ⊗ I)."""
    params = svm_data(seed=0)
    out = layer(**params)
    B = np.asarray(out["B"])
    support = B > 1e-9
    assert support.sum(axis=0).max() > P
    values = {**params, "B": B, "nu": out["nu"], "mu": out["mu"], "s": support.astype(float)}
    E = np.random.default_rng(7).normal(size=(M, P))
    dims = dict(m=M, p=P, k=K)
    lu = symift.compile(d, backward="lu")

    def B_of(layer, lam, X):
        return layer(X=X, Y=params["Y"], lam=lam)["B"]
    h = 1e-6
    fd_lam = (B_of(layer, params["lam"] + h, params["X"]) - B_of(layer, params["lam"] - h, params["X"])) / (2 * h)
    fd_X = (B_of(layer, params["lam"], params["X"] + h * E) - B_of(layer, params["lam"], params["X"] - h * E)) / (2 * h)
    closed_lam = evaluate_vec(d.jacobian("B", "lam"), values, dims)
    closed_X = evaluate_vec(d.jacobian("B", "X"), {**values, "dX": E}, dims)
    _, lu_X = jax.jvp(lambda X: B_of(lu, params["lam"], X), (params["X"],), (E,))
    lu_lam = jax.jacfwd(lambda lam: B_of(lu, lam, params["X"]))(params["lam"])
    np.testing.assert_allclose(closed_lam, _vec(lu_lam), atol=1e-9)
    np.testing.assert_allclose(closed_X, _vec(lu_X), atol=1e-9)
    np.testing.assert_allclose(closed_lam, _vec(fd_lam), atol=1e-6)
    np.testing.assert_allclose(closed_X, _vec(fd_X), atol=1e-6)
    assert np.abs(closed_X).max() > 1e-3
    _, dY = jax.jvp(lambda Y: layer(X=params["X"], Y=Y, lam=params["lam"])["B"], (params["Y"],), (E[:, :K],))
    _, dY_lu = jax.jvp(lambda Y: lu(X=params["X"], Y=Y, lam=params["lam"])["B"], (params["Y"],), (E[:, :K],))
    np.testing.assert_allclose(dY, dY_lu, atol=1e-9)
    np.testing.assert_allclose(evaluate_vec(d.jacobian("B", "Y"), {**values, "dY": E[:, :K]}, dims), _vec(dY),
                               atol=1e-9)


def test_the_closed_form_is_the_hand_derived_one(d, layer):
    """The closed form the example's comment gives, written here in numpy with formed Kronecker
    products, equals the derived one and the layer's derivative (the layer uses the closed form)."""
    params = svm_data(seed=0)
    X, Y, lam = params["X"], params["Y"], params["lam"]
    out = layer(**params)
    B = np.asarray(out["B"])
    s = (B > 1e-9).astype(float)
    D, eye, G = np.diag(_vec(s)), np.eye(M * K), X @ X.T
    A = np.kron(np.ones((1, K)), np.eye(M))                      # the row sums: A vec(B) = B 1
    S1 = D @ (A.T @ A + np.kron(np.eye(K), G) / lam) - (eye - D)
    S1inv = np.linalg.inv(S1)
    S2 = A @ S1inv @ D @ A.T
    K1 = S1inv - S1inv @ D @ A.T @ np.linalg.solve(S2, A @ S1inv)
    dlam = K1 @ D @ np.kron(np.eye(K), G) @ (_vec(B) - _vec(Y)) / lam ** 2
    E = np.random.default_rng(11).normal(size=(M, K))
    dY = -K1 @ D @ (eye - np.kron(np.eye(K), G) / lam) @ _vec(E)
    values = {**params, "B": B, "nu": out["nu"], "mu": out["mu"], "s": s}
    dims = dict(m=M, p=P, k=K)
    np.testing.assert_allclose(evaluate_vec(d.jacobian("B", "lam"), values, dims), dlam, atol=1e-9)
    np.testing.assert_allclose(evaluate_vec(d.jacobian("B", "Y"), {**values, "dY": E}, dims), dY, atol=1e-9)
    jac = jax.jacfwd(lambda lam: layer(X=X, Y=Y, lam=lam)["B"])(lam)
    np.testing.assert_allclose(_vec(jac), dlam, atol=1e-9)
    _, tangent = jax.jvp(lambda Y: layer(X=X, Y=Y, lam=lam)["B"], (Y,), (E,))
    np.testing.assert_allclose(_vec(tangent), dY, atol=1e-9)
    assert np.abs(dlam).max() > 1e-3 and np.abs(dY).max() > 1e-3


def test_a_transposed_unknown_keeps_the_tangent_system():
    """No vec rule for Zᵀ (a commutation matrix): the tangent system in matrix form, solved numerically."""
    src = "dim m\nparam T[m, m]\nvar Z[m, m]\nminimize sumsq(Z - T) + sumsq(Z.T - Z) / 2\n"
    d = symift.derive(symift.parse(src, "c.ift"))
    assert d.tangent_only and "transpose" in d.why_not_vec
    assert "Tangent system (no closed form" in text_report(d)
    with pytest.raises(UnsupportedError, match="no closed form"):
        d.jacobian("Z", "T")
    T = np.random.default_rng(3).normal(size=(3, 3))
    layer = symift.compile(d)
    Z = layer(T=T)["Z"]
    np.testing.assert_allclose(Z, (2 * T + T.T) / 3, atol=1e-9)  # 2(Z − T) + 2(Z − Zᵀ) = 0
    J = jax.jacfwd(lambda T: layer(T=T)["Z"])(T).reshape(9, 9)
    exact = np.zeros((3, 3, 3, 3))
    for i in range(3):
        for j in range(3):
            exact[i, j, i, j] += 2 / 3
            exact[i, j, j, i] += 1 / 3
    np.testing.assert_allclose(J, exact.reshape(9, 9), atol=1e-9)


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
    assert module.SPEC.why_no_closed_form == ""
    out = module.layer(**params)
    values = {k: out[k] for k in ("B", "nu", "mu")}
    J = module.jacobian_B_lam(**params, **values, s=(np.asarray(out["B"]) > 1e-9).astype(float))
    g = jax.jacfwd(lambda lam: module.layer(X=params["X"], Y=params["Y"], lam=lam)["B"])(params["lam"])
    np.testing.assert_allclose(np.ravel(J), _vec(g), atol=1e-9)  # an (mk)×1 Jacobian, numerator layout


def test_latex_states_the_closed_form_with_kronecker_products(d):
    doc = d.to_latex()
    assert r"\langle \mu, g_{\mu} \rangle" in doc
    assert r"\otimes" in doc and r"\operatorname{vec}(B)" in doc
    assert "derives no closed form" not in doc


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
