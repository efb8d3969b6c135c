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
