"""Hyperparameter optimization of a multiclass SVM on scikit-learn's digits (Blondel et al. 2021,
§3.1), with symift deriving and differentiating the inner problem.

Inner problem (examples/multiclass_svm.ift, a coupled matrix variable): the dual of the multiclass
SVM on the training set,
    B*(λ) = argmax_B  ⟨B, 1 − Y⟩ − ‖Xᵀ(Y − B)‖²/(2λ)   s.t. each row of B on the simplex,
with the primal weights W(λ) = Xᵀ(Y − B*(λ))/λ.  Outer problem: the validation cross-entropy of
softmax(X_val W(λ)), minimized in log λ by gradient descent from λ = 1000.  On digits the
training set is separable, so below some λ the solution is the hard-margin SVM and the loss is
flat; there, and where the dual solution is not unique (∂F/∂x singular: the layer returns NaN under
jit and the descent stops), the gradient carries no information.  d/dλ comes through symift's layer: an
interior point for B*, then the closed form of d vec(B)/dλ that symift derives (printed by
``symift derive``; one mk × mk and one m × m factorization at the solution).  The figure shows the
validation loss over a grid of λ with the descent's iterates, and the validation accuracy.

``--compare`` times the outer gradient by implicit differentiation against unrolling K steps of
accelerated projected gradient (FISTA on the dual, written here) for growing training sets, with
the K that matches the implicit gradient to 1e-6; and, as in the paper's Figure 2, implicit
differentiation with the same K FISTA steps as the forward solver (``solver=``).

    python examples/bilevel/svm_hpo.py [--train 150] [--steps 12] [--out svm_hpo.png]
    python examples/bilevel/svm_hpo.py --compare [--sizes 50 100 150]

Needs the ``examples`` extra (scikit-learn, matplotlib).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from measure import median_seconds, temp_mib

import symift

jax.config.update("jax_enable_x64", True)
ROOT = Path(__file__).resolve().parent.parent


def digits(train, val=400, seed=0):
    """Standardized digits (Xtr, Ytr, Xva, Yva), labels one-hot (k = 10)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, train_size=train, test_size=val, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(Xtr)
    onehot = np.eye(10)
    return scaler.transform(Xtr), onehot[ytr], scaler.transform(Xva), onehot[yva]


def svm_layer():
    """The layer of the dual.  tol=1e-12: the residual is measured relative to the largest
    parameter entry, λ here (up to 1e4), and at the default 1e-9 the interior point may stop with
    λᵢgᵢ products near 1e-10 — too large for the strict-complementarity check to tell a multiplier
    of 1e-4 from zero (it then flags the solution as not regular)."""
    return symift.compile(symift.load(ROOT / "multiclass_svm.ift"), tol=1e-12)


def weights(layer, Xtr, Ytr, lam):
    """The primal weights W(λ) = Xᵀ(Y − B*(λ))/λ of the SVM trained on (Xtr, Ytr)."""
    B = layer(X=Xtr, Y=Ytr, lam=lam)["B"]
    return Xtr.T @ (Ytr - B) / lam


def outer_loss(layer, log_lam, Xtr, Ytr, Xva, Yva):
    """The validation cross-entropy of the SVM with λ = exp(log_lam)."""
    scores = Xva @ weights(layer, Xtr, Ytr, jnp.exp(log_lam))
    return jnp.mean(jax.nn.logsumexp(scores, axis=1) - jnp.sum(Yva * scores, axis=1))


def accuracy(layer, log_lam, Xtr, Ytr, Xva, Yva):
    scores = Xva @ weights(layer, Xtr, Ytr, jnp.exp(log_lam))
    return float(jnp.mean(jnp.argmax(scores, axis=1) == jnp.argmax(Yva, axis=1)))


def descend(layer, data, log_lam, steps, lr=10.0):
    """Gradient descent on log λ with a backtracking step (halved until the loss decreases)."""
    value_and_grad = jax.jit(jax.value_and_grad(lambda t: outer_loss(layer, t, *data)))
    path = []
    loss, g = value_and_grad(log_lam)
    for _ in range(steps):
        path.append((float(log_lam), float(loss)))
        step = lr
        while step > 1e-4:
            trial = log_lam - step * g
            new_loss, new_g = value_and_grad(trial)
            if new_loss < loss:
                break
            step /= 2
        else:
            break
        log_lam, loss, g = trial, new_loss, new_g
    path.append((float(log_lam), float(loss)))
    return log_lam, path


def run(train, steps, out_png, grid=15, lam0=1000.0):
    data = digits(train)
    layer = svm_layer()
    loss = jax.jit(lambda t: outer_loss(layer, t, *data))
    t0 = time.perf_counter()
    log_lam, path = descend(layer, data, jnp.asarray(np.log(lam0)), steps)
    seconds = time.perf_counter() - t0
    grid_t = np.linspace(np.log(1.0), np.log(1e4), grid)
    grid_loss = [float(loss(t)) for t in grid_t]
    grid_acc = [accuracy(layer, t, *data) for t in grid_t]
    start_acc, end_acc = accuracy(layer, path[0][0], *data), accuracy(layer, log_lam, *data)
    print(f"digits: {train} training, {len(data[2])} validation samples, k = 10 classes, {data[0].shape[1]} features")
    print(f"gradient descent on log λ: {len(path) - 1} steps in {seconds:.1f} s "
          f"(symift layer: interior point + the derived closed form in vec(B))")
    print(f"  λ {np.exp(path[0][0]):.3g} -> {float(np.exp(log_lam)):.3g}; validation loss {path[0][1]:.4f} -> "
          f"{path[-1][1]:.4f}; validation accuracy {100 * start_acc:.1f}% -> {100 * end_acc:.1f}%")
    best = int(np.argmin(grid_loss))
    print(f"  grid of {grid} values: best λ {np.exp(grid_t[best]):.3g}, loss {grid_loss[best]:.4f}, "
          f"accuracy {100 * grid_acc[best]:.1f}%")
    figure(grid_t, grid_loss, grid_acc, path, out_png)
    print(f"figure: {out_png}")
    return path


