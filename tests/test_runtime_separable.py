"""The dual-reduction forward solve of separable problems (symift.symbolic.separable, symift.runtime.separable).

Each problem is checked against a reference solver written independently (closed forms, sort,
scipy root finding), its multipliers against stationarity, and its layer's gradients against
central finite differences of re-solves and against jacfwd = jacrev.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from catalogue import sparsemax_solve
from scipy.optimize import brentq

import symift
from symift.api import Derivation
from symift.symbolic.separable import separable_dual

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CAPPED = """dim n
param theta[n]
param k > 0
var z[n]
minimize 0.5 * sumsq(z - theta)     # projection onto the capped simplex
subject to
    nu: sum(z) == k
    lo: z >= 0
    hi: z <= 1
"""
WEIGHTED_ENTROPY = """dim n
param theta[n]
param a[n] > 0
var z[n] > 0
maximize dot(theta, z) + entropy(z)
subject to
    nu: dot(a, z) == 1
    lam: z >= 0
"""
SCALED_ENTROPY = """dim n
param theta[n]
param b > 0
var z[n] > 0
maximize dot(theta, z) + entropy(z)
subject to
    nu: sum(z) == b
"""
DIAGONAL_QP = """dim n
param theta[n]
param w[n] > 0
var z[n]
minimize 0.5 * dot(w, z * z) - dot(theta, z)
subject to
    nu: sum(z) == 1
"""
RELU = """dim n
param theta[n]
var z[n]
minimize 0.5 * sumsq(z - theta)
subject to
    lam: z >= 0
"""
LOG_BARRIER = """dim n
param theta[n]
var z[n] > 0
minimize dot(theta, z) - sum(log(z))
subject to
    nu: sum(z) == 1
