"""The latency a user feels (issue 16): import, derive, compile and the first calls, per example,
each example in a fresh Python process (nothing cached in memory; XLA's persistent cache is off).

For every shipped example with test data (tests/test_emit_layer.py's cases, plus the SVM primal
and row-wise sparsemax), in a new process:

  * import   — ``import symift`` (jax, sympy and lark with it);
  * derive   — ``symift.derive(load(FILE))`` and the text report (what ``symift derive FILE`` prints);
  * compile  — ``symift.compile(problem)``: derivation, the generated module printed and loaded;
  * 1st fwd  — the first ``layer(**params)`` (jit compile and run), block_until_ready;
  * 1st grad — the first ``jax.grad`` of Σ x through the layer (the backward's compile and run);
  * again    — the second fwd + grad (compiled: the steady state, for scale).

Peers' first calls, each in a fresh process too: jaxopt's ``projection_simplex`` (sparsemax's
peer) fwd + grad under jit, jaxopt's ``BoxOSQP`` with implicit differentiation on the OptNet QP
(n = 5, 4 inequalities, 2 equalities, as the example's test data), and cvxpylayers (layer
construction and the first fwd + bwd, torch) on the same QP.  Goals of issue 16: derive < 0.5 s
per shipped example, compile + first call < 2 s.

    python benchmarks/latency.py [--examples softmax optnet_qp ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYMIFT = r'''
import sys, time, json
t0 = time.perf_counter()
import symift
t_import = time.perf_counter() - t0
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
name = {name!r}
t0 = time.perf_counter()
d = symift.derive(symift.load({path!r}))
from symift.render.text import report
report(d)
t_derive = time.perf_counter() - t0
t0 = time.perf_counter()
layer = symift.compile(symift.load({path!r}))
t_compile = time.perf_counter() - t0
from test_emit_layer import cases
extra = {{
    "hinge_svm": lambda rng: dict(X=rng.standard_normal((12, 4)), y=np.sign(rng.standard_normal(12)), lam=0.5),
    "rowwise_sparsemax": lambda rng: dict(Theta=rng.standard_normal((4, 6))),
}}
found = [c for c in cases() if c[0] == name]
params = found[0][1] if found else extra[name](np.random.default_rng(0))
params = {{k: jnp.asarray(v, jnp.float64) for k, v in params.items()}}
var = layer.derivation.problem.variables[0].name if not hasattr(layer, "rows") else layer.rows.variable
first = sorted(params)[0] if name != "hinge_svm" else "y"
def fwd():
    return jax.block_until_ready(layer(**params)[var])
def grad():
    return jax.block_until_ready(jax.grad(lambda p: jnp.sum(layer(**{{**params, first: p}})[var]))(params[first]))
t0 = time.perf_counter(); fwd(); t_fwd = time.perf_counter() - t0
t0 = time.perf_counter(); grad(); t_grad = time.perf_counter() - t0
t0 = time.perf_counter(); fwd(); grad(); t_again = time.perf_counter() - t0
print(json.dumps(dict(import_=t_import, derive=t_derive, compile=t_compile, fwd=t_fwd, grad=t_grad, again=t_again)))
'''

JAXOPT_SIMPLEX = r'''
import time, json
t0 = time.perf_counter()
import jax, jax.numpy as jnp
from jaxopt.projection import projection_simplex
t_import = time.perf_counter() - t0
jax.config.update("jax_enable_x64", True)
theta = jnp.asarray([0.3, -1.2, 2.0, 0.5, 0.1])
f = jax.jit(projection_simplex)
t0 = time.perf_counter(); jax.block_until_ready(f(theta)); t_fwd = time.perf_counter() - t0
g = jax.jit(jax.grad(lambda t: jnp.sum(projection_simplex(t) ** 2)))
t0 = time.perf_counter(); jax.block_until_ready(g(theta)); t_grad = time.perf_counter() - t0
t0 = time.perf_counter(); jax.block_until_ready((f(theta), g(theta))); t_again = time.perf_counter() - t0
print(json.dumps(dict(import_=t_import, derive=None, compile=None, fwd=t_fwd, grad=t_grad, again=t_again)))
'''

QP_DATA = r'''
import numpy as np
rng = np.random.default_rng(0)
n, p, m = 5, 4, 2
M = rng.standard_normal((n, n)); Q = M @ M.T + np.eye(n)
q = rng.standard_normal(n); G = rng.standard_normal((p, n)); h = np.abs(rng.standard_normal(p)) + 0.5
A = rng.standard_normal((m, n)); b = 0.1 * rng.standard_normal(m)
'''

JAXOPT_QP = QP_DATA + r'''
import time, json
t0 = time.perf_counter()
import jax, jax.numpy as jnp
from jaxopt import OSQP
t_import = time.perf_counter() - t0
jax.config.update("jax_enable_x64", True)
solver = OSQP(tol=1e-8)  # implicit differentiation is its default
def z_of(q):
    return solver.run(params_obj=(jnp.asarray(Q), q), params_eq=(jnp.asarray(A), jnp.asarray(b)),
                      params_ineq=(jnp.asarray(G), jnp.asarray(h))).params.primal
f = jax.jit(z_of)
g = jax.jit(jax.grad(lambda q: jnp.sum(z_of(q))))
qj = jnp.asarray(q)
t0 = time.perf_counter(); jax.block_until_ready(f(qj)); t_fwd = time.perf_counter() - t0
t0 = time.perf_counter(); jax.block_until_ready(g(qj)); t_grad = time.perf_counter() - t0
t0 = time.perf_counter(); jax.block_until_ready((f(qj), g(qj))); t_again = time.perf_counter() - t0
print(json.dumps(dict(import_=t_import, derive=None, compile=None, fwd=t_fwd, grad=t_grad, again=t_again)))
'''

CVXPYLAYERS_QP = QP_DATA + r'''
import time, json
t0 = time.perf_counter()
import cvxpy as cp, torch
from cvxpylayers.torch import CvxpyLayer
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
R, qp, Gp, hp, Ap, bp = (cp.Parameter((n, n)), cp.Parameter(n), cp.Parameter((p, n)), cp.Parameter(p),
                         cp.Parameter((m, n)), cp.Parameter(m))
z = cp.Variable(n)
prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(R @ z) + qp @ z), [Gp @ z <= hp, Ap @ z == bp])
layer = CvxpyLayer(prob, parameters=[R, qp, Gp, hp, Ap, bp], variables=[z])
t_compile = time.perf_counter() - t0
ts = [torch.tensor(a) for a in (np.linalg.cholesky(Q).T, q, G, h, A, b)]
ts[1].requires_grad_(True)
def run():
    (zz,) = layer(*ts)
    return zz
t0 = time.perf_counter(); zz = run(); t_fwd = time.perf_counter() - t0
t0 = time.perf_counter(); zz.sum().backward(); t_grad = time.perf_counter() - t0
t0 = time.perf_counter(); run().sum().backward(); t_again = time.perf_counter() - t0
print(json.dumps(dict(import_=t_import, derive=None, compile=t_compile, fwd=t_fwd, grad=t_grad, again=t_again)))
'''


def run(code: str) -> dict | str:
    env_code = "import os; os.environ['JAX_ENABLE_COMPILATION_CACHE'] = 'false'\n" + code
    done = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:80]
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(x) -> str:
    return "     -" if x is None else f"{x:6.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", nargs="*", default=None)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    names = args.examples or sorted(p.stem for p in (ROOT / "examples").glob("*.ift"))
    print("seconds, each row a fresh process; 'fwd'/'grad' are the first calls (compile + run)")
    print(f"{'':26} {'import':>6} {'derive':>6} {'compile':>7} {'1st fwd':>7} {'1st grad':>8} "
          f"{'compile+fwd':>11} {'again':>6}")
    derive, total = [], []
    for name in names:
        r = run(SYMIFT.format(name=name, path=str(ROOT / "examples" / f"{name}.ift"), tests=str(ROOT / "tests")))
        if isinstance(r, str):
            print(f"{name:26} failed: {r}")
            continue
        derive.append(r["derive"])
        total.append(r["compile"] + r["fwd"])
        print(f"{name:26} {fmt(r['import_'])} {fmt(r['derive'])} {fmt(r['compile']):>7} {fmt(r['fwd']):>7} "
              f"{fmt(r['grad']):>8} {fmt(r['compile'] + r['fwd']):>11} {fmt(r['again'])}", flush=True)
    if derive:
        print(f"{'median over examples':26} {'':6} {fmt(statistics.median(derive))} {'':7} {'':7} {'':8} "
              f"{fmt(statistics.median(total)):>11}")
        print(f"{'max over examples':26} {'':6} {fmt(max(derive))} {'':7} {'':7} {'':8} {fmt(max(total)):>11}")
    if args.no_peers:
        return
    for label, code in (("jaxopt projection_simplex", JAXOPT_SIMPLEX), ("jaxopt OSQP (QP, implicit)", JAXOPT_QP),
                        ("cvxpylayers (QP)", CVXPYLAYERS_QP)):
        r = run(code)
        if isinstance(r, str):
            print(f"{label:26} failed: {r}")
            continue
        c = r["compile"] or 0.0
        print(f"{label:26} {fmt(r['import_'])} {fmt(r['derive'])} {fmt(r['compile']):>7} {fmt(r['fwd']):>7} "
              f"{fmt(r['grad']):>8} {fmt(c + r['fwd']):>11} {fmt(r['again'])}", flush=True)


if __name__ == "__main__":
    main()
