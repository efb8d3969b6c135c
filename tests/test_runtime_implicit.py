"""The backward without a closed form (a linear solve on ∂F/∂x) and user solvers (solver=).

Every example is differentiated through the LU and GMRES backward and compared with finite
differences of an independent re-solve and with the derived closed form; failures of the linear
solve and of user solvers must be reported (eager error, flag under jit), never quiet numbers.
"""
from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import optnet_case, sparsemax_solve, spd
from test_emit_layer import CASES, EXAMPLES, IDS, fd, layer_of

import symift
from symift.runtime import STATUS_KEYS

#: the projection onto [0, 1] with the upper bound written x² ≤ 1: the derivation cannot see that
#: the two bounds exclude each other (it can for x <= 1, see tests/test_symbolic_bounds.py), so the
#: block elimination finds no pivot, while the KKT system at a solution is nonsingular
BOX = """
dim n
param theta[n]
var x[n]
minimize 0.5 * sumsq(x - theta)
subject to
    lo: x >= 0
    hi: x^2 <= 1
"""
_LAYERS: dict = {}


def layer(name, **options):
    key = (name, tuple(sorted(options.items())))
    if key not in _LAYERS:
        if name == "box":
            _LAYERS[key] = symift.compile(symift.parse(BOX, "box.ift"), **options)
        else:
            _LAYERS[key] = layer_of(name, **options)  # the derivation shared with the other modules
    return _LAYERS[key]


def direction(name, param, shape):
    """A random direction for a matrix parameter, symmetric where the parameter is declared so.

    The closed form may use Q = Qᵀ, the residual keeps ½(Q + Qᵀ): they agree on such directions.
    """
    D = np.random.default_rng(1).standard_normal(shape)
    decl = next(p for p in layer_of(name).derivation.problem.params if p.name == param)
    return (D + D.T) / 2 if {"symmetric", "pd", "psd"} & set(decl.attributes) else D


def fd_along(ref, params, var, name, D, h=1e-6):
    plus, minus = dict(params, **{name: params[name] + h * D}), dict(params, **{name: params[name] - h * D})
    return (np.asarray(ref(plus)[var]) - np.asarray(ref(minus)[var])) / (2 * h)


