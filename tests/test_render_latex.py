"""LaTeX: golden strings for the printer, the derivation document, and real pdflatex compiles.

The compile tests need pdflatex (and pdftoppm for the rendered page).  They are skipped only on a
developer's machine without them; where the environment variable CI is set, a missing tool is a
failure, so CI always compiles every example.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp
from helpers import COUPLED
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

import symift
from symift.errors import LatexCompileError, ProblemError, UnsupportedError
from symift.render.latex import Document, ModelLatexPrinter, compile_pdf, latex, log_excerpt, symbol_name, text
from symift.symbolic.expr import Scalar

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.ift"))
n, m = sp.symbols("n m", integer=True, positive=True)
z, s, v = (sp.MatrixSymbol(x, n, 1) for x in "zsv")
Q, A = sp.MatrixSymbol("Q", n, n), sp.MatrixSymbol("A", m, n)
ones, one_row = sp.OneMatrix(n, 1), sp.OneMatrix(1, n)

#: What must never reach a document: sympy class names and internals.
INTERNALS = ("DiagMatrix", "OneMatrix", r"\mapsto", r"\operatorname{Sum}", "Lambda", "_d", "Dummy", "Scalar",
             "MatMul", "MatAdd", "Hadamard", "Identity", "ZeroMatrix", "Inverse", "Transpose", r"\mathtt",
             "**", "lam ", "lamda", r"\text{\textbackslash", "@M@", "@P@", "@b@")


def derive(name):
    return symift.derive(symift.load(ROOT / "examples" / f"{name}.ift"))


def tool(name):
    """The path of an external tool; skip without it locally, fail without it in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (see .ci/run)")
        pytest.skip(f"{name} is not installed")
    return path


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "symift.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, check=False)


# --------------------------------------------------------------------------- names
@pytest.mark.parametrize("name, expected", [
    ("theta", r"\theta"), ("lam", r"\lambda"), ("lamda", r"\lambda"), ("lambda", r"\lambda"), ("nu", r"\nu"),
    ("mu", r"\mu"), ("Lam", r"\Lambda"), ("x", "x"), ("x1", "x_{1}"), ("nu1", r"\nu_{1}"), ("lam2", r"\lambda_{2}"),
    ("x_max", r"x_{\mathrm{max}}"), ("s_lam", r"s_{\lambda}"), ("s_", "s'"), ("lam1_", r"\lambda_{1}'"),
    ("step", r"\mathit{step}"), ("_x", r"\mathit{\_x}"),
])
def test_symbol_names(name, expected):
    assert symbol_name(name) == expected


def test_greek_names_as_symbols_and_matrix_symbols():
    assert latex(sp.Symbol("lam")) == r"\lambda"
    assert latex(sp.MatrixSymbol("lam", n, 1)) == r"\lambda"
    assert latex(sp.MatrixSymbol("theta", n, 1).T) == r"\theta^{\top}"


def test_direction_symbols():
    dQ = sp.MatrixSymbol("dQ", n, n)
    assert latex(dQ, directions={"dQ"}) == r"\mathrm{d}Q"
    assert latex(sp.MatMul(dQ, z), directions={"dQ"}) == r"\mathrm{d}Q z"
    assert latex(dQ) == r"\mathit{dQ}"  # a user's name 'dQ' is not a direction


