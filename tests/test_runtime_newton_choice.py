"""The interior point's two Newton steps: the primal Schur complement Q + Gᵀdiag(λ/t)G, formed at
every iterate, and the step with the parameters' pd pivots first (Q inverted once, the
multipliers' p × p complement at every iterate: diag(t/λ) + G Q⁻¹ Gᵀ without equalities,
diag(t/λ) + G (Q⁻¹ − Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹AQ⁻¹) Gᵀ with them, both by Cholesky).  Both solve the same
linear system; the solver takes the second where it factorizes matrices at most half the size, or
no larger and all by Cholesky.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import optnet_solve, spd
from helpers import layer_of

IP = sys.modules["symift.runtime.interior_point"]


def _qp(rng, n, p, m=1):
    """OptNet data with p inequalities, the first p // 2 active, strictly complementary."""
    Q, G, A = spd(rng, n), rng.standard_normal((p, n)), rng.standard_normal((m, n))
    z0 = rng.standard_normal(n)
    active = np.arange(p) < p // 2
    lam0 = np.where(active, rng.uniform(0.5, 1.5, p), 0.0)
    h = G @ z0 + np.where(active, 0.0, rng.uniform(0.5, 1.5, p))
    q = -(Q @ z0 + G.T @ lam0 + A.T @ rng.standard_normal(m))
    return {"Q": Q, "q": q, "G": G, "h": h, "A": A, "b": A @ z0}, active


def _newton_matrix(spec, params, values, slack):
    """∂/∂(unknowns, slack) of (equations, g + t, λ∘t), the interior point's rows, by jax."""
    names = list(spec.unknowns)
    sizes = [int(np.size(values[k])) for k in names] + [slack.size]

    def F(x):
        parts = [x[a:b] for a, b in zip(np.cumsum([0] + sizes)[:-1], np.cumsum(sizes), strict=True)]
        v = {k: part.reshape(np.shape(values[k])) for k, part in zip(names, parts, strict=False)}
        t = parts[-1]
        rows = list(spec.equations(**params, **v))
        rows += [g + t for g in spec.constraints(**params, **{k: v[k] for k in spec.variables})]
        rows += [v["lam"] * t]
        return jnp.concatenate([jnp.ravel(r) for r in rows])

    x = jnp.concatenate([jnp.ravel(values[k]) for k in names] + [slack])
    return jax.jacfwd(F)(x), [np.size(r) for r in spec.equations(**params, **values)] + [slack.size] * 2


@pytest.mark.parametrize("name", ["optnet_qp", "../benchmarks/qp_ineq"])
def test_both_steps_solve_the_interior_points_newton_system(name):
    """At a random interior iterate (λ, t > 0, away from any solution), both generated steps equal
    a dense solve of the Jacobian jax computes from the problem's own rows."""
    layer = layer_of(name)
    spec = layer.spec
    assert spec.newton_direction_constant is not None
    rng = np.random.default_rng(3)
    n, p = 7, 3
    params, _ = _qp(rng, n, p)
    params = {k: jnp.asarray(v) for k, v in params.items() if k in spec.params}
    values = {"z": jnp.asarray(rng.standard_normal(n)), "lam": jnp.asarray(rng.uniform(0.1, 2, p))}
    if "nu" in spec.unknowns:
        values["nu"] = jnp.asarray(rng.standard_normal(1))
    slack = jnp.asarray(rng.uniform(0.1, 2, p))
    K, row_sizes = _newton_matrix(spec, params, values, slack)
    r = rng.standard_normal(K.shape[0])
    expected = np.linalg.solve(np.asarray(K), r)
    rows = np.split(r, np.cumsum(row_sizes)[:-1])
    for step in (spec.newton_direction, spec.newton_direction_constant):
        solve = step(**params, **values, _t_lam=slack)
        got = np.concatenate([np.ravel(v) for v in solve(*map(jnp.asarray, rows))])
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_the_step_with_q_first_factorizes_q_once_per_solve_and_a_p_by_p_matrix_per_iterate():
    """The generated constant-first step: Q⁻¹ and G Q⁻¹ Gᵀ depend on no iterate (XLA hoists them
    out of the loop); per iterate one factorization of order p (a Cholesky: the complementarity row
    is scaled by 1/λ, so the complement is symmetric), no Gram product of order n."""
    layer = layer_of("../benchmarks/qp_ineq")
    spec = layer.spec
    S = jax.ShapeDtypeStruct
    n, p = 64, 16
    fixed = {"Q": S((n, n), float), "q": S((n,), float), "G": S((p, n), float), "h": S((p,), float)}
    values = {"z": S((n,), float), "lam": S((p,), float), "_t_lam": S((p,), float)}
    rows = [(n,), (p,), (p,)]
    assert IP._cheaper_per_iterate(spec.newton_direction_constant, spec.newton_direction, fixed, values, rows)
    for p_, taken in ((n, True), (n + 1, False)):  # all Cholesky: taken up to p = n
        shapes = ({**fixed, "G": S((p_, n), float), "h": S((p_,), float)},
                  {**values, "lam": S((p_,), float), "_t_lam": S((p_,), float)}, [(n,), (p_,), (p_,)])
        assert IP._cheaper_per_iterate(spec.newton_direction_constant, spec.newton_direction, *shapes) == taken
    assert IP.per_iterate_sizes(spec.newton_direction_constant, fixed, values, rows) == {"cholesky": p, "lu": 0}
    assert IP.per_iterate_sizes(spec.newton_direction, fixed, values, rows) == {"cholesky": n, "lu": 0}
    closed = jax.make_jaxpr(lambda a, x, r: spec.newton_direction_constant(**a, **x)(*r))(
        fixed, values, [S(s, float) for s in rows])
    assert _primitives(closed.jaxpr) >= {"cholesky"} and "lu" not in _primitives(closed.jaxpr)
    # Q is inverted once (triangular solves of order n only with n right-hand sides, the identity's):
    # the solve applies it as products
    solves = [(e.invars[0].aval.shape[-1], e.invars[1].aval.shape) for e in _equations(closed.jaxpr)
              if e.primitive.name == "triangular_solve"]
    assert {order for order, _ in solves} == {n, p}
    assert all(b == (n, n) for order, b in solves if order == n)


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for v in eqn.params.values():
            sub = getattr(v, "jaxpr", v)
            if hasattr(sub, "eqns"):
                yield from _equations(sub)


