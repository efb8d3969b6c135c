"""LaTeX: a sympy ``LatexPrinter`` for symift's vocabulary, and the derivation as a document.

The printer knows every class a derivation emits and nothing else: ``diag(z)`` is
``\\operatorname{diag}(z)``, ``OneMatrix`` is ``\\mathbf{1}_n``, ``lam`` is ``\\lambda``, the
direction ``dQ`` of a matrix parameter is ``\\mathrm{d}Q``.  Elementwise operations are written
``u \\odot v`` (product), ``u \\oslash v`` (division) and ``u^{\\circ k}`` (power), and
``\\operatorname{diag}(u^{\\circ k})`` as ``\\operatorname{diag}(u)^{k}``.  Any other sympy class —
``Sum``, ``Lambda``, a ``Dummy`` — raises :class:`~symift.errors.UnsupportedError` instead of
leaking into the output.

:func:`document` writes the whole derivation as it would be done by hand: the problem, the
Lagrangian, the KKT system F(x, θ) = 0, the three conditions of the implicit function theorem,
∂F/∂x and ∂F/∂θ as block matrices, the block elimination with its Schur complements and the
KKT facts each one uses, and dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ for every requested pair.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.latex import LatexPrinter as _SympyLatexPrinter
from sympy.printing.latex import translate
from sympy.printing.precedence import PRECEDENCE, precedence_traditional
from sympy.printing.printer import Printer

from .errors import LatexCompileError, MathError, SymiftError, UnsupportedError
from .expr import Scalar, as_sympy, is_matrix
from .model import Binary, Call, Name, Neg, Number, Problem, ShapeChecker, Transpose

# --------------------------------------------------------------------------- names
_GREEK_ALIASES = {"lam": "lambda", "lamda": "lambda", "Lam": "Lambda", "Lamda": "Lambda"}


def _name_piece(piece: str, subscript: bool) -> str:
    if piece.isdigit():
        return piece
    tex = translate(_GREEK_ALIASES.get(piece, piece))
    if tex == piece and len(piece) > 1:
        return (r"\mathrm{%s}" if subscript else r"\mathit{%s}") % piece
    return tex


def symbol_name(name: str) -> str:
    """The LaTeX of an identifier: ``theta`` → ``\\theta``, ``lam`` → ``\\lambda``, ``x_max`` →
    ``x_{\\mathrm{max}}``, ``nu1`` → ``\\nu_{1}``, ``s_`` → ``s'`` (a trailing ``_`` is a prime)."""
    stem = name.rstrip("_")
    primes = "'" * (len(name) - len(stem))
    if not stem or stem.startswith("_"):
        return r"\mathit{%s}" % name.replace("_", r"\_")
    base, *subs = [p for p in stem.split("_") if p]
    digits = re.fullmatch(r"([A-Za-z]+?)(\d+)", base)
    if digits and not subs:
        base, subs = digits.group(1), [digits.group(2)]
    tex = _name_piece(base, False)
    if subs:
        tex += "_{%s}" % ",".join(_name_piece(s, True) for s in subs)
    return tex + primes


def _index(tex: str, i: str) -> str:
    """``tex`` with the index i: ``\\lambda`` → ``\\lambda_{i}``, ``\\lambda_{1}`` → ``\\lambda_{1,i}``."""
    m = re.fullmatch(r"(.*)_\{([^{}]*)\}('*)", tex)
    if m:
        return "%s_{%s,%s}%s" % (m.group(1), m.group(2), i, m.group(3))
    return "%s_{%s}" % (tex, i)


def _sup(base: str, sup: str) -> str:
    """``base^{sup}``, with braces where base already carries a superscript or prime."""
    grouped = base.startswith(r"\left(") and base.endswith(r"\right)")
    if not grouped and ("^" in base or base.endswith("'")):
        base = "{%s}" % base
    return "%s^{%s}" % (base, sup)


# --------------------------------------------------------------------------- the printer
_FUNCTIONS = {sp.log: r"\log", sp.exp: r"\exp", sp.sin: r"\sin", sp.cos: r"\cos", sp.tan: r"\tan",
              sp.tanh: r"\tanh", sp.sinh: r"\sinh", sp.cosh: r"\cosh", sp.sign: r"\operatorname{sign}"}
_SCALAR_CLASSES = (sp.Symbol, sp.Integer, sp.Rational, sp.Float, sp.Add, sp.Mul, sp.Pow, sp.Abs, Scalar,
                   type(sp.E), *_FUNCTIONS)
_MATRIX_CLASSES = (sp.MatrixSymbol, sp.MatAdd, sp.MatMul, sp.MatPow, sp.Transpose, sp.Inverse, sp.DiagMatrix,
                   sp.OneMatrix, sp.Identity, sp.ZeroMatrix, sp.HadamardProduct, sp.HadamardPower,
                   ElementwiseApplyFunction)
_ALLOWED = _SCALAR_CLASSES + _MATRIX_CLASSES
_NOT_FINITE = (sp.oo, -sp.oo, sp.zoo, sp.nan)
#: Matrix classes that never need parentheses as a factor.
_ATOMIC = (sp.MatrixSymbol, sp.Transpose, sp.Inverse, sp.DiagMatrix, sp.OneMatrix, sp.Identity,
           sp.ZeroMatrix, sp.HadamardPower, ElementwiseApplyFunction, sp.MatPow)


