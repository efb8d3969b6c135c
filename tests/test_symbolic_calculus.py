"""symift.calculus against central finite differences, rule by rule and function by function.

For an expression e and directions v (one per differentiated symbol x, same shape as x):

    differential(e, {x: dx})|_{dx = v}  ≈  (e(x + h v) − e(x − h v)) / 2h,     h = 1e-6,

at random float64 points, for several concrete sizes.  sympy's own ``MatrixExpr.diff`` is never
the reference: in sympy 1.14 it raises on symift's entropy 1ᵀ(z ∘ log z) and on d/dt (X + tI)⁻¹
(see the last tests).
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from helpers import evaluate, random_point
from sympy.matrices.expressions.matexpr import MatrixExpr

import symift
from symift.symbolic.calculus import differential
from symift.symbolic.expr import Scalar, SympyBuilder

H = 1e-6
RTOL = 1e-6
SIZES = [3, 5, pytest.param(8, marks=pytest.mark.slow)]

n = sp.Symbol("n", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)


def rng_for(*key) -> np.random.Generator:
    """A generator seeded by the test case, so every case is reproducible on its own."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def direction(s):
    """The direction symbol for ``s``: ``d_s`` of the same kind and shape."""
    if isinstance(s, sp.MatrixSymbol):
        return sp.MatrixSymbol("d_" + s.name, *s.shape)
    return sp.Symbol("d_" + s.name, real=True)


def random_like(value, rng):
    return rng.standard_normal(np.shape(value)) if np.ndim(value) else float(rng.standard_normal())


def check(e, wrt, values: dict, dims: dict, rng):
    """Assert that symift's differential of ``e`` along random directions matches central FD."""
    seeds = {s: direction(s) for s in wrt}
    d = differential(e, seeds)
    if isinstance(e, MatrixExpr):
        assert isinstance(d, MatrixExpr) and d.shape == e.shape, (d, e.shape)
    dirs = {s.name: random_like(values[s.name], rng) for s in wrt}
    analytic = evaluate(d, {**values, **{seeds[s].name: dirs[s.name] for s in wrt}}, dims)
    plus = {**values, **{k: values[k] + H * v for k, v in dirs.items()}}
    minus = {**values, **{k: values[k] - H * v for k, v in dirs.items()}}
    numeric = (np.asarray(evaluate(e, plus, dims)) - np.asarray(evaluate(e, minus, dims))) / (2 * H)
    assert np.shape(analytic) == np.shape(numeric), (np.shape(analytic), np.shape(numeric))
    # A check is only meaningful if e moves along v.
    assert np.max(np.abs(numeric)) > 1e-6, f"e does not depend on {wrt}: the check cannot fail"
    scale = np.max(np.abs(numeric))
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=RTOL * scale, err_msg=f"d[{e}] = {d}")


# ---------------------------------------------------------------- the evaluator itself

EVALUATOR_CASES = {  # expression → its value in numpy, from the point p of matrix_values()
    "A@x": (lambda: A * x, lambda p: p["A"] @ p["x"]),
    "B@x": (lambda: B * x, lambda p: p["B"] @ p["x"]),
    "x.T": (lambda: x.T, lambda p: p["x"][None, :]),
    "xT Q y": (lambda: Scalar(x.T * Q * y), lambda p: p["x"] @ p["Q"] @ p["y"]),
    "x∘y - t": (lambda: sp.HadamardProduct(x, y) - t * sp.OneMatrix(n, 1), lambda p: p["x"] * p["y"] - p["t"]),
    "x^-1/2": (lambda: sp.HadamardPower(x, -sp.Rational(1, 2)), lambda p: p["x"] ** -0.5),
    "tanh.(x)": (lambda: x.applyfunc(sp.tanh), lambda p: np.tanh(p["x"])),
    "abs.(y - 1)": (lambda: (y - sp.OneMatrix(n, 1)).applyfunc(sp.Abs), lambda p: np.abs(p["y"] - 1)),
    "diag(x)": (lambda: sp.DiagMatrix(x), lambda p: np.diag(p["x"])),
    "(X + tI)^-1": (lambda: sp.Inverse(X + t * I), lambda p: np.linalg.inv(p["X"] + p["t"] * np.eye(len(p["x"])))),
    "X^-2": (lambda: sp.MatPow(X, -2), lambda p: np.linalg.matrix_power(np.linalg.inv(p["X"]), 2)),
    "logsumexp": (lambda: sp.log(Scalar(ONE * x.applyfunc(sp.exp))), lambda p: np.log(np.sum(np.exp(p["x"])))),
    "sum A": (lambda: Scalar(ONE * A * ONE.T), lambda p: np.sum(p["A"])),
    "t^2 sin t": (lambda: t ** 2 * sp.sin(t), lambda p: p["t"] ** 2 * np.sin(p["t"])),
}


