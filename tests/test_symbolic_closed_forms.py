"""Closed forms as a person writes them (symbolic.factor): golden tests against the hand forms of
the literature, symbolically in the canonical algebra and by finite differences of re-solves; the
factored forms equal the expanded ones everywhere; named quantities are defined once."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from catalogue import eqqp_solve, optnet_case, ridge_solve, sigmoid_solve, spd
from helpers import COUPLED, EXAMPLES, derive, evaluate, fd_jacobian, same

from symift.render.latex.document import Document
from symift.render.text import report
from symift.symbolic.expr import Named, written_out
from symift.symbolic.printing import text


# --------------------------------------------------------------------------- OptNet (Amos & Kolter 2017)
def optnet_hand_forms(d):
    """With K = Q⁻¹ − Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹AQ⁻¹ (the inverse of Q on the null space of A) and
    S = D − (I − D) G K Gᵀ, D = diag(s) (s = 1 on the inactive set):
    dz/dh = −K Gᵀ S⁻¹ (I − D), dz/dq = −K − K Gᵀ S⁻¹ (I − D) G K."""
    Q, A, G = (d.symbols[k] for k in ("Q", "A", "G"))
    s = d.symbols["s"]
    n, p = Q.shape[0], G.shape[0]
    Qi = sp.Inverse(Q)
    K = Qi - Qi * A.T * sp.Inverse(A * Qi * A.T) * A * Qi
    D, Ip = sp.DiagMatrix(s), sp.Identity(p)
    S = sp.Inverse(D - (Ip - D) * G * K * G.T)
    return {"h": -K * G.T * S * (Ip - D), "q": -K - K * G.T * S * (Ip - D) * G * K}, n


def test_optnet_dz_dh_is_one_short_product_with_its_quantities_named_once():
    d = derive("optnet_qp")
    J = d.jacobian("z", "h")
    assert text(J) == "-K Gᵀ S₂⁻¹ diag(1 - s)"
    out = report(d, params=["h"])
    line = next(x for x in out.splitlines() if x.strip().startswith("dz/dh ="))
    assert len(line.strip()) <= 140
    where = out.split("\nwhere\n")[1].split("\n\n")[0].splitlines()
    assert [x.split(" = ")[0].strip() for x in where] == ["K", "S₂"]   # each once, K before S₂ uses it
    assert where[0].strip() == "K = Q⁻¹ - Q⁻¹ Aᵀ (A Q⁻¹ Aᵀ)⁻¹ A Q⁻¹"
    assert where[1].strip() == "S₂ = diag(s) - diag(1 - s) G K Gᵀ"
    assert "S₂ is nonsingular" in out and "pivot S₂ from" in out


def test_optnet_closed_forms_are_the_hand_forms():
    d = derive("optnet_qp")
    hand, _ = optnet_hand_forms(d)
    for param, form in hand.items():
        assert same(d, d.jacobian("z", param), form), param
        assert same(d, d.jacobian("z", param, expand=True), form), param
    assert not same(d, d.jacobian("z", "h"), -hand["h"])  # the check can fail


@pytest.mark.parametrize("n", (4, 7))
def test_optnet_hand_forms_against_finite_differences(n):
    d = derive("optnet_qp")
    hand, _ = optnet_hand_forms(d)
    rng = np.random.default_rng(150 + n)
    p, solve, active, _ = optnet_case(rng, n, m=2)
    vals = dict(p, **solve(p), s=(~active).astype(float))
    dims = {"n": n, "m": 2, "p": n}
    for param, form in hand.items():
        F = fd_jacobian(solve, p, "z", param)
        np.testing.assert_allclose(evaluate(form, vals, dims), F, atol=1e-6)
        np.testing.assert_allclose(evaluate(d.jacobian("z", param), vals, dims), F, atol=1e-6)


def test_optnet_results_fit_three_display_lines_in_the_document():
    d = derive("optnet_qp")
    doc = Document(d)
    tex = doc.render()
    for unknown in d.unknowns:
        for p in d.parameters:
            lines = doc.lines(doc.derivative(unknown, p), [doc.terms(d.jacobian(unknown, p))])
            assert len(lines) <= 3, (unknown, p, lines)
    assert r"K &= Q^{-1} - Q^{-1} A^{\top} S_{1}^{-1} A Q^{-1}" in tex   # defined where first used
    assert tex.index(r"K &= Q^{-1}") < tex.index(r"S_{2} &=")


def test_the_symmetric_parameter_merges_transposes_in_stationarity():
    d = derive("optnet_qp")
    grad = text(d.kkt["stationarity in z"][0])
    assert "Q z" in grad and "Qᵀ" not in grad and "1/2" not in grad


def test_the_lagrangian_reads_objective_then_constraints_in_declaration_order():
    out = report(derive("softmax"))
    L = next(x for x in out.splitlines() if x.strip().startswith("L = "))
    assert L.strip() == "L = (1ᵀ z∘log(z)) - (thetaᵀ z) + nu*((1ᵀ z) - 1) + (lamᵀ (-z))"
    L = next(x for x in report(derive("optnet_qp")).splitlines() if x.strip().startswith("L = "))
    assert L.index("lamᵀ") < L.index("nuᵀ")   # lam is declared first in optnet_qp.ift


# --------------------------------------------------------------------------- eq-QP, ridge, sigmoid
def test_eqqp_golden():
    """dz/dq = −K with K as above; dz/db = Q⁻¹Aᵀ(AQ⁻¹Aᵀ)⁻¹ (e.g. Boyd & Vandenberghe §10.1)."""
    d = derive("eqqp")
    Q, A = d.symbols["Q"], d.symbols["A"]
    Qi = sp.Inverse(Q)
    K = Qi - Qi * A.T * sp.Inverse(A * Qi * A.T) * A * Qi
    assert text(d.jacobian("z", "q")) == "-K" and same(d, d.jacobian("z", "q"), -K)
    assert text(d.jacobian("z", "b")) == "Q⁻¹ Aᵀ (A Q⁻¹ Aᵀ)⁻¹"
    rng = np.random.default_rng(3)
    n, m = 5, 2
    p = {"Q": spd(rng, n), "q": rng.standard_normal(n), "A": rng.standard_normal((m, n)), "b": rng.standard_normal(m)}
    vals, dims = dict(p, **eqqp_solve(p)), {"n": n, "m": m}
    np.testing.assert_allclose(evaluate(-K, vals, dims), fd_jacobian(eqqp_solve, p, "z", "q"), atol=1e-7)


def test_ridge_golden():
    """dw/dy = (XᵀX + λI)⁻¹Xᵀ, dw/dλ = −(XᵀX + λI)⁻¹w (Blondel et al. 2021, Figure 1)."""
    d = derive("ridge")
    X, w, lam = (d.symbols[k] for k in ("X", "w", "lam"))
    H = sp.Inverse(X.T * X + lam * sp.Identity(X.shape[1]))
    assert same(d, d.jacobian("w", "y"), H * X.T) and same(d, d.jacobian("w", "lam"), -H * w)
    assert text(d.jacobian("w", "y")) == "(lam I + Xᵀ X)⁻¹ Xᵀ" and not d.definitions  # short: not named
    rng = np.random.default_rng(4)
    p = {"X": rng.standard_normal((7, 4)), "y": rng.standard_normal(7), "lam": 0.7}
    vals, dims = dict(p, **ridge_solve(p)), {"m": 7, "n": 4}
    for param, form in (("y", H * X.T), ("lam", -H * w)):
        np.testing.assert_allclose(np.reshape(evaluate(form, vals, dims), (4, -1)),
                                   fd_jacobian(ridge_solve, p, "w", param), atol=1e-7)


def test_sigmoid_golden():
    """The logistic function's derivative, diag(x∘(1 − x))."""
    d = derive("sigmoid")
    x = d.symbols["x"]
    form = sp.DiagMatrix(sp.HadamardProduct(x, sp.OneMatrix(*x.shape) - x))
    assert text(d.jacobian("x", "y")) == "diag(x∘(1 - x))" and same(d, d.jacobian("x", "y"), form)
    p = {"y": np.random.default_rng(5).standard_normal(6)}
    vals = dict(p, **sigmoid_solve(p))
    np.testing.assert_allclose(evaluate(form, vals, {"n": 6}), fd_jacobian(sigmoid_solve, p, "x", "y"), atol=1e-8)


