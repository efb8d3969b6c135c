"""Operators of fixed points (symift.symbolic.operators): soft_threshold, relu / pos, proj_box.

A fixed point x = T(x, θ) of proximal or projected gradient writes T with a prox or a projection.
symift writes each operator exactly with the 0/1 indicators of its pieces, so the IFT gives the
generalized Jacobian on the support, stated with its condition (no entry at a kink), and the
block elimination simplifies it with the indicator facts like a KKT system's active sets.
"""
from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import box_qp_reference, lasso_solve, simplex_qp_solve, spd
from helpers import EXAMPLES, derive, evaluate, layer_of

import symift
from symift.render.text import report


def kkt_form(M, s, B):
    """D_s (D_s M D_s + I − D_s)⁻¹ D_s B: the Jacobian on the support s (0/1), zero off it."""
    D = np.diag(s.astype(float))
    n = len(s)
    return D @ np.linalg.solve(D @ M @ D + np.eye(n) - D, D @ B)


def test_lasso_by_proximal_gradient_derives_the_support_form():
    d = derive("lasso_prox")
    text = report(d)
    assert "dw/dy = eta S₁⁻¹ diag(s_hi + s_lo) Xᵀ" in text
    assert "S₁ = diag(1 - s_hi - s_lo) + eta diag(s_hi + s_lo) Xᵀ X" in text
    assert "dw/dlam = -eta S₁⁻¹ (s_hi - s_lo)" in text
    # the condition: no entry of the prox's argument at ±ηλ, and the indicators' meanings
    smooth = d.ift.smoothness
    assert smooth.holds is None and len(smooth.requirements) == 2
    assert all("the kink of s_" in r for r in smooth.requirements)
    assert d.indicators == {"s_hi": "s_hi = 1[v > t] for soft_threshold(w - eta * (X.T @ (X @ w - y)), eta * lam)",
                            "s_lo": "s_lo = 1[v < -t] for soft_threshold(w - eta * (X.T @ (X @ w - y)), eta * lam)"}
    assert "DiracDelta" not in text and "Heaviside" not in text


@pytest.mark.parametrize("seed, lam", [(0, 0.3), (1, 2.0), (2, 8.0), (3, 1e3)])
def test_the_prox_form_is_the_kkt_form_at_the_solution(seed, lam):
    """Evaluated at the solution, the derived dw/dy is D_s(D_s XᵀX D_s + I − D_s)⁻¹ D_s Xᵀ for any
    step η (λ = 1000: w = 0, an empty support and a zero Jacobian) — also η = 1 and η = 40/L,
    where the plain iteration diverges (the forward averages T)."""
    rng = np.random.default_rng(seed)
    m, n = 12, 6
    X, y = rng.standard_normal((m, n)), rng.standard_normal(m)
    layer = layer_of("lasso_prox")
    d = layer.derivation
    support = lasso_solve({"X": X, "y": y, "lam": lam})["w"] != 0
    L = np.linalg.norm(X, 2) ** 2
    for eta in (0.3 / L, 1.0 / L, 1.0, 40 / L):
        out = layer(X=X, y=y, lam=lam, eta=eta)
        assert bool(out["converged"]) and bool(out["regular"])
        np.testing.assert_array_equal(np.asarray(out["s_hi"] + out["s_lo"]) > 0, support)
        values = {k: np.asarray(v) for k, v in out.items() if k in d.symbols} | {"X": X, "y": y, "lam": lam,
                                                                                   "eta": eta}
        J = evaluate(d.jacobian("w", "y"), values, {"m": m, "n": n})
        np.testing.assert_allclose(J, kkt_form(X.T @ X, support, X.T), atol=1e-9)