@pytest.mark.parametrize("case", list(EVALUATOR_CASES))
def test_evaluate_matches_numpy(case):
    """The FD checks below are only as good as ``evaluate``: check it against plain numpy."""
    rng = rng_for("evaluate", case)
    values = matrix_values(4, rng)
    expr, expected = EVALUATOR_CASES[case]
    got = evaluate(expr(), values, {"n": 4, "m": 5})
    want = expected(values)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_scalar_evaluates_through_subs():
    """``Scalar`` turns into a number once its matrix is explicit, the documented subs path."""
    z = sp.MatrixSymbol("z", n, 1)
    e = Scalar(ONE * sp.HadamardProduct(z, z.applyfunc(sp.log))) + t * Scalar(z.T * z)
    z3 = sp.ImmutableMatrix([0.5, 1.0, 2.0])
    value = e.subs({n: 3, z: z3, t: 3})
    assert value.is_Number
    assert e.subs({n: 3}).subs({sp.MatrixSymbol("z", 3, 1): z3, t: 3}) == value
    assert float(value) == pytest.approx(0.5 * np.log(0.5) + 2 * np.log(2.0) + 3 * 5.25, rel=1e-12)
    assert float(value) == pytest.approx(evaluate(e, {"z": [0.5, 1.0, 2.0], "t": 3}, {"n": 3}), rel=1e-12)


# ---------------------------------------------------------------- scalar rules

a, b = sp.symbols("a b", real=True)

SCALAR_CASES = {
    "add": a + 3 * b + 1,
    "mul": 2 * a * b * a,
    "div": a / (1 + b ** 2),
    "pow_const": a ** 3 + b ** sp.Rational(1, 3),
    "pow_neg": 1 / (a ** 2 * b),
    "pow_var_exponent": a ** b,
    "exp_var_exponent": 2 ** (a * b),
    "log": sp.log(a * b),
    "exp": sp.exp(a - b),
    "sin": sp.sin(a * b),
    "cos": sp.cos(a + b),
    "tanh": sp.tanh(a - 2 * b),
    "sqrt": sp.sqrt(a + b),
    "abs": sp.Abs(a - 3 * b),
    "composite": sp.log(1 + sp.exp(a * b)) * sp.sqrt(a) - sp.cos(b) ** 2 / a,
}


@pytest.mark.parametrize("wrt", ["a", "b", "ab"])
@pytest.mark.parametrize("case", sorted(SCALAR_CASES))
def test_scalar_rules(case, wrt):
    rng = rng_for("scalar", case, wrt)
    values = {"a": rng.uniform(0.5, 1.5), "b": rng.uniform(0.5, 1.5)}
    check(SCALAR_CASES[case], [{"a": a, "b": b}[c] for c in wrt], values, {}, rng)


# ---------------------------------------------------------------- matrix rules

x = sp.MatrixSymbol("x", n, 1)
y = sp.MatrixSymbol("y", n, 1)
A = sp.MatrixSymbol("A", n, n)
Q = sp.MatrixSymbol("Q", n, n)
X = sp.MatrixSymbol("X", n, n)
B = sp.MatrixSymbol("B", m, n)
t = sp.Symbol("t", real=True)
ONE = sp.OneMatrix(1, n)
I = sp.Identity(n)  # noqa: E741 - the identity is I


def matrix_values(size, rng):
    """A point for the raw-sympy cases: x, y > 0 (logs, roots, negative powers), X well conditioned."""
    return {
        "x": rng.uniform(0.5, 1.5, size), "y": rng.uniform(0.5, 1.5, size),
        "A": rng.standard_normal((size, size)), "Q": rng.standard_normal((size, size)),
        "X": rng.standard_normal((size, size)) + 2 * size * np.eye(size),
        "B": rng.standard_normal((size + 1, size)), "t": rng.uniform(0.5, 1.5),
    }


ELEMENTWISE = {"log": sp.log, "exp": sp.exp, "sqrt": sp.sqrt, "sin": sp.sin, "cos": sp.cos,
               "tanh": sp.tanh, "abs": sp.Abs}

