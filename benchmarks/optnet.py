"""The OptNet QP layer (issue 4): symift vs qpth (torch, CPU) vs cvxpylayers (torch, diffcp/SCS).

    z*(Q, q, G, h) = argmin_z ½ zᵀQz + qᵀz   s.t.  Gz ≤ h        (n = 100, 100 inequalities, no equalities)

Data as in qpth's timing script (prof.py): L uniform[0, 1), Q = LLᵀ + 1e-3·I, G, z₀, q standard
normal, s₀ uniform[0, 1), h = Gz₀ + s₀.  float64 everywhere.  For each batch size, forward and
backward are timed separately (median of --repeat runs after a warm-up / compile run):

  * fwd  — the forward pass as run before a backward: JAX ``jit(lambda *p: jax.vjp(f, *p))``
           (solve + the residuals the backward needs); torch: the layer call with requires_grad;
  * bwd  — the backward alone, cotangent w = given: JAX the jitted vjp function; torch
           ``z.backward(w)``; gradients w.r.t. all of Q, q, G, h;
  * fwd+bwd — JAX one jitted ``value_and_grad`` call; torch fwd then bwd in one timed run.

symift runs examples/optnet_qp.ift with A, b of zero rows (m = 0), or --ift FILE (e.g.
benchmarks/qp_ineq.ift, the inequality-only QP).  qpth: ``QPFunction(verbose=-1,
check_Q_spd=False)`` (its default eps 1e-12, maxIter 20; the SPD check, an eigendecomposition per
call, is off because no other layer does it).  cvxpylayers: the DPP form ½‖Rz‖² + qᵀz with
R = chol(Q)ᵀ as the parameter (quad_form(z, Q) with Q a parameter is not DPP); its default
diffcp/SCS backend with default settings (SCS tolerances, LSQR derivative), and with SCS eps =
--cvx-eps plus diffcp's dense derivative (``solver_args={"eps": .., "mode": "dense"}``).

Gradient error (batch 1): for each layer, the directional derivative ⟨∇ℓ, d⟩ of ℓ = ⟨w, z*⟩ along
--directions random unit directions per parameter (symmetric for Q), against central finite
differences (Richardson-extrapolated) of tight solves: an interior-point solve (Clarabel, tight
tolerances) polished on its active set by an exact KKT solve in float64, the active set checked at
every perturbed point.  cvxpylayers' gradient is w.r.t. R; its Q-direction is dR = Φ(R⁻ᵀ dQ R⁻¹) R
(the Cholesky differential).  The error is relative: max over d of |⟨∇ℓ, d⟩ − FD_d| / max over d of |FD_d|.

    python benchmarks/optnet.py [--batch 1 64 128] [--repeat 5]
    python benchmarks/optnet.py --quick          # batch 1 64, 3 repeats
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout's symift, whatever is installed

import jax
import jax.numpy as jnp
import numpy as np

import symift

jax.config.update("jax_enable_x64", True)
EXAMPLES = ROOT / "examples"


# ----------------------------------------------------------------------------- data
def qpth_data(rng, batch, n=100, p=100):
    """qpth's prof.py: Q = LLᵀ + 1e-3·I (L uniform), G normal, h = Gz₀ + s₀, q normal."""
    return _qpth_draw(rng, batch, n, p)[:4]


def qpth_data_eq(rng, batch, n=100, p=100, m=0):
    """qpth_data (the same draws) with m equalities Az = b: A normal, b = Az₀ (z₀ strictly
    feasible for Gz ≤ h)."""
    Q, q, G, h, z0 = _qpth_draw(rng, batch, n, p)
    A = rng.standard_normal((batch, m, n))
    return Q, q, G, h, A, np.einsum("bij,bj->bi", A, z0)


def _qpth_draw(rng, batch, n, p):
    L = rng.random((batch, n, n))
    Q = L @ L.transpose(0, 2, 1) + 1e-3 * np.eye(n)
    G = rng.standard_normal((batch, p, n))
    z0 = rng.standard_normal((batch, n))
    s0 = rng.random((batch, p))
    q = rng.standard_normal((batch, n))
    h = np.einsum("bij,bj->bi", G, z0) + s0
    return Q, q, G, h, z0


def median_ms(times):
    return 1e3 * statistics.median(times)


