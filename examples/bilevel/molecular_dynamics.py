"""Sensitivity of an energy minimum: how a packing of soft disks moves when one disk grows
(Blondel et al. 2021, §3.4, after JAX MD), with symift deriving the force balance and its tangent.

n disks of two sizes (diameters 1 and 1.4, as in JAX MD's bidisperse packings) sit in an elliptical
harmonic trap; every pair repels with (σ/r)¹² (examples/bilevel/soft_spheres.ift).  The solver is the
user's — gradient descent to relax the disks from a jittered lattice, then Newton steps, all in JAX
— and symift's layer makes it differentiable: the force balance F(P, d) = ∇_P E = 0 and its tangent
system are derived, so dP/dd comes from one linear solve at the minimum (``jax.jvp``, forward
mode), not from differentiating the minimizer's iterations.

Printed: the forward-mode sensitivity of every position to the diameter of disk 0, against central
differences of re-solves and against forward mode through the minimizer itself (unrolled), with
their times.  The figure draws the packing with the sensitivity arrows.

    python examples/bilevel/molecular_dynamics.py [--n 24] [--out molecular_dynamics.png]

Needs the ``examples`` extra (matplotlib).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from measure import median_seconds, temp_mib

import symift

jax.config.update("jax_enable_x64", True)
HERE = Path(__file__).resolve().parent
KAPPA = jnp.array([0.5, 0.8])  # an elliptical trap: a round one leaves rotations free
RELAX, NEWTON = 2000, 30


def pairs(n):
    """The signed incidence matrix A of all pairs (row e: +1 at i, −1 at j) and S = |A|."""
    i, j = np.triu_indices(n, 1)
    A = np.zeros((len(i), n))
    A[np.arange(len(i)), i] = 1.0
    A[np.arange(len(i)), j] = -1.0
    return jnp.asarray(A), jnp.asarray(np.abs(A))


def packing(n, seed=0):
    """Diameters (alternating 1 and 1.4) and a jittered square lattice to start from."""
    rng = np.random.default_rng(seed)
    d = np.where(np.arange(n) % 2 == 0, 1.0, 1.4)
    side = int(np.ceil(np.sqrt(n)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n] * 1.3
    start = grid - grid.mean(axis=0) + 0.05 * rng.standard_normal((n, 2))
    return jnp.asarray(d), jnp.asarray(start)


def energy(P, A, S, d, kappa):
    """The energy of soft_spheres.ift, written in JAX (for the user's minimizer)."""
    r2 = jnp.sum((A @ P) ** 2, axis=1)
    return jnp.sum(((S @ d) ** 2 / (4 * r2)) ** 6) + jnp.sum(P ** 2 @ kappa) / 2


def minimizer(start):
    """The user's solver: gradient descent with each displacement capped at 0.02, then saddle-free
    Newton steps (the Hessian's eigenvalues by their moduli, each step capped at 0.1) on the 2n
    positions.  Any solver works: symift only needs its minimum."""
    def solve(A, S, d, kappa):
        grad = jax.grad(energy)

        def descend(_, P):
            return P - jnp.clip(0.01 * grad(P, A, S, d, kappa), -0.02, 0.02)
        P = jax.lax.fori_loop(0, RELAX, descend, start)
        hessian = jax.hessian(lambda x: energy(x.reshape(P.shape), A, S, d, kappa))

        def newton(_, P):
            w, V = jnp.linalg.eigh(hessian(P.ravel()))
            step = V @ ((V.T @ grad(P, A, S, d, kappa).ravel()) / jnp.maximum(jnp.abs(w), 1e-10))
            step = step * jnp.minimum(1.0, 0.1 / jnp.max(jnp.abs(step)))
            return P - step.reshape(P.shape)
        return jax.lax.fori_loop(0, NEWTON, newton, P)
    return solve


def layer_for(start):
    return symift.compile(symift.load(HERE / "soft_spheres.ift"), solver=minimizer(start))


def run(n, out_png, seed=0):
    d, start = packing(n, seed)
    A, S = pairs(n)
    layer = layer_for(start)
    e0 = jnp.zeros(n).at[0].set(1.0)

    def positions(d):
        return layer(A=A, S=S, d=d, kappa=KAPPA)["P"]

    implicit = jax.jit(lambda d: jax.jvp(positions, (d,), (e0,)))
    unrolled = jax.jit(lambda d: jax.jvp(lambda d: minimizer(start)(A, S, d, KAPPA), (d,), (e0,)))
    P, dP = implicit(d)
    out = layer(A=A, S=S, d=d, kappa=KAPPA)
    h = 1e-5
    fd = (positions(d + h * e0) - positions(d - h * e0)) / (2 * h)
    _, dP_unrolled = unrolled(d)
    t_imp, t_unr = median_seconds(implicit, 5, d), median_seconds(unrolled, 5, d)
    print(f"{n} soft disks (diameters 1 and 1.4) in an elliptical harmonic trap, {A.shape[0]} pairs; converged "
          f"{bool(out['converged'])}, force residual {float(out['residual']):.1e}")
    print(f"dP/dd_0 (forward mode): max |implicit − central differences of re-solves| = "
          f"{float(jnp.max(jnp.abs(dP - fd))):.1e}, max |implicit − unrolled| = "
          f"{float(jnp.max(jnp.abs(dP - dP_unrolled))):.1e}")
    print(f"time of solve + tangent: implicit {1e3 * t_imp:.1f} ms, unrolled through {RELAX} descent + "
          f"{NEWTON} Newton steps {1e3 * t_unr:.1f} ms ({t_unr / t_imp:.2f}x); XLA temporary memory "
          f"{temp_mib(implicit, d):.2f} and {temp_mib(unrolled, d):.2f} MiB")
    figure(np.asarray(P), np.asarray(dP), np.asarray(d), out_png)
    print(f"figure: {out_png}")
    return P, dP, fd


def figure(P, dP, d, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    fig, ax = plt.subplots(figsize=(6, 6))
    for k, (p, di) in enumerate(zip(P, d, strict=True)):
        ax.add_patch(Circle(p, di / 2, facecolor="C3" if k == 0 else ("C0" if di < 1.2 else "C1"), alpha=0.5,
                            edgecolor="k"))
    ax.quiver(P[:, 0], P[:, 1], dP[:, 0], dP[:, 1], angles="xy", scale_units="xy", scale=1.0, width=0.004)
    lim = np.abs(P).max() + 1.2
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title("dP/dd₀: how the packing moves as disk 0 (red) grows")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--out", default="molecular_dynamics.png")
    args = ap.parse_args(argv)
    run(args.n, args.out)


if __name__ == "__main__":
    main()
