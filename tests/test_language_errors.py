"""Bad inputs and the errors they give: one table, looped over by one test.

Each row: (id, source, exception class, message fragment, line, column).  A ``str`` source is
checked through both ``symift.parse`` and ``symift.load``; a ``bytes`` source (binary files) only
through ``symift.load``.  ``SENTINEL`` in a source is replaced by a path that must never be
created: user text is never executed.
"""
from __future__ import annotations

import re
import sys
import time

import pytest

import symift
from symift import (
    DuplicateError,
    EquationCountError,
    ParseError,
    ProblemError,
    ShapeError,
    UnknownNameError,
    UnsupportedError,
)

ERRORS = [
    # ---- syntax
    ("unclosed-paren", "dim n\nvar x[n]\nminimize sum(x\n", ParseError, "expected ')'", 3, 15),
    ("unclosed-paren-at-eof", "var x\nminimize (x + 1", ParseError, "unexpected end of input", 2, 16),
    ("unclosed-paren-before-block", "var x\nminimize (x\nsubject to\n  x >= 0\n", ParseError,
     "unexpected end of line; expected ')'", 2, 12),
    ("extra-close-paren", "var x\nminimize x)\n", ParseError, "unexpected ')'", 2, 11),
    ("greater-than", "var x\nminimize x\nsubject to\n  z > 0\n", ParseError,
     "only '<=', '>=' and '==' relate expressions", 4, 5),
    ("less-than", "var x\nminimize x\nsubject to\n  x < 1\n", ParseError, "unexpected '<'", 4, 5),
    ("single-equals", "var x\nminimize x\nsubject to\n  x = 1\n", ParseError, "unexpected character '='", 4, 5),
    ("chained-relation", "var x\nminimize x\nsubject to\n  0 <= x <= 1\n", ParseError, "unexpected '<='", 4, 10),
    ("modulo", "var x\nminimize x % 2\n", ParseError, "unexpected character '%'", 2, 12),
    ("double-plus", "var x\nminimize x ++\n", ParseError, "unexpected end of line", 2, 14),
    ("dangling-operator", "var x\nminimize x *\nsubject to\n", ParseError, "unexpected end of line", 2, 13),
    ("missing-objective-expr", "var x\nmaximize\n", ParseError, "unexpected end of line", 2, 9),
    ("param-sign-not-zero", "param a > 1\nvar x\nminimize x\n", ParseError, "unexpected '>'", 1, 9),
    ("semicolon", "dim n; var x[n]\n", ParseError, "unexpected character ';'", 1, 6),
    ("two-statements-on-a-line", "var x minimize x\n", ParseError, "unexpected 'minimize'", 1, 7),
    ("three-d-shape", "dim n\nparam a[n, n, n]\nvar x\nminimize x\n", ParseError, "unexpected ','", 2, 13),
    ("empty-shape", "param a[]\nvar x\nminimize x\n", ParseError, "unexpected ']'", 1, 9),
    ("greek-letter", "dim n\nvar x[n]\nminimize θ + sum(x)\n", ParseError, "unexpected character 'θ'", 3, 10),
    ("long-number", "var x\nminimize x * " + "1" * 100 + "\n", ParseError, "number literal too long", 2, 14),
    ("too-deep", "var x\nminimize " + "exp(" * 101 + "x" + ")" * 101 + "\n", ParseError,
     "expression too deep", 2, 14),
    # ---- Python in the file is not the language, and is never run
    ("python-call", 'var x\nminimize __import__("os").system("touch SENTINEL")\n', ParseError,
     "strings are not part of the language", 2, 21),
    ("python-call-alone", '__import__("os").system("touch SENTINEL")\n', ParseError,
     "strings are not part of the language", 1, 12),
    ("python-import", "import os\nvar x\nminimize x\n", ParseError, "unexpected 'os'", 1, 8),
    ("python-attribute", "var x\nminimize x.__class__\n", ParseError, "unexpected character '.'", 2, 11),
    ("python-lambda", "var x\nminimize (lambda: 1)()\n", ParseError, "unexpected ':'", 2, 17),
    ("python-single-quotes", "var x\nminimize 'x'\n", ParseError, "strings are not part of the language", 2, 10),
    # ---- binary and odd files
    ("empty-file", "", ProblemError, "empty problem", 1, 1),
    ("only-comments", "# nothing here\n\n   # really\n", ProblemError, "empty problem", 1, 1),
    ("binary-garbage", b"\x00\xff\xfe\x89PNG\r\n\x1a\n", ParseError, "not UTF-8", 1, 2),
    ("binary-after-text", "var x\n# θθθθ \xff\nminimize x\n".encode().replace(b"\xc3\xbf", b"\xff"),
     ParseError, "not UTF-8", 2, 8),
    ("nul-byte", b"var x\nminimize x\x00\n", ParseError, "unexpected character '\\x00'", 2, 11),
    # ---- names
    ("unknown-name", "dim n\nparam theta[n]\nvar z[n]\nminimize dot(thet, z)\n", UnknownNameError,
     "unknown name 'thet'; did you mean 'theta'?", 4, 14),
    ("unknown-name-no-suggestion", "var x\nminimize x + qqqq\n", UnknownNameError, "unknown name 'qqqq'", 2, 14),
    ("unknown-function", "var x\nminimize lg(x)\n", UnknownNameError, "unknown function 'lg'; did you mean 'log'?",
     2, 10),
    ("python-builtin-is-unknown", "var x\nminimize eval(x)\n", UnknownNameError, "unknown function 'eval'", 2, 10),
    ("function-as-value", "dim n\nvar x[n]\nminimize sum(x) + log\n", UnknownNameError, "'log' is a function",
     3, 19),
    ("variable-called", "dim n\nvar x[n]\nminimize x(1)\n", UnknownNameError, "'x' is not a function", 3, 10),
    ("undeclared-dim", "param theta[k]\nvar x\nminimize x\n", UnknownNameError, "undeclared dim 'k'", 1, 13),
    ("undeclared-dim-suggestion", "dim n\nvar x[nn]\nminimize sum(x)\n", UnknownNameError,
     "did you mean 'n'?", 2, 7),
    ("dim-declared-later", "param a[n]\ndim n\nvar x\nminimize x\n", UnknownNameError, "undeclared dim 'n'", 1, 9),
    ("duplicate", "dim n\nparam a\nvar a\nminimize a\n", DuplicateError, "'a' is already declared (line 2)", 3, 5),
    ("duplicate-dim", "dim n, n\nvar x\nminimize x\n", DuplicateError, "'n' is already declared", 1, 8),
    ("duplicate-label", "var x\nminimize x\nsubject to\n  nu: x >= 0\n  nu: x <= 1\n", DuplicateError,
     "'nu' is already declared (line 4)", 5, 3),
    ("label-is-a-variable", "var x\nminimize x\nsubject to\n  x: x >= 0\n", DuplicateError,
     "'x' is already declared", 4, 3),
    ("function-name-declared", "param sum\nvar x\nminimize x\n", DuplicateError, "'sum' is a function name", 1, 7),
    ("keyword-declared", "param solve\nvar x\nminimize x\n", DuplicateError, "'solve' is a keyword", 1, 7),
    ("attribute-declared", "dim n\nvar pd[n]\nminimize sum(pd)\n", DuplicateError, "'pd' is a keyword", 2, 5),
    # ---- shapes
    ("shape-mismatch", "dim n, m\nparam y[m]\nvar x[n]\nminimize sum(x + y)\n", ShapeError,
     "cannot add vector[n] and vector[m]", 4, 14),
    ("shape-mismatch-matrix-times", "dim n\nparam Q[n, n]\nvar x[n]\nminimize sum(Q * x)\n", ShapeError,
     "use @ for a matrix product", 4, 14),
    ("non-scalar-objective", "dim n\nvar x[n]\nminimize 2 * x\n", ShapeError,
     "the objective must be a scalar, got vector[n]", 3, 10),
    ("matrix-objective", "dim n\nvar x[n]\nminimize x @ x.T\n", ShapeError, "got matrix[n, n]", 3, 10),
    ("wrong-arity", "dim n\nvar x[n]\nminimize dot(x)\n", ShapeError, "dot() takes 2 arguments, got 1", 3, 10),
    ("wrong-arity-too-many", "dim n\nvar x[n]\nminimize sum(x, x)\n", ShapeError, "sum() takes 1 argument, got 2",
     3, 10),
    ("matmul-size-mismatch", "dim n, m\nparam A[m, n]\nvar x[m]\nminimize sum(A @ x)\n", ShapeError,
     "inner sizes n and m differ", 4, 14),
    ("matmul-with-scalar", "dim n\nparam a\nvar x[n]\nminimize sum(a @ x)\n", ShapeError,
     "'@' needs vectors or matrices on both sides", 4, 14),
    ("dot-of-different-sizes", "dim n, m\nparam y[m]\nvar x[n]\nminimize dot(x, y)\n", ShapeError,
     "vector[n] and vector[m]", 4, 10),
    ("quad-not-square", "dim n, m\nparam A[m, n]\nvar x[n]\nminimize quad(x, A)\n", ShapeError,
     "vector[n] and matrix[m, n]", 4, 10),
    ("entropy-of-scalar", "var x\nminimize entropy(x)\n", ShapeError,
     "entropy() needs a vector or matrix, got a scalar", 2, 18),
    ("sum-of-scalar", "var x\nminimize sum(x)\n", ShapeError, "sum() needs a vector or matrix", 2, 14),
    ("vector-exponent", "dim n\nvar x[n]\nparam y[n]\nminimize sum(x ^ y.T)\n", ShapeError,
     "exponent must be a scalar", 4, 18),
    ("pd-on-vector", "dim n\nparam q[n] pd\nvar x[n]\nminimize dot(q, x)\n", ShapeError,
     "'pd' needs a square matrix parameter, but 'q' is vector[n]", 2, 12),
    ("symmetric-not-square", "dim n, m\nparam A[m, n] symmetric\nvar x\nminimize x\n", ShapeError,
     "'symmetric' needs a square matrix", 2, 15),
    ("zero-size", "param a[0]\nvar x\nminimize x\n", ShapeError, "sizes must be positive", 1, 9),
    ("constraint-shape-mismatch", "dim n, m\nparam b[m]\nvar x[n]\nminimize sum(x)\nsubject to\n  x <= b\n",
     ShapeError, "cannot compare vector[n] and vector[m]", 6, 3),
    # ---- problem structure
    ("constraint-outside-block", "var x\nx >= 0\nminimize x\n", ProblemError,
     "must be inside a 'subject to' or 'solve' block", 2, 1),
    ("subject-to-without-objective", "var x\nsubject to\n  x >= 0\n", ProblemError,
     "'subject to' needs a 'minimize' or 'maximize' line before it", 2, 1),
    ("two-objectives", "var x\nminimize x\nmaximize x\n", ProblemError, "one objective (the first is on line 2)",
     3, 1),
    ("declaration-after-objective", "var x\nminimize x\nparam t\n", ProblemError,
     "declarations must come before", 3, 1),
    ("second-block", "var x\nminimize x\nsubject to\n  x >= 0\nsubject to\n  x <= 1\n", ProblemError,
     "a second 'subject to' block", 5, 1),
    ("solve-and-objective", "var x\nminimize x\nsolve\n  x == 1\n", ProblemError, "not both", 3, 1),
    ("inequality-in-solve", "var x\nsolve\n  x <= 1\n", ProblemError, "holds equations (==), not '<='", 3, 3),
    ("variable-ge-zero", "var x >= 0\nminimize x\n", ProblemError, "write the constraint 'x >= 0'", 1, 7),
    ("no-variables", "param t\nminimize t\n", ProblemError, "no variables", 2, 1),
    ("no-problem", "dim n\nvar x[n]\n", ProblemError, "no problem", 2, 1),
    ("wrong-equation-count", "param theta\nvar x\nvar y\nsolve\n  x == theta\n", EquationCountError,
     "1 scalar equation(s) for 2 unknown(s)", 4, 1),
    ("wrong-equation-count-symbolic", "dim n\nparam theta\nvar x[n]\nsolve\n  sum(x) == theta\n",
     EquationCountError, "1 scalar equation(s) for n unknown(s)", 4, 1),
    ("wrong-equation-count-too-many", "param theta\nvar x\nsolve\n  x == theta\n  x^2 == theta\n",
     EquationCountError, "2 scalar equation(s) for 1 unknown(s)", 3, 1),
    ("empty-solve-block", "var x\nsolve\n", EquationCountError, "has no equations", 2, 1),
    ("ones-of-a-vector", "dim n\nparam t[n]\nvar x[n]\nminimize dot(x, ones(t))\n", ShapeError,
     "ones() takes a size", 4, 22),
    ("matrix-constraint", "dim n\nparam Q[n, n]\nvar x[n]\nminimize sum(x)\nsubject to\n  Q >= 0\n",
     UnsupportedError, "matrix-valued constraints are supported on a matrix variable only", 6, 3),
]