# ----------------------------------------------------------------------------- symift
class Symift:
    name = "symift layer"

    def __init__(self, ift, backward="auto"):
        self.layer = symift.compile(symift.load(ift), backward=backward)
        self.has_eq = "A" in self.layer.params
        if backward != "auto":
            self.name = f"symift ({backward} backward)"

    def zfun(self, key="z"):
        layer, has_eq = self.layer, self.has_eq

        def z(Q, q, G, h):
            extra = {"A": jnp.zeros((0, Q.shape[0])), "b": jnp.zeros(0)} if has_eq else {}
            return layer(Q=Q, q=q, G=G, h=h, **extra)[key]

        return jax.vmap(z)

    def not_converged(self, data):
        """How many problems of the batch the layer reports as not converged (under jit it does not raise)."""
        conv = jax.jit(self.zfun("converged"))(*(jnp.asarray(a) for a in data))
        return int(np.sum(~np.asarray(conv)))

    def time(self, data, w, repeat):
        f = self.zfun()
        args = tuple(jnp.asarray(a) for a in data)
        w = jnp.asarray(w)
        fwd = jax.jit(lambda *a: jax.vjp(f, *a))
        bwd = jax.jit(lambda vjp, g: vjp(g))
        total = jax.jit(jax.value_and_grad(lambda a, g: jnp.sum(g * f(*a))))
        fwd_only = jax.jit(f)
        out = {}
        for key, call in (("fwd", lambda: fwd(*args)), ("fwd (no grad)", lambda: fwd_only(*args)),
                          ("fwd+bwd", lambda: total(args, w))):
            jax.block_until_ready(call())
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                jax.block_until_ready(call())
                ts.append(time.perf_counter() - t0)
            out[key] = median_ms(ts)
        z, vjp = fwd(*args)
        jax.block_until_ready(bwd(vjp, w))
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            jax.block_until_ready(bwd(vjp, w))
            ts.append(time.perf_counter() - t0)
        out["bwd"] = median_ms(ts)
        out["z"] = np.asarray(z)
        return out

    def grads(self, data, w):
        f = self.zfun()
        args = tuple(jnp.asarray(a) for a in data)
        g = jax.jit(jax.grad(lambda a: jnp.sum(jnp.asarray(w) * f(*a))))(args)
        return {"Q": np.asarray(g[0]), "q": np.asarray(g[1]), "G": np.asarray(g[2]), "h": np.asarray(g[3])}


def _symift_job(ift, backward, what, data, w, repeat):
    """Runs in a child process (see Isolated): symift's timings, gradients or solutions."""
    layer = Symift(ift, backward)
    if what == "time":
        out = layer.time(data, w, repeat)
        out["not converged"] = layer.not_converged(data)
        return out
    return layer.grads(data, w) if what == "grads" else layer_z(layer, data)


class Isolated:
    """symift in a spawned child process, killed and retried when it hangs.

    On this machine an XLA execution of the OptNet layer under jit(vmap(...)) sometimes never
    completes (every thread idle in a futex wait, no CPU used; seen at batch 16, 64 and 128, with
    optnet_qp.ift and with qp_ineq.ift, for jax.vjp and for jax.grad).  A timeout per attempt keeps
    the benchmark going and the number of hung attempts is printed.
    """

    def __init__(self, ift, timeout, tries, backward="auto"):
        self.ift, self.timeout, self.tries, self.backward = ift, timeout, tries, backward
        self.name = Symift.name if backward == "auto" else f"symift ({backward} backward)"
        self.hangs = 0

    def run(self, what, data, w, repeat=1):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        for _ in range(self.tries):
            pool = ctx.Pool(1)
            try:
                res = pool.apply_async(_symift_job, (self.ift, self.backward, what, data, w, repeat))
                return res.get(self.timeout)
            except mp.TimeoutError:
                self.hangs += 1
                print(f"      (symift {what}: no result after {self.timeout:g} s — hung attempt "
                      f"{self.hangs}, retrying in a fresh process)", flush=True)
            finally:
                pool.terminate()
                pool.join()
        raise RuntimeError(f"symift {what}: {self.tries} attempts hung")

    def time(self, data, w, repeat):
        return self.run("time", data, w, repeat)

    def grads(self, data, w):
        return self.run("grads", data, w)

    def z(self, data):
        return self.run("z", data, None)