MATRIX_CASES = {
    # MatMul
    "A@x": (A * x, [x, A]),
    "B@x (m×n)": (B * x, [x, B]),
    "xT Q x": (Scalar(x.T * Q * x), [x, Q]),
    "row·col": (x.T * y, [x, y]),
    "A@(A@x)": (sp.MatMul(A, sp.MatMul(A, x)), [A, x]),
    # MatPow (sympy folds A*A into A**2, and X⁻¹ dt X⁻¹ into dt X⁻²)
    "A*A*x (MatPow)": (A * A * x, [A, x]),
    "X^-2 (MatPow)": (sp.MatPow(X, -2), [X]),
    "(X + tI)^-3 (MatPow)": (sp.MatPow(X + t * I, -3), [t, X]),
    "scalar*matrix": (t ** 2 * A * x, [t, x, A]),
    "Scalar*vector": (Scalar(x.T * y) * x, [x, y]),
    # MatAdd
    "MatAdd": (A * x + 2 * y - t * x, [x, y, t, A]),
    "MatAdd+ones": (x + t * sp.OneMatrix(n, 1), [x, t]),
    # Transpose
    "(A@x).T": ((A * x).T, [x, A]),
    "A.T": (A.T + Q, [A]),
    "x.T@A.T@y": (Scalar(x.T * A.T * y), [A, x]),
    # HadamardProduct
    "x∘y": (sp.HadamardProduct(x, y), [x, y]),
    "x∘(A@x)∘y": (sp.HadamardProduct(x, A * x, y), [x, A]),
    "A∘Q": (sp.HadamardProduct(A, Q), [A, Q]),
    # HadamardPower
    **{f"x^{p}": (sp.HadamardPower(x, p), [x]) for p in (-1, 2, sp.Rational(1, 2), 3, 1)},
    "(A@x + 5)^2": (sp.HadamardPower(A * x + 5 * sp.OneMatrix(n, 1), 2), [A, x]),
    "x^t (exponent held)": (sp.HadamardPower(x, t), [x]),
    # ElementwiseApplyFunction
    **{f"{k}.(x)": (x.applyfunc(f), [x]) for k, f in ELEMENTWISE.items()},
    **{f"{k}.(A@x + y)": ((A * x + 3 * y).applyfunc(ELEMENTWISE[k]), [A, y])
       for k in ("exp", "sin", "tanh", "abs")},
    "log.(x)∘x": (sp.HadamardProduct(x, x.applyfunc(sp.log)), [x]),
    # DiagMatrix
    "diag(x)": (sp.DiagMatrix(x), [x]),
    "diag(x∘x)@y": (sp.DiagMatrix(sp.HadamardProduct(x, x)) * y, [x, y]),
    "diag(x) - x xT": (sp.DiagMatrix(x) - x * x.T, [x]),
    # Inverse
    "(X + tI)^-1 d/dt": (sp.Inverse(X + t * I), [t]),
    "X^-1 dX": (sp.Inverse(X), [X]),
    "X^-1 y": (sp.Inverse(X) * y, [X, y]),
    "(X + t xxT)^-1 y": (sp.Inverse(X + t * x * x.T) * y, [t, x]),
    "yT X^-1 y": (Scalar(y.T * sp.Inverse(X) * y), [X]),
    # Scalar
    "Scalar(1T x∘x)": (Scalar(ONE * sp.HadamardProduct(x, x)), [x]),
    "log Scalar(1T exp x)": (sp.log(Scalar(ONE * x.applyfunc(sp.exp))), [x]),
    "sqrt Scalar(xT x)": (sp.sqrt(Scalar(x.T * x)), [x]),
    "Scalar(1T A 1)": (Scalar(ONE * A * ONE.T), [A]),
    "Scalar^2 * t": (Scalar(x.T * A * y) ** 2 * t, [x, A, t]),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", list(MATRIX_CASES))
def test_matrix_rules(case, size):
    rng = rng_for("matrix", case, size)
    e, wrt = MATRIX_CASES[case]
    check(e, wrt, matrix_values(size, rng), {"n": size, "m": size + 1}, rng)


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("wrt", [[x], [x, A], [t]], ids=["x", "x,A", "t"])
def test_independent_parts_have_a_zero_differential(wrt, size):
    """d of what does not depend on the seeds is a zero of the right shape (OneMatrix, Identity…)."""
    rng = rng_for("zero", size)
    values = matrix_values(size, rng)
    values.update({"d_" + s.name: random_like(values[s.name], rng) for s in wrt})
    for e in (Q * y, sp.OneMatrix(n, 1), I, sp.ZeroMatrix(n, 1), Scalar(y.T * y)):
        d = differential(e, {s: direction(s) for s in wrt})
        assert np.shape(evaluate(d, values, {"n": size})) == np.shape(evaluate(e, values, {"n": size}))
        assert np.all(evaluate(d, values, {"n": size}) == 0), d


def test_elementwise_power_with_a_moving_exponent_is_refused():
    with pytest.raises(NotImplementedError, match="exponent"):
        differential(sp.HadamardPower(x, t), {t: direction(t)})


# ---------------------------------------------------------------- the language, through symift

HEADER = """\
dim n, m
param lam > 0
param c[n]
param u[m]
param A[n, n]
param B[m, n]
param Q[n, n] pd
var x[n]
var z[n] > 0
"""


def build(expr: str, vector: bool = False):
    """The sympy expression of ``expr`` in a problem: its objective, or a constraint's left side."""
    if vector:
        problem = symift.parse(HEADER + f"minimize sum(x)\nsubject to\n    {expr} == 0\n")
        builder = SympyBuilder(problem)
        return problem, builder, builder.build(problem.constraints[0].lhs)
    problem = symift.parse(HEADER + f"minimize {expr}\n")
    builder = SympyBuilder(problem)
    return problem, builder, builder.build(problem.objective.expr)


# (expression, names to differentiate, vector-valued?)
LANGUAGE_CASES = [
    ("sum(x)", "x", False),
    ("sum(z * x)", "x z", False),
    ("sum(A)", "A", False),
    ("sum(B @ x)", "B x", False),
    ("dot(c, x)", "c x", False),
    ("dot(x, x)", "x", False),
    ("sumsq(x)", "x", False),
    ("sumsq(A)", "A", False),
    ("sumsq(B @ x - u)", "x B u", False),
    ("norm2(x)", "x", False),
    ("norm2(A @ x + c)", "A c", False),
    ("quad(x, Q)", "x Q", False),
    ("quad(z, A)", "z A", False),
    ("entropy(z)", "z", False),
    ("dot(c, z) + entropy(z)", "z c", False),
    ("logsumexp(x)", "x", False),
    ("logsumexp(A @ x + c)", "A x c", False),
    ("norm1(x)", "x", False),
    ("norm1(A @ x - c)", "A", False),
    ("sum(log(z))", "z", False),
    ("sum(exp(x))", "x", False),
    ("sum(sqrt(z))", "z", False),
    ("sum(sin(x))", "x", False),
    ("sum(cos(x))", "x", False),
    ("sum(tanh(x))", "x", False),
    ("sum(abs(x))", "x", False),
    ("log(lam) + exp(lam) * sum(x) + sqrt(lam) * abs(lam - 2)", "lam", False),
    ("sin(lam) * cos(dot(c, x)) + tanh(sumsq(x))", "lam x c", False),
    ("lam * sumsq(x)", "lam x", False),
    ("lam ^ 2 * sum(z ^ 3)", "lam z", False),
    ("sum(z ^ lam)", "z", False),
    ("x.T @ A @ x", "x A", False),
    ("x.T @ c", "x c", False),
    ("sumsq(A.T @ x)", "A x", False),
    ("0.5 * sumsq(B @ x - u) + 0.5 * lam * sumsq(x)", "x B u lam", False),
    ("dot(c, z) - sum(z * log(z)) / lam", "z c lam", False),
    # vector-valued expressions (constraint left sides)
    ("log(z)", "z", True),
    ("exp(x)", "x", True),
    ("sqrt(z)", "z", True),
    ("sin(x)", "x", True),
    ("cos(x)", "x", True),
    ("tanh(x)", "x", True),
    ("abs(x)", "x", True),
    ("A @ x", "A x", True),
    ("A.T @ x", "A x", True),
    ("B.T @ u", "B u", True),
    ("(B @ A).T @ u", "A B", True),
    ("x / z", "x z", True),
    ("lam / z", "lam z", True),
    ("x / lam", "x lam", True),
    ("z ^ 3", "z", True),
    ("z ^ 2", "z", True),
    ("z ^ 0.5", "z", True),
    ("z ^ -1", "z", True),
    ("z ^ 1", "z", True),
    ("z ^ lam", "z", True),
    ("x ^ 2 * lam - 1", "x lam", True),
    ("x + lam", "x lam", True),
    ("lam - z", "lam z", True),
    ("lam * x", "lam x", True),
    ("2 * x - 1", "x", True),
    ("-x + c", "x c", True),
    ("dot(c, x) * x", "x c", True),
    ("sum(z) * log(z) + lam", "z lam", True),
    ("Q @ x + c - lam * x * z", "Q x c lam z", True),
]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("source,names,vector", LANGUAGE_CASES, ids=[c[0] for c in LANGUAGE_CASES])
def test_language_functions(source, names, vector, size):
    problem, builder, e = build(source, vector)
    assert isinstance(e, MatrixExpr) == vector
    dims = {"n": size, "m": size + 1}
    rng = rng_for("language", source, size)
    values = random_point(problem, dims, rng)
    wrt = [builder.symbols[name] for name in names.split()]
    check(e, wrt, values, dims, rng)
    if len(wrt) > 1:  # each symbol alone as well: the cross terms must not hide a missing one
        for s in wrt:
            check(e, [s], values, dims, rng)


@pytest.mark.parametrize("example", ["softmax.ift", "ridge.ift", "optnet_qp.ift"])
def test_example_objectives(example):
    """The objectives of the shipped examples, w.r.t. every parameter and variable at once."""
    problem = symift.load(Path(__file__).resolve().parent.parent / "examples" / example)
    builder = SympyBuilder(problem)
    e = builder.build(problem.objective.expr)
    dims = {d.name: 3 + i for i, d in enumerate(problem.dims)}
    rng = rng_for("example", example)
    values = random_point(problem, dims, rng)
    wrt = [builder.symbols[d.name] for d in (*problem.params, *problem.variables)]
    check(e, wrt, values, dims, rng)


SECOND_ORDER_CASES = [
    ("entropy(z)", "z"),
    ("logsumexp(x)", "x"),
    ("norm2(x)", "x"),
    ("quad(x, Q)", "x"),
    ("sum(z ^ 0.5) + sum(z ^ -1)", "z"),
    ("sum(tanh(x)) + sum(sin(x)) + sum(cos(x)) + sum(exp(x))", "x"),
    ("0.5 * sumsq(B @ x - u) + 0.5 * lam * sumsq(x)", "x"),
    ("dot(c, z) + entropy(z)", "z"),
]


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("source,name", SECOND_ORDER_CASES, ids=[c[0] for c in SECOND_ORDER_CASES])
def test_second_differentials(source, name, size):
    """d(d e[u]) along v: Hessian-vector products, what the KKT stage differentiates."""
    problem, builder, e = build(source)
    s = builder.symbols[name]
    u = sp.MatrixSymbol("u_" + name, *s.shape)
    dims = {"n": size, "m": size + 1}
    rng = rng_for("second", source, size)
    values = random_point(problem, dims, rng)
    values[u.name] = rng.standard_normal(size)
    check(differential(e, {s: u}), [s], values, dims, rng)


@pytest.mark.parametrize("size", [3, 5])
def test_second_differential_of_shifted_inverse(size):
    """d²/dt² (X + tI)⁻¹ = 2 (X + tI)⁻³: the first differential is a MatPow, differentiated again."""
    rng = rng_for("second inverse", size)
    values = {**matrix_values(size, rng), "v": 1.0}
    first = differential(sp.Inverse(X + t * I), {t: sp.Symbol("v", real=True)})
    check(first, [t], values, {"n": size}, rng)
    second = differential(first, {t: sp.Symbol("w", real=True)})
    shifted = np.linalg.inv(values["X"] + values["t"] * np.eye(size))
    np.testing.assert_allclose(evaluate(second, {**values, "w": 1.0}, {"n": size}),
                               2 * shifted @ shifted @ shifted, rtol=1e-10)


def test_entropy_differential_is_not_zero():
    """The sympy trap: d/dz Σ zᵢ log zᵢ = Σ (log zᵢ + 1) dzᵢ, not 0."""
    _, builder, e = build("entropy(z)")
    z = builder.symbols["z"]
    d = differential(e, {z: direction(z)})
    values = {"z": np.array([0.2, 0.5, 1.5]), "d_z": np.array([1.0, -2.0, 0.5])}
    expected = -np.sum((np.log(values["z"]) + 1) * values["d_z"])
    assert evaluate(d, values, {"n": 3}) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------- sympy's own diff (why calculus.py exists)

sympy_114 = pytest.mark.skipif(not sp.__version__.startswith("1.14"),
                               reason="documents sympy 1.14's MatrixExpr.diff")


@sympy_114
def test_sympy_diff_of_entropy_fails():
    """sympy 1.14 cannot differentiate 1ᵀ(z ∘ log z) (symift's entropy) w.r.t. z: it raises."""
    z = sp.MatrixSymbol("z", n, 1)
    with pytest.raises(ValueError):
        sp.MatMul(ONE, sp.HadamardProduct(z, z.applyfunc(sp.log))).diff(z)


@sympy_114
def test_sympy_diff_of_shifted_inverse_fails():
    """sympy 1.14 raises on d/dt (X + tI)⁻¹; symift gives −(X + tI)⁻² (checked above by FD)."""
    with pytest.raises(TypeError):
        sp.Inverse(X + t * I).diff(t)
