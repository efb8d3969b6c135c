"""What the per-solution checks cost (issue 11): fwd+bwd with checks=True vs checks=False.

The status of every solution (symift.runtime.status) is computed in the forward pass: the
strict-complementarity margin (O(m), always) and Skeel's condition estimate of ∂F/∂x (Hager–Higham:
the closed form's factorizations and a few solves with them and their transposes; skipped with
checks=False).  Both layers run side by side in one process; figures are medians of --repeat
timed runs after a warm-up (compile) run of ``jit(value_and_grad(Σ w∘z))`` over a vmapped batch.

    python benchmarks/status_cost.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from layers import timed  # noqa: E402
from optnet import qpth_data  # noqa: E402

import symift  # noqa: E402

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"


def fwd_bwd(layer, var, names):
    """jit(value_and_grad) of Σ w∘z over a vmapped batch of parameters."""
    def loss(params, w):
        z = jax.vmap(lambda p: layer(**p)[var])(params)
        return jnp.sum(w * z)
    return jax.jit(jax.value_and_grad(loss))


def forward(layer, keys):
    def f(p):
        out = layer(**p)  # one call: the solve is not repeated per entry
        return {k: out[k] for k in keys}
    return jax.jit(jax.vmap(f))


def case(name, problem, params, var, repeat):
    rows = []
    flags = {}
    for checks in (True, False):
        layer = symift.compile(problem, checks=checks)
        w = jnp.asarray(np.random.default_rng(0).standard_normal(layer(**{k: v[0] for k, v in params.items()})[var]
                                                                  .shape))
        w = jnp.broadcast_to(w, (len(next(iter(params.values()))),) + w.shape)
        t_fb, _ = timed(fwd_bwd(layer, var, params), params, w, repeat=repeat)
        t_f, _, out = timed(forward(layer, ("regular", "cond")), params, repeat=repeat, with_output=True)
        flags[checks] = out
        rows.append((checks, t_f, t_fb))
    (_, f1, fb1), (_, f0, fb0) = rows
    print(f"{name:<28} fwd {1e3 * f1:8.2f} ms with / {1e3 * f0:8.2f} ms without ({f1 / f0:5.2f}x)   "
          f"fwd+bwd {1e3 * fb1:8.2f} / {1e3 * fb0:8.2f} ms ({fb1 / fb0:5.2f}x)   "
          f"regular {int(np.sum(flags[True]['regular']))}/{len(flags[True]['regular'])}, "
          f"median cond {float(np.median(flags[True]['cond'])):.3g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"jax {jax.__version__}, {jax.default_backend()}, float64; medians of {args.repeat}")
    rng = np.random.default_rng(1)
    softmax = symift.load(EXAMPLES / "softmax.ift")
    case("softmax n=1000 batch 256", softmax, {"theta": jnp.asarray(rng.standard_normal((256, 1000)))}, "z",
         args.repeat)
    sparsemax = symift.load(EXAMPLES / "sparsemax.ift")
    case("sparsemax n=1000 batch 256", sparsemax, {"theta": jnp.asarray(rng.standard_normal((256, 1000)))}, "z",
         args.repeat)
    Q, q, G, h = qpth_data(rng, 128)
    qp = {"Q": Q, "q": q, "G": G, "h": h, "A": np.zeros((128, 0, 100)), "b": np.zeros((128, 0))}
    case("OptNet n=100 batch 128", symift.load(EXAMPLES / "optnet_qp.ift"),
         {k: jnp.asarray(v) for k, v in qp.items()}, "z", args.repeat)


if __name__ == "__main__":
    main()
