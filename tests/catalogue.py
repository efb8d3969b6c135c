"""The catalogue of problems with known solutions and Jacobians (optimistix keeps one like it).

Each entry: the example file, a numerical re-solve ``solve(params) -> solution dict`` written
independently of symift (closed forms, numpy linear algebra, root finding), a random
parameter generator, and the expected closed forms as text.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import brentq

EXAMPLES = "examples"


def softmax_solve(p):
    t = p["theta"]
    z = np.exp(t - t.max())
    return {"z": z / z.sum()}


def sparsemax_solve(p):
    """Euclidean projection onto the simplex (sort-based, Martins & Astudillo 2016)."""
    t = p["theta"]
    u = np.sort(t)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, len(t) + 1)
    support = u - (css - 1) / k > 0
    rho = k[support][-1]
    tau = (css[rho - 1] - 1) / rho
    return {"z": np.maximum(t - tau, 0.0)}


def ridge_solve(p):
    X, y, lam = p["X"], p["y"], p["lam"]
    n = X.shape[1]
    return {"w": np.linalg.solve(X.T @ X + lam * np.eye(n), X.T @ y)}


def eqqp_solve(p):
    Q, q, A, b = p["Q"], p["q"], p["A"], p["b"]
    Q = 0.5 * (Q + Q.T)  # ½zᵀQz sees the symmetric part (FD perturbs single entries)
    n, m = Q.shape[0], A.shape[0]
    K = np.block([[Q, A.T], [A, np.zeros((m, m))]])
    sol = np.linalg.solve(K, np.concatenate([-q, b]))
    return {"z": sol[:n], "nu": sol[n:]}


def optnet_solve(p, active):
    """The QP on a given active set (equalities Az = b and G_A z = h_A), then a KKT check."""
    Q, q, A, b, G, h = p["Q"], p["q"], p["A"], p["b"], p["G"], p["h"]
    Q = 0.5 * (Q + Q.T)  # ½zᵀQz sees the symmetric part (FD perturbs single entries)
    n, m = Q.shape[0], A.shape[0]
    C = np.vstack([A, G[active]])
    d = np.concatenate([b, h[active]])
    k = C.shape[0]
    K = np.block([[Q, C.T], [C, np.zeros((k, k))]])
    sol = np.linalg.solve(K, np.concatenate([-q, d]))
    z, nu, lam_a = sol[:n], sol[n:n + m], sol[n + m:]
    lam = np.zeros(G.shape[0])
    lam[active] = lam_a
    slack = h - G @ z
    assert np.all(lam[active] > 0) and np.all(slack[~active] > 0), "active set changed"
    return {"z": z, "nu": nu, "lam": lam}


def circle_solve(p):
    return {"x": np.sqrt(1 - p["theta"] ** 2)}


def fixed_point_solve(p):
    th = p["theta"]
    return {"x": brentq(lambda x: x - np.cos(x) - th, -10, 10, xtol=1e-14)}


def box_projection_solve(p):
    return {"x": np.clip(p["theta"], p["l"], p["u"])}


def entmax15_solve(p):
    """1.5-entmax: p = [θ/2 − τ]₊² with Σp = 1, τ by bisection (Peters et al. 2019)."""
    t = p["theta"]
    lo, hi = t.max() / 2 - 1, t.max() / 2
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if (np.maximum(t / 2 - tau, 0) ** 2).sum() > 1 else (lo, tau)
    return {"p": np.maximum(t / 2 - (lo + hi) / 2, 0) ** 2}


def lasso_solve(p, iters=5000):
    """The lasso: the support and signs by proximal gradient (ISTA), then the exact solution on
    them, w_S = (X_Sᵀ X_S)⁻¹ (X_Sᵀ y − λ sign(w_S)), checked against the optimality conditions."""
    X, y, lam = p["X"], p["y"], p["lam"]
    L = np.linalg.norm(X, 2) ** 2
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        v = w - X.T @ (X @ w - y) / L
        w = np.sign(v) * np.maximum(np.abs(v) - lam / L, 0.0)
    S = w != 0
    exact = np.zeros_like(w)
    exact[S] = np.linalg.solve(X[:, S].T @ X[:, S], X[:, S].T @ y - lam * np.sign(w[S]))
    g = X.T @ (y - X @ exact)
    assert np.all(np.sign(exact[S]) == np.sign(w[S])) and np.all(np.abs(g[~S]) < lam), "support changed"
    return {"w": exact}


def constrained_softmax_solve(p):
    """z = min(exp(θ − τ), u) with Σz = 1, τ by bisection (Martins & Kreutzer 2017)."""
    t, u = p["theta"], p["u"]

    def excess(tau):
        return np.minimum(np.exp(t - tau), u).sum() - 1

    tau = brentq(excess, t.min() - np.log(len(t)) - 50, t.max() + 50, xtol=1e-15, rtol=1e-15)
    return {"z": np.minimum(np.exp(t - tau), u)}


def sigmoid(v):
    return 0.5 * (1 + np.tanh(v / 2))


def lml_solve(p):
    """x = σ(θ − ν) with Σx = k, ν by root finding (Amos, Koltun & Kolter 2019)."""
    t, k = p["theta"], p["k"]
    nu = brentq(lambda nu: sigmoid(t - nu).sum() - k, t.min() - 50, t.max() + 50, xtol=1e-15, rtol=1e-15)
    return {"x": sigmoid(t - nu)}


def sigmoid_solve(p):
    return {"x": sigmoid(p["y"])}


def elastic_net_solve(p, iters=5000):
    """As lasso_solve, with the ridge term γ‖w‖²/2: w_S = (X_SᵀX_S + γI)⁻¹ (X_Sᵀy − λ sign(w_S))."""
    X, y, lam, gam = p["X"], p["y"], p["lam"], p["gam"]
    L = np.linalg.norm(X, 2) ** 2 + gam
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        v = w - (X.T @ (X @ w - y) + gam * w) / L
        w = np.sign(v) * np.maximum(np.abs(v) - lam / L, 0.0)
    S = w != 0
    exact = np.zeros_like(w)
    XS = X[:, S]
    exact[S] = np.linalg.solve(XS.T @ XS + gam * np.eye(S.sum()), XS.T @ y - lam * np.sign(w[S]))
    g = X.T @ (y - X @ exact) - gam * exact
    assert np.all(np.sign(exact[S]) == np.sign(w[S])) and np.all(np.abs(g[~S]) < lam), "support changed"
    return {"w": exact}


BOX_QP = """dim n
param Q[n, n] pd
param c[n]
param l[n]
param u[n] > l
var x[n]
minimize 0.5 * quad(x, Q) - dot(c, x)
subject to
    lo: x >= l
    hi: x <= u
