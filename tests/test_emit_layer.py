"""The JAX layer: solutions, gradients in both modes, vmap, float32, failures, codegen, sharding."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import (
    box_projection_solve,
    box_qp_pgd_solve,
    circle_solve,
    constrained_softmax_solve,
    elastic_net_solve,
    entmax15_solve,
    eqqp_solve,
    fixed_point_solve,
    lasso_solve,
    lml_solve,
    ls_ball_solve,
    nnls_solve,
    optnet_case,
    ridge_solve,
    sigmoid_solve,
    simplex_qp_interior_solve,
    simplex_qp_solve,
    softmax_solve,
    sparsemax_solve,
    spd,
)
from helpers import EXAMPLES, layer_of
from jax.test_util import check_grads

import symift
import symift.runtime.batching
from symift.runtime import STATUS_KEYS


def cases(n=5):
    rng = np.random.default_rng(n)
    m = 2
    qp = {"Q": spd(rng, n), "q": rng.standard_normal(n), "A": rng.standard_normal((m, n)),
          "b": rng.standard_normal(m)}
    optnet, optnet_ref, _, _ = optnet_case(rng, n)
    return [
        ("softmax", {"theta": rng.standard_normal(n)}, softmax_solve, "z", ["theta"]),
        ("sparsemax", {"theta": 2 * rng.standard_normal(n)}, sparsemax_solve, "z", ["theta"]),
        ("ridge", {"X": rng.standard_normal((n + 2, n)), "y": rng.standard_normal(n + 2), "lam": 0.7},
         ridge_solve, "w", ["lam", "y", "X"]),
        ("eqqp", qp, eqqp_solve, "z", ["q", "b", "Q", "A"]),
        ("optnet_qp", optnet, optnet_ref, "z", ["q", "h", "G"]),
        ("circle", {"theta": 0.6}, circle_solve, "x", ["theta"]),
        ("fixed_point", {"theta": 0.3}, fixed_point_solve, "x", ["theta"]),
        ("box_projection", {"theta": 2 * rng.standard_normal(n), "l": -rng.uniform(0.5, 1.0, n),
                            "u": rng.uniform(0.5, 1.0, n)}, box_projection_solve, "x", ["theta", "l", "u"]),
        # a dense solution: at pᵢ = 0 the KKT Jacobian holds pᵢ^-1/2 = inf, which the linear-solve
        # backwards flag (test_runtime_implicit); sparse ones are checked in test_runtime_bounds
        ("entmax15", {"theta": 0.3 * rng.standard_normal(n)}, entmax15_solve, "p", ["theta"]),
        ("lasso", {"X": rng.standard_normal((n + 3, n)), "y": rng.standard_normal(n + 3), "lam": 0.5},
         lasso_solve, "w", ["y", "lam", "X"]),
        ("constrained_softmax", {"theta": rng.standard_normal(n), "u": rng.uniform(0.15, 0.4, n)},
         constrained_softmax_solve, "z", ["theta", "u"]),
        ("lml", {"theta": rng.standard_normal(n), "k": 2.0}, lml_solve, "x", ["theta", "k"]),
        ("sigmoid", {"y": 2 * rng.standard_normal(n)}, sigmoid_solve, "x", ["y"]),
        # lam = 1: two entries off the support with |g| ≤ 0.52 λ (a clear margin: strict complementarity)
        ("elastic_net", {"X": rng.standard_normal((n + 3, n)), "y": rng.standard_normal(n + 3), "lam": 1.0,
                         "gam": 0.3}, elastic_net_solve, "w", ["y", "lam", "gam", "X"]),
        # fixed points of proximal / projected gradient (the solution does not depend on η: the
        # derived dw/dη vanishes there, checked against FD of a re-solve that ignores η)
        ("lasso_prox", {"X": rng.standard_normal((n + 3, n)), "y": rng.standard_normal(n + 3), "lam": 0.5,
                        "eta": 0.02}, lasso_solve, "w", ["y", "lam", "eta", "X"]),
        ("box_qp_pgd", {"Q": spd(rng, n) / n, "c": 2 * rng.standard_normal(n), "l": -rng.uniform(0.2, 0.6, n),
                        "u": rng.uniform(0.2, 0.6, n), "eta": 0.1}, box_qp_pgd_solve, "x",
         ["c", "l", "u", "eta", "Q"]),
        ("nnls_pgd", {"A": rng.standard_normal((n + 3, n)), "b": rng.standard_normal(n + 3), "eta": 0.02},
         nnls_solve, "x", ["b", "eta", "A"]),
        # mirror descent (x = softmax(log x − η∇f)), an interior solution
        ("simplex_qp_md", {"Q": np.eye(n) + 0.1 * spd(rng, n) / n, "c": 0.1 * rng.standard_normal(n), "eta": 0.5},
         simplex_qp_interior_solve, "x", ["c", "eta", "Q"]),
        # projected gradient onto the simplex, a sparse solution
        ("simplex_qp_pgd", {"Q": spd(rng, n) / n, "c": rng.standard_normal(n), "eta": 0.3}, simplex_qp_solve, "x",
         ["c", "eta", "Q"]),
        # projected gradient onto a ball, the solution on the sphere (r = 0.3 < ‖least squares‖)
        ("ls_ball_pgd", {"A": rng.standard_normal((n + 3, n)), "b": rng.standard_normal(n + 3), "r": 0.3,
                         "eta": 0.02}, ls_ball_solve, "x", ["b", "r", "eta", "A"]),
    ]


CASES = cases()
IDS = [c[0] for c in CASES]


def fd(ref, params, var, name, h=1e-6):
    base = np.asarray(params[name], float)
    cols = []
    for k in range(base.size):
        e = np.zeros(base.size)
        e[k] = h
        plus = dict(params, **{name: (base.ravel() + e).reshape(base.shape)})
        minus = dict(params, **{name: (base.ravel() - e).reshape(base.shape)})
        cols.append((np.asarray(ref(plus)[var]) - np.asarray(ref(minus)[var])) / (2 * h))
    return np.stack(cols, -1)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_solution_matches_reference(case):
    name, params, ref, var, _ = case
    out = layer_of(name)(**params)
    np.testing.assert_allclose(out[var], ref(params)[var], atol=1e-8)
    assert bool(out["converged"]) and float(out["residual"]) < 1e-9


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jacfwd_jacrev_closed_form_and_fd_agree(case):
    name, params, ref, var, pnames = case
    layer = layer_of(name)
    d = layer.derivation
    sol = layer(**params)
    for pn in pnames:
        f = lambda x, pn=pn: layer(**dict(params, **{pn: x}))[var]  # noqa: E731
        x = jnp.asarray(params[pn])
        Jf, Jr = jax.jacfwd(f)(x), jax.jacrev(f)(x)
        F = fd(ref, params, var, pn).reshape(np.shape(Jf))
        np.testing.assert_allclose(Jf, F, atol=2e-7, err_msg=f"{name} d{var}/d{pn} fwd vs FD")
        np.testing.assert_allclose(Jr, Jf, atol=1e-10, err_msg=f"{name} d{var}/d{pn} rev vs fwd")
        values = {k: v for k, v in sol.items() if k not in STATUS_KEYS}
        values.update(params)
        jf = d.jacobian_function(var, pn)
        if np.ndim(params[pn]) == 2:  # matrix parameter: directional closed form
            D = np.random.default_rng(1).standard_normal(np.shape(params[pn]))
            if pn in layer.spec.symmetric:  # the closed form is for symmetric dQ
                D = 0.5 * (D + D.T)
            closed = jf(**values, **{"d" + pn: D})
            np.testing.assert_allclose(closed, np.tensordot(Jf, D, axes=2), atol=1e-8)
        else:
            closed = jf(**values)
            np.testing.assert_allclose(np.reshape(closed, np.shape(Jf)), Jf, atol=1e-8)


@pytest.mark.parametrize("backward", ["auto", "lu"])   # the closed form, and the checked LU solve
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_check_grads_both_modes(case, backward):
    name, params, _, var, pnames = case
    layer = layer_of(name, backward=backward)
    pn = pnames[0]
    w = np.random.default_rng(2).standard_normal(np.shape(layer(**params)[var]))

    def loss(x):
        return jnp.sum(w * layer(**dict(params, **{pn: x}))[var])

    check_grads(loss, (jnp.asarray(params[pn], float),), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_vmap_equals_loop():
    layer = layer_of("softmax")
    thetas = jnp.asarray(np.random.default_rng(3).standard_normal((6, 4)))
    batched = jax.vmap(lambda t: layer(theta=t)["z"])(thetas)
    looped = jnp.stack([layer(theta=t)["z"] for t in thetas])
    np.testing.assert_allclose(batched, looped, atol=1e-12)
    g = jax.vmap(jax.grad(lambda t: layer(theta=t)["z"][0]))(thetas)
    np.testing.assert_allclose(g[1], jax.grad(lambda t: layer(theta=t)["z"][0])(thetas[1]), atol=1e-12)


@pytest.mark.parametrize("chunk", [None, 4])
def test_batched_optnet_vmap_equals_loop_in_both_modes(chunk, monkeypatch):
    """A batch of OptNet problems: the forward, the closed-form tangent and its transpose under
    vmap (where factorizations and the Newton solves are cut across cores, and the forward solve
    runs in chunks: here 16 problems whole, or 10 in chunks of 4, 4 and a rest of 2) equal a loop."""
    layer = layer_of("optnet_qp")
    if chunk:
        monkeypatch.setattr(symift.runtime.batching, "chunk_size", lambda size, problem_bytes: chunk)
    rng = np.random.default_rng(11)
    batch = [optnet_case(rng, 6)[0] for _ in range(10 if chunk else 16)]
    stacked = {k: jnp.asarray(np.stack([b[k] for b in batch])) for k in batch[0]}
    w = jnp.asarray(rng.standard_normal(6))

    def loss(prm):
        return layer(**prm)["z"] @ w

    z = jax.jit(jax.vmap(lambda prm: layer(**prm)["z"]))(stacked)
    g = jax.jit(jax.vmap(jax.grad(loss)))(stacked)
    dz = jax.jit(jax.vmap(lambda prm: jax.jvp(loss, (prm,), (prm,))[1]))(stacked)
    for k, prm in enumerate(batch):
        prm = {key: jnp.asarray(v) for key, v in prm.items()}
        np.testing.assert_allclose(z[k], layer(**prm)["z"], atol=1e-10)
        gk = jax.grad(loss)(prm)
        for key in prm:
            np.testing.assert_allclose(g[key][k], gk[key], atol=1e-8)
        np.testing.assert_allclose(dz[k], jax.jvp(loss, (prm,), (prm,))[1], atol=1e-8)


def test_lapack_batches_are_cut_across_cores():
    """The runtime's factorizations and solves under vmap: one LAPACK call per piece
    (lapack_pieces: one per core on CPU with jaxlib < 0.10), the same numbers as one batched call,
    and differentiable through the factorization."""
    mod = symift.runtime
    rng = np.random.default_rng(5)
    M = jnp.asarray(np.stack([spd(rng, 12) for _ in range(32)]))
    v = jnp.asarray(rng.standard_normal((32, 12)))
    pieces = mod.lapack_pieces(32)
    hlo = jax.jit(jax.vmap(mod.cho_factor)).lower(M).compile().as_text()
    assert hlo.count("custom_call_target=\"lapack_dpotrf") == pieces
    # the forward solve's chunks: ~4 MiB of parameters, a power of two, at least 8 problems
    if jax.default_backend() == "cpu" and jax.local_device_count() == 1:
        assert mod.chunk_size(128, 160_000) == 16 and mod.chunk_size(128, 8) == 128
        assert mod.chunk_size(128, 10**8) == 8 and mod.chunk_size(4, 10**8) == 4
    version = tuple(int(v) for v in jax.__version__.split(".")[:2])
    if jax.default_backend() == "cpu" and jax.local_device_count() == 1 and version < (0, 10):
        assert pieces == min(os.cpu_count() or 1, 4)
    c = jax.vmap(mod.cho_factor)(M)
    np.testing.assert_allclose(c, jax.vmap(lambda m: jax.scipy.linalg.cho_factor(m)[0])(M), rtol=0, atol=1e-13)
    np.testing.assert_allclose(jax.vmap(mod.cho_solve)(c, v), jnp.linalg.solve(M, v[..., None])[..., 0],
                               atol=1e-10)
    lu = jax.vmap(mod.lu_factor)(M)
    np.testing.assert_allclose(jax.vmap(mod.lu_solve)(lu, v), jnp.linalg.solve(M, v[..., None])[..., 0],
                               atol=1e-10)
    grad = jax.grad(lambda M: jnp.sum(jax.vmap(mod.cho_factor)(M) ** 2))(M)
    ref = jax.grad(lambda M: jnp.sum(jax.vmap(lambda m: jax.scipy.linalg.cho_factor(m)[0])(M) ** 2))(M)
    np.testing.assert_allclose(grad, ref, atol=1e-10)


def test_tangent_solves_stay_transposable():
    """In the closed-form tangent, solves of tangent-carrying right-hand sides use jax.scipy's
    (reverse mode transposes them); only solves of primal values are cut across cores."""
    src = layer_of("optnet_qp").source
    tangents = src[src.index("def _tangents"):]
    tangents = tangents[:tangents.index("\ndef ")]
    assert re.search(r"(?<![.\w])cho_solve\(_chol", tangents) and "G.T)" in tangents  # Q⁻¹Gᵀ: primal
    # back substitution on named steps: dλ is solved once, dz and dν reuse it
    assert tangents.count("lu_solve(") == 1
    for line in tangents.splitlines():
        if re.search(r"(?<![.\w])(cho|lu)_solve\(", line):
            assert "t_" not in line and "_r" not in line.split("=", 1)[1], line


def test_jit_and_grad():
    layer = layer_of("sparsemax")
    theta = jnp.asarray([1.5, 0.2, -0.4, 1.1, 0.9])
    z = jax.jit(lambda t: layer(theta=t)["z"])(theta)
    ref = sparsemax_solve({"theta": np.asarray(theta)})["z"]
    np.testing.assert_allclose(z, ref, atol=1e-8)
    np.testing.assert_array_equal(layer(theta=theta)["s"], (ref > 0).astype(float))


def test_float32_runs():
    layer = layer_of("softmax")
    theta = jnp.asarray([0.1, 0.5, -0.3], dtype=jnp.float32)
    out = layer(theta=theta)
    assert out["z"].dtype == jnp.float32
    np.testing.assert_allclose(out["z"], jax.nn.softmax(theta), atol=1e-5)
    J = jax.jacrev(lambda t: layer(theta=t)["z"])(theta)
    assert J.dtype == jnp.float32
    z = np.asarray(out["z"], float)
    np.testing.assert_allclose(J, np.diag(z) - np.outer(z, z), atol=1e-4)


@pytest.mark.parametrize("name", ["sparsemax", "optnet_qp"])
def test_non_convergence_is_reported(name):
    """Too few iterations of the dual Newton method (sparsemax) or of the interior point (QP)."""
    layer = symift.compile(symift.load(EXAMPLES / f"{name}.ift"), maxiter=1)
    # sparsemax: the Newton start max θ − 1 = 1 has four entries in its support, the solution two,
    # so the first step (ν = 1.2) leaves h = 0.1 (from a start with the final support, one step is exact)
    params, *_ = optnet_case(np.random.default_rng(3), 6, m=2) if name == "optnet_qp" else \
        ({"theta": jnp.asarray([2.0, 1.5, 1.2, 1.1, 0.3])},)
    with pytest.raises(symift.MathError, match="did not converge"):
        layer(**params)
    out = jax.jit(lambda p: layer(**p))(params)
    assert not bool(out["converged"])


def test_interior_point_stops_at_the_rounding_floor():
    """A residual with a floor between tol/1000 and tol (noise the Newton direction cannot see, as
    rounding in an ill-conditioned QP): the solve stops once progress stalls, accepted, instead
    of iterating to maxiter — under vmap one such problem held a batch of 128 for 100 iterations."""
    def F(x, mu):
        return x - 1.0 + 8e-11 * jnp.sin(1e12 * x)

    _, res, k = symift.runtime.interior_point(F, jnp.array([0.0]), jnp.array([False]), 0, 1e-10, 100,
                                        lambda x: lambda r: r)  # the step dx = -F(x)
    assert 1e-13 < float(res) <= 1e-10 and int(k) <= 6


@pytest.mark.parametrize("backward", ["auto", "lu"])
def test_symmetric_parameter_gets_symmetric_gradient(backward):
    """Q is declared pd: the solution depends on its symmetric part only, so the tangent along a
    nonsymmetric direction E is that along ½(E + Eᵀ) (central differences of re-solves agree)
    and the gradient is symmetric, as qpth's is."""
    layer = layer_of("eqqp", backward=backward)
    rng = np.random.default_rng(11)
    n = 4
    params = {"Q": jnp.asarray(spd(rng, n)), "q": jnp.asarray(rng.standard_normal(n)),
              "A": jnp.asarray(rng.standard_normal((2, n))), "b": jnp.asarray(rng.standard_normal(2))}
    w = jnp.asarray(rng.standard_normal(n))

    def loss(Q):
        return w @ layer(**(params | {"Q": Q}))["z"]
    g = jax.grad(loss)(params["Q"])
    np.testing.assert_allclose(g, g.T, atol=1e-14)
    E = jnp.asarray(rng.standard_normal((n, n)))
    h = 1e-6
    fd = (loss(params["Q"] + h * E) - loss(params["Q"] - h * E)) / (2 * h)
    _, jv = jax.jvp(loss, (params["Q"],), (E,))
    np.testing.assert_allclose([float(jv), float(jnp.sum(g * E))], [float(fd)] * 2, rtol=1e-6)