"""


def plan_of(text):
    return separable_dual(Derivation(symift.parse(text)))


def layer_of(text):
    return symift.compile(symift.parse(text))


# ---------------------------------------------------------------- which problems reduce
def test_reduction_class_of_the_examples():
    plans = {f.stem: separable_dual(Derivation(symift.load(f))) for f in EXAMPLES.glob("*.ift")}
    assert plans["softmax"] is not None and plans["softmax"].dual is not None
    assert [b.multiplier for b in plans["sparsemax"].bounds] == ["lam"]
    assert plans["sparsemax"].dual is None                # clipped: solved by Newton on ν
    for name in ("ridge", "eqqp", "optnet_qp", "circle", "fixed_point"):
        assert plans[name] is None, name                  # the interior point / Newton is used
    assert "def dual_newton" not in symift.codegen(symift.load(EXAMPLES / "softmax.ift"))
    assert "def interior_point(" not in symift.codegen(symift.load(EXAMPLES / "sparsemax.ift"))


def test_softmax_dual_is_found_in_closed_form():
    """ν = log 1ᵀexp(θ − 1): with w = 1/(1ᵀexp(θ − 1)), sympy gives ν = −log w."""
    plan = separable_dual(Derivation(symift.load(EXAMPLES / "softmax.ift")))
    assert plan.dual == -plan.logw
    assert plan.exponent is not None and plan.inactive == ("lam",)


def test_x_of_nu_must_be_defined_everywhere():
    """z = 1/(θ + ν) is positive only for ν > −min θ: the reduction is refused, the IP is used."""
    assert plan_of(LOG_BARRIER) is None
    theta = np.array([0.3, 1.0, 2.0, -0.5])
    z = layer_of(LOG_BARRIER)(theta=theta)["z"]
    nu = brentq(lambda v: np.sum(1 / (theta + v)) - 1, -theta.min() + 1e-12, 100)
    np.testing.assert_allclose(z, 1 / (theta + nu), atol=1e-8)


# ---------------------------------------------------------------- forward values
def test_softmax_forward_does_not_overflow():
    layer = symift.compile(symift.load(EXAMPLES / "softmax.ift"))
    theta = jnp.asarray([1000.0, 999.0, -1000.0, 0.0, 998.5])
    out = layer(theta=theta)
    np.testing.assert_allclose(out["z"], jax.nn.softmax(theta), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out["nu"], jax.nn.logsumexp(theta) - 1, rtol=1e-14)
    assert bool(out["converged"]) and float(out["residual"]) < 1e-10
    np.testing.assert_array_equal(out["lam"], 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_sparsemax_forward_matches_sort(seed):
    rng = np.random.default_rng(seed)
    n = [1, 2, 7, 50, 1000, 3][seed]
    theta = rng.standard_normal(n) * [1, 5, 0.1, 3, 1, 1][seed]
    if seed == 5:
        theta = np.array([0.5, 0.5, 0.5])               # ties
    out = symift.compile(symift.load(EXAMPLES / "sparsemax.ift"))(theta=theta)
    z = sparsemax_solve({"theta": theta})["z"]
    np.testing.assert_allclose(out["z"], z, atol=1e-12)
    # stationarity z − θ + ν − λ = 0 with λ ≥ 0 and λ∘z = 0; s marks the support
    np.testing.assert_allclose(out["z"] - theta + out["nu"] - out["lam"], 0, atol=1e-12)
    assert np.all(out["lam"] >= 0) and np.all(out["lam"] * out["z"] == 0)
    np.testing.assert_array_equal(out["s"], (z > 0).astype(float))


def capped_reference(theta, k):
    nu = brentq(lambda v: np.clip(theta - v, 0, 1).sum() - k, theta.min() - 2, theta.max() + 2,
                xtol=1e-15)
    return np.clip(theta - nu, 0, 1)


def test_capped_simplex_two_bounds():
    rng = np.random.default_rng(7)
    theta, k = 2 * rng.standard_normal(12), 3.0
    layer = layer_of(CAPPED)
    out = layer(theta=theta, k=k)
    z = capped_reference(theta, k)
    np.testing.assert_allclose(out["z"], z, atol=1e-11)
    assert np.sum(out["lo"] > 0) > 0 and np.sum(out["hi"] > 0) > 0     # both bounds active somewhere
    np.testing.assert_allclose(out["z"] - theta + out["nu"] - out["lo"] + out["hi"], 0, atol=1e-11)
    # gradients: jacfwd = jacrev = central differences of the reference re-solve
    def f(t):
        return layer(theta=t, k=k)["z"]

    J = jax.jacfwd(f)(jnp.asarray(theta))
    np.testing.assert_allclose(J, jax.jacrev(f)(jnp.asarray(theta)), atol=1e-12)
    eps = 1e-6
    fd = np.stack([(capped_reference(theta + eps * e, k) - capped_reference(theta - eps * e, k)) / (2 * eps)
                   for e in np.eye(len(theta))], axis=1)
    np.testing.assert_allclose(J, fd, atol=1e-6)
    dk = jax.jacfwd(lambda kk: layer(theta=theta, k=kk)["z"])(k)
    np.testing.assert_allclose(dk, (capped_reference(theta, k + eps) - capped_reference(theta, k - eps)) / (2 * eps),
                               atol=1e-6)


def test_weighted_entropy_newton_on_a_smooth_dual():
    """Σ aᵢ exp(θᵢ − 1 − aᵢν) = 1: ν is not multiplicative, the safeguarded Newton solves it."""
    rng = np.random.default_rng(8)
    theta, a = rng.standard_normal(9), rng.uniform(0.5, 2.0, 9)
    plan = plan_of(WEIGHTED_ENTROPY)
    assert plan is not None and plan.dual is None
    layer = layer_of(WEIGHTED_ENTROPY)
    out = layer(theta=theta, a=a)
    nu = brentq(lambda v: a @ np.exp(theta - 1 - a * v) - 1, -50, 50, xtol=1e-15)
    np.testing.assert_allclose(out["nu"], nu, atol=1e-10)
    np.testing.assert_allclose(out["z"], np.exp(theta - 1 - a * nu), atol=1e-10)
    def f(t, aa):
        return layer(theta=t, a=aa)["z"]

    for arg in (0, 1):
        J = jax.jacfwd(f, argnums=arg)(theta, a)
        np.testing.assert_allclose(J, jax.jacrev(f, argnums=arg)(theta, a), atol=1e-12)
        eps, base = 1e-6, [theta, a]
        cols = []
        for e in np.eye(9):
            plus, minus = list(base), list(base)
            plus[arg], minus[arg] = base[arg] + eps * e, base[arg] - eps * e
            cols.append((np.asarray(f(*plus)) - np.asarray(f(*minus))) / (2 * eps))
        np.testing.assert_allclose(J, np.stack(cols, axis=1), atol=1e-7)


def test_scaled_simplex_closed_form_uses_the_right_hand_side():
    theta = np.array([0.2, -1.0, 3.0])
    out = layer_of(SCALED_ENTROPY)(theta=theta, b=2.5)
    np.testing.assert_allclose(out["z"], 2.5 * np.exp(theta) / np.exp(theta).sum(), rtol=1e-13)
    with pytest.raises(symift.SymiftError):   # b ≤ 0 has no solution: log(−h(0)) is NaN → flagged
        layer_of(SCALED_ENTROPY)(theta=theta, b=-1.0)


def test_diagonal_qp_and_relu():
    rng = np.random.default_rng(9)
    theta, w = rng.standard_normal(6), rng.uniform(0.5, 3.0, 6)
    out = layer_of(DIAGONAL_QP)(theta=theta, w=w)
    nu = (np.sum(theta / w) - 1) / np.sum(1 / w)
    np.testing.assert_allclose(out["z"], (theta - nu) / w, atol=1e-12)
    relu = layer_of(RELU)
    out = relu(theta=theta)
    np.testing.assert_allclose(out["z"], np.maximum(theta, 0), atol=0)
    J = jax.jacrev(lambda t: relu(theta=t)["z"])(jnp.asarray(theta))
    np.testing.assert_allclose(J, np.diag((theta > 0).astype(float)), atol=0)


def test_float32_and_vmap():
    layer = symift.compile(symift.load(EXAMPLES / "sparsemax.ift"))
    thetas = np.random.default_rng(10).standard_normal((16, 20)).astype(np.float32)
    out = jax.jit(jax.vmap(lambda t: layer(theta=t)))(jnp.asarray(thetas))
    assert out["z"].dtype == jnp.float32 and bool(jnp.all(out["converged"]))
    ref = np.stack([sparsemax_solve({"theta": t.astype(float)})["z"] for t in thetas])
    np.testing.assert_allclose(out["z"], ref, atol=1e-5)


# ---------------------------------------------------------------- where the dual Newton starts
SCALED_SIMPLEX = """dim n
param theta[n]
param r > 0
var z[n]
minimize 0.5 * sumsq(z - theta)
subject to
    nu: 2 * sum(z) == r
    lam: z >= 0
