"""The bilevel examples (issue 17) run end to end, a few outer steps each (smoke tests), and their
outer gradients through symift's layer agree with finite differences of re-solves.

Needs the ``examples`` extra (scikit-learn, matplotlib); CI installs it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "bilevel"))
import dictionary_learning as dl  # noqa: E402
import distillation as ds  # noqa: E402
import molecular_dynamics as md  # noqa: E402
import svm_hpo  # noqa: E402

jax.config.update("jax_enable_x64", True)
pytestmark = pytest.mark.slow


def test_dictionary_learning_runs_and_writes_its_figure(tmp_path, capsys):
    out = tmp_path / "dl.png"
    dl.main(["--splits", "1", "--steps", "3", "--atoms", "4", "--out", str(out)])
    text = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    for name in ("L1 logreg", "L2 logreg", "DictL + L2 logreg", "Task-driven DictL"):
        assert name in text
    auc = float(text.split("Task-driven DictL")[-1].split()[0])
    assert 50 < auc <= 100


def test_dictionary_learning_outer_gradient_matches_finite_differences():
    Xtr, _, ytr, _ = next(dl.splits(1))
    X, y = jnp.asarray(Xtr[:40]), jnp.asarray(ytr[:40])
    rng = np.random.default_rng(0)
    D = rng.standard_normal((4, X.shape[1]))
    D = jnp.asarray(D / np.linalg.norm(D, axis=1, keepdims=True))
    params = {"D": D, "w": jnp.asarray(rng.standard_normal(4)), "b": jnp.asarray(0.1)}
    layer = dl.codes_layer()
    grad = jax.grad(lambda p: dl.outer_loss(layer, p, X, y))(params)
    C = layer(X=X, D=D, lam=dl.LAM, gam=dl.GAM)["C"]
    assert 0.05 < float(jnp.mean(jnp.abs(C) > 1e-6)) < 0.95  # sparse codes: the support matters
    h = 1e-6
    for _ in range(3):
        E = jnp.asarray(rng.standard_normal(D.shape))
        fd = (dl.outer_loss(layer, {**params, "D": D + h * E}, X, y)
              - dl.outer_loss(layer, {**params, "D": D - h * E}, X, y)) / (2 * h)
        assert abs(float(jnp.sum(grad["D"] * E)) - float(fd)) < 1e-6 * (1 + abs(float(fd)))
    # the unrolled ISTA of --compare converges to the same gradient
    unrolled = jax.grad(lambda D: jnp.mean(jnp.logaddexp(0.0, -y * (dl.ista_codes(X, D, 3000) @ params["w"]
                                                                     + params["b"]))))(D)
    implicit = jax.grad(lambda D: jnp.mean(jnp.logaddexp(0.0, -y * (layer(X=X, D=D, lam=dl.LAM, gam=dl.GAM)["C"]
                                                                     @ params["w"] + params["b"]))))(D)
    assert float(jnp.max(jnp.abs(unrolled - implicit))) < 1e-7


def test_svm_hpo_runs_and_writes_its_figure(tmp_path, capsys):
    out = tmp_path / "hpo.png"
    svm_hpo.main(["--train", "60", "--steps", "2", "--grid", "3", "--out", str(out)])
    text = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    before, after = (float(x) for x in text.split("validation loss ")[1].split(";")[0].split(" -> "))
    assert after < before  # the descent's steps are accepted only where the loss decreases


def test_svm_hpo_outer_gradient_matches_finite_differences_and_unrolling():
    Xtr, Ytr, Xva, Yva = (jnp.asarray(a) for a in svm_hpo.digits(100, val=100))
    layer = svm_hpo.svm_layer()
    t = jnp.log(1000.0)
    g = jax.grad(lambda t: svm_hpo.outer_loss(layer, t, Xtr, Ytr, Xva, Yva))(t)
    h = 1e-5
    data = (Xtr, Ytr, Xva, Yva)
    fd = (svm_hpo.outer_loss(layer, t + h, *data) - svm_hpo.outer_loss(layer, t - h, *data)) / (2 * h)
    assert abs(float(g)) > 1e-3 and abs(float(g) - float(fd)) < 1e-6 * (1 + abs(float(fd)))

    unrolled = jax.grad(svm_hpo.unrolled_loss)(t, 20000, data)
    assert abs(float(unrolled) - float(g)) < 1e-6


def test_distillation_runs_and_beats_random_real_images(tmp_path, capsys):
    out = tmp_path / "dist.png"
    ds.main(["--steps", "5", "--out", str(out)])
    text = capsys.readouterr().out
    assert out.stat().st_size > 10_000
    real = float(text.split("one real image per class")[1].split()[0])
    distilled = float(text.split("distilled (symift)")[1].split()[0])
    assert distilled > real


def test_distillation_outer_gradient_matches_finite_differences_and_unrolling():
    Xtr, ytr, _, _ = (jnp.asarray(a) for a in ds.digits())
    X, y = Xtr[:200], ytr[:200]
    layer = ds.logreg_layer()
    rng = np.random.default_rng(1)
    Xd = jnp.asarray(0.3 * rng.standard_normal((10, 64)))
    g = jax.grad(lambda Xd: ds.outer_loss(layer, Xd, X, y))(Xd)
    h = 1e-6
    for _ in range(2):
        E = jnp.asarray(rng.standard_normal(Xd.shape))
        fd = (ds.outer_loss(layer, Xd + h * E, X, y) - ds.outer_loss(layer, Xd - h * E, X, y)) / (2 * h)
        assert abs(float(jnp.sum(g * E)) - float(fd)) < 1e-6 * (1 + abs(float(fd)))

    def unrolled(Xd):
        scores = X @ ds.unrolled_weights(Xd, 20000)
        return jnp.mean(jax.nn.logsumexp(scores, axis=1) - jnp.take_along_axis(scores, y[:, None], axis=1)[:, 0])
    assert float(jnp.max(jnp.abs(jax.grad(unrolled)(Xd) - g))) < 1e-6


def test_molecular_dynamics_sensitivities_match_differences_and_unrolling(tmp_path, capsys):
    out = tmp_path / "md.png"
    P, dP, fd = md.run(10, out)
    text = capsys.readouterr().out
    assert out.stat().st_size > 10_000 and "converged True" in text
    assert float(jnp.max(jnp.abs(dP - fd))) < 1e-7 and float(jnp.max(jnp.abs(dP))) > 1e-2
    implicit_vs_unrolled = float(text.split("max |implicit − unrolled| = ")[1].split()[0].rstrip(","))
    assert implicit_vs_unrolled < 1e-9
