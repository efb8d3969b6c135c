"""Plain-text printing of derived expressions for the terminal (diag(z), zᵀ, Q⁻¹, u∘v)."""
from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from .expr import Named


class TextPrinter(StrPrinter):
    """Readable plain text: diag(z), zᵀ, Q⁻¹, log(z), u∘v, 1."""

    def _print_Dummy(self, e):
        """A placeholder by the name of what it stands for (z for the entries of z), never ``_z``."""
        return e.name

    def _print_DiagMatrix(self, e):
        return f"diag({self._print(e.args[0])})"

    def _print_Transpose(self, e):
        inner = self._print(e.arg)
        return f"{inner}ᵀ" if isinstance(e.arg, sp.MatrixSymbol) else f"({inner})ᵀ"

    def _print_Inverse(self, e):
        inner = self._print(e.arg)
        return f"{inner}⁻¹" if isinstance(e.arg, (sp.MatrixSymbol, Named)) else f"({inner})⁻¹"

    def _print_Named(self, e):
        """K, S₂: the subscript of a generated name as a Unicode subscript."""
        base, _, k = e.name.partition("_")
        return base + k.translate(_SUBSCRIPTS)

    def _print_KroneckerProduct(self, e):
        """(I_k ⊗ X Xᵀ), (1ᵀ_k ⊗ I_m): the sizes of identities and ones, which ⊗ does not tell."""
        return "(" + " ⊗ ".join(self._kron_factor(a) for a in e.args) + ")"

    def _kron_factor(self, a):
        if isinstance(a, sp.OneMatrix) and 1 not in a.shape:
            return f"1_{self._print(a.shape[0])} 1ᵀ_{self._print(a.shape[1])}"
        if isinstance(a, (sp.Identity, sp.OneMatrix)):
            size = a.shape[0] if a.shape[0] != 1 else a.shape[1]
            return f"{self._print(a)}_{self._print(size)}"
        return self.parenthesize(a, 45) if isinstance(a, (sp.MatAdd, sp.KroneckerProduct)) else self._print(a)

    def _print_OneMatrix(self, e):
        return "1ᵀ" if e.shape[0] == 1 and e.shape[1] != 1 else "1"

    def _print_Identity(self, e):
        return "I"

    def _print_ZeroMatrix(self, e):
        return "0"

    def _print_HadamardProduct(self, e):
        return "∘".join(self.parenthesize(a, 50) for a in sums_last(e.args))

    def _print_MatAdd(self, e):
        """Positive terms first: 1 - x, not -x + 1."""
        terms = [self._print(a) for a in e.args]
        terms = [t for t in terms if not t.startswith("-")] + [t for t in terms if t.startswith("-")]
        out = terms[0]
        for t in terms[1:]:
            out += " - " + t[1:] if t.startswith("-") else " + " + t
        return out

    def _print_HadamardPower(self, e):
        return f"{self.parenthesize(e.base, 60)}^{self._print(e.exp)}"

    def _print_ElementwiseApplyFunction(self, e):
        body = e.function.expr.subs(e.function.variables[0], sp.Symbol(self._print(e.expr)))
        return self._print(body)

    def _print_Scalar(self, e):
        return f"({self._print(e.matrix)})"

    def _print_MatMul(self, e):
        c, mats = e.as_coeff_mmul()
        if len(mats.args) == 1 and isinstance(mats.args[0], sp.OneMatrix):
            return self._print(c)  # c·𝟏, a constant vector or matrix: printed as the number it broadcasts
        parts = ["1 1ᵀ" if isinstance(m, sp.OneMatrix) and 1 not in m.shape else self.parenthesize(m, 45)
                 for m in mats.args]  # 𝟏 between factors: row sums spread along the row
        body = " ".join(parts)
        if c == 1:
            return body
        if c == -1:
            return "-" + body
        if c.could_extract_minus_sign():  # −½ diag(s), so that a sum reads "… - 1/2 diag(s)"
            return "-" + self._print_MatMul(sp.MatMul(-c, *mats.args))
        num, den = sp.fraction(c)
        if den != 1 and not den.is_number:  # s sᵀ/(1ᵀ s), as written by hand
            top = body if num == 1 else f"{self.parenthesize(num, 45)} {body}"
            return f"{top}/{self.parenthesize(den, 60)}"
        return f"{self.parenthesize(c, 45)} {body}"


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def sums_last(args) -> list:
    """The factors of an elementwise product, single symbols and powers before sums: x∘(1 − x)."""
    return sorted(args, key=lambda a: isinstance(a, (sp.MatAdd, sp.Add)))


def text(e) -> str:
    return TextPrinter().doprint(e)
