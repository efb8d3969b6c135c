import sys, time, jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from jax.scipy.linalg import cho_factor, cho_solve, lu_factor, lu_solve
B, n, kind = 16, 100, sys.argv[1]
rng = np.random.default_rng(0)
L = rng.random((B, n, n)); Q = jnp.asarray(L @ L.transpose(0, 2, 1) + 1e-3 * np.eye(n)); q = jnp.asarray(rng.standard_normal((B, n)))
G = jnp.asarray(rng.standard_normal((B, n, n)))
def one(Q, G, q):
    z = q
    if kind.startswith("while"):
        z = jax.lax.while_loop(lambda s: s[1] < 20, lambda s: (cho_solve(cho_factor(Q + s[1] * jnp.eye(n)), s[0]) , s[1] + 1), (q, 0))[0]
        z = jax.lax.stop_gradient(z)
    c = cho_factor(Q)
    y = lu_solve(lu_factor(G @ G.T + jnp.eye(n)), G @ q)
    return cho_solve(c, G.T @ y) + z * q
g = jax.jit(jax.grad(lambda q: jnp.sum(jax.vmap(one)(Q, G, q))))
t0 = time.time(); jax.block_until_ready(g(q)); print("ok", kind, time.time() - t0, flush=True)
