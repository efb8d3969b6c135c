"""Shared test helpers: a numeric evaluator for symift's sympy expressions, random points, layers.

``evaluate(expr, values, dims)`` substitutes concrete sizes and numbers into an expression built
from symift's vocabulary (``MatMul``, ``HadamardProduct``, ``ElementwiseApplyFunction``,
``Inverse``, :class:`Scalar`, ...) and returns float64 numpy data: it goes through
sympy's own explicit evaluation, the path a user takes with ``J.subs(...).as_explicit()``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

import symift

__all__ = ["COUPLED", "EXAMPLES", "derive", "evaluate", "fd_jacobian", "generated_module", "layer_of", "random_point",
           "same", "symbols_of"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: the examples without a closed form: a coupled matrix variable with a row-wise map, which has no
#: vec form (symift.symbolic.vec); the tangent system is the derivation's result.  multiclass_svm's
#: rows are coupled too, but it is derived in vec form
COUPLED = {"multiclass_svm_md"}
_LAYERS: dict = {}


def derive(name):
    """The derivation of examples/<name>.ift."""
    return symift.derive(symift.load(EXAMPLES / f"{name}.ift"))


def same(d, J, expected) -> bool:
    """Symbolic equality in symift's canonical algebra (J − expected simplifies to 0)."""
    alg = d.analysis.alg
    return alg.simplify(alg.lin(J) - alg.lin(expected)).is_zero


def fd_jacobian(solve, params, var, param, h=1e-6):
    """Central differences of a numerical re-solve, column by column."""
    base = np.atleast_1d(np.asarray(params[param], dtype=float))
    cols = []
    for k in range(base.size):
        e = np.zeros_like(base)
        e.flat[k] = h
        plus = dict(params, **{param: (base + e).reshape(np.shape(params[param]))})
        minus = dict(params, **{param: (base - e).reshape(np.shape(params[param]))})
        cols.append((np.atleast_1d(solve(plus)[var]) - np.atleast_1d(solve(minus)[var])) / (2 * h))
    return np.stack(cols, axis=1)


