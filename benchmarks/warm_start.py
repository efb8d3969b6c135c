"""Warm starts (issues 16 and 18): the OptNet QP forward from the previous step's solution.

A training loop moves the parameters a little at each step; ``layer(..., init=previous)`` starts
the interior point at the previous solution.  Data as in benchmarks/optnet.py (qpth's prof.py:
Q = LLᵀ + 1e-3·I, G, z₀, q normal, h = Gz₀ + s₀; no equalities), batch B, p = n inequalities.
The "step" moves q by δ·N(0, 1) (δ relative to q's scale 1).  Timed side by side in one run, each
the median of --repeat runs of a jitted, vmapped forward (solve + status) after a compile run:

  * cold — layer(**params');
  * warm — layer(**params', init=layer(**params)) with the previous solution precomputed.

Also printed: the largest |z_warm − z_cold| (the warm start must not change the answer).

    python benchmarks/warm_start.py [--n 25 50 100] [--batch 64] [--delta 0.01 0.1 1] [--repeat 7]
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


def data(rng, batch, n):
    L = rng.random((batch, n, n))
    Q = L @ L.transpose(0, 2, 1) + 1e-3 * np.eye(n)
    G = rng.standard_normal((batch, n, n))
    z0, q = rng.standard_normal((batch, n)), rng.standard_normal((batch, n))
    h = np.einsum("bpn,bn->bp", G, z0) + rng.random((batch, n))
    return {"Q": Q, "q": q, "G": G, "h": h, "A": np.zeros((batch, 0, n)), "b": np.zeros((batch, 0))}


def median_ms(f, repeat):
    jax.block_until_ready(f())
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        jax.block_until_ready(f())
        times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--delta", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    layer = symift.compile(symift.load(ROOT / "examples" / "optnet_qp.ift"))
    names = ("Q", "q", "G", "h", "A", "b")
    cold = jax.jit(jax.vmap(lambda *p: layer(**dict(zip(names, p, strict=True)))))
    warm = jax.jit(jax.vmap(lambda init, *p: layer(**dict(zip(names, p, strict=True)), init=init)))
    print(f"jax {jax.__version__}, float64, batch {args.batch}, medians of {args.repeat} (ms)")
    print(f"{'n':>5} {'delta':>6} {'cold':>9} {'warm':>9} {'cold/warm':>10} {'max|dz|':>9}")
    for n in args.n:
        rng = np.random.default_rng(n)
        base = {k: jnp.asarray(v) for k, v in data(rng, args.batch, n).items()}
        before = cold(*(base[k] for k in names))
        start = {k: before[k] for k in ("z", "lam", "nu")}
        for delta in args.delta:
            moved = dict(base, q=base["q"] + delta * jnp.asarray(rng.standard_normal(base["q"].shape)))
            p = [moved[k] for k in names]
            t_cold = median_ms(lambda p=p: cold(*p)["z"], args.repeat)
            t_warm = median_ms(lambda p=p, s=start: warm(s, *p)["z"], args.repeat)
            a, b = cold(*p), warm(start, *p)
            assert bool(jnp.all(a["converged"])) and bool(jnp.all(b["converged"]))
            dz = float(jnp.max(jnp.abs(a["z"] - b["z"])))
            print(f"{n:>5} {delta:>6g} {t_cold:>9.2f} {t_warm:>9.2f} {t_cold / t_warm:>10.2f} {dz:>9.1e}", flush=True)


if __name__ == "__main__":
    main()