# ----------------------------------------------------------------------------- torch peers
class TorchLayer:
    """Shared timing for torch layers: fwd with requires_grad, then z.backward(w)."""

    def inputs(self, data):
        raise NotImplementedError

    def call(self, *tensors):
        raise NotImplementedError

    def time(self, data, w, repeat):
        import torch

        wt = torch.tensor(w)
        fw, bw, tot = [], [], []
        for i in range(repeat + 1):  # the first run is the warm-up
            ts = self.inputs(data)
            t0 = time.perf_counter()
            z = self.call(*ts)
            t1 = time.perf_counter()
            z.backward(wt)
            t2 = time.perf_counter()
            if i:
                fw.append(t1 - t0)
                bw.append(t2 - t1)
                tot.append(t2 - t0)
        with torch.no_grad():
            ts = [t.detach() for t in self.inputs(data)]
            self.call(*ts)
            nog = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                self.call(*ts)
                nog.append(time.perf_counter() - t0)
        return {"fwd": median_ms(fw), "bwd": median_ms(bw), "fwd+bwd": median_ms(tot),
                "fwd (no grad)": median_ms(nog), "z": z.detach().numpy()}


class Qpth(TorchLayer):
    name = "qpth"

    def __init__(self):
        import torch
        from qpth.qp import QPFunction

        torch.set_default_dtype(torch.float64)
        self.fn = QPFunction(verbose=-1, check_Q_spd=False)
        self.e = torch.empty(0, dtype=torch.float64)

    def inputs(self, data):
        import torch

        return [torch.tensor(a, requires_grad=True) for a in data]

    def call(self, Q, q, G, h):
        return self.fn(Q, q, G, h, self.e, self.e)

    def grads(self, data, w):
        import torch

        ts = self.inputs(data)
        self.call(*ts).backward(torch.tensor(w))
        return dict(zip(["Q", "q", "G", "h"], (t.grad.numpy() for t in ts), strict=False))


class CvxpyLayers(TorchLayer):
    def __init__(self, n, p, eps=None, mode=None):
        import cvxpy as cp
        from cvxpylayers.torch import CvxpyLayer

        R, q, G, h = cp.Parameter((n, n)), cp.Parameter(n), cp.Parameter((p, n)), cp.Parameter(p)
        z = cp.Variable(n)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(R @ z) + q @ z), [G @ z <= h])
        assert prob.is_dpp()
        self.layer = CvxpyLayer(prob, parameters=[R, q, G, h], variables=[z])
        self.solver_args = {} if eps is None else {"eps": eps, "max_iters": 100000}
        if mode is not None:
            self.solver_args["mode"] = mode  # diffcp's derivative: "lsqr" (default) or "dense"
        self.name = ("cvxpylayers (default)" if eps is None and mode is None
                     else f"cvxpylayers (eps={eps:g}, {mode or 'lsqr'})")

    def inputs(self, data):
        import torch

        Q, q, G, h = data
        R = np.linalg.cholesky(Q).swapaxes(-1, -2)  # Q = RᵀR, R upper
        return [torch.tensor(a, requires_grad=True) for a in (R, q, G, h)]

    def call(self, R, q, G, h):
        import torch

        args = dict(self.solver_args)
        if not torch.is_grad_enabled():
            args.pop("mode", None)  # the derivative mode is not an SCS option (solve-only path)
        (z,) = self.layer(R, q, G, h, solver_args=args)
        return z

    def grads(self, data, w):
        import torch

        ts = self.inputs(data)
        self.call(*ts).backward(torch.tensor(w))
        g = dict(zip(["R", "q", "G", "h"], (t.grad.numpy() for t in ts), strict=False))
        g["R_matrix"] = ts[0].detach().numpy()
        return g


# ----------------------------------------------------------------------------- tight solves + FD
def tight_solve(Q, q, G, h):
    """Clarabel at tight tolerances, polished by an exact KKT solve on its active set."""
    import cvxpy as cp

    n = Q.shape[0]
    z = cp.Variable(n)
    con = G @ z <= h
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(z, cp.psd_wrap(Q)) + q @ z), [con])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500)
    lam = np.asarray(con.dual_value)
    slack = h - G @ z.value
    active = lam > slack
    return polish(Q, q, G, h, active)


