"""Warm starts: ``layer(..., init=previous)`` starts the forward solve from a previous result.

The solution (and so its derivative) does not depend on where the solve started: a warm-started
call gives the cold call's numbers, its tangent ignores init (even when init is a function of the
differentiated parameter), and the interior point needs fewer iterations from a nearby solution.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import optnet_case, spd
from helpers import layer_of

import symift
from symift.errors import ArgumentError


def _optnet(seed):
    params, _, _, _ = optnet_case(np.random.default_rng(seed), 8)
    return params, "q"


def _sparsemax(seed):
    return {"theta": 2 * np.random.default_rng(seed).standard_normal(9)}, "theta"


def _lasso_prox(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((15, 6))
    return {"X": X, "y": rng.standard_normal(15), "lam": 1.5, "eta": 1 / np.linalg.norm(X, 2) ** 2}, "y"


def _lasso(seed):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((15, 6)), "y": rng.standard_normal(15), "lam": 1.5}, "y"


def _simplex_qp_md(seed):
    rng = np.random.default_rng(seed)
    return {"Q": np.eye(5) + 0.1 * spd(rng, 5) / 5, "c": 0.1 * rng.standard_normal(5), "eta": 0.5}, "c"


def _rowwise_sparsemax(seed):
    return {"Theta": 2 * np.random.default_rng(seed).standard_normal((4, 5))}, "Theta"


# (example, its data and the parameter moved, the variable): an interior point with inequalities
# and equalities, a separable dual Newton, a fixed point, a lowered norm1, mirror descent (a
# positive variable), a layer mapped over rows
CASES = [("optnet_qp", _optnet, "z"), ("sparsemax", _sparsemax, "z"), ("lasso_prox", _lasso_prox, "w"),
         ("lasso", _lasso, "w"), ("simplex_qp_md", _simplex_qp_md, "x"),
         ("rowwise_sparsemax", _rowwise_sparsemax, "Z")]


@pytest.mark.parametrize("name, data, var", CASES, ids=[c[0] for c in CASES])
def test_a_warm_start_gives_the_cold_solution_and_derivative(name, data, var):
    layer = layer_of(name)
    params, moved = data(0)
    near = dict(params, **{moved: np.asarray(params[moved]) + 0.01 * np.random.default_rng(1).standard_normal(
        np.shape(params[moved]))})
    before = layer(**params)
    cold, warm = layer(**near), layer(**near, init=before)
    assert bool(warm["converged"]) and bool(warm["regular"])
    np.testing.assert_allclose(warm[var], cold[var], atol=1e-9)
    # init from elsewhere (another problem's solution, zeros) changes nothing either
    far = layer(**near, init={k: jnp.zeros_like(v) for k, v in before.items() if k == var})
    np.testing.assert_allclose(far[var], cold[var], atol=1e-9)

    def f(p, init=None):
        return layer(**dict(near, **{moved: p}), **({} if init is None else {"init": init}))[var]
    p = jnp.asarray(near[moved], float)
    J = jax.jacfwd(f)(p)
    np.testing.assert_allclose(jax.jacfwd(lambda p: f(p, before))(p), J, atol=1e-9)
    # init a function of the parameter itself: it carries no derivative (the solution does not
    # depend on where the solve started)
    np.testing.assert_allclose(jax.jacrev(lambda p: f(p, layer(**dict(near, **{moved: p}))))(p), J, atol=1e-9)


def test_warm_starts_under_jit_and_vmap():
    layer = layer_of("optnet_qp")
    rng = np.random.default_rng(3)
    params, _ = _optnet(3)
    qs = params["q"] + 0.05 * rng.standard_normal((4, params["q"].size))
    solve = jax.jit(jax.vmap(lambda q, init: layer(**dict(params, q=q), init=init)))
    first = jax.vmap(lambda q: layer(**dict(params, q=q)))(qs)
    moved = qs + 0.01 * rng.standard_normal(qs.shape)
    warm = solve(moved, {k: first[k] for k in ("z", "lam", "nu")})
    cold = jax.vmap(lambda q: layer(**dict(params, q=q)))(moved)
    assert bool(jnp.all(warm["converged"]))
    np.testing.assert_allclose(warm["z"], cold["z"], atol=1e-9)


def test_a_warm_start_saves_interior_point_iterations(monkeypatch):
    """From the solution of a nearby QP the interior point finishes in a few steps; from a far one
    it takes about as many as a cold start (multipliers and slacks are kept ≥ r², r the start's
    stationarity residual; at most two more steps here)."""
    ip = sys.modules["symift.runtime.interior_point"]
    counts = []
    original = ip.interior_point

    def counted(*args, **kwargs):
        out = original(*args, **kwargs)
        counts.append(int(out[2]))
        return out
    monkeypatch.setattr(ip, "interior_point", counted)
    spec = layer_of("optnet_qp").spec
    for seed in range(3):
        params, _ = _optnet(seed)
        params = {k: jnp.asarray(v, float) for k, v in params.items()}
        sol, _, _ = ip.kkt_solve(spec, params, 1e-9, 100)
        rng = np.random.default_rng(seed)
        for delta, most in ((0.005, 4), (1.0, None)):
            moved = dict(params, q=params["q"] + delta * rng.standard_normal(params["q"].shape))
            counts.clear()
            cold, _, _ = ip.kkt_solve(spec, moved, 1e-9, 100)
            warm, _, res = ip.kkt_solve(spec, moved, 1e-9, 100, start=sol)
            k_cold, k_warm = counts
            assert float(res) <= 1e-9
            np.testing.assert_allclose(warm["z"], cold["z"], atol=1e-8)
            assert k_warm <= (most if most is not None else k_cold + 2), (delta, k_warm, k_cold)
            assert most is None or k_warm < k_cold


def test_bad_warm_starts_are_refused_by_name():
    layer = layer_of("sparsemax")
    theta = np.ones(4)
    unknown = r"init= has 'y', which is not an unknown of this problem \(its unknowns: z, nu, lam\)"
    with pytest.raises(ArgumentError, match=unknown):
        layer(theta=theta, init={"y": np.zeros(4)})
    with pytest.raises(ArgumentError, match=r"init= gives z the shape \(3,\); these parameters make it \(4,\)"):
        layer(theta=theta, init={"z": np.zeros(3)})
    with pytest.raises(ArgumentError, match="init= takes a previous result"):
        layer(theta=theta, init=[1, 2])


def test_a_parameter_named_init_stays_a_parameter():
    layer = symift.compile(symift.parse("dim n\nparam init[n]\nvar x[n]\nminimize sumsq(x - init)\n", "p.ift"))
    np.testing.assert_allclose(layer(init=np.arange(3.0))["x"], np.arange(3.0), atol=1e-12)
