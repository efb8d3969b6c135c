"""The runtime on its own: hand-written ProblemSpecs, no sympy, no generated code.

A small QP  min ½xᵀQx + qᵀx  s.t.  x ≥ 0  (x ∈ ℝ³) written out by hand exercises the interior
point, the status checks, the implicit backward and the layer; the condition estimator is
checked against numpy's exact 1-norm condition number.
"""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from symift import runtime
from symift.runtime import ProblemSpec, kkt_solve, make_layer, norm1_estimate
from symift.runtime.status import lu_condition


def qp_spec(**extra) -> ProblemSpec:
    """min ½xᵀQx + qᵀx s.t. lam: -x <= 0, by hand (F = (Qx + q − λ, λ∘(−x)))."""
    def residual(*, Q, q, x, lam):
        return {"stationarity in x": Q @ x + q - lam, "complementary slackness (lam)": lam * (-x)}

    def equations(*, Q, q, x, lam):
        return (Q @ x + q - lam,)

    def constraints(*, Q, q, x):
        return (-x,)

    def shapes(*, Q, q):
        return {"x": q.shape, "lam": q.shape}

    fields = dict(filename="qp", params=("Q", "q"), variables=("x",), equalities=(), inequalities=("lam",),
                  indicator_of={"lam": "s"}, declared_inactive=(), positive=(), stationarity=("stationarity in x",),
                  symmetric=("Q",), why_no_closed_form="no closed form written", cg_applicable=False,
                  forward=kkt_solve, residual=residual, equations=equations, constraints=constraints, shapes=shapes)
    fields.update(extra)
    return ProblemSpec(**fields)


Q = jnp.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.5]])


def reference(q):
    """The QP on its active set {x₁ = 0} (q chosen so that it is that set)."""
    free = np.array([True, False, True])
    x = np.zeros(3)
    x[free] = np.linalg.solve(np.asarray(Q)[np.ix_(free, free)], -np.asarray(q)[free])
    return x


def test_interior_point_solves_the_hand_written_qp():
    q = jnp.array([-1.0, 2.0, -0.5])
    unknowns, indicators, res = kkt_solve(qp_spec(), {"Q": Q, "q": q}, 1e-9, 100)
    np.testing.assert_allclose(unknowns["x"], reference(q), atol=1e-9)
    np.testing.assert_array_equal(indicators["s"], [1.0, 0.0, 1.0])
    assert float(res) < 1e-9