RENDERED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): error: (?P<msg>.+)$")


def _check_error(err, file, cls, fragment, line, column, text_line):
    assert type(err) is cls, f"{type(err).__name__}: {err.message}"
    assert isinstance(err, symift.SymiftError)
    assert fragment in err.message
    assert (err.line, err.column) == (line, column), err.render()
    assert err.filename == file
    # lark (or any other) internals never leak into the traceback
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    rendered = err.render()
    head, quoted, caret = rendered.split("\n")
    m = RENDERED.match(head)
    assert m and (m["file"], int(m["line"]), int(m["col"])) == (file, line, column), head
    assert m["msg"] == err.message
    assert re.fullmatch(r" {4} *\^~*", caret), repr(caret)
    assert caret.index("^") == 4 + column - 1
    # the quoted line is the source line (tabs and control characters blanked)
    assert quoted[4:] == "".join(c if c.isprintable() else " " for c in text_line.replace("\t", " "))
    assert str(err) == rendered


@pytest.mark.parametrize("case_id, source, cls, fragment, line, column", ERRORS, ids=[row[0] for row in ERRORS])
def test_bad_input_gives_a_located_error(tmp_path, case_id, source, cls, fragment, line, column):
    sentinel = tmp_path / "pwned"
    if isinstance(source, str):
        source = source.replace("SENTINEL", str(sentinel))
        data = source.encode("utf-8")
    else:
        data = source
    path = tmp_path / f"{case_id}.ift"
    path.write_bytes(data)
    text_line = (data.decode("utf-8", errors="replace").split("\n") + [""])[line - 1].rstrip("\r")

    with pytest.raises(symift.SymiftError) as info:
        symift.load(path)
    _check_error(info.value, str(path), cls, fragment, line, column, text_line)

    if isinstance(source, str):
        with pytest.raises(symift.SymiftError) as info:
            symift.parse(source, "input.ift")
        _check_error(info.value, "input.ift", cls, fragment, line, column, text_line)
    assert not sentinel.exists(), "user text was executed"