# --------------------------------------------------------------------------- golden strings, one per construct
@pytest.mark.parametrize("expr, expected", [
    (z.T, r"z^{\top}"),
    (sp.Transpose(sp.MatMul(A, z)), r"\left(A z\right)^{\top}"),
    (sp.Transpose(sp.Inverse(Q)), r"Q^{-\top}"),
    (sp.Inverse(Q), r"Q^{-1}"),
    (sp.Inverse(sp.MatMul(A, sp.Inverse(Q), A.T)), r"\left(A Q^{-1} A^{\top}\right)^{-1}"),
    (sp.Inverse(sp.MatrixSymbol("s_", n, n)), r"{s'}^{-1}"),
    (sp.DiagMatrix(z), r"\operatorname{diag}(z)"),
    (sp.DiagMatrix(sp.HadamardPower(z, -1)), r"\operatorname{diag}(z)^{-1}"),
    (sp.DiagMatrix(sp.MatAdd(2 * s, -ones)), r"\operatorname{diag}\left(2 s - \mathbf{1}_{n}\right)"),
    (ones, r"\mathbf{1}_{n}"),
    (one_row, r"\mathbf{1}_{n}^{\top}"),
    (ones.T, r"\mathbf{1}_{n}^{\top}"),
    (sp.OneMatrix(m, n), r"\mathbf{1}_{m \times n}"),
    (sp.Identity(n), r"I_{n}"),
    (sp.ZeroMatrix(n, 1), "0"),
    (sp.HadamardProduct(z, v), r"z \odot v"),
    (sp.HadamardProduct(z, sp.MatAdd(v, -s)), r"z \odot \left(v - s\right)"),
    (sp.HadamardProduct(sp.MatrixSymbol("lam", n, 1), sp.MatMul(-1, z)), r"\lambda \odot \left(- z\right)"),
    (sp.HadamardPower(z, 2), r"z^{\circ 2}"),
    (sp.HadamardPower(z, -1), r"z^{\circ -1}"),
    (sp.HadamardPower(sp.MatAdd(z, v), sp.Rational(1, 2)), r"\left(z + v\right)^{\circ \frac{1}{2}}"),
    (z.applyfunc(sp.log), r"\log(z)"),
    (z.applyfunc(sp.exp), r"\exp(z)"),
    (z.applyfunc(sp.tanh), r"\tanh(z)"),
    (z.applyfunc(sp.sqrt), r"\sqrt{z}"),
    (z.applyfunc(sp.Abs), r"\lvert z \rvert"),
    (z.applyfunc(sp.sinh), r"\sinh(z)"),
    (z.applyfunc(sp.sign), r"\operatorname{sign}(z)"),
    (sp.sign(sp.Symbol("x")), r"\operatorname{sign}\left(x\right)"),
    (sp.MatAdd(z, -v).applyfunc(sp.log), r"\log\left(z - v\right)"),
    (sp.HadamardProduct(z, z.applyfunc(sp.log)), r"z \odot \log(z)"),
    (sp.MatPow(Q, 2), r"Q^{2}"),
    (Scalar(sp.MatMul(one_row, z)), r"\mathbf{1}_{n}^{\top} z"),
    (Scalar(sp.MatMul(z.T, Q, z)) / 2, r"\frac{z^{\top} Q z}{2}"),
    (sp.Symbol("nu") * (Scalar(sp.MatMul(one_row, z)) - 1), r"\nu \left(\mathbf{1}_{n}^{\top} z - 1\right)"),
    (Scalar(sp.MatMul(z.T, z)) ** 2, r"\left(z^{\top} z\right)^{2}"),
    (sp.sqrt(Scalar(sp.MatMul(z.T, z))), r"\sqrt{z^{\top} z}"),
    (Scalar(sp.MatMul(one_row, z)) * Scalar(sp.MatMul(one_row, s)),
     r"\left(\mathbf{1}_{n}^{\top} s\right) \mathbf{1}_{n}^{\top} z"),
    (sp.MatMul(z, z.T), r"z z^{\top}"),
    (sp.MatMul(-1, Q, z), r"- Q z"),
    (sp.MatMul(sp.Rational(1, 2), Q, z), r"\frac{1}{2} Q z"),
    (sp.MatMul(sp.Symbol("nu") + 1, ones), r"\left(\nu + 1\right) \mathbf{1}_{n}"),
    (sp.MatMul(sp.MatrixSymbol("lam", n, 1).T, sp.MatMul(-1, z)), r"\lambda^{\top} \left(- z\right)"),
    (sp.MatMul(sp.MatAdd(z.T, -v.T), sp.MatAdd(z, -v)), r"\left(z^{\top} - v^{\top}\right) \left(z - v\right)"),
    (sp.MatAdd(sp.DiagMatrix(z), -sp.MatMul(z, z.T)), r"\operatorname{diag}(z) - z z^{\top}"),
    (sp.MatAdd(-sp.MatMul(z, z.T), sp.DiagMatrix(z)), r"\operatorname{diag}(z) - z z^{\top}"),
    (sp.MatAdd(sp.MatMul(-1 / Scalar(sp.MatMul(one_row, s)), s, s.T), sp.DiagMatrix(s)),
     r"\operatorname{diag}(s) - \frac{s s^{\top}}{\mathbf{1}_{n}^{\top} s}"),
    (sp.MatAdd(sp.MatMul(-1, sp.Inverse(Q)), sp.MatMul(sp.Inverse(Q), A.T, sp.Inverse(sp.MatMul(A, sp.Inverse(Q), A.T)),
                                                     A, sp.Inverse(Q))),
     r"Q^{-1} A^{\top} \left(A Q^{-1} A^{\top}\right)^{-1} A Q^{-1} - Q^{-1}"),
    (sp.MatAdd(sp.MatMul(sp.Symbol("lam"), sp.Identity(n)), sp.MatMul(Q.T, Q)), r"\lambda I_{n} + Q^{\top} Q"),
    (-sp.Symbol("theta") / sp.Symbol("x"), r"- \frac{\theta}{x}"),
    (1 / (sp.sin(sp.Symbol("x")) + 1), r"\frac{1}{\sin {x} + 1}"),
])
def test_printer_golden(expr, expected):
    assert latex(expr) == expected


