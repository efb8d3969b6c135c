"""The status of every solution (trust): converged, residual, cond, margin, regular.

Each check is measured at the solution, per batch element under vmap, and decided by thresholds
that depend on the dtype only — never on whether LAPACK meets an exact zero pivot.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import optnet_case, spd
from helpers import layer_of

import symift


def skeel(M):
    """‖ |M⁻¹| |M| ‖∞ exactly (numpy)."""
    M = np.atleast_2d(M)
    return np.max(np.abs(np.linalg.inv(M)) @ np.abs(M) @ np.ones(M.shape[0]))


@pytest.mark.parametrize("n", [4, 12])
def test_condition_estimate_matches_the_exact_conditions_of_the_pivots(n):
    """The pivots of the equality-constrained QP are Q and A Q⁻¹ Aᵀ (the report's "holds if
    −A Q⁻¹ Aᵀ is nonsingular"); OptNet's third is the Schur complement on the active set."""
    rng = np.random.default_rng(n)
    D = np.diag(np.logspace(0, 1.5, n))
    Q = D @ spd(rng, n) @ D  # badly scaled
    qp = {"Q": Q, "q": rng.standard_normal(n), "A": rng.standard_normal((2, n)), "b": rng.standard_normal(2)}
    sol = layer_of("eqqp")(**qp)
    exact = max(skeel(Q), skeel(qp["A"] @ np.linalg.solve(Q, qp["A"].T)))
    assert exact / 3 <= float(sol["cond"]) <= exact * (1 + 1e-6)
    params, *_ = optnet_case(np.random.default_rng(n), n)
    sol = layer_of("optnet_qp")(**params)
    Q, G, A, s = (np.asarray(params["Q"]), np.asarray(params["G"]), np.asarray(params["A"]), np.asarray(sol["s"]))
    Qi = np.linalg.inv(Q)
    P = Qi - Qi @ A.T @ np.linalg.solve(A @ Qi @ A.T, A @ Qi)  # Q⁻¹ on the null space of A
    schur = np.diag(s) + (1 - s)[:, None] * (G @ P @ G.T)     # diag(s) + diag(1 − s) G P Gᵀ
    exact = max(skeel(Q), skeel(A @ Qi @ A.T), skeel(schur))
    assert exact / 3 <= float(sol["cond"]) <= exact * (1 + 1e-6)


def test_softmax_status_survives_underflow():
    """exp(−2000) underflows to 0, where F's log z is undefined: the derivative diag(z) − zzᵀ is
    still exact, and Skeel's number (row-scaling invariant) keeps the solution regular."""
    layer = layer_of("softmax")
    out = layer(theta=jnp.asarray([1000.0, 999.0, -1000.0, 0.0, 998.5]))
    assert bool(out["regular"]) and float(out["cond"]) < 100
    g = jax.grad(lambda t: layer(theta=t)["z"][0])(jnp.asarray([1000.0, 999.0, -1000.0, 0.0, 998.5]))
    assert np.all(np.isfinite(g))


def test_one_degenerate_sparsemax_in_a_batch_is_the_only_one_flagged():
    """θ = (0.5, 0.5, 0, …) puts the third entry exactly at the threshold τ = 0: zᵢ = 0 and λᵢ = 0."""
    layer = layer_of("sparsemax")
    rng = np.random.default_rng(3)
    thetas = rng.standard_normal((6, 5))
    thetas[4] = [0.5, 0.5, 0.0, -1.0, -2.0]
    out = jax.jit(jax.vmap(lambda t: layer(theta=t)))(jnp.asarray(thetas))
    assert np.all(out["converged"])
    np.testing.assert_array_equal(out["regular"], [True, True, True, True, False, True])
    assert float(out["margin"][4]) == 0.0 and np.all(np.asarray(out["margin"])[[0, 1, 2, 3, 5]] > 1e-6)
    g = jax.jit(jax.vmap(jax.grad(lambda t: layer(theta=t)["z"] @ jnp.arange(5.0))))(jnp.asarray(thetas))
    finite = np.all(np.isfinite(np.asarray(g)), axis=1)
    np.testing.assert_array_equal(finite, [True, True, True, True, False, True])
    with pytest.raises(symift.MathError, match="strict complementarity fails for lam\\[2\\]"):
        jax.grad(lambda t: layer(theta=t)["z"][0])(jnp.asarray(thetas[4]))
    loose = layer_of("sparsemax", strict=False)
    assert np.all(np.isfinite(jax.grad(lambda t: loose(theta=t)["z"][0])(jnp.asarray(thetas[4]))))


def test_one_singular_qp_in_a_batch_is_the_only_one_flagged():
    """Two equal rows of A: LICQ fails, ∂F/∂x is singular.  Solved by least squares (a user
    solver), the batch converges; only that element has an infinite or huge cond."""
    layer = layer_of("eqqp", solver=lambda Q, q, A, b: jnp.linalg.lstsq(
        jnp.block([[Q, A.T], [A, jnp.zeros((A.shape[0], A.shape[0]))]]), jnp.concatenate([-q, b]))[0][:Q.shape[0]])
    rng = np.random.default_rng(8)
    batch = []
    for k in range(4):
        A = rng.standard_normal((2, 5))
        if k == 2:
            A[1] = A[0]
        batch.append({"Q": spd(rng, 5), "q": rng.standard_normal(5), "A": A, "b": A @ rng.standard_normal(5)})
    stacked = {k: jnp.asarray(np.stack([b[k] for b in batch])) for k in batch[0]}
    out = jax.jit(jax.vmap(lambda p: layer(**p)))(stacked)
    np.testing.assert_array_equal(out["converged"], [True] * 4)
    np.testing.assert_array_equal(out["regular"], [True, True, False, True])
    assert float(out["cond"][2]) > float(symift.runtime.cond_limit(jnp.float64))
    g = jax.jit(jax.vmap(jax.grad(lambda p: jnp.sum(layer(**p)["z"]))))(stacked)
    finite = np.all(np.isfinite(np.asarray(g["q"])), axis=1)
    np.testing.assert_array_equal(finite, [True, True, False, True])


def test_builtin_solve_at_a_singular_point_raises_whatever_the_lapack_kernel():
    """The built-in solve at duplicated equality rows either fails to converge or converges to
    arbitrary multipliers; both raise in eager use (a huge condition estimate, not a zero pivot)."""
    layer = layer_of("eqqp")
    rng = np.random.default_rng(4)
    a = rng.standard_normal(4)
    params = {"Q": spd(rng, 4), "q": rng.standard_normal(4), "A": np.stack([a, a]), "b": np.array([1.0, 1.0])}
    with pytest.raises(symift.MathError, match="did not converge|singular or ill-conditioned"):
        layer(**params)
    out = jax.jit(lambda p: layer(**p))(params)
    assert not bool(out["regular"])
