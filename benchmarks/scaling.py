"""How the separable layers scale with n (issue 16): fwd+bwd time of symift's layer against
autodiff of the explicit formula and against the memory-bound floor, n = 10²…10⁵, one run.

    python benchmarks/scaling.py [--n 100 1000 10000 100000] [--batch 32] [--repeat 7]

* fwd+bwd — one jitted ``value_and_grad`` of Σ w∘x over a vmapped batch (gradient w.r.t. θ);
* floor  — a jitted elementwise a + b of two (batch, n) arrays: two reads and a write, the least
  any layer that reads θ and writes x can cost;
* autodiff — the explicit formula differentiated by jax: jax.nn.softmax; the sort-based
  sparsemax and 1.5-entmax (Martins & Astudillo 2016; Peters et al. 2019); jnp.clip for the box
  projection (jaxopt's ``projection_box``).

Figures are medians of --repeat runs after a compile run; the ratios are taken in the same run.
The max |x − x_autodiff| of the forward and |grad − grad_autodiff| are printed as a check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed

import jax
import jax.numpy as jnp
import numpy as np
from layers import timed as layers_timed

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"


def median_time(f, *args, repeat):
    """Median seconds of f(*args) after a warm-up run (benchmarks/layers.py's timer)."""
    return layers_timed(f, *args, repeat=repeat)[0]


# ----------------------------------------------------------------------------- explicit formulas
def sparsemax_sort(theta):
    u = jnp.sort(theta)[::-1]
    css = jnp.cumsum(u)
    k = jnp.arange(1, theta.shape[0] + 1)
    rho = jnp.sum(u - (css - 1) / k > 0)
    return jnp.maximum(theta - (css[rho - 1] - 1) / rho, 0.0)


def entmax15_sort(theta):
    """Exact 1.5-entmax by sorting (Peters et al. 2019, Algorithm 2): p = [θ/2 − τ]₊²."""
    x = theta / 2
    u = jnp.sort(x)[::-1]
    k = jnp.arange(1, x.shape[0] + 1)
    mean = jnp.cumsum(u) / k
    mean_sq = jnp.cumsum(u ** 2) / k
    delta = (1 - k * (mean_sq - mean ** 2)) / k
    safe = jnp.where(delta > 0, delta, 1.0)  # no inf·0 in the gradient of √δ where δ ≤ 0 is clipped
    tau = mean - jnp.where(delta > 0, jnp.sqrt(safe), 0.0)
    support = jnp.sum(tau <= u)
    return jnp.clip(x - tau[support - 1], 0.0) ** 2


PROBLEMS = {  # name: (example, variable, explicit formula of (θ, extra), extra arguments)
    "softmax": ("softmax", "z", lambda t, e: jax.nn.softmax(t), lambda n: {}),
    "sparsemax": ("sparsemax", "z", lambda t, e: sparsemax_sort(t), lambda n: {}),
    "entmax15": ("entmax15", "p", lambda t, e: entmax15_sort(t), lambda n: {}),
    "box": ("box_projection", "x", lambda t, e: jnp.clip(t, e["l"], e["u"]),
            lambda n: {"l": -0.5 * jnp.ones(n), "u": 0.5 * jnp.ones(n)}),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    layers = {name: symift.compile(symift.load(EXAMPLES / f"{PROBLEMS[name][0]}.ift")) for name in args.problems}
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float64, batch {args.batch}, "
          f"median of {args.repeat}; times in ms")
    print(f"{'problem':<10} {'n':>7} {'floor':>8} {'symift':>9} {'autodiff':>9} {'symift/floor':>13} "
          f"{'autodiff/floor':>15} {'symift/autodiff':>16} {'|dx|':>8} {'|dgrad|':>8}")
    for n in args.n:
        a = jnp.asarray(rng.standard_normal((args.batch, n)))
        b = jnp.asarray(rng.standard_normal((args.batch, n)))
        floor = median_time(jax.jit(lambda a, b: a + b), a, b, repeat=args.repeat)
        for name in args.problems:
            example, var, explicit, extra_of = PROBLEMS[name]
            extra = extra_of(n)
            layer = layers[name]
            thetas = jnp.asarray(rng.standard_normal((args.batch, n)))
            w = jnp.asarray(rng.standard_normal((args.batch, n)))

            def ours(t, extra=extra, layer=layer, var=var):
                return layer(theta=t, **extra)[var]

            def theirs(t, extra=extra, explicit=explicit):
                return explicit(t, extra)
            results = {}
            for label, f in (("symift", ours), ("autodiff", theirs)):
                def loss(ts, f=f, w=w):
                    return jnp.sum(w * jax.vmap(f)(ts))
                vg = jax.jit(jax.value_and_grad(loss))
                results[label] = (median_time(vg, thetas, repeat=args.repeat), vg(thetas),
                                  jax.jit(jax.vmap(f))(thetas))
            (ts, (_, g1), x1), (ta, (_, g2), x2) = results["symift"], results["autodiff"]
            dx = float(jnp.max(jnp.abs(x1 - x2)))
            dg = float(jnp.max(jnp.abs(g1 - g2)))
            print(f"{name:<10} {n:>7} {1e3 * floor:>8.3f} {1e3 * ts:>9.3f} {1e3 * ta:>9.3f} {ts / floor:>13.1f} "
                  f"{ta / floor:>15.1f} {ts / ta:>16.2f} {dx:>8.1e} {dg:>8.1e}", flush=True)


if __name__ == "__main__":
    main()