def test_layer_status_and_lu_backward_against_finite_differences():
    layer = make_layer(qp_spec())
    q = jnp.array([-1.0, 2.0, -0.5])
    out = layer((Q, q))
    assert bool(out["converged"]) and bool(out["regular"])
    # no closed form: the condition is the LU's of ∂F/∂x, the backward's own system
    assert float(out["margin"]) > 0.1 and 1.0 <= float(out["cond"]) < 1e3
    J = jax.jacfwd(lambda q: layer((Q, q))["x"])(q)
    h = 1e-6
    fd = np.stack([(reference(q + h * e) - reference(q - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(J, fd, atol=1e-7)
    np.testing.assert_allclose(jax.jacrev(lambda q: layer((Q, q))["x"])(q), J, atol=1e-10)


def test_degenerate_point_is_flagged_per_batch_element_and_raises_under_eager_grad():
    """q₂ = −(Q₂₁x₁ + Q₂₃x₃) puts x₂ = 0 with λ₂ = 0: strict complementarity fails there, and only there."""
    layer = make_layer(qp_spec())
    degenerate = -(0.5 * 0.5 + 0.2 / 3)  # x₁ = 1/2, x₃ = 1/3 on the free set
    qs = jnp.array([[-1.0, 2.0, -0.5], [-1.0, degenerate, -0.5], [1.0, 1.0, -2.0]])
    out = jax.vmap(lambda q: layer((Q, q)))(qs)
    np.testing.assert_array_equal(out["converged"], [True, True, True])
    np.testing.assert_array_equal(out["regular"], [True, False, True])
    g = jax.vmap(jax.grad(lambda q: layer((Q, q))["x"][0]))(qs)
    assert np.all(np.isfinite(g[0])) and np.all(np.isnan(g[1])) and np.all(np.isfinite(g[2]))
    with pytest.raises(runtime.SolverError, match="strict complementarity fails for lam\\[1\\]"):
        jax.grad(lambda q: layer((Q, q))["x"][0])(qs[1])
    kept = make_layer(qp_spec())
    g = jax.grad(lambda q: kept((Q, q), strict=False)["x"][0])(qs[1])
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_norm_and_condition_estimates_are_within_a_small_factor_of_the_exact_ones(n):
    rng = np.random.default_rng(n)
    for scale in (1.0, 1e-6, 1e6):
        U, _ = np.linalg.qr(rng.standard_normal((n, n)))
        V, _ = np.linalg.qr(rng.standard_normal((n, n)))
        A = U @ np.diag(np.logspace(0, 8 if n > 1 else 0, n)) @ V.T * scale
        A = np.diag(rng.uniform(0.1, 10, n)) @ A  # rows scaled: Skeel's number does not see it
        est = float(norm1_estimate(lambda v, A=A: A @ v, lambda v, A=A: A.T @ v, n, jnp.float64))
        exact = np.abs(A).sum(axis=0).max()
        assert exact / 3 <= est <= exact * (1 + 1e-12)
        lu = jax.scipy.linalg.lu_factor(jnp.asarray(A))
        skeel = float(lu_condition(lu, np.abs(A).sum(axis=1)))
        true = np.max(np.abs(np.linalg.inv(A)) @ np.abs(A) @ np.ones(n))
        assert true / 10 <= skeel <= true * (1 + 1e-8)


def test_singular_matrix_has_an_infinite_or_huge_condition_estimate():
    A = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    lu = jax.scipy.linalg.lu_factor(jnp.asarray(A))
    assert float(lu_condition(lu, np.abs(A).sum(axis=1))) > float(runtime.cond_limit(jnp.float64))


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 100_003])
def test_status_reductions_are_exact_at_every_size(size):
    """max_abs / min_of / max_of reduce large arrays in two stages (windows of 32, padded): the
    result is the plain reduction's, NaN propagates, and float32 stays float32."""
    from symift.runtime.spec import max_abs, max_of, min_of
    v = jnp.asarray(np.random.default_rng(size).normal(size=size))
    assert float(max_abs([v])) == (float(jnp.max(jnp.abs(v))) if size else 0.0)
    assert float(min_of([v, 2 * v])) == (float(jnp.min(jnp.minimum(v, 2 * v))) if size else np.inf)
    if size:
        assert float(max_of(v)) == float(jnp.max(v))
        assert np.isnan(float(max_abs([v.at[size // 2].set(jnp.nan)])))
        assert np.isnan(float(min_of([v.at[size - 1].set(jnp.nan)])))
        assert max_abs([v.astype(jnp.float32)]).dtype == jnp.float32
        batch = jnp.stack([v, -3 * v])
        np.testing.assert_array_equal(jax.vmap(lambda r: max_abs([r]))(batch), jnp.max(jnp.abs(batch), axis=1))


def test_a_large_status_reduction_writes_no_full_size_temporary():
    """XLA:CPU writes out the expression a long reduction reduces (its reduce-window chain does not
    fuse it), and each such temporary is fresh, page-faulted memory on every call: the status of
    a large problem cost ~10× its solution. In two stages the expression fuses into the first one."""
    from symift.runtime.spec import max_abs, min_of
    x = jnp.zeros((32, 100_000))

    def status(t):
        return max_abs([jnp.clip(t, -0.5, 0.5) - t, jnp.exp(t) - 1]), min_of([jnp.maximum(t, -t * t)])
    text = jax.jit(jax.vmap(status)).lower(x).compile().as_text()
    entry = text[text.find("ENTRY"):]
    assert not re.search(r"= f64\[32,100000\]\{1,0\} fusion", entry), entry


@pytest.mark.parametrize("size", [5, 32767, 32768, 100_003])
def test_dot_products_of_long_vectors_sum_in_two_stages(size):
    """row / ones_row of generated code: the plain sum up to rounding, and from 32768 entries no
    full-size temporary of the product under vmap."""
    from symift.runtime import ones_row, row
    rng = np.random.default_rng(size)
    u, v = (jnp.asarray(rng.normal(size=size)) for _ in range(2))
    np.testing.assert_allclose(row(u, v), jnp.sum(u * v), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ones_row(v), jnp.sum(v), rtol=1e-12, atol=1e-12)
    text = jax.jit(jax.vmap(lambda a: row(jnp.exp(a), a))).lower(jnp.zeros((8, size))).compile().as_text()
    temporary = re.search(rf"= f64\[8,{size}\]\{{1,0\}} fusion", text[text.find("ENTRY"):])
    assert temporary is None or size < 32768


def test_reduce_many_reads_every_request_in_one_pass():
    """Several status reductions of one shape (a residual, a margin, a product, a sum) are one
    variadic reduction: the same values as separate reductions, NaN kept, and in the compiled
    HLO one first-stage pass over the (32, 10⁵) batch instead of one per request."""
    from symift.runtime.spec import reduce_many
    rng = np.random.default_rng(7)
    t = jnp.asarray(rng.normal(size=(32, 100_000)))

    def requests(r):
        return [("max_abs", [r - jnp.clip(r, -0.5, 0.5), 2 * r]), ("min", [jnp.maximum(r, -r * r)]),
                ("max", [jnp.sin(r)]), ("sum", [r * r, r])]
    got = jax.jit(jax.vmap(lambda r: jnp.stack(reduce_many(requests(r)))))(t)
    want = jnp.stack([jnp.max(jnp.maximum(jnp.abs(t - jnp.clip(t, -0.5, 0.5)), jnp.abs(2 * t)), axis=1),
                      jnp.min(jnp.maximum(t, -t * t), axis=1), jnp.max(jnp.sin(t), axis=1),
                      jnp.sum(t * t + t, axis=1)], axis=1)
    np.testing.assert_array_equal(got[:, :3], want[:, :3])
    np.testing.assert_allclose(got[:, 3], want[:, 3], rtol=1e-12)
    nan = jax.vmap(lambda r: jnp.stack(reduce_many(requests(r))))(t.at[3, 17].set(jnp.nan))
    assert np.isnan(nan[3, :3]).all() and np.isfinite(nan[4]).all()
    # empty requests: 0 for max |·| and sums, +inf for min (or the given value)
    assert [float(v) for v in reduce_many([("max_abs", []), ("min", []), ("sum", [])])] == [0.0, np.inf, 0.0]
    text = jax.jit(jax.vmap(lambda r: jnp.stack(reduce_many(requests(r))))).lower(t).compile().as_text()
    entry = text[text.find("ENTRY"):]
    # the passes over the batch: fusions whose output is the first stage's (32, 3125) (a tuple when variadic)
    firsts = re.findall(r"= \(?f64\[32,3125\][^\n]* fusion\(", entry)
    assert len(firsts) == 1, firsts
    assert not re.search(r"= f64\[32,100000\]\{1,0\} fusion", entry)


def test_reduce_many_single_sums_stay_differentiable():
    """A lone sum (a generated dot product, also inside the dual Newton's jvp) is jax's reduce_sum,
    which it differentiates in both modes."""
    from symift.runtime.spec import sum_of
    v = jnp.asarray(np.random.default_rng(8).normal(size=40_000))
    np.testing.assert_allclose(jax.grad(lambda a: sum_of(a * a))(v), 2 * v, rtol=1e-14)
    tangent = jax.jvp(lambda a: sum_of(jnp.sin(a)), (v,), (v,))[1]
    np.testing.assert_allclose(tangent, jnp.sum(jnp.cos(v) * v), rtol=1e-12)

