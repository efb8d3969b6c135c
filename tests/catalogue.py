"""The catalogue of problems with known solutions and Jacobians (optimistix keeps one like it).

Each entry: the example file, a numerical re-solve ``solve(params) -> solution dict`` written
independently of symift (closed forms, numpy linear algebra, root finding), a random
parameter generator, and the expected closed forms as text.
"""
from __future__ import annotations

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
