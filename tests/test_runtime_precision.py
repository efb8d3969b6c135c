"""Theorem 1 of Blondel et al. (2021) at approximate solutions: Layer.precision.

The Jacobian estimate J(x̂) at an approximate solution has error ≤ (β/α + γR/α²)‖x̂ − x*‖;
the layer estimates each ingredient at x̂ from the derived F and reports the bound, beside the
Jacobian's change along one Newton step (its first-order error).
"""
from __future__ import annotations

import numpy as np
import pytest
from catalogue import spd
from helpers import layer_of

import symift


def ridge_data(seed=0, m=12, n=5):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((m, n)), "y": rng.standard_normal(m), "lam": 0.7}


def test_at_the_layers_solution_the_bound_is_at_rounding_level():
    p = ridge_data()
    out = layer_of("ridge").precision(**p)
    assert out["solution_error"] < 1e-12 and out["bound"] < 1e-12 and out["jacobian_change"] < 1e-12
    assert out["gamma"] == 0.0                       # A = XᵀX + λI does not depend on w
    assert out["alpha"] == pytest.approx(np.linalg.eigvalsh(p["X"].T @ p["X"]).min() + 0.7, rel=1e-10)


@pytest.mark.parametrize("eps", [1e-2, 1e-4, 1e-6])
def test_ridge_loosened_the_bound_holds_and_is_tight(eps):
    """A loose ridge solution ŵ = w* + e: F is linear in w, so the Newton step recovers ‖e‖ exactly,
    and the Jacobian's error (in dw/dX, which depends on w) is within the bound, not far below it."""
    p = ridge_data()
    layer = layer_of("ridge")
    w = np.asarray(layer(**p)["w"])
    e = eps * np.random.default_rng(1).standard_normal(w.shape)
    out = layer.precision(at={"w": w + e}, **p)
    assert out["solution_error"] == pytest.approx(np.linalg.norm(e), rel=1e-8)
    assert out["jacobian_change"] <= out["bound"] <= 10 * out["jacobian_change"]
    assert 0.1 < out["jacobian_change"] / eps < 10          # first order in ‖e‖


def test_the_error_falls_with_the_solution_error_along_mirror_descent():
    """Iterates of exponentiated gradient on a simplex QP: the estimated solution error follows the
    true distance to x*, and the bound covers the Jacobian's change at every iterate."""
    n = 6
    rng = np.random.default_rng(7)   # an interior solution, min x > 0.01 (test_symbolic_operators)
    Q, c, eta = np.eye(n) + 0.1 * spd(rng, n) / n, 0.1 * rng.standard_normal(n), 0.5
    layer = layer_of("simplex_qp_md")
    x_star = np.asarray(layer(Q=Q, c=c, eta=eta)["x"])
    x = np.full(n, 1.0 / n)
    errors = []
    for k in range(1, 201):
        z = np.log(x) - eta * (Q @ x - c)
        x = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        if k in (25, 50, 100, 200):
            out = layer.precision(at={"x": x}, Q=Q, c=c, eta=eta)
            true = np.linalg.norm(x - x_star)
            assert out["solution_error"] == pytest.approx(true, rel=0.01)
            assert out["jacobian_change"] <= out["bound"]
            errors.append(out["bound"])
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3 * errors[0]


def test_precision_needs_every_unknown():
    with pytest.raises(symift.ArgumentError, match="needs every unknown: missing w"):
        layer_of("ridge").precision(at={}, **ridge_data())