def polish(Q, q, G, h, active):
    """Exact solve of the KKT system with `active` inequalities as equalities; checks the set."""
    n, k = Q.shape[0], int(active.sum())
    GA = G[active]
    K = np.block([[Q, GA.T], [GA, np.zeros((k, k))]])
    sol = np.linalg.solve(K, np.concatenate([-q, h[active]]))
    z, lam_a = sol[:n], sol[n:]
    slack = (h - G @ z)[~active]
    ok = (lam_a.min(initial=np.inf) > 0) and (slack.min(initial=np.inf) > 0)
    return z, active, ok, (lam_a.min(initial=np.inf), slack.min(initial=np.inf))


def fd_directional(data, w, which, d, active, eps):
    """Central FD of ℓ = ⟨w, z*⟩ along d in parameter `which`, Richardson-extrapolated."""
    idx = ["Q", "q", "G", "h"].index(which)

    def ell(t):
        args = list(data)
        args[idx] = args[idx] + t * d
        z, _, ok, margins = polish(*args, active)
        if not ok:
            raise RuntimeError(f"active set changed along the FD step ({which}, t={t:g}, margins {margins})")
        return float(w @ z)

    def central(e):
        return (ell(e) - ell(-e)) / (2 * e)

    return (4 * central(eps / 2) - central(eps)) / 3, central(eps)


def directions(rng, data, k):
    """k random unit directions per parameter (symmetric for Q)."""
    out = {}
    for name, a in zip(["Q", "q", "G", "h"], data, strict=False):
        ds = []
        for _ in range(k):
            d = rng.standard_normal(a.shape)
            if name == "Q":
                d = d + d.T
            ds.append(d / np.linalg.norm(d))
        out[name] = ds
    return out


def cholesky_direction(R, dQ):
    """dR for Q = RᵀR (R upper) along dQ: dR = Φ(R⁻ᵀ dQ R⁻¹) R, Φ = strict upper + ½ diagonal."""
    Rinv = np.linalg.inv(R)
    M = Rinv.T @ dQ @ Rinv
    Phi = np.triu(M, 1) + 0.5 * np.diag(np.diag(M))
    return Phi @ R


