"""Where the separable dual Newton starts (issue 16): the derived start against ν = 0, one run.

    python benchmarks/newton_start.py [--n 1000 10000 100000] [--batch 32] [--repeat 11]

For sparsemax and 1.5-entmax the layer's dual Newton starts at ν₀ = maxᵢ νᵢ, where entry i alone
meets the equality (symift.symbolic.separable._one_entry_start), left of the root.  The same layer
with that start removed (``spec.separable.start = None``: ν₀ = 0, as before) is timed beside it:
the jitted vmapped forward (θ ~ N(0, 1), batch of --batch), the jitted value_and_grad of Σ w∘x,
and the Newton steps the batch takes (its slowest problem).  Medians in ms; the ratios are
measured in the same run.
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
from layers import timed

import symift
from symift import runtime
from symift.runtime.dual_newton import dual_newton

jax.config.update("jax_enable_x64", True)
PROBLEMS = {"sparsemax": "z", "entmax15": "p"}


def steps(sep, thetas):
    """Newton steps of the slowest problem of the batch, from the derived start and from 0."""
    def one(theta, start):
        def h(nu):
            u, lo, hi = sep.primal(theta=theta, nu=nu)
            return sep.dual_equality(theta=theta, **{sep.variable: jnp.clip(u, lo, hi)})
        nu0 = sep.start(theta=theta) if start else jnp.zeros((), theta.dtype)
        return dual_newton(h, nu0, 1e-9, 100)[2]
    return [int(jnp.max(jax.jit(jax.vmap(lambda t, s=s: one(t, s)))(thetas))) for s in (True, False)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=11)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float64, batch {args.batch}, "
          f"median of {args.repeat}; times in ms")
    print(f"{'problem':<10} {'n':>7} {'steps':>6} {'from 0':>7} {'fwd':>8} {'fwd from 0':>11} {'ratio':>6} "
          f"{'fwd+bwd':>8} {'from 0':>8} {'ratio':>6} {'|dx|':>8}")
    for name, var in PROBLEMS.items():
        layer = symift.compile(symift.load(ROOT / "examples" / f"{name}.ift"))
        spec = layer.spec
        cold = runtime.make_layer(spec._replace(separable=spec.separable._replace(start=None)))
        for n in args.n:
            thetas = jnp.asarray(rng.standard_normal((args.batch, n)))
            w = jnp.asarray(rng.standard_normal((args.batch, n)))
            row = {}
            def warm(t, layer=layer, var=var):
                return layer(theta=t)[var]

            def from_zero(t, cold=cold, var=var):
                return cold((t,))[var]
            for label, f in (("start", warm), ("zero", from_zero)):
                fwd = jax.jit(jax.vmap(f))
                vg = jax.jit(jax.value_and_grad(lambda ts, f=f, w=w: jnp.sum(w * jax.vmap(f)(ts))))
                row[label] = (timed(fwd, thetas, repeat=args.repeat)[0], timed(vg, thetas, repeat=args.repeat)[0],
                              fwd(thetas))
            (f1, v1, x1), (f0, v0, x0) = row["start"], row["zero"]
            k1, k0 = steps(spec.separable, thetas)
            print(f"{name:<10} {n:>7} {k1:>6} {k0:>7} {1e3 * f1:>8.2f} {1e3 * f0:>11.2f} {f0 / f1:>6.2f} "
                  f"{1e3 * v1:>8.2f} {1e3 * v0:>8.2f} {v0 / v1:>6.2f} {float(jnp.max(jnp.abs(x1 - x0))):>8.1e}",
                  flush=True)


if __name__ == "__main__":
    main()
