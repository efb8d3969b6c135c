"""Softmax / sparsemax layers: symift's implicit layer vs autodiff of the explicit formula and
vs unrolled autodiff through K iterations of an iterative solver (time and compiled temp memory).

    python benchmarks/layers.py [--n 100 1000] [--batch 256] [--repeat 5]

Each comparison runs side by side in one process; figures are medians of --repeat timed runs
after a warm-up (compile) run.  fwd+bwd = value and gradient of Σ w∘z over a batch (jit, vmap).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def timed(f, *args, repeat):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def temp_bytes(f, *args):
    stats = jax.jit(f).lower(*args).compile().memory_analysis()
    return getattr(stats, "temp_size_in_bytes", float("nan"))


def unrolled_softmax(theta, K, eta=0.5):
    """K steps of exponentiated gradient (mirror descent) on max θᵀz + H(z): z ∝ z^(1−η) e^(ηθ)."""
    z = jnp.full_like(theta, 1.0 / theta.shape[-1])

    def body(z, _):
        logits = (1 - eta) * jnp.log(z) + eta * theta
        return jax.nn.softmax(logits), None

    z, _ = jax.lax.scan(body, z, None, length=K)
    return z


def sparsemax_sort(theta):
    u = jnp.sort(theta)[::-1]
    css = jnp.cumsum(u)
    k = jnp.arange(1, theta.shape[0] + 1)
    support = u - (css - 1) / k > 0
    rho = jnp.sum(support)
    tau = (css[rho - 1] - 1) / rho
    return jnp.maximum(theta - tau, 0.0)


def loss_of(zfun):
    def loss(thetas, w):
        return jnp.sum(w * jax.vmap(zfun)(thetas))
    return jax.jit(jax.value_and_grad(loss))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--K", type=int, nargs="+", default=[100, 1000])
    args = ap.parse_args()
    softmax = symift.compile(symift.load(EXAMPLES / "softmax.ift"))
    sparsemax = symift.compile(symift.load(EXAMPLES / "sparsemax.ift"))
    rng = np.random.default_rng(0)
    print(f"{'problem':<10} {'n':>6} {'method':<28} {'fwd+bwd ms':>11} {'ratio':>7} {'temp MiB':>9}")
    for n in args.n:
        thetas = jnp.asarray(rng.standard_normal((args.batch, n)))
        w = jnp.asarray(rng.standard_normal((args.batch, n)))
        rows = [
            ("softmax", "symift layer", lambda t: softmax(theta=t)["z"]),
            ("softmax", "jax.nn.softmax autodiff", jax.nn.softmax),
            *[("softmax", f"unrolled K={K}", lambda t, K=K: unrolled_softmax(t, K)) for K in args.K],
            ("sparsemax", "symift layer", lambda t: sparsemax(theta=t)["z"]),
            ("sparsemax", "sort-based autodiff", sparsemax_sort),
        ]
        base = {}
        for problem, method, zfun in rows:
            f = loss_of(zfun)
            ms = 1e3 * timed(f, thetas, w, repeat=args.repeat)
            mib = temp_bytes(jax.value_and_grad(lambda t, w, zfun=zfun: jnp.sum(w * jax.vmap(zfun)(t))),
                             thetas, w) / 2 ** 20
            base.setdefault(problem, ms)
            print(f"{problem:<10} {n:>6} {method:<28} {ms:>11.2f} {ms / base[problem]:>7.2f} {mib:>9.2f}")


if __name__ == "__main__":
    main()
