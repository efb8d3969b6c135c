"""Names and the printer: identifiers as LaTeX (:func:`symbol_name`) and :class:`LatexPrinter`,
a sympy ``LatexPrinter`` for symift's vocabulary, with :func:`latex` and :func:`join_terms`.

The printer knows every class a derivation emits and nothing else: ``diag(z)`` is
``\\operatorname{diag}(z)``, ``OneMatrix`` is ``\\mathbf{1}_n``, ``lam`` is ``\\lambda``, the
direction ``dQ`` of a matrix parameter is ``\\mathrm{d}Q``.  Elementwise operations are written
``u \\odot v`` (product), ``u \\oslash v`` (division) and ``u^{\\circ k}`` (power), and
``\\operatorname{diag}(u^{\\circ k})`` as ``\\operatorname{diag}(u)^{k}``.  Any other sympy class —
``Sum``, ``Lambda``, a ``Dummy`` — raises :class:`~symift.errors.UnsupportedError` instead of
leaking into the output.
"""
from __future__ import annotations

import re
from typing import ClassVar

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.latex import LatexPrinter as _SympyLatexPrinter
from sympy.printing.latex import translate
from sympy.printing.precedence import PRECEDENCE, precedence_traditional

from ...errors import UnsupportedError
from ...symbolic.expr import Named, Scalar
from ...symbolic.printing import sums_last
from ...symbolic.vec import Vec

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


def index(tex: str, i: str) -> str:
    """``tex`` with the index i: ``\\lambda`` → ``\\lambda_{i}``, ``\\lambda_{1}`` → ``\\lambda_{1,i}``."""
    m = re.fullmatch(r"(.*?)_\{((?:[^{}]|\{[^{}]*\})*)\}('*)", tex)  # s_{\mathrm{lo}} → s_{\mathrm{lo},i}
    if m:
        return "%s_{%s,%s}%s" % (m.group(1), m.group(2), i, m.group(3))
    return "%s_{%s}" % (tex, i)


def superscript(base: str, sup: str) -> str:
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
                   ElementwiseApplyFunction, Named, Vec, sp.KroneckerProduct)
_ALLOWED = _SCALAR_CLASSES + _MATRIX_CLASSES
_NOT_FINITE = (sp.oo, -sp.oo, sp.zoo, sp.nan)
#: Matrix classes that never need parentheses as a factor.
_ATOMIC = (sp.MatrixSymbol, Named, Vec, sp.KroneckerProduct, sp.Transpose, sp.Inverse, sp.DiagMatrix,
           sp.OneMatrix, sp.Identity, sp.ZeroMatrix, sp.HadamardPower, ElementwiseApplyFunction, sp.MatPow)


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

    def _print_Named(self, expr):
        return symbol_name(expr.name)

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
        return superscript(tex, exp) if exp is not None else tex

    def _print_Scalar(self, expr):
        return self._print(expr.matrix)

    def _print_Mul(self, expr):
        # sympy separates two numbers by \cdot, but not a number from 1ₙᵀ: "4 \mathbf{1}" reads 41
        return re.sub(r"(\d)(\s*)(\\mathbf\{1\})", r"\1 \\cdot \3", super()._print_Mul(expr))

    # ---- matrix atoms
    def _print_Identity(self, expr):
        return "I_{%s}" % self._print(expr.rows)

    def _print_ZeroMatrix(self, expr):
        return "0"

    def _print_Vec(self, expr):
        return r"\operatorname{vec}(%s)" % self._print(expr.arg)

    def _print_KroneckerProduct(self, expr):
        parts = [self._print(a) if isinstance(a, _ATOMIC) else r"\left(%s\right)" % self._print(a)
                 for a in expr.args]
        return r"\left(%s\right)" % r" \otimes ".join(parts)

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
            return superscript(r"\operatorname{diag}%s" % self._argument(v.base), self._print(v.exp))
        return r"\operatorname{diag}%s" % self._argument(v)

    def _argument(self, v) -> str:
        tex = self._print(v)
        return "(%s)" % tex if isinstance(v, (sp.MatrixSymbol, sp.OneMatrix)) else self._add_parens(tex)

    def _print_Transpose(self, expr):
        arg = expr.arg
        if isinstance(arg, sp.Inverse) and isinstance(arg.arg, sp.MatrixSymbol):
            return superscript(self._print(arg.arg), r"-\top")
        if isinstance(arg, (sp.MatrixSymbol, sp.OneMatrix, sp.DiagMatrix)):
            return superscript(self._print(arg), r"\top")
        return superscript(self._add_parens(self._print(arg)), r"\top")

    def _print_Inverse(self, expr):
        arg = expr.arg
        if isinstance(arg, sp.Transpose) and isinstance(arg.arg, sp.MatrixSymbol):
            return superscript(self._print(arg.arg), r"-\top")
        if isinstance(arg, (sp.MatrixSymbol, Named, sp.DiagMatrix)):
            return superscript(self._print(arg), "-1")
        return superscript(self._add_parens(self._print(arg)), "-1")

    def _print_MatPow(self, expr):
        base = self._print(expr.base)
        if not isinstance(expr.base, sp.MatrixSymbol):
            base = self._add_parens(base)
        return superscript(base, self._print(expr.exp))

    # ---- elementwise
    def _print_HadamardProduct(self, expr):
        parts = []
        for a in sums_last(expr.args):
            tex = self._print(a)
            parts.append(tex if isinstance(a, _ATOMIC) and not self._negative(a) else self._add_parens(tex))
        return r" \odot ".join(parts)

    def _print_HadamardPower(self, expr):
        base = self._print(expr.base)
        if not isinstance(expr.base, (sp.MatrixSymbol, sp.OneMatrix)):
            base = self._add_parens(base)
        return superscript(base, r"\circ %s" % self._print(expr.exp))

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