def test_singular_kkt_system_is_reported():
    """Two identical equality rows: ∂F/∂x is singular, the solve must not return a quiet number."""
    layer = layer_of("eqqp")
    rng = np.random.default_rng(4)
    a = rng.standard_normal(4)
    params = {"Q": spd(rng, 4), "q": rng.standard_normal(4), "A": np.stack([a, a]), "b": np.array([1.0, 1.0])}
    with pytest.raises(symift.MathError):
        layer(**params)


def test_layer_rejects_wrong_arguments():
    with pytest.raises(TypeError, match="missing theta"):
        layer_of("softmax")()
    with pytest.raises(TypeError, match="unknown"):
        layer_of("softmax")(theta=jnp.ones(3), phi=1.0)


def test_structure_is_kept_in_generated_code():
    """diag(z) − zzᵀ applied to a vector is O(n): no n×n matrix in the tangent code."""
    src = layer_of("softmax").source
    start = src.index("def _tangents")
    tangent = src[start:src.index("\n\n\ndef ", start)]
    assert "jnp.eye" not in tangent and re.search(r"(?<![.\w])diag\(z, t_theta\)", tangent)
    assert re.search(r"(?<![.\w])row\(z, t_theta\)", tangent)
    qp = layer_of("eqqp").source
    assert "cho_factor(Q)" in qp and "jnp.linalg.inv" not in qp
    # softmax's forward is the dual reduction in closed form: log-sum-exp (its max shift in two
    # stages, runtime.max_of), no iterations
    assert "max_of(" in src and "forward=separable_solve" in src and "dual_newton" not in src
    # an interior-point Newton step comes from the block elimination: O(n) for a separable
    # problem whose x(ν) = 1/(θ + ν) is not defined for every ν
    barrier = symift.compile(symift.parse(
        "dim n\nparam theta[n]\nvar z[n] > 0\nminimize dot(theta, z) - sum(log(z))\n"
        "subject to\n    nu: sum(z) == 1\n")).source
    step = _function(barrier, "_newton_direction")
    assert "jnp.eye" not in step and "lu_factor" not in step and "newton_direction=_newton_direction" in barrier