# --------------------------------------------------------------------------- every example
#: Where the canonical algebra cannot decide equality (opaque vectors such as (X w)∘s, row-vector
#: Hadamard products), the factored and expanded forms are compared by their values only.
NUMERIC_ONLY = {"constrained_softmax", "entmax15", "hinge_svm", "lml"}


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.ift") if p.stem not in COUPLED))
def test_factored_equals_expanded(name):
    """The factored closed form (with its names written out) is the expanded one, for every
    variable and multiplier and every parameter, and never longer; each name is defined once,
    after the names it uses."""
    d = derive(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    dims = {x.name: k for x, k in zip(d.problem.dims, (5, 2, 3, 4, 6), strict=False)}
    for v in d.unknowns:
        for p in d.parameters:
            J, E = d.jacobian(v, p), d.jacobian(v, p, expand=True)
            assert len(text(J)) <= len(text(E)), (v, p)
            if name not in NUMERIC_ONLY:
                assert same(d, J, E) and same(d, written_out(J), E), (v, p)
            values = _point(d, J, E, dims, rng)
            a, b = np.asarray(evaluate(J, values, dims)), np.asarray(evaluate(E, values, dims))
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8 * (1 + np.abs(b).max()), err_msg=f"{v} {p}")
    seen = set()
    for name_, q in d.definitions.items():
        assert isinstance(q, Named) and q.name == name_
        inner = {x.name for x in sp.preorder_traversal(q.definition) if isinstance(x, Named)}
        assert inner <= seen, (name_, inner)
        seen.add(name_)


