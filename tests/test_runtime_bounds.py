"""Layers of the breadth issue's bound problems against independent references.

Box projection (jnp.clip), 1.5-entmax (bisection on the threshold of p = [θ/2 − τ]₊²) and a box
QP (active-set enumeration): values, jacfwd = jacrev = central differences of the reference, the
closed form, and a batch with one element where both bounds meet (l = u) flagged alone.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import BOX_QP, box_qp_reference, entmax15_solve
from helpers import layer_of

import symift

EPS = 1e-6


def central(f, x):
    x = np.asarray(x, float)
    return np.stack([(f(x + EPS * e) - f(x - EPS * e)) / (2 * EPS) for e in np.eye(x.size)], axis=1)


# ---------------------------------------------------------------- box projection
def test_box_projection_is_clip_with_its_jacobians():
    layer = layer_of("box_projection")
    rng = np.random.default_rng(0)
    theta, lower = 2 * rng.standard_normal(9), rng.uniform(-1.5, -0.5, 9)
    u = lower + rng.uniform(0.5, 2.0, 9)
    out = layer(theta=theta, l=lower, u=u)
    x = np.clip(theta, lower, u)
    np.testing.assert_allclose(out["x"], x, atol=1e-12)
    assert 0 < out["s_lo"].sum() < 9 and 0 < out["s_hi"].sum() < 9   # both bounds active somewhere
    assert bool(out["regular"]) and float(out["cond"]) < 10
    free = ((x > lower) & (x < u)).astype(float)
    args = {"theta": theta, "l": lower, "u": u}
    for name, expected in [("theta", np.diag(free)), ("l", np.diag(x == lower).astype(float)),
                           ("u", np.diag(x == u).astype(float))]:
        def f(v, name=name):
            return layer(**{**args, name: v})["x"]
        J = jax.jacfwd(f)(jnp.asarray(args[name]))
        np.testing.assert_array_equal(J, expected)
        np.testing.assert_array_equal(jax.jacrev(f)(jnp.asarray(args[name])), expected)
        np.testing.assert_allclose(J, central(lambda v, name=name: np.clip(*[v if k == name else args[k]
                                                                            for k in ("theta", "l", "u")]),
                                              args[name]), atol=1e-8)


def test_box_projection_flags_an_entry_at_both_bounds_alone_in_a_batch():
    layer = layer_of("box_projection")
    theta = jnp.array([[2.0, 0.1, -3.0]] * 3)
    lower = jnp.array([[-1.0, -1.0, -1.0], [-1.0, 0.5, -1.0], [-1.0, -1.0, -1.0]])
    u = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.5, 1.0], [1.0, 1.0, 1.0]])   # element 1: l = u at entry 1
    out = jax.jit(jax.vmap(lambda t, a, b: layer(theta=t, l=a, u=b)))(theta, lower, u)
    np.testing.assert_array_equal(out["regular"], [True, False, True])
    assert np.isinf(out["cond"][1]) and np.all(np.asarray(out["cond"])[[0, 2]] < 10)
    grads = jax.jit(jax.vmap(jax.grad(lambda t, a, b: layer(theta=t, l=a, u=b)["x"].sum())))(theta, lower, u)
    assert np.all(np.isnan(grads[1])) and np.all(np.isfinite(np.asarray(grads)[[0, 2]]))
    with pytest.raises(symift.MathError, match="singular or ill-conditioned"):
        layer(theta=theta[1], l=lower[1], u=u[1])


# ---------------------------------------------------------------- 1.5-entmax
def entmax15_reference(theta):
    return entmax15_solve({"theta": theta})["p"]


@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_entmax15_matches_the_threshold_formula(scale):
    layer = layer_of("entmax15")
    theta = scale * np.random.default_rng(int(scale * 10)).standard_normal(10)
    out = layer(theta=theta)
    p = entmax15_reference(theta)
    np.testing.assert_allclose(out["p"], p, atol=1e-12)
    assert bool(out["converged"]) and bool(out["regular"])
    np.testing.assert_array_equal(out["s"], (p > 0).astype(float))
    J = jax.jacfwd(lambda t: layer(theta=t)["p"])(jnp.asarray(theta))
    np.testing.assert_allclose(J, jax.jacrev(lambda t: layer(theta=t)["p"])(jnp.asarray(theta)), atol=1e-14)
    r = np.sqrt(p)
    np.testing.assert_allclose(J, np.diag(r) - np.outer(r, r) / r.sum(), atol=1e-12)
    np.testing.assert_allclose(J, central(entmax15_reference, theta), atol=1e-7)


def test_entmax15_under_jit_and_vmap():
    layer = layer_of("entmax15")
    thetas = 3 * np.random.default_rng(5).standard_normal((6, 12))
    out = jax.jit(jax.vmap(lambda t: layer(theta=t)))(thetas)
    np.testing.assert_allclose(out["p"], np.stack([entmax15_reference(t) for t in thetas]), atol=1e-12)
    assert np.all(out["regular"]) and np.all(np.abs(out["p"].sum(axis=1) - 1) < 1e-10)


# ---------------------------------------------------------------- box-constrained QP
def test_box_qp_against_active_set_enumeration():
    layer = symift.compile(symift.parse(BOX_QP, "boxqp.ift"))
    rng = np.random.default_rng(11)
    A = rng.standard_normal((5, 5))
    Q, c = A @ A.T + np.eye(5), 3 * rng.standard_normal(5)
    lower, u = -np.ones(5), np.ones(5)
    out = layer(Q=Q, c=c, l=lower, u=u)
    x = box_qp_reference(Q, c, lower, u)
    np.testing.assert_allclose(out["x"], x, atol=1e-8)
    assert 0 < out["s_lo"].sum() + out["s_hi"].sum() < 10   # some bound active
    J = jax.jacfwd(lambda v: layer(Q=Q, c=v, l=lower, u=u)["x"])(jnp.asarray(c))
    np.testing.assert_allclose(J, jax.jacrev(lambda v: layer(Q=Q, c=v, l=lower, u=u)["x"])(jnp.asarray(c)), atol=1e-10)
    np.testing.assert_allclose(J, central(lambda v: box_qp_reference(Q, v, lower, u), c), atol=1e-6)
    f = (x > lower + 1e-9) & (x < u - 1e-9)   # the reduced form: D_f (D_f Q D_f + I − D_f)⁻¹ D_f
    D = np.diag(f.astype(float))
    np.testing.assert_allclose(J, D @ np.linalg.solve(D @ Q @ D + np.eye(5) - D, D), atol=1e-10)


# ---------------------------------------------------------------- domains and scalar bounds
LML = """dim n
param theta[n]
param k > 0
var x[n] > 0
maximize dot(theta, x) + entropy(x) + entropy(1 - x)
subject to
    nu: sum(x) == k