def test_the_table_covers_every_error_class():
    classes = {row[2] for row in ERRORS}
    assert classes == {ParseError, UnknownNameError, DuplicateError, ShapeError, EquationCountError,
                       ProblemError, UnsupportedError}
    assert len({row[0] for row in ERRORS}) == len(ERRORS), "duplicate ids"


def test_python_in_a_file_is_never_executed(tmp_path, monkeypatch):
    sentinel = tmp_path / "FILE"
    monkeypatch.chdir(tmp_path)
    for text in ('__import__("os").system("touch FILE")\n',
                 'var x\nminimize __import__("os").system("touch FILE")\n',
                 "var x\nminimize x\nsubject to\n  __import__(\"os\").system(\"touch FILE\") == 0\n"):
        with pytest.raises(ParseError):
            symift.parse(text)
        (tmp_path / "p.ift").write_text(text)
        with pytest.raises(ParseError):
            symift.load(tmp_path / "p.ift")
        assert not sentinel.exists()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.ift"
    with pytest.raises(symift.SymiftError) as info:
        symift.load(path)
    err = info.value
    assert "cannot read" in err.message and err.exit_status == 2
    assert err.render().startswith(f"{path}: error: cannot read")
    assert "Traceback" not in err.render()


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(symift.SymiftError) as info:
        symift.load(tmp_path)
    assert "cannot read" in info.value.message