def _point(d, J, E, dims, rng) -> dict:
    """Random values for every symbol of J and E: entries in [0.2, 1] (logs and powers defined),
    indicators in {0, 1} as the derivation's facts allow them (two bounds never both active, the
    two sides of |w| or pos(a) never both inactive — nor both active: that is the kink, where the
    pivots are singular), a well-conditioned square matrix (I plus noise)."""
    symbols = sorted({s.name: s for e in (written_out(J), E) for s in sp.sympify(e).free_symbols
                      if s.name not in dims}.items())
    indicators = {v[0].name: p for p, v in d.analysis.alg.vectors.items() if p in d.analysis.facts.indicators}
    out = {}
    for k, s in symbols:
        if not isinstance(s, sp.MatrixSymbol):  # a scalar indicator (proj_l2ball's s) is 0 or 1
            out[k] = float(rng.integers(0, 2)) if s in d.analysis.facts.indicators else rng.uniform(0.5, 1.5)
            continue
        shape = tuple(int(x) if x.is_Integer else dims[str(x)] for x in s.shape)
        if k in indicators:  # a support is never empty (proj_simplex divides by 1ᵀs)
            out[k] = rng.integers(0, 2, size=shape).astype(float)
            out[k].flat[0] = 1.0
        elif shape[0] == shape[1] and shape[0] > 1:
            a = 0.1 * rng.standard_normal(shape)
            out[k] = a @ a.T + np.eye(shape[0])
        else:
            out[k] = rng.uniform(0.2, 1.0, size=shape)
    names = {p: n for n, p in indicators.items()}
    for a, b in d.analysis.facts.exclusive:   # (1 − a)(1 − b) = 0
        if names.get(a) in out and names.get(b) in out:
            out[names[a]] = np.where(out[names[b]] == 0, 1.0, out[names[a]])
    for a, b in d.analysis.facts.disjoint:    # a∘b = 0, and not both 0 either (that is the kink)
        if names.get(a) in out and names.get(b) in out:
            out[names[b]] = 1.0 - out[names[a]]
    return out
