"""Time `symift.derive` per example: parse + KKT + IFT report + every Jacobian, sizes symbolic.

Derivation time must not depend on n (sizes stay symbolic).  Prints the median of several runs
(each in a fresh Derivation, after one warm-up run that pays for imports and caches).

    python benchmarks/derive_time.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import symift

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def derive_all(path):
    d = symift.derive(symift.load(path))
    d.ift  # noqa: B018 - the report is part of the job
    d.jacobians()
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    derive_all(EXAMPLES / "softmax.ift")  # warm-up: imports, lark grammar
    print(f"{'example':<14} {'first s':>8} {'median s':>9} {'min s':>8} {'max s':>8}   jacobians")
    for path in sorted(EXAMPLES.glob("*.ift")):
        t0 = time.perf_counter()
        derive_all(path)  # first derivation of this problem: sympy's caches are cold for it
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            d = derive_all(path)
            times.append(time.perf_counter() - t0)
        pairs = len(d.jacobians())
        median = statistics.median(times)
        print(f"{path.stem:<14} {first:8.3f} {median:9.3f} {min(times):8.3f} {max(times):8.3f}   {pairs}")


if __name__ == "__main__":
    main()