def test_exit_statuses():
    assert ParseError("x").exit_status == 2
    assert ShapeError("x").exit_status == 2
    assert UnsupportedError("x").exit_status == 1
    assert symift.MathError("x").exit_status == 1


# --------------------------------------------------------------------------- deep input
DEEP = [
    ("10k-nested-parens", "dim n\nvar x[n]\nminimize " + "(" * 10_000 + "sum(x)" + ")" * 10_000 + "\n"),
    ("50k-term-sum", "var x\nminimize " + " + ".join(["x"] * 50_000) + "\n"),
    ("10k-nested-calls", "var x\nminimize " + "exp(" * 10_000 + "x" + ")" * 10_000 + "\n"),
    ("10k-unary-minus", "var x\nminimize " + "-" * 10_000 + "x\n"),
    ("10k-unary-plus", "var x\nminimize " + "+" * 10_000 + "x\n"),
    ("10k-power-tower", "var x\nminimize " + "x^" * 10_000 + "x\n"),
    ("10k-transposes", "dim n\nvar x[n]\nminimize sum(x" + ".T" * 10_000 + ")\n"),
    ("10k-right-nested", "var x\nminimize " + "x - (" * 10_000 + "x" + ")" * 10_000 + "\n"),
    ("deep-in-constraint", "var x\nminimize x\nsubject to\n  " + "(" * 5_000 + "x" + " + x" * 20_000
     + ")" * 5_000 + " <= 1\n"),
    ("deep-in-solve", "var x\nsolve\n  x == " + "cos(" * 10_000 + "x" + ")" * 10_000 + "\n"),
    ("10k-unclosed-parens", "var x\nminimize " + "(" * 10_000 + "x\n"),
    ("10k-lines", "var x\n" + "# filler\n" * 10_000 + "minimize " + "\n".join(["x +"] * 10_000) + " x\n"),
]