@pytest.mark.parametrize("expr", [
    sp.Sum(sp.Symbol("i"), (sp.Symbol("i"), 1, n)),
    sp.Dummy("d"),
    sp.Lambda(sp.Symbol("t"), sp.Symbol("t") ** 2),
    sp.Trace(Q),
    sp.oo,
    sp.zoo,
    sp.Symbol("x") + sp.Dummy("r"),
    ElementwiseApplyFunction(sp.Lambda(sp.Symbol("t"), sp.Symbol("t") ** 2 + 1), z),
    sp.KroneckerDelta(sp.Symbol("i"), sp.Symbol("j")),
])
def test_printer_refuses_what_it_does_not_know(expr):
    with pytest.raises(UnsupportedError, match="no LaTeX form"):
        latex(expr)


# --------------------------------------------------------------------------- the problem as stated
def test_model_printer_keeps_the_users_expressions():
    def printed(name):
        p = symift.load(ROOT / "examples" / f"{name}.ift")
        return ModelLatexPrinter(p).doprint(p.objective.expr)

    assert printed("softmax") == r"\theta^{\top} z + H(z)"
    assert printed("ridge") == r"0.5 \lVert X w - y \rVert_{2}^{2} + 0.5 \lambda \lVert w \rVert_{2}^{2}"
    assert printed("eqqp") == r"0.5 z^{\top} Q z + q^{\top} z"


def test_model_printer_operators():
    p = symift.parse("dim n\nparam a[n]\nparam c\nparam X[n, n]\nvar x[n]\n"
                     "minimize sum(exp(x - a)) + 2 * -c + 1e-3 * sumsq(x) + norm1(x / a) + sum(x^2) "
                     "+ (x.T @ a)^2 + 2 * 3 + logsumexp(a * x) - c^2 / (2 * c) + sumsq(X) + sum(X @ x) "
                     "+ sqrt(c) + norm2(abs(x))\n")
    assert ModelLatexPrinter(p).doprint(p.objective.expr) == (
        r"\mathbf{1}_{n}^{\top} \exp\left(x - a\right) + 2 \left(-c\right) + 10^{-3} \lVert x \rVert_{2}^{2} "
        r"+ \lVert x \oslash a \rVert_{1} + \mathbf{1}_{n}^{\top} x^{\circ 2} + \left(x^{\top} a\right)^{2} "
        r"+ 2 \cdot 3 + \operatorname{logsumexp}\left(a \odot x\right) - \frac{c^{2}}{2 c} "
        r"+ \lVert X \rVert_{F}^{2} + \mathbf{1}_{n}^{\top} X x + \sqrt{c} + \lVert \lvert x \rvert \rVert_{2}")


def test_text_escapes_and_stays_ascii():
    assert text("a_b & 50% {x} ~ #1 $") == r"a\_b \& 50\% \{x\} \textasciitilde{} \#1 \$"
    assert text("g = −z ≤ 0, ∂F/∂x, zᵀ, Q⁻¹") == r"g = -z $\le$ 0, $\partial$F/$\partial$x, z$^{\top}$, Q$^{-1}$"
    assert text("régression 中").isascii()


