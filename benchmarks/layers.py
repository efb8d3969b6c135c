"""Softmax / sparsemax layers (issue 4): symift's implicit layer against
  * autodiff of the explicit formula (jax.nn.softmax; a sort-based sparsemax),
  * generic implicit differentiation: jaxopt's custom_root on the *same* KKT residual (the
    layer's generated ``residual``), with its default normal-CG linear solve and with a dense LU
    solve; its forward is exact and fast (the explicit formula plus the recovered duals), so the
    comparison isolates the implicit backward,
  * unrolled autodiff through K iterations of an iterative solver (softmax: exponentiated
    gradient / mirror descent; sparsemax: Michelot's threshold iteration),
in time (fwd+bwd) and compiled temp memory, plus the max-abs gradient error against the
explicit-formula autodiff.

    python benchmarks/layers.py [--n 100 1000 10000] [--batch 256] [--repeat 5] [--K 100 1000]
    python benchmarks/layers.py --quick          # n = 100, 1000; K = 100; 3 repeats

Each comparison runs side by side in one process; figures are medians of --repeat timed runs
after a warm-up (compile) run.  fwd+bwd = value and gradient of Σ w∘z over a batch (jit, vmap).
A row whose compiled temp memory exceeds --mem-gib is not run (the reason is printed); a row whose
single run exceeds --max-seconds is timed once.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed

import jax
import jax.numpy as jnp
import numpy as np

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"
GIB = 2 ** 30


def timed(f, *args, repeat, max_seconds=None, with_output=False):
    """Median wall time of f(*args) over `repeat` runs after a warm-up (compile) run.

    With ``max_seconds``, stops early once that much time is spent (at least one timed run).
    Returns (median seconds, number of timed runs[, the last output]).
    """
    out = jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
        if max_seconds is not None and sum(times) > max_seconds:
            break
    return (statistics.median(times), len(times)) + ((out,) if with_output else ())


def temp_bytes(f, *args):
    stats = jax.jit(f).lower(*args).compile().memory_analysis()
    return getattr(stats, "temp_size_in_bytes", float("nan"))


# ----------------------------------------------------------------------------- explicit formulas
def sparsemax_tau(theta):
    """Sort-based sparsemax threshold τ: sparsemax(θ) = max(θ − τ, 0)."""
    u = jnp.sort(theta)[::-1]
    css = jnp.cumsum(u)
    k = jnp.arange(1, theta.shape[0] + 1)
    support = u - (css - 1) / k > 0
    rho = jnp.sum(support)
    return (css[rho - 1] - 1) / rho


def sparsemax_sort(theta):
    return jnp.maximum(theta - sparsemax_tau(theta), 0.0)


# ----------------------------------------------------------------------------- unrolled solvers
def unrolled_softmax(theta, K, eta=0.5):
    """K steps of exponentiated gradient (mirror descent) on max θᵀz + H(z): z ∝ z^(1−η) e^(ηθ)."""
    z = jnp.full_like(theta, 1.0 / theta.shape[-1])

    def body(z, _):
        logits = (1 - eta) * jnp.log(z) + eta * theta
        return jax.nn.softmax(logits), None

    z, _ = jax.lax.scan(body, z, None, length=K)
    return z


def unrolled_sparsemax(theta, K):
    """K steps of Michelot's threshold iteration τ ← (Σ_{θ_i > τ} θ_i − 1) / #{θ_i > τ}.

    Started from τ₀ = (Σθ − 1)/n (every coordinate in the support), τ increases to the sparsemax
    threshold in at most n steps; autodiff flows through the sums over the current support.
    """
    tau0 = (jnp.sum(theta) - 1) / theta.shape[0]

    def body(tau, _):
        s = theta > tau
        return (jnp.sum(jnp.where(s, theta, 0.0)) - 1) / jnp.sum(s), None

    tau, _ = jax.lax.scan(body, tau0, None, length=K)
    return jnp.maximum(theta - tau, 0.0)


# ----------------------------------------------------------------------------- jaxopt custom_root
def softmax_kkt_point(theta):
    """(z, ν, λ) solving softmax.ift's KKT: z = softmax(θ), ν = logsumexp(θ) − 1, λ = 0."""
    return jax.nn.softmax(theta), jax.nn.logsumexp(theta) - 1.0, jnp.zeros_like(theta)


