"""The three cases of the trust issue: each gives a right answer, a flag, or a clear error.

1. a singular KKT system (two equal rows of A) — see also tests/test_runtime_status.py;
2. a non-smooth objective (the lasso): with λ > 0 declared, the epigraph of norm1 and the generalized
   Jacobian on the support (tests/test_symbolic_lowering.py); with λ's sign unknown, the derivative
   where it exists, its condition stated, never a DiracDelta, and a clear error at the kink;
3. derived conditions in the user's names: no internal placeholder (``_x``) in any output.
"""
from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import spd

import symift
from symift.render.text import report

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LASSO = """dim m, n
param X[m, n]
param y[m]
param lam
var w[n]
minimize 0.5 * sumsq(X @ w - y) + lam * norm1(w)
"""

SIGMOID = """dim n
param y[n]
var x[n] > 0
minimize -dot(x, y) - entropy(x) - entropy(1 - x)
"""

#: an internal name: a sympy Dummy printed with its underscore, or a sympy class name
LEAK = re.compile(r"(?<![\w\\])_[a-zA-Z]\w*|DiracDelta|Heaviside|Dummy|MatrixSymbol|HadamardProduct")


def test_lasso_of_unknown_sign_derivative_where_it_exists_and_a_clear_error_at_the_kink():
    """'param lam' without '> 0': norm1 cannot be rewritten as an epigraph (−norm1 is not convex)."""
    d = symift.derive(symift.parse(LASSO, "lasso.ift"))
    text = report(d)
    assert not LEAK.search(text), LEAK.search(text)
    assert "holds if: w ≠ 0 elementwise" in text and "not differentiable where an entry is 0" in text
    X = d.symbols["X"]
    assert d.jacobian("w", "y") == (X.T * X).I * X.T  # (XᵀX)⁻¹Xᵀ on the smooth branch
    layer = symift.compile(d)
    rng = np.random.default_rng(0)
    X_, y_ = rng.standard_normal((20, 5)), rng.standard_normal(20)
    # small λ: every wᵢ ≠ 0, the smooth branch holds, and the layer's gradient matches a re-solve
    out = layer(X=X_, y=y_, lam=0.01)
    assert bool(out["regular"]) and np.all(np.abs(out["w"]) > 1e-4)
    J = jax.jacfwd(lambda y: layer(X=X_, y=y, lam=0.01)["w"])(jnp.asarray(y_))
    np.testing.assert_allclose(J, np.linalg.solve(X_.T @ X_, X_.T), atol=1e-8)
    # large λ: the solution has zeros; the smooth solver cannot reach it and says why
    with pytest.raises(symift.MathError, match="not differentiable where w has a zero entry"):
        layer(X=X_, y=y_, lam=5.0)
    assert not bool(jax.jit(lambda lam: layer(X=X_, y=y_, lam=lam))(5.0)["converged"])


def test_no_internal_name_in_any_derivation_text():
    sources = {p.stem: p.read_text() for p in EXAMPLES.glob("*.ift")} | {"lasso": LASSO, "sigmoid": SIGMOID}
    for name, source in sources.items():
        d = symift.derive(symift.parse(source, f"{name}.ift"))
        text = report(d) + str(d.ift) + " ".join(d.indicators.values()) + " ".join(d.facts)
        assert not LEAK.search(text), (name, LEAK.search(text))
    sigmoid = report(symift.derive(symift.parse(SIGMOID, "sigmoid.ift")))
    assert "(1 - x)^-1 + x^-1 ≠ 0 elementwise" in sigmoid


def test_singular_equality_rows_are_an_error_or_a_flag():
    layer = symift.compile(symift.load(EXAMPLES / "eqqp.ift"))
    rng = np.random.default_rng(4)
    a = rng.standard_normal(4)
    params = {"Q": spd(rng, 4), "q": rng.standard_normal(4), "A": np.stack([a, a]), "b": np.array([1.0, 1.0])}
    with pytest.raises(symift.MathError):
        layer(**params)
    assert not bool(jax.jit(lambda p: layer(**p))(params)["regular"])


def test_public_errors_are_symift_errors_in_the_users_names():
    layer = symift.compile(symift.load(EXAMPLES / "eqqp.ift"))
    with pytest.raises(symift.ArgumentError, match="q has shape \\(4,\\), declared \\[n\\]: n = 3 from Q"):
        layer(Q=np.eye(3), q=np.ones(4), A=np.ones((1, 3)), b=np.ones(1))
    with pytest.raises(symift.ArgumentError, match="Q must be an array or a number"):
        layer(Q="x", q=np.ones(3), A=np.ones((1, 3)), b=np.ones(1))
    jf = symift.derive(symift.load(EXAMPLES / "softmax.ift")).jacobian_function("z", "theta")
    with pytest.raises(symift.ArgumentError, match="missing z"):
        jf(theta=np.ones(3))
    with pytest.raises(TypeError):  # an ArgumentError is a TypeError too
        symift.parse(b"var x\nminimize x\n")
