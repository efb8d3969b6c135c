"""Implicit differentiation through a fixed point against unrolling the same solver (issue 14;
Blondel et al. 2021, Figure 2).

For the three optimality mappings of the paper, each written in symift's language:
  * proximal gradient: the lasso, w = soft_threshold(w − η∇f(w), ηλ)  (examples/lasso_prox.ift),
  * projected gradient: a box QP, x = proj_box(x − η(Qx − c), l, u)   (examples/box_qp_pgd.ift),
  * mirror descent: a QP on the simplex, x = softmax(log x − η∇f(x))   (examples/simplex_qp_md.ift),
    and the multiclass SVM dual, row by row, B = softmax(log B − η∇f(B))  (multiclass_svm_md.ift),
the gradient of a loss Σ w∘x* with respect to a parameter (y, c, c, lam) is computed
  * by symift's layer: the forward fixed-point solve (FISTA, plain for mirror descent; and again
    with Anderson acceleration), then the derived closed-form backward (for the SVM dual, whose
    rows are coupled, a linear solve on the exact ∂F/∂x at the KKT layer's solution);
  * by unrolling: reverse-mode autodiff through K iterations of the plain iteration with the same
    step η (ISTA, projected gradient, exponentiated gradient), lax.scan, from the same start;
side by side in one process: the median time of value-and-gradient (jit), the compiled temporary
memory (XLA's memory_analysis), and the gradient's max error against symift's (which the tests
check against finite differences of re-solves).

    python benchmarks/fixed_points.py                 # K = 10 ... 1000, 5 repeats
    python benchmarks/fixed_points.py --quick         # K = 10, 100; 3 repeats
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed
sys.path.insert(0, str(ROOT / "benchmarks"))

import jax
import jax.numpy as jnp
import numpy as np
from layers import temp_bytes, timed

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"


def soft(v, t):
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - t, 0.0)


def problems(rng):
    """name -> (example, params, the differentiated parameter, one step of the iteration, start)."""
    m, n = 200, 50
    X, y = rng.standard_normal((m, n)), rng.standard_normal(m)
    eta_l = 1.0 / np.linalg.norm(X, 2) ** 2
    lasso = ({"X": X, "y": y, "lam": 10.0, "eta": eta_l}, "y",
             lambda w, p: soft(w - p["eta"] * (p["X"].T @ (p["X"] @ w - p["y"])), p["eta"] * p["lam"]),
             np.zeros(n), "w")
    nb = 200
    A = rng.standard_normal((nb, nb)) / np.sqrt(nb)
    Q = A @ A.T + 0.1 * np.eye(nb)
    eta_b = 1.0 / np.linalg.norm(Q, 2)
    box = ({"Q": Q, "c": rng.standard_normal(nb), "l": -0.5 * np.ones(nb), "u": 0.5 * np.ones(nb), "eta": eta_b},
           "c", lambda x, p: jnp.clip(x - p["eta"] * (p["Q"] @ x - p["c"]), p["l"], p["u"]), np.zeros(nb), "x")
    Qs = np.eye(nb) + 0.1 * (A @ A.T)
    eta_s = 1.0 / np.linalg.norm(Qs, 2)
    simplex = ({"Q": Qs, "c": 0.001 * rng.standard_normal(nb), "eta": eta_s}, "c",  # an interior solution
               lambda x, p: jax.nn.softmax(jnp.log(x) - p["eta"] * (p["Q"] @ x - p["c"])),
               np.full(nb, 1.0 / nb), "x")
    # the multiclass SVM dual by mirror descent, row by row (p > m: a unique, sparse solution); its
    # forward is symift's KKT layer (the interior point) passed as solver=: mirror descent converges
    # slowly on a sparse dual, and the layer differentiates any solver's solution (the paper's setting)
    ms, ks, ps = 100, 10, 120
    Xs = rng.standard_normal((ms, ps))
    Ys = np.eye(ks)[rng.integers(0, ks, ms)]
    svm = ({"X": Xs, "Y": Ys, "lam": 10.0, "eta": 10.0 / np.linalg.norm(Xs, 2) ** 2}, "lam",
           lambda B, p: jax.nn.softmax(jnp.log(B) - p["eta"] * (-p["X"] @ (p["X"].T @ (p["Y"] - B)) / p["lam"]
                                                                 - 1 + p["Y"]), axis=1),
           np.full((ms, ks), 1.0 / ks), "B")
    return {"lasso_prox": lasso, "box_qp_pgd": box, "simplex_qp_md": simplex, "multiclass_svm_md": svm}


def svm_solver():
    kkt = symift.compile(symift.load(EXAMPLES / "multiclass_svm.ift"), tol=1e-12)
    return lambda X, Y, lam, eta: kkt.module.solve(X, Y, lam, tol=1e-12)["B"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--K", type=int, nargs="+", default=[10, 30, 100, 300, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.K, args.repeat = [10, 100], 3
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float64; value and gradient of Σ w∘x*, jit")
    for name, (params, wrt, step, start, var) in problems(rng).items():
        problem = symift.load(EXAMPLES / f"{name}.ift")
        svm = name == "multiclass_svm_md"
        layer = symift.compile(problem, solver=svm_solver()) if svm else symift.compile(problem, acceleration="fista")
        anderson = None if svm else symift.compile(problem, acceleration="anderson")
        params = {k: jnp.asarray(v) for k, v in params.items()}
        weights = jnp.asarray(rng.standard_normal(start.shape))
        out = layer(**params)
        assert bool(out["converged"]) and bool(out["regular"]), name

        def implicit(theta, params=params, layer=layer, var=var, wrt=wrt, weights=weights):
            return jnp.sum(weights * layer(**{**params, wrt: theta})[var])

        def unrolled(theta, K, params=params, wrt=wrt, step=step, start=start, weights=weights):
            p = {**params, wrt: theta}
            x, _ = jax.lax.scan(lambda x, _: (step(x, p), None), jnp.asarray(start), None, length=K)
            return jnp.sum(weights * x)

        theta = params[wrt]
        vg = jax.jit(jax.value_and_grad(implicit))
        t_imp, _, (_, g_imp) = timed(vg, theta, repeat=args.repeat, with_output=True)
        m_imp = temp_bytes(jax.value_and_grad(implicit), theta)
        x = np.asarray(out[var])
        if name == "lasso_prox":
            print(f"\n{name}: n = {x.size}, {wrt} of size {theta.size}, support/free entries {int(np.sum(x != 0))}")
        else:
            zeros = f", entries < 1e-8: {int(np.sum(x < 1e-8))}" if x.min() >= 0 else ""
            print(f"\n{name}: n = {x.size}, min x = {x.min():.3g}, max x = {x.max():.3g}{zeros}")
        print(f"  {'method':<16} {'time ms':>9} {'temp MiB':>9} {'grad err':>9} {'time/implicit':>14}")
        print(f"  {'symift implicit':<16} {1e3 * t_imp:9.2f} {m_imp / 2**20:9.2f} {'(ref)':>9} {1.0:14.2f}"
              + ("   (forward: symift's KKT interior point, solver=)" if svm else ""))
        if anderson is not None:  # the same layer with the forward iteration accelerated by Anderson
            def accelerated(theta, params=params, layer=anderson, var=var, wrt=wrt, weights=weights):
                return jnp.sum(weights * layer(**{**params, wrt: theta})[var])
            t_and, _, (_, g_and) = timed(jax.jit(jax.value_and_grad(accelerated)), theta, repeat=args.repeat,
                                         with_output=True)
            err = float(jnp.max(jnp.abs(g_and - g_imp)) / jnp.max(jnp.abs(g_imp)))
            mib = temp_bytes(jax.value_and_grad(accelerated), theta) / 2**20
            print(f"  {'  with anderson':<16} {1e3 * t_and:9.2f} {mib:9.2f} {err:9.1e} {t_and / t_imp:14.2f}")
        for K in args.K:
            f = jax.value_and_grad(lambda t, K=K: unrolled(t, K))
            t_unr, _, (_, g_unr) = timed(jax.jit(f), theta, repeat=args.repeat, with_output=True)
            err = float(jnp.max(jnp.abs(g_unr - g_imp)) / jnp.max(jnp.abs(g_imp)))
            print(f"  {'unrolled K=' + str(K):<16} {1e3 * t_unr:9.2f} {temp_bytes(f, theta) / 2**20:9.2f} "
                  f"{err:9.1e} {t_unr / t_imp:14.2f}")


if __name__ == "__main__":
    main()
