"""Figure for issue 4: compiled temp memory of unrolled differentiation growing with K, against the
implicit layers staying flat.  Writes benchmarks/memory_vs_K.png and prints the numbers.

Memory is XLA's compiled temp allocation of jit(value_and_grad(Σ w∘vmap(z)(θ))) for a batch of
softmax (and sparsemax) problems, float64 (``jit(f).lower(...).compile().memory_analysis()``);
nothing is executed, so large K only costs compile time.

    python benchmarks/memory_figure.py [--n 1000] [--batch 256] [--K 1 3 10 30 100 300 1000 3000 10000]
    python benchmarks/memory_figure.py --quick    # n = 100, K up to 1000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # measure this checkout's symift, whatever is installed
sys.path.insert(0, str(HERE))

import jax
import jax.numpy as jnp
import numpy as np
from layers import (
    EXAMPLES,
    jaxopt_layer,
    loss_fn,
    softmax_kkt_point,
    sparsemax_kkt_point,
    sparsemax_sort,
    temp_bytes,
    unrolled_softmax,
    unrolled_sparsemax,
)

import symift

jax.config.update("jax_enable_x64", True)
MIB = 2 ** 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--K", type=int, nargs="+", default=[1, 3, 10, 30, 100, 300, 1000, 3000, 10000])
    ap.add_argument("--out", default=str(HERE / "memory_vs_K.png"))
    ap.add_argument("--quick", action="store_true", help="n = 100, K up to 1000")
    args = ap.parse_args()
    if args.quick:
        args.n, args.K = 100, [1, 3, 10, 30, 100, 300, 1000]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    thetas = jnp.asarray(rng.standard_normal((args.batch, args.n)))
    w = jnp.asarray(rng.standard_normal((args.batch, args.n)))

    def mem(zfun):
        return temp_bytes(jax.value_and_grad(loss_fn(zfun)), thetas, w) / MIB

    softmax = symift.compile(symift.load(EXAMPLES / "softmax.ift"))
    sparsemax = symift.compile(symift.load(EXAMPLES / "sparsemax.ift"))
    flat = {
        "symift softmax layer": mem(lambda t: softmax(theta=t)["z"]),
        "symift sparsemax layer": mem(lambda t: sparsemax(theta=t)["z"]),
        "jax.nn.softmax autodiff": mem(jax.nn.softmax),
        "sort-based sparsemax autodiff": mem(sparsemax_sort),
        "jaxopt custom_root softmax (normal CG)": mem(jaxopt_layer(softmax, softmax_kkt_point)),
        "jaxopt custom_root sparsemax (normal CG)": mem(jaxopt_layer(sparsemax, sparsemax_kkt_point)),
    }
    curves = {"unrolled softmax (mirror descent)": [], "unrolled sparsemax (Michelot)": []}
    print(f"compiled temp memory (MiB), value_and_grad, n = {args.n}, batch {args.batch}, float64")
    print(f"{'K':>6} {'unrolled softmax':>17} {'unrolled sparsemax':>19}")
    for K in args.K:
        a = mem(lambda t, K=K: unrolled_softmax(t, K))
        b = mem(lambda t, K=K: unrolled_sparsemax(t, K))
        curves["unrolled softmax (mirror descent)"].append(a)
        curves["unrolled sparsemax (Michelot)"].append(b)
        print(f"{K:>6} {a:>17.2f} {b:>19.2f}", flush=True)
    for name, v in flat.items():
        print(f"{name:<42} {v:>10.2f}  (independent of K)")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, ys), style in zip(curves.items(), ("o-", "s-"), strict=False):
        ax.plot(args.K, ys, style, label=name)
    styles = iter(["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1))])
    for name, v in flat.items():
        ax.plot(args.K, [max(v, 1e-3)] * len(args.K), linestyle=next(styles), label=f"{name} (flat)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iterations K")
    ax.set_ylabel("compiled temp memory of fwd+bwd (MiB)")
    ax.set_title(f"Unrolled vs implicit differentiation, n = {args.n}, batch {args.batch}, float64")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
