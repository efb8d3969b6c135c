"""Ridge regression, the running example of Blondel et al. 2021 (Figure 1), issue 4:
symift's layer for examples/ridge.ift against jaxopt's custom_root with the paper's optimality
condition F = ∇_w f (the objective's gradient, which is also symift's KKT residual), and against
plain autodiff through ``jnp.linalg.solve`` (the exact reference).

    w*(λ, y) = argmin_w ½‖Xw − y‖² + ½λ‖w‖²,   outer loss  L = ½‖X_val w* − y_val‖²

Timed: value and gradient of L w.r.t. (λ, y), jit-compiled, float64, median of --repeat runs after
a compile run, m = n ∈ --sizes.  The jaxopt forward is the paper's exact solve
(``jnp.linalg.solve(XᵀX + λI, Xᵀy)``), so jaxopt rows measure its implicit backward.

    python benchmarks/ridge.py [--sizes 100 1000] [--repeat 5]
    python benchmarks/ridge.py --quick           # sizes 100 300, 3 repeats
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from layers import temp_bytes, timed

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"


def objective(w, lam, X, y):
    r = X @ w - y
    return 0.5 * jnp.sum(r ** 2) + 0.5 * lam * jnp.sum(w ** 2)


def exact_ridge(lam, X, y):
    n = X.shape[1]
    return jnp.linalg.solve(X.T @ X + lam * jnp.eye(n), X.T @ y)


def jaxopt_ridge(solve=None):
    """The paper's Figure 1: custom_root(∇_w f) around an exact solve."""
    from jaxopt.implicit_diff import custom_root

    @custom_root(jax.grad(objective), solve=solve)
    def ridge_solver(init_w, lam, X, y):
        del init_w
        return exact_ridge(lam, X, y)

    return lambda lam, X, y: ridge_solver(None, lam, X, y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="m = n")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="sizes 100 300, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeat = [100, 300], 3
    from jaxopt import linear_solve

    layer = symift.compile(symift.load(EXAMPLES / "ridge.ift"))
    methods = [
        ("symift layer", lambda lam, X, y: layer(X=X, y=y, lam=lam)["w"]),
        ("autodiff of jnp.linalg.solve", exact_ridge),
        ("jaxopt custom_root normal-CG", jaxopt_ridge()),
        ("jaxopt custom_root CG", jaxopt_ridge(linear_solve.solve_cg)),
        ("jaxopt custom_root dense LU", jaxopt_ridge(linear_solve.solve_lu)),
    ]
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, float64, median of {args.repeat} after a compile run; value and grad of "
          f"the validation loss w.r.t. (lam, y); ratio = time / symift layer;\nerr = max relative error "
          f"of (dL/dlam, dL/dy) against autodiff of jnp.linalg.solve")
    print(f"{'m=n':>5} {'method':<30} {'val+grad ms':>12} {'ratio':>7} {'temp MiB':>9} {'dL/dlam':>12} "
          f"{'err lam':>8} {'err y':>8}")
    for n in args.sizes:
        m = n
        X = jnp.asarray(rng.standard_normal((m, n)))
        w_true = jnp.asarray(rng.standard_normal(n))
        y = X @ w_true + 0.1 * jnp.asarray(rng.standard_normal(m))
        Xv = jnp.asarray(rng.standard_normal((m, n)))
        yv = Xv @ w_true + 0.1 * jnp.asarray(rng.standard_normal(m))
        lam = jnp.asarray(10.0)
        # the same optimality condition: symift's residual is the objective's gradient
        w0 = jnp.asarray(rng.standard_normal(n))
        F_sym = layer.module.residual(X=X, y=y, lam=lam, w=w0)["stationarity in w"]
        F_err = float(jnp.max(jnp.abs(F_sym - jax.grad(objective)(w0, lam, X, y))))

        def outer_of(solver, X=X, Xv=Xv, yv=yv):
            def outer(lam_, y_):
                w = solver(lam_, X, y_)
                return 0.5 * jnp.sum((Xv @ w - yv) ** 2)
            return outer

        ref = jax.jit(jax.grad(outer_of(exact_ridge), argnums=(0, 1)))(lam, y)
        base = None
        for method, solver in methods:
            vg = jax.value_and_grad(outer_of(solver), argnums=(0, 1))
            f = jax.jit(vg)
            try:
                sec, _ = timed(f, lam, y, repeat=args.repeat)
                _, (g_lam, g_y) = f(lam, y)
                mem = temp_bytes(vg, lam, y)
            except Exception as exc:  # noqa: BLE001 - a failing method is a result too
                print(f"{n:>5} {method:<30} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            ms = 1e3 * sec
            base = base or ms  # the symift layer is the first row
            print(f"{n:>5} {method:<30} {ms:>12.3f} {ms / base:>7.2f} {mem / 2 ** 20:>9.2f} "
                  f"{float(g_lam):>12.5e} {rel(g_lam, ref[0]):>8.1e} {rel(g_y, ref[1]):>8.1e}", flush=True)
        print(f"{n:>5} (same optimality condition: max |symift residual - grad f| = {F_err:.1e})", flush=True)


def rel(a, b):
    """max |a − b| / max |b|."""
    return float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1e-300))


if __name__ == "__main__":
    main()