def test_projected_gradient_box_qp_follows_the_bounds_it_touches():
    rng = np.random.default_rng(4)
    n = 6
    Q, c = spd(rng, n) / n, 3 * rng.standard_normal(n)
    lower, upper = -rng.uniform(0.2, 0.6, n), rng.uniform(0.2, 0.6, n)
    layer = layer_of("box_qp_pgd")
    out = layer(Q=Q, c=c, l=lower, u=upper, eta=0.1)
    x = box_qp_reference(Q, c, lower, upper)
    np.testing.assert_allclose(out["x"], x, atol=1e-10)
    hi, lo = np.asarray(out["s_hi"]) > 0, np.asarray(out["s_lo"]) > 0
    np.testing.assert_array_equal(hi, np.isclose(x, upper))
    np.testing.assert_array_equal(lo, np.isclose(x, lower))
    assert hi.any() and lo.any() and (~(hi | lo)).any(), "the data should touch both bounds and leave entries free"
    free = ~(hi | lo)
    Jc = np.asarray(jax.jacfwd(lambda v: layer(Q=Q, c=v, l=lower, u=upper, eta=0.1)["x"])(jnp.asarray(c)))
    np.testing.assert_allclose(Jc, kkt_form(Q, free, np.eye(n)), atol=1e-9)
    Ju = np.asarray(jax.jacrev(lambda v: layer(Q=Q, c=c, l=lower, u=v, eta=0.1)["x"])(jnp.asarray(upper)))
    # dx/du: the entries at u move with it, the free ones follow through Q
    expected = np.zeros((n, n))
    expected[np.ix_(hi, hi)] = np.eye(hi.sum())
    expected[np.ix_(free, hi)] = -np.linalg.solve(Q[np.ix_(free, free)], Q[np.ix_(free, hi)])
    np.testing.assert_allclose(Ju, expected, atol=1e-9)


def test_a_solution_at_a_kink_is_flagged_not_differentiated():
    """Q = I, η = 1: x = clip(c, l, u); c₀ = u₀ exactly puts v₀ at the kink of proj_box."""
    n = 4
    layer = layer_of("box_qp_pgd")
    lower, upper = -np.ones(n), np.ones(n)
    c = np.array([1.0, 0.3, -2.0, 0.5])
    out = layer(Q=np.eye(n), c=c, l=lower, u=upper, eta=1.0)
    np.testing.assert_allclose(out["x"], np.clip(c, lower, upper), atol=1e-12)
    assert bool(out["converged"]) and not bool(out["regular"])
    assert float(out["margin"]) < 1e-12
    def loss(v):
        return layer(Q=np.eye(n), c=v, l=lower, u=upper, eta=1.0)["x"].sum()

    with pytest.raises(symift.SymiftError, match=r"the condition of s_(hi|lo)\[0\] is \(nearly\) zero"):
        jax.grad(loss)(jnp.asarray(c))               # eager: said in words
    g = jax.jit(jax.grad(loss))(jnp.asarray(c))        # traced: a NaN, never a quiet number
    assert np.all(np.isnan(np.asarray(g)))
    c[0] = 1.2   # off the kink: regular again
    out = layer(Q=np.eye(n), c=c, l=lower, u=upper, eta=1.0)
    assert bool(out["regular"]) and abs(float(out["margin"]) - 0.2) < 1e-12


def test_relu_and_pos_are_the_same_operator_in_a_solve_block():
    texts = {f: f"dim m, n\nparam A[m, n]\nparam b[m]\nparam eta > 0\nvar x[n]\nsolve\n"
                f"    x == {f}(x - eta * (A.T @ (A @ x - b)))\n" for f in ("relu", "pos")}
    reports = {f: report(symift.derive(symift.parse(t, f"{f}.ift"))) for f, t in texts.items()}
    for r in reports.values():
        assert "dx/db = eta S₁⁻¹ diag(s) Aᵀ" in r and "S₁ = diag(1 - s) + eta diag(s) Aᵀ A" in r


def test_indicator_names_avoid_the_users_names():
    src = ("dim n\nparam s[n]\nparam t > 0\nvar x[n]\nsolve\n"
           "    x == relu(s - 0.5 * x) + 0.5 * soft_threshold(s - x, t)\n")
    d = symift.derive(symift.parse(src, "names.ift"))
    assert set(d.indicators) == {"s_", "s2_hi", "s2_lo"}
    assert "dx/ds" in report(d)


def run_cli(tmp_path, text, *args):
    path = tmp_path / "p.ift"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "symift.cli", "derive", str(path), *args],
                          capture_output=True, text=True, timeout=120)


def test_an_operator_outside_a_solve_block_is_refused_with_a_caret(tmp_path):
    r = run_cli(tmp_path, "dim n\nparam theta[n]\nvar x[n]\nminimize sumsq(x - relu(theta))\n")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "p.ift:4:20: error: relu() is an operator of fixed points: use it in a 'solve' block" in r.stderr
    assert "^~~" in r.stderr


