"""A/B: this checkout against another symift checkout (a commit), the same layers timed alternately.

Each round starts one process per checkout; each process times jit(value_and_grad(Σ w∘z)) over a
vmapped batch (median of --repeat after a warm-up) for softmax and sparsemax (n = 1000, batch 256;
skipped with --no-separable) and the OptNet QP (qpth's data; n = 100 with p = n inequalities at
batch 128 unless --optnet / --batch / --p-ratio say otherwise: p = round(ratio · n)).  Alternating
the processes for --rounds rounds spreads the machine's drift over both; the table gives the median
over rounds and the ratio B/A.

    git worktree add /tmp/old <commit>
    python benchmarks/ab.py /tmp/old . [--rounds 3] [--repeat 5] [--b-options checks=false,strict=false]
                            [--optnet 25 50 100 200] [--batch 64 128] [--p-ratio 1 0.25] [--m-ratio 0.5]
                            [--no-separable]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import symift
from optnet import qpth_data_eq

def timed(f, *args, repeat):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)

def fwd_bwd(layer, params, w):
    def loss(p):
        return jnp.sum(w * jax.vmap(lambda q: layer(**q)["z"])(p))
    return jax.jit(jax.value_and_grad(loss)), params

repeat = int(sys.argv[3])
options = json.loads(sys.argv[4])
config = json.loads(sys.argv[5])
rng = np.random.default_rng(1)
out = {}
root = sys.argv[1]
for name, n in (("softmax", 1000), ("sparsemax", 1000)) if config["separable"] else ():
    layer = symift.compile(symift.load(f"{root}/examples/{name}.ift"), **options)
    p = {"theta": jnp.asarray(rng.standard_normal((256, n)))}
    f, a = fwd_bwd(layer, p, jnp.asarray(rng.standard_normal((256, n))))
    out[f"{name} n=1000 b=256"] = timed(f, a, repeat=repeat)
layer = symift.compile(symift.load(f"{root}/examples/optnet_qp.ift"), **options)
for ratio in config["p_ratio"]:
    for n in config["optnet"]:
        for b in config["batch"]:
            rng = np.random.default_rng(n + b)
            m = round(config["m_ratio"] * n)
            Q, q, G, h, A, beq = qpth_data_eq(rng, b, n=n, p=max(1, round(ratio * n)), m=m)
            p = {"Q": Q, "q": q, "G": G, "h": h, "A": A, "b": beq}
            f, a = fwd_bwd(layer, {k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(rng.standard_normal((b, n))))
            out[f"OptNet n={n} p={len(h[0])} m={m} b={b}"] = timed(f, a, repeat=repeat)
print(json.dumps(out))
"""


def run(root: Path, repeat: int, options: dict, config: dict) -> dict:
    bench = Path(__file__).resolve().parent
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(bench), str(repeat), json.dumps(options),
                           json.dumps(config)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="checkout A (e.g. a git worktree of the old commit)")
    ap.add_argument("b", help="checkout B")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--b-options", default="", metavar="checks=false,strict=false",
                    help="compile options of checkout B (booleans), e.g. to time it without its checks")
    ap.add_argument("--optnet", type=int, nargs="+", default=[100], help="OptNet sizes n")
    ap.add_argument("--batch", type=int, nargs="+", default=[128], help="OptNet batch sizes")
    ap.add_argument("--p-ratio", type=float, nargs="+", default=[1.0], help="inequalities per unknown")
    ap.add_argument("--m-ratio", type=float, default=0.0, help="equalities per unknown (b = A z₀, z₀ feasible)")
    ap.add_argument("--no-separable", dest="separable", action="store_false", help="OptNet rows only")
    args = ap.parse_args()
    config = {"optnet": args.optnet, "batch": args.batch, "p_ratio": args.p_ratio, "separable": args.separable,
              "m_ratio": args.m_ratio}
    b_options = {k: v.lower() == "true" for k, v in (o.split("=") for o in args.b_options.split(",") if o)}
    results = {"A": [], "B": []}
    for _ in range(args.rounds):
        results["A"].append(run(Path(args.a).resolve(), args.repeat, {}, config))
        results["B"].append(run(Path(args.b).resolve(), args.repeat, b_options, config))
    print(f"A = {args.a}, B = {args.b} {b_options or ''}; fwd+bwd ms, median over {args.rounds} rounds of "
          f"medians of {args.repeat}")
    for key in results["A"][0]:
        a = statistics.median(r[key] for r in results["A"])
        b = statistics.median(r[key] for r in results["B"])
        print(f"  {key:<28} A {1e3 * a:8.2f}   B {1e3 * b:8.2f}   B/A {b / a:5.2f}")


if __name__ == "__main__":
    main()