"""


def lml_reference(theta, k):
    from scipy.optimize import brentq
    nu = brentq(lambda v: (1 / (1 + np.exp(v - theta))).sum() - k, -50, 50, xtol=1e-15)
    return 1 / (1 + np.exp(nu - theta))


def test_lml_binary_entropy_keeps_the_domain_and_solves_by_the_dual():
    """Binary entropy is strictly convex on (0, 1) only: the domain comes from log(1 − x)."""
    from symift.symbolic.derivation import Derivation
    from symift.symbolic.separable import separable_dual
    problem = symift.parse(LML, "lml.ift")
    assert separable_dual(Derivation(problem)) is not None   # not the interior point
    layer = symift.compile(problem)
    theta, k = 2 * np.random.default_rng(2).standard_normal(8), 3.0
    out = layer(theta=theta, k=k)
    np.testing.assert_allclose(out["x"], lml_reference(theta, k), atol=1e-12)
    J = jax.jacfwd(lambda t: layer(theta=t, k=k)["x"])(jnp.asarray(theta))
    np.testing.assert_allclose(J, central(lambda t: lml_reference(t, k), theta), atol=1e-7)
    w = out["x"] * (1 - out["x"])   # the hand form: diag(w) − w wᵀ / 1ᵀw
    np.testing.assert_allclose(J, np.diag(w) - np.outer(w, w) / w.sum(), atol=1e-12)


SCALAR_BOX = """param a
param b > 0
var t
minimize 0.5 * (t - a)^2 + exp(t)
subject to
    lo: t >= 0
    hi: t <= b
"""


@pytest.mark.parametrize("a, where", [(-3.0, "lo"), (2.0, "inside"), (9.0, "hi")])
def test_scalar_variable_with_two_bounds(a, where):
    from scipy.optimize import brentq
    layer = symift.compile(symift.parse(SCALAR_BOX, "box.ift"))
    b = 1.5

    def reference(a, b):
        return float(np.clip(brentq(lambda t: t - a + np.exp(t), -20, 20, xtol=1e-15), 0.0, b))

    out = layer(a=a, b=b)
    t = reference(a, b)
    np.testing.assert_allclose(out["t"], t, atol=1e-9)
    assert {"lo": t == 0, "hi": t == b, "inside": 0 < t < b}[where]
    da = jax.grad(lambda v: layer(a=v, b=b)["t"])(a)
    db = jax.grad(lambda v: layer(a=a, b=v)["t"])(b)
    np.testing.assert_allclose(da, (reference(a + EPS, b) - reference(a - EPS, b)) / (2 * EPS), atol=1e-7)
    np.testing.assert_allclose(db, (reference(a, b + EPS) - reference(a, b - EPS)) / (2 * EPS), atol=1e-7)