@pytest.mark.parametrize("equation, message, column", [
    ("x == soft_threshold(theta - x, t)", "soft_threshold() needs its arguments after the first to be scalars or "
     "of the first's shape vector[n], got vector[m]", 36),
    ("x == proj_box(theta - x, 0)", "proj_box() takes 3 arguments, got 2", 10),
    ("x == relu(theta, 1)", "relu() takes 1 argument, got 2", 10),
    ("x == grad(theta, x)", "grad(f, x) needs a scalar f, got vector[n]", 15),
    ("x == grad(sumsq(x), 2 * x)", "grad(f, x) differentiates with respect to a declared variable or parameter", 25),
    ("x == grad(sumsq(x), n)", "grad(f, x) differentiates with respect to a declared variable or parameter", 25),
    ("x == softmax(c)", "softmax() needs a vector or a matrix (by rows), got scalar", 18),
])
def test_operator_arguments_are_checked(tmp_path, equation, message, column):
    r = run_cli(tmp_path, f"dim m, n\nparam theta[n]\nparam t[m]\nparam c\nvar x[n]\nsolve\n    {equation}\n")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"p.ift:7:{column}: error: {message}" in r.stderr, r.stderr


def test_the_latex_document_states_the_pieces():
    tex = derive("lasso_prox").to_latex()
    assert r"\operatorname{soft}_{\eta \lambda}" in tex
    assert "is linear between its kinks" in tex and r"\mathbb{I}[" in tex
    assert r"\operatorname{prox}_{t \lVert \cdot \rVert_{1}}(v)" in tex        # the definition, once
    assert "soft_threshold(" not in tex                                          # no source text leaks


# --------------------------------------------------------------------------- grad and softmax
def test_grad_is_derived_by_symift():
    """∇f written with grad(f, w) gives the same system, derivation and layer as ∇f by hand."""
    by_hand = report(derive("lasso_prox"))
    src = (EXAMPLES / "lasso_prox.ift").read_text().replace("(X.T @ (X @ w - y))", "grad(0.5 * sumsq(X @ w - y), w)")
    assert "grad(" in src
    d = symift.derive(symift.parse(src, "lasso_prox.ift"))
    text = report(d)
    assert text.split("Jacobians:")[1] == by_hand.split("Jacobians:")[1]
    assert "S₁ = diag(1 - s_hi - s_lo) + eta diag(s_hi + s_lo) Xᵀ X" in text


def test_mirror_descent_uses_softmax_rule_and_the_fixed_point():
    """dp = p∘du − p(pᵀdu) for p = softmax(u), and p = x at the solution: S₁ = x1ᵀ + ηΣQ with
    Σ = diag(x) − xxᵀ, dx/dc = η S₁⁻¹ Σ (no exp(·)/1ᵀexp(·) left in the result)."""
    d = derive("simplex_qp_md")
    text = report(d)
    assert "S₁ = x 1ᵀ - eta (x xᵀ - diag(x)) Q" in text
    assert "dx/dc = -eta S₁⁻¹ (x xᵀ - diag(x))" in text
    assert "exp(" not in text.split("Jacobians:")[1]
    assert "where p = softmax(" in text and "(= x at the solution)" in text


def test_mirror_descent_agrees_with_the_kkt_form_and_flags_the_boundary():
    n = 6
    layer = layer_of("simplex_qp_md")
    kkt = symift.compile(symift.parse("dim n\nparam Q[n, n] pd\nparam c[n]\nvar x[n]\nminimize 0.5 * quad(x, Q) - "
                                      "dot(c, x)\nsubject to\n    nu: sum(x) == 1\n    lam: x >= 0\n", "qp.ift"))
    rng = np.random.default_rng(7)
    Q, c = np.eye(n) + 0.1 * spd(rng, n) / n, 0.1 * rng.standard_normal(n)
    out, ref = layer(Q=Q, c=c, eta=0.5), kkt(Q=Q, c=c)
    assert bool(out["regular"]) and float(np.min(out["x"])) > 1e-2
    np.testing.assert_allclose(out["x"], ref["x"], atol=1e-10)
    for eta in (0.1, 0.5):
        J = jax.jacfwd(lambda v, e=eta: layer(Q=Q, c=v, eta=e)["x"])(jnp.asarray(c))
        np.testing.assert_allclose(J, jax.jacfwd(lambda v: kkt(Q=Q, c=v)["x"])(jnp.asarray(c)), atol=1e-10)
    Qi1 = np.linalg.solve(Q, np.ones(n))
    np.testing.assert_allclose(J, np.linalg.inv(Q) - np.outer(Qi1, Qi1) / Qi1.sum(), atol=1e-10)
    # a solution on the boundary of the simplex: a fixed point of the map but not of the IFT's form
    Q, c = spd(rng, n) / n, 0.5 * rng.standard_normal(n)
    out = layer(Q=Q, c=c, eta=0.2)
    assert float(np.min(kkt(Q=Q, c=c)["x"])) < 1e-9 and not bool(out["regular"])


