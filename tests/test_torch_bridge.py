"""symift.torch: the JAX layer as a torch module (issue 18). Needs the ``torch`` extra (CI installs it).

torch.autograd.gradcheck (float64 central differences against the backward) on softmax, the
OptNet QP with batched and shared parameters, and a row-wise problem; the same numbers as the JAX
layer; the errors a qpth / cvxpylayers user can run into.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from helpers import EXAMPLES, layer_of

import symift

torch = pytest.importorskip("torch")
symift_torch = pytest.importorskip("symift.torch")

jax.config.update("jax_enable_x64", True)


def _qp_tensors(rng, batch=3, n=5, p=4, m=2):
    M = rng.normal(size=(n, n))

    def t(a):
        return torch.tensor(a, dtype=torch.float64, requires_grad=True)
    return (t(M @ M.T + np.eye(n)), t(rng.normal(size=(batch, n))), t(rng.normal(size=(p, n))),
            t(np.abs(rng.normal(size=p)) + 0.5), t(rng.normal(size=(m, n))), t(rng.normal(size=(batch, m))))


@pytest.fixture(scope="module")
def qp():
    return symift_torch.layer(layer_of("optnet_qp"), outputs=("z", "nu", "value"))


def test_softmax_gradcheck_batched_and_single():
    sm = symift_torch.layer(layer_of("softmax"))
    theta = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(sm(theta), torch.softmax(theta, dim=1), atol=1e-12)
    assert torch.autograd.gradcheck(sm, (theta,))
    assert torch.autograd.gradcheck(sm, (theta[0].detach().requires_grad_(),))


def test_optnet_gradcheck_with_shared_and_batched_parameters(qp):
    tensors = _qp_tensors(np.random.default_rng(0))
    for k in range(3):  # z, nu and the optimal value
        assert torch.autograd.gradcheck(lambda *a, k=k: qp(*a)[k], tensors)


def test_same_numbers_as_the_jax_layer(qp):
    Q, q, G, h, A, b = _qp_tensors(np.random.default_rng(1))
    z, nu, value = qp(Q, q, G, h, A, b)
    jl = layer_of("optnet_qp")
    for i in range(q.shape[0]):
        out = jl(Q=Q.detach().numpy(), q=q[i].detach().numpy(), G=G.detach().numpy(), h=h.detach().numpy(),
                 A=A.detach().numpy(), b=b[i].detach().numpy())
        assert np.allclose(z[i].detach().numpy(), out["z"], atol=1e-12)
        assert np.allclose(nu[i].detach().numpy(), out["nu"], atol=1e-12)
        assert np.isclose(value[i].item(), float(out["value"]), atol=1e-12)
    # by name, positional and keyword mixed
    z2 = qp(Q, q, G, h=h, A=A, b=b)[0]
    assert torch.equal(z, z2)
    with torch.no_grad():  # the solve alone (no vjp residuals): the same numbers, no graph
        z3 = qp(Q, q, G, h, A, b)[0]
    assert torch.allclose(z, z3, atol=1e-14) and z3.grad_fn is None and z.grad_fn is not None


def test_rows_layer_gradcheck():
    rows = symift_torch.layer(layer_of("rowwise_sparsemax"))
    Theta = torch.tensor(np.random.default_rng(2).normal(size=(2, 3, 5)), requires_grad=True)  # batch of 2
    assert rows(Theta).shape == (2, 3, 5)
    assert torch.autograd.gradcheck(rows, (Theta,))


def test_in_place_change_of_a_result_does_not_reach_the_backward():
    sm = symift_torch.layer(layer_of("softmax"))
    theta = torch.randn(6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, dtype=torch.float64)
    (g,) = torch.autograd.grad((sm(theta) * w).sum(), theta)
    z = sm(theta)
    loss = (z * w).sum()
    with torch.no_grad():
        z.mul_(0.0)
    loss.backward()
    assert torch.allclose(theta.grad, g, atol=1e-14)


def test_training_steps_reduce_a_loss():
    sm = symift_torch.layer(layer_of("softmax"))
    theta = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.4, 0.3, 0.1, 0.1, 0.1], dtype=torch.float64)
    opt = torch.optim.SGD([theta], lr=5.0)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((sm(theta) - target) ** 2).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-12 * losses[0]
    expected = torch.zeros(5, dtype=torch.float64, requires_grad=True)  # the same steps with torch's softmax
    ref = torch.optim.SGD([expected], lr=5.0)
    for _ in range(60):
        ref.zero_grad()
        ((torch.softmax(expected, 0) - target) ** 2).sum().backward()
        ref.step()
    assert torch.allclose(theta, expected, atol=1e-9)


def test_errors_name_the_problem(qp):
    Q, q, G, h, A, b = _qp_tensors(np.random.default_rng(3))
    with pytest.raises(symift.ArgumentError, match="declared with 2 dimension"):
        qp(Q[None, None], q, G, h, A, b)
    with pytest.raises(symift.ArgumentError, match="different batch sizes"):
        qp(Q, q, G, h, A, b[:2])
    with pytest.raises(symift.ArgumentError, match="missing parameters: b"):
        qp(Q, q, G, h, A)
    with pytest.raises(symift.ArgumentError, match="unknown parameter 'c'"):
        qp(Q, q, G, h, A, b, c=b)
    with pytest.raises(symift.ArgumentError, match="outputs must name"):
        symift_torch.layer(layer_of("optnet_qp"), outputs=("w",))
    with pytest.raises(symift.MathError, match="did not converge"):
        symift_torch.layer(symift.load(EXAMPLES / "optnet_qp.ift"), maxiter=1)(Q, q, G, h, A, b)


def test_degenerate_solution_raises_in_backward():
    sm = symift_torch.layer(layer_of("sparsemax"))
    theta = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64, requires_grad=True)  # z = (1, 0, 0): z₂ at the kink
    z = sm(theta)
    with pytest.raises(symift.MathError, match="implicit function theorem does not hold"):
        z.sum().backward()
    loose = symift_torch.layer(symift.load(EXAMPLES / "sparsemax.ift"), strict=False)
    loose(theta).sum().backward()
    assert torch.isfinite(theta.grad).all()
