"""Dataset distillation on scikit-learn's digits (Blondel et al. 2021, §3.3; Wang et al. 2018), with
symift deriving and differentiating the inner problem.

Learn one 8×8 image per class, X_d ∈ ℝ^{10×64}, such that the multiclass logistic regression
trained on those ten images alone fits the whole training set:

    min_{X_d}  CE(softmax(X_train W*(X_d)), y_train),
    W*(X_d) = argmin_W  Σᵢ [logsumexp(x_dᵢ W) − (x_dᵢ W)_{i}] + (λ/2)‖W‖²   (examples/bilevel/multiclass_logreg.ift).

W is 64 × 10 and ``X @ W`` couples its rows, so symift keeps it a matrix: a Newton solve of the
derived stationarity condition forward, and backward the closed form symift derives for vec(W)
(with Kronecker products: ``symift derive examples/bilevel/multiclass_logreg.ift``).  The
outer problem runs Adam on X_d.  Reported: the training and test accuracy of the logistic
regression trained on the ten distilled images, against ten real images (one random image per
class) and the ten class means.  The figure shows the distilled images.

``--compare`` times the outer gradient by implicit differentiation against unrolling K steps of
gradient descent on the inner problem, with the K that matches the implicit gradient to 1e-6 (the
paper reports implicit differentiation 4× faster on MNIST).

    python examples/bilevel/distillation.py [--steps 200] [--out distillation.png]
    python examples/bilevel/distillation.py --compare

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
HERE = Path(__file__).resolve().parent
LAM = 0.1


def digits(seed=0):
    """Digits as pixel intensities in [0, 1] (Xtr, ytr, Xte, yte), a stratified 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, stratify=y, random_state=seed)
    return Xtr, ytr, Xte, yte


def logreg_layer():
    return symift.compile(symift.load(HERE / "multiclass_logreg.ift"))


def train_on(layer, Xd):
    """W*(X_d): the logistic regression trained on the distilled images, one per class."""
    return layer(X=Xd, Y=jnp.eye(Xd.shape[0]), lam=LAM)["W"]


def outer_loss(layer, Xd, X, y):
    scores = X @ train_on(layer, Xd)
    return jnp.mean(jax.nn.logsumexp(scores, axis=1) - jnp.take_along_axis(scores, y[:, None], axis=1)[:, 0])


def accuracy(W, X, y):
    return float(jnp.mean(jnp.argmax(X @ W, axis=1) == y))


def distill(layer, Xtr, ytr, steps, lr=0.05, seed=0):
    """Adam on the distilled images from small random ones."""
    rng = np.random.default_rng(seed)
    Xd = jnp.asarray(0.1 * rng.standard_normal((10, Xtr.shape[1])))
    value_and_grad = jax.jit(jax.value_and_grad(lambda Xd: outer_loss(layer, Xd, Xtr, ytr)))
    m = v = jnp.zeros_like(Xd)
    losses = []
    for t in range(1, steps + 1):
        loss, g = value_and_grad(Xd)
        losses.append(float(loss))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        Xd = Xd - lr * (m / (1 - 0.9 ** t)) / (jnp.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return Xd, losses


def run(steps, out_png, seed=0):
    Xtr, ytr, Xte, yte = (jnp.asarray(a) for a in digits(seed))
    layer = logreg_layer()
    t0 = time.perf_counter()
    Xd, losses = distill(layer, Xtr, ytr, steps, seed=seed)
    seconds = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    real = jnp.stack([Xtr[rng.choice(np.flatnonzero(np.asarray(ytr) == c))] for c in range(10)])
    means = jnp.stack([jnp.mean(Xtr[np.asarray(ytr) == c], axis=0) for c in range(10)])
    print(f"digits: {len(ytr)} training, {len(yte)} test images (8×8); {steps} Adam steps in {seconds:.1f} s "
          f"(symift layer: Newton on the derived stationarity, its closed form in vec(W) backward)")
    print(f"training loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"{'trained on 10 images':<28} {'train acc %':>12} {'test acc %':>11}")
    for name, images in (("one real image per class", real), ("class means", means), ("distilled (symift)", Xd)):
        W = train_on(layer, images)
        print(f"{name:<28} {100 * accuracy(W, Xtr, ytr):>12.1f} {100 * accuracy(W, Xte, yte):>11.1f}")
    figure(Xd, losses, out_png)
    print(f"figure: {out_png}")
    return Xd, losses


def figure(Xd, losses, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 3.2))
    for c in range(10):
        ax = fig.add_subplot(2, 10, c + 1)
        ax.imshow(np.asarray(Xd[c]).reshape(8, 8), cmap="gray_r")
        ax.set_title(str(c))
        ax.axis("off")
    ax = fig.add_subplot(2, 1, 2)
    ax.plot(losses)
    ax.set_xlabel("Adam step")
    ax.set_ylabel("training loss")
    fig.suptitle("Dataset distillation on digits: one learned image per class (symift)")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def unrolled_weights(Xd, iters):
    """K steps of gradient descent on the inner problem (the unrolled baseline), step 1/L."""
    Y = jnp.eye(Xd.shape[0])
    step = 1.0 / (jnp.linalg.norm(Xd, 2) ** 2 / 2 + LAM)  # the Hessian is ⪯ XᵀX/2 + λI

    def body(W, _):
        return W - step * (Xd.T @ (jax.nn.softmax(Xd @ W, axis=1) - Y) + LAM * W), None
    W, _ = jax.lax.scan(body, jnp.zeros((Xd.shape[1], Xd.shape[0])), None, length=iters)
    return W


def compare(repeat=5, seed=0):
    """Outer-gradient time: implicit (symift) against unrolled gradient descent with the K that matches it."""
    Xtr, ytr, _, _ = (jnp.asarray(a) for a in digits(seed))
    layer = logreg_layer()
    Xd = jnp.asarray(0.3 * np.random.default_rng(seed).standard_normal((10, Xtr.shape[1])))

    def loss_of(W):
        scores = Xtr @ W
        return jnp.mean(jax.nn.logsumexp(scores, axis=1) - jnp.take_along_axis(scores, ytr[:, None], axis=1)[:, 0])
    implicit = jax.jit(jax.grad(lambda Xd: outer_loss(layer, Xd, Xtr, ytr)))
    g = implicit(Xd)
    t_imp = median_seconds(implicit, repeat, Xd)
    print(f"{'':>10} {'K':>6} {'ms':>9} {'vs implicit':>12} {'temp MiB':>9} {'max |Δgrad|':>12}")
    print(f"{'implicit':>10} {'':>6} {1e3 * t_imp:>9.1f} {1.0:>12.2f} {temp_mib(implicit, Xd):>9.2f} {0.0:>12.1e}")
    for K in (100, 300, 1000, 3000, 10000):
        unrolled = jax.jit(jax.grad(lambda Xd, K=K: loss_of(unrolled_weights(Xd, K))))
        err = float(jnp.max(jnp.abs(unrolled(Xd) - g)))
        t = median_seconds(unrolled, repeat, Xd)
        print(f"{'unrolled':>10} {K:>6} {1e3 * t:>9.1f} {t / t_imp:>12.2f} {temp_mib(unrolled, Xd):>9.2f} "
              f"{err:>12.1e}")
        if err <= 1e-6:
            break


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", default="distillation.png")
    ap.add_argument("--compare", action="store_true", help="time implicit vs unrolled outer gradients instead")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if args.compare:
        compare(args.repeat)
    else:
        run(args.steps, args.out)


if __name__ == "__main__":
    main()