# --------------------------------------------------------------------------- the rules, checked by the engine
def operator_layer(call: str, extra: str = ""):
    """The layer of x == call, with x absent from the call: x is the operator's value."""
    return symift.compile(symift.parse(f"dim n\nparam v[n]\n{extra}var x[n]\nsolve\n    x == {call}\n", "op.ift"))


@pytest.mark.parametrize("operator, argmin, pairs", [
    # soft_threshold is the prox of t‖·‖₁: argmin ½‖x − v‖² + t‖x‖₁ (the engine's lasso lowering)
    ("soft_threshold(v, t)", "dim n\nparam v[n]\nparam t > 0\nvar x[n]\nminimize 0.5 * sumsq(x - v) + t * norm1(x)\n",
     [("v", "v"), ("t", "t")]),
    # proj_box is argmin ½‖x − v‖² over l ≤ x ≤ u (the engine's two bound blocks)
    ("proj_box(v, l, u)", "dim n\nparam v[n]\nparam l[n]\nparam u[n] > l\nvar x[n]\nminimize 0.5 * sumsq(x - v)\n"
     "subject to\n    lo: x >= l\n    hi: x <= u\n", [("v", "v"), ("l", "l"), ("u", "u")]),
    # proj_simplex is sparsemax: argmin ½‖x − v‖² over the simplex
    ("proj_simplex(v)", "dim n\nparam v[n]\nvar x[n]\nminimize 0.5 * sumsq(x - v)\nsubject to\n"
     "    nu: sum(x) == 1\n    lam: x >= 0\n", [("v", "v")]),
    # proj_l2ball is argmin ½‖x − v‖² over ‖x‖² ≤ r² (one scalar multiplier)
    ("proj_l2ball(v, r)", "dim n\nparam v[n]\nparam r > 0\nvar x[n]\nminimize 0.5 * sumsq(x - v)\nsubject to\n"
     "    lam: sumsq(x) <= r ^ 2\n", [("v", "v"), ("r", "r")]),
    # relu is the projection onto x ≥ 0
    ("relu(v)", "dim n\nparam v[n]\nvar x[n]\nminimize 0.5 * sumsq(x - v)\nsubject to\n    lam: x >= 0\n",
     [("v", "v")]),
])
def test_operator_rules_agree_with_the_engine_on_their_argmin_definitions(operator, argmin, pairs):
    """Each operator's piecewise rule gives the same value and Jacobians as symift's own derivation
    of the argmin that defines it (KKT, active sets, the norm1 epigraph), at random points."""
    extra = {"soft_threshold(v, t)": "param t > 0\n", "proj_box(v, l, u)": "param l[n]\nparam u[n] > l\n",
             "proj_l2ball(v, r)": "param r > 0\n"}
    rule = operator_layer(operator, extra.get(operator, ""))
    engine = symift.compile(symift.parse(argmin, "argmin.ift"))
    rng = np.random.default_rng(11)
    n = 7
    for r in (1.0, 20.0, 2.0):   # ‖v‖ ≈ 5: outside the ball, inside, outside
        params = {"v": 2 * rng.standard_normal(n), "t": 0.7, "l": -rng.uniform(0.2, 1, n), "u": rng.uniform(0.2, 1, n),
                  "r": r}
        mine = {k: params[k] for k in rule.params}
        theirs = {k: params[k] for k in engine.params}
        np.testing.assert_allclose(rule(**mine)["x"], engine(**theirs)["x"], atol=1e-9)
        for p_rule, p_engine in pairs:
            J1 = jax.jacfwd(lambda a, p=p_rule, q=mine: rule(**{**q, p: a})["x"])(jnp.asarray(mine[p_rule]))
            J2 = jax.jacfwd(lambda a, p=p_engine, q=theirs: engine(**{**q, p: a})["x"])(
                jnp.asarray(theirs[p_engine]))
            np.testing.assert_allclose(J1, J2, atol=1e-8, err_msg=f"{operator}: d/d{p_rule}")