@pytest.mark.parametrize("case_id, source", DEEP, ids=[d[0] for d in DEEP])
def test_deep_input_gives_a_result_or_an_error_never_recursion(case_id, source):
    start = time.perf_counter()
    limit = sys.getrecursionlimit()
    try:
        problem = symift.parse(source, "deep.ift")
    except symift.SymiftError as exc:
        rendered = exc.render()
        assert RENDERED.match(rendered.split("\n")[0]), rendered[:200]
    except RecursionError:  # pragma: no cover - the point of the test
        pytest.fail("RecursionError on deep input")
    else:
        assert problem.kind in ("optimization", "root")
        if problem.objective is not None:
            assert problem.shape_of(problem.objective.expr) == ()
    assert sys.getrecursionlimit() == limit
    assert time.perf_counter() - start < 10, "deep input took too long"


def test_nesting_just_under_the_limit_is_accepted():
    from symift.language.parse import MAX_DEPTH

    ok = "var x\nminimize " + "exp(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1) + "\n"
    assert symift.parse(ok).objective is not None
    with pytest.raises(ParseError, match="expression too deep"):
        symift.parse("var x\nminimize " + "exp(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH + "\n")


def test_a_huge_file_is_refused_quickly():
    from symift.language.parse import MAX_CHARS

    start = time.perf_counter()
    with pytest.raises(ParseError, match="too large"):
        symift.parse("var x\nminimize x\n" + "#" * MAX_CHARS)
    assert time.perf_counter() - start < 1
