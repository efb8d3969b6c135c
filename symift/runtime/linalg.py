"""Structured products and checked factorizations that generated code is printed in terms of.

The printer (:mod:`symift.emit.emitter`) evaluates a derived matrix expression applied to a
vector right to left, so the generated code calls these helpers instead of forming matrices:
``diag(d, v)`` for diag(d)·v, ``row(u, v)`` for uᵀv, ``gram(B, d)`` for Bᵀdiag(d)B, and
factorizations in place of every inverse.  Each helper takes a vector or a matrix of columns.

Factorizations and single-vector solves are cut across cores under vmap (see
:func:`symift.runtime.batching.lapack_pieces`); the solves of tangents inside a jvp rule use
jax.scipy's own, which reverse mode can transpose.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .batching import batch_slice, custom_vmap_with_jvp, lapack_pieces, vmap_batched
from .spec import sum_of

###{standalone


def row(u, v):
    """uᵀ v: a scalar for a vector v, a 1×k row for a matrix v."""
    if jnp.ndim(v) == 1:  # an elementwise product and a sum: fuses on CPU, unlike a batched dot
        return sum_of(u * v)
    return jnp.tensordot(u, v, axes=1)[None, :]


def col(u, a):
    """u a for a scalar a, or the outer product u a for a 1×k row a."""
    return u * a if jnp.ndim(a) == 0 else u[:, None] * a


def diag(d, v):
    """diag(d) v without forming diag(d)."""
    return d * v if jnp.ndim(v) == 1 else d[:, None] * v


def gram(b, d):
    """bᵀ diag(d) b for d > 0, as wᵀw with w = √d ∘ b (one product, no diag(d) b then bᵀ·)."""
    w = jnp.sqrt(d)[:, None] * b
    return w.T @ w


def kron_apply(a, b, v):
    """(A ⊗ B) v without forming A ⊗ B: vec(B V Aᵀ) with v = vec(V) (column-major), for one vector
    or a matrix of columns."""
    if jnp.ndim(v) == 1:  # row-major: W = Vᵀ, and vec(B V Aᵀ) is A W Bᵀ read row by row
        return (a @ v.reshape(a.shape[1], b.shape[1]) @ b.T).reshape(-1)
    w = v.T.reshape(v.shape[1], a.shape[1], b.shape[1])
    return jnp.einsum("ij,cjk,lk->cil", a, w, b).reshape(v.shape[1], -1).T


def vec_cols(a):
    """vec(A): the columns of A stacked."""
    return a.T.reshape(-1)


def unvec(v, rows, cols):
    """The rows×cols matrix A with vec(A) = v."""
    return v.reshape(cols, rows).T


def ones_row(v):
    """1ᵀ v."""
    if jnp.ndim(v) == 1:
        return sum_of(v)
    return jnp.sum(v, axis=0)[None, :]


def zeros(rows, v):
    """The zero matrix with `rows` rows applied to v."""
    dtype = jnp.result_type(v)
    if rows == 1:
        return jnp.zeros((1,) + jnp.shape(v)[1:], dtype) if jnp.ndim(v) == 2 else jnp.zeros((), dtype)
    return jnp.zeros((rows,) + jnp.shape(v)[1:], dtype)


def across_cores(plain, vectors_only=False):
    """`plain` (a factorization or solve) whose vmapped batch is cut into lapack_pieces calls.

    vectors_only: cut a solve only for a single right-hand side (its last argument a vector);
    with many, the triangular solve is BLAS-3 and multithreaded already, and cutting costs copies.
    """
    def rule(axis_size, in_batched, *args):
        per_problem = jnp.ndim(args[-1]) - bool(jax.tree.leaves(in_batched[-1])[0])
        k = 1 if vectors_only and per_problem > 1 else lapack_pieces(axis_size)
        cuts = [axis_size * i // k for i in range(k + 1)]
        pieces = [vmap_batched(plain, in_batched)(*batch_slice(args, in_batched, cuts[i], cuts[i + 1]))
                  for i in range(k)]
        out = jax.tree.map(lambda *p: jnp.concatenate(p), *pieces) if k > 1 else pieces[0]
        return out, jax.tree.map(lambda _: True, out)
    return custom_vmap_with_jvp(plain, rule)


#: Cholesky (upper factor) and LU factorizations and solves, each cut across cores under vmap.
cho_factor = across_cores(lambda m: jax.scipy.linalg.cho_factor(m)[0])
lu_factor = across_cores(lambda m: jax.scipy.linalg.lu_factor(m))
cho_solve = across_cores(lambda c, v: jax.scipy.linalg.cho_solve((c, False), v), vectors_only=True)
lu_solve = across_cores(lambda lu, v: jax.scipy.linalg.lu_solve(lu, v), vectors_only=True)


def pd_inverse(m):
    """M⁻¹ of a pd matrix, explicitly: for a parameter pivot (Q of a QP) that a Newton step applies
    at every iterate of a loop.  Computed once outside it, each application is then a matrix
    product instead of two triangular solves (a batched triangular solve of one vector costs
    about ten matrix-vector products on CPU)."""
    return cho_solve(cho_factor(m), jnp.eye(m.shape[-1], dtype=m.dtype))


def proj_simplex(v):
    """The Euclidean projection of a vector onto the simplex {p ≥ 0, 1ᵀp = 1}: max(v − τ, 0) with
    τ from the sorted entries (Held et al. 1974; Michelot 1986), O(n log n)."""
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - 1
    k = jnp.arange(1, v.shape[-1] + 1, dtype=v.dtype)
    rho = jnp.sum(u - css / k > 0)
    return jnp.maximum(v - css[rho - 1] / rho, 0)


def proj_l2ball(v, r):
    """The Euclidean projection of a vector onto the ball ‖p‖ ≤ r: v min(1, r/‖v‖)."""
    norm = jnp.linalg.norm(v)
    return v * jnp.minimum(1.0, r / jnp.where(norm > 0, norm, 1.0))


###}