# --------------------------------------------------------------------------- linear-solve backward
@pytest.mark.parametrize("method", ["lu", "gmres"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_linear_solve_backward_equals_closed_form_and_fd(case, method):
    name, params, ref, var, pnames = case
    lay = layer(name, backward=method)

    def f(a):
        return lay(**dict(params, **a))[var]

    args = {p: jnp.asarray(params[p], float) for p in pnames}
    Jf, Jr = jax.jit(lambda a: (jax.jacfwd(f)(a), jax.jacrev(f)(a)))(args)
    sol = lay(**params)
    values = {k: v for k, v in sol.items() if k not in STATUS_KEYS} | params
    module = layer_of(name).module  # the closed forms, jacobian_<var>_<param>
    for pn in pnames:
        msg = f"{name} {method} d{var}/d{pn}"
        np.testing.assert_allclose(Jr[pn], Jf[pn], atol=1e-9, err_msg=f"rev vs fwd {msg}")
        closed = getattr(module, f"jacobian_{var}_{pn}")
        if np.ndim(params[pn]) == 2:  # matrix parameter: directional derivatives
            D = direction(name, pn, np.shape(params[pn]))
            J, F = np.tensordot(Jf[pn], D, axes=2), fd_along(ref, params, var, pn, D)
            C = closed(**values, **{"d" + pn: D})
        else:
            J, F = Jf[pn], fd(ref, params, var, pn).reshape(np.shape(Jf[pn]))
            C = np.reshape(closed(**values), np.shape(J))
        np.testing.assert_allclose(J, F, atol=2e-7, err_msg=f"vs FD {msg}")
        np.testing.assert_allclose(J, C, atol=1e-8, err_msg=f"vs closed form {msg}")


def test_bicgstab_and_vmap_jit():
    name, params, _, var, _ = next(c for c in CASES if c[0] == "sparsemax")
    lay, closed = layer(name, backward="bicgstab"), layer_of(name)
    thetas = jnp.stack([params["theta"], params["theta"][::-1] * 0.5])

    def jac(lay):
        return jax.jit(jax.vmap(jax.jacrev(lambda t: lay(theta=t)[var])))(thetas)
    np.testing.assert_allclose(jac(lay), jac(closed), atol=1e-8)


def test_cg_only_for_unconstrained_minimization():
    name, params, _, var, _ = next(c for c in CASES if c[0] == "ridge")
    lay = layer(name, backward="cg")
    J = jax.jacrev(lambda y: lay(**dict(params, y=y))[var])(jnp.asarray(params["y"]))
    J0 = jax.jacrev(lambda y: layer_of(name)(**dict(params, y=y))[var])(jnp.asarray(params["y"]))
    np.testing.assert_allclose(J, J0, atol=1e-8)
    for other in ("sparsemax", "eqqp", "circle"):  # KKT matrices are indefinite, root Jacobians nonsymmetric
        with pytest.raises(symift.UnsupportedError, match="symmetric positive definite"):
            layer(other, backward="cg")


def test_auto_falls_back_to_a_linear_solve_without_closed_form():
    """Bounds the elimination cannot pair: no pivot found, the KKT system is still nonsingular."""
    d = symift.derive(symift.parse(BOX, "box.ift"))
    with pytest.raises(symift.MathError):
        d.jacobian("x", "theta")
    lay = layer("box")
    assert not lay.spec.closed_form and "def _tangents" not in lay.source
    theta = jnp.asarray([-0.5, 0.3, 0.7, 1.4, 0.1])
    expected = np.diag(((theta > 0) & (theta < 1)).astype(float))
    np.testing.assert_allclose(jax.jacfwd(lambda t: lay(theta=t)["x"])(theta), expected, atol=1e-10)
    np.testing.assert_allclose(jax.jacrev(lambda t: lay(theta=t)["x"])(theta), expected, atol=1e-10)
    with pytest.raises(symift.UnsupportedError, match="no closed-form Jacobian"):
        symift.compile(symift.parse(BOX, "box.ift"), backward="closed_form")


def test_linear_solve_backward_flags_an_infinite_kkt_jacobian():
    """1.5-entmax at a sparse solution: ∂F/∂p holds p^-1/2 = inf where p = 0; the closed form (the
    default) is exact there, the LU backward raises eagerly and gives NaN under jit."""
    lay = symift.compile(symift.load(EXAMPLES / "entmax15.ift"), backward="lu")
    theta = jnp.asarray([1.0, 2.0, 0.5, -1.0, 0.3])
    assert float(jnp.min(lay(theta=theta)["p"])) == 0.0
    with pytest.raises(symift.MathError, match="backward linear solve"):
        jax.jacfwd(lambda t: lay(theta=t)["p"])(theta)
    assert np.all(np.isnan(jax.jit(jax.jacfwd(lambda t: lay(theta=t)["p"]))(theta)))


def test_generated_module_without_closed_form_passes_ruff(tmp_path):
    pytest.importorskip("ruff")
    (tmp_path / "box.py").write_text(symift.codegen(symift.parse(BOX, "box.ift")))
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W",
                        "--ignore", "E501", str(tmp_path)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_failed_linear_solve_raises_eagerly_and_is_nan_under_jit():
    """GMRES stopped after one iteration: eager grad raises, under jit the tangents are NaN."""
    lay = layer("sparsemax", backward="gmres", backward_maxiter=1)
    theta = jnp.asarray([1.5, 0.2, -0.4, 1.1, 0.9])

    def loss(t):
        return lay(theta=t)["z"] @ jnp.arange(5.0)

    with pytest.raises(symift.MathError, match=r"backward linear solve \(gmres\) fails"):
        jax.grad(loss)(theta)
    with pytest.raises(symift.MathError, match="backward_maxiter"):
        jax.jvp(loss, (theta,), (jnp.ones(5),))
    assert np.all(np.isnan(jax.jit(jax.grad(loss))(theta)))
    assert np.isnan(jax.jit(lambda t: jax.jvp(loss, (t,), (jnp.ones(5),))[1])(theta))


def eqqp_lstsq(Q, q, A, b):
    """The equality-constrained QP by least squares on its KKT system (any rank of A)."""
    n, m = Q.shape[0], A.shape[0]
    K = jnp.block([[Q, A.T], [A, jnp.zeros((m, m))]])
    return jnp.linalg.lstsq(K, jnp.concatenate([-q, b]))[0][:n]


def test_singular_kkt_jacobian_in_the_backward_is_reported():
    """Duplicated equality rows: the solution is fine, ∂F/∂x is singular (LICQ fails)."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal(4)
    params = {"Q": spd(rng, 4), "q": rng.standard_normal(4), "A": np.stack([a, a]), "b": np.array([1.0, 1.0])}
    lay = layer("eqqp", solver=eqqp_lstsq, backward="lu")
    out = lay(**params)
    assert bool(out["converged"])

    def loss(q):
        return jnp.sum(lay(**dict(params, q=q))["z"])

    with pytest.raises(symift.MathError, match="singular"):
        jax.grad(loss)(jnp.asarray(params["q"]))
    assert np.all(np.isnan(jax.jit(jax.grad(loss))(jnp.asarray(params["q"]))))


# --------------------------------------------------------------------------- user solvers
def sparsemax_sort(theta):
    """Sparsemax by sorting (Martins & Astudillo 2016), in JAX."""
    u = jnp.sort(theta)[::-1]
    k = jnp.arange(1, theta.size + 1)
    css = jnp.cumsum(u)
    rho = jnp.sum(u - (css - 1) / k > 0)
    tau = (css[rho - 1] - 1) / rho
    return jnp.maximum(theta - tau, 0.0)


def admm_qp(Q, q, G, h, A, b, iters=3000, rho=1.0):
    """OSQP-style ADMM on l ≤ Cz ≤ u (C = [A; G]), then a polish on the estimated active set."""
    n, m, p = Q.shape[0], A.shape[0], G.shape[0]
    C = jnp.vstack([A, G])
    lo, up = jnp.concatenate([b, jnp.full(p, -jnp.inf)]), jnp.concatenate([b, h])
    chol = jax.scipy.linalg.cho_factor(Q + 1e-6 * jnp.eye(n) + rho * C.T @ C)

    def step(state, _):
        z, w, y = state
        z = jax.scipy.linalg.cho_solve(chol, 1e-6 * z - q + C.T @ (rho * w - y))
        w_new = jnp.clip(C @ z + y / rho, lo, up)
        return (z, w_new, y + rho * (C @ z - w_new)), None

    (z, _, y), _ = jax.lax.scan(step, (jnp.zeros(n), jnp.zeros(m + p), jnp.zeros(m + p)), None, iters)
    a = (y[m:] > 1e-6).astype(z.dtype)  # active inequalities; inactive rows pin λᵢ = 0
    K = jnp.block([[Q, A.T, G.T * a], [A, jnp.zeros((m, m + p))],
                   [a[:, None] * G, jnp.zeros((p, m)), jnp.diag(1 - a)]])
    x = jnp.linalg.solve(K, jnp.concatenate([-q, b, a * h]))
    return {"z": x[:n], "lam": x[n + m:]}


def _gradients_agree(lay, name, params, var, pnames, atol=1e-8):
    """jacfwd and jacrev through lay equal the built-in layer's (its closed forms, at its solution)."""
    def f(a):
        return lay(**dict(params, **a))[var]

    args = {p: jnp.asarray(params[p], float) for p in pnames}
    Jf, Jr = jax.jit(lambda a: (jax.jacfwd(f)(a), jax.jacrev(f)(a)))(args)
    builtin = layer_of(name)
    values = {k: v for k, v in builtin(**params).items() if k not in STATUS_KEYS} | params
    for pn in pnames:
        J0 = np.reshape(getattr(builtin.module, f"jacobian_{var}_{pn}")(**values), np.shape(Jf[pn]))
        np.testing.assert_allclose(Jf[pn], J0, atol=atol, err_msg=f"jacfwd d{var}/d{pn}")
        np.testing.assert_allclose(Jr[pn], J0, atol=atol, err_msg=f"jacrev d{var}/d{pn}")


def test_softmax_solver_recovers_duals_and_gradients():
    params = {"theta": np.random.default_rng(0).standard_normal(5)}
    lay, ref = layer("softmax", solver=jax.nn.softmax), layer_of("softmax")  # called positionally
    out, expected = lay(**params), ref(**params)
    for k in ("z", "nu", "lam"):
        np.testing.assert_allclose(out[k], expected[k], atol=1e-9, err_msg=k)
    assert bool(out["converged"]) and float(out["residual"]) < 1e-12
    _gradients_agree(lay, "softmax", params, "z", ["theta"])
    _gradients_agree(layer("softmax", solver=jax.nn.softmax, backward="lu"), "softmax", params, "z", ["theta"])


def test_sparsemax_sort_solver_sets_indicators():
    params = {"theta": np.asarray([1.5, 0.2, -0.4, 1.1, 0.9])}
    lay, ref = layer("sparsemax", solver=sparsemax_sort), layer_of("sparsemax")
    out, expected = lay(**params), ref(**params)
    for k in ("z", "nu", "lam", "s"):
        np.testing.assert_allclose(out[k], expected[k], atol=1e-9, err_msg=k)
    _gradients_agree(lay, "sparsemax", params, "z", ["theta"])
    batched = jax.vmap(lambda t: lay(theta=t)["z"])(jnp.stack([params["theta"], -params["theta"]]))
    np.testing.assert_allclose(batched[1], sparsemax_solve({"theta": -params["theta"]})["z"], atol=1e-12)


def test_qp_solver_with_partial_duals():
    params, _, _, _ = optnet_case(np.random.default_rng(7), 5)
    lay, ref = layer("optnet_qp", solver=admm_qp), layer_of("optnet_qp")
    out, expected = lay(**params), ref(**params)
    for k in ("z", "nu", "lam", "s"):
        np.testing.assert_allclose(out[k], expected[k], atol=1e-8, err_msg=k)
    _gradients_agree(lay, "optnet_qp", params, "z", ["q", "h"], atol=1e-7)


def test_numpy_solver_through_pure_callback():
    params = {"theta": np.asarray([0.3, -1.2, 0.8, 0.75])}
    lay, ref = layer("sparsemax", solver=sparsemax_solve_kw, callback=True), layer_of("sparsemax")
    np.testing.assert_allclose(lay(**params)["lam"], ref(**params)["lam"], atol=1e-9)
    g = jax.jit(jax.grad(lambda t: lay(theta=t)["z"] @ jnp.arange(4.0)))(jnp.asarray(params["theta"]))
    g0 = jax.grad(lambda t: ref(theta=t)["z"] @ jnp.arange(4.0))(jnp.asarray(params["theta"]))
    np.testing.assert_allclose(g, g0, atol=1e-9)


def sparsemax_solve_kw(theta):
    return sparsemax_solve({"theta": np.asarray(theta)})


SCALARS = """
dim n
param theta[n]
param c
var x[n]
var t
minimize 0.5 * sumsq(x - theta) + t^2 - c * t
subject to
    nu: sum(x) == t
"""


def scalars_solver(theta, c):
    """Closed-form solution: x = θ − ν, t = (c + ν)/2 with ν = (1ᵀθ − c/2)/(n + ½)."""
    nu = (jnp.sum(theta) - c / 2) / (theta.size + 0.5)
    return {"x": theta - nu, "t": (c + nu) / 2}


@pytest.mark.parametrize("method", ["auto", "lu"])
def test_scalar_variable_and_multiplier_with_a_solver(method):
    lay = symift.compile(symift.parse(SCALARS, "scalars.ift"), solver=scalars_solver, backward=method)
    theta, c = jnp.asarray([0.3, -0.2, 1.0]), 0.7
    out = lay(theta=theta, c=c)
    np.testing.assert_allclose(out["nu"], (np.sum(theta) - c / 2) / 3.5, atol=1e-12)
    assert out["t"].shape == () and out["nu"].shape == ()

    def f(theta, c):
        sol = lay(theta=theta, c=c)
        return sol["x"], sol["t"]

    got = jax.jit(jax.jacrev(f, argnums=(0, 1)))(theta, c)
    expected = jax.jacfwd(lambda th, c: tuple(scalars_solver(th, c).values()), argnums=(0, 1))(theta, c)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=False):
        np.testing.assert_allclose(g, e, atol=1e-10)


def test_non_optimal_solver_is_reported():
    lay = layer("softmax", solver=lambda theta: jnp.full_like(theta, 1.0 / theta.size))
    theta = jnp.asarray([0.1, 2.0, -1.0])
    with pytest.raises(symift.MathError, match="not optimal"):
        lay(theta=theta)
    with pytest.raises(symift.MathError, match="not optimal"):
        jax.grad(lambda t: lay(theta=t)["z"][0])(theta)
    out = jax.jit(lambda t: lay(theta=t))(theta)
    assert not bool(out["converged"]) and float(out["residual"]) > 0.1


@pytest.mark.parametrize("solver, message", [
    (lambda theta: {"nu": 1.0}, "misses the variable"),
    (lambda theta: {"z": theta, "mu": 0.0}, "returned 'mu'"),
    (lambda theta: theta[:-1], r"shape \(3,\); expected \(4,\)"),
    (lambda theta: (theta, theta), r"shape \(2, 4\)"),
    (lambda theta: np.asarray(theta), "not JAX-traceable.*callback=True"),
], ids=["missing", "unknown", "shape", "tuple", "numpy"])
def test_bad_solver_output_is_a_symift_error(solver, message):
    lay = symift.compile(symift.load(EXAMPLES / "softmax.ift"), solver=solver)
    with pytest.raises(symift.SolverOutputError, match=message):
        lay(theta=jnp.ones(4))


def test_solver_signature_is_checked_at_compile_time():
    softmax = symift.load(EXAMPLES / "softmax.ift")
    with pytest.raises(symift.SolverOutputError, match=r"solver\(theta=...\) or solver\(theta\)"):
        symift.compile(softmax, solver=lambda x, y: x)
    with pytest.raises(symift.SolverOutputError, match="function"):
        symift.compile(softmax, solver="softmax")