def sparsemax_kkt_point(theta):
    """(z, ν, λ) solving sparsemax.ift's KKT: z = max(θ − τ, 0), ν = τ, λ = max(τ − θ, 0)."""
    tau = sparsemax_tau(theta)
    return jnp.maximum(theta - tau, 0.0), tau, jnp.maximum(tau - theta, 0.0)


def kkt_residual(layer):
    """F(x, θ) for x = (z, ν, λ) stacked flat: the layer's own generated KKT residual."""
    residual = layer.module.residual

    def F(x, theta):
        n = theta.shape[0]
        blocks = residual(theta=theta, z=x[:n], nu=x[n], lam=x[n + 1:])
        return jnp.concatenate([jnp.atleast_1d(b) for b in blocks.values()])

    return F


def jaxopt_layer(layer, kkt_point, solve=None):
    """jaxopt.implicit_diff.custom_root on the layer's KKT residual, with an exact forward."""
    from jaxopt.implicit_diff import custom_root

    @custom_root(kkt_residual(layer), solve=solve)
    def solver(init, theta):
        del init
        z, nu, lam = kkt_point(theta)
        return jnp.concatenate([z, jnp.atleast_1d(nu), lam])

    return lambda theta: solver(None, theta)[: theta.shape[0]]


# ----------------------------------------------------------------------------- harness
def loss_fn(zfun):
    def loss(thetas, w):
        return jnp.sum(w * jax.vmap(zfun)(thetas))
    return loss


def rows_for(problem, layer, n, batch, Ks, dense_max_n, mem_gib, cg_max_n):
    """(method, zfun, skip reason or None) for one problem."""
    from jaxopt import linear_solve

    explicit, kkt_point, unrolled = {
        "softmax": (("jax.nn.softmax autodiff", jax.nn.softmax), softmax_kkt_point, unrolled_softmax),
        "sparsemax": (("sort-based autodiff", sparsemax_sort), sparsemax_kkt_point, unrolled_sparsemax),
    }[problem]
    dense_bytes = batch * (2 * n + 1) ** 2 * 8
    dense_skip = None
    if n > dense_max_n or dense_bytes > mem_gib * GIB:
        dense_skip = (f"skipped: the dense solve materializes {batch}×{2 * n + 1}² KKT Jacobians "
                      f"= {dense_bytes / GIB:.1f} GiB (> --dense-max-n {dense_max_n} or --mem-gib {mem_gib:g})")
    cg_skip = None
    if n > cg_max_n:
        cg_skip = (f"skipped above --cg-max-n {cg_max_n}: normal CG on the squared KKT system needs ever "
                   f"more iterations (one call at n = 10000 ran > 7 min here)")
    return [
        ("symift layer", lambda t: layer(theta=t)["z"], None),
        (*explicit, None),
        ("jaxopt custom_root normal-CG", jaxopt_layer(layer, kkt_point), cg_skip),
        ("jaxopt custom_root dense LU", jaxopt_layer(layer, kkt_point, linear_solve.solve_lu), dense_skip),
        *[(f"unrolled K={K}", lambda t, K=K: unrolled(t, K), None) for K in Ks],
    ]


