"""The breadth issue's layers against the obvious peers, side by side in one process (float64, CPU).

* Box projection x = clip(θ, l, u) (examples/box_projection.ift), batch × n: symift's layer vs
  jaxopt's ``projection_box`` (jnp.clip, differentiated by autodiff) — the floor a closed-form
  layer can reach.
* The multiclass SVM dual (examples/multiclass_svm.ift, a coupled matrix variable m × k): symift's
  layer (interior point; the closed form in vec(B), and the dense LU of ∂F/∂x) vs jaxopt's
  ProjectedGradient with row-wise projection_simplex and implicit differentiation, and vs cvxpylayers.
* Lasso (examples/lasso.ift), X ∈ ℝ^{m×n}, batch of y: symift's layer (interior point on the epigraph,
  closed-form generalized Jacobian) vs jaxopt's ProximalGradient with ``prox_lasso`` and implicit
  differentiation (its default linear solve), and vs cvxpylayers (the same problem in CVXPY,
  differentiated by diffcp).

fwd+bwd is the value and gradient of Σ w∘x over the batch with respect to θ (box) or y (lasso).
Accuracy: max |gradient − the exact one| (box: autodiff of clip; lasso: the hand form
D_s(D_s XᵀX D_s + I − D_s)⁻¹D_s Xᵀ on the exact support).  Medians of --repeat runs after a warm-up.

    python benchmarks/breadth.py [--repeat 5] [--box-n 1000 100000] [--batch 64] [--m 200] [--n 50]
                                 [--svm 100 10 20] [--only box lasso svm]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed
sys.path.insert(0, str(ROOT / "tests"))  # the independent reference solutions

import jax
import jax.numpy as jnp
import numpy as np
from catalogue import lasso_solve
from layers import timed as layers_timed

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"


def timed(f, *args, repeat):
    """Median seconds of f(*args) after a warm-up run (benchmarks/layers.py's timer)."""
    return layers_timed(f, *args, repeat=repeat)[0]


def box(ns, batch, repeat):
    from jaxopt.projection import projection_box
    problem = symift.load(EXAMPLES / "box_projection.ift")
    layer, bare = symift.compile(problem), symift.compile(problem, checks=False)
    print(f"\nBox projection, batch {batch}: fwd+bwd (grad of Σ w∘x wrt θ), median of {repeat}; "
          "'no checks': compile(..., checks=False), without the status fields")
    print(f"{'n':>8} {'symift ms':>10} {'no checks':>10} {'jaxopt ms':>10} {'ratio':>7} {'no checks':>10} "
          f"{'max |Δgrad|':>12}")
    for n in ns:
        rng = np.random.default_rng(n)
        theta = jnp.asarray(2 * rng.standard_normal((batch, n)))
        lo = jnp.asarray(-rng.uniform(0.5, 1.0, (batch, n)))
        hi = jnp.asarray(rng.uniform(0.5, 1.0, (batch, n)))
        w = jnp.asarray(rng.standard_normal((batch, n)))

        def ours(t, w, lo, hi, layer=layer):  # data as arguments: nothing for XLA to constant-fold
            return jnp.sum(w * jax.vmap(lambda a, b, c: layer(theta=a, l=b, u=c)["x"])(t, lo, hi))

        def peer(t, w, lo, hi):
            return jnp.sum(w * jax.vmap(lambda a, b, c: projection_box(a, (b, c)))(t, lo, hi))

        f_ours, f_peer = jax.jit(jax.value_and_grad(ours)), jax.jit(jax.value_and_grad(peer))
        f_bare = jax.jit(jax.value_and_grad(lambda *a: ours(*a, layer=bare)))
        args = (theta, w, lo, hi)
        t_ours, t_bare, t_peer = (timed(f, *args, repeat=repeat) for f in (f_ours, f_bare, f_peer))
        err = float(jnp.max(jnp.abs(f_ours(*args)[1] - f_peer(*args)[1])))
        print(f"{n:>8} {1e3 * t_ours:>10.2f} {1e3 * t_bare:>10.2f} {1e3 * t_peer:>10.2f} {t_ours / t_peer:>7.2f} "
              f"{t_bare / t_peer:>10.2f} {err:>12.1e}")


def lasso_exact(X, y, lam):
    """The exact lasso solution (tests/catalogue.py's active-set re-solve) and the hand-form
    Jacobian D_s(D_s XᵀX D_s + I − D_s)⁻¹D_s Xᵀ on its support."""
    w = lasso_solve({"X": X, "y": y, "lam": lam}, iters=20000)["w"]
    D = np.diag((w != 0).astype(float))
    J = D @ np.linalg.solve(D @ X.T @ X @ D + np.eye(X.shape[1]) - D, D @ X.T)
    return w, J


def lasso(m, n, batch, repeat, lam):
    from jaxopt import ProximalGradient
    from jaxopt.prox import prox_lasso
    layer = symift.compile(symift.load(EXAMPLES / "lasso.ift"))
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(m))
    ys = jnp.asarray(rng.standard_normal((batch, m)))
    wts = jnp.asarray(rng.standard_normal((batch, n)))
    refs = [lasso_exact(np.asarray(X), np.asarray(y), lam) for y in ys]
    exact_grad = np.stack([J.T @ np.asarray(w) for (_, J), w in zip(refs, wts, strict=True)])
    support = np.mean([np.count_nonzero(r[0]) for r in refs])

    def ours(Y):
        return jnp.sum(wts * jax.vmap(lambda y: layer(X=X, y=y, lam=lam)["w"])(Y))

    def f(w, lam_, X_, y):
        return 0.5 * jnp.sum((X_ @ w - y) ** 2)

    pg = ProximalGradient(fun=f, prox=prox_lasso, tol=1e-10, maxiter=20000, implicit_diff=True, acceleration=True)

    def peer(Y):
        return jnp.sum(wts * jax.vmap(lambda y: pg.run(jnp.zeros(n), lam, lam, X, y).params)(Y))

    rows = [("symift", jax.jit(jax.value_and_grad(ours))),
            ("jaxopt ProximalGradient", jax.jit(jax.value_and_grad(peer)))]
    print(f"\nLasso m = {m}, n = {n}, lam = {lam}, batch {batch} (mean support {support:.1f}): "
          f"fwd+bwd (grad of Σ w∘x wrt y), median of {repeat}")
    print(f"{'':>26} {'ms':>10} {'vs symift':>10} {'max |Δgrad|':>12}")
    base = None
    for name, fn in rows:
        t = timed(fn, ys, repeat=repeat)
        base = base or t
        err = float(np.max(np.abs(np.asarray(fn(ys)[1]) - exact_grad)))
        print(f"{name:>26} {1e3 * t:>10.1f} {t / base:>10.2f} {err:>12.1e}")
    try:
        import cvxpy as cp
        from cvxpylayers.jax import CvxpyLayer
    except ImportError as exc:
        print(f"{'cvxpylayers':>26} not installed ({exc})")
        return
    w_, y_ = cp.Variable(n), cp.Parameter(m)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(np.asarray(X) @ w_ - y_) + lam * cp.norm1(w_)))
    cvx = CvxpyLayer(problem, parameters=[y_], variables=[w_])

    def cvx_loss(Y):
        (sol,) = cvx(Y, solver_args={"eps": 1e-10})
        return jnp.sum(wts * sol)

    g = jax.value_and_grad(cvx_loss)
    t = timed(g, ys, repeat=repeat)
    err = float(np.max(np.abs(np.asarray(g(ys)[1]) - exact_grad)))
    print(f"{'cvxpylayers (diffcp)':>26} {1e3 * t:>10.1f} {t / base:>10.2f} {err:>12.1e}")