class LatexPrinter(_SympyLatexPrinter):
    """LaTeX for symift's sympy vocabulary (see the module docstring for the notation).

    Settings beyond sympy's: ``directions`` — names of direction symbols (``dQ`` →
    ``\\mathrm{d}Q``).
    """

    _default_settings: ClassVar[dict] = dict(_SympyLatexPrinter._default_settings, directions=(),
                                             fold_func_brackets=True)

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, sp.Basic) and (isinstance(expr, sp.Dummy) or not isinstance(expr, _ALLOWED)
                                           or expr in _NOT_FINITE):
            raise UnsupportedError(f"no LaTeX form for {type(expr).__name__} ({expr}): symift does not "
                                   "print sympy internals")
        return super()._print(expr, **kwargs)

    def emptyPrinter(self, expr):
        raise UnsupportedError(f"no LaTeX form for {type(expr).__name__}")

    # ---- names
    def _name(self, name: str) -> str:
        if name in self._settings["directions"]:
            return r"\mathrm{d}" + symbol_name(name[1:])
        return symbol_name(name)

    def _print_Symbol(self, expr, style="plain"):
        return self._name(expr.name)

    def _print_MatrixSymbol(self, expr):
        return self._name(expr.name)

    # ---- precedence: a 1×1 reduction 1ᵀz binds like a product
    def _precedence(self, item) -> int:
        if isinstance(item, Scalar):
            return self._precedence(item.matrix)
        if isinstance(item, sp.MatAdd):
            return PRECEDENCE["Add"]
        if isinstance(item, (sp.MatMul, sp.HadamardProduct)):
            return PRECEDENCE["Add"] if self._negative(item) else PRECEDENCE["Mul"]
        if isinstance(item, _ATOMIC):
            return PRECEDENCE["Atom"]
        return precedence_traditional(item)

    def parenthesize(self, item, level, is_neg=False, strict=False) -> str:
        prec = self._precedence(item)
        if prec < level or (not strict and prec <= level):
            return self._add_parens(self._print(item))
        return self._print(item)

    def _needs_mul_brackets(self, expr, first=False, last=False) -> bool:
        if isinstance(expr, Scalar):
            return not last or isinstance(expr.matrix, sp.MatAdd)
        return super()._needs_mul_brackets(expr, first=first, last=last)

    def factor(self, item) -> str:
        """``item`` as one factor of a product: sums and negative terms in parentheses."""
        if isinstance(item, (sp.MatAdd, sp.Add, sp.HadamardProduct)) or self._negative(item) or (
                isinstance(item, Scalar) and isinstance(item.matrix, sp.MatAdd)):
            return self._add_parens(self._print(item))
        return self._print(item)

    @staticmethod
    def _negative(item) -> bool:
        if isinstance(item, sp.MatMul):
            return item.as_coeff_mmul()[0].could_extract_minus_sign()
        if isinstance(item, sp.Expr) and not isinstance(item, MatrixExpr):
            return item.could_extract_minus_sign()
        return False

    # ---- reductions
    def _print_sign(self, expr, exp=None):
        tex = r"\operatorname{sign}%s" % self._add_parens(self._print(expr.args[0]))
        return _sup(tex, exp) if exp is not None else tex

    def _print_Scalar(self, expr):
        return self._print(expr.matrix)

    # ---- matrix atoms
    def _print_Identity(self, expr):
        return "I_{%s}" % self._print(expr.rows)

    def _print_ZeroMatrix(self, expr):
        return "0"

    def _print_OneMatrix(self, expr):
        rows, cols = expr.shape
        if cols == 1:
            return r"\mathbf{1}_{%s}" % self._print(rows)
        if rows == 1:
            return r"\mathbf{1}_{%s}^{\top}" % self._print(cols)
        return r"\mathbf{1}_{%s \times %s}" % (self._print(rows), self._print(cols))

    def _print_DiagMatrix(self, expr):
        v = expr.args[0]
        if isinstance(v, sp.HadamardPower) and v.exp.is_Integer:  # diag(u^∘k) = diag(u)^k
            return _sup(r"\operatorname{diag}%s" % self._argument(v.base), self._print(v.exp))
        return r"\operatorname{diag}%s" % self._argument(v)

    def _argument(self, v) -> str:
        tex = self._print(v)
        return "(%s)" % tex if isinstance(v, (sp.MatrixSymbol, sp.OneMatrix)) else self._add_parens(tex)

    def _print_Transpose(self, expr):
        arg = expr.arg
        if isinstance(arg, sp.Inverse) and isinstance(arg.arg, sp.MatrixSymbol):
            return _sup(self._print(arg.arg), r"-\top")
        if isinstance(arg, (sp.MatrixSymbol, sp.OneMatrix, sp.DiagMatrix)):
            return _sup(self._print(arg), r"\top")
        return _sup(self._add_parens(self._print(arg)), r"\top")

    def _print_Inverse(self, expr):
        arg = expr.arg
        if isinstance(arg, sp.Transpose) and isinstance(arg.arg, sp.MatrixSymbol):
            return _sup(self._print(arg.arg), r"-\top")
        if isinstance(arg, (sp.MatrixSymbol, sp.DiagMatrix)):
            return _sup(self._print(arg), "-1")
        return _sup(self._add_parens(self._print(arg)), "-1")

    def _print_MatPow(self, expr):
        base = self._print(expr.base)
        if not isinstance(expr.base, sp.MatrixSymbol):
            base = self._add_parens(base)
        return _sup(base, self._print(expr.exp))

    # ---- elementwise
    def _print_HadamardProduct(self, expr):
        parts = []
        for a in expr.args:
            tex = self._print(a)
            parts.append(tex if isinstance(a, _ATOMIC) and not self._negative(a) else self._add_parens(tex))
        return r" \odot ".join(parts)

    def _print_HadamardPower(self, expr):
        base = self._print(expr.base)
        if not isinstance(expr.base, (sp.MatrixSymbol, sp.OneMatrix)):
            base = self._add_parens(base)
        return _sup(base, r"\circ %s" % self._print(expr.exp))

    def _print_ElementwiseApplyFunction(self, expr):
        body = expr.function.expr
        (var,) = expr.function.variables
        arg = self._print(expr.expr)
        atomic = isinstance(expr.expr, (sp.MatrixSymbol, sp.OneMatrix))
        if isinstance(body, sp.Function) and body.args == (var,) and body.func in _FUNCTIONS:
            return "%s%s" % (_FUNCTIONS[body.func], "(%s)" % arg if atomic else self._add_parens(arg))
        if isinstance(body, sp.Abs) and body.args == (var,):
            return r"\lvert %s \rvert" % arg
        if body == sp.sqrt(var):
            return r"\sqrt{%s}" % arg
        raise UnsupportedError(f"no LaTeX form for the elementwise function {expr.function}")

    # ---- sums and products
    def _print_MatMul(self, expr):
        negative, tex = self.signed(expr)
        return "- " + tex if negative else tex

    def _print_MatAdd(self, expr):
        return join_terms(self.terms(expr))

    def signed(self, expr) -> tuple:
        """(negative, LaTeX of ±expr): the sign of a term pulled out for a sum."""
        if isinstance(expr, sp.MatMul):
            c, mats = expr.as_coeff_mmul()
            factors = list(mats.args) if isinstance(mats, sp.MatMul) else [mats]
            negative = c.could_extract_minus_sign()
            c = -c if negative else c
            body = " ".join(self._matrix_factor(f) for f in factors)
            num, den = sp.fraction(c)
            if den != 1 and not den.is_number:  # c ssᵀ / 1ᵀs
                top = body if num == 1 else "%s %s" % (self._coefficient(num), body)
                return negative, r"\frac{%s}{%s}" % (top, self._print(den))
            return negative, body if c == 1 else "%s %s" % (self._coefficient(c), body)
        if isinstance(expr, sp.Expr) and not isinstance(expr, MatrixExpr) and expr.could_extract_minus_sign():
            return True, self._print(-expr)
        return False, self._print(expr)

    def terms(self, expr) -> list:
        """[(negative, LaTeX)] of the top-level terms of a sum, positive terms first."""
        if isinstance(expr, sp.MatAdd):
            args = _flatten_matadd(expr)
        elif isinstance(expr, sp.Add):
            args = list(expr.as_ordered_terms())
        else:
            return [self.signed(expr)]
        out = [self.signed(a) for a in args]
        if isinstance(expr, sp.MatAdd):
            out = [t for t in out if not t[0]] + [t for t in out if t[0]]
        return out

    def _matrix_factor(self, f) -> str:
        if isinstance(f, (sp.MatAdd, sp.HadamardProduct)) or self._negative(f):
            return self._add_parens(self._print(f))
        return self._print(f)

    def _coefficient(self, c) -> str:
        return self.parenthesize(c, PRECEDENCE["Mul"], strict=True)


def _flatten_matadd(e) -> list:
    out = []
    for a in e.args:
        out.extend(_flatten_matadd(a) if isinstance(a, sp.MatAdd) else [a])
    return out


def join_terms(terms) -> str:
    """``t1 + t2 - t3`` from [(negative, LaTeX)]."""
    out = ""
    for k, (negative, tex) in enumerate(terms):
        if k == 0:
            out = "- " + tex if negative else tex
        else:
            out += (" - " if negative else " + ") + tex
    return out


def latex(expr, **settings) -> str:
    """The LaTeX of a symift expression (see :class:`LatexPrinter`)."""
    return LatexPrinter(settings).doprint(expr)


# --------------------------------------------------------------------------- the problem as stated
_MODEL_FUNCTIONS = {"log": r"\log", "exp": r"\exp", "sin": r"\sin", "cos": r"\cos", "tanh": r"\tanh"}
_ATOM, _UNARY, _SUM, _PRODUCT, _POWER = 100, 3, 1, 2, 4
_MODEL_PRECEDENCE = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "@": _PRODUCT, "^": _POWER}
#: Functions whose definition the document states below the problem.
DEFINITIONS = {
    "entropy": r"H(x) = -\sum_i x_i \log x_i",
    "logsumexp": r"\operatorname{logsumexp}(x) = \log \sum_i \exp(x_i)",
}


class ModelLatexPrinter(Printer):
    """LaTeX of the problem's own expressions (the model tree), as the user wrote them:
    ``dot(theta, z) + entropy(z)`` is θᵀz + H(z), ``sumsq(X @ w - y)`` is ‖Xw − y‖²."""

    printmethod = None

    def __init__(self, problem: Problem):
        super().__init__()
        self.shapes = ShapeChecker(problem)

    def emptyPrinter(self, expr):
        raise UnsupportedError(f"no LaTeX form for {type(expr).__name__}")

    def _scalar(self, e) -> bool:
        return self.shapes.shape(e) == ()

    @staticmethod
    def _precedence(e) -> int:
        if isinstance(e, Binary):
            return _MODEL_PRECEDENCE[e.op]
        if isinstance(e, Neg):
            return _UNARY
        if isinstance(e, Number) and "e" in e.text.lower():
            return _PRODUCT
        return _ATOM

    def terms(self, e) -> list:
        """[(negative, LaTeX)] of a sum as written (a left-to-right chain of + and −)."""
        if isinstance(e, Binary) and e.op in "+-":
            return self.terms(e.left) + [(e.op == "-", self.paren(e.right, _SUM if e.op == "+" else _SUM + 1))]
        return [(False, self._print(e))]

    def paren(self, e, level: int) -> str:
        tex = self._print(e)
        return r"\left(%s\right)" % tex if self._precedence(e) < level else tex

    def _print_Number(self, e):
        mantissa, _, exponent = e.text.lower().partition("e")
        if not exponent:
            return e.text
        power = "10^{%d}" % int(exponent)
        return power if float(mantissa) == 1 else r"%s \cdot %s" % (mantissa, power)

    def _print_Name(self, e):
        return symbol_name(e.id)

    def _print_Neg(self, e):
        return "-" + self.paren(e.operand, _PRODUCT)

    def _print_Transpose(self, e):
        return _sup(self.paren(e.operand, _ATOM), r"\top")

    def _print_Binary(self, e):
        op, p = e.op, _MODEL_PRECEDENCE[e.op]
        if op == "^":
            sup = self._print(e.right)
            return _sup(self.paren(e.left, _ATOM), sup if self._scalar(e.left) else r"\circ " + sup)
        if op == "/" and self._scalar(e.right):
            return r"\frac{%s}{%s}" % (self._print(e.left), self._print(e.right))
        left = self.paren(e.left, p)
        right = self.paren(e.right, p + 1 if op in "-/" else p)
        if op in "+-":
            return "%s %s %s" % (left, op, right)
        if op == "/":
            return r"%s \oslash %s" % (left, right)
        if op == "*" and not self._scalar(e.left) and not self._scalar(e.right):
            return r"%s \odot %s" % (left, right)
        if isinstance(e.right, Neg):
            right = r"\left(%s\right)" % self._print(e.right)
        # juxtaposition, with a dot between two numbers
        sep = r" \cdot " if re.match(r"[\d.]", right) else " "
        return left + sep + right

    def _print_Call(self, e):
        f, args = e.func, e.args
        x = args[0]
        inner = self._print(x)
        call = "(%s)" % inner if isinstance(x, Name) else r"\left(%s\right)" % inner
        if f in _MODEL_FUNCTIONS:
            return _MODEL_FUNCTIONS[f] + call
        if f == "sqrt":
            return r"\sqrt{%s}" % inner
        if f == "abs":
            return r"\lvert %s \rvert" % inner
        if f in ("norm2", "norm1"):
            return r"\lVert %s \rVert_{%s}" % (inner, "2" if f == "norm2" else "1")
        if f == "sumsq":
            return r"\lVert %s \rVert_{%s}^{2}" % (inner, "2" if len(self.shapes.shape(x)) == 1 else "F")
        if f == "dot":
            return r"%s %s" % (_sup(self.paren(x, _ATOM), r"\top"), self.paren(args[1], _PRODUCT + 1))
        if f == "quad":
            return r"%s %s %s" % (_sup(self.paren(x, _ATOM), r"\top"), self.paren(args[1], _ATOM),
                                  self.paren(x, _ATOM))
        if f == "entropy":
            return "H" + call
        if f == "logsumexp":
            return r"\operatorname{logsumexp}" + call
        if f == "sum":
            shape = self.shapes.shape(x)
            ones = r"\mathbf{1}_{%s}^{\top}" % _size(shape[0])
            body = self._print(x) if isinstance(x, Binary) and x.op == "@" else self.paren(x, _PRODUCT + 1)
            return "%s %s" % (ones, body) + (r" \mathbf{1}_{%s}" % _size(shape[1]) if len(shape) == 2 else "")
        raise UnsupportedError(f"no LaTeX form for the function '{f}'")