"""


def test_dual_newton_starts_where_one_entry_alone_meets_the_equality():
    """ν₀ = maxᵢ νᵢ with a·ψᵢ(νᵢ) = b, on the branch where ψ decreases: θ − b for sparsemax,
    θ + 4/3 − 2√b for 1.5-entmax, θ/2 − b/4 for 2·1ᵀz = b (ψ = θ − 2ν); none with an upper bound
    (the capped simplex), where one entry cannot reach b and the start need not be left of the root."""
    theta, b = (sp.Symbol(s) for s in ("theta", "b"))
    for text, expected in [((EXAMPLES / "sparsemax.ift").read_text(), lambda t, r: t - r),
                           ((EXAMPLES / "entmax15.ift").read_text(),
                            lambda t, r: t + sp.Rational(4, 3) - 2 * sp.sqrt(r)),
                           (SCALED_SIMPLEX, lambda t, r: t / 2 - r / 4)]:
        plan = plan_of(text)
        (o,) = plan.opaque                       # the stand-in for ±θᵢ
        sign = 1 if plan.opaque[o] == Derivation(symift.parse(text)).symbols["theta"] else -1
        got = plan.start.subs({o: sign * theta, plan.rhs: b})   # b: the right-hand side, r for the last
        assert sp.simplify(got - expected(theta, b)) == 0, (got, text[:40])
    assert plan_of(CAPPED).start is None


@pytest.mark.parametrize("name,n", [("sparsemax", 100_000), ("entmax15", 100_000), ("sparsemax", 7)])
def test_the_start_is_left_of_the_root_and_newton_takes_few_steps(name, n):
    """h(ν₀) ≥ 0, and from there the safeguarded Newton needs a handful of steps where ν = 0
    needs 13 (sparsemax, n = 10⁵); the solution is the sort-based one either way."""
    from symift.runtime.dual_newton import dual_newton
    sep = symift.compile(symift.load(EXAMPLES / f"{name}.ift")).spec.separable
    theta = jnp.asarray(np.random.default_rng(3).normal(size=n))

    def h(nu):
        u, lo, hi = sep.primal(theta=theta, nu=nu)
        return sep.dual_equality(theta=theta, **{sep.variable: jnp.clip(u, lo, hi)})
    nu0 = sep.start(theta=theta)
    assert float(h(nu0)) >= 0
    nu, r, steps = jax.jit(lambda v: dual_newton(h, v, 1e-9, 100))(nu0)
    _, _, cold = jax.jit(lambda v: dual_newton(h, v, 1e-9, 100))(jnp.zeros(()))
    # sparsemax: 4 steps against 13 from ν = 0; entmax (smooth pieces, quadratic convergence): 8 against 15
    most = {"sparsemax": 5, "entmax15": 8}[name]
    assert float(r) < 1e-12 and int(steps) <= most and (n < 1000 or int(cold) >= 1.8 * int(steps)), (steps, cold)
    if name == "sparsemax":
        np.testing.assert_allclose(jnp.maximum(theta - nu, 0), sparsemax_solve({"theta": np.asarray(theta)})["z"],
                                   atol=1e-12)


def test_scaled_simplex_solves_from_its_start():
    """2·1ᵀz = r: the start θ/2 − r/4 feeds the same Newton; the answer is the projection onto 1ᵀz = r/2."""
    theta = np.random.default_rng(4).normal(size=40) * 2
    out = layer_of(SCALED_SIMPLEX)(theta=theta, r=3.0)
    t = brentq(lambda v: np.maximum(theta - v, 0).sum() - 1.5, theta.min() - 2, theta.max() + 2, xtol=1e-15)
    np.testing.assert_allclose(out["z"], np.maximum(theta - t, 0), atol=1e-12)
    assert bool(out["regular"]) and float(out["residual"]) < 1e-12


@pytest.mark.parametrize("name,data", [("sparsemax", "normal"), ("entmax15", "normal"),
                                       ("sparsemax", "uniform"), ("sparsemax", "ties")])
def test_screened_newton_equals_newton_on_all_of_x(name, data):
    """From 32768 entries the dual Newton runs on the windows that can move (runtime.separable.
    _screened_newton): the root is the one the Newton on all of x finds, whether the live windows
    fit the budget at the start (sparsemax of normal data), after a round on the strongest
    windows (1.5-entmax: ~800 live windows at ν₀), or never (uniform data in [0, 1]: all
    live, so the Newton on all of x runs; ties: every entry equal, the support is all of x)."""
    from symift.runtime import separable as runtime_sep
    from symift.runtime.dual_newton import dual_newton
    sep = symift.compile(symift.load(EXAMPLES / f"{name}.ift")).spec.separable
    rng = np.random.default_rng(11)
    n = 50_000
    theta = {"normal": lambda: rng.normal(size=(3, n)), "uniform": lambda: rng.uniform(size=(3, n)),
             "ties": lambda: np.full((3, n), 0.25)}[data]()
    theta = jnp.asarray(theta)

    def h_of(t):
        def h(nu):
            u, lo, hi = sep.primal(theta=t, nu=nu)
            return sep.dual_equality(theta=t, **{sep.variable: jnp.clip(u, lo, hi)})
        return h

    def screened(t):
        return runtime_sep._screened_newton(sep, {"theta": t}, h_of(t), sep.start(theta=t), 1e-10, 100)

    def whole(t):
        return dual_newton(h_of(t), sep.start(theta=t), 1e-10, 100)[0]
    got, want = jax.jit(jax.vmap(screened))(theta), jax.jit(jax.vmap(whole))(theta)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.all(np.abs(jax.vmap(lambda t, v: h_of(t)(v))(theta, got)) < 1e-10)  # the tol given
    if name == "sparsemax":   # against the sort-based projection, one problem
        np.testing.assert_allclose(jnp.maximum(theta[0] - got[0], 0),
                                   sparsemax_solve({"theta": np.asarray(theta[0])})["z"], atol=1e-12)
    # the layer takes the screened path at this size, and its status says the solve converged
    out = jax.vmap(lambda t: symift.compile(symift.load(EXAMPLES / f"{name}.ift"))(theta=t))(theta)
    assert bool(jnp.all(out["converged"])) and float(jnp.max(jnp.abs(out["nu"] - want))) < 1e-12


def test_screening_does_not_apply_below_its_size_or_to_other_shapes():
    """Below SCREEN_FROM entries, or with a parameter that is not elementwise, the Newton on all of
    x runs (None: no screening)."""
    from symift.runtime import separable as runtime_sep
    sep = symift.compile(symift.load(EXAMPLES / "sparsemax.ift")).spec.separable
    small = jnp.zeros(runtime_sep.SCREEN_FROM - 1)
    assert runtime_sep._screened_newton(sep, {"theta": small}, None, 0.0, 1e-9, 10) is None
    matrix = jnp.zeros((runtime_sep.SCREEN_FROM, 2))
    assert runtime_sep._screened_newton(sep, {"theta": matrix}, None, 0.0, 1e-9, 10) is None