def svm(m, k, p, repeat, lam=1.0):
    """The multiclass SVM dual (examples/multiclass_svm.ift): the gradient of Σ W∘B wrt X and lam."""
    from jaxopt import ProjectedGradient
    from jaxopt.projection import projection_simplex
    d = symift.derive(symift.load(EXAMPLES / "multiclass_svm.ift"))
    layer = symift.compile(d)
    lu = symift.compile(d, backward="lu")  # the tangent system by a dense LU of ∂F/∂x, no closed form
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((m, p)))
    Y = jnp.asarray(np.eye(k)[rng.integers(0, k, m)])
    W = jnp.asarray(rng.standard_normal((m, k)))

    def ours(X, lam, layer=layer):
        return jnp.sum(W * layer(X=X, Y=Y, lam=lam)["B"])

    def objective(B, X, lam):  # minimize −f: the dual as jaxopt's multiclass SVM example writes it
        return jnp.sum((X.T @ (Y - B)) ** 2) / (2 * lam) - jnp.sum(B * (1 - Y))

    pg = ProjectedGradient(fun=objective, projection=lambda B, _: jax.vmap(projection_simplex)(B), tol=1e-10,
                           maxiter=20000, implicit_diff=True, acceleration=True)

    def peer(X, lam):
        return jnp.sum(W * pg.run(jnp.full((m, k), 1.0 / k), None, X, lam).params)

    rows = [("symift (closed form)", jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))),
            ("symift backward='lu'", jax.jit(jax.value_and_grad(lambda X, lam: ours(X, lam, lu), argnums=(0, 1)))),
            ("jaxopt ProjectedGradient", jax.jit(jax.value_and_grad(peer, argnums=(0, 1))))]
    # the truth: central differences of re-solves (symift's forward solve, exact to ~1e-12) along a
    # random direction E of X, and along lam
    h, E = 1e-6, jnp.asarray(rng.standard_normal((m, p)))
    fd_X = float((ours(X + h * E, lam) - ours(X - h * E, lam)) / (2 * h))
    fd_lam = float((ours(X, lam + h) - ours(X, lam - h)) / (2 * h))
    print(f"\nMulticlass SVM dual m = {m}, k = {k}, p = {p}, lam = {lam}: fwd+bwd (grad of Σ W∘B wrt X and lam), "
          f"median of {repeat}; errors against central differences of re-solves (d/dlam = {fd_lam:.4f}, "
          f"dX·E = {fd_X:.4f})")
    print(f"{'':>26} {'ms':>10} {'vs symift':>10} {'|err| d/dlam':>13} {'|err| dX·E':>11}")
    base = None
    for name, fn in rows:
        t = timed(fn, X, lam, repeat=repeat)
        base = base or t
        g = fn(X, lam)[1]
        print(f"{name:>26} {1e3 * t:>10.1f} {t / base:>10.2f} {abs(float(g[1]) - fd_lam):>13.1e} "
              f"{abs(float(jnp.sum(g[0] * E)) - fd_X):>11.1e}")
    try:
        import cvxpy as cp
        from cvxpylayers.jax import CvxpyLayer
    except ImportError as exc:
        print(f"{'cvxpylayers':>26} not installed ({exc})")
        return
    # DPP allows X or 1/lam as a parameter, not both (their product): X only, lam fixed
    B_, Xt_ = cp.Variable((m, k)), cp.Parameter((p, m))
    Yn = np.asarray(Y)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(Xt_ @ (Yn - B_)) / (2 * lam) - cp.sum(cp.multiply(B_, 1 - Yn))),
                         [cp.sum(B_, axis=1) == 1, B_ >= 0])
    cvx = CvxpyLayer(problem, parameters=[Xt_], variables=[B_])

    def cvx_loss(X):
        (sol,) = cvx(X.T, solver_args={"eps": 1e-10})
        return jnp.sum(W * sol)
    g = jax.value_and_grad(cvx_loss)
    t = timed(g, X, repeat=repeat)
    err = abs(float(jnp.sum(g(X)[1] * E)) - fd_X)
    print(f"{'cvxpylayers (diffcp), X':>26} {1e3 * t:>10.1f} {t / base:>10.2f} {'':>13} {err:>11.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--box-n", type=int, nargs="+", default=[1000, 100000])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--m", type=int, default=200)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--lasso-batch", type=int, default=16)
    ap.add_argument("--svm", type=int, nargs=3, default=[100, 10, 20], metavar=("M", "K", "P"))
    ap.add_argument("--only", choices=["box", "lasso", "svm"], nargs="+", default=["box", "lasso", "svm"])
    args = ap.parse_args()
    print(f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s), float64")
    if "box" in args.only:
        box(args.box_n, args.batch, args.repeat)
    if "lasso" in args.only:
        lasso(args.m, args.n, args.lasso_batch, args.repeat, args.lam)
    if "svm" in args.only:
        svm(*args.svm, args.repeat)


if __name__ == "__main__":
    main()
