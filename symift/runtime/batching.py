"""How the layer adapts a vmapped batch to the machine: batching rules over ``custom_vmap``.

* :func:`in_chunks` runs a vmapped forward solve over the batch in cache-sized chunks;
* :func:`lapack_pieces` says into how many calls a batched factorization is cut across cores
  (used by :mod:`symift.runtime.linalg`).

jax and numpy only: this file is also copied into standalone generated modules (the code between
the ``standalone`` markers; see :mod:`symift.emit.standalone`).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

###{standalone


def custom_vmap_with_jvp(plain, rule):
    """`plain` with `rule` as its batching rule, differentiable through `plain`'s own jvp (reverse
    mode only where its inputs are not being differentiated: factorizations of primal values, the
    interior point's Newton solves, the forward solve)."""
    f = jax.custom_batching.custom_vmap(plain)
    f.def_vmap(rule)
    wrapped = jax.custom_jvp(f)
    wrapped.defjvp(lambda primals, tangents: jax.jvp(plain, primals, tangents))
    return wrapped


def vmap_batched(plain, in_batched):
    """jax.vmap of `plain` over axis 0 of the arguments flagged in `in_batched`."""
    return jax.vmap(plain, in_axes=jax.tree.map(lambda b: 0 if b else None, list(in_batched)))


def batch_slice(args, in_batched, lo, hi):
    """Problems lo..hi of the batched arguments (the unbatched ones unchanged)."""
    return jax.tree.map(lambda a, b: a[lo:hi] if b else a, list(args), list(in_batched))


def lapack_pieces(size):
    """Into how many calls a vmapped batch of `size` factorizations or triangular solves is cut.

    Before 0.10, jaxlib's CPU LAPACK kernels run a batch on one thread, one problem after the
    other, while XLA runs independent calls concurrently: one piece per core halves a batch of
    128 Cholesky factorizations on 2 cores.  One piece on GPU/TPU (batched kernels), with several
    devices (sharding already spreads the batch) and from jaxlib 0.10 on (it splits batches itself).
    """
    if (jax.default_backend() != "cpu" or jax.local_device_count() > 1
            or tuple(int(v) for v in jax.__version__.split(".")[:2]) >= (0, 10)):
        return 1
    return max(1, min(os.cpu_count() or 1, size // 8))


def chunk_size(axis_size, problem_bytes):
    """Problems per chunk when a vmapped forward solve runs its batch in sequential chunks.

    An interior-point iteration streams every problem's matrices through memory several times;
    once a batch outgrows the cache, chunks that fit run faster (the OptNet QP, n = 100, batch 128
    on 2 cores: about 1.7x), and each chunk runs only to its own slowest problem.  Chunks hold
    about 4 MiB of parameters (a power of two, at least 8 problems).  One chunk on GPU/TPU (wide
    batches are what they run well) and with several devices (sharding splits the batch).
    """
    if jax.default_backend() != "cpu" or jax.local_device_count() > 1:
        return axis_size
    size = 8
    while 2 * size * problem_bytes <= 4 * 2**20:
        size *= 2
    return min(size, axis_size)


def in_chunks(plain):
    """`plain` (the forward solve) whose vmapped batch runs in chunks of chunk_size problems."""
    def rule(axis_size, in_batched, *args):
        leaves, tree = jax.tree.flatten(list(args))
        flags = jax.tree.leaves(list(in_batched))
        problem_bytes = sum(int(np.prod(jnp.shape(a)[1:])) * jnp.result_type(a).itemsize
                            for a, b in zip(leaves, flags, strict=False) if b)
        size = chunk_size(axis_size, problem_bytes)
        batched = vmap_batched(plain, in_batched)
        full = axis_size // size * size
        if size == axis_size:
            out = batched(*args)
            return out, jax.tree.map(lambda _: True, out)

        def one(chunk):  # the batched leaves of one chunk
            it = iter(chunk)
            whole = [next(it) if b else a for a, b in zip(leaves, flags, strict=True)]
            return batched(*jax.tree.unflatten(tree, whole))
        chunks = [a[:full].reshape((full // size, size) + a.shape[1:]) for a, b in zip(leaves, flags, strict=True) if b]
        out = jax.tree.map(lambda o: o.reshape((full,) + o.shape[2:]), lax.map(one, chunks))
        if full < axis_size:
            rest = batched(*batch_slice(args, in_batched, full, axis_size))
            out = jax.tree.map(lambda o, r: jnp.concatenate([o, r]), out, rest)
        return out, jax.tree.map(lambda _: True, out)
    return custom_vmap_with_jvp(plain, rule)
###}