def generated_module(name, directory):
    """The standalone module ``symift codegen`` writes for examples/<name>.ift, imported from ``directory``."""
    import importlib.util

    path = Path(directory) / f"gen_{name}.py"
    path.write_text(symift.codegen(symift.load(EXAMPLES / f"{name}.ift")))
    spec = importlib.util.spec_from_file_location(f"gen_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layer_of(name, **options):
    """The compiled layer of examples/<name>.ift, made once per options (compiling takes seconds)."""
    key = (name, tuple(sorted(options.items(), key=lambda kv: kv[0])))
    if key not in _LAYERS:
        _LAYERS[key] = symift.compile(_derivation(name), **options)
    return _LAYERS[key]


_DERIVATIONS: dict = {}


def _derivation(name):
    """One derivation per example for every layer_of: the layers of different options then share
    its generated module (printing it is most of a compile)."""
    if name not in _DERIVATIONS:
        _DERIVATIONS[name] = derive(name)
    return _DERIVATIONS[name]


def _size(d, dims: dict) -> int:
    if isinstance(d, str):
        return int(dims[d])
    d = sp.sympify(d)
    d = d.xreplace({s: sp.Integer(dims[s.name]) for s in d.free_symbols if s.name in dims})
    if not d.is_Integer:
        raise ValueError(f"size {d} is not concrete: pass its dims (got {sorted(dims)})")
    return int(d)


def _as_matrix(name: str, value, shape: tuple) -> sp.ImmutableMatrix:
    a = np.asarray(value, dtype=float)
    if a.size != shape[0] * shape[1]:
        raise ValueError(f"value of '{name}' has shape {a.shape}, expected {shape}")
    return sp.ImmutableMatrix(a.reshape(shape).tolist())


def evaluate(expr, values: dict, dims: dict):
    """The float64 value of ``expr`` with symbols (by name) set to ``values`` and sizes to ``dims``.

    Column vectors come back as 1-D arrays, other matrix expressions as 2-D arrays, scalars as
    ``float``.  Every free symbol must get a value (dims included), else ``ValueError``.

    The substitution runs bottom-up and makes every matrix node explicit as soon as its
    arguments are (``doit``, then ``as_explicit``): a ``Scalar`` then receives a 1×1 explicit
    matrix and is its entry.  ``expr.subs(...)`` gives the same numbers, but makes each
    ``Scalar`` expand ``1ᵀ(...)`` through sympy's symbolic ``Sum`` entries — about 1 s per
    ``Scalar`` at n = 8.
    """
    expr = sp.sympify(expr)
    table = {}
    for s in expr.free_symbols:
        if isinstance(s, sp.MatrixSymbol):
            if s.name not in values:
                raise ValueError(f"no value for '{s.name}' in {sorted(values)}")
            shape = tuple(_size(d, dims) for d in s.shape)
            table[s] = _as_matrix(s.name, values[s.name], shape)
        elif s.name in dims:
            table[s] = sp.Integer(dims[s.name])
        elif s.name in values:
            table[s] = sp.Float(float(values[s.name]))
        else:
            raise ValueError(f"no value for '{s.name}' in {sorted(values)} (dims {sorted(dims)})")
    result = _explicit(expr, table)
    if isinstance(result, sp.MatrixBase):
        data = np.array(result.evalf().tolist(), dtype=float)
        return data.reshape(-1) if data.shape[1] == 1 else data
    try:
        return float(result.evalf())
    except TypeError:
        raise ValueError(f"did not evaluate to a number: {result}") from None


def _explicit(e, table: dict):
    """``e`` with ``table`` substituted, matrix nodes turned into explicit ImmutableMatrices."""
    if e in table:
        return table[e]
    if not e.args or isinstance(e, sp.Lambda):  # numbers; an elementwise function's body
        return e
    new = e.func(*[_explicit(a, table) for a in e.args])
    if isinstance(new, MatrixExpr):
        new = new.doit()
        if not isinstance(new, sp.MatrixBase):
            new = new.as_explicit()
        new = sp.ImmutableMatrix(new)
    table[e] = new
    return new


def symbols_of(expr) -> dict:
    """The symbols (scalar and matrix) of ``expr`` by name, sizes excluded."""
    return {s.name: s for s in sp.sympify(expr).free_symbols
            if isinstance(s, sp.MatrixSymbol) or not (s.is_integer and s.is_positive)}


def random_point(problem_or_symbols, dims: dict, rng: np.random.Generator, positive=()) -> dict:
    """Random values for a problem's params and variables (or for an iterable of sympy symbols).

    Positive params (``> 0``, ``>= 0``), positive variables and the names in ``positive`` get
    values in [0.5, 1.5]; others are standard normal.  ``pd``/``psd`` matrices are AᵀA + I,
    ``symmetric`` ones A + Aᵀ.
    """
    positive = set(positive)
    decls = []  # (name, shape as ints, kind)
    if hasattr(problem_or_symbols, "params"):
        for p in problem_or_symbols.params:
            kind = "positive" if p.sign else next(
                (a for a in ("pd", "psd", "symmetric") if a in p.attributes), "normal")
            decls.append((p.name, tuple(_size(s, dims) for s in p.shape), kind))
        for v in problem_or_symbols.variables:
            decls.append((v.name, tuple(_size(s, dims) for s in v.shape),
                          "positive" if v.positive else "normal"))
    else:
        for s in problem_or_symbols:
            if isinstance(s, sp.MatrixSymbol):
                rows, cols = (_size(d, dims) for d in s.shape)
                shape = (rows,) if cols == 1 else (rows, cols)
            else:
                shape = ()
            decls.append((s.name, shape, "positive" if s.is_positive else "normal"))
    out = {}
    for name, shape, kind in decls:
        if name in positive or kind == "positive":
            value = rng.uniform(0.5, 1.5, size=shape)
        elif kind in ("pd", "psd"):
            a = rng.standard_normal(shape)
            value = a.T @ a + np.eye(shape[0])
        elif kind == "symmetric":
            a = rng.standard_normal(shape)
            value = a + a.T
        else:
            value = rng.standard_normal(shape)
        out[name] = float(value) if shape == () else value
    return out
