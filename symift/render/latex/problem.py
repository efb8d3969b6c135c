"""The problem as stated: :class:`ModelLatexPrinter` writes the model tree as the user wrote it,
with the spaces of the declarations (:func:`space`), the definitions of the named functions
(:data:`DEFINITIONS`) and :func:`is_matrix_param` (a parameter differentiated along a direction).
"""
from __future__ import annotations

import re

from sympy.printing.printer import Printer

from ...errors import UnsupportedError
from ...language.model import Binary, Call, Name, Neg, Number, Problem, ShapeChecker
from ...symbolic.expr import is_matrix
from .printer import superscript, symbol_name

# --------------------------------------------------------------------------- the problem as stated
_MODEL_FUNCTIONS = {"log": r"\log", "exp": r"\exp", "sin": r"\sin", "cos": r"\cos", "tanh": r"\tanh"}
_ATOM, _UNARY, _SUM, _PRODUCT, _POWER = 100, 3, 1, 2, 4
_MODEL_PRECEDENCE = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "@": _PRODUCT, "^": _POWER}
#: Functions whose definition the document states below the problem.
DEFINITIONS = {
    "entropy": r"H(x) = -\sum_i x_i \log x_i",
    "logsumexp": r"\operatorname{logsumexp}(x) = \log \sum_i \exp(x_i)",
    "soft_threshold": r"\operatorname{soft}_{t}(v) = \operatorname{sign}(v) \odot (\lvert v \rvert - t)_{+}"
                      r" = \operatorname{prox}_{t \lVert \cdot \rVert_{1}}(v)",
    "proj_box": r"\Pi_{[l, u]}(v) = \min(\max(v, l), u)",
    "softmax": r"\operatorname{softmax}(v) = \exp(v) / \mathbf{1}^{\top} \exp(v)"
               r"\text{ (of each row, for a matrix)}",
    "proj_l2ball": r"\Pi_{\lVert \cdot \rVert \leq r}(v) = v \min(1, r / \lVert v \rVert_{2})",
    "proj_simplex": r"\Pi_{\Delta}(v) = \operatorname{argmin}_{p \geq 0,\, \mathbf{1}^{\top} p = 1} "
                    r"\lVert p - v \rVert_{2} = \max(v - \tau \mathbf{1}, 0)",
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
        return superscript(self.paren(e.operand, _ATOM), r"\top")

    def _print_Binary(self, e):
        op, p = e.op, _MODEL_PRECEDENCE[e.op]
        if op == "^":
            sup = self._print(e.right)
            return superscript(self.paren(e.left, _ATOM), sup if self._scalar(e.left) else r"\circ " + sup)
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
        if f == "ones":
            return r"\mathbf{1}_{%s}" % inner
        if f in ("pos", "relu"):  # elementwise max(a, 0)
            return r"\left(%s\right)_{+}" % inner
        if f == "softmax":
            return r"\operatorname{softmax}\left(%s\right)" % inner
        if f == "proj_simplex":
            return r"\Pi_{\Delta}\left(%s\right)" % inner
        if f == "proj_l2ball":
            return r"\Pi_{\lVert \cdot \rVert \leq %s}\left(%s\right)" % (self._print(args[1]), inner)
        if f == "grad":
            return r"\nabla_{%s} %s" % (self._print(args[1]), self.paren(x, _ATOM) if not isinstance(x, Call)
                                         else self._print(x))
        if f == "soft_threshold":
            return r"\operatorname{soft}_{%s}\left(%s\right)" % (self._print(args[1]), inner)
        if f == "proj_box":
            return r"\Pi_{[%s, %s]}\left(%s\right)" % (self._print(args[1]), self._print(args[2]), inner)
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
        if f == "dot" and len(self.shapes.shape(x)) == 2:
            return r"\langle %s, %s \rangle" % (inner, self._print(args[1]))
        if f == "dot":
            return r"%s %s" % (superscript(self.paren(x, _ATOM), r"\top"), self.paren(args[1], _PRODUCT + 1))
        if f == "quad":
            return r"%s %s %s" % (superscript(self.paren(x, _ATOM), r"\top"), self.paren(args[1], _ATOM),
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


def space(shape) -> str:
    """ℝ, ℝⁿ or ℝ^{m×n} for a model shape."""
    if shape == ():
        return r"\mathbb{R}"
    return r"\mathbb{R}^{%s}" % r" \times ".join(_size(s) for s in shape)


def is_matrix_param(symbol) -> bool:
    """Is ``symbol`` a matrix parameter (differentiated along a direction ``dP``, not entrywise)?"""
    return is_matrix(symbol) and symbol.shape[1] != 1