def figure(grid_t, grid_loss, grid_acc, path, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    lam = np.exp(grid_t)
    a.semilogx(lam, grid_loss, "-", color="0.6", label="validation loss (grid)")
    a.semilogx(np.exp([t for t, _ in path]), [v for _, v in path], "o-", color="C3", label="gradient descent")
    a.set_xlabel("λ")
    a.set_ylabel("validation cross-entropy")
    a.legend()
    b.semilogx(lam, 100 * np.asarray(grid_acc), "-", color="C0")
    b.set_xlabel("λ")
    b.set_ylabel("validation accuracy (%)")
    fig.suptitle("Multiclass SVM on digits: λ by implicit differentiation of the dual (symift)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def project_rows(V):
    """Each row of V projected onto the simplex (sort-based, differentiable by jax)."""
    U = -jnp.sort(-V, axis=1)
    css = jnp.cumsum(U, axis=1) - 1
    idx = jnp.arange(1, V.shape[1] + 1)
    rho = jnp.sum(U - css / idx > 0, axis=1)
    tau = jnp.take_along_axis(css, (rho - 1)[:, None], axis=1)[:, 0] / rho
    return jnp.maximum(V - tau[:, None], 0)


def fista_dual(X, Y, lam, iters):
    """K steps of accelerated projected gradient on the dual (the unrolled baseline)."""
    step = lam / jnp.linalg.norm(X, 2) ** 2

    def body(state, _):
        B, Z, t = state
        grad = -X @ (X.T @ (Y - Z)) / lam - (1 - Y)
        B_new = project_rows(Z - step * grad)
        t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        return (B_new, B_new + (t - 1) / t_new * (B_new - B), t_new), None
    B0 = jnp.full(Y.shape, 1.0 / Y.shape[1])
    (B, _, _), _ = jax.lax.scan(body, (B0, B0, jnp.asarray(1.0)), None, length=iters)
    return B


def unrolled_loss(log_lam, K, data):
    """The validation loss with B from K unrolled FISTA steps instead of the exact dual solution."""
    Xtr, Ytr, Xva, Yva = data
    lam = jnp.exp(log_lam)
    scores = Xva @ (Xtr.T @ (Ytr - fista_dual(Xtr, Ytr, lam, K)) / lam)
    return jnp.mean(jax.nn.logsumexp(scores, axis=1) - jnp.sum(Yva * scores, axis=1))


def compare(sizes, repeat=3, log_lam=0.0):
    """Outer-gradient time: implicit (symift) against unrolled FISTA with the K that matches it."""
    layer = svm_layer()
    print(f"{'m':>5} {'implicit ms':>12} {'MiB':>7} {'K':>6} {'unrolled ms':>12} {'MiB':>7} {'ratio':>7} "
          f"{'|Δgrad|':>9} {'same solver ms':>15} {'MiB':>7}")
    rows = []
    for m in sizes:
        data = tuple(jnp.asarray(a) for a in digits(m))
        implicit = jax.jit(jax.grad(lambda t, data: outer_loss(layer, t, *data)))
        g = float(implicit(log_lam, data))
        t_imp = median_seconds(implicit, repeat, log_lam, data)
        for K in (100, 300, 1000, 3000, 10000):
            unrolled = jax.jit(jax.grad(unrolled_loss), static_argnums=1)
            err = abs(float(unrolled(log_lam, K, data)) - g)
            if err <= 1e-6 * max(1.0, abs(g)) or K == 10000:
                break
        t_unr = median_seconds(unrolled, repeat, log_lam, K, data)
        mib_imp, mib_unr = temp_mib(implicit, log_lam, data), temp_mib(unrolled, log_lam, K, data)
        # the paper's comparison: the same K FISTA steps forward (a user solver), symift's implicit backward
        fista = symift.compile(symift.load(ROOT / "multiclass_svm.ift"), tol=1e-6,
                               solver=lambda X, Y, lam, K=K: fista_dual(X, Y, lam, K))
        same = jax.jit(jax.grad(lambda t, data, fista=fista: outer_loss(fista, t, *data)))
        t_same, mib_same = median_seconds(same, repeat, log_lam, data), temp_mib(same, log_lam, data)
        print(f"{m:>5} {1e3 * t_imp:>12.1f} {mib_imp:>7.2f} {K:>6} {1e3 * t_unr:>12.1f} {mib_unr:>7.2f} "
              f"{t_unr / t_imp:>7.2f} {err:>9.1e} {1e3 * t_same:>15.1f} {mib_same:>7.2f}")
        rows.append((m, t_imp, K, t_unr, err))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=150)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--grid", type=int, default=15)
    ap.add_argument("--lam0", type=float, default=1000.0, help="the starting λ")
    ap.add_argument("--out", default="svm_hpo.png")
    ap.add_argument("--compare", action="store_true", help="time implicit vs unrolled outer gradients instead")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 150])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.compare:
        compare(args.sizes, args.repeat)
    else:
        run(args.train, args.steps, args.out, args.grid, args.lam0)


if __name__ == "__main__":
    main()
