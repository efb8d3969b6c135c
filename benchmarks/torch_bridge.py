"""symift.torch (the JAX layer as a torch module) against qpth, and against the JAX layer it wraps
(issue 18): the OptNet QP from torch, float64, CPU.

    z*(Q, q, G, h) = argmin_z ½ zᵀQz + qᵀz   s.t.  Gz ≤ h        (p = n inequalities, no equalities)

Data as in qpth's timing script (benchmarks/optnet.py: Q = LLᵀ + 1e-3·I, h = Gz₀ + s₀), batched
in every parameter.  Timed, median of --repeat after a warm-up call (which compiles):

  * symift.torch — ``TorchLayer(benchmarks/qp_ineq.ift)``: z = layer(Q, q, G, h); z.backward(w),
                    gradients w.r.t. Q, q, G, h (tensors in, tensors out, DLPack copies included);
  * qpth          — ``QPFunction(verbose=-1, check_Q_spd=False)(Q, q, G, h, e, e)``; z.backward(w);
  * symift (JAX)  — the same layer called from JAX: jit(value_and_grad) of ⟨w, z⟩ (the bridge's
                    overhead is the difference).

Also printed: max |z_symift − z_qpth| and max |∇q symift − ∇q qpth| over the batch.

    python benchmarks/torch_bridge.py [--n 25 50 100] [--batch 64 128] [--repeat 5]
    python benchmarks/torch_bridge.py --m-ratio 0.5   # with m = n/2 equalities Az = b (b = Az₀):
                                                     # examples/optnet_qp.ift, qpth given A, b
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
import torch
from optnet import qpth_data_eq
from qpth.qp import QPFunction

import symift
import symift.torch

jax.config.update("jax_enable_x64", True)
torch.set_default_dtype(torch.float64)


def median_ms(call, repeat):
    call()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--m-ratio", type=float, default=0.0, help="equalities per unknown (default none)")
    args = ap.parse_args()
    # strict=False: at n = 200 two of qpth's random problems per batch are nearly degenerate (a pair
    # with λ and the slack both ~1e-4); the strict layer flags them with NaN gradients, qpth returns
    # numbers.  The time is the same either way: the checks run in both modes.
    ift = ROOT / "examples" / "optnet_qp.ift" if args.m_ratio else ROOT / "benchmarks" / "qp_ineq.ift"
    layer = symift.compile(symift.load(ift), strict=False)
    bridge = symift.torch.layer(layer)
    qpth = QPFunction(verbose=-1, check_Q_spd=False)
    e = torch.empty(0)
    print(f"jax {jax.__version__}, torch {torch.__version__}, float64, {args.repeat} repeats (medians, ms), "
          f"{ift.name}, m = {args.m_ratio}·n equalities")
    print(f"{'n':>4} {'batch':>5} {'symift.torch':>13} {'qpth':>9} {'symift JAX':>11} "
          f"{'qpth/bridge':>12} {'bridge/JAX':>11} {'|dz|':>9} {'|dgrad q|':>9}")
    for n in args.n:
        for batch in args.batch:
            m = round(args.m_ratio * n)
            row(layer, bridge, (lambda *t: qpth(*t)) if m else (lambda *t: qpth(*t, e, e)), n, batch, m,
                args.repeat)


def row(layer, bridge, qpth, n, batch, m, repeat):
    data = qpth_data_eq(np.random.default_rng(n + batch), batch, n=n, p=n, m=m)
    data = data if m else data[:4]  # the same draws as qpth_data without equalities
    w = np.random.default_rng(0).standard_normal((batch, n))

    def run(fn):
        ts = [torch.tensor(a, requires_grad=True) for a in data]
        z = fn(*ts)
        z.backward(torch.tensor(w))
        return z.detach().numpy(), ts[1].grad.numpy()

    t_bridge = median_ms(lambda: run(bridge), repeat)
    t_qpth = median_ms(lambda: run(qpth), repeat)
    f = jax.vmap(lambda *a: layer(**dict(zip(layer.params, a, strict=True)))["z"])
    total = jax.jit(jax.value_and_grad(lambda a, g: jnp.sum(g * f(*a))))
    jargs, jw = tuple(jnp.asarray(a) for a in data), jnp.asarray(w)
    t_jax = median_ms(lambda: jax.block_until_ready(total(jargs, jw)), repeat)
    (zb, gb), (zq, gq) = run(bridge), run(qpth)
    print(f"{n:>4} {batch:>5} {t_bridge:>13.1f} {t_qpth:>9.1f} {t_jax:>11.1f} {t_qpth / t_bridge:>12.2f} "
          f"{t_bridge / t_jax:>11.2f} {np.max(np.abs(zb - zq)):>9.1e} {np.max(np.abs(gb - gq)):>9.1e}", flush=True)

if __name__ == "__main__":
    main()
