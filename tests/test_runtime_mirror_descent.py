"""Mirror descent on a matrix: the multiclass SVM dual as the fixed point B = softmax(log B − η∇f(B)),
softmax of each row (examples/multiclass_svm_md.ift), and Anderson acceleration of fixed points.

The fixed point's derivatives are checked against the KKT formulation of the same problem
(examples/multiclass_svm.ift) at the same solution, against central differences of re-solves,
jacfwd against jacrev and check_grads in both modes.  The dual's solution is sparse: entries at 0
(from a user's solver) must give the same derivatives, and a boundary fixed point that is not a
solution (B = Y, every row a vertex) must be flagged, not differentiated.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EXAMPLES, generated_module, layer_of
from jax.test_util import check_grads

import symift
from symift.errors import MathError, UnsupportedError
from symift.render.text import report as text_report

jax.config.update("jax_enable_x64", True)

M, K, P = 8, 3, 12  # p > m: the dual solution is unique


def data(seed=0, m=M, k=K, p=P, lam=2.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, p))
    return dict(X=X, Y=np.eye(k)[rng.integers(0, k, m)], lam=lam), lam / np.linalg.norm(X, 2) ** 2


@pytest.fixture(scope="module")
def kkt():
    return layer_of("multiclass_svm", tol=1e-12)


def kkt_solver(kkt, zeros=False):
    """The KKT layer's solution as the fixed point's forward (the paper's setting: any solver);
    ``zeros``: its entries below 1e-9 set to exactly 0, as a projection-based solver returns them."""
    def solve(X, Y, lam, eta):
        B = kkt.module.solve(X, Y, lam, tol=1e-12)["B"]
        if zeros:
            B = jnp.where(B < 1e-9, 0.0, B)
            B = B / jnp.sum(B, axis=1, keepdims=True)
        return B
    return solve


@pytest.fixture(scope="module")
def md(kkt):
    return symift.compile(symift.load(EXAMPLES / "multiclass_svm_md.ift"), solver=kkt_solver(kkt))


def test_the_derivation_keeps_b_whole_with_the_row_softmax_rule():
    d = symift.derive(symift.load(EXAMPLES / "multiclass_svm_md.ift"))
    assert d.coupled and d.rows is None
    report = text_report(d)
    assert "dp2 = p2∘du - p2∘((p2∘du) 1 1ᵀ) (row by row)" in report
    # the printed tangent keeps P (not B): P/B is not 1 where an entry of B tends to 0
    assert "equation:  dB - (p2∘(B^-1∘dB - deta (Y - 1 - X Xᵀ (Y - B)/lam)" in report
    assert "1 1ᵀ)∘p2) = 0" in report


def test_grad_of_a_matrix_is_the_adjoint_gradient():
    """T's argument, evaluated, is log B − η jax.grad(f) (∇f = −XXᵀ(Y − B)/λ − 1 + Y)."""
    lay = layer_of("multiclass_svm_md")
    params, eta = data(3)
    rng = np.random.default_rng(4)
    B = rng.dirichlet(np.ones(K), size=M)

    def f(B):
        return jnp.sum((params["X"].T @ (params["Y"] - B)) ** 2) / (2 * params["lam"]) - jnp.sum(B * (1 - params["Y"]))
    (T,) = lay.spec.fixed_point(**params, eta=eta, B=B)
    assert np.allclose(T, jax.nn.softmax(np.log(B) - eta * jax.grad(f)(B), axis=1), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fixed_point_derivatives_are_the_kkt_ones(kkt, md, seed):
    params, eta = data(seed)
    ref, out = kkt(**params), md(**params, eta=eta)
    assert bool(out["regular"]) and (np.asarray(ref["B"]) < 1e-8).any()  # a sparse solution
    assert np.allclose(out["B"], ref["B"], atol=1e-12)
    W = np.random.default_rng(seed + 10).normal(size=(M, K))
    for name in ("X", "Y", "lam"):
        def loss(layer, value, name=name, **extra):
            return jnp.sum(W * layer(**{**params, name: value}, **extra)["B"])
        g_md = jax.grad(lambda v: loss(md, v, eta=eta))(params[name])
        g_kkt = jax.grad(lambda v: loss(kkt, v))(params[name])
        assert np.allclose(g_md, g_kkt, rtol=1e-7, atol=1e-9), name
    # the solution does not depend on the step: dB/deta = 0
    assert abs(float(jax.grad(lambda e: jnp.sum(W * md(**params, eta=e)["B"]))(eta))) < 1e-8


def test_derivatives_match_finite_differences_and_each_other(kkt, md):
    params, eta = data(2)
    X = params["X"]
    E = np.random.default_rng(7).normal(size=X.shape)
    h = 1e-6
    fd = (kkt(**{**params, "X": X + h * E})["B"] - kkt(**{**params, "X": X - h * E})["B"]) / (2 * h)
    _, jvp = jax.jvp(lambda X_: md(**{**params, "X": X_}, eta=eta)["B"], (X,), (E,))
    assert np.allclose(jvp, fd, atol=1e-6)
    Jf = jax.jacfwd(lambda lam: md(**{**params, "lam": lam}, eta=eta)["B"])(params["lam"])
    Jr = jax.jacrev(lambda lam: md(**{**params, "lam": lam}, eta=eta)["B"])(params["lam"])
    assert np.allclose(Jf, Jr, atol=1e-12)
    check_grads(lambda lam: md(**{**params, "lam": lam}, eta=eta)["B"], (params["lam"],), order=1,
                modes=("fwd", "rev"), eps=1e-6)


def test_exact_zeros_from_a_solver_give_the_same_derivatives(kkt, md):
    """A projection-based solver returns entries at 0: log 0 and 1/0 must not reach the tangent."""
    md0 = symift.compile(symift.load(EXAMPLES / "multiclass_svm_md.ift"), solver=kkt_solver(kkt, zeros=True))
    params, eta = data(0)
    W = np.random.default_rng(5).normal(size=(M, K))

    def g(layer):
        return jax.grad(lambda lam: jnp.sum(W * layer(**{**params, "lam": lam}, eta=eta)["B"]))(params["lam"])
    out = md0(**params, eta=eta)
    assert bool(out["regular"]) and np.isfinite(float(g(md0)))
    assert np.isclose(g(md0), g(md), rtol=1e-8)


def test_a_boundary_fixed_point_that_is_not_a_solution_is_flagged(kkt):
    """B = Y (every row at its label's vertex) is a fixed point of the map — an entry at 0 stays at
    0 — but not a solution: the iteration would grow the other entries back (P/B > 1)."""
    params, eta = data(0)
    flagged = symift.compile(symift.load(EXAMPLES / "multiclass_svm_md.ift"),
                             solver=lambda X, Y, lam, eta: Y)
    out = flagged(**params, eta=eta)
    assert float(out["residual"]) < 1e-12 and not bool(out["regular"])
    with pytest.raises(MathError, match="no spurious or degenerate zero of B"):
        jax.grad(lambda lam: jnp.sum(flagged(**{**params, "lam": lam}, eta=eta)["B"]))(params["lam"])
    under_jit = jax.jit(jax.grad(lambda lam: jnp.sum(flagged(**{**params, "lam": lam}, eta=eta)["B"])))
    assert np.isnan(float(under_jit(params["lam"])))


def test_the_generated_module_differentiates_the_same(kkt, md, tmp_path):
    module = generated_module("multiclass_svm_md", tmp_path)
    params, eta = data(1)
    solver = kkt_solver(kkt)
    W = np.random.default_rng(3).normal(size=(M, K))

    def g(call):
        return jax.grad(lambda lam: jnp.sum(W * call(lam)["B"]))(params["lam"])
    mine = g(lambda lam: module.layer(params["X"], params["Y"], lam, eta, solver=solver))
    assert np.isclose(mine, g(lambda lam: md(**{**params, "lam": lam}, eta=eta)), rtol=1e-10)


# ----------------------------------------------------------------------------- Anderson acceleration
def _fixed_point_cases():
    rng = np.random.default_rng(0)
    n, m = 12, 30
    X, y = rng.normal(size=(m, n)), rng.normal(size=m)
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    Q = np.eye(n) + 0.1 * A @ A.T
    return [
        ("lasso_prox", {"X": X, "y": y, "lam": 2.0, "eta": 1 / np.linalg.norm(X, 2) ** 2}, "y", "w"),
        ("box_qp_pgd", {"Q": Q, "c": rng.normal(size=n), "l": -0.3 * np.ones(n), "u": 0.3 * np.ones(n),
                        "eta": 1 / np.linalg.norm(Q, 2)}, "c", "x"),
        ("simplex_qp_md", {"Q": Q, "c": 0.01 * rng.normal(size=n), "eta": 1 / np.linalg.norm(Q, 2)}, "c", "x"),
    ]


@pytest.mark.parametrize("name, params, param, var", _fixed_point_cases(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_anderson_reaches_the_same_solution_and_derivatives(name, params, param, var):
    fista, anderson = layer_of(name, acceleration="fista"), layer_of(name, acceleration="anderson")
    a, b = fista(**params), anderson(**params)
    assert bool(b["regular"]) and np.allclose(a[var], b[var], atol=1e-10)

    def J(layer):
        return jax.jacfwd(lambda v: layer(**{**params, param: v})[var])(params[param])
    assert np.allclose(J(fista), J(anderson), atol=1e-8)
    assert np.allclose(jax.vmap(lambda v: anderson(**{**params, param: v})[var])(np.stack([params[param]] * 2))[1],
                       b[var], atol=1e-12)


def test_acceleration_is_checked():
    with pytest.raises(UnsupportedError, match="acceleration must be one of auto, fista, anderson"):
        symift.compile(symift.load(EXAMPLES / "fixed_point.ift"), acceleration="nesterov")
    with pytest.raises(UnsupportedError, match="is for the iteration of a fixed point"):
        symift.compile(symift.load(EXAMPLES / "softmax.ift"), acceleration="anderson")


def test_anderson_accelerates_mirror_descent():
    """Mirror descent gets no FISTA extrapolation (it would leave the domain of log): Anderson
    reaches the loose tolerance in far fewer iterations (counted on the iteration itself)."""
    from symift.runtime import fixed_point as fp
    _, params, _, _ = _fixed_point_cases()[2]
    spec = layer_of("simplex_qp_md").spec
    p = {k: jnp.asarray(v) for k, v in params.items()}
    n = params["Q"].shape[0]

    def T(x):
        return tuple(spec.fixed_point(**p, x=x[0]))

    def residual(iterate, budget):
        (x,) = iterate(T, (jnp.ones(n),), [True], 0.0, budget)
        return float(jnp.max(jnp.abs(x - T((x,))[0])))
    assert residual(fp._anderson, 60) < 1e-3 * residual(fp._fista, 60)
