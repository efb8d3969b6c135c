"""``symift verify``: check a problem's derived Jacobians at random data, three independent ways.

At parameters drawn to satisfy the declarations (sizes, signs, symmetric / psd / pd matrices),
the problem is solved by its layer, and for every pair (variable, parameter) the derived closed
form (``Derivation.jacobian_function``) is compared with

* central finite differences of re-solves (the forward map alone: no derivative code involved);
* ``jax.jacfwd`` of the layer (its implicit backward: the closed-form tangent or the linear solve),
  and ``jax.jacrev`` against ``jax.jacfwd``.

For a matrix parameter P the comparison is along a random direction dP.  Draws at which the
solve fails or the solution is not regular (the IFT does not apply there) are redrawn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .errors import MathError, ProblemError, SymiftError, UnsupportedError

#: Tolerances on max |difference| / max(1, max |reference|).
FD_TOL, AD_TOL = 1e-5, 1e-8


@dataclass(frozen=True)
class Check:
    """One (variable, parameter) pair: the largest relative disagreements found."""

    var: str
    param: str
    directional: bool
    closed_vs_fd: float | None       # None where no closed form was derived
    closed_vs_jacfwd: float | None
    jacfwd_vs_fd: float
    jacrev_vs_jacfwd: float

    @property
    def ok(self) -> bool:
        fd = [e for e in (self.closed_vs_fd, self.jacfwd_vs_fd) if e is not None]
        ad = [e for e in (self.closed_vs_jacfwd, self.jacrev_vs_jacfwd) if e is not None]
        return all(e <= FD_TOL for e in fd) and all(e <= AD_TOL for e in ad)

    @property
    def label(self) -> str:
        return f"d{self.var}[d{self.param}]" if self.directional else f"d{self.var}/d{self.param}"


@dataclass
class Report:
    """What ``verify`` found: the data it used and one :class:`Check` per Jacobian."""

    filename: str
    seed: int
    dims: dict
    attempts: int
    status: dict
    checks: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def __str__(self) -> str:
        def num(e):
            return "—" if e is None else f"{e:.1e}"

        sizes = ", ".join(f"{k}={v}" for k, v in self.dims.items()) or "none"
        s = self.status
        lines = [f"verify {self.filename}: seed {self.seed}, dims {sizes}, draw {self.attempts}",
                 f"  solution: residual {s['residual']:.1e}, cond {s['cond']:.1e}, margin {s['margin']:.2g}",
                 "",
                 f"  {'Jacobian':<16}{'closed vs FD':>14}{'closed vs fwd':>15}{'fwd vs FD':>12}{'rev vs fwd':>12}"]
        for c in self.checks:
            lines.append(f"  {c.label:<16}{num(c.closed_vs_fd):>14}{num(c.closed_vs_jacfwd):>15}"
                         f"{num(c.jacfwd_vs_fd):>12}{num(c.jacrev_vs_jacfwd):>12}  {'ok' if c.ok else 'DISAGREE'}")
        bad = [c.label for c in self.checks if not c.ok]
        verdict = (f"OK: {len(self.checks)} Jacobians agree" if not bad
                   else f"FAILED: {', '.join(bad)} disagree")
        lines += ["", f"{verdict} (relative tolerances: finite differences {FD_TOL:g}, autodiff {AD_TOL:g})"]
        return "\n".join(lines)


def draw_parameters(problem, dims: dict, rng) -> dict:
    """Random parameters of the declared shapes, signs and matrix attributes."""
    out = {}
    for p in problem.params:
        shape = tuple(dims[s] if isinstance(s, str) else s for s in p.shape)
        if p.sign in (">0", ">=0"):
            out[p.name] = rng.uniform(0.5, 2.0, shape) if shape else float(rng.uniform(0.5, 2.0))
            continue
        x = rng.standard_normal(shape) if shape else float(rng.standard_normal())
        if p.above is not None:  # u > l: l plus a positive gap
            x = out[p.above] + (rng.uniform(0.5, 2.0, shape) if shape else float(rng.uniform(0.5, 2.0)))
        if "pd" in p.attributes or "psd" in p.attributes:
            x = x @ x.T + (shape[0] * np.eye(shape[0]) if "pd" in p.attributes else 0.0)
        elif "symmetric" in p.attributes:
            x = 0.5 * (x + x.T)
        out[p.name] = x
    return out


def verify(derivation, layer, *, seed: int = 0, dims: dict | None = None, wrt=None, params=None,
           attempts: int = 20) -> Report:
    """Check every derived Jacobian of ``derivation`` at random data (see the module docstring)."""
    if not jax.config.jax_enable_x64:
        raise UnsupportedError("verify compares derivatives in float64: enable it first with "
                               "jax.config.update('jax_enable_x64', True)", None, derivation.problem.source)
    problem = derivation.problem
    unknown = [k for k in (dims or {}) if k not in {d.name for d in problem.dims}]
    if unknown:
        raise ProblemError(f"unknown dim(s) {', '.join(unknown)} (the problem declares: "
                               f"{', '.join(d.name for d in problem.dims) or 'none'})", None, problem.source)
    wrt = list(wrt or [v.name for v in problem.variables])
    names = list(params or derivation.parameters)
    rng = np.random.default_rng(seed)
    for attempt in range(1, attempts + 1):
        sizes = {d.name: int(rng.integers(2, 6)) for d in problem.dims} | dict(dims or {})
        values = draw_parameters(problem, sizes, rng)
        try:
            sol = layer(**values)
        except MathError:
            continue
        if not bool(sol["regular"]):
            continue
        status = {k: float(sol[k]) for k in ("residual", "cond", "margin")}
        report = Report(problem.source.filename, seed, sizes, attempt, status)
        report.checks = _checks(derivation, layer, values, sol, wrt, names, rng)
        return report
    raise MathError(f"no regular solution in {attempts} random draws (seed {seed}): the solve failed, or the "
                    "implicit function theorem did not apply at the solutions found; pass other dims or seed",
                    None, problem.source)


def _checks(derivation, layer, values, sol, wrt, names, rng) -> list:
    """The four comparisons for every d var / d param, with one compiled re-solve, jacfwd and jacrev."""
    params = {k: jnp.asarray(v, float) for k, v in values.items()}
    directions = {}  # param -> (k, *shape): the directions compared along
    for name in names:
        x0 = np.asarray(values[name], float)
        if x0.ndim == 2:  # a matrix parameter: one random direction (symmetric where it is declared so)
            declared = next(p for p in derivation.problem.params if p.name == name)
            D = rng.standard_normal(x0.shape)
            directions[name] = (0.5 * (D + D.T) if declared.attributes & {"symmetric", "psd", "pd"} else D)[None]
        else:
            directions[name] = np.eye(x0.size).reshape((x0.size,) + x0.shape)

    # central differences of re-solves: every perturbation of every parameter in one vmapped solve
    batch, slots = {k: [] for k in params}, {}
    for name in names:
        x0 = np.asarray(values[name], float)
        step = 1e-6 * max(1.0, float(np.abs(x0).max(initial=0.0)))
        for sign in (1.0, -1.0):
            for d in directions[name]:
                for k in params:
                    batch[k].append(np.asarray(values[k], float) + (sign * step * d if k == name else 0.0))
        count = len(directions[name])
        start = sum(2 * len(directions[n]) for n in names[:names.index(name)])
        slots[name] = (start, count, step)
    def resolve(p):
        out = layer(**p)  # one call: the solve is not repeated per entry
        return {v: out[v] for v in [*wrt, "converged"]}

    solved = jax.jit(jax.vmap(resolve))({k: jnp.asarray(np.stack(v)) for k, v in batch.items()})
    if not bool(jnp.all(solved["converged"])):
        raise MathError("a re-solve near the solution did not converge: the finite differences are not "
                        "defined there", None, derivation.problem.source)

    def solution(p):
        out = layer(**p)
        return {v: out[v] for v in wrt}

    fwd = jax.jit(jax.jacfwd(solution))(params)
    rev = jax.jit(jax.jacrev(solution))(params)
    out = []
    for var in wrt:
        shape = np.shape(sol[var])
        for name in names:
            flat = directions[name].reshape(len(directions[name]), -1).T
            start, count, step = slots[name]
            ys = np.asarray(solved[var])
            fd = np.moveaxis((ys[start:start + count] - ys[start + count:start + 2 * count]) / (2 * step), 0, -1)
            f = np.asarray(fwd[var][name]).reshape(shape + (-1,)) @ flat
            r = np.asarray(rev[var][name]).reshape(shape + (-1,)) @ flat
            closed = _closed_form(derivation, var, name, {**sol, **values}, directions[name], flat, shape)
            out.append(Check(var, name, np.ndim(values[name]) == 2,
                             None if closed is None else _rel(closed, fd),
                             None if closed is None else _rel(closed, f), _rel(f, fd), _rel(r, f)))
    return out


def _closed_form(derivation, var, name, args, directions, flat, shape):
    """The derived closed form of d var / d name along the directions, or None where none was derived."""
    try:
        fn = derivation.jacobian_function(var, name)
    except SymiftError:
        return None
    vec = derivation.is_vec(var)  # a closed form of vec(B): back to B's shape

    def shaped(a):
        a = np.asarray(a)
        return np.swapaxes(a.reshape((shape[1], shape[0]) + a.shape[1:]), 0, 1) if vec else a
    if directions.ndim == 3 and directions.shape[1:] == np.shape(args[name]) and np.ndim(args[name]) == 2:
        return shaped(fn(**args, **{"d" + name: directions[0]}))[..., None]
    return shaped(fn(**args)).reshape(shape + (-1,)) @ flat


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    a = a.reshape(b.shape)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b), initial=0.0))))