def _function(source, name):
    """The text of the generated function ``name`` in a module's source."""
    start = source.index(f"def {name}(")
    end = source.find("\n\n\n", start)
    return source[start:end if end > 0 else None]


def test_newton_step_factorizes_once_and_back_substitutes():
    """OptNet's generated step: the Schur complements Q + Gᵀdiag(λ/t)G (as one Gram product) and
    A M⁻¹ Aᵀ are factorized outside ``solve``; each right-hand side costs three triangular-pair
    solves, the later steps reusing dz instead of re-solving for it."""
    src = layer_of("optnet_qp").source
    step = _function(src, "_newton_direction")
    once, per_rhs = step.split("def solve(")
    assert once.count("cho_factor(") == 2 and "cho_factor(" not in per_rhs
    assert re.search(r"(?<![.\w])gram\(G, ", once) and not re.search(r"(?<![.\w])diag\(", once)
    assert per_rhs.count("cho_solve(") == 3


def test_newton_step_is_the_reduced_kkt_system():
    """OptNet's step eliminates slacks and multipliers: (Q + Gᵀ diag(λ/t) G)⁻¹, as interior-point QP solvers do."""
    from symift.symbolic.kkt import build_kkt
    from symift.symbolic.newton import NewtonSystem
    from symift.symbolic.printing import text

    ns = NewtonSystem(build_kkt(symift.load(EXAMPLES / "optnet_qp.ift")))
    assert [s.kind for s in ns.steps] == ["identity", "diagonal", "general", "general"]
    assert "(Q + Gᵀ diag(slack_lam^-1∘lam) G)⁻¹" in text(ns.solution["z"])