"""


def box_qp_reference(Q, c, lower, upper):
    """Exact solution by enumerating the active sets (free / at l / at u) of a small problem."""
    n = len(c)
    for pattern in itertools.product((0, 1, 2), repeat=n):
        pattern = np.array(pattern)
        x = np.where(pattern == 1, lower, np.where(pattern == 2, upper, 0.0))
        f = pattern == 0
        if f.any():
            x[f] = np.linalg.solve(Q[np.ix_(f, f)], c[f] - Q[np.ix_(f, ~f)] @ x[~f])
        grad = Q @ x - c
        if np.all(x >= lower - 1e-12) and np.all(x <= upper + 1e-12) and np.all(grad[pattern == 1] >= -1e-12) \
                and np.all(grad[pattern == 2] <= 1e-12):
            return x
    raise AssertionError("no active set fits")


def box_qp_pgd_solve(p):
    """The fixed point of projected gradient is the box QP's minimiser (any step η > 0)."""
    Q = 0.5 * (p["Q"] + p["Q"].T)  # ½xᵀQx sees the symmetric part (FD perturbs single entries)
    return {"x": box_qp_reference(Q, p["c"], p["l"], p["u"])}


def nnls_solve(p):
    """Nonnegative least squares by scipy's active-set method (Lawson & Hanson), then the exact
    solution on its support."""
    from scipy.optimize import nnls
    A, b = p["A"], p["b"]
    x = nnls(A, b)[0]
    S = x > 0
    exact = np.zeros_like(x)
    exact[S] = np.linalg.lstsq(A[:, S], b, rcond=None)[0]
    g = A.T @ (A @ exact - b)
    assert np.all(exact[S] > 0) and np.all(g[~S] > 0), "support changed"
    return {"x": exact}


