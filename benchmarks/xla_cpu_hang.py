"""Reproducer (jax only, no symift) of the XLA CPU hang of jax/jaxlib 0.10.0-0.10.2.

jit(grad(vmap(f))) where f runs a lax.while_loop with LAPACK calls (Cholesky) and, independently,
more LAPACK calls whose transposes the gradient needs, sometimes never completes: every thread
waits in a futex, no CPU is used.  On the 2-core CI-like machine with jaxlib 0.10.2 about 1 run in
3 hangs ("while"); "plain" (no while loop) never did.

Cause (gdb, `thread apply all bt` on a hung symift OptNet layer): both of XLA's intra-op pool
threads sit in lapack_dtrsm_ffi -> jax::ParallelBatchMap -> absl::BlockingCounter::Wait.  jaxlib
0.10 splits a batched LAPACK call into chunks scheduled on the same pool and blocks until they
finish; when as many independent batched calls run at once as the pool has threads (2 here), the
chunks never run.  The jaxlib 0.9.2 and 0.10.x wheels differ exactly there (ParallelBatchMap is in
0.10.0's _lapack.so, not 0.9.2's); with 0.9.2 neither this script nor the layer hung.  symift's
pyproject.toml therefore excludes jax/jaxlib 0.10.0-0.10.2, and symift.compile warns on them.

    for i in 1 2 3 4 5 6; do timeout 15 python benchmarks/xla_cpu_hang.py while || echo HANG; done
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_factor, cho_solve, lu_factor, lu_solve

jax.config.update("jax_enable_x64", True)
B, n = 16, 100
kind = sys.argv[1] if len(sys.argv) > 1 else "while"
rng = np.random.default_rng(0)
L = rng.random((B, n, n))
Q = jnp.asarray(L @ L.transpose(0, 2, 1) + 1e-3 * np.eye(n))
q = jnp.asarray(rng.standard_normal((B, n)))
G = jnp.asarray(rng.standard_normal((B, n, n)))


def one(Q, G, q):
    z = q
    if kind in ("while", "barrier"):
        def body(s):
            return cho_solve(cho_factor(Q + s[1] * jnp.eye(n)), s[0]), s[1] + 1
        z = jax.lax.stop_gradient(jax.lax.while_loop(lambda s: s[1] < 20, body, (q, 0))[0])
    if kind == "barrier":
        Q, G, z = jax.lax.optimization_barrier((Q, G, z))
    y = lu_solve(lu_factor(G @ G.T + jnp.eye(n)), G @ q)
    return cho_solve(cho_factor(Q), G.T @ y) + z * q


g = jax.jit(jax.grad(lambda q: jnp.sum(jax.vmap(one)(Q, G, q))))
t0 = time.time()
jax.block_until_ready(g(q))
print("ok", kind, f"{time.time() - t0:.2f} s")
