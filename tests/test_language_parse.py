"""Parsing and the Problem model: the shipped examples, positions, syntax details, packaging."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import symift
from symift.language.model import Binary, Call, Name, Neg, Number, Transpose, unparse

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.ift"))
#: SPEC §1's seven, the breadth issue's, and the fixed points of proximal / projected gradient
EXAMPLE_NAMES = {"circle", "eqqp", "fixed_point", "optnet_qp", "ridge", "softmax", "sparsemax",
                 "box_projection", "entmax15", "lasso", "constrained_softmax", "lml", "elastic_net", "sigmoid",
                 "rowwise_sparsemax", "hinge_svm", "lasso_prox", "box_qp_pgd", "nnls_pgd",
                 "simplex_qp_md", "simplex_qp_pgd", "ls_ball_pgd", "multiclass_svm", "multiclass_svm_md"}


def example(name: str) -> symift.Problem:
    return symift.load(ROOT / "examples" / f"{name}.ift")


# --------------------------------------------------------------------------- the examples
def test_the_glob_finds_every_shipped_example():
    assert {p.stem for p in EXAMPLES} == EXAMPLE_NAMES
    assert len(EXAMPLES) == len(EXAMPLE_NAMES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_loads_and_shape_checks(path):
    problem = symift.load(path)
    assert isinstance(problem, symift.Problem)
    assert problem.source.filename == str(path)
    assert problem.variables, "every example has unknowns"
    if problem.objective is not None:
        assert problem.kind == "optimization"
        assert problem.shape_of(problem.objective.expr) == ()
    else:
        assert problem.kind == "root"
        assert problem.equations
    # parse(text) and load(path) agree (spans and source are not part of equality)
    assert symift.parse(path.read_text(encoding="utf-8"), str(path)) == problem
    summary = problem.summary()
    assert summary.startswith(f"{path}: {problem.kind} problem")
    for v in problem.variables:
        assert re.search(rf"^  var +{v.name}\b", summary, re.MULTILINE)


def test_softmax():
    p = example("softmax")
    assert p.kind == "optimization"
    assert [d.name for d in p.dims] == ["n"]
    assert [(q.name, q.shape, q.attributes, q.sign) for q in p.params] == [("theta", ("n",), frozenset(), None)]
    (z,) = p.variables
    assert (z.name, z.shape, z.positive) == ("z", ("n",), True)
    assert p.objective.sense == "maximize"
    assert p.objective.expr == Binary(None, "+", Call(None, "dot", (Name(None, "theta"), Name(None, "z"))),
                                      Call(None, "entropy", (Name(None, "z"),)))
    nu, lam = p.constraints
    assert (nu.relation, nu.multiplier, nu.labelled, nu.shape, nu.is_equality) == ("==", "nu", True, (), True)
    assert nu.lhs == Call(None, "sum", (Name(None, "z"),)) and nu.rhs == Number(None, "1")
    assert (lam.relation, lam.multiplier, lam.labelled, lam.shape, lam.is_equality) == (
        ">=", "lam", True, ("n",), False)
    assert p.equations == ()


def test_sparsemax_variable_is_not_positive():
    p = example("sparsemax")
    assert p.variable("z").positive is False
    assert p.objective.sense == "minimize"
    assert [(c.multiplier, c.relation, c.shape) for c in p.constraints] == [
        ("nu", "==", ()), ("lam", ">=", ("n",))]


def test_ridge():
    p = example("ridge")
    assert p.kind == "optimization"
    assert [d.name for d in p.dims] == ["m", "n"]
    assert p.param("X").shape == ("m", "n")
    assert p.param("y").shape == ("m",)
    lam = p.param("lam")
    assert (lam.shape, lam.sign, lam.attributes) == ((), ">0", frozenset())
    assert p.variable("w").shape == ("n",)
    assert p.constraints == ()
    assert unparse(p.objective.expr) == "0.5 * sumsq(X @ w - y) + 0.5 * lam * sumsq(w)"


def test_eqqp():
    p = example("eqqp")
    assert [d.name for d in p.dims] == ["n", "m"]
    assert p.param("Q").shape == ("n", "n") and p.param("Q").attributes == frozenset({"pd"})
    assert p.param("A").shape == ("m", "n") and p.param("b").shape == ("m",)
    (nu,) = p.constraints
    assert (nu.multiplier, nu.relation, nu.shape) == ("nu", "==", ("m",))


def test_optnet_qp():
    p = example("optnet_qp")
    assert [d.name for d in p.dims] == ["n", "m", "p"]
    assert {q.name: q.shape for q in p.params} == {
        "Q": ("n", "n"), "q": ("n",), "G": ("p", "n"), "h": ("p",), "A": ("m", "n"), "b": ("m",)}
    assert p.param("Q").attributes == frozenset({"pd"})
    lam, nu = p.constraints
    assert (lam.multiplier, lam.relation, lam.shape) == ("lam", "<=", ("p",))
    assert (nu.multiplier, nu.relation, nu.shape) == ("nu", "==", ("m",))


def test_circle():
    p = example("circle")
    assert p.kind == "root" and p.objective is None and p.constraints == ()
    assert p.dims == ()
    assert p.param("theta").shape == ()
    assert p.variable("x").positive is True
    (eq,) = p.equations
    assert eq.shape == () and eq.label is None
    assert unparse(eq.lhs) == "theta ^ 2 + x ^ 2" and unparse(eq.rhs) == "1"


def test_fixed_point():
    p = example("fixed_point")
    assert p.kind == "root"
    assert p.variable("x").positive is False
    (eq,) = p.equations
    assert eq.lhs == Name(None, "x")
    assert eq.rhs == Binary(None, "+", Call(None, "cos", (Name(None, "x"),)), Name(None, "theta"))


# --------------------------------------------------------------------------- declarations
def test_param_attributes_and_signs():
    p = symift.parse(
        "dim n\n"
        "param S[n, n] symmetric\n"
        "param P[n, n] psd\n"
        "param D[n, n] symmetric pd\n"
        "param a > 0\n"
        "param b >= 0\n"
        "param c>0\n"
        "param k[3]\n"
        "var x[n] > 0\n"
        "var t\n"
        "minimize quad(x, D) + a * t\n")
    attrs = {q.name: (q.shape, q.attributes, q.sign) for q in p.params}
    assert attrs == {
        "S": (("n", "n"), frozenset({"symmetric"}), None),
        "P": (("n", "n"), frozenset({"psd"}), None),
        "D": (("n", "n"), frozenset({"symmetric", "pd"}), None),
        "a": ((), frozenset(), ">0"),
        "b": ((), frozenset(), ">=0"),
        "c": ((), frozenset(), ">0"),
        "k": ((3,), frozenset(), None),
    }
    assert [(v.name, v.shape, v.positive) for v in p.variables] == [("x", ("n",), True), ("t", (), False)]


def test_unlabelled_multipliers_get_stable_default_names():
    src = ("dim n\nparam A[n, n]\nparam b[n]\nvar z[n]\n"
           "minimize sumsq(z)\nsubject to\n"
           "    sum(z) == 1\n"          # 1st equality   -> nu1
           "    z >= 0\n"               # 1st inequality -> lam1
           "    mu: A @ z <= b\n"       # labelled (2nd inequality)
           "    z <= 1\n"               # 3rd inequality -> lam3
           "    sum(b) == sum(z)\n")    # 2nd equality   -> nu2
    p = symift.parse(src)
    assert [(c.multiplier, c.labelled, c.relation) for c in p.constraints] == [
        ("nu1", False, "=="), ("lam1", False, ">="), ("mu", True, "<="), ("lam3", False, "<="),
        ("nu2", False, "==")]
    # the same text gives the same names (they are stable, not counters across parses)
    assert [c.multiplier for c in symift.parse(src).constraints] == ["nu1", "lam1", "mu", "lam3", "nu2"]


def test_a_default_multiplier_name_never_clashes_with_a_declared_name():
    p = symift.parse("var x\nparam lam2\nminimize x\nsubject to\n"
                     "  nu1: x <= 3\n"    # labelled: 1st inequality
                     "  x >= 0\n"         # 2nd inequality: 'lam2' is taken by the param
                     "  x <= lam2\n"      # 3rd inequality -> lam3
                     "  x == 1\n")        # 1st equality: 'nu1' is taken by the label
    names = [c.multiplier for c in p.constraints]
    assert names[0] == "nu1" and names[2] == "lam3"
    assert names[1].startswith("lam2") and names[1] != "lam2"
    assert names[3].startswith("nu1") and names[3] != "nu1"
    assert len(set(names) | {"x", "lam2"}) == 6


def test_root_problem_with_labelled_vector_equation():
    p = symift.parse("dim n\nparam A[n, n]\nparam b[n]\nvar x[n]\nsolve\n  res: A @ x == b\n")
    (eq,) = p.equations
    assert (eq.label, eq.shape) == ("res", ("n",))


# --------------------------------------------------------------------------- positions
def test_error_position_round_trip():
    src = "dim n\nvar x[n]\nminimize sum(x) + y\n"
    with pytest.raises(symift.UnknownNameError) as info:
        symift.parse(src, "pos.ift")
    err = info.value
    assert (err.span.line, err.span.column) == (3, 19)
    assert src.splitlines()[2][err.span.column - 1] == "y"
    assert (err.filename, err.line, err.column) == ("pos.ift", 3, 19)
    head, quoted, caret = err.render().split("\n")
    assert head == "pos.ift:3:19: error: unknown name 'y'"
    assert quoted.strip() == "minimize sum(x) + y"
    # the caret sits under the offending character of the quoted line
    assert caret.index("^") == quoted.index("minimize") + 18
    assert quoted[caret.index("^")] == "y"


@pytest.mark.parametrize("src, line, column, token", [
    ("var x\n\n\n   minimize   x + bogus\n", 4, 19, "bogus"),
    ("# comment\nvar x   # trailing\nminimize exp(x) * wrong\n", 3, 19, "wrong"),
    ("var x\r\nminimize x + oops\r\n", 2, 14, "oops"),
    ("var x\n\tminimize\tx + tabbed\n", 2, 15, "tabbed"),
])
def test_positions_survive_comments_blank_lines_indentation_crlf_and_tabs(src, line, column, token):
    with pytest.raises(symift.UnknownNameError) as info:
        symift.parse(src)
    err = info.value
    assert (err.span.line, err.span.column) == (line, column)
    assert src.split("\n")[line - 1][column - 1: column - 1 + len(token)] == token
    _, quoted, caret = err.render().split("\n")
    assert quoted[caret.index("^"): caret.index("^") + len(token)] == token
    assert caret.strip() == "^" + "~" * (len(token) - 1)


def test_span_of_a_binary_node_covers_the_operands():
    with pytest.raises(symift.ShapeError) as info:
        symift.parse("dim n, m\nvar x[n]\nparam y[m]\nminimize sum(-(x) + y)\n")
    span = info.value.span
    assert (span.line, span.column, span.end_line, span.end_column) == (4, 14, 4, 22)
    assert info.value.render().split("\n")[2].strip() == "^~~~~~~~"


def test_syntax_error_position_points_at_the_offending_token():
    src = "var x\nminimize x\nsubject to\n    x <= 1 1\n"
    with pytest.raises(symift.ParseError) as info:
        symift.parse(src)
    assert (info.value.span.line, info.value.span.column) == (4, 12)
    assert "unexpected '1'" in info.value.message


@pytest.mark.parametrize("sep", ["\x0c", "\u2028"], ids=["formfeed", "line-separator"])
def test_the_quoted_line_is_the_one_the_position_names(sep):
    src = f"var x\n# a comment{sep} with an odd character\nminimize x + y\n"
    with pytest.raises(symift.UnknownNameError) as info:
        symift.parse(src)
    assert (info.value.line, info.value.column) == (3, 14)
    assert info.value.render().split("\n")[1].strip() == "minimize x + y"


# --------------------------------------------------------------------------- syntax details
def test_caret_and_double_star_are_the_same_power():
    a = symift.parse("var x\nparam t\nminimize x^2 + t^x\n")
    b = symift.parse("var x\nparam t\nminimize x**2 + t ** x\n")
    assert a == b
    assert a.objective.expr.left == Binary(None, "^", Name(None, "x"), Number(None, "2"))


def test_power_is_right_associative_and_binds_tighter_than_unary_minus():
    e = symift.parse("var x\nminimize -x^2^3\n").objective.expr
    assert e == Neg(None, Binary(None, "^", Name(None, "x"),
                                 Binary(None, "^", Number(None, "2"), Number(None, "3"))))


def test_precedence_and_left_associativity():
    e = symift.parse("var x\nminimize x - x / x * x + x\n").objective.expr
    x = Name(None, "x")
    assert e == Binary(None, "+", Binary(None, "-", x, Binary(None, "*", Binary(None, "/", x, x), x)), x)


def test_comments_blank_lines_and_indentation_are_free():
    plain = "dim n\nparam theta[n]\nvar z[n] > 0\nmaximize dot(theta, z) + entropy(z)\nsubject to\nnu: sum(z) == 1\n"
    messy = ("\n\n# header comment\n   dim   n   # sizes\n\n\t\tparam theta [ n ]\n"
             "  # a comment line\n        var z[n]>0\n\n\nmaximize   dot( theta ,z )+entropy(z)   \n"
             "subject   to   # block\n\n            nu :sum(z)==1\n\n# trailing\n")
    assert symift.parse(plain) == symift.parse(messy)
    # without a final newline too
    assert symift.parse(plain.rstrip("\n")) == symift.parse(plain)


def test_equality_sees_a_real_difference():
    # guards the comparisons above: a different expression is not equal
    assert symift.parse("var x\nminimize x^2\n") != symift.parse("var x\nminimize x^3\n")
    assert symift.parse("var x\nminimize x^2\n") != symift.parse("var x\nmaximize x^2\n")


@pytest.mark.parametrize("expr, shape", [
    ("x.T @ Q @ x", ()),
    ("x.T @ x", ()),
    ("x @ x.T", ("n", "n")),
    ("x.T", (1, "n")),
    ("x.T.T", ("n",)),
    ("A @ x", ("m",)),
    ("A.T @ y", ("n",)),
    ("y.T @ A", (1, "n")),
    ("y.T @ A @ x", ()),
    ("A @ Q", ("m", "n")),
    ("A.T", ("n", "m")),
    ("Q @ x + x", ("n",)),
    ("2 * x - x / 3", ("n",)),
    ("t * A", ("m", "n")),
    ("exp(x) ^ 2", ("n",)),
    ("log(A @ x)", ("m",)),
    ("sum(A)", ()),
    ("dot(x, Q @ x)", ()),
    ("quad(A @ x, A @ A.T)", ()),
    ("-t", ()),
])
def test_shapes_of_transpose_and_matmul(expr, shape):
    header = "dim n, m\nparam Q[n, n]\nparam A[m, n]\nparam y[m]\nparam t\nvar x[n]\n"
    if shape == ():
        p = symift.parse(header + f"minimize {expr}\n")
        e = p.objective.expr
    else:  # a non-scalar cannot be the objective: reduce it
        p = symift.parse(header + f"minimize sum({expr})\n")
        e = p.objective.expr.args[0]
    assert p.shape_of(e) == shape


def test_transpose_applies_to_parenthesised_expressions():
    p = symift.parse("dim n\nvar x[n]\nminimize (x + x).T @ x\n")
    e = p.objective.expr
    assert isinstance(e, Binary) and e.op == "@" and p.shape_of(e.left) == (1, "n")
    assert e.left == Transpose(None, Binary(None, "+", Name(None, "x"), Name(None, "x")))


@pytest.mark.parametrize("word", ["dim", "param", "var", "minimize", "maximize", "subject", "to", "solve",
                                  "symmetric", "psd", "pd"])
def test_keywords_cannot_be_declared_names(word):
    for src in (f"param {word}\nvar x\nminimize x\n",
                f"var {word}\nminimize 1\n",
                f"dim {word}\nvar x\nminimize x\n"):
        with pytest.raises(symift.SymiftError) as info:
            symift.parse(src)
        assert f"'{word}'" in info.value.message and "keyword" in info.value.message
        assert (info.value.line, info.value.column) == (1, src.index(" ") + 2)
    # as a multiplier label: a syntax error or a 'keyword' error, pointing at the label
    with pytest.raises(symift.SymiftError) as info:
        symift.parse(f"var x\nminimize x\nsubject to\n  {word}: x >= 0\n")
    assert (info.value.line, info.value.column) in {(4, 3), (4, 3 + len(word))}
    assert isinstance(info.value, symift.ParseError) or "keyword" in info.value.message


@pytest.mark.parametrize("word", ["log", "exp", "sqrt", "sin", "cos", "tanh", "abs", "sum", "dot", "norm2",
                                  "sumsq", "quad", "entropy", "logsumexp", "norm1"])
def test_function_names_cannot_be_declared_names(word):
    for src in (f"param {word}\nvar x\nminimize x\n",
                f"var {word}\nminimize 1\n",
                f"var x\nminimize x\nsubject to\n  {word}: x >= 0\n"):
        with pytest.raises(symift.SymiftError) as info:
            symift.parse(src)
        assert f"'{word}' is a function" in info.value.message


def test_names_that_merely_contain_a_keyword_are_fine():
    p = symift.parse("param dims\nparam pdx\nparam sum_\nvar minimizer\nminimize minimizer * dims * pdx * sum_\n")
    assert [q.name for q in p.params] == ["dims", "pdx", "sum_"]
    assert p.variables[0].name == "minimizer"


def test_parse_rejects_bytes():
    with pytest.raises(TypeError):
        symift.parse(b"var x\nminimize x\n")


def test_load_accepts_str_and_path(tmp_path):
    f = tmp_path / "p.ift"
    f.write_text("var x\nminimize x^2\n", encoding="utf-8")
    assert symift.load(str(f)) == symift.load(f) == symift.parse("var x\nminimize x^2\n")


# --------------------------------------------------------------------------- packaging
@pytest.mark.slow
def test_the_grammar_ships_inside_the_wheel(tmp_path):
    out = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=False, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("symift-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "symift/grammar/symift.lark" in names
        assert zf.read("symift/grammar/symift.lark").decode() == (ROOT / "grammar" / "symift.lark").read_text()
        zf.extractall(tmp_path / "site")
    # the unpacked wheel, first on the path, finds its own grammar (not the checkout's)
    probe = ("import symift, symift.language.parse as P; from importlib import resources; "
             "print(symift.__file__); "
             "print(resources.files('symift').joinpath('grammar/symift.lark').is_file()); "
             "print(symift.load(r'%s').kind)" % (ROOT / "examples" / "softmax.ift"))
    run = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    where, packaged, kind = run.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "site")
    assert packaged == "True"
    assert kind == "optimization"


def test_byte_order_mark_is_ignored(tmp_path):
    f = tmp_path / "bom.ift"
    f.write_bytes("\ufeffvar x\nminimize x^2\n".encode("utf-8"))
    assert symift.load(f).variables[0].name == "x"