# --------------------------------------------------------------------------- the document
@pytest.fixture(scope="module")
def documents():
    return {p.stem: derive(p.stem).to_latex() for p in EXAMPLES}


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_document_is_complete_and_free_of_internals(documents, name):
    doc = documents[name]
    assert doc.startswith(r"\documentclass") and doc.rstrip().endswith(r"\end{document}")
    assert doc.isascii()
    for internal in INTERNALS:
        assert internal not in doc, (name, internal)
    headings = re.findall(r"^\\section\{(.*)\}$", doc, re.MULTILINE)
    expected = ["The problem", "Conventions and the Lagrangian", r"The system $F(x, \theta) = 0$",
                "The implicit function theorem", "The Jacobians of $F$", "Block elimination", "Results"]
    root = symift.load(ROOT / "examples" / f"{name}.ift").kind == "root"
    if name in COUPLED:  # no block elimination: the tangent system is the result
        expected[4:] = ["The tangent system"]
    if root:  # a 'solve' block: no Lagrangian, no optimal value
        expected.remove("Conventions and the Lagrangian")
    else:
        expected.append("The optimal value")
    assert headings == expected
    assert doc.count(r"\begin{") == doc.count(r"\end{")
    assert r"\begin{bmatrix}" in doc or root or name in ("ridge", "sigmoid")  # one unknown, one block


def test_softmax_reads_like_the_hand_derivation(documents):
    doc = documents["softmax"]
    assert r"\underset{z}{\text{maximize}} & \theta^{\top} z + H(z)" in doc
    assert "minimizes its negative" in doc
    assert r"L(z, \nu, \lambda; \theta) &= \mathbf{1}_{n}^{\top} \left(z \odot \log(z)\right) - \theta^{\top} z" \
           r" + \nu \left(\mathbf{1}_{n}^{\top} z - 1\right) + \lambda^{\top} \left(- z\right)" in doc
    assert r"\text{complementary slackness ($\lambda$)}" in doc
    assert (r"\begin{bmatrix} \operatorname{diag}(z)^{-1} & \mathbf{1}_{n} \\ "
            r"\mathbf{1}_{n}^{\top} & 0 \end{bmatrix}") in doc
    # the Schur complement, then the fact that simplifies it
    assert (r"M_{2,2} - M_{2,1} P_{1}^{-1} M_{1,2} &= - \mathbf{1}_{n}^{\top} \operatorname{diag}(z) \mathbf{1}_{n}"
            r" = - \mathbf{1}_{n}^{\top} z = - 1") in doc
    assert r"since \mbox{$\mathbf{1}_{n}^{\top} z = 1$ (primal feasibility)}" in doc
    assert r"\boxed{\operatorname{diag}(z) - z z^{\top}}" in doc
    assert r"the constraint $z \geq 0$ is inactive".lower() in doc.lower()


def test_sparsemax_states_the_indicator_and_its_fact(documents):
    doc = documents["sparsemax"]
    assert r"$s = \mathbb{I}[g_{\lambda} < 0] = \mathbb{I}[z > 0] \in \{0, 1\}^{n}$" in doc
    assert r"s \odot s = s" in doc
    assert r"\mathbf{1}_{n}^{\top} s \neq 0" in doc
    assert r"\operatorname{diag}(s) - \frac{s s^{\top}}{\mathbf{1}_{n}^{\top} s}" in doc
    assert "strict complementarity" in doc


def test_matrix_parameters_are_directional_and_schur_complements_named(documents):
    doc = documents["eqqp"]
    assert r"\frac{\partial F}{\partial Q}[\mathrm{d}Q] = \begin{bmatrix} \mathrm{d}Q z \\ 0 \end{bmatrix}" in doc
    assert r"S_{1} &= A Q^{-1} A^{\top}" in doc
    assert r"\boxed{\frac{\partial z}{\partial b} = Q^{-1} A^{\top} \left(A Q^{-1} A^{\top}\right)^{-1}}" in doc
    assert r"$Q^{\top} = Q$ (symmetric)" in doc
    # b is a parameter here, so the right-hand side takes another letter
    assert r"The right-hand side is $r = -\partial F / \partial b$" in doc and "$b = -" not in doc
    ridge = documents["ridge"]
    assert r"\left(\lambda I_{n} + X^{\top} X\right)^{-1} X^{\top}" in ridge
    assert r"\frac{\partial w}{\partial X}[\mathrm{d}X]" in ridge


