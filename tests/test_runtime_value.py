"""The optimal value V(θ) = f(x*(θ), θ) and its derivative by the envelope theorem (issue 18).

Every derivative is checked three ways: against the closed form the derivation prints (d.value_gradient,
evaluated with the solution's numbers), against central differences of the value of re-solves, and
jacfwd against jacrev (under jit and vmap).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EXAMPLES, derive, evaluate, generated_module, layer_of

import symift
from symift.errors import DuplicateError, UnsupportedError
from symift.render.text import report as text_report

jax.config.update("jax_enable_x64", True)


def _optnet_params(rng, n=5, m=4, p=2):
    M = rng.normal(size=(n, n))
    return dict(Q=M @ M.T + np.eye(n), q=rng.normal(size=n), G=rng.normal(size=(m, n)),
                h=np.abs(rng.normal(size=m)) + 0.5, A=rng.normal(size=(p, n)), b=rng.normal(size=p))


def _lasso_params(rng):
    return dict(X=rng.normal(size=(20, 6)), y=rng.normal(size=20), lam=2.0)


CASES = {  # example -> (parameters, dims)
    "softmax": (lambda rng: dict(theta=rng.normal(size=6)), {"n": 6}),
    "sparsemax": (lambda rng: dict(theta=rng.normal(size=6)), {"n": 6}),
    "lml": (lambda rng: dict(theta=rng.normal(size=6), k=2.0), {"n": 6}),
    "box_projection": (lambda rng: dict(theta=2 * rng.normal(size=6), l=-np.ones(6), u=np.ones(6)), {"n": 6}),
    "optnet_qp": (_optnet_params, {"n": 5, "p": 4, "m": 2}),
    "lasso": (_lasso_params, {"m": 20, "n": 6}),
}


def _fd_gradient(value, params, name, h=1e-6):
    base = np.asarray(params[name], float)
    out = np.zeros(base.shape)
    for idx in np.ndindex(base.shape):
        e = np.zeros(base.shape)
        e[idx] = h
        out[idx] = (value({**params, name: base + e}) - value({**params, name: base - e})) / (2 * h)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_gradient_matches_closed_form_and_finite_differences(name):
    make, dims = CASES[name]
    params = {k: jnp.asarray(v) for k, v in make(np.random.default_rng(3)).items()}
    layer, d = layer_of(name), derive(name)
    sol = layer(**params)

    def value(p):
        return float(layer(**p)["value"])

    numbers = {**{k: np.asarray(v) for k, v in sol.items()}, **{k: np.asarray(v) for k, v in params.items()}}
    for p in d.parameters:
        grad = np.asarray(jax.grad(lambda x, p=p: layer(**{**params, p: x})["value"])(params[p]))
        fd = _fd_gradient(value, params, p)
        if p == "Q":  # a symmetric parameter: its gradient is the symmetric part
            fd = (fd + fd.T) / 2
        assert np.allclose(grad, fd, atol=1e-6), (p, np.max(np.abs(grad - fd)))
        if d.envelope.gradients[p] is not None:  # the printed closed form, evaluated
            closed = np.asarray(evaluate(d.value_gradient(p), numbers, dims), float).reshape(grad.shape)
            assert np.allclose(grad, closed, atol=1e-8), (p, np.max(np.abs(grad - closed)))


def test_value_of_softmax_is_logsumexp_under_jit_and_vmap():
    layer = layer_of("softmax")
    thetas = jnp.asarray(np.random.default_rng(0).normal(size=(4, 7)))

    def V(t):
        return layer(theta=t)["value"]
    assert np.allclose(jax.vmap(V)(thetas), jax.nn.logsumexp(thetas, axis=1), atol=1e-12)
    fwd = jax.jit(jax.vmap(jax.jacfwd(V)))(thetas)
    rev = jax.jit(jax.vmap(jax.jacrev(V)))(thetas)
    assert np.allclose(fwd, jax.nn.softmax(thetas, axis=1), atol=1e-10)
    assert np.allclose(fwd, rev, atol=1e-14)
    assert np.allclose(jax.hessian(V)(thetas[0]), jax.hessian(jax.nn.logsumexp)(thetas[0]), atol=1e-8)


def test_value_derivative_is_nan_when_the_solve_fails_under_jit():
    params = {k: jnp.asarray(v) for k, v in _optnet_params(np.random.default_rng(1)).items()}
    layer = layer_of("optnet_qp", maxiter=1)
    g = jax.jit(jax.grad(lambda b: layer(**{**params, "b": b})["value"]))(params["b"])
    assert np.isnan(np.asarray(g)).all()
    layer = layer_of("optnet_qp")
    g = jax.jit(jax.grad(lambda b: layer(**{**params, "b": b})["value"]))(params["b"])
    assert np.isfinite(np.asarray(g)).all()


def test_value_with_a_users_solver():
    d = derive("softmax")
    layer = symift.compile(d, solver=lambda theta: jax.nn.softmax(theta))
    theta = jnp.asarray(np.random.default_rng(2).normal(size=5))
    out = layer(theta=theta)
    assert np.isclose(out["value"], jax.nn.logsumexp(theta), atol=1e-12)
    assert np.allclose(jax.grad(lambda t: layer(theta=t)["value"])(theta), jax.nn.softmax(theta), atol=1e-10)


def test_rows_value_is_the_sum_of_the_rows_values():
    layer = layer_of("rowwise_sparsemax")
    Theta = jnp.asarray(np.random.default_rng(4).normal(size=(3, 5)))
    out = layer(Theta=Theta)
    assert out["value"].shape == ()
    assert np.isclose(out["value"], 0.5 * np.sum((np.asarray(out["Z"]) - np.asarray(Theta)) ** 2), atol=1e-12)
    g = jax.grad(lambda T: layer(Theta=T)["value"])(Theta)
    assert np.allclose(g, Theta - out["Z"], atol=1e-10)


def test_rows_value_left_out_when_a_term_without_the_variable_is_added():
    src = (EXAMPLES / "rowwise_sparsemax.ift").read_text().replace(
        "param Theta[m, k]", "param Theta[m, k]\nparam c").replace("sumsq(Z - Theta) / 2", "sumsq(Z - Theta) / 2 + c")
    problem = symift.parse(src, "shifted.ift")
    out = symift.compile(problem)(Theta=jnp.asarray(np.random.default_rng(5).normal(size=(3, 4))), c=1.5)
    assert "value" not in out and "Z" in out
    assert "additive=False" in symift.codegen(problem)


def test_generated_module_has_the_value(tmp_path):
    mod = generated_module("lml", tmp_path)
    theta = jnp.asarray(np.random.default_rng(6).normal(size=5))
    out = mod.layer(theta, 2.0)
    assert np.isclose(jax.grad(lambda k: mod.layer(theta, k)["value"])(2.0), out["nu"], atol=1e-10)  # dV/dk = ν


def test_root_problem_has_no_value():
    d = derive("circle")
    assert d.value is None and d.envelope is None
    with pytest.raises(UnsupportedError, match="no optimal value"):
        d.value_gradient(d.parameters[0])
    assert "value=None" in symift.codegen(symift.load(EXAMPLES / "circle.ift"))
    assert "value" not in layer_of("circle")(theta=jnp.asarray(0.6))


def test_derivation_prints_the_value_and_its_gradient():
    d = derive("optnet_qp")
    report = text_report(d)
    assert "Optimal value (envelope theorem" in report
    assert "dV/db = -nu" in report and "dV/dQ = 1/2 z zᵀ" in report and "dV/dh = -lam" in report
    assert "numerator layout" in report
    tex = d.to_latex()
    assert r"\section{The optimal value}" in tex and r"\nabla_{b} V &= - \nu" in tex


def test_a_variable_named_value_is_refused():
    with pytest.raises(DuplicateError) as err:
        symift.parse("dim n\nparam t[n]\nvar value[n]\nminimize sumsq(value - t)\n", "v.ift")
    assert "3:5" in str(err.value) and "^" in str(err.value)