def gradient_errors(layers, rng, n, p, k, eps):
    data = [a[0] for a in qpth_data(rng, 1, n, p)]
    w = rng.standard_normal(n)
    z, active, ok, margins = tight_solve(*data)
    if not ok:
        raise RuntimeError(f"tight solve: active set check failed, margins {margins}")
    dirs = directions(rng, data, k)
    fd = {name: [fd_directional(data, w, name, d, active, eps) for d in ds] for name, ds in dirs.items()}
    fd_floor = {name: max(abs(a - b) for a, b in v) / max(abs(a) for a, _ in v) for name, v in fd.items()}
    print(f"\ngradient error at batch 1 (ℓ = ⟨w, z*⟩, {k} random unit directions per parameter; "
          f"{int(active.sum())} active constraints; FD step {eps:g}, Richardson)")
    print(f"{'method':<30} {'|z - z_tight|':>13} {'err Q':>9} {'err q':>9} {'err G':>9} {'err h':>9}")
    print(f"{'(FD: plain vs Richardson)':<30} {'':>13} " + " ".join(f"{fd_floor[nm]:>9.1e}" for nm in "QqGh"))
    for layer in layers:
        batched = [a[None] for a in data]
        try:
            g = layer.grads(batched, w[None])
            zl = layer_z(layer, batched)
        except Exception as exc:  # noqa: BLE001
            print(f"{layer.name:<30} failed: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        errs = []
        for name in ["Q", "q", "G", "h"]:
            vals = [v[0] for v in fd[name]]
            scale = max(abs(v) for v in vals)
            worst = 0.0
            for d, v in zip(dirs[name], vals, strict=False):
                if name == "Q" and "R" in g:
                    R = g["R_matrix"][0]
                    dd = float(np.sum(g["R"][0] * cholesky_direction(R, d)))
                else:
                    dd = float(np.sum(g[name][0] * d))
                worst = max(worst, abs(dd - v) / scale)
            errs.append(worst)
        print(f"{layer.name:<30} {np.max(np.abs(zl[0] - z)):>13.1e} " + " ".join(f"{e:>9.1e}" for e in errs),
              flush=True)


def layer_z(layer, data):
    if isinstance(layer, Isolated):
        return layer.z(data)
    if isinstance(layer, Symift):
        return np.asarray(jax.jit(layer.zfun())(*(jnp.asarray(a) for a in data)))
    import torch

    with torch.no_grad():
        return layer.call(*[t.detach() for t in layer.inputs(data)]).numpy()


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64, 128])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--p", type=int, default=100, help="number of inequalities")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ift", default=str(EXAMPLES / "optnet_qp.ift"),
                    help="symift problem (optnet_qp.ift with m = 0, or benchmarks/qp_ineq.ift)")
    ap.add_argument("--cvx-eps", type=float, default=1e-9,
                    help="SCS eps of the second cvxpylayers row (which also uses diffcp's dense derivative)")
    ap.add_argument("--directions", type=int, default=3)
    ap.add_argument("--fd-eps", type=float, default=1e-4)
    ap.add_argument("--no-cvxpylayers", action="store_true")
    ap.add_argument("--no-isolate", dest="isolate", action="store_false",
                    help="run symift in this process (no protection against a hung XLA execution)")
    ap.add_argument("--symift-timeout", type=float, default=300.0, help="seconds per symift attempt")
    ap.add_argument("--symift-tries", type=int, default=4)
    ap.add_argument("--backward", nargs="+", default=["auto", "lu"],
                    help="symift backward methods to time (auto = the derived closed form)")
    ap.add_argument("--quick", action="store_true", help="batch 1 64, 3 repeats")
    args = ap.parse_args()
    if args.quick:
        args.batch, args.repeat = [1, 64], 3
    import torch

    torch.set_default_dtype(torch.float64)
    warnings.filterwarnings("ignore", message=".*Solved/Inaccurate.*")
    layers = [Isolated(args.ift, args.symift_timeout, args.symift_tries, b) if args.isolate else Symift(args.ift, b)
              for b in args.backward]
    for make in (Qpth, lambda: CvxpyLayers(args.n, args.p), lambda: CvxpyLayers(args.n, args.p, args.cvx_eps, "dense")):
        if make is not Qpth and args.no_cvxpylayers:
            continue
        try:
            layers.append(make())
        except Exception as exc:  # noqa: BLE001 - a missing peer is reported, not fatal
            print(f"peer unavailable: {type(exc).__name__}: {exc}")
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), float64; "
          f"n = {args.n}, {args.p} inequalities, no equalities; symift: {Path(args.ift).name}")
    print(f"median ms of {args.repeat} after a warm-up run; 'vs symift' = fwd+bwd time / symift's; "
          f"|z - z_symift| = max abs difference of the solutions")
    print(f"{'batch':>5} {'method':<30} {'fwd':>10} {'bwd':>10} {'fwd+bwd':>10} {'fwd no-grad':>11} "
          f"{'vs symift':>9} {'|z - z_symift|':>14}")
    for batch in args.batch:
        data = qpth_data(rng, batch, args.n, args.p)
        w = rng.standard_normal((batch, args.n))
        base = z_sym = None
        for layer in layers:
            try:
                r = layer.time(data, w, args.repeat)
            except Exception as exc:  # noqa: BLE001 - a failing method is a result too
                print(f"{batch:>5} {layer.name:<30} failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
                continue
            if base is None and isinstance(layer, (Symift, Isolated)):
                base, z_sym = r["fwd+bwd"], r["z"]
                bad = r["not converged"] if "not converged" in r else layer.not_converged(data)
                if bad:
                    print(f"{batch:>5} WARNING: symift reports {bad} of {batch} solves as not converged")
            ratio = f"{r['fwd+bwd'] / base:.2f}" if base else "-"
            dz = f"{np.max(np.abs(r['z'] - z_sym)):.1e}" if z_sym is not None else "-"
            print(f"{batch:>5} {layer.name:<30} {r['fwd']:>10.2f} {r['bwd']:>10.2f} {r['fwd+bwd']:>10.2f} "
                  f"{r['fwd (no grad)']:>11.2f} {ratio:>9} {dz:>14}", flush=True)
    gradient_errors(layers, rng, args.n, args.p, args.directions, args.fd_eps)
    if isinstance(layers[0], Isolated):
        print(f"\nsymift attempts that hung (killed after {args.symift_timeout:g} s and retried): {layers[0].hangs}")


if __name__ == "__main__":
    main()