def test_root_problems(documents):
    assert r"\text{solve for } x: & \theta^{2} + x^{2} = 1" in documents["circle"]
    assert r"\frac{- 2 \theta}{2 x}" in documents["circle"]
    assert r"\boxed{- \frac{\theta}{x}}" in documents["circle"]
    assert r"\sin {x} + 1 \neq 0" in documents["fixed_point"]


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES if p.stem not in COUPLED])
def test_the_replayed_elimination_is_the_derivation(name):
    """The document's elimination, replayed step by step, ends in exactly d.jacobian()."""
    d = derive(name)
    doc = Document(d)
    doc.render()
    for p in d.parameters:
        solution = doc.traces[p].solution
        for var, lin in solution.items():
            assert d.analysis.alg.to_sympy(lin) == d.jacobian(var, p, expand=True), (name, var, p)


def test_facts_are_cited_whatever_was_computed_first():
    d = derive("softmax")
    assert d.ift.holds  # the report consumes 1ᵀz = 1 before the steps are asked for
    before = list(d.facts)
    doc = d.to_latex()
    assert r"since \mbox{$\mathbf{1}_{n}^{\top} z = 1$ (primal feasibility)}" in doc
    assert d.facts == before  # writing the document leaves the derivation as it was


def test_repr_latex_renders_the_results():
    out = derive("softmax")._repr_latex_()
    assert out.startswith("$$") and out.endswith("$$")
    assert r"\frac{\partial z}{\partial \theta} &= \operatorname{diag}(z) - z z^{\top}" in out
    big = derive("optnet_qp")._repr_latex_()
    assert r"S_{2} &=" in big and r"\\" in big
    for internal in INTERNALS:
        assert internal not in big


def test_filters_and_names_are_checked():
    d = derive("eqqp")
    doc = d.to_latex(wrt=["z"], params=["b"])
    assert r"With respect to $b$" in doc and r"With respect to $Q$" not in doc
    with pytest.raises(ProblemError, match="not a parameter"):
        d.to_latex(params=["nope"])
    with pytest.raises(ProblemError, match="not a variable"):
        d.to_latex(wrt=["nope"])


def test_an_inactive_multiplier_can_be_asked_for():
    doc = derive("softmax").to_latex(wrt=["z", "lam"])
    assert r"\frac{\partial \lambda}{\partial \theta} &= 0" in doc and "(an inactive multiplier)" in doc


def test_a_failing_ift_is_written_up_not_hidden():
    d = symift.derive(symift.parse("param theta\nvar x\nvar y\nsolve\n x + y == theta\n 2*x + 2*y == 1\n"))
    doc = d.to_latex()
    assert r"\textbf{fails}" in doc and "singular" in doc and "There is no Jacobian" in doc
    assert "does not apply" in d._repr_latex_()


def test_a_problem_without_parameters():
    d = symift.derive(symift.parse("var x\nminimize x^2 + x\n"))
    doc = d.to_latex()
    assert "no parameters" in doc and r"\end{document}" in doc
    assert "nothing to differentiate" in d._repr_latex_()


#: Every elementwise function and reduction, an equality and an inequality with an indicator.
EVERYTHING = """dim n
param a[n]
param c > 0
var x[n] > 0
var t
minimize sum(exp(x)) + sum(sin(x)) + sum(tanh(x)) + sum(sqrt(x)) + dot(a, x) + logsumexp(x) + c * t^2 + t * sum(log(x))
subject to
    sum(x) + t == 1
    x <= 10
"""


def test_every_construct_prints_and_long_lines_break(tmp_path):
    d = symift.derive(symift.parse(EVERYTHING, "everything.ift"))
    doc = d.to_latex()
    for internal in INTERNALS:
        assert internal not in doc, internal
    assert r"\sinh(x)" in doc and r"\operatorname{logsumexp}(x)" in doc and r"\lambda_{1,i}" in doc
    assert r"&\quad" in doc and "where" in doc  # a long sum broken, a wide block named
    tool("pdflatex")
    tex = tmp_path / "everything.tex"
    tex.write_text(doc)
    assert compile_pdf(tex).exists()


# --------------------------------------------------------------------------- pdflatex
@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_every_example_compiles(documents, name, tmp_path):
    tool("pdflatex")
    tex = tmp_path / f"{name}.tex"
    tex.write_text(documents[name])
    pdf = compile_pdf(tex)
    assert pdf == tmp_path / f"{name}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")