def simplex_qp_interior_solve(p):
    """min ½xᵀQx − cᵀx on the simplex where the solution is interior: the QP with 1ᵀx = 1 only,
    x = Q⁻¹(c − ν1) with ν from 1ᵀx = 1, checked positive."""
    Q = 0.5 * (p["Q"] + p["Q"].T)
    a, b = np.linalg.solve(Q, p["c"]), np.linalg.solve(Q, np.ones(len(p["c"])))
    x = a - (a.sum() - 1) / b.sum() * b
    assert np.all(x > 0), "the solution is on the boundary"
    return {"x": x}


def simplex_qp_solve(p):
    """min ½xᵀQx − cᵀx over the simplex, exactly: the support S whose equality-constrained QP
    (x_S = Q_SS⁻¹(c_S − ν1), 1ᵀx_S = 1) is positive and whose gradient off S is ≥ −ν."""
    Q, c = 0.5 * (p["Q"] + p["Q"].T), p["c"]
    n = len(c)
    for size in range(1, n + 1):
        for S in itertools.combinations(range(n), size):
            S = list(S)
            a, b = np.linalg.solve(Q[np.ix_(S, S)], c[S]), np.linalg.solve(Q[np.ix_(S, S)], np.ones(size))
            nu = (a.sum() - 1) / b.sum()
            x = np.zeros(n)
            x[S] = a - nu * b
            g = Q @ x - c + nu   # stationarity: g = λ ≥ 0 off the support, 0 on it
            if np.all(x[S] > 0) and np.all(g > -1e-12):
                return {"x": x}
    raise AssertionError("no support fits")


def ls_ball_solve(p):
    """min ½‖Ax − b‖² over ‖x‖ ≤ r: least squares if inside, else (AᵀA + μI)⁻¹Aᵀb with ‖x‖ = r,
    μ > 0 by root finding (the trust-region subproblem)."""
    A, b, r = p["A"], p["b"], p["r"]
    n = A.shape[1]
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    if np.linalg.norm(x) <= r:
        return {"x": x}

    def x_of(mu):
        return np.linalg.solve(A.T @ A + mu * np.eye(n), A.T @ b)
    mu = brentq(lambda mu: np.linalg.norm(x_of(mu)) - r, 0.0, 1e8, xtol=1e-15, rtol=1e-15)
    return {"x": x_of(mu)}


def spd(rng, n):
    L = rng.standard_normal((n, n))
    return L @ L.T + n * np.eye(n)


def optnet_case(rng, n, m=1):
    """OptNet QP data with a known active set (half of Gz <= h) and strict complementarity.

    Returns (params, re-solve on that active set, active mask, the planted solution z0).
    """
    p = n
    Q, G, A = spd(rng, n), rng.standard_normal((p, n)), rng.standard_normal((m, n))
    z0 = rng.standard_normal(n)
    active = np.zeros(p, bool)
    active[: p // 2] = True
    lam0 = np.where(active, rng.uniform(0.5, 1.5, p), 0.0)
    h = G @ z0 + np.where(active, 0.0, rng.uniform(0.5, 1.5, p))
    q = -(Q @ z0 + G.T @ lam0 + A.T @ rng.standard_normal(m))
    params = {"Q": Q, "q": q, "G": G, "h": h, "A": A, "b": A @ z0}
    return params, (lambda prm: optnet_solve(prm, active)), active, z0