def test_names_clashing_with_python_are_mangled():
    src = "dim n\nparam lambda_[n]\nparam max[n]\nvar sum_[n]\nminimize sumsq(sum_ - max) + dot(lambda_, sum_)\n"
    problem = symift.parse(src)
    layer = symift.compile(problem)
    out = layer(lambda_=jnp.ones(3), max=jnp.arange(3.0))
    np.testing.assert_allclose(out["sum_"], np.arange(3.0) - 0.5)
    assert "def layer(lambda_, max_" in layer.source


@pytest.mark.parametrize("name", IDS)
def test_codegen_module_stands_alone(name, tmp_path):
    """The generated module runs without symift importable and gives the in-process numbers."""
    case = next(c for c in CASES if c[0] == name)
    _, params, _, var, pnames = case
    source = symift.codegen(symift.load(EXAMPLES / f"{name}.ift"))
    (tmp_path / "gen.py").write_text(source)
    layer = layer_of(name)
    expected = layer(**params)[var]
    pn = pnames[0]
    grad_expected = jax.grad(lambda x: jnp.sum(layer(**dict(params, **{pn: x}))[var]))(jnp.asarray(params[pn], float))
    np.savez(tmp_path / "params.npz", **{k: np.asarray(v, float) for k, v in params.items()})
    py_names = {p: p for p in params}
    script = textwrap.dedent(f"""
        import sys, json
        sys.modules["symift"] = None  # any import of symift fails
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp, numpy as np
        import gen
        p = dict(np.load("params.npz"))
        kw = {{k: jnp.asarray(p[k]) for k in {py_names!r}}}
        out = gen.layer(**kw)
        g = jax.grad(lambda x: jnp.sum(gen.layer(**dict(kw, {pn}=x))[{var!r}]))(kw[{pn!r}])
        print(json.dumps({{"sol": np.asarray(out[{var!r}]).tolist(), "grad": np.asarray(g).tolist()}}))
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(got["sol"], expected, atol=1e-12)
    np.testing.assert_allclose(got["grad"], grad_expected, atol=1e-10)


def test_codegen_passes_ruff(tmp_path):
    ruff = pytest.importorskip("ruff")
    del ruff
    for path in sorted(EXAMPLES.glob("*.ift")):
        out = tmp_path / f"{path.stem}.py"
        out.write_text(symift.codegen(symift.load(path)))
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "E,F,W",
                        "--ignore", "E501", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_codegen_cli(tmp_path):
    out = tmp_path / "softmax_layer.py"
    r = subprocess.run([sys.executable, "-m", "symift.cli", "codegen", str(EXAMPLES / "softmax.ift"), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "def layer(theta" in out.read_text()


SHARDING = """
import os, json
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import symift
import symift.runtime.batching
layer = symift.compile(symift.load({path!r}))
thetas = jnp.asarray(np.random.default_rng(0).standard_normal((16, 6)))
f = jax.jit(jax.vmap(lambda t: layer(theta=t)["z"]))
g = jax.jit(jax.vmap(jax.grad(lambda t: layer(theta=t)["z"][0])))
mesh = Mesh(np.array(jax.devices()), ("batch",))
sharded = jax.device_put(thetas, NamedSharding(mesh, P("batch")))
zs, gs = f(sharded), g(sharded)
print(json.dumps({{"devices": len(jax.devices()), "shards": len(zs.sharding.device_set),
                   "z": float(jnp.max(jnp.abs(zs - f(thetas)))), "g": float(jnp.max(jnp.abs(gs - g(thetas))))}}))
"""


@pytest.mark.slow
def test_sharded_equals_unsharded(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    code = SHARDING.format(path=str(EXAMPLES / "sparsemax.ift"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["devices"] == 8 and got["shards"] == 8
    assert got["z"] < 1e-12 and got["g"] < 1e-12


def test_user_names_never_clash_with_generated_locals():
    """Variables named like the solver's locals (x, F, res, tol) and scalar unknowns."""
    text = ("param tol\nparam F\nvar x\nvar res\nsolve\n"
            "    x + res == tol\n    x - res == F\n")
    layer = symift.compile(symift.parse(text))
    out = layer(tol=3.0, F=1.0)
    np.testing.assert_allclose([out["x"], out["res"]], [2.0, 1.0], atol=1e-12)
    assert float(out["residual"]) < 1e-10
    g = jax.grad(lambda t: layer(tol=t, F=1.0)["x"])(3.0)
    np.testing.assert_allclose(g, 0.5, atol=1e-12)
    qp = symift.compile(symift.parse(
        "dim n\nparam theta[n]\nparam u[n]\nvar x[n]\nminimize 0.5 * sumsq(x - theta)\n"
        "subject to\n    hi: x <= u\n    nu: sum(x) == 1\n"))
    theta, u = np.array([0.9, 0.5, -0.2]), np.array([0.4, 1.0, 1.0])
    z = np.asarray(qp(theta=theta, u=u)["x"])
    assert abs(z.sum() - 1) < 1e-10 and np.all(z <= u + 1e-12)


def test_deadlocking_jaxlib_is_warned_about(monkeypatch):
    """jaxlib 0.10.0-0.10.2 hang batched LAPACK calls on CPU (pyproject excludes them): warn."""
    import jaxlib

    from symift import layer as layer_module

    monkeypatch.setattr(layer_module, "_WARNED", [])
    monkeypatch.setattr(jaxlib, "__version__", "0.10.2")
    with pytest.warns(RuntimeWarning, match="deadlock batched linear algebra"):
        symift.compile(symift.load(EXAMPLES / "softmax.ift"))
    monkeypatch.setattr(layer_module, "_WARNED", [])
    monkeypatch.setattr(jaxlib, "__version__", "0.9.2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        symift.compile(symift.load(EXAMPLES / "softmax.ift"))