def _size(s) -> str:
    return symbol_name(s) if isinstance(s, str) else str(s)


def _space(shape) -> str:
    """ℝ, ℝⁿ or ℝ^{m×n} for a model shape."""
    if shape == ():
        return r"\mathbb{R}"
    return r"\mathbb{R}^{%s}" % r" \times ".join(_size(s) for s in shape)


# --------------------------------------------------------------------------- text
_TEXT_SYMBOLS = {"−": "-", "–": "--", "—": "---", "≤": r"$\le$", "≥": r"$\ge$", "≠": r"$\neq$",
                 "∘": r"$\circ$", "ᵀ": r"$^{\top}$", "⁻¹": r"$^{-1}$", "∂": r"$\partial$", "θ": r"$\theta$",
                 "ᵢ": r"$_i$", "∈": r"$\in$", "×": r"$\times$", "²": r"$^2$", "…": r"\dots{}", "’": "'",
                 "‘": "`", "“": "``", "”": "''"}
_TEXT_SPECIALS = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


def text(s: str) -> str:
    """Plain text for LaTeX: specials escaped, a few mathematical characters as math, other
    non-ASCII characters without their accents (or '?'), so the document stays ASCII."""
    s = s.replace("⁻¹", "\0")
    out = []
    for ch in s:
        if ch == "\0":
            out.append(_TEXT_SYMBOLS["⁻¹"])
        elif ch in _TEXT_SPECIALS:
            out.append(_TEXT_SPECIALS[ch])
        elif ch in _TEXT_SYMBOLS:
            out.append(_TEXT_SYMBOLS[ch])
        elif ord(ch) < 128:
            out.append(ch if ch.isprintable() or ch in "\n\t" else " ")
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_ or "?")
    return "".join(out)


def _width(tex: str) -> int:
    """A rough count of the glyphs a piece of math occupies (to decide where lines break)."""
    t = re.sub(r"\\(left|right|operatorname|mathbf|mathrm|mathit|text|quad|qquad)(?![A-Za-z])", "", tex)
    t = re.sub(r"\\[A-Za-z]+", "x", t)
    return len(re.sub(r"[{}^_ \\,;!&]", "", t))


#: Glyphs per displayed line (11pt, 16 cm text width).
LINE = 62


# --------------------------------------------------------------------------- facts, recorded per step
@contextmanager
def _recording(facts, reductions: bool = True):
    """Collect the facts the simplifier uses inside the block (and nothing else); with
    ``reductions=False`` the values of reductions (1ᵀz = 1) are not applied."""
    used, values = facts.used, facts.reductions
    facts.used = []
    if not reductions:
        facts.reductions = {}
    try:
        yield facts.used
    finally:
        facts.used, facts.reductions = used, values


@dataclass
class Update:
    """One block replaced by its Schur complement, M' = M − M_c P⁻¹ M_r, or a right-hand side row."""

    row: str
    unknown: str | None            # None for the right-hand side
    old: object                    # Lin or None (a zero block)
    left: object                   # M[row, pivot column]
    right: object                  # M[pivot row, unknown] (or the pivot row's right-hand side)
    plain: object                  # the result before reduction facts apply (or None)
    new: object                    # the result
    facts: list


@dataclass
class Pivot:
    step: object                   # symift.ift.Step
    lin: object
    inverse: object
    kind: str
    condition: object              # sympy scalar or vector that must be nonzero, or None
    facts: list
    updates: list = field(default_factory=list)
    rhs_updates: list = field(default_factory=list)
    back: tuple = ()               # (row blocks {unknown: Lin}, right-hand side Lin)


@dataclass
class Trace:
    """The block elimination of (∂F/∂x) X = b, replayed from the derivation's steps with the
    facts of every Schur complement recorded where they are used."""

    pivots: list
    solution: dict                 # unknown -> Lin
    back_facts: dict               # unknown -> facts


def replay(analysis, steps, rhs=None) -> Trace:
    """Replay :meth:`symift.ift.Analysis.eliminate` along ``steps`` (the same pivots, the same
    algebra), keeping each intermediate block and the facts it used."""
    alg, facts = analysis.alg, analysis.facts
    M = {k: v for k, v in analysis.blocks.items() if not v.is_zero}
    R = dict(rhs) if rhs is not None else None
    rows = [r.name for r in analysis.rows]
    cols = [u.name for u in analysis.unknowns]
    pivots = []
    for step in steps:
        r, c = step.row, step.unknown
        with _recording(facts) as used:
            inv, kind, cond = alg.inverse(M[r, c])
        pivot = Pivot(step, M[r, c], inv, step.kind, _condition(analysis, kind, cond), list(used))
        others = [c2 for c2 in cols if c2 != c and (r, c2) in M]
        for r2 in rows:
            if r2 == r or (r2, c) not in M:
                continue
            with _recording(facts) as used:
                factor = alg.mul(M[r2, c], inv)
            row_facts = list(used)
            for c2 in others:
                old = M.get((r2, c2))
                new, plain, used = _schur(alg, facts, old, factor, M[r, c2], M[r2, c].shape[0])
                pivot.updates.append(Update(r2, c2, old, M[r2, c], M[r, c2], plain, new,
                                            _unique(row_facts + used)))
                if new.is_zero:
                    M.pop((r2, c2), None)
                else:
                    M[r2, c2] = new
            if R is not None:
                new, plain, used = _schur(alg, facts, R[r2], factor, R[r], R[r2].shape[0])
                if not R[r].is_zero:
                    pivot.rhs_updates.append(Update(r2, None, R[r2], M[r2, c], R[r], plain, new,
                                                    _unique(row_facts + used)))
                R[r2] = new
            del M[r2, c]
        pivot.back = ({c2: M[r, c2] for c2 in others}, R[r] if R is not None else None)
        for c2 in others:
            del M[r, c2]
        del M[r, c]
        rows.remove(r)
        cols.remove(c)
        pivots.append(pivot)
    solution, back_facts = {}, {}
    if R is not None:
        for pivot in reversed(pivots):
            blocks, acc = pivot.back
            with _recording(facts) as used:
                for c2, blk in blocks.items():
                    acc = acc - alg.mul(blk, solution[c2])
                solution[pivot.step.unknown] = alg.mul(pivot.inverse, alg.simplify(acc))
            back_facts[pivot.step.unknown] = list(used)
    return Trace(pivots, solution, back_facts)


def _schur(alg, facts, old, factor, right, rows):
    """old − factor·right, simplified with the facts (and once without the reduction facts)."""
    from .algebra import Lin

    base = old if old is not None else Lin((rows, right.shape[1]))
    with _recording(facts) as used:
        new = alg.simplify(base - alg.mul(factor, right))
    plain = None
    if any(k[0] == "reduction" for k in _keys(facts, used)):
        with _recording(facts, reductions=False):
            plain = alg.simplify(base - alg.mul(factor, right))
    return new, plain, list(used)


def _condition(analysis, kind, cond):
    """What must be nonzero for a scalar or diagonal pivot, as sympy (None when it always is)."""
    if kind not in ("scalar", "diagonal") or analysis.nonzero(cond) is True:
        return None
    alg = analysis.alg
    if kind == "scalar":
        value = alg.scalar_to_sympy(cond)
        number, rest = sp.factor_terms(value).as_coeff_Mul()
        return rest if number != 0 else value
    holders = alg.placeholders_in(as_sympy(cond))
    size = alg.vectors[next(iter(holders))][1] if holders else sp.S.One
    return alg.vector_to_sympy(cond, size)


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def _keys(facts, sentences) -> list:
    by_sentence = {v: k for k, v in facts.cited.items()}
    return [by_sentence.get(s, ("text", s)) for s in sentences]