def test_projected_gradient_on_the_simplex_derives_the_support_form():
    d = derive("simplex_qp_pgd")
    text = report(d)
    assert "where p = proj_simplex(x - eta * (Q @ x - c)) (= x at the solution): dp = s∘du - s (sᵀdu)/(1ᵀs)" in text
    assert "K = s sᵀ - (1ᵀ s) diag(s)" in text and "S₁ = I + K/(1ᵀ s) - eta K Q/(1ᵀ s)" in text
    assert "dx/dc = -eta S₁⁻¹ K/(1ᵀ s)" in text     # η S⁻¹ P_s, P_s = D_s − ssᵀ/1ᵀs
    assert d.indicators["s"].startswith("s = 1[p > 0], the support of proj_simplex(")


def test_projected_gradient_on_the_simplex_is_exact_where_mirror_descent_stops_at_the_boundary():
    rng = np.random.default_rng(5)
    n = 6
    Q, c = spd(rng, n) / n, rng.standard_normal(n)
    out = layer_of("simplex_qp_pgd")(Q=Q, c=c, eta=0.3)
    ref = simplex_qp_solve({"Q": Q, "c": c})["x"]
    assert 0 < int(np.sum(ref > 0)) < n, "a sparse solution"
    np.testing.assert_allclose(out["x"], ref, atol=1e-10)
    assert bool(out["regular"])
    np.testing.assert_array_equal(np.asarray(out["s"]) > 0, ref > 0)
    S = ref > 0
    P = np.diag(S * 1.0) - np.outer(S, S) / S.sum()
    J = jax.jacrev(lambda v: layer_of("simplex_qp_pgd")(Q=Q, c=v, eta=0.3)["x"])(jnp.asarray(c))
    np.testing.assert_allclose(J, 0.3 * np.linalg.solve(np.eye(n) - P + 0.3 * P @ Q, P), atol=1e-10)
    assert not bool(layer_of("simplex_qp_md")(Q=Q, c=c, eta=0.3)["regular"])   # flagged, not wrong


@pytest.mark.parametrize("scale, inside", [(3.0, True), (0.5, False)])
def test_least_squares_in_a_ball_inside_and_on_the_sphere(scale, inside):
    """proj_l2ball's scalar indicator: inside the ball the least-squares Jacobian (AᵀA)⁻¹Aᵀ, on the
    sphere the trust-region one; no division by the indicator (s = 0 inside) in the printed form."""
    from catalogue import ls_ball_solve
    text = report(derive("ls_ball_pgd"))
    jacobians = text.split("\nJacobians:")[1]  # not the header: the file's path may hold "/s" (/tmp/symift/...)
    assert "/s" not in jacobians.replace("/s)", "") and "dx/dr = s S₁⁻¹ x/r" in jacobians
    rng = np.random.default_rng(2)
    A, b = rng.standard_normal((10, 4)), rng.standard_normal(10)
    r = scale * np.linalg.norm(np.linalg.lstsq(A, b, rcond=None)[0])
    eta = 1.0 / np.linalg.norm(A, 2) ** 2
    layer = layer_of("ls_ball_pgd")
    out = layer(A=A, b=b, r=r, eta=eta)
    assert bool(out["regular"]) and float(out["s"]) == (0.0 if inside else 1.0)
    np.testing.assert_allclose(out["x"], ls_ball_solve({"A": A, "b": b, "r": r})["x"], atol=1e-10)
    J = np.asarray(jax.jacfwd(lambda v: layer(A=A, b=v, r=r, eta=eta)["x"])(jnp.asarray(b)))
    if inside:
        np.testing.assert_allclose(J, np.linalg.pinv(A), atol=1e-10)
    eps = 1e-6
    fd = np.stack([(ls_ball_solve({"A": A, "b": b + eps * e, "r": r})["x"] -
                    ls_ball_solve({"A": A, "b": b - eps * e, "r": r})["x"]) / (2 * eps) for e in np.eye(10)], 1)
    np.testing.assert_allclose(J, fd, atol=1e-7)