def test_cli_pdf_writes_and_renders(tmp_path):
    tool("pdflatex")
    pdftoppm = tool("pdftoppm")
    out = tmp_path / "soft max.tex"  # a space in the name: compiled in a temporary directory
    r = run("derive", ROOT / "examples" / "softmax.ift", "--latex", out, "--pdf")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"wrote {out}", f"wrote {out.with_suffix('.pdf')}"]
    pdf = out.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", pdf, tmp_path / "page"],
                   check=True, timeout=60)
    png = (tmp_path / "page.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (425, 550)  # US letter at 50 dpi


def test_cli_latex_without_pdf(tmp_path):
    out = tmp_path / "ridge.tex"
    r = run("derive", ROOT / "examples" / "ridge.ift", "--latex", out, "--param", "y")
    assert r.returncode == 0, r.stderr
    doc = out.read_text()
    assert r"With respect to $y$" in doc and r"With respect to $X$" not in doc
    assert not out.with_suffix(".pdf").exists()


def test_a_failed_compile_reports_the_log(tmp_path):
    tool("pdflatex")
    bad = tmp_path / "bad.tex"
    bad.write_text("\\documentclass{article}\n\\begin{document}\n$\\nosuchmacro$\n\\end{document}\n")
    with pytest.raises(LatexCompileError) as info:
        compile_pdf(bad)
    message = info.value.message
    assert "pdflatex failed on" in message and "Undefined control sequence" in message
    assert re.search(r"l\.3 ", message)
    assert info.value.exit_status == 1


def test_log_excerpt_without_error_lines():
    assert log_excerpt("a\n\nb\nc") == "    a\n    b\n    c"


def _fake_tools(tmp_path, script):
    """A PATH holding only a fake 'pdflatex' (script) — or none when script is None."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    if script is not None:
        exe = bin_ / "pdflatex"
        exe.write_text("#!/bin/sh\n" + script)
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return dict(os.environ, PATH=str(bin_))


def test_cli_missing_pdflatex_is_a_clear_error(tmp_path):
    r = run("derive", ROOT / "examples" / "softmax.ift", "--latex", tmp_path / "s.tex", "--pdf",
            env=_fake_tools(tmp_path, None))
    assert r.returncode == 1
    assert "error: pdflatex not found" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "s.tex").exists()


def test_cli_failed_compile_is_exit_1_with_the_log(tmp_path):
    script = ('printf "! Missing \\$ inserted.\\n<inserted text>\\nl.42 x_1\\n" > derivation.log\n'
              'echo "This is a fake pdflatex"\nexit 1\n')
    r = run("derive", ROOT / "examples" / "softmax.ift", "--latex", tmp_path / "s.tex", "--pdf",
            env=_fake_tools(tmp_path, script))
    assert r.returncode == 1, r.stderr
    assert "pdflatex failed on" in r.stderr and "! Missing $ inserted." in r.stderr and "l.42 x_1" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "s.pdf").exists()


def test_cli_bad_input_keeps_the_error_contract(tmp_path):
    f = tmp_path / "bad.ift"
    f.write_text("dim n\nvar z[n]\nminimize sum(z) + thet\n")
    r = run("derive", f, "--latex", tmp_path / "bad.tex", "--pdf")
    assert r.returncode == 2
    assert r.stderr.startswith(f"{f}:3:19: error: unknown name 'thet'")
    assert "Traceback" not in r.stderr and not (tmp_path / "bad.tex").exists()


def test_cli_usage_errors(tmp_path):
    r = run("derive", ROOT / "examples" / "softmax.ift", "--pdf")
    assert r.returncode == 2 and "--pdf needs --latex" in r.stderr
    r = run("derive", ROOT / "examples" / "softmax.ift", "--latex", tmp_path / "no" / "dir" / "x.tex")
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_cli_ift_failure_writes_the_document_and_exits_1(tmp_path):
    f = tmp_path / "singular.ift"
    f.write_text("param theta\nvar x\nvar y\nsolve\n x + y == theta\n 2*x + 2*y == 1\n")
    r = run("derive", f, "--latex", tmp_path / "singular.tex")
    assert r.returncode == 1 and "does not apply" in r.stderr
    assert "There is no Jacobian" in (tmp_path / "singular.tex").read_text()