# --------------------------------------------------------------------------- the document
_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2.5cm]{geometry}
\usepackage{amsmath,amssymb}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
\renewcommand{\labelitemi}{$\bullet$}
"""

_ORDINAL = {1: "first", 2: "second", 3: "third"}


class Document:
    """The derivation of one problem as a LaTeX document (see :func:`document`)."""

    def __init__(self, d, wrt=None, params=None):
        self.d = d
        self.a = d.analysis
        self.alg = self.a.alg
        self.problem = d.problem
        self.kkt = self.a.kkt
        self.facts = self.a.facts
        self.params = list(params or d.parameters)
        self.wrt = list(wrt or [v.name for v in self.problem.variables])
        symbols = d.symbols
        self.directions = {"d" + p for p in d.parameters if _is_matrix_param(symbols[p])}
        self.abbrev: dict = {}        # Inverse(X) -> Inverse(S_k), as the elimination names them
        # the document's own letters (Schur complements S_k, blocks M_ij, pivots P_k, right-hand side b)
        # must not be the name of anything in the problem
        taken = set(symbols) | {x.name for x in self.problem.dims}

        def free(candidates):
            return next((x for x in candidates if not any(n == x or n.startswith(x + "_") for n in taken)), None)

        self.letter = free("SKWN") or "Sigma"
        self.notation = {"@M@": free("MJKN") or r"\mathcal{M}", "@P@": free("PDER") or r"\mathcal{P}",
                         "@b@": free("brce") or r"\mathcal{B}"}
        self.printer = LatexPrinter({"directions": tuple(self.directions)})
        self.model = ModelLatexPrinter(self.problem)
        self.row_index = {r.name: i for i, r in enumerate(self.a.rows, 1)}
        self.col_index = {u.name: j for j, u in enumerate(self.a.unknowns, 1)}
        self.trace = self.failure = None
        self.results, self.traces, self.defined = {}, {}, {}
        self.sections = {}
        self.cited = set()            # facts cited so far in the current section
        self._converted, self._printed = {}, {}

    # ---- printing helpers
    def m(self, e, abbreviate=True) -> str:
        """LaTeX of a sympy expression or a canonical Lin (with the named Schur complements)."""
        e = self._sympy(e, abbreviate)
        if e not in self._printed:
            self._printed[e] = self.printer.doprint(e)
        return self._printed[e]

    def _sympy(self, e, abbreviate=True):
        from .algebra import Lin

        if isinstance(e, Lin):  # converting back to sympy simplifies: once per Lin
            if id(e) not in self._converted:
                self._converted[id(e)] = (e, self.alg.to_sympy(e))
            e = self._converted[id(e)][1]
        return e.xreplace(self.abbrev) if abbreviate and self.abbrev else e

    def terms(self, e, abbreviate=True) -> list:
        return self.printer.terms(self._sympy(e, abbreviate))

    def factor(self, e) -> str:
        return self.printer.factor(self._sympy(e))

    def name(self, n: str) -> str:
        return symbol_name(n)

    def label(self, row: str) -> str:
        """A row or condition name with its symbols in math: 'primal feasibility ($\\nu$)'."""
        m = re.fullmatch(r"(stationarity in )(\w+)", row)
        if m:
            return text(m.group(1)) + "$%s$" % self.name(m.group(2))
        m = re.fullmatch(r"(.*) \((\w+)\)", row)
        if m:
            return text(m.group(1)) + " ($%s$)" % self.name(m.group(2))
        return text(row)

    def derivative(self, var: str, param: str) -> str:
        """∂var/∂param, or ∂var/∂P[dP] (a directional derivative) for a matrix parameter."""
        p = self.d.symbols[param]
        frac = r"\frac{\partial %s}{\partial %s}" % (self.name(var), self.name(param))
        if _is_matrix_param(p):
            return frac + r"[\mathrm{d}%s]" % self.name(param)
        return frac

    def display(self, lhs: str, stages, note: str | None = None) -> str:
        """``lhs = stage₁ = stage₂ …`` as ``align*`` (see :meth:`lines`)."""
        return _align([self.lines(lhs, stages, note)])

    def lines(self, lhs: str, stages, note: str | None = None) -> list:
        """The lines of ``lhs = stage₁ = stage₂ …`` in an ``align*``: stages share a line while they
        fit, and a long sum is broken after whole terms.

        A stage is a sympy expression, a Lin, a list of (negative, LaTeX) terms or LaTeX; a stage
        of LaTeX too wide for a line is left out unless it is the last."""
        lines, line, used = [], lhs + " &= ", _width(lhs)
        started = False
        for k, stage in enumerate(stages):
            terms = stage if isinstance(stage, list) else ([(False, stage)] if isinstance(stage, str)
                                                           else self.terms(stage))
            whole = join_terms(terms)
            if isinstance(stage, str) and _width(whole) > LINE and k < len(stages) - 1:
                continue
            if started and used + _width(whole) + 2 <= LINE:
                line, used = line + " = " + whole, used + _width(whole) + 2
                continue
            if started:
                lines.append(line)
                line, used = " &= ", 0
            chunk = []
            for t in terms:
                if chunk and used + _width(join_terms(chunk + [t])) > LINE:
                    lines.append(line + join_terms(chunk))
                    line, used, chunk = r" &\quad " + ("" if t[0] else "+ "), 6, []
                chunk.append(t)
            line, used, started = line + join_terms(chunk), used + _width(join_terms(chunk)), True
        if note:
            if used + _width(note) + 4 <= LINE:
                line += r" \qquad \text{%s}" % note
            else:
                lines.append(line)
                line = r" &\qquad \text{%s}" % note
        lines.append(line)
        return lines

    def _abbreviated(self, e) -> bool:
        """Does e print with a named Schur complement?"""
        return bool(self.abbrev) and self._sympy(e) != e

    def block_matrix(self, lhs: str, cells, name, tail: str = "") -> str:
        """``lhs = [cells]`` as a display; blocks too wide for the page are named (``name(i, j)``)
        in the matrix and written out below it."""
        tex = [[self.m(c, False) for c in row] for row in cells]
        named = []
        while max(sum(_width(t) + 3 for t in row) for row in tex) + _width(lhs) > LINE:
            i, j = max(((i, j) for i, row in enumerate(tex) for j in range(len(row))),
                       key=lambda ij: _width(tex[ij[0]][ij[1]]))
            if (i, j) in [k for k, _ in named]:
                break
            named.append(((i, j), cells[i][j]))
            tex[i][j] = name(i + 1, j + 1)
        out = "\\[\n%s = %s%s\n\\]" % (lhs, _matrix(tex), tail)
        if named:
            named.sort()
            out += "\nwhere\n" + _align([self.lines(name(i + 1, j + 1), [self._sympy(c, False)])
                                          for (i, j), c in named])
        return out

    def ref(self, name: str) -> str:
        return "Section~%d" % self.sections.get(name, 0)

    def fact(self, key) -> str:
        """A fact the simplifier used, as a sentence with math (for 'since …')."""
        kind, what = key
        if kind == "reduction":
            value = self.facts.reductions.get(what)
            return r"$%s = %s$ (primal feasibility)" % (self.m(self.alg.reductions[what], False), self.m(value))
        if kind == "symmetric":
            return r"$%s^{\top} = %s$ (symmetric)" % (self.m(what), self.m(what))
        if kind == "indicator":
            s = self._vector(what)
            return r"$%s \odot %s = %s$, as $%s \in \{0, 1\}$ elementwise" % (s, s, s, s)
        return text(what)

    def _vector(self, placeholder) -> str:
        vec = self.alg.vectors.get(placeholder, (placeholder,))[0]
        return self.m(vec)

    def since(self, sentences) -> str | None:
        """'since …' for the facts not cited yet in this section (None when there are none)."""
        keys = [k for k in _keys(self.facts, sentences) if k not in self.cited]
        self.cited.update(keys)
        if not keys:
            return None
        return "since " + ", ".join(r"\mbox{%s}" % self.fact(k) for k in keys)

    # ---- the whole document
    def render(self) -> str:
        self._compute()
        title = text(Path(self.problem.source.filename).name)
        order = ["problem"] + (["lagrangian"] if self.problem.kind == "optimization" else []) + [
            "kkt", "ift", "blocks", "elimination", "results"]
        self.sections = {name: k for k, name in enumerate(order, 1)}
        parts = [_PREAMBLE,
                 r"\title{Implicit differentiation of \texttt{%s}}" % title,
                 r"\author{derived by symift}", r"\date{}", r"\begin{document}", r"\maketitle",
                 self.summary()]
        for name in order:
            self.cited = set()
            parts.append(getattr(self, "section_" + name)())
        parts += [r"\end{document}", ""]
        out = "\n\n".join(p for p in parts if p)
        for token, letter in self.notation.items():
            out = out.replace(token, letter)
        return out

    def _compute(self):
        """Everything the document shows, with the facts each piece uses recorded separately.

        The derivation's own results come first (so ``d.facts`` is what they used); what the
        document recomputes afterwards leaves ``d.facts`` as it was."""
        d = self.d
        if d.ift.holds is False:
            self.failure = next(c for c in d.ift.conditions if c.holds is False)
        else:
            for p in self.params:
                for v in self.wrt:
                    self.results[v, p] = d.jacobian(v, p)
        used = list(self.facts.used)
        try:
            self._recompute()
        finally:
            self.facts.used[:] = used

    def _recompute(self):
        d = self.d
        self.rhs = {}
        with _recording(self.facts) as used:
            for p in self.params:
                self.rhs[p] = self.a.rhs(d.symbols[p])[0]
        self.rhs_facts = list(used)
        with _recording(self.facts) as used:
            self._block_lins()
        self.block_facts = list(used)
        if self.failure is not None and self.failure.name.startswith("∂F/∂x"):
            return
        try:
            steps = d.steps(self.params[0]) if self.params else self._zero_steps()
        except MathError as exc:
            self.failure = exc
            return
        self.trace = replay(self.a, steps)
        self._name_schur_complements()
        for p in self.params:
            self.traces[p] = replay(self.a, steps, self.rhs[p])

    def _zero_steps(self):
        from .algebra import Lin

        with _recording(self.facts):
            return self.a.eliminate({r.name: Lin((r.size, sp.S.One)) for r in self.a.rows})[1]

    def _block_lins(self):
        from .calculus import jacobian_lin

        for row in self.a.rows:
            for u in self.a.unknowns:
                self.a.derivative(row, lambda e, x=u.symbol: jacobian_lin(e, x, self.alg), u)

    def _name_schur_complements(self):
        """S_k for the argument of every general inverse, in the order the elimination meets them."""
        k = 0
        self.defined = {}
        for pivot in self.trace.pivots:
            inverse = self.alg.to_sympy(pivot.inverse)
            for node in sp.preorder_traversal(inverse):
                if isinstance(node, sp.Inverse) and not isinstance(node.arg, (sp.MatrixSymbol, sp.Transpose)) \
                        and node not in self.abbrev:
                    k += 1
                    name = "%s_%d" % (self.letter, k)
                    symbol = sp.MatrixSymbol(name, *node.arg.shape)
                    self.defined[pivot.step.unknown] = self.defined.get(pivot.step.unknown, []) + [
                        (symbol, node.arg.xreplace(self.abbrev))]
                    self.abbrev[node] = sp.Inverse(symbol)

    # ---- 0. the result first, as an abstract
    def summary(self) -> str:
        if self.failure is not None:
            return (r"\paragraph{Result.} The implicit function theorem does not apply to this problem: %s "
                    r"(%s)." % (self._failure_text(), self.ref("ift")))
        if not self.params:
            return r"\paragraph{Result.} The problem has no parameters: there is nothing to differentiate."
        shown, later = [], []
        for (v, p), J in self.results.items():
            lhs = self.derivative(v, p)
            if _width(self.m(J, False)) <= 2 * LINE:
                shown.append(self.display(lhs, [self.terms(J, False)]))
            else:
                later.append("$%s$" % lhs)
        out = [r"\paragraph{Result.} Where the conditions of %s hold, the solution " % self.ref("ift") +
               r"is locally a differentiable function of the parameters, with"]
        out += shown
        if later:
            out.append(("and " if shown else "") + ", ".join(later) + " as derived in %s." % self.ref("results"))
        return "\n".join(out)

    def _failure_text(self) -> str:
        if isinstance(self.failure, SymiftError):
            return text(self.failure.message)
        return text(self.failure.reason)

    # ---- 1. the problem as stated
    def section_problem(self) -> str:
        p, mp = self.problem, self.model
        rows = []
        variables = ", ".join(self.name(v.name) for v in p.variables)
        if p.kind == "optimization":
            chunks = _pack(mp.terms(p.objective.expr), LINE - 25)
            rows.append(r"\underset{%s}{\text{%s}} & %s &" % (variables, p.objective.sense, chunks[0]))
            rows += [r" & \quad %s &" % c for c in chunks[1:]]
            for k, c in enumerate(p.constraints):
                rel = {"==": "=", "<=": r"\leq", ">=": r"\geq"}[c.relation]
                rows.append(r"%s & %s %s %s & \text{multiplier } %s \in %s" % (
                    r"\text{subject to}" if k == 0 else "", mp.doprint(c.lhs), rel, mp.doprint(c.rhs),
                    self.name(c.multiplier), _space(c.shape)))
        else:
            for k, e in enumerate(p.equations):
                label = r"\text{(%s)}" % text(e.label) if e.label else ""
                rows.append(r"%s & %s = %s & %s" % (r"\text{solve for } %s:" % variables if k == 0 else "",
                                                    mp.doprint(e.lhs), mp.doprint(e.rhs), label))
        out = [r"\section{The problem}",
               r"As stated in \texttt{%s}:" % text(Path(p.source.filename).name),
               "\\[\n\\begin{array}{r@{\\quad}l@{\\qquad}l}\n" + " \\\\[2pt]\n".join(rows) + "\n\\end{array}\n\\]"]
        used = sorted(f for f in _functions(p) if f in DEFINITIONS)
        if used:
            out.append("Here " + " and ".join("$%s$" % DEFINITIONS[f] for f in used) + ".")
        items = []
        if len(p.dims) == 1:
            items.append(r"size $%s$, a symbolic positive integer;" % self.name(p.dims[0].name))
        elif p.dims:
            items.append(r"sizes $%s$, symbolic positive integers;" % ", ".join(self.name(x.name) for x in p.dims))
        params = []
        for prm in p.params:
            extra = []
            if "pd" in prm.attributes:
                extra.append("symmetric positive definite")
            elif "psd" in prm.attributes:
                extra.append("symmetric positive semidefinite")
            elif "symmetric" in prm.attributes:
                extra.append("symmetric")
            if prm.sign:
                extra.append("$%s %s 0$" % (self.name(prm.name), ">" if prm.sign == ">0" else r"\geq"))
            params.append(r"$%s \in %s$%s" % (self.name(prm.name), _space(prm.shape),
                                             " (%s)" % ", ".join(extra) if extra else ""))
        if params:
            items.append("parameter%s %s;" % ("s" if len(params) > 1 else "", ", ".join(params)))
        variables = []
        for v in p.variables:
            variables.append(r"$%s \in %s$%s" % (self.name(v.name), _space(v.shape), r" with $%s > 0$" %
                                                self.name(v.name) if v.positive else ""))
        items.append("variable%s %s%s;" % ("s" if len(variables) > 1 else "", ", ".join(variables),
                                           ": only strictly positive solutions are considered"
                                           if any(v.positive for v in p.variables) else ""))
        items[-1] = items[-1][:-1] + "."
        out.append("The declarations are\n\\begin{itemize}\n" + "\n".join(r"\item " + i for i in items) + "\n\\end{itemize}")
        return "\n".join(out)

    # ---- 2. conventions and the Lagrangian
    def section_lagrangian(self) -> str:
        p, kkt = self.problem, self.kkt
        primal = [self.name(v.name) for v in p.variables]
        out = [r"\section{Conventions and the Lagrangian}"]
        f = r"f(%s)" % ", ".join(primal)
        if p.objective.sense == "maximize":
            out.append(r"The objective is maximized; as usual, symift minimizes its negative instead,")
        else:
            out.append(r"The objective is")
        out.append(self.display(f, [kkt.objective]))
        forms = []
        if any(c.relation != "==" for c in p.constraints):
            forms.append(r"an inequality $a \leq b$ is written $g = a - b \leq 0$ and $a \geq b$ as "
                         r"$g = b - a \leq 0$")
        if any(c.relation == "==" for c in p.constraints):
            forms.append(r"an equality $a = b$ is written $h = a - b = 0$")
        if forms:
            out.append("By convention, " + "; ".join(forms) + ". Here")
            lines = []
            for m in kkt.multipliers:
                letter = "h" if m.kind == "equality" else "g"
                rel = "=" if m.kind == "equality" else r"\leq"
                lines.append(r"%s_{%s}(%s) &= %s %s 0" % (letter, self.name(m.name), ", ".join(primal),
                                                         self.m(m.function), rel))
            out.append("\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}")
            duals = [r"$%s \in %s$%s" % (self.name(m.name), _space(_model_shape(m.symbol)),
                                         r", $%s \geq 0$" % self.name(m.name) if m.kind == "inequality" else "")
                     for m in kkt.multipliers]
            pieces = [f] + [r"%s^{\top} %s_{%s}" % (self.name(m.name), "h" if m.kind == "equality" else "g",
                                                    self.name(m.name)) if is_matrix(m.symbol)
                            else r"%s\, %s_{%s}" % (self.name(m.name), "h" if m.kind == "equality" else "g",
                                                    self.name(m.name)) for m in kkt.multipliers]
            out.append("With the multipliers %s, the Lagrangian $L = %s$ is" % (", ".join(duals), " + ".join(pieces)))
        else:
            out.append("There are no constraints: the Lagrangian is the objective itself,")
        from .kkt import inner

        terms = self.terms(kkt.objective)
        for m in kkt.multipliers:
            terms.append(self.printer.signed(inner(m.symbol, m.function)))
        args = ", ".join(primal + [self.name(m.name) for m in kkt.multipliers])
        params = ", ".join(self.name(x) for x in self.d.parameters)
        out.append(self.display(r"L(%s%s)" % (args, "; " + params if params else ""), [terms]))
        return "\n".join(out)

    # ---- 3. the KKT system
    def section_kkt(self) -> str:
        out = [r"\section{The system $F(x, \theta) = 0$}"]
        params = ", ".join(self.name(x) for x in self.d.parameters) or r"\theta"
        if self.problem.kind == "optimization":
            lines = []
            for name, (lhs, rel, rhs) in self.d.kkt.items():
                head = r"\nabla_{%s} L = " % self.name(name[len("stationarity in "):]) \
                    if name.startswith("stationarity in ") else ""
                relation = {"=": "=", "≤": r"\leq", "≥": r"\geq"}[rel]
                # a long left-hand side breaks after whole terms (right-aligned continuation lines)
                chunks = _pack(self.terms(lhs, False), LINE - 30 - _width(head))
                chunks[0] = head + chunks[0]
                lines += chunks[:-1]
                lines.append(r"%s &%s %s && \text{%s}" % (chunks[-1], relation, self.m(rhs, False),
                                                          self.label(name)))
            out.append("A solution and its multipliers satisfy the Karush--Kuhn--Tucker conditions")
            out.append("\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}")
            kinds = list(dict.fromkeys(b.kind for b in self.kkt.residual))
            names = {"stationarity": "stationarity", "primal feasibility": "the equality constraints",
                     "complementary slackness": "complementary slackness"}
            listed = [names[k] for k in kinds]
            listed = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
            out.append(r"The equations among them (%s) form the residual $F$, with %s and %s:"
                       % (listed, self._unknowns_text(), self._parameters_text()))
        else:
            out.append(r"The equations are the system itself, with %s and %s:"
                       % (self._unknowns_text(), self._parameters_text()))
        rows = [[b.expr] for b in self.kkt.residual]
        out.append(self.block_matrix("F(x, %s)" % params, rows, lambda i, j: "F_{%d}" % i, " = 0"))
        if len(self.kkt.residual) > 1:
            out.append("(rows: %s)." % "; ".join(self.label(b.name) for b in self.kkt.residual))
        if self.problem.kind == "optimization" and any(m.kind == "inequality" for m in self.kkt.multipliers):
            out.append(r"The inequalities (primal feasibility $g \leq 0$ and dual feasibility) are not part of "
                       r"$F$; they decide which constraints are active at the solution.")
            out += self._active_sets()
        if [u.name for u in self.a.unknowns] != list(self.d.unknowns):
            out.append(r"The unknowns that remain are $x = (%s)$." %
                       ", ".join(self.name(u.name) for u in self.a.unknowns))
        return "\n\n".join(out)

    def _parameters_text(self) -> str:
        names = [self.name(x) for x in self.d.parameters]
        if not names:
            return "no parameters"
        return "the parameter $%s$" % names[0] if len(names) == 1 else "parameters $%s$" % ", ".join(names)

    def _unknowns_text(self) -> str:
        names = [self.name(u) for u in self.d.unknowns]
        return "the unknown $x = %s$" % names[0] if len(names) == 1 else "unknowns $x = (%s)$" % ", ".join(names)

    def _active_sets(self) -> list:
        out = []
        by_name = {m.name: m for m in self.kkt.multipliers}
        signs = [r"$%s > 0$" % self.name(v.name) for v in self.problem.variables if v.positive]
        signs += [r"$%s %s 0$" % (self.name(x.name), ">" if x.sign == ">0" else r"\geq")
                  for x in self.problem.params if x.sign]
        for name in self.a.inactive:
            m = by_name[name]
            c, lam = m.constraint, self.name(name)
            rel = {"<=": r"\leq", ">=": r"\geq"}[c.relation]
            out.append(r"The constraint $%s %s %s$ is inactive: $g_{%s} = %s < 0$ under the declared signs (%s). "
                       r"By complementary slackness $%s = 0$ near the solution, so $%s$ and its complementary "
                       r"slackness row drop out of $F$ (and $\partial %s / \partial \theta = 0$)." % (
                           self.model.doprint(c.lhs), rel, self.model.doprint(c.rhs), lam,
                           self.m(m.function, False), ", ".join(signs), lam, lam, lam))
        for name, (s, size, _) in self.a.indicators.items():
            m = by_name[name]
            lam, g = self.name(name), m.function
            s_tex = self._vector(s) if s in self.alg.vectors else self.m(s)
            simple = ""
            if self.printer._negative(g):
                simple = r" = \mathbb{I}[%s > 0]" % self.m(-g, False)
            vector = is_matrix(m.symbol)
            domain = r"\{0, 1\}^{%s}" % self.m(size) if vector else r"\{0, 1\}"
            si, li = (_index(s_tex, "i"), _index(lam, "i")) if vector else (s_tex, lam)
            gi = "g_i" if vector else "g_{%s}" % lam
            out.append(
                (r"Which of the constraints $g_{%s} = %s \leq 0$ are active depends on the data. " if vector else
                 r"Whether the constraint $g_{%s} = %s \leq 0$ is active depends on the data. ") % (
                    lam, self.m(g, False)) +
                r"Let $%s = \mathbb{I}[g_{%s} < 0]%s \in %s$%s: $%s = 1$ where the constraint is inactive "
                r"(so $%s = 0$) and $%s = 0$ where it is active ($%s = 0$). Under strict complementarity "
                r"($%s > 0$ wherever $%s = 0$), differentiating $%s %s = 0$ gives $\mathrm{d}%s = 0$ where "
                r"the constraint is active and $\mathrm{d}%s = 0$ where it is not: the complementary "
                r"slackness row is divided by $%s$ or by $%s$, and reads "
                r"$(1 - %s)\,\mathrm{d}%s + %s\,\mathrm{d}%s = 0$." % (
                    s_tex, lam, simple, domain, " (elementwise)" if vector else "", si, li, si, gi, li, gi, li, gi,
                    gi, li, li, gi, si, gi, si, li))
        return out

    # ---- 4. the implicit function theorem
    def section_ift(self) -> str:
        ift = self.d.ift
        out = [r"\section{The implicit function theorem}",
               (r"If (i) $F(x^\star, \theta) = 0$ at a solution $x^\star$, (ii) $F$ is continuously "
                r"differentiable near $(x^\star, \theta)$ and (iii) $\partial F / \partial x$ is nonsingular "
                r"there, then near $\theta$ the solution $x^\star(\theta)$ is a continuously differentiable "
                r"function of the parameters, with"),
               (r"\[ \frac{\partial x^\star}{\partial \theta} = -\left(\frac{\partial F}{\partial x}\right)^{-1} "
                r"\frac{\partial F}{\partial \theta}. \]")]
        if self.problem.kind == "root":
            first = "the equations of the problem are $F$ itself."
        else:
            first = ("at every KKT point, since $F$ stacks stationarity, the equality constraints and "
                     "complementary slackness.")
        items = [(ift.solution, first), (ift.smoothness, self._smoothness()),
                 (ift.nonsingularity, self._nonsingularity())]
        lines = []
        for k, (verdict, why) in enumerate(items):
            mark = {True: "holds", False: "fails", None: "holds if"}[verdict.holds]
            lines.append(r"\item[(%s)] \textbf{%s}%s %s" % ("i" * (k + 1), mark, "" if verdict.holds is None
                                                             else ":", why))
        out.append("\\begin{itemize}\n" + "\n".join(lines) + "\n\\end{itemize}")
        assumptions = self._assumptions()
        if assumptions:
            out.append("This rests on: " + "; ".join(assumptions) + ".")
        return "\n".join(out)

    def _smoothness(self) -> str:
        from .derive import _domain_requirements
        from .printing import text as plain

        verdict = self.d.ift.smoothness
        given, required, failed = [], [], []
        seen = set()
        for block in self.kkt.residual:
            for arg, relation, what in _domain_requirements(block.expr):
                key = f"{plain(arg)} {relation} 0" + (" elementwise" if is_matrix(arg) else "")
                if key in seen:
                    continue
                seen.add(key)
                math = "$%s %s 0$%s" % (self.m(arg, False), ">" if relation == ">" else r"\neq",
                                        " elementwise" if is_matrix(arg) else "")
                phrase = "%s needs %s" % (_CONSTRUCT.get(what, text(what)), math)
                if key in verdict.requirements:
                    required.append(math)
                elif verdict.holds is False and key in verdict.reason:
                    failed.append(phrase)
                else:
                    given.append(phrase + ", which the declarations give")
        if failed:
            return "; ".join(failed) + "."
        if required:
            return ", ".join(required) + (" (%s)." % "; ".join(given) if given else ".")
        return ("; ".join(given) + ".") if given else "$F$ is built from smooth functions."

    def _nonsingularity(self) -> str:
        if self.trace is None:
            return self._failure_text() + "."
        parts, conditions = [], []
        for k, pivot in enumerate(self.trace.pivots, 1):
            parts.append(r"%s pivot $@P@_{%d}$ for $%s$" % (_KIND[pivot.kind], k, self.name(pivot.step.unknown)))
            conditions += self._pivot_conditions(k, pivot, define=True)
        head = ("; ".join(conditions) + ". " if conditions else "")
        if len(parts) == 1:
            return head + "The elimination of %s inverts %s%s" % (
                self.ref("elimination"), parts[0], ", which is invertible." if not conditions else ".")
        return head + ("The block elimination of " + self.ref("elimination") + " inverts one pivot per unknown: "
                       + ", ".join(parts) + ("; each of them is invertible." if not conditions else "."))

    def _pivot_conditions(self, k, pivot, define=False) -> list:
        if pivot.condition is not None:
            return ["$%s \\neq 0$%s" % (self.m(pivot.condition), " elementwise" if is_matrix(pivot.condition)
                                         else "")]
        if pivot.kind == "general":
            out = []
            for symbol, value in self.defined.get(pivot.step.unknown, []):
                full = self.m(value)
                short = define and _width(full) < LINE // 2
                out.append("$%s%s$ is nonsingular" % (self.m(symbol), " = " + full if short else ""))
            return out or ["$@P@_{%d}$ is nonsingular" % k]
        if pivot.kind == "symbol" and pivot.step.condition:
            return ["$%s$ is nonsingular" % self.m(pivot.step.pivot)]
        return []

    def _assumptions(self) -> list:
        out = []
        for a in self.a.assumptions:
            m = re.match(r"strict complementarity for (\w+):", a)
            if m:
                lam = self.name(m.group(1))
                out.append(r"strict complementarity for $%s$ ($%s > 0$ wherever $g_i = 0$)" % (lam, _index(lam, "i")))
            else:
                out.append(text(a))
        for name in self.a.inactive:
            out.append(r"$%s = 0$ (an inactive constraint, %s)" % (self.name(name), self.ref("kkt")))
        return out

    # ---- 5. the blocks of ∂F/∂x and ∂F/∂θ
    def section_blocks(self) -> str:
        rows, cols = self.a.rows, self.a.unknowns
        out = [r"\section{The Jacobians of $F$}",
               r"Numbering the block rows $F_1, \ldots, F_{%d}$ (%s) and the unknowns (%s), the Jacobian "
               r"$@M@ = \partial F / \partial x$ has the blocks $@M@_{i,j} = \partial F_i / \partial x_j$:" % (
                   len(rows), "; ".join(self.label(r.name) for r in rows),
                   ", ".join("$%s$" % self.name(u.name) for u in cols)) if len(rows) > 1 else
               r"The Jacobian $@M@ = @M@_{1,1} = \partial F / \partial x$ is"]
        cells = [[self.a.blocks[r.name, u.name] for u in cols] for r in rows]
        out.append(self.block_matrix(r"\frac{\partial F}{\partial x}", cells, lambda i, j: "@M@_{%d,%d}" % (i, j)))
        if self.block_facts:
            out.append("(using %s)." % ", ".join(self.fact(k) for k in _keys(self.facts, self.block_facts)))
        for p in self.params:
            symbol = self.d.symbols[p]
            column = [[-self.rhs[p][r.name]] for r in rows]
            if _is_matrix_param(symbol):
                out.append(r"$F$ depends on the matrix $%s$; its derivative along a direction $\mathrm{d}%s$ is"
                           % (self.name(p), self.name(p)))
                lhs = r"\frac{\partial F}{\partial %s}[\mathrm{d}%s]" % (self.name(p), self.name(p))
            else:
                lhs = r"\frac{\partial F}{\partial %s}" % self.name(p)
            out.append(self.block_matrix(lhs, column, lambda i, j, p=p: r"\frac{\partial F_{%d}}{\partial %s}"
                                         % (i, self.name(p))))
        if self.params and self.rhs_facts:
            out.append("(using %s)." % ", ".join(self.fact(k) for k in _keys(self.facts, self.rhs_facts)))
        return "\n".join(out)

    # ---- 6. block elimination
    def section_elimination(self) -> str:
        out = [r"\section{Block elimination}"]
        if self.trace is None:
            out.append(r"The elimination stops: %s." % self._failure_text())
            return "\n".join(out)
        if len(self.trace.pivots) == 1:
            out.append(r"There is a single block: symift solves "
                       r"$@M@ \, \partial x / \partial \theta = -\partial F / \partial \theta$ with the pivot "
                       r"$@P@_1 = @M@_{1,1}$.")
        else:
            out.append(r"Rather than inverting $@M@ = \partial F / \partial x$, symift solves "
                       r"$@M@ \, \partial x / \partial \theta = -\partial F / \partial \theta$ block by block: each "
                       r"step solves one block row $F_i$ for one unknown $x_j$ through the pivot $@P@ = @M@_{i,j}$, "
                       r"and replaces every block of the remaining rows by its Schur complement "
                       r"$@M@_{k,l} - @M@_{k,j} @P@^{-1} @M@_{i,l}$, simplified with the KKT facts.")
        for k, pivot in enumerate(self.trace.pivots, 1):
            i, j = self.row_index[pivot.step.row], self.col_index[pivot.step.unknown]
            out.append(r"\paragraph{Step %d: $%s$ from $F_{%d}$ (%s).}" % (
                k, self.name(pivot.step.unknown), i, self.label(pivot.step.row)))
            out.append(self._pivot_text(k, i, j, pivot))
            for u in pivot.updates:
                i2, j2 = self.row_index[u.row], self.col_index[u.unknown]
                lhs = r"@M@_{%d,%d} - @M@_{%d,%d} @P@_{%d}^{-1} @M@_{%d,%d}" % (i2, j2, i2, j, k, i, j2)
                out.append(r"The block $@M@_{%d,%d}$ becomes" % (i2, j2))
                names = ("@M@_{%d,%d}" % (i2, j), "@P@_{%d}^{-1}" % k, "@M@_{%d,%d}" % (i, j2))
                out.append(_align([self._update_display(lhs, u, pivot, names)]))
            if not pivot.updates:
                out.append("No other remaining row involves $%s$: the blocks are unchanged."
                           % self.name(pivot.step.unknown) if k < len(self.trace.pivots) else
                           "This is the last unknown.")
        return "\n".join(out)

    def _pivot_text(self, k, i, j, pivot) -> str:
        P = r"$@P@_{%d} = @M@_{%d,%d} = %s$" % (k, i, j, self.m(pivot.step.pivot))
        if _width(P) > LINE // 2:
            P = "\n" + self.display(r"@P@_{%d} = @M@_{%d,%d}" % (k, i, j), [pivot.step.pivot]) + "\n"
        inverse = r"$@P@_{%d}^{-1} = %s$" % (k, self.m(pivot.inverse))
        names = self.defined.get(pivot.step.unknown, [])
        cond = self._pivot_conditions(k, pivot)
        if pivot.kind == "general" and names:
            defs = _align([self.lines(self.m(s), [v]) for s, v in names])
            note = self.since(pivot.facts)
            return ("The pivot %s is a general block. We name\n%s\nnonsingular by condition (iii), so that "
                    "%s%s." % (P, defs, inverse, " (%s)" % note if note else ""))
        if pivot.kind == "general":
            what = "is a general block, nonsingular by condition (iii), and"
        elif pivot.kind == "symbol":
            what = ("is positive definite, hence nonsingular, and" if not pivot.step.condition
                    else "is nonsingular by condition (iii), and")
        elif pivot.kind == "identity":
            what = "is a multiple of the identity, so"
        elif cond:
            what = "is %s, invertible where %s (condition (iii)), so" % (
                "a scalar" if pivot.kind == "scalar" else "diagonal", cond[0])
        else:
            what = "is a nonzero scalar, so" if pivot.kind == "scalar" else "is diagonal with nonzero entries, so"
        note = self.since(pivot.facts)
        return "The pivot %s %s %s%s." % (P, what, inverse, " (%s)" % note if note else "")

    def _update_display(self, lhs, u: Update, pivot, names) -> str:
        """``lhs = old − left·P⁻¹·right = …`` (a factor too wide for a line appears by its name)."""
        factors = [self.factor(x) for x in (u.left, pivot.inverse, u.right)]
        factors = [f if _width(f) <= LINE // 2 else n for f, n in zip(factors, names)]
        raw = (self.terms(u.old) if u.old is not None and not u.old.is_zero else []) + [(True, " ".join(factors))]
        stages = [raw]
        for value in (u.plain, u.new):
            if value is not None:
                stages.append(self._sympy(value))
        return self.lines(lhs, _distinct(self, stages), self.since(u.facts))

    # ---- 7. results
    def section_results(self) -> str:
        out = [r"\section{Results}"]
        if self.trace is None or self.failure is not None:
            out.append("There is no Jacobian: the implicit function theorem does not apply (" + self.ref("ift") + ").")
            return "\n".join(out)
        if not self.params:
            out.append("The problem has no parameters.")
            return "\n".join(out)
        for p in self.params:
            out += self._results_for(p)
        if self.defined:
            defs = ", ".join("$%s = %s$" % (self.m(s), self.m(v)) for vs in self.defined.values() for s, v in vs)
            out.append(r"Here, as in %s, %s." % (self.ref("elimination"), defs))
        return "\n".join(out)

    def _results_for(self, p) -> list:
        trace = self.traces[p]
        self.cited = set()
        out = [r"\subsection*{With respect to $%s$}" % self.name(p),
               r"The right-hand side is $@b@ = -\partial F / \partial %s%s$%s." % (
                   self.name(p), r"[\mathrm{d}%s]" % self.name(p) if _is_matrix_param(self.d.symbols[p]) else "",
                   r", with rows $@b@_1, \ldots, @b@_{%d}$" % len(self.a.rows) if len(self.a.rows) > 1 else
                   " (written $@b@_1$ below)")]
        updates = [(k, pivot, u) for k, pivot in enumerate(trace.pivots, 1) for u in pivot.rhs_updates]
        if updates:
            out.append("Forward elimination applies the steps of " + self.ref("elimination") + " to it:")
            groups = []
            for k, pivot, u in updates:
                i2, i = self.row_index[u.row], self.row_index[pivot.step.row]
                j = self.col_index[pivot.step.unknown]
                lhs = r"@b@_{%d} - @M@_{%d,%d} @P@_{%d}^{-1} @b@_{%d}" % (i2, i2, j, k, i)
                names = ("@M@_{%d,%d}" % (i2, j), "@P@_{%d}^{-1}" % k, "@b@_{%d}" % i)
                groups.append(self._update_display(lhs, u, pivot, names))
            out.append(_align(groups))
        elif len(trace.pivots) > 1:
            out.append("Forward elimination leaves $@b@$ unchanged.")
        out.append("Back substitution, from the last unknown to the first, gives" if len(trace.pivots) > 1
                   else "Solving for $%s$ gives" % self.name(trace.pivots[0].step.unknown))
        out.append(_align([self._back_display(p, k, trace.pivots[k - 1], trace)
                           for k in range(len(trace.pivots), 0, -1)]))
        for v in self.wrt:
            if v in self.a.inactive:
                out.append(self.display(self.derivative(v, p), [self.terms(self.d.jacobian(v, p), False)],
                                        "(an inactive multiplier)"))
            elif v in self.col_index and self._abbreviated(self.d.jacobian(v, p)):
                full, lhs = self.m(self.d.jacobian(v, p), False), self.derivative(v, p)
                if _width(full) + _width(lhs) <= LINE:
                    out.append("that is,\n\\[\n\\boxed{%s = %s}\n\\]" % (lhs, full))
                elif _width(full) + _width(lhs) <= 2 * LINE:
                    out.append("that is,")
                    out.append(self.display(lhs, [self.terms(self.d.jacobian(v, p), False)]))
        return out

    def _back_display(self, p, k, pivot, trace) -> str:
        blocks, b = pivot.back
        i = self.row_index[pivot.step.row]
        unknown = pivot.step.unknown
        formula = [(False, "@b@_{%d}" % i)] + [(True, "@M@_{%d,%d} %s" % (i, self.col_index[c2], self.derivative(c2, p)))
                                              for c2 in blocks]
        values = ([] if b is None or b.is_zero else self.terms(b)) + [
            (True, "%s %s" % (_short(self.factor(blk), "@M@_{%d,%d}" % (i, self.col_index[c2])),
                              self.derivative(c2, p))) for c2, blk in blocks.items()]
        if not values:
            values = [(False, "0")]
        if pivot.kind == "scalar":
            symbolic = r"\frac{%s}{@P@_{%d}}" % (join_terms(formula), k)
            raw = r"\frac{%s}{%s}" % (join_terms(values), self.m(pivot.step.pivot))
        else:
            symbolic = r"@P@_{%d}^{-1} %s" % (k, _group(formula))
            raw = r"%s %s" % (self.factor(pivot.inverse), _group(values))
        value = self.d.jacobian(unknown, p)  # the same elimination (tests check it), cached there
        stages = _distinct(self, [symbolic, raw, self._sympy(value)])
        tex = self.m(value)
        if unknown in self.wrt and not self._abbreviated(value) and \
                _width(tex) + _width(self.derivative(unknown, p)) + 4 <= LINE:
            stages[-1] = r"\boxed{%s}" % tex  # a requested result
        return self.lines(self.derivative(unknown, p), stages, self.since(trace.back_facts.get(unknown, [])))


_CONSTRUCT = {"log": r"$\log$", "abs": r"$\lvert\cdot\rvert$", "sign": r"$\operatorname{sign}$"}
_KIND = {"identity": "a scaled identity", "scalar": "a scalar", "diagonal": "a diagonal",
         "symbol": "a matrix", "general": "a general"}


def _short(tex: str, name: str) -> str:
    """``tex``, or ``name`` where tex is too wide to share a line."""
    return tex if _width(tex) <= LINE // 2 else name


def _pack(terms, budget: int) -> list:
    """The terms of a sum as lines of at most ``budget`` glyphs (each line at least one term)."""
    chunks, current = [], []
    for t in terms:
        if current and _width(join_terms(current + [t])) > budget:
            chunks.append(join_terms(current))
            current = [(t[0], t[1])]
            continue
        current.append(t)
    chunks.append(join_terms(current))
    return [c if k == 0 or c.startswith("-") else "+ " + c for k, c in enumerate(chunks)]


def _matrix(cells) -> str:
    if len(cells) == 1 and len(cells[0]) == 1:
        return cells[0][0]
    return "\\begin{bmatrix} %s \\end{bmatrix}" % r" \\ ".join(" & ".join(row) for row in cells)


def _align(groups) -> str:
    """One ``align*`` of several equations (each a list of lines)."""
    return "\\begin{align*}\n" + " \\\\[1ex]\n".join(" \\\\\n".join(g) for g in groups) + "\n\\end{align*}"


def _group(terms) -> str:
    tex = join_terms(terms)
    return r"\left(%s\right)" % tex if len(terms) > 1 or terms[0][0] else tex


def _distinct(doc, stages) -> list:
    """Drop a stage that prints the same as the one before it."""
    out, last = [], None
    for s in stages:
        tex = s if isinstance(s, str) else join_terms(s) if isinstance(s, list) else doc.m(s)
        if tex != last:
            out.append(s)
        last = tex
    return out


def _is_matrix_param(symbol) -> bool:
    return is_matrix(symbol) and symbol.shape[1] != 1


def _model_shape(symbol) -> tuple:
    if not is_matrix(symbol):
        return ()
    shape = tuple(s.name if isinstance(s, sp.Symbol) else int(s) for s in symbol.shape)
    return shape[:1] if shape[1] == 1 else shape


def _functions(problem) -> set:
    """Names of the functions called anywhere in the problem."""
    found, stack = set(), []
    if problem.objective is not None:
        stack.append(problem.objective.expr)
    for c in (*problem.constraints, *problem.equations):
        stack += [c.lhs, c.rhs]
    while stack:
        e = stack.pop()
        if isinstance(e, Call):
            found.add(e.func)
            stack += list(e.args)
        elif isinstance(e, Binary):
            stack += [e.left, e.right]
        elif isinstance(e, (Neg, Transpose)):
            stack.append(e.operand)
    return found


# --------------------------------------------------------------------------- entry points
def document(d, wrt=None, params=None) -> str:
    """The derivation ``d`` as a complete LaTeX document (pdflatex, amsmath only)."""
    try:
        return Document(d, wrt, params).render()
    except SymiftError as exc:
        raise exc.located(d.problem.source) from None


def summary(d) -> str:
    """The Jacobians as display math for Jupyter (``Derivation._repr_latex_``); MathJax renders it."""
    doc = Document(d)
    doc._compute()
    if doc.failure is not None:
        what = getattr(doc.failure, "name", "")
        condition = {"F(x*, θ) = 0": r"F(x^\star, \theta) = 0", "F continuously differentiable": r"F \in C^1",
                     }.get(what, r"\partial F / \partial x \text{ nonsingular}")
        return r"$$\text{The implicit function theorem does not apply: } %s \text{ fails.}$$" % condition
    groups = [doc.lines(doc.derivative(v, p), [doc.terms(J, False)]) if _width(doc.m(J, False)) <= 3 * LINE
              else doc.lines(doc.derivative(v, p), [J]) for (v, p), J in doc.results.items()]
    if any(_width(doc.m(J, False)) > 3 * LINE for J in doc.results.values()):
        groups += [doc.lines(doc.m(s), [v]) for vs in doc.defined.values() for s, v in vs]
    if not groups:
        return r"$$\text{No parameters: nothing to differentiate.}$$"
    return "$$\\begin{aligned}\n" + " \\\\\n".join(line for g in groups for line in g) + "\n\\end{aligned}$$"


# --------------------------------------------------------------------------- compiling, the command line
#: Seconds pdflatex may take on one document.
PDFLATEX_TIMEOUT = 120


def compile_pdf(tex_path, pdf_path=None, source=None) -> Path:
    """Compile a LaTeX file with pdflatex (non-interactive, in a temporary directory) to
    ``pdf_path`` (default: beside it, ``.pdf``).  A missing pdflatex or a failed compile raises
    :class:`~symift.errors.LatexCompileError` with the relevant lines of the log."""
    tex_path = Path(tex_path)
    target = Path(pdf_path) if pdf_path else tex_path.with_suffix(".pdf")
    if target == tex_path:
        target = tex_path.with_name(tex_path.name + ".pdf")
    exe = shutil.which("pdflatex")
    if exe is None:
        raise LatexCompileError("pdflatex not found: install TeX Live (Debian: apt-get install "
                                "texlive-latex-base) or leave out --pdf", None, source)
    with tempfile.TemporaryDirectory(prefix="symift-latex-") as tmp:
        work = Path(tmp)
        shutil.copyfile(tex_path, work / "derivation.tex")
        command = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "derivation.tex"]
        try:
            proc = subprocess.run(command, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=PDFLATEX_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise LatexCompileError(f"pdflatex did not finish within {PDFLATEX_TIMEOUT} s on {tex_path}",
                                    None, source) from None
        pdf, log = work / "derivation.pdf", work / "derivation.log"
        if proc.returncode != 0 or not pdf.exists():
            text_ = log.read_text(errors="replace") if log.exists() else proc.stdout.decode(errors="replace")
            raise LatexCompileError(f"pdflatex failed on {tex_path} (exit {proc.returncode}):\n"
                                    + log_excerpt(text_), None, source)
        try:
            shutil.copyfile(pdf, target)
        except OSError as exc:
            raise SymiftError(f"cannot write {target}: {exc.strerror}", None, source) from None
    return target


def log_excerpt(log: str, limit: int = 15) -> str:
    """The error lines of a TeX log: each '!' line through its 'l.N' context line."""
    lines = log.splitlines()
    out = []
    for k, line in enumerate(lines):
        if line.startswith("!"):
            out.append(line)
            for follow in lines[k + 1:k + 8]:
                out.append(follow)
                if re.match(r"l\.\d+", follow):
                    break
    out = [x for x in out if x.strip()] or [x for x in lines if x.strip()][-limit:]
    return "\n".join("    " + x for x in out[:limit])


def latex_command(d, args) -> int:
    """``symift derive FILE --latex OUT.tex [--pdf]``: write (and compile) the document; exit 1 if
    the implicit function theorem fails (the document then says why)."""
    source = d.problem.source
    if not getattr(args, "latex", None):
        raise SymiftError("--pdf needs --latex OUT.tex (where to write the document)", None, source)
    tex = d.to_latex(getattr(args, "wrt", None) or None, getattr(args, "param", None) or None)
    out = Path(args.latex)
    try:
        out.write_text(tex, encoding="utf-8")
    except OSError as exc:
        raise SymiftError(f"cannot write {out}: {exc.strerror}", None, source) from None
    print(f"wrote {out}")
    if getattr(args, "pdf", False):
        print(f"wrote {compile_pdf(out, source=source)}")
    if d.ift.holds is False:
        failed = next(c for c in d.ift.conditions if c.holds is False)
        raise MathError(f"the implicit function theorem does not apply: {failed.name}: {failed.reason}",
                        None, source)
    return 0