def _primitives(jaxpr) -> set:
    return {e.primitive.name for e in _equations(jaxpr)}


def test_with_equalities_the_projected_complement_is_factorized_by_cholesky():
    """With equalities Az = b the constant-first step's complement is the projected one; symift
    proves it pd (Q⁻¹ − Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹AQ⁻¹ is psd), so per iterate one Cholesky of order p, and
    A Q⁻¹ Aᵀ (order m) is factorized once; the primal step redoes Cholesky factorizations of
    orders n and m."""
    spec = layer_of("optnet_qp").spec
    S = jax.ShapeDtypeStruct
    n, p, m = 40, 30, 7
    fixed = {"Q": S((n, n), float), "q": S((n,), float), "G": S((p, n), float), "h": S((p,), float),
             "A": S((m, n), float), "b": S((m,), float)}
    values = {"z": S((n,), float), "nu": S((m,), float), "lam": S((p,), float), "_t_lam": S((p,), float)}
    rows = [(n,), (m,), (p,), (p,)]
    assert IP.per_iterate_sizes(spec.newton_direction_constant, fixed, values, rows) == {"cholesky": p, "lu": 0}
    assert IP.per_iterate_sizes(spec.newton_direction, fixed, values, rows) == {"cholesky": n + m, "lu": 0}
    closed = jax.make_jaxpr(lambda a, x, r: spec.newton_direction_constant(**a, **x)(*r))(
        fixed, values, [S(s, float) for s in rows])
    assert "lu" not in _primitives(closed.jaxpr)


@pytest.mark.parametrize("n,p,constant", [(64, 16, True), (64, 65, True), (64, 66, False), (12, 4, True)])
def test_the_solver_takes_the_cheaper_step_and_the_same_solution(n, p, constant, monkeypatch):
    """With m = 1 equality the constant-first step factorizes a Cholesky of order p per iterate and
    the primal step Cholesky factorizations of orders n and m: the first is taken for p ≤ n + m
    inequalities; the solution equals the active-set
    re-solve and the one the primal step finds, and its gradient equals central differences."""
    layer = layer_of("optnet_qp")
    params, active = _qp(np.random.default_rng(n + p), n, p)
    args = {k: jnp.asarray(v) for k, v in params.items()}
    taken = []
    choose = IP._cheaper_per_iterate

    def spy(*a):
        taken.append(choose(*a))
        return taken[-1]
    monkeypatch.setattr(IP, "_cheaper_per_iterate", spy)
    z = layer(**args)["z"]
    assert taken and all(t == constant for t in taken)
    np.testing.assert_allclose(z, optnet_solve(params, active)["z"], atol=1e-8)
    monkeypatch.setattr(IP, "_cheaper_per_iterate", lambda *a: False)
    np.testing.assert_allclose(z, layer(**args)["z"], atol=1e-8)
    monkeypatch.setattr(IP, "_cheaper_per_iterate", spy)

    w = np.random.default_rng(1).standard_normal(n)
    grad = jax.grad(lambda q: jnp.dot(w, layer(**{**args, "q": q})["z"]))(args["q"])
    assert np.all(np.isfinite(grad))
    eps = 1e-6
    for j in range(n):
        e = np.eye(n)[j] * eps
        fd = (w @ optnet_solve({**params, "q": params["q"] + e}, active)["z"]
              - w @ optnet_solve({**params, "q": params["q"] - e}, active)["z"]) / (2 * eps)
        assert abs(grad[j] - fd) < 1e-6 * max(1.0, abs(fd))


def test_vmapped_batch_takes_the_same_step_as_one_problem():
    """The choice depends on shapes only: a vmapped batch solves as a loop over its problems."""
    layer = layer_of("optnet_qp")
    data = [_qp(np.random.default_rng(s), 10, 3)[0] for s in range(4)]
    batch = {k: jnp.stack([jnp.asarray(d[k]) for d in data]) for k in data[0]}
    z = jax.jit(jax.vmap(lambda a: layer(**a)["z"]))(batch)
    for i, d in enumerate(data):
        np.testing.assert_allclose(z[i], layer(**{k: jnp.asarray(v) for k, v in d.items()})["z"], atol=1e-9)