def check_kkt_points(layers, rng):
    """The exact forwards given to jaxopt must be roots of symift's residual (same convention)."""
    theta = jnp.asarray(rng.standard_normal(50))
    for problem, kkt_point in (("softmax", softmax_kkt_point), ("sparsemax", sparsemax_kkt_point)):
        z, nu, lam = kkt_point(theta)
        F = kkt_residual(layers[problem])(jnp.concatenate([z, jnp.atleast_1d(nu), lam]), theta)
        err = float(jnp.max(jnp.abs(F)))
        assert err < 1e-10, f"{problem}: exact forward is not a root of the layer's residual ({err:.2e})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--K", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--problems", nargs="+", default=["softmax", "sparsemax"])
    ap.add_argument("--mem-gib", type=float, default=12.0,
                    help="skip a row whose compiled temp memory exceeds this (GiB)")
    ap.add_argument("--dense-max-n", type=int, default=1000,
                    help="skip the dense-LU jaxopt row above this n (it is not even compiled)")
    ap.add_argument("--cg-max-n", type=int, default=1000,
                    help="skip the normal-CG jaxopt row above this n (it does not finish in minutes)")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="stop repeating a row once its timed runs add up to this")
    ap.add_argument("--quick", action="store_true", help="n = 100 1000, K = 100, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.n, args.K, args.repeat = [100, 1000], [100], 3
    layers = {p: symift.compile(symift.load(EXAMPLES / f"{p}.ift")) for p in ("softmax", "sparsemax")}
    rng = np.random.default_rng(0)
    check_kkt_points(layers, rng)
    print(f"jax {jax.__version__}, float64, batch {args.batch}, median of {args.repeat} after a compile run; "
          f"ratio = time / symift layer; grad err = max |∇ − ∇ explicit autodiff|")
    print(f"{'problem':<10} {'n':>6} {'method':<30} {'fwd+bwd ms':>11} {'ratio':>8} {'temp MiB':>10} "
          f"{'grad err':>9} {'runs':>4}")
    summary = {}
    for n in args.n:
        thetas = jnp.asarray(rng.standard_normal((args.batch, n)))
        w = jnp.asarray(rng.standard_normal((args.batch, n)))
        for problem in args.problems:
            base = None
            rows = rows_for(problem, layers[problem], n, args.batch, args.K, args.dense_max_n, args.mem_gib,
                            args.cg_max_n)
            g_ref = jax.jit(jax.grad(loss_fn(rows[1][1])))(thetas, w)  # explicit-formula autodiff
            for method, zfun, skip in rows:
                head = f"{problem:<10} {n:>6} {method:<30}"
                if skip:
                    print(f"{head} {skip}", flush=True)
                    continue
                loss = loss_fn(zfun)
                f = jax.jit(jax.value_and_grad(loss))
                try:
                    mem = temp_bytes(jax.value_and_grad(loss), thetas, w)
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(f"{head} compile failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                    continue
                if mem > args.mem_gib * GIB:
                    print(f"{head} skipped: compiled temp memory {mem / GIB:.1f} GiB > --mem-gib "
                          f"{args.mem_gib:g}", flush=True)
                    continue
                try:
                    sec, runs, (_, g) = timed(f, thetas, w, repeat=args.repeat, max_seconds=args.max_seconds,
                                              with_output=True)
                except Exception as exc:  # noqa: BLE001 - a failing method is a result too
                    print(f"{head} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                    continue
                ms = 1e3 * sec
                base = base or ms  # the symift layer is the first row
                err = float(jnp.max(jnp.abs(g - g_ref)))
                summary[(problem, n, method)] = ms
                print(f"{head} {ms:>11.2f} {ms / base:>8.2f} {mem / 2 ** 20:>10.2f} {err:>9.1e} {runs:>4}",
                      flush=True)
    print_targets(summary)


def print_targets(summary):
    """The issue's targets for the softmax layer at n = 1000 (measured, not tuned for)."""
    key = ("softmax", 1000)
    sym = summary.get((*key, "symift layer"))
    ref = summary.get((*key, "jax.nn.softmax autodiff"))
    cg = summary.get((*key, "jaxopt custom_root normal-CG"))
    if sym is None:
        return
    print("\ntargets (softmax, n = 1000):")
    if ref:
        print(f"  symift / jax.nn.softmax autodiff = {sym / ref:.1f}x   (target <= 3x: "
              f"{'met' if sym / ref <= 3 else 'NOT met'})")
    if cg:
        print(f"  jaxopt normal-CG / symift       = {cg / sym:.2f}x   (target >= 100x: "
              f"{'met' if cg / sym >= 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
